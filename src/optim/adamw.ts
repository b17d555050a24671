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
import { type StepOutcome, adamwGuard } from './update-guard.js';

/** AdamW hyperparameters. `lr` and `weightDecay` may be changed between steps (schedules). */
export interface AdamWOptions {
  lr: number;
  /** Default [0.9, 0.95] (the BitNet recipe). */
  betas?: [number, number];
  /** Default 1e-8. */
  eps?: number;
  /** Decoupled weight decay of the decayed group (matrices). Default 0.1. Norms, biases, embeddings never decay. */
  weightDecay?: number;
  /** Clip the global gradient norm to this value; 0 or undefined turns clipping off. */
  clipNorm?: number;
}

/** Optimizer state for checkpoints: step count and the m, v blocks by parameter name. */
export interface AdamWState {
  step: number;
  m: Map<string, Float32Array>;
  v: Map<string, Float32Array>;
}

function finite(who: string, name: string, v: number, lo: number, hi = Infinity, loOpen = false): void {
  const ok = typeof v === 'number' && Number.isFinite(v) && (loOpen ? v > lo : v >= lo) && v < hi;
  if (!ok) throw new Error(`${who}: ${name} must be a finite number ${loOpen ? '>' : '>='} ${lo}${hi < Infinity ? ` and < ${hi}` : ''}, got ${v}`);
}

/** Throws, naming `who` and the hyperparameter, unless every AdamW hyperparameter is in range (AdamW, AdamW8bit). */
export function checkAdamWHyperparameters(who: string, hp: { lr: number; beta1: number; beta2: number; eps: number; weightDecay: number; clipNorm: number }): void {
  finite(who, 'lr', hp.lr, 0);
  finite(who, 'beta1', hp.beta1, 0, 1);
  finite(who, 'beta2', hp.beta2, 0, 1);
  finite(who, 'eps', hp.eps, 0, Infinity, true);
  finite(who, 'weightDecay', hp.weightDecay, 0);
  finite(who, 'clipNorm', hp.clipNorm, 0);
}

export class AdamW {
  readonly params: ParameterSet;
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  clipNorm: number;
  /** Steps taken (the bias-correction count of the last step). */
  stepCount = 0;
  private readonly m: Ptr;
  private readonly v: Ptr;
  /** scratch[0] = sum of squared grads, scratch[1] = clip factor, scratch[2..3] = sums of squared weights and m (the guard). */
  private readonly scratch: Ptr;

  /** Allocates the m and v blocks (zeroed); call before the first forward (static memory). */
  constructor(params: ParameterSet, options: AdamWOptions) {
    this.params = params;
    this.lr = options.lr;
    [this.beta1, this.beta2] = options.betas ?? [0.9, 0.95];
    this.eps = options.eps ?? 1e-8;
    this.weightDecay = options.weightDecay ?? 0.1;
    this.clipNorm = options.clipNorm ?? 0;
    this.validate();
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

  /** Zero every gradient (one `fill` over the gradient block). */
  zeroGrad(): void {
    this.params.zeroGrad();
  }

  /**
   * Apply one update from the accumulated gradients, unless it would write a NaN or Inf (a
   * non-finite gradient, or weights overflowing f32): then nothing changes (weights, m, v, the
   * step count) and the outcome says why.
   */
  step(): StepOutcome {
    this.recordGuardSums();
    return this.applyGuarded(this.params.heap.backend.readSync(this.scratch, 4));
  }

  /** `step()` for a backend whose reads are asynchronous (webgpu): the guard's sums are awaited. Same update. */
  async stepAsync(): Promise<StepOutcome> {
    this.recordGuardSums();
    return this.applyGuarded(await this.params.heap.backend.read(this.scratch, 4));
  }

  /** The guard's inputs: sums of squares of the gradients, the weights and m into the scratch. */
  private recordGuardSums(): void {
    this.validate();
    const p = this.params;
    const be = p.heap.backend;
    const n = p.blockSize;
    be.sumSquares(this.scratch, p.gradOffset, n);
    be.sumSquares(this.scratch + 2, p.paramOffset, n);
    be.sumSquares(this.scratch + 3, this.m, n);
  }

  private applyGuarded(sums: ArrayLike<number>): StepOutcome {
    const p = this.params;
    const be = p.heap.backend;
    const outcome = adamwGuard(
      { grad: Math.sqrt(sums[0]!), param: Math.sqrt(sums[2]!), state: Math.sqrt(sums[3]!) },
      { lr: this.lr, beta1: this.beta1, eps: this.eps, weightDecay: this.weightDecay, step: this.stepCount + 1, clip: this.clipNorm },
    );
    if (!outcome.applied) return outcome;
    this.stepCount++;
    let gradScale: Ptr = 0;
    if (this.clipNorm > 0) {
      be.clipScale(this.scratch + 1, this.scratch, this.clipNorm);
      gradScale = this.scratch + 1;
    }
    const hp = { lr: this.lr, beta1: this.beta1, beta2: this.beta2, eps: this.eps, step: this.stepCount };
    for (const [range, weightDecay] of [[p.decayRange, this.weightDecay], [p.noDecayRange, 0]] as const) {
      if (range.length === 0) continue;
      const s = range.start;
      be.adamwStep(p.paramOffset + s, p.gradOffset + s, this.m + s, this.v + s, range.length, { ...hp, weightDecay }, gradScale);
    }
    return outcome;
  }

  /** The global gradient norm (before clipping) seen by the last `step()`. Reads one value back. */
  async gradNorm(): Promise<number> {
    const v = await this.params.heap.backend.read(this.scratch, 1);
    return Math.sqrt(v[0]!);
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

  private validate(): void {
    checkAdamWHyperparameters('AdamW', this);
  }
}
