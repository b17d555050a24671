/**
 * Pointwise activations: `gelu` (tanh approximation), `silu` and `relu2` (squared ReLU).
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

/** Squared ReLU, `max(x, 0)^2`, elementwise (BitNet b1.58 2B4T's MLP activation); y has x's shape. */
export function relu2(x: Tensor): Tensor {
  const heap = checkArgs('relu2', { x });
  const be = heap.backend;
  const out = heap.empty(x.shape);
  be.relu2Forward(out.offset, x.offset, x.size);
  // forward: y = max(x, 0)^2, so dx += 2 max(x, 0) * dy
  recordOp('relu2', [x], out, () => be.relu2Backward(heap.gradOf(x), x.offset, out.gradPtr, x.size));
  return out;
}
