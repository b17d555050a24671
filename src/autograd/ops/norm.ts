/**
 * Normalisation over the last dim: `layerNorm` and `rmsNorm`.
 */
import type { Tensor } from '../../tensor/tensor.js';
import { assertArg, checkArgs, formatShape, recordOp, requireFinite, rows, wantsGrad } from './common.js';

function checkAffine(op: string, name: string, p: Tensor | null, x: Tensor, C: number): void {
  if (p) assertArg(p.rank === 1 && p.shape[0] === C, op, `${name} ${formatShape(p.shape)} must be (${C}) to match x ${formatShape(x.shape)}`);
}

/**
 * LayerNorm over the last dim: `y = (x - mean) * rstd * weight + bias`.
 * x, y are (..., C); weight (C); bias (C) or null. mean, rstd (N) are saved for backward.
 */
export function layerNorm(x: Tensor, weight: Tensor, bias: Tensor | null = null, eps = 1e-5): Tensor {
  const op = 'layerNorm';
  const heap = checkArgs(op, { x, weight, bias });
  requireFinite(op, 'eps', eps);
  assertArg(x.rank >= 1, op, 'x must be (..., C), got a scalar');
  const C = x.shape[x.rank - 1]!;
  checkAffine(op, 'weight', weight, x, C);
  checkAffine(op, 'bias', bias, x, C);
  const N = rows(x);
  const be = heap.backend;
  const out = heap.empty(x.shape);
  // the kernel writes mean and rstd in any mode; they are tiny (N each)
  const mean = heap.alloc(N);
  const rstd = heap.alloc(N);
  be.layerNormForward(out.offset, mean, rstd, x.offset, weight.offset, bias ? bias.offset : 0, N, C, eps);

  recordOp(op, [x, weight, bias], out, () => {
    // The kernel computes dinp, dweight and dbias together; pass a scratch slot for a
    // gradient nobody wants (a frozen weight) rather than branching the kernel.
    const dx = wantsGrad(x) ? heap.gradOf(x) : heap.allocZeroed(x.size);
    const dw = wantsGrad(weight) ? heap.gradOf(weight) : heap.allocZeroed(C);
    const db = bias ? (wantsGrad(bias) ? heap.gradOf(bias) : heap.allocZeroed(C)) : 0;
    be.layerNormBackward(dx, dw, db, out.gradPtr, x.offset, weight.offset, mean, rstd, N, C);
  });
  return out;
}

/**
 * RMSNorm over the last dim: `y = x * rstd * weight`, `rstd = 1/sqrt(mean(x²) + eps)`.
 * x, y are (..., C); weight (C), or null for no affine scale. rstd (N) is saved for backward.
 */
export function rmsNorm(x: Tensor, weight: Tensor | null, eps = 1e-5): Tensor {
  const op = 'rmsNorm';
  const heap = checkArgs(op, { x, weight });
  requireFinite(op, 'eps', eps);
  assertArg(x.rank >= 1, op, 'x must be (..., C), got a scalar');
  const C = x.shape[x.rank - 1]!;
  checkAffine(op, 'weight', weight, x, C);
  const N = rows(x);
  const be = heap.backend;
  const out = heap.empty(x.shape);
  const rstd = heap.alloc(N);
  be.rmsNormForward(out.offset, rstd, x.offset, weight ? weight.offset : 0, N, C, eps);

  recordOp(op, [x, weight], out, () => {
    const dx = wantsGrad(x) ? heap.gradOf(x) : heap.allocZeroed(x.size);
    const dw = weight ? (wantsGrad(weight) ? heap.gradOf(weight) : heap.allocZeroed(C)) : 0;
    be.rmsNormBackward(dx, dw, out.gradPtr, x.offset, weight ? weight.offset : 0, rstd, N, C);
  });
  return out;
}
