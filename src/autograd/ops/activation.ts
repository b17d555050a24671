/**
 * Pointwise activations: `gelu` (tanh approximation) and `silu`.
 */
import type { Tensor } from '../../tensor/tensor.js';
import { checkArgs, recordOp } from './common.js';

/** GELU, tanh approximation, elementwise; y has x's shape. */
export function gelu(x: Tensor): Tensor {
  const heap = checkArgs('gelu', { x });
  const be = heap.backend;
  const out = heap.empty(x.shape);
  be.geluForward(out.offset, x.offset, x.size);
  // forward: y = gelu(x), so dx += gelu'(x) * dy
  recordOp('gelu', [x], out, () => be.geluBackward(heap.gradOf(x), x.offset, out.gradPtr, x.size));
  return out;
}

/** SiLU (swish): `x * sigmoid(x)`, elementwise; y has x's shape. */
export function silu(x: Tensor): Tensor {
  const heap = checkArgs('silu', { x });
  const be = heap.backend;
  const out = heap.empty(x.shape);
  be.siluForward(out.offset, x.offset, x.size);
  // forward: y = silu(x), so dx += silu'(x) * dy
  recordOp('silu', [x], out, () => be.siluBackward(heap.gradOf(x), x.offset, out.gradPtr, x.size));
  return out;
}
