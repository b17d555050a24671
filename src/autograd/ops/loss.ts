/**
 * Softmax cross-entropy, reduced to the mean over rows; and the LM head fused with it
 * (`linearCrossEntropy`), which never holds the whole (N, V) logits.
 */
import type { Heap } from '../../tensor/heap.js';
import type { Tensor } from '../../tensor/tensor.js';
import { assertArg, checkArgs, formatShape, recordOp, rows, wantsGrad, willRecord } from './common.js';
import { broadcastScalar } from './reduce.js';

/**
 * Mean cross-entropy of `softmax(logits)` against integer targets, a scalar (shape `[]`).
 * logits (..., V); targets (...) indices in [0, V), the same leading dims.
 * Per-row losses and probs (N, V) are computed by one fused kernel; the mean is a backend
 * `sum` and a scale, so no value is read back to the host.
 */
export function crossEntropy(logits: Tensor, targets: Tensor): Tensor {
  const op = 'crossEntropy';
  const heap = checkArgs(op, { logits, targets }, ['targets']);
  assertArg(logits.rank >= 1, op, 'logits must be (..., V), got a scalar');
  const V = logits.shape[logits.rank - 1]!;
  const N = checkTargets(op, 'logits', logits, targets, V);
  const be = heap.backend;
  const losses = heap.alloc(N);
  const probs = heap.alloc(N * V);
  const total = heap.alloc(1);
  const out = heap.empty([]);
  be.crossEntropyForward(losses, probs, logits.offset, targets.offset, N, V);
  be.sum(total, losses, N);
  be.scale(out.offset, total, 1 / N, 1);

  recordOp(op, [logits], out, () => {
    // forward: loss = Σ_rows losses / N, so dlosses[row] = dloss / N (broadcast on the backend)
    const dlosses = heap.alloc(N);
    broadcastScalar(heap, dlosses, out.gradPtr, N, 1 / N, false);
    be.crossEntropyBackward(heap.gradOf(logits), probs, targets.offset, dlosses, N, V);
  });
  return out;
}

/** Check targets are `x`'s shape without its last dim and hold ids in [0, V); returns the row count. */
function checkTargets(op: string, name: string, x: Tensor, targets: Tensor, V: number): number {
  const lead = x.shape.slice(0, -1);
  const sameLead = lead.length === targets.rank && lead.every((d, i) => d === targets.shape[i]);
  assertArg(sameLead, op, `${name} ${formatShape(x.shape)} and targets ${formatShape(targets.shape)}: targets must be ${name}' shape without the last dim, ${formatShape(lead)}`);
  const N = rows(x);
  assertArg(N > 0, op, `${name} ${formatShape(x.shape)} has no rows`);
  const [lo, hi] = targets.indexRange;
  assertArg(lo >= 0 && hi < V, op, `targets ${formatShape(targets.shape)} hold ids in [${lo}, ${hi}] but the vocabulary has V = ${V}; targets must be in [0, ${V - 1}]`);
  return N;
}

/** Elements of one chunk of logits in `linearCrossEntropy` (8 MB of f32; 42 rows at a 49,152-word vocabulary): rows per chunk = this / V. */
export const LOSS_CHUNK_ELEMENTS = 1 << 21;

/**
 * `crossEntropy(linear(x, weight), targets)` — the LM head and the mean cross-entropy in one op
 * that holds the logits of `chunkRows` rows at a time, never all (N, V) of them: at a 49,152-word
 * vocabulary and 1,024 tokens the unfused pair keeps logits, probabilities and their gradient,
 * 3 × 200 MB, for backward.
 *
 * x (..., C), weight (V, C), targets (...) → a scalar. When a gradient will flow, each chunk's
 * gradients are computed in the forward (as if dloss = 1: dlogits = (p − onehot)/N, then
 * dX = dlogits·W and, for a trainable weight, dW += dlogitsᵀ·X) and backward scales them by the
 * loss's actual gradient. With dloss = 1 and a frozen weight the result is bit for bit that of
 * the unfused pair (same GEMMs per row); a trainable weight's dW sums the chunks in order.
 */
export function linearCrossEntropy(x: Tensor, weight: Tensor, targets: Tensor, chunkRows = 0): Tensor {
  const op = 'linearCrossEntropy';
  const heap = checkArgs(op, { x, weight, targets }, ['targets']);
  assertArg(x.rank >= 1, op, 'x must be (..., C), got a scalar');
  assertArg(weight.rank === 2, op, `weight must be (V, C), got ${formatShape(weight.shape)}`);
  const C = x.shape[x.rank - 1]!;
  const [V, WC] = weight.shape as [number, number];
  assertArg(WC === C, op, `x ${formatShape(x.shape)} and weight ${formatShape(weight.shape)}: x's last dim ${C} must equal weight's in-features ${WC}`);
  const N = checkTargets(op, 'x', x, targets, V);
  assertArg(Number.isInteger(chunkRows) && chunkRows >= 0, op, `chunkRows must be an integer >= 0 (0: ${LOSS_CHUNK_ELEMENTS} logits a chunk), got ${chunkRows}`);
  const chunk = Math.min(N, chunkRows > 0 ? chunkRows : Math.max(1, Math.floor(LOSS_CHUNK_ELEMENTS / V)));
  const be = heap.backend;
  const grads = willRecord([x, weight]);
  const dxWanted = grads && wantsGrad(x);
  const dwWanted = grads && wantsGrad(weight);

  // what outlives the chunk loop first; the chunk buffers above it are freed after the loop
  const losses = heap.alloc(N);
  const dx = dxWanted ? heap.alloc(N * C) : 0;
  const dw = dwWanted ? heap.allocZeroed(V * C) : 0;
  const total = heap.alloc(1);
  const out = heap.empty([]);
  const chunkMark = heap.arenaMark();
  const logits = heap.alloc(chunk * V);
  const probs = heap.alloc(chunk * V);
  const dlosses = grads ? heap.alloc(chunk) : 0;
  if (grads) be.fill(dlosses, chunk, 1 / N);
  for (let r0 = 0; r0 < N; r0 += chunk) {
    const n = Math.min(chunk, N - r0);
    const xc = x.offset + r0 * C;
    be.gemm('nt', logits, xc, weight.offset, n, V, C, false);
    be.crossEntropyForward(losses + r0, probs, logits, targets.offset + r0, n, V);
    if (!grads) continue;
    const dlogits = logits; // the chunk's logits are spent: reuse their buffer for dlogits
    be.fill(dlogits, n * V, 0);
    be.crossEntropyBackward(dlogits, probs, targets.offset + r0, dlosses, n, V);
    if (dxWanted) be.gemm('nn', dx + r0 * C, dlogits, weight.offset, n, C, V, false);
    if (dwWanted) be.gemm('tn', dw, dlogits, xc, V, C, n, true);
  }
  heap.releaseArenaTo(chunkMark);
  be.sum(total, losses, N);
  be.scale(out.offset, total, 1 / N, 1);

  recordOp(op, [x, weight], out, () => {
    // the chunks' gradients were for dloss = 1: scale them by the actual dloss (on the backend)
    if (dxWanted) scaleAccumulate(heap, heap.gradOf(x), dx, out.gradPtr, N * C);
    if (dwWanted) scaleAccumulate(heap, heap.gradOf(weight), dw, out.gradPtr, V * C);
  });
  return out;
}

/** `dst += src · s[0]` for a scalar `s` on the backend (an (n,1)·(1,1) GEMM; no read back). */
function scaleAccumulate(heap: Heap, dst: number, src: number, s: number, n: number): void {
  heap.backend.gemm('nn', dst, src, s, n, 1, 1, true);
}
