/**
 * The training loop.
 *
 *   for each step:  lr, wd = schedule(step)
 *                   zeroGrad
 *                   gradAccum x { sample batch (seeded Rng) → forward → read loss → backward (loss / gradAccum) → arena reset }
 *                   loss finite ? optimizer.step() (global-norm clip, non-finite guard inside) : skip
 *                   a skipped update (non-finite loss, gradient, or an update that would overflow) counts the streak
 *                   a turn of the host's event loop when a signal is given (so an abort is seen after this step)
 *                   every logEvery: onLog;  every evalEvery: evaluate;  every saveEvery: checkpoint
 *
 * An `extension` (QAT, distillation: ./extension.ts) wraps each step: `beforeStep` before it, its
 * `loss` instead of the model's, `afterUpdate` after the update, `afterStep` after it (counted in
 * the step's time), `beforeEval` before evaluations, and its `state()` in every checkpoint.
 *
 * Reading values back: the loss of each micro-batch is read synchronously (one float) before the
 * update, because a NaN/Inf loss must stop the update from being applied, and so are the
 * optimizer guard's three sums of squares; callbacks and file I/O are awaited once per log, eval
 * or save interval (DESIGN.md decision 8). Nothing non-finite reaches the weights, so nothing
 * non-finite is saved (checkpoint.ts refuses it too).
 *
 * Determinism: the data Rng, the optimizer state, the step, the NaN streak and the early-stopping
 * counters are saved in every checkpoint; the schedule is a function of the step; evaluation uses
 * a fixed set of batches from its own Rng. So `restore(checkpoint)` + `train()` produces the same
 * losses, bit for bit, as a run that was never interrupted.
 */
import { scale } from '../autograd/ops/elementwise.js';
import { noGrad } from '../autograd/tape.js';
import { readsAreAsync } from '../backend/index.js';
import type { Batch, Split, TextDataset } from '../data/dataset.js';
import type { JsonObject, JsonValue, LoadedCheckpoint } from '../io/checkpoint.js';
import { CheckpointManager } from '../io/checkpoint-manager.js';
import type { TensorBoardWriter } from '../monitor/tensorboard.js';
import { tensorBoardCallbacks } from '../monitor/trainer-tensorboard.js';
import { type Schedule, type ScheduleConfig, createSchedule } from '../optim/schedule.js';
import type { StepOutcome } from '../optim/update-guard.js';
import type { FileSystem } from '../runtime/fs-types.js';
import type { Heap } from '../tensor/heap.js';
import type { ParameterSet } from '../tensor/parameters.js';
import type { Tensor } from '../tensor/tensor.js';
import { Rng } from '../util/rng.js';
import type { CheckpointInfo, EvalInfo, StepInfo, TrainerCallbacks } from './callbacks.js';
import type { StepExtension } from './extension.js';
import { modelConfigOf } from './model.js';
import {
  type OptimizerMeta, type TrainerOptimizer, exportModelTensors, exportOptimizerTensors, importModelTensors, importOptimizerTensors,
} from './state.js';

/** A model the trainer can train: parameters and `forward(tokens, targets) → { loss }`. */
export interface TrainableModel {
  readonly params: ParameterSet;
  /** A GPT's resolved config; recorded in checkpoints as `config.model` unless `options.config` has one. */
  readonly config?: object;
  forward(tokens: Tensor, targets?: Tensor): { loss?: Tensor };
}

export type { CheckpointInfo, EvalInfo, LogInfo, StepInfo, TrainerCallbacks } from './callbacks.js';
export type { StepExtension } from './extension.js';

/** Options of a `Trainer`. Counts are in optimizer steps. */
export interface TrainerOptions extends TrainerCallbacks {
  /** The step training ends at (a resumed run counts the steps already done). */
  iters: number;
  /** Sequences per micro-batch B. */
  batchSize: number;
  /** Tokens per sequence T (at most the model's context length; both splits must hold T + 1 tokens). */
  contextLength: number;
  /** Micro-batches per step; their gradients are averaged (default 1). */
  gradAccum?: number;
  /** LR / weight-decay schedule, e.g. `{ kind: 'cosine', peakLr: 1e-3, warmup: 100, totalSteps: iters }`. */
  schedule: ScheduleConfig | Schedule;
  /** Seed of the data order and of the fixed evaluation batches (default 1337). */
  seed?: number;
  /** Evaluate every N steps; 0: only at the end (default 0). */
  evalEvery?: number;
  /** Batches per split in each evaluation (default 20). */
  evalIters?: number;
  /** Default 10. */
  logEvery?: number;
  /** Checkpoint every N steps; 0: only at the end (default 0). Needs `checkpoints`. */
  saveEvery?: number;
  /** Where checkpoints go (`<dir>/ckpt-<step>`, `<dir>/best`); none are written without it. */
  checkpoints?: { fs: FileSystem; dir: string; keep?: number };
  /** Stop after this many evaluations without a better val loss; 0: never (default 0). */
  patience?: number;
  /** An improvement must beat the best val loss by more than this (default 0). */
  minDelta?: number;
  /** Stop with a `TrainingError` after this many non-finite losses in a row (default 5). */
  maxNanSteps?: number;
  /** Stored as trainer.json `config` (the model config, run options). */
  config?: JsonObject;
  /** Hooks that change the step (QAT, distillation; see `StepExtension`). */
  extension?: StepExtension;
  /** Also log to TensorBoard: scalars every step, evaluations (see src/monitor/trainer-tensorboard.ts); flushed at each log, eval and save. */
  tensorboard?: TensorBoardWriter;
}

/**
 * Why `train()` returned: all `iters` done, early stopping, `untilStep` reached, or its `signal`
 * aborted (the step in flight finishes and a checkpoint is saved, so `resume` continues exactly).
 */
export type StopReason = 'completed' | 'early-stop' | 'until' | 'interrupted';

export interface TrainResult {
  step: number;
  stopReason: StopReason;
  /** The evaluation at the last step (undefined when training stopped at `untilStep` or was interrupted). */
  lastEval?: EvalInfo;
  bestValLoss: number | null;
  /** The last checkpoint written (or resumed from), if any: always one with finite weights and state. */
  checkpoint?: string;
  /** Wall time of this `train()` call, evaluation and saving included. */
  trainSeconds: number;
  /** Training tokens per second of step time. */
  tokensPerSecond: number;
}

/** Training had to stop (a streak of NaN/Inf losses); the message says what happened and what to try. */
export class TrainingError extends Error {
  override readonly name = 'TrainingError';
}

const now = (): number => (globalThis.performance ?? Date).now();

export class Trainer {
  readonly model: TrainableModel;
  readonly heap: Heap;
  readonly dataset: TextDataset;
  readonly optimizer: TrainerOptimizer;
  readonly schedule: Schedule;
  readonly options: Readonly<TrainerOptions>;
  /** Optimizer steps completed (skipped steps count). */
  step = 0;
  private rng: Rng;
  private readonly seed: number;
  private readonly gradAccum: number;
  private nanStreak = 0;
  private bestVal: number | null = null;
  private evalsSinceBest = 0;
  private lastEval: EvalInfo | undefined;
  private lastCheckpoint: string | undefined;
  private lastSavedStep = -1;
  /** Why the last update was skipped, for the NaN-streak message. */
  private lastSkip: { reason: 'loss' | 'gradient' | 'overflow'; detail: string } | undefined;
  /** An evaluation (and save) that an interrupt skipped at this step, done first when training continues. */
  private pendingEval = false;
  private evalBatches: Record<Split, Batch[]> | undefined;
  private readonly manager: CheckpointManager | undefined;
  private readonly batch: Batch;

  constructor(init: { model: TrainableModel; dataset: TextDataset; optimizer: TrainerOptimizer; options: TrainerOptions }) {
    const { model, dataset, optimizer, options } = init;
    this.model = model;
    this.heap = model.params.heap;
    this.dataset = dataset;
    this.optimizer = optimizer;
    this.options = options.tensorboard ? { ...options, ...tensorBoardCallbacks(options.tensorboard, options, optimizer) } : options;
    if (optimizer.params !== model.params) throw new Error('Trainer: the optimizer was built over another parameter set than the model\'s');
    for (const key of ['iters', 'batchSize', 'contextLength'] as const) positiveInt(key, options[key]);
    this.gradAccum = options.gradAccum ?? 1;
    positiveInt('gradAccum', this.gradAccum);
    for (const key of ['evalEvery', 'saveEvery', 'patience'] as const) nonNegativeInt(key, options[key] ?? 0);
    for (const key of ['evalIters', 'logEvery', 'maxNanSteps'] as const) if (options[key] !== undefined) positiveInt(key, options[key]);
    this.seed = options.seed ?? 1337;
    nonNegativeInt('seed', this.seed);
    this.schedule = typeof options.schedule === 'function' ? options.schedule : createSchedule(options.schedule);
    dataset.requireContext('train', options.contextLength);
    dataset.requireContext('val', options.contextLength);
    this.rng = new Rng(this.seed);
    this.batch = { inputs: new Int32Array(options.batchSize * options.contextLength), targets: new Int32Array(options.batchSize * options.contextLength) };
    const ck = options.checkpoints;
    this.manager = ck ? new CheckpointManager(ck.fs, ck.dir, { keepLast: ck.keep ?? 3 }) : undefined;
  }

  /** The best val loss seen so far (null before the first evaluation). */
  get bestValLoss(): number | null {
    return this.bestVal;
  }

  /**
   * Train until `iters` (or `untilStep`, to stop early as a crash would), early stopping, a NaN
   * streak (throws `TrainingError`), or until `signal` aborts: then the current step completes,
   * a checkpoint of it is saved (when checkpoints are on) and `stopReason` is `'interrupted'`.
   */
  async train(opts: { untilStep?: number; signal?: AbortSignal } = {}): Promise<TrainResult> {
    const o = this.options;
    const end = Math.min(o.iters, opts.untilStep ?? Infinity);
    const logEvery = o.logEvery ?? 10;
    const evalEvery = o.evalEvery ?? 0;
    const saveEvery = o.saveEvery ?? 0;
    const tokensPerStep = o.batchSize * o.contextLength * this.gradAccum;
    const start = now();
    let stepSeconds = 0;
    let stepsDone = 0;
    let intervalSeconds = 0;
    let intervalSteps = 0;
    let stopReason: StopReason = 'completed';
    const ext = o.extension;
    const saveDueAt = (s: number) => this.manager !== undefined && saveEvery > 0 && s % saveEvery === 0 && s < o.iters;
    const evalDueAt = (s: number) => (evalEvery > 0 && s % evalEvery === 0) || saveDueAt(s);
    if (this.pendingEval) {
      // resumed from an interrupt at an eval/save step: do what the uninterrupted run did there
      this.pendingEval = false;
      if (await this.evaluateAndTrack()) stopReason = 'early-stop';
      if (saveDueAt(this.step)) await this.save();
    }
    if (opts.signal?.aborted && this.step < end) stopReason = 'interrupted'; // before the first step: stop at once
    while (this.step < end && stopReason === 'completed') {
      const t0 = now();
      await ext?.beforeStep?.(this.step);
      const info = readsAreAsync(this.heap.backend) ? await this.trainStepAsync() : this.trainStep();
      await ext?.afterStep?.(this.step);
      if (ext?.beforeStep || ext?.afterStep) info.seconds = (now() - t0) / 1000; // QAT work per step counts as step time
      stepSeconds += info.seconds;
      intervalSeconds += info.seconds;
      stepsDone++;
      intervalSteps++;
      o.onStep?.(info);
      if (info.skipped && this.nanStreak >= (o.maxNanSteps ?? 5)) throw this.nanStreakError(info);
      // a signal (Ctrl-C, SIGTERM) is an event of the host's loop: give it one turn per step
      if (opts.signal) await yieldToHost();
      const s = this.step;
      const interrupted = opts.signal?.aborted === true && s < end;
      if (s % logEvery === 0 || s === end || interrupted) {
        const perStep = intervalSeconds / intervalSteps;
        await o.onLog?.({ step: s, loss: info.loss, lr: info.lr, tokensPerSecond: tokensPerStep / perStep, etaSeconds: (o.iters - s) * perStep });
        intervalSeconds = 0;
        intervalSteps = 0;
      }
      if (interrupted) {
        // stop after this step: its evaluation (if due) runs first when the run is resumed
        this.pendingEval = evalDueAt(s);
        stopReason = 'interrupted';
        break;
      }
      if (evalDueAt(s)) {
        if (await this.evaluateAndTrack()) stopReason = 'early-stop';
      }
      if (saveDueAt(s)) await this.save();
    }
    if (this.step < o.iters && stopReason === 'completed') stopReason = 'until';
    if (stopReason === 'interrupted') {
      if (this.manager && this.lastSavedStep !== this.step) await this.save();
    } else if (stopReason !== 'until') {
      if (this.lastEval?.step !== this.step) await this.evaluateAndTrack();
      if (this.manager && this.lastSavedStep !== this.step) await this.save();
    }
    return {
      step: this.step,
      stopReason,
      lastEval: stopReason === 'until' || stopReason === 'interrupted' ? undefined : this.lastEval,
      bestValLoss: this.bestVal,
      checkpoint: this.lastCheckpoint,
      trainSeconds: (now() - start) / 1000,
      tokensPerSecond: stepsDone > 0 ? (tokensPerStep * stepsDone) / stepSeconds : 0,
    };
  }

  /** One optimizer step over `gradAccum` micro-batches; applies the update only if every loss was finite. */
  trainStep(): StepInfo {
    const t0 = now();
    const { lr, weightDecay, losses } = this.accumulateGradients((loss) => loss.itemSync());
    const loss = this.meanLoss(losses);
    // refuses an update that would write NaN/Inf (update-guard.ts)
    return this.finishStep(t0, lr, weightDecay, loss, Number.isFinite(loss) ? this.optimizer.step() : null);
  }

  /**
   * `trainStep` for a backend whose reads are asynchronous (webgpu; `train()` picks it): the
   * micro-batch losses are read in one batch after the backward passes are recorded, and the
   * optimizer's guard is awaited. Same step, same numbers on the CPU backends.
   */
  async trainStepAsync(): Promise<StepInfo> {
    const t0 = now();
    const { lr, weightDecay, losses } = this.accumulateGradients((loss) => loss.item());
    const loss = this.meanLoss(await Promise.all(losses));
    const opt = this.optimizer;
    if (!('stepAsync' in opt)) throw new Error(`Trainer: the SGD optimizer reads its clipping factor synchronously, which the ${this.heap.backend.name} backend cannot; use AdamW or a CPU backend (--backend wasm)`);
    const outcome = Number.isFinite(loss) ? await opt.stepAsync() : null;
    return this.finishStep(t0, lr, weightDecay, loss, outcome);
  }

  /** zeroGrad, then forward + backward of every micro-batch; `read` starts each loss's read before the arena reset. */
  private accumulateGradients<R>(read: (loss: Tensor) => R): { lr: number; weightDecay: number; losses: R[] } {
    const { batchSize: B, contextLength: T } = this.options;
    const K = this.gradAccum;
    const { lr, weightDecay } = this.schedule(this.step);
    const opt = this.optimizer;
    const ext = this.options.extension;
    opt.lr = lr;
    opt.weightDecay = weightDecay;
    opt.zeroGrad();
    const losses: R[] = [];
    for (let k = 0; k < K; k++) {
      const { inputs, targets } = this.dataset.sampleBatch('train', B, T, this.rng, this.batch);
      try {
        const loss = ext?.loss
          ? ext.loss(this.heap.indices(inputs, [B, T]), this.heap.indices(targets, [B, T]), this.step)
          : this.forwardLoss(inputs, targets, B, T);
        losses.push(read(loss));
        (K > 1 ? scale(loss, 1 / K) : loss).backward();
      } finally {
        this.heap.resetArena();
      }
    }
    return { lr, weightDecay, losses };
  }

  private meanLoss(losses: number[]): number {
    let lossSum = 0;
    for (const l of losses) lossSum += l;
    return this.gradAccum > 1 ? lossSum / this.gradAccum : lossSum;
  }

  /** The update's outcome (null: not attempted, the loss was not finite) into the step's info. */
  private finishStep(t0: number, lr: number, weightDecay: number, loss: number, outcome: StepOutcome | null): StepInfo {
    const { batchSize: B, contextLength: T } = this.options;
    const K = this.gradAccum;
    const ext = this.options.extension;
    let gradNorm = NaN;
    if (outcome === null) this.lastSkip = { reason: 'loss', detail: `the loss was ${loss}` };
    else {
      gradNorm = outcome.gradNorm;
      if (outcome.applied) {
        this.lastSkip = undefined;
        if (ext?.afterUpdate) {
          ext.afterUpdate(this.step);
          this.heap.resetArena();
        }
      } else {
        this.lastSkip = { reason: outcome.reason, detail: `the loss was ${loss} but ${outcome.detail}` };
      }
    }
    const skipped = this.lastSkip !== undefined;
    this.nanStreak = skipped ? this.nanStreak + 1 : 0;
    this.step++;
    return {
      step: this.step, loss, lr, weightDecay, skipped, nanStreak: this.nanStreak, tokens: B * T * K, seconds: (now() - t0) / 1000,
      gradNorm, ...(skipped ? { skipReason: this.lastSkip!.reason } : {}),
    };
  }

  /** Mean train and val loss over the fixed evaluation batches, without recording gradients. */
  async evaluate(): Promise<{ trainLoss: number; valLoss: number }> {
    const { batchSize: B, contextLength: T } = this.options;
    this.options.extension?.beforeEval?.(this.step);
    if (!this.evalBatches) {
      const rng = new Rng(this.seed + 7919); // its own stream: evaluating never moves the data Rng
      const n = this.options.evalIters ?? 20;
      const draw = (split: Split) => Array.from({ length: n }, () => this.dataset.sampleBatch(split, B, T, rng));
      this.evalBatches = { train: draw('train'), val: draw('val') };
    }
    // every batch's loss read starts before its arena reset; one wait for all (a GPU round trip, not one per batch)
    const mean = async (split: Split): Promise<number> => {
      const reads: Promise<number>[] = [];
      for (const b of this.evalBatches![split]) {
        try {
          reads.push(noGrad(() => this.forwardLoss(b.inputs, b.targets, B, T)).item());
        } finally {
          this.heap.resetArena();
        }
      }
      let sum = 0;
      for (const v of await Promise.all(reads)) sum += v;
      return sum / this.evalBatches![split].length;
    };
    const trainLoss = await mean('train');
    return { trainLoss, valLoss: await mean('val') };
  }

  /** Save a checkpoint of the current step (weights, optimizer state, trainer state); returns its path. */
  async save(): Promise<string> {
    if (!this.manager) throw new Error('Trainer.save: no checkpoint directory; pass options.checkpoints = { fs, dir }');
    const opt = await exportOptimizerTensors(this.optimizer);
    const metric = this.lastEval?.step === this.step ? this.lastEval.valLoss : null;
    const res = await this.manager.save({
      model: await exportModelTensors(this.model.params),
      optimizer: opt.tensors,
      trainer: {
        step: this.step,
        config: this.checkpointConfig(),
        rng: this.rng.state(),
        scheduler: jsonSafe(this.schedule.config) as JsonObject,
        metric: metric !== null && Number.isFinite(metric) ? metric : null,
        tokenizer: this.dataset.tokenizer.toJSON(),
        extra: {
          optimizer: { ...opt.meta },
          nanStreak: this.nanStreak,
          bestValLoss: this.bestVal,
          evalsSinceBest: this.evalsSinceBest,
          seed: this.seed,
          ...(this.pendingEval ? { pendingEval: true } : {}),
          ...(this.options.extension?.state ? { extension: this.options.extension.state() } : {}),
        },
      },
    });
    this.lastCheckpoint = res.path;
    this.lastSavedStep = this.step;
    await this.options.onCheckpoint?.({ step: this.step, path: res.path, isBest: res.isBest });
    return res.path;
  }

  /**
   * Continue from a checkpoint made by `save()`: weights, optimizer state, step, data Rng and
   * counters. The model shape must match (errors name the tensor and both shapes).
   */
  restore(ckpt: LoadedCheckpoint): void {
    const source = `checkpoint ${ckpt.dir}`;
    const t = ckpt.trainer;
    const extra = (t.extra ?? {}) as { optimizer?: OptimizerMeta; nanStreak?: number; bestValLoss?: number | null; evalsSinceBest?: number; seed?: number; pendingEval?: boolean; extension?: JsonObject };
    if (!ckpt.optimizer || !extra.optimizer) throw new Error(`${source} has no optimizer state (a weights-only export); training cannot resume from it`);
    if (t.step > this.options.iters) throw new Error(`${source} is at step ${t.step}, past iters ${this.options.iters}; raise iters to continue`);
    if (extra.seed !== undefined && extra.seed !== this.seed) throw new Error(`${source} was trained with seed ${extra.seed}, this run has seed ${this.seed}; use the same seed to resume`);
    importModelTensors(this.model.params, ckpt.model, `${source}/model.safetensors`);
    importOptimizerTensors(this.optimizer, ckpt.optimizer, extra.optimizer, `${source}/optimizer.safetensors`);
    this.options.extension?.restore?.(extra.extension, `${source}/trainer.json`);
    this.rng = Rng.fromState(t.rng);
    this.step = t.step;
    this.nanStreak = extra.nanStreak ?? 0;
    this.bestVal = extra.bestValLoss ?? null;
    this.evalsSinceBest = extra.evalsSinceBest ?? 0;
    this.pendingEval = extra.pendingEval === true;
    this.lastEval = undefined;
    this.lastCheckpoint = ckpt.dir;
    this.lastSavedStep = t.step;
  }

  /** trainer.json `config`: `options.config`, with `model` filled in from a GPT's config if missing. */
  private checkpointConfig(): JsonObject {
    const given = this.options.config ?? {};
    const cfg = this.model.config as { vocabSize?: unknown } | undefined;
    if (given.model !== undefined || typeof cfg?.vocabSize !== 'number') return given;
    return { ...given, model: { ...modelConfigOf(cfg) } };
  }

  private forwardLoss(inputs: Int32Array, targets: Int32Array, B: number, T: number): Tensor {
    const { loss } = this.model.forward(this.heap.indices(inputs, [B, T]), this.heap.indices(targets, [B, T]));
    if (!loss) throw new Error('Trainer: model.forward returned no loss; it must compute the loss when given targets');
    return loss;
  }

  /** Evaluate, update best / patience, call onEval. Returns true when early stopping triggers. */
  private async evaluateAndTrack(): Promise<boolean> {
    const { trainLoss, valLoss } = await this.evaluate();
    const minDelta = this.options.minDelta ?? 0;
    const best = Number.isFinite(valLoss) && (this.bestVal === null || valLoss < this.bestVal - minDelta);
    if (best) {
      this.bestVal = valLoss;
      this.evalsSinceBest = 0;
    } else {
      this.evalsSinceBest++;
    }
    this.lastEval = { step: this.step, trainLoss, valLoss, perplexity: Math.exp(valLoss), best };
    await this.options.onEval?.(this.lastEval);
    const patience = this.options.patience ?? 0;
    return patience > 0 && this.evalsSinceBest >= patience;
  }

  private nanStreakError(info: StepInfo): TrainingError {
    const first = info.step - this.nanStreak + 1;
    const kept = this.lastCheckpoint ? `the last checkpoint, ${this.lastCheckpoint}, is intact (its weights and state are finite)` : 'no checkpoint was written';
    const what = this.lastSkip?.reason === 'loss' || this.lastSkip === undefined
      ? `the loss was ${info.loss} (not finite) for ${this.nanStreak} steps in a row`
      : `${this.nanStreak} updates in a row could not be applied (at step ${info.step} ${this.lastSkip.detail})`;
    return new TrainingError(
      `training stopped at step ${info.step}: ${what} (steps ${first}-${info.step}; those updates were skipped); ${kept}. ` +
        'Lower the learning rate (--lr), turn on gradient clipping (--clip 1) or check the data.',
    );
  }
}

/** One turn of the host's event loop (signals, worker messages): setImmediate, else a MessageChannel, else a timer. */
function yieldToHost(): Promise<void> {
  const g = globalThis as { setImmediate?: (f: () => void) => unknown };
  if (typeof g.setImmediate === 'function') return new Promise((resolve) => void g.setImmediate!(resolve));
  if (typeof MessageChannel === 'function') {
    return new Promise((resolve) => {
      const ch = new MessageChannel();
      ch.port1.onmessage = () => {
        ch.port1.close();
        resolve();
      };
      ch.port2.postMessage(0);
    });
  }
  return new Promise((resolve) => setTimeout(resolve, 0));
}

function positiveInt(name: string, v: unknown): void {
  if (!(Number.isSafeInteger(v) && (v as number) > 0)) throw new Error(`Trainer: ${name} must be a positive integer, got ${String(v)}`);
}

function nonNegativeInt(name: string, v: unknown): void {
  if (!(Number.isSafeInteger(v) && (v as number) >= 0)) throw new Error(`Trainer: ${name} must be a non-negative integer, got ${String(v)}`);
}

/** A JSON value with Infinity and NaN as null. */
function jsonSafe(v: unknown): JsonValue {
  return JSON.parse(JSON.stringify(v, (_k, x: unknown) => (typeof x === 'number' && !Number.isFinite(x) ? null : x))) as JsonValue;
}
