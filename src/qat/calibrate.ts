/**
 * Activation calibration: static per-layer clip values for the int8 activation quantiser,
 * measured on a few batches (absmax, a percentile of |x|, or an EMA of the batch absmax), and
 * refreshed every K steps during training (online calibration). A layer built with
 * `activationScale: 'static'` quantises every token with `s = 127 / clip`; values beyond the
 * clip saturate at ±127, which the clipped activation STE (`activationSte: 'clipped'`) accounts for.
 */
import { noGrad } from '../autograd/tape.js';
import type { TokenBatch } from '../optim/train-step.js';
import type { Tensor } from '../tensor/tensor.js';
import { type QatModel, bitLinearLayers } from './controller.js';

/** How a clip value is computed from the observed |x| of a layer's quantiser input. */
export type CalibrationMethod = 'absmax' | 'percentile' | 'ema';

/** Options of {@link calibrate}. */
export interface CalibrateOptions {
  /** `'absmax'` (max over batches, default), `'percentile'` (mean over batches of the p-th percentile of |x|), `'ema'`. */
  method?: CalibrationMethod;
  /** Percentile in (0, 100] for `'percentile'`. Default 99.99. */
  percentile?: number;
  /** EMA momentum in [0, 1) for `'ema'`: `c ← m·c + (1 − m)·absmax(batch)`. Default 0.9. */
  momentum?: number;
  /**
   * Whether an EMA starts from the layers' current clip values (online refresh; default true) or
   * from the first batch's absmax. Ignored by the other methods.
   */
  continueEma?: boolean;
}

/** What `calibrate` measured: the clip value of every BitLinear layer (by layer name) and whether it was written. */
export interface CalibrationResult {
  method: CalibrationMethod;
  batches: number;
  layers: { name: string; clip: number; written: boolean }[];
}

/** A model that runs a forward pass (a GPT). */
export interface ForwardModel extends QatModel {
  forward(tokens: Tensor, targets?: Tensor): { logits: Tensor; loss?: Tensor };
}

function resolve(options: CalibrateOptions): Required<CalibrateOptions> {
  const method = options.method ?? 'absmax';
  if (method !== 'absmax' && method !== 'percentile' && method !== 'ema') throw new Error(`calibrate: method must be 'absmax', 'percentile' or 'ema', got ${String(method)}`);
  const percentile = options.percentile ?? 99.99;
  if (!(percentile > 0 && percentile <= 100)) throw new Error(`calibrate: percentile must be in (0, 100], got ${String(percentile)}`);
  const momentum = options.momentum ?? 0.9;
  if (!(momentum >= 0 && momentum < 1)) throw new Error(`calibrate: momentum must be in [0, 1), got ${String(momentum)}`);
  return { method, percentile, momentum, continueEma: options.continueEma ?? true };
}

/** max |x|. */
export function absMax(x: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i]!));
  return m;
}

/** The p-th percentile of |x| (nearest rank on the sorted magnitudes). */
export function absPercentile(x: ArrayLike<number>, p: number): number {
  const a = Float64Array.from(x, Math.abs).sort();
  if (a.length === 0) return 0;
  const rank = Math.min(a.length - 1, Math.max(0, Math.ceil((p / 100) * a.length) - 1));
  return a[rank]!;
}

/**
 * Calibrate static activation clips on `batches`: runs the model forward (no gradient) on each,
 * observes every BitLinear layer's quantiser input, and writes the clip to each layer built with
 * `activationScale: 'static'` (its `…input_clip` parameter). Returns the clip of every layer.
 * Resets the heap's arena after each batch: call it between training steps.
 *
 * @example
 * const model = new GPT({ ...shape, bitlinear: true, bitlinearOptions: { activationScale: 'static', activationSte: 'clipped' } });
 * await calibrate(model, evalBatches.slice(0, 8), { method: 'percentile', percentile: 99.9 });
 */
export async function calibrate(model: ForwardModel, batches: Iterable<TokenBatch>, options: CalibrateOptions = {}): Promise<CalibrationResult> {
  const o = resolve(options);
  const entries = bitLinearLayers(model);
  if (entries.length === 0) throw new Error('calibrate: the model has no BitLinear layers; build it with bitlinear: true');
  const heap = model.params.heap;
  const be = heap.backend;
  const current: number[] = [];
  for (const e of entries) current.push(e.layer.inputClip ? (await be.read(e.layer.inputClip.offset, 1))[0]! : 0);
  const clip = entries.map((_, i) => (o.method === 'ema' && o.continueEma && current[i]! > 0 ? current[i]! : NaN));
  const seen: (Tensor | null)[] = entries.map(() => null);
  let count = 0;
  try {
    entries.forEach((e, i) => { e.layer.observe = (xn) => { seen[i] = xn; }; });
    for (const batch of batches) {
      checkBatch(batch);
      seen.fill(null);
      noGrad(() => model.forward(heap.indices(batch.tokens, [batch.B, batch.T])));
      for (let i = 0; i < entries.length; i++) {
        const xn = seen[i];
        if (!xn) throw new Error(`calibrate: layer ${entries[i]!.name} did not run in the forward pass`);
        const values = await xn.data();
        const stat = o.method === 'percentile' ? absPercentile(values, o.percentile) : absMax(values);
        const prev = clip[i]!;
        if (o.method === 'absmax') clip[i] = Number.isNaN(prev) ? stat : Math.max(prev, stat);
        else if (o.method === 'percentile') clip[i] = (Number.isNaN(prev) ? 0 : prev) + stat; // mean below
        else clip[i] = Number.isNaN(prev) ? stat : o.momentum * prev + (1 - o.momentum) * stat;
      }
      heap.resetArena();
      count++;
    }
  } finally {
    for (const e of entries) e.layer.observe = null;
  }
  if (count === 0) throw new Error('calibrate: no batches given; pass at least one batch');
  const layers = entries.map((e, i) => {
    const c = o.method === 'percentile' ? clip[i]! / count : clip[i]!;
    if (e.layer.inputClip) be.write(e.layer.inputClip.offset, [c]);
    return { name: e.name, clip: c, written: e.layer.inputClip !== null };
  });
  return { method: o.method, batches: count, layers };
}

function checkBatch(b: TokenBatch): void {
  if (!b || !(b.tokens instanceof Int32Array) || !(Number.isInteger(b.B) && b.B > 0 && Number.isInteger(b.T) && b.T > 0) || b.tokens.length !== b.B * b.T) {
    throw new Error('calibrate: each batch must be { tokens: Int32Array of B*T ids, targets, B, T }');
  }
}

/** Options of an {@link OnlineCalibrator}: refresh every `every` steps with `calibrate`'s options. */
export interface OnlineCalibrationOptions extends CalibrateOptions {
  /** Steps between refreshes (K > 0). */
  every: number;
}

/**
 * Online calibration: every K steps, recalibrate the static clips on a batch (by default an EMA
 * that continues from the current clips, so the scales track the drifting activations).
 *
 * @example
 * const online = new OnlineCalibrator(model, { every: 100, method: 'ema', momentum: 0.9 });
 * // at the start of a step, before its forward:
 * await online.maybeRefresh(step, batch);
 */
export class OnlineCalibrator {
  readonly every: number;
  readonly options: CalibrateOptions;

  constructor(readonly model: ForwardModel, options: OnlineCalibrationOptions) {
    if (!(Number.isInteger(options.every) && options.every > 0)) throw new Error(`OnlineCalibrator: every must be a positive integer (steps between refreshes), got ${String(options.every)}`);
    const { every, ...rest } = options;
    this.every = every;
    this.options = { method: 'ema', ...rest };
    resolve(this.options);
  }

  /** Whether `step` is a refresh step (0, K, 2K, ...). */
  due(step: number): boolean {
    return step % this.every === 0;
  }

  /** Recalibrate on `batch` if `step` is due; returns the result, or null. Call between steps. */
  async maybeRefresh(step: number, batch: TokenBatch | Iterable<TokenBatch>): Promise<CalibrationResult | null> {
    if (!this.due(step)) return null;
    const batches = Symbol.iterator in Object(batch) ? (batch as Iterable<TokenBatch>) : [batch as TokenBatch];
    return calibrate(this.model, batches, this.options);
  }
}
