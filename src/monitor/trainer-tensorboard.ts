/**
 * What a training writes to TensorBoard, as trainer callbacks around the user's own:
 *
 *   every step         train/loss, train/lr, train/weight_decay, train/grad_norm (before clipping), train/step_seconds
 *   every log          train/tokens_per_s
 *   every evaluation   val/loss, val/perplexity, eval/train_loss
 *   every error report quant/<projection>/{weight_sqnr_db, activation_sqnr_db, flip_rate, ternary_neg, ternary_zero, ternary_pos};
 *                      histograms weights/<projection> (latent f32) and codes/<projection> (−1/0/+1)
 *   once               config (the run config as JSON text)
 *
 * Values are encoded as they arrive and appended at each awaited callback (log, eval, checkpoint).
 */
import type { QuantErrorEvent } from '../train/log.js';
import type { CheckpointInfo, EvalInfo, LogInfo, StepInfo, TrainerCallbacks } from '../train/callbacks.js';
import type { ParameterSet } from '../tensor/parameters.js';
import { ternaryHistogram } from './histogram.js';
import type { TensorBoardWriter } from './tensorboard.js';

/** The optimizer's part the monitor reads (AdamW and SGD have it). */
export interface GradNormSource {
  gradNorm(): Promise<number>;
}

/** Trainer callbacks that log to `writer` and then call `inner`'s. */
export function tensorBoardCallbacks(writer: TensorBoardWriter, inner: TrainerCallbacks, optimizer?: GradNormSource): Required<TrainerCallbacks> {
  const reads: Promise<void>[] = [];
  const flush = async (): Promise<void> => {
    if (reads.length > 0) await Promise.all(reads.splice(0));
    await writer.flush();
  };
  return {
    onStep: (i: StepInfo) => {
      writer.scalars(i.step, { 'train/loss': i.loss, 'train/lr': i.lr, 'train/weight_decay': i.weightDecay, 'train/step_seconds': i.seconds });
      if (optimizer && !i.skipped) reads.push(optimizer.gradNorm().then((g) => writer.scalar('train/grad_norm', g, i.step)));
      inner.onStep?.(i);
    },
    onLog: async (i: LogInfo) => {
      writer.scalar('train/tokens_per_s', i.tokensPerSecond, i.step);
      await flush();
      await inner.onLog?.(i);
    },
    onEval: async (i: EvalInfo) => {
      writer.scalars(i.step, { 'val/loss': i.valLoss, 'val/perplexity': i.perplexity, 'eval/train_loss': i.trainLoss });
      await flush();
      await inner.onEval?.(i);
    },
    onCheckpoint: async (i: CheckpointInfo) => {
      await flush();
      await inner.onCheckpoint?.(i);
    },
  };
}

/**
 * An error-analysis report as scalars per projection, plus histograms of each projection's
 * latent weights (`<name>.weight` in `params`, when present) and of its ternary codes.
 */
export async function writeQuantError(writer: TensorBoardWriter, e: QuantErrorEvent, params?: ParameterSet): Promise<void> {
  for (const l of e.layers) {
    const p = `quant/${l.name}`;
    writer.scalars(e.step, {
      [`${p}/weight_sqnr_db`]: l.weight_sqnr_db,
      [`${p}/activation_sqnr_db`]: l.activation_sqnr_db,
      [`${p}/flip_rate`]: l.flip_rate,
      [`${p}/ternary_neg`]: l.ternary.neg,
      [`${p}/ternary_zero`]: l.ternary.zero,
      [`${p}/ternary_pos`]: l.ternary.pos,
    });
    const weight = `${l.name}.weight`;
    if (params?.has(weight)) {
      const t = params.getParam(weight);
      writer.histogram(`weights/${l.name}`, await t.data(), e.step);
      if (l.precision === 'ternary') {
        const n = t.size;
        const neg = Math.round(l.ternary.neg * n);
        const pos = Math.round(l.ternary.pos * n);
        writer.histogram(`codes/${l.name}`, ternaryHistogram({ neg, zero: n - neg - pos, pos }), e.step);
      }
    }
  }
  await writer.flush();
}

/** The run config as a JSON code block in the Text tab (step 0). */
export function writeRunConfig(writer: TensorBoardWriter, config: unknown, step = 0): void {
  writer.text('config', '```json\n' + JSON.stringify(config, null, 2) + '\n```', step);
}
