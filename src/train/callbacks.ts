/**
 * What the trainer reports while it runs: the argument of each callback.
 */

/** Called after every step (synchronously; keep it cheap). */
export interface StepInfo {
  /** Steps completed, this one included. */
  step: number;
  /** Mean loss over the step's micro-batches (NaN/Inf when the step was skipped). */
  loss: number;
  lr: number;
  weightDecay: number;
  /** True when the update was not applied: a non-finite loss, or the optimizer's guard refused it (see `skipReason`). */
  skipped: boolean;
  /** Why a skipped step was skipped: a non-finite loss, a non-finite gradient, or an update that would overflow the weights. */
  skipReason?: 'loss' | 'gradient' | 'overflow';
  /** The global gradient norm before clipping (NaN when a non-finite loss skipped the step before it was computed). */
  gradNorm?: number;
  /** Non-finite losses in a row, this one included (0 after a good step). */
  nanStreak: number;
  /** Tokens this step trained on (B · T · gradAccum). */
  tokens: number;
  /** Wall time of this step. */
  seconds: number;
}

/** Called every `logEvery` steps (awaited). */
export interface LogInfo {
  step: number;
  /** The loss of this step. */
  loss: number;
  lr: number;
  /** Training tokens per second over the interval (evaluation and saving not counted). */
  tokensPerSecond: number;
  /** Estimated seconds to `iters` at the interval's speed. */
  etaSeconds: number;
}

/** Called after each evaluation (awaited). */
export interface EvalInfo {
  step: number;
  trainLoss: number;
  valLoss: number;
  /** exp(valLoss). */
  perplexity: number;
  /** Whether valLoss is the best so far. */
  best: boolean;
}

/** Called after each checkpoint save (awaited). */
export interface CheckpointInfo {
  step: number;
  path: string;
  isBest: boolean;
}

export interface TrainerCallbacks {
  onStep?: (info: StepInfo) => void;
  onLog?: (info: LogInfo) => void | Promise<void>;
  onEval?: (info: EvalInfo) => void | Promise<void>;
  onCheckpoint?: (info: CheckpointInfo) => void | Promise<void>;
}
