/**
 * Reductions to a scalar: `sum` and `mean`, and the scalar broadcast their backwards share.
 */
import type { Ptr } from '../../backend/backend.js';
import type { Heap } from '../../tensor/heap.js';
import type { Tensor } from '../../tensor/tensor.js';
import { checkArgs, recordOp } from './common.js';

/**
 * `dst (n) (+)= alpha * s[0]` where `s` is a scalar in backend memory — without reading it back
 * to the host: a (n,1)·(1,1) GEMM of an `alpha`-filled column and the scalar.
 */
export function broadcastScalar(heap: Heap, dst: Ptr, s: Ptr, n: number, alpha: number, accumulate: boolean): void {
  const col = heap.alloc(n);
  heap.backend.fill(col, n, alpha);
  heap.backend.gemm('nn', dst, col, s, n, 1, 1, accumulate);
}

/** Sum of all elements, a scalar (shape `[]`). Deterministic chunked order (the backend's `sum`). */
export function sum(x: Tensor): Tensor {
  const heap = checkArgs('sum', { x });
  const out = heap.empty([]);
  heap.backend.sum(out.offset, x.offset, x.size);
  // forward: out = Σ x, so dx += dout (broadcast)
  recordOp('sum', [x], out, () => broadcastScalar(heap, heap.gradOf(x), out.gradPtr, x.size, 1, true));
  return out;
}

/** Mean of all elements, a scalar (shape `[]`). */
export function mean(x: Tensor): Tensor {
  const heap = checkArgs('mean', { x });
  const be = heap.backend;
  const n = x.size;
  const total = heap.alloc(1);
  const out = heap.empty([]);
  be.sum(total, x.offset, n);
  be.scale(out.offset, total, 1 / n, 1);
  // forward: out = Σ x / n, so dx += dout / n (broadcast)
  recordOp('mean', [x], out, () => broadcastScalar(heap, heap.gradOf(x), out.gradPtr, n, 1 / n, true));
  return out;
}
