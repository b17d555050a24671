/**
 * Matrix products: `linear` (the layer op) and `matmul`.
 */
import type { Tensor } from '../../tensor/tensor.js';
import { assertArg, checkArgs, formatShape, recordOp, rows, wantsGrad } from './common.js';

/**
 * `y = x·Wᵀ + b`. x is (..., C), W is (OC, C), b is (OC) or null; y is (..., OC).
 * Forward is one `nt` GEMM; backward `dX += dY·W` (`nn`), `dW += dYᵀ·X` (`tn`), `db += Σ dY`.
 */
export function linear(x: Tensor, weight: Tensor, bias: Tensor | null = null): Tensor {
  const op = 'linear';
  const heap = checkArgs(op, { x, weight, bias });
  assertArg(x.rank >= 1, op, `x must be (..., C), got a scalar`);
  assertArg(weight.rank === 2, op, `weight must be (OC, C), got ${formatShape(weight.shape)}`);
  const C = x.shape[x.rank - 1]!;
  const [OC, WC] = weight.shape as [number, number];
  assertArg(WC === C, op, `x ${formatShape(x.shape)} and weight ${formatShape(weight.shape)}: x's last dim ${C} must equal weight's in-features ${WC}`);
  if (bias) {
    assertArg(bias.rank === 1 && bias.shape[0] === OC, op, `bias ${formatShape(bias.shape)} must be (${OC}) to match weight ${formatShape(weight.shape)}`);
  }
  const N = rows(x);
  const be = heap.backend;
  const out = heap.empty([...x.shape.slice(0, -1), OC]);
  // out (N,OC) = x (N,C) · weight (OC,C)ᵀ
  be.gemm('nt', out.offset, x.offset, weight.offset, N, OC, C, false);
  if (bias) be.addBias(out.offset, bias.offset, N, OC);

  recordOp(op, [x, weight, bias], out, () => {
    const dout = out.gradPtr;
    // forward: out = x·Wᵀ + b, so dx += dout·W, dW += doutᵀ·x, db += Σ_rows dout
    if (wantsGrad(x)) be.gemm('nn', heap.gradOf(x), dout, weight.offset, N, C, OC, true);
    if (wantsGrad(weight)) be.gemm('tn', heap.gradOf(weight), dout, x.offset, OC, C, N, true);
    if (wantsGrad(bias)) be.biasBackward(heap.gradOf(bias), dout, N, OC);
  });
  return out;
}

/** `c = a·b` for 2-D a (M, K) and b (K, N); c is (M, N). */
export function matmul(a: Tensor, b: Tensor): Tensor {
  const op = 'matmul';
  const heap = checkArgs(op, { a, b });
  assertArg(a.rank === 2 && b.rank === 2, op, `a ${formatShape(a.shape)} and b ${formatShape(b.shape)} must both be 2-D`);
  const [M, K] = a.shape as [number, number];
  const [K2, N] = b.shape as [number, number];
  assertArg(K === K2, op, `a ${formatShape(a.shape)} and b ${formatShape(b.shape)}: inner dims ${K} and ${K2} differ`);
  const be = heap.backend;
  const out = heap.empty([M, N]);
  be.gemm('nn', out.offset, a.offset, b.offset, M, N, K, false);

  recordOp(op, [a, b], out, () => {
    const dout = out.gradPtr;
    // forward: c = a·b, so da += dc·bᵀ (nt), db += aᵀ·dc (tn)
    if (wantsGrad(a)) be.gemm('nt', heap.gradOf(a), dout, b.offset, M, K, N, true);
    if (wantsGrad(b)) be.gemm('tn', heap.gradOf(b), a.offset, dout, K, N, M, true);
  });
  return out;
}
