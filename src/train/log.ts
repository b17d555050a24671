/**
 * The JSON-lines run log (`--log-file`): one object per line, one line per event.
 *
 *   {"event":"step","step":10,"loss":3.91,"lr":0.0003,"tokens_per_s":5120}
 *   {"event":"eval","step":200,"train_loss":2.41,"val_loss":2.45}
 *   {"event":"checkpoint","step":200,"path":"runs/x/ckpt-200"}
 *   {"event":"done","step":600,"val_loss":2.01,"train_seconds":95.2,"tokens_per_s":4980}
 *
 * Quantisation-aware training adds (src/qat/README.md):
 *
 *   {"event":"quant_error","step":100,"layers":[{"name":"model.layers.0.self_attn.q_proj","precision":"ternary",
 *     "weight_sqnr_db":9.1,"activation_sqnr_db":37.8,"ternary":{"neg":0.31,"zero":0.38,"pos":0.31},
 *     "flip_rate":0.004,"scale":31.2}, ...]}                      every --error-every steps
 *   {"event":"calibration","step":0,"method":"ema","batches":4,"layers":[{"name":"…qkv_proj","clip":4.2}, ...]}
 *   {"event":"mixed_precision","precision":"fp","projections":["…down_proj"],"sensitivity":{…}}   once, at the start
 *
 * Monitoring (src/monitor) adds:
 *
 *   {"event":"config","step":0,"run":{…},"model":{…},"parameters":812160}     at the start of each (resumed) run
 *   {"event":"profile","steps":20,"ops":[…],"kernels":[…],…}                   with --profile, once its window is done
 *   {"event":"sample","step":1200,"prompt":"","text":"…"}                      the final sample
 *
 * A non-finite number is written as null (JSON has no NaN).
 */
import type { ProfileReport } from '../monitor/profiler.js';
import type { ProjectionQuantStats, SensitivityReport } from '../qat/index.js';
import type { FileSystem } from '../runtime/fs-types.js';
import { dirname } from '../runtime/fs-types.js';
import type { CheckpointInfo, EvalInfo, LogInfo, TrainerCallbacks } from './callbacks.js';
import type { StopReason } from './trainer.js';

export interface StepEvent { event: 'step'; step: number; loss: number; lr: number; tokens_per_s: number }
export interface EvalEvent { event: 'eval'; step: number; train_loss: number; val_loss: number }
export interface CheckpointEvent { event: 'checkpoint'; step: number; path: string }
export interface DoneEvent { event: 'done'; step: number; val_loss: number | null; train_seconds: number; tokens_per_s: number; /** Only on a run stopped by an interrupt. */ stop_reason?: Extract<StopReason, 'interrupted'> }
/** Error analysis: per projection SQNR of weights and activations, ternary fractions, flip rate, scale. */
export interface QuantErrorEvent { event: 'quant_error'; step: number; layers: ProjectionQuantStats[] }
/** Static activation clips measured (at the start, or an online refresh). */
export interface CalibrationEvent { event: 'calibration'; step: number; method: string; batches: number; layers: { name: string; clip: number }[] }
/** Projections kept in another precision by --auto-mixed-precision, with the sensitivity report that chose them. */
export interface MixedPrecisionEvent { event: 'mixed_precision'; precision: 'fp' | 'int8'; projections: string[]; sensitivity: SensitivityReport }
/** The run's resolved config and model shape, written when it starts (the report's "run config"). */
export interface ConfigEvent { event: 'config'; step: number; run: object; model: object; parameters: number }
/** Where the measured steps went (`--profile`). */
export interface ProfileEvent extends ProfileReport { event: 'profile' }
/** The text sampled after training. */
export interface SampleEvent { event: 'sample'; step: number; prompt: string; text: string }
export type RunEvent = StepEvent | EvalEvent | CheckpointEvent | DoneEvent | QuantErrorEvent | CalibrationEvent | MixedPrecisionEvent | ConfigEvent | ProfileEvent | SampleEvent;

/** One event as its JSON line (with the trailing newline). */
export function formatEvent(e: RunEvent): string {
  return JSON.stringify(e, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v)) + '\n';
}

/** Appends events to a JSON-lines file (created with its directory; an existing log is continued). */
export class JsonLinesLog {
  private ready: Promise<void> | undefined;

  constructor(readonly fs: FileSystem, readonly path: string) {}

  /** Append one event. */
  async write(e: RunEvent): Promise<void> {
    this.ready ??= this.fs.mkdirp(dirname(this.path));
    await this.ready;
    await this.fs.appendFile(this.path, formatEvent(e));
  }
}

/**
 * Trainer callbacks that append the `step`, `eval` and `checkpoint` events to `log`, then call
 * `hooks`' own (a training run and a fine-tuning run log the same events).
 */
export function loggingCallbacks(log: JsonLinesLog, hooks: TrainerCallbacks): Required<Omit<TrainerCallbacks, 'onStep'>> & Pick<TrainerCallbacks, 'onStep'> {
  return {
    onStep: hooks.onStep,
    onLog: async (i: LogInfo) => {
      await log.write({ event: 'step', step: i.step, loss: i.loss, lr: i.lr, tokens_per_s: i.tokensPerSecond });
      await hooks.onLog?.(i);
    },
    onEval: async (i: EvalInfo) => {
      await log.write({ event: 'eval', step: i.step, train_loss: i.trainLoss, val_loss: i.valLoss });
      await hooks.onEval?.(i);
    },
    onCheckpoint: async (i: CheckpointInfo) => {
      await log.write({ event: 'checkpoint', step: i.step, path: i.path });
      await hooks.onCheckpoint?.(i);
    },
  };
}
