/**
 * Elementwise arithmetic over tensors of one shape: `add` (the residual), `mul`, `scale`.
 */
import type { Tensor } from '../../tensor/tensor.js';
import { checkArgs, recordOp, requireFinite, requireSameShape, wantsGrad } from './common.js';

/** `a + b`, same shapes (the residual connection). */
export function add(a: Tensor, b: Tensor): Tensor {
  const op = 'add';
  const heap = checkArgs(op, { a, b });
  requireSameShape(op, 'a', a, 'b', b);
  const be = heap.backend;
  const out = heap.empty(a.shape);
  be.add(out.offset, a.offset, b.offset, a.size);
  // forward: out = a + b, so da += dout, db += dout
  recordOp(op, [a, b], out, () => {
    if (wantsGrad(a)) be.axpy(heap.gradOf(a), 1, out.gradPtr, a.size);
    if (wantsGrad(b)) be.axpy(heap.gradOf(b), 1, out.gradPtr, b.size);
  });
  return out;
}

/** `a * b` elementwise, same shapes (the gate of a SwiGLU MLP). */
export function mul(a: Tensor, b: Tensor): Tensor {
  const op = 'mul';
  const heap = checkArgs(op, { a, b });
  requireSameShape(op, 'a', a, 'b', b);
  const be = heap.backend;
  const out = heap.empty(a.shape);
  be.mul(out.offset, a.offset, b.offset, a.size);
  // forward: out = a * b, so da += b * dout, db += a * dout
  recordOp(op, [a, b], out, () => {
    if (wantsGrad(a)) be.mulAccumulate(heap.gradOf(a), b.offset, out.gradPtr, a.size);
    if (wantsGrad(b)) be.mulAccumulate(heap.gradOf(b), a.offset, out.gradPtr, b.size);
  });
  return out;
}

/** `s * a` for a finite host number `s`. */
export function scale(a: Tensor, s: number): Tensor {
  const op = 'scale';
  const heap = checkArgs(op, { a });
  requireFinite(op, 's', s);
  const be = heap.backend;
  const out = heap.empty(a.shape);
  be.scale(out.offset, a.offset, s, a.size);
  // forward: out = s * a, so da += s * dout
  recordOp(op, [a], out, () => be.axpy(heap.gradOf(a), s, out.gradPtr, a.size));
  return out;
}
