/**
 * Ops of prefix and prompt tuning (src/peft/prefix.ts, prompt.ts), on existing kernels:
 *
 *   prependRows   x (B,T,W) → (B,P+T,W): P rows first (a block of columns filled from a (P,S)
 *                 source, shared by every sequence, the rest 0), then x
 *   dropRows      y (B,P+T,W) → (B,T,W): the last T rows of every sequence
 *   tanh          the activation of the prefix-tuning reparameterisation MLP
 *   rowView       rows [start, start+count) of a parameter or constant, as a tensor (no copy)
 *
 * With these, attention over P learned key/value positions is the model's own causal attention
 * over P+T rows whose first P rows carry the prefix keys and values (and zero queries): a real
 * token at row P+t attends to all P prefix rows and to tokens ≤ t, exactly the causal mask over
 * the real tokens; the P prefix rows' outputs are dropped, so their queries get no gradient.
 */
import { Tensor } from '../tensor/tensor.js';
import { assertArg, checkArgs, formatShape, recordOp, wantsGrad } from '../autograd/ops/common.js';

/** Where the P leading rows of `prependRows` come from: columns [col, col+width) of a (P, S) source, put at column `at`. */
export interface RowSource {
  source: Tensor;
  col: number;
  width: number;
  at: number;
}

/**
 * `out (B, P+T, W)`: for every sequence b, rows 0..P-1 are zero except columns [at, at+width),
 * which hold `source[p, col..col+width)`; rows P.. are x[b]. Backward: dx[b] += dout[b, P..];
 * dsource[p, col..] += Σ_b dout[b, p, at..] (summed in order of b).
 */
export function prependRows(x: Tensor, P: number, from: RowSource | null): Tensor {
  const op = 'prependRows';
  const heap = checkArgs(op, { x, source: from?.source });
  assertArg(x.rank === 3, op, `x must be (B, T, W), got ${formatShape(x.shape)}`);
  assertArg(Number.isInteger(P) && P > 0, op, `P must be a positive integer, got ${P}`);
  const [B, T, W] = x.shape as [number, number, number];
  let S = 0;
  if (from) {
    const { source, col, width, at } = from;
    assertArg(source.rank === 2 && source.shape[0] === P, op, `source ${formatShape(source.shape)} must have P = ${P} rows`);
    S = source.shape[1]!;
    assertArg(Number.isInteger(col) && col >= 0 && Number.isInteger(width) && width > 0 && col + width <= S, op, `columns [${col}, ${col + width}) are not inside source ${formatShape(source.shape)}`);
    assertArg(Number.isInteger(at) && at >= 0 && at + width <= W, op, `columns [${at}, ${at + width}) are not inside a row of x ${formatShape(x.shape)}`);
  }
  const be = heap.backend;
  const rowsOut = P + T;
  const fullRows = from !== null && from.at === 0 && from.width === W;
  const out = fullRows ? heap.empty([B, rowsOut, W]) : heap.zeros([B, rowsOut, W]);
  for (let b = 0; b < B; b++) {
    const ob = out.offset + b * rowsOut * W;
    if (T > 0) be.copy(ob + P * W, x.offset + b * T * W, T * W);
    if (from) be.qatCopyColumns(ob, W, from.at, from.source.offset, S, from.col, P, from.width, false);
  }

  recordOp(op, [x, from?.source], out, () => {
    const dout = out.gradPtr;
    // forward: out[b, P + t] = x[b, t]; out[b, p, at + j] = source[p, col + j]
    if (wantsGrad(x)) {
      const dx = heap.gradOf(x);
      for (let b = 0; b < B; b++) if (T > 0) be.axpy(dx + b * T * W, 1, dout + b * rowsOut * W + P * W, T * W);
    }
    if (from && wantsGrad(from.source)) {
      const ds = heap.gradOf(from.source);
      for (let b = 0; b < B; b++) be.qatCopyColumns(ds, S, from.col, dout + b * rowsOut * W, W, from.at, P, from.width, true);
    }
  });
  return out;
}

/** `out (B, T, W) = y[:, P:, :]` for y (B, P+T, W). Backward: dy[b, P + t] += dout[b, t]. */
export function dropRows(y: Tensor, P: number): Tensor {
  const op = 'dropRows';
  const heap = checkArgs(op, { y });
  assertArg(y.rank === 3, op, `y must be (B, P+T, W), got ${formatShape(y.shape)}`);
  const [B, R, W] = y.shape as [number, number, number];
  assertArg(Number.isInteger(P) && P >= 0 && P <= R, op, `cannot drop ${P} of the ${R} rows of y ${formatShape(y.shape)}`);
  const T = R - P;
  const be = heap.backend;
  const out = heap.empty([B, T, W]);
  for (let b = 0; b < B; b++) if (T > 0) be.copy(out.offset + b * T * W, y.offset + b * R * W + P * W, T * W);
  recordOp(op, [y], out, () => {
    const dy = heap.gradOf(y);
    for (let b = 0; b < B; b++) if (T > 0) be.axpy(dy + b * R * W + P * W, 1, out.gradPtr + b * T * W, T * W);
  });
  return out;
}

/** Elementwise tanh. Backward: dx += (1 − out²)·dout. */
export function tanh(x: Tensor): Tensor {
  const op = 'tanh';
  const heap = checkArgs(op, { x });
  const be = heap.backend;
  const out = heap.empty(x.shape);
  be.tanhForward(out.offset, x.offset, x.size);
  recordOp(op, [x], out, () => be.tanhBackward(heap.gradOf(x), out.offset, out.gradPtr, x.size));
  return out;
}

/**
 * Rows [start, start + count) of `t` as a tensor over the same memory (and, for a parameter,
 * the same gradient slots). Only for parameters and tensors that take no gradient: an
 * activation's gradient is allocated lazily and a view could not share it.
 */
export function rowView(t: Tensor, start: number, count: number): Tensor {
  const op = 'rowView';
  assertArg(t.rank >= 1 && Number.isInteger(start) && Number.isInteger(count) && start >= 0 && count >= 0 && start + count <= t.shape[0]!, op,
    `rows [${start}, ${start + count}) are not inside ${t.describe()}`);
  assertArg(t.kind === 'param' || !t.requiresGrad, op, `${t.describe()} is an activation that takes a gradient; a row view of it cannot share that gradient`);
  const rowSize = t.shape[0]! === 0 ? 0 : t.size / t.shape[0]!;
  const v = new Tensor({
    heap: t.heap, offset: t.offset + start * rowSize, shape: [count, ...t.shape.slice(1)], kind: t.kind, generation: t.generation,
    dtype: t.dtype, name: t.name ? `${t.name}[${start}:${start + count}]` : '', requiresGrad: t.requiresGrad,
  });
  if (t.gradPtr !== 0) v.gradPtr = t.gradPtr + start * rowSize;
  return v;
}
