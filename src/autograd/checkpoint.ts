/**
 * Gradient checkpointing (activation recomputation): run a block without keeping its
 * activations, and recompute them in backward, one block at a time.
 *
 *   forward:   out = copy of fn(x), its tape entries dropped;  everything fn allocated is released
 *   backward:  y = fn(x) again, recorded on the (drained) tape;  dy := dout;  run that sub-tape;
 *              release what the recomputation allocated
 *
 * So the arena holds, across the whole step, only the blocks' inputs and outputs, one gradient
 * of a block's output (handed down the chain of blocks), plus one block's activations and
 * gradients at a time. The recomputation runs the same kernels on the
 * same inputs, so its values — and the gradients, which accumulate in the same order — are
 * bit-identical to the uncheckpointed step (tested). `fn` must be a pure function of `x` and the
 * parameters within one step: randomness in it (dropout, quantisation noise) has to be derived
 * from a per-step seed, not drawn from a stateful generator, or the recomputation would differ.
 *
 * Blocks that are not checkpointed run in a `gradientScope`: their activations stay, but the
 * activation gradients of their backward are freed once it has run, the same way.
 */
import type { Heap } from '../tensor/heap.js';
import type { Tensor } from '../tensor/tensor.js';
import { assertArg, checkArgs, formatShape } from './ops/common.js';
import { isGradEnabled } from './tape.js';

/**
 * `fn(x)` with its activations recomputed in backward instead of kept. `inputs` are the
 * activations made outside `fn` that it reads besides `x` (a prefix computed before the blocks):
 * their gradients are allocated before the recomputation so they outlive it. Parameters need no
 * mention. The output has `x`'s shape unless `outShape` says otherwise. When `fn` records
 * nothing (no parameter it reads requires grad, nor `x`), its result is returned as computed.
 *
 * @example
 * for (const block of blocks) x = checkpoint((h) => block.forward(h), x);
 */
export function checkpoint(fn: (x: Tensor) => Tensor, x: Tensor, inputs: readonly Tensor[] = [], outShape: readonly number[] = x.shape): Tensor {
  const op = 'checkpoint';
  const heap = checkArgs(op, { x });
  if (!isGradEnabled()) return fn(x);
  const out = heap.empty(outShape);
  const mark = heap.arenaMark();
  // the forward runs in grad mode, exactly as it will be recomputed (an op may differ under
  // noGrad: LoRA dropout applies only while recording); its tape entries are then dropped
  const tapeLength = heap.tape.length;
  const y = fn(x);
  heap.check(y, op, 'fn(x)');
  if (heap.tape.length === tapeLength) return y; // nothing to differentiate: keep y
  heap.tape.truncate(tapeLength);
  assertArg(y.size === out.size && y.shape.length === out.shape.length && y.shape.every((d, i) => d === out.shape[i]), op,
    `fn(x) returned ${formatShape(y.shape)}, expected ${formatShape(out.shape)}; pass outShape`);
  heap.backend.copy(out.offset, y.offset, out.size);
  heap.releaseArenaTo(mark);

  out.requiresGrad = true;
  heap.tape.record({
    name: op,
    backward: () => {
      if (out.gradPtr === 0) return;
      // the recomputation's own activations lie above the region's mark: nothing below it may
      // take a new gradient in there but what openGradientRegion allocated
      const region = openGradientRegion(heap, x, out, inputs, null);
      // backward() drained the tape before running this entry, so the recomputation records
      // onto an empty tape: exactly fn's ops, which run in reverse right here
      const y2 = fn(x);
      y2.gradPtr = out.gradPtr;
      for (const e of heap.tape.drainReversed()) e.backward();
      closeGradientRegion(heap, region, x, out);
    },
  });
  return out;
}

/**
 * `fn(x)` kept as usual (no recomputation), but the activation gradients its backward allocates
 * are freed once it has run: a block's backward needs gradients of its own activations only
 * while it runs, and passes on just those of `x` and `inputs` (the activations from outside that
 * `fn` reads; parameters need no mention). Without it, a bump arena holds every block's
 * activation gradients until the step ends: at 30 SmolLM2-shaped layers, as much again as the
 * activations. Same kernels in the same order, so the same bits (tested).
 */
export function gradientScope(fn: (x: Tensor) => Tensor, x: Tensor, inputs: readonly Tensor[] = []): Tensor {
  const heap = checkArgs('gradientScope', { x });
  if (!isGradEnabled()) return fn(x);
  const tapeLength = heap.tape.length;
  const forwardStart = heap.arenaMark(); // fn's activations lie above: only they take new gradients in its backward
  let region: GradientRegion | null = null;
  let y: Tensor | null = null;
  // recorded first, so it runs last: once the block's backward is done
  heap.tape.record({
    name: 'gradientScope.release',
    backward: () => {
      if (region && y) closeGradientRegion(heap, region, x, y);
      region = null;
    },
  });
  y = fn(x);
  heap.check(y, 'gradientScope', 'fn(x)');
  if (heap.tape.length === tapeLength + 1) {
    heap.tape.truncate(tapeLength); // fn recorded nothing: no backward to scope
    return y;
  }
  const out = y;
  // recorded last, so it runs first: before any of the block's backward allocates
  heap.tape.record({
    name: 'gradientScope.open',
    backward: () => {
      region = openGradientRegion(heap, x, out, inputs, forwardStart);
    },
  });
  return y;
}

/** Where a block's backward began allocating, whether `x`'s gradient takes over `out`'s buffer, and the heap's gradient floor before. */
interface GradientRegion {
  mark: number;
  handOver: boolean;
  outerFloor: number;
}

/**
 * Before a block's backward: allocate the gradients that must outlive it (of `x` and `inputs`),
 * then mark the arena. `x`'s gradient can instead take over `out`'s buffer when x has none yet
 * and the same size: out is dead once the block's backward ran (its gradient came from ops
 * recorded later, which ran before), so a chain of blocks passes one gradient buffer down
 * instead of keeping one per block. x's gradient is then allocated inside the region and copied
 * into out's buffer by `closeGradientRegion`.
 *
 * Then no activation below `floor` (the region's mark when null) may take a new gradient until
 * the region closes: one the block reads but `inputs` did not name would have its gradient freed
 * with the region, so `heap.gradOf` throws instead.
 */
function openGradientRegion(heap: Heap, x: Tensor, out: Tensor, inputs: readonly Tensor[], floor: number | null): GradientRegion {
  const handOver = out.gradPtr !== 0 && x.requiresGrad && x.kind === 'activation' && x.gradPtr === 0 && x.size === out.size;
  for (const t of [x, ...inputs]) if (t.requiresGrad && t.kind === 'activation' && !(handOver && t === x)) heap.gradOf(t);
  const mark = heap.arenaMark();
  if (handOver) heap.gradOf(x);
  const outerFloor = heap.gradientFloor;
  heap.gradientFloor = Math.max(outerFloor, floor ?? mark);
  return { mark, handOver, outerFloor };
}

/** After a block's backward: hand x's gradient over to out's buffer if so planned, free the rest. */
function closeGradientRegion(heap: Heap, region: GradientRegion, x: Tensor, out: Tensor): void {
  heap.gradientFloor = region.outerFloor;
  if (region.handOver) {
    heap.backend.copy(out.gradPtr, x.gradPtr, x.size);
    x.gradPtr = out.gradPtr;
    out.gradPtr = 0;
  }
  heap.releaseArenaTo(region.mark);
}

/** Which blocks are checkpointed: every one (true), none (false), or the first n (partial recomputation). */
export type GradientCheckpointing = boolean | number;

/**
 * `x` through `blocks` in order, the checkpointed ones (`setting`: all, none, or the first n) with
 * `checkpoint`, the others with `gradientScope` (activations kept, their gradients freed block by
 * block). Checkpointing n of L blocks keeps L − n blocks' activations: memory between that of full
 * checkpointing and none, with n blocks' forward recomputed (Megatron's `--recompute-num-layers`).
 * The same bits at every n.
 */
export function forwardBlocks(blocks: readonly { forward(x: Tensor): Tensor }[], x: Tensor, setting: GradientCheckpointing, inputs: readonly Tensor[] = []): Tensor {
  if (typeof setting === 'number' && !(Number.isInteger(setting) && setting >= 0)) {
    throw new Error(`gradient checkpointing: the number of checkpointed blocks must be an integer >= 0, got ${setting}`);
  }
  const n = setting === true ? blocks.length : setting === false ? 0 : Math.min(setting, blocks.length);
  blocks.forEach((block, i) => {
    x = i < n ? checkpoint((h) => block.forward(h), x, inputs) : gradientScope((h) => block.forward(h), x, inputs);
  });
  return x;
}
