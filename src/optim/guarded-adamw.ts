/**
 * What `AdamW` (./adamw.ts) and `AdamW8bit` (./adamw8bit.ts) share: the hyperparameters and the
 * step count, and one guarded step —
 *
 *   sumSquares of the gradients, the weights and the state (into a 4-float scratch)
 *   → the non-finite guard (./update-guard.ts) on their norms: refuse, or
 *   → clipScale (when clipping) → the subclass's fused update of each range with the clip factor
 *     read by the kernel from backend memory.
 *
 * A subclass says how it bounds ‖m‖ (`recordStateSquares`, `stateNorm`) and runs its kernels
 * (`update`); it allocates its state and the scratch in its constructor.
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

/** The hyperparameters of one update (the kernels' `AdamWParams` less the weight decay of a range). */
export interface AdamWStepParams {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  step: number;
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

export abstract class GuardedAdamW {
  readonly params: ParameterSet;
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  clipNorm: number;
  /** Steps taken (the bias-correction count of the last step). */
  stepCount = 0;
  /** scratch[0] = sum of squared grads, scratch[1] = clip factor, scratch[2..3] = sums of squared weights and of the state's ‖m‖ proxy (the guard). */
  protected abstract readonly scratch: Ptr;

  /** Sets and checks the hyperparameters (`who` names the optimizer in errors). */
  protected constructor(params: ParameterSet, options: AdamWOptions, private readonly who: string) {
    this.params = params;
    this.lr = options.lr;
    [this.beta1, this.beta2] = options.betas ?? [0.9, 0.95];
    this.eps = options.eps ?? 1e-8;
    this.weightDecay = options.weightDecay ?? 0.1;
    this.clipNorm = options.clipNorm ?? 0;
    this.validate();
  }

  /** Write into `out` a sum of squares whose `stateNorm` bounds ‖m‖ from above. */
  protected abstract recordStateSquares(out: Ptr): void;
  /** ‖m‖ (or a bound of it) from what `recordStateSquares` wrote. */
  protected abstract stateNorm(sumSquares: number): number;
  /** The fused update of every range; `gradScale` is the clip factor's pointer or 0. */
  protected abstract update(hp: AdamWStepParams, gradScale: Ptr): void;

  /** Zero every gradient (one `fill` over the gradient block). */
  zeroGrad(): void {
    this.params.zeroGrad();
  }

  /**
   * Apply one update from the accumulated gradients, unless it would write a NaN or Inf (a
   * non-finite gradient, or weights overflowing f32): then nothing changes (weights, state, the
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

  /** The global gradient norm (before clipping) seen by the last `step()`. Reads one value back. */
  async gradNorm(): Promise<number> {
    const v = await this.params.heap.backend.read(this.scratch, 1);
    return Math.sqrt(v[0]!);
  }

  /** The guard's inputs: sums of squares of the gradients, the weights and the state into the scratch. */
  private recordGuardSums(): void {
    this.validate();
    const p = this.params;
    const be = p.heap.backend;
    be.sumSquares(this.scratch, p.gradOffset, p.blockSize);
    be.sumSquares(this.scratch + 2, p.paramOffset, p.blockSize);
    this.recordStateSquares(this.scratch + 3);
  }

  private applyGuarded(sums: ArrayLike<number>): StepOutcome {
    const outcome = adamwGuard(
      { grad: Math.sqrt(sums[0]!), param: Math.sqrt(sums[2]!), state: this.stateNorm(sums[3]!) },
      { lr: this.lr, beta1: this.beta1, eps: this.eps, weightDecay: this.weightDecay, step: this.stepCount + 1, clip: this.clipNorm },
    );
    if (!outcome.applied) return outcome;
    this.stepCount++;
    let gradScale: Ptr = 0;
    if (this.clipNorm > 0) {
      this.params.heap.backend.clipScale(this.scratch + 1, this.scratch, this.clipNorm);
      gradScale = this.scratch + 1;
    }
    this.update({ lr: this.lr, beta1: this.beta1, beta2: this.beta2, eps: this.eps, step: this.stepCount }, gradScale);
    return outcome;
  }

  private validate(): void {
    checkAdamWHyperparameters(this.who, this);
  }
}
