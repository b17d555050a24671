/**
 * AdamW over the contiguous parameter, gradient and state blocks (DESIGN.md decision 2).
 *
 * One step is: `sumSquares` over the whole gradient block (the global grad norm), `clipScale`
 * (when clipping), then two fused `adamwStep` calls — the weight-decayed range and the rest —
 * with the clip factor read by the kernel from backend memory. Before the update the non-finite
 * guard (./update-guard.ts) reads back three sums of squares (gradients, weights, m: one
 * `readSync` of 3 floats) and refuses a step that would write NaN/Inf; `step()` says which.
 *
 * The order of a training step:
 *
 *   optimizer.zeroGrad() → model.forward(...) → loss.backward() → optimizer.step() → heap.resetArena()
 *
 * (`trainStep` does exactly this.) Read any value you need (the loss) before `resetArena()`.
 */
import type { Ptr } from '../backend/backend.js';
import type { ParameterSet } from '../tensor/parameters.js';
import { type AdamWOptions, type AdamWStepParams, GuardedAdamW } from './guarded-adamw.js';

export { type AdamWOptions, checkAdamWHyperparameters } from './guarded-adamw.js';

/** Optimizer state for checkpoints: step count and the m, v blocks by parameter name. */
export interface AdamWState {
  step: number;
  m: Map<string, Float32Array>;
  v: Map<string, Float32Array>;
}

export class AdamW extends GuardedAdamW {
  private readonly m: Ptr;
  private readonly v: Ptr;
  protected readonly scratch: Ptr;

  /** Allocates the m and v blocks (zeroed); call before the first forward (static memory). */
  constructor(params: ParameterSet, options: AdamWOptions) {
    super(params, options, 'AdamW');
    const heap = params.heap;
    const n = params.blockSize;
    this.m = heap.allocStatic(n, 'adamw.m');
    this.v = heap.allocStatic(n, 'adamw.v');
    this.scratch = heap.allocStatic(4, 'adamw.scratch');
    const be = heap.backend;
    if (n > 0) {
      be.fill(this.m, n, 0);
      be.fill(this.v, n, 0);
    }
    be.fill(this.scratch, 4, 0);
  }

  /** ‖m‖ exactly: one `sumSquares` over the m block. */
  protected recordStateSquares(out: Ptr): void {
    this.params.heap.backend.sumSquares(out, this.m, this.params.blockSize);
  }

  protected stateNorm(sumSquares: number): number {
    return Math.sqrt(sumSquares);
  }

  /** Two fused `adamwStep` calls: the weight-decayed range and the rest. */
  protected update(hp: AdamWStepParams, gradScale: Ptr): void {
    const p = this.params;
    const be = p.heap.backend;
    for (const [range, weightDecay] of [[p.decayRange, this.weightDecay], [p.noDecayRange, 0]] as const) {
      if (range.length === 0) continue;
      const s = range.start;
      be.adamwStep(p.paramOffset + s, p.gradOffset + s, this.m + s, this.v + s, range.length, { ...hp, weightDecay }, gradScale);
    }
  }

  /** Copy out the optimizer state (checkpoints). */
  async exportState(): Promise<AdamWState> {
    return { step: this.stepCount, m: await this.params.exportBlock(this.m), v: await this.params.exportBlock(this.v) };
  }

  /** Restore state saved by `exportState` (same model shape). */
  importState(state: AdamWState): void {
    if (!Number.isInteger(state.step) || state.step < 0) throw new Error(`AdamW.importState: step must be a non-negative integer, got ${state.step}`);
    this.params.importBlock(this.m, state.m);
    this.params.importBlock(this.v, state.v);
    this.stepCount = state.step;
  }
}
