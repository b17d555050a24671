/**
 * Quantisation error analysis during training: per projection, the SQNR of the ternary weights
 * and of the int8 activations (`10·log10(‖x‖² / ‖x − q(x)‖²)`), the distribution of the ternary
 * codes (fractions of −1 / 0 / +1), the flip rate of codes since the last report, and the weight
 * scale — as one plain JSON-safe object per report (a trainer writes it as a JSON line).
 *
 * Cost: activation errors are two `sumSquares` over each layer's input in the forward of an
 * armed step (on the device, into a small static buffer); weight statistics are computed on the
 * host from one read of the weights per report, with the same quantiser bits as the kernels.
 */
import type { Ptr } from '../backend/backend.js';
import { absmeanScales, roundHalfEven } from '../backend/js/quant.js';
import type { ProjectionPrecision } from './projection.js';
import { type BitLinearEntry, type QatModel, bitLinearLayers } from './controller.js';

/** Statistics of one projection (a part of a stacked layer counts as its own projection). */
export interface ProjectionQuantStats {
  name: string;
  precision: ProjectionPrecision;
  /** SQNR of the ternary weights Q(W) = Wq/s, in dB. */
  weight_sqnr_db: number | null;
  /** SQNR of the int8 activations of the layer's input, in dB (null when not measured this report). */
  activation_sqnr_db: number | null;
  /** Fractions of the ternary codes −1, 0, +1. */
  ternary: { neg: number; zero: number; pos: number };
  /** Fraction of codes that changed since the previous report (null at the first). */
  flip_rate: number | null;
  /** Mean absmean multiplier s (dequantised weight = code / s); the LSQ step's 1/Δ with `ste: 'lsq'`. */
  scale: number;
}

/** One report: `{ event: 'quant', step, layers: [...] }`. */
export interface QuantReport {
  event: 'quant';
  step: number;
  layers: ProjectionQuantStats[];
}

/** `10·log10(signal / noise)`, null when the noise is 0 (exact) or the signal is 0. */
export function sqnrDb(signal: number, noise: number): number | null {
  if (!(noise > 0) || !(signal > 0)) return null;
  return 10 * Math.log10(signal / noise);
}

/**
 * Collects per-layer quantisation statistics every `every` steps.
 *
 * @example
 * const analyzer = new QuantErrorAnalyzer(model, { every: 100 }); // before the first step (static memory)
 * for (let step = 0; step < iters; step++) {
 *   analyzer.beginStep(step);                       // arms the activation sums on report steps
 *   await trainStep(heap, model, opt, batch);
 *   if (analyzer.due(step)) log.write(await analyzer.report(step));
 * }
 */
export class QuantErrorAnalyzer {
  readonly every: number;
  private readonly entries: BitLinearEntry[];
  private readonly slots: Ptr;
  private readonly previous = new Map<string, Int8Array>();
  private armed = false;

  constructor(readonly model: QatModel, options: { every?: number } = {}) {
    const every = options.every ?? 100;
    if (!(Number.isInteger(every) && every > 0)) throw new Error(`QuantErrorAnalyzer: every must be a positive integer (steps between reports), got ${String(every)}`);
    this.every = every;
    this.entries = bitLinearLayers(model);
    if (this.entries.length === 0) throw new Error('QuantErrorAnalyzer: the model has no BitLinear layers; build it with bitlinear: true');
    const heap = model.params.heap;
    this.slots = heap.allocStatic(2 * this.entries.length, 'qat.activationStats');
    heap.backend.fill(this.slots, 2 * this.entries.length, 0);
  }

  /** Whether `step` is a report step (0, every, 2·every, ...). */
  due(step: number): boolean {
    return step % this.every === 0;
  }

  /** Arm the activation sums for this step's forward if it is a report step (else disarm). */
  beginStep(step: number): void {
    this.armed = this.due(step);
    this.entries.forEach((e, i) => { e.layer.activationStats = this.armed ? this.slots + 2 * i : 0; });
  }

  /**
   * The statistics now: weights as they are, activations from the last armed forward (null if
   * none ran since the last report). Disarms the activation sums.
   */
  async report(step: number): Promise<QuantReport> {
    const be = this.model.params.heap.backend;
    const act = this.armed ? await be.read(this.slots, 2 * this.entries.length) : null;
    this.armed = false;
    for (const e of this.entries) e.layer.activationStats = 0;
    const layers: ProjectionQuantStats[] = [];
    for (let li = 0; li < this.entries.length; li++) {
      const { layer } = this.entries[li]!;
      const K = layer.inFeatures;
      const count = layer.partRows * K;
      const groups = count / layer.group;
      const activation = act ? sqnrDb(act[2 * li]!, act[2 * li + 1]!) : null;
      for (let p = 0; p < layer.names.length; p++) {
        const name = layer.names[p]!;
        const w = await be.read(layer.weight.offset + p * count, count);
        const scales = new Float32Array(groups);
        if (layer.weightStep) {
          const step = await be.read(layer.weightStep.offset + p * groups, groups);
          absmeanScales(scales, w, count, layer.group, 0, groups);
          for (let g = 0; g < groups; g++) if (step[g]! > 0) scales[g] = Math.fround(1 / Math.max(step[g]!, Math.fround(1e-5)));
        } else {
          absmeanScales(scales, w, count, layer.group, 0, groups);
        }
        layers.push(this.weightStats(name, layer.precisionOf(name), w, scales, layer.group, activation));
      }
    }
    return { event: 'quant', step, layers };
  }

  private weightStats(name: string, precision: ProjectionPrecision, w: ArrayLike<number>, scales: Float32Array, group: number, activation: number | null): ProjectionQuantStats {
    const n = w.length;
    const codes = new Int8Array(n);
    let signal = 0, noise = 0, neg = 0, pos = 0, scaleSum = 0;
    for (let g = 0; g < scales.length; g++) scaleSum += scales[g]!;
    for (let i = 0; i < n; i++) {
      const s = scales[Math.floor(i / group)]!;
      const q = Math.max(-1, Math.min(1, roundHalfEven(Math.fround(w[i]! * s))));
      codes[i] = q;
      if (q < 0) neg++;
      else if (q > 0) pos++;
      const e = w[i]! - Math.fround(q / s);
      signal += w[i]! * w[i]!;
      noise += e * e;
    }
    const prev = this.previous.get(name);
    let flips: number | null = null;
    if (prev && prev.length === n) {
      let c = 0;
      for (let i = 0; i < n; i++) if (prev[i] !== codes[i]) c++;
      flips = c / n;
    }
    this.previous.set(name, codes);
    return {
      name,
      precision,
      weight_sqnr_db: sqnrDb(signal, noise),
      activation_sqnr_db: activation,
      ternary: { neg: neg / n, zero: (n - neg - pos) / n, pos: pos / n },
      flip_rate: flips,
      scale: scaleSum / scales.length,
    };
  }
}
