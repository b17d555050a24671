/**
 * Gradient checkpointing (activation recomputation): run a block without keeping its
 * activations, and recompute them in backward, one block at a time.
 *
 *   forward:   out = copy of fn(x), its tape entries dropped;  everything fn allocated is released
 *   backward:  y = fn(x) again, recorded on the (drained) tape;  dy := dout;  run that sub-tape;
 *              release what the recomputation allocated
 *
 * So the arena holds, across the whole step, only the blocks' inputs and outputs, plus one
 * block's activations and gradients at a time. The recomputation runs the same kernels on the
 * same inputs, so its values — and the gradients, which accumulate in the same order — are
 * bit-identical to the uncheckpointed step (tested). `fn` must be a pure function of `x` and the
 * parameters within one step: randomness in it (dropout, quantisation noise) has to be derived
 * from a per-step seed, not drawn from a stateful generator, or the recomputation would differ.
 */
import type { Tensor } from '../tensor/tensor.js';
import { assertArg, checkArgs, formatShape, recordOp } from './ops/common.js';
import { isGradEnabled } from './tape.js';

/**
 * `fn(x)` with its activations recomputed in backward instead of kept. `params` are the
 * parameters and other tensors made outside `fn` that it reads (the op records only when `x` or
 * one of them requires grad; their gradients accumulate as without checkpointing); the output
 * has `x`'s shape unless `outShape` says otherwise.
 *
 * @example
 * for (const block of blocks) x = checkpoint((h) => block.forward(h), x, blockParams);
 */
export function checkpoint(fn: (x: Tensor) => Tensor, x: Tensor, params: readonly Tensor[], outShape: readonly number[] = x.shape): Tensor {
  const op = 'checkpoint';
  const heap = checkArgs(op, { x });
  if (!isGradEnabled() || !(x.requiresGrad || params.some((p) => p.requiresGrad))) return fn(x);
  const out = heap.empty(outShape);
  const mark = heap.arenaMark();
  // the forward runs in grad mode, exactly as it will be recomputed (an op may differ under
  // noGrad: LoRA dropout applies only while recording); its tape entries are then dropped
  const tapeLength = heap.tape.length;
  const y = fn(x);
  heap.tape.truncate(tapeLength);
  heap.check(y, op, 'fn(x)');
  assertArg(y.size === out.size && y.shape.length === out.shape.length && y.shape.every((d, i) => d === out.shape[i]), op,
    `fn(x) returned ${formatShape(y.shape)}, expected ${formatShape(out.shape)}; pass outShape`);
  heap.backend.copy(out.offset, y.offset, out.size);
  heap.releaseArenaTo(mark);

  recordOp(op, [x, ...params], out, () => {
    // the gradients of x and of activation inputs (a prefix computed outside the block) must
    // outlive the recomputation: allocate them below the mark
    for (const t of [x, ...params]) if (t.requiresGrad && t.kind === 'activation') heap.gradOf(t);
    const recomputeMark = heap.arenaMark();
    // backward() drained the tape before running this entry, so the recomputation records
    // onto an empty tape: exactly fn's ops, which we run in reverse right here
    const y2 = fn(x);
    if (y2.requiresGrad) {
      y2.gradPtr = out.gradPtr;
      for (const e of heap.tape.drainReversed()) e.backward();
    } else heap.tape.clear();
    heap.releaseArenaTo(recomputeMark);
  });
  return out;
}
