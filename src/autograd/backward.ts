/**
 * Reverse-mode pass over the tape. Gradients of activations are allocated lazily in the arena
 * (zero-filled) and accumulate, because every backward kernel accumulates (`+=`); gradients of
 * parameters accumulate into the gradient block (cleared by `zeroGrad`).
 */
import type { Tensor } from '../tensor/tensor.js';

/** Seed d(loss) = 1 and run every recorded op's backward, newest first. `loss` must be a scalar. */
export function backward(loss: Tensor): void {
  const heap = loss.heap;
  heap.check(loss, 'backward', 'loss');
  if (loss.size !== 1) {
    throw new Error(`backward: loss has shape ${'(' + loss.shape.join(',') + ')'} (${loss.size} elements); backward() needs a scalar — reduce it first with mean() or sum()`);
  }
  if (!loss.requiresGrad) {
    throw new Error('backward: loss does not depend on any parameter or input that requires grad (was it computed inside noGrad(), or has backward() already run for it?)');
  }
  const entries = heap.tape.drainReversed();
  const seed = heap.gradOf(loss);
  heap.backend.fill(seed, 1, 1);
  for (const e of entries) e.backward();
  // The tape is consumed: a second backward() on this loss would double-count.
  loss.requiresGrad = false;
}
