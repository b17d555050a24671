/**
 * The per-step state of quantisation-aware training: a `QatController` sets, at the start of
 * every step, each BitLinear layer's progressive-quantisation λ (weights and activations apart,
 * optionally layer by layer), the quantisation-noise fraction and seed, and the soft-STE
 * temperature — all pure functions of the step, so a resumed run reproduces them.
 */
import type { ParameterSet } from '../tensor/parameters.js';
import type { Block, DecoderBlock } from '../nn/block.js';
import { BitLinear, bitLinearLayerName } from '../nn/bitlinear.js';
import type { LinearLayer } from '../nn/linear.js';
import type { Rng } from '../util/rng.js';
import {
  type AnnealSchedule, type LayerOrder, type RampSchedule, annealAt, checkAnneal, checkRamp, layerwiseRampAt, rampAt,
} from './schedule.js';

/** What QAT needs of a model: its blocks (a GPT's, or a LLaMA-family model's) and its parameters. */
export interface QatModel {
  readonly blocks: readonly (Block | DecoderBlock)[];
  readonly params: ParameterSet;
}

/** One BitLinear layer of a model, with the index of its block. */
export interface BitLinearEntry {
  /** The layer's name (`bitLinearLayerName`: the projection, or `…self_attn.qkv_proj` for stacked q/k/v). */
  name: string;
  block: number;
  layer: BitLinear;
}

/** Every BitLinear layer of `model`, block by block (q/k/v, o, gate, up, down). */
export function bitLinearLayers(model: QatModel): BitLinearEntry[] {
  const out: BitLinearEntry[] = [];
  model.blocks.forEach((b, block) => {
    const candidates: (LinearLayer | null)[] = 'projections' in b ? b.projections().map((p) => p.layer) : [b.attn.qkv, b.attn.out, b.mlp.gate, b.mlp.up, b.mlp.down];
    for (const layer of candidates) {
      if (layer instanceof BitLinear) out.push({ name: bitLinearLayerName(layer.names), block, layer });
    }
  });
  return out;
}

/** Every projection name of the model's BitLinear layers (parts of stacked layers apart), in order. */
export function quantizedProjectionNames(model: QatModel): string[] {
  return bitLinearLayers(model).flatMap((e) => e.layer.names);
}

/**
 * Set the progressive-quantisation λ of every BitLinear layer (1 = fully quantised).
 *
 * @example
 * setQuantLambda(model, { weights: 0.5, activations: 1 });
 */
export function setQuantLambda(model: QatModel, lambda: { weights?: number; activations?: number }): void {
  for (const key of ['weights', 'activations'] as const) {
    const v = lambda[key];
    if (v !== undefined && !(typeof v === 'number' && v >= 0 && v <= 1)) throw new Error(`setQuantLambda: ${key} must be a number in [0, 1], got ${String(v)}`);
  }
  for (const { layer } of bitLinearLayers(model)) {
    if (lambda.weights !== undefined) layer.weightLambda = lambda.weights;
    if (lambda.activations !== undefined) layer.activationLambda = lambda.activations;
  }
}

/** Quantisation noise: the quantised fraction of weights ramps from `start` to 1 over `schedule`. */
export interface NoiseOptions {
  /** Fraction of weights quantised at the start, in [0, 1]. */
  start: number;
  /** The ramp of the fraction from `start` to 1. */
  schedule: RampSchedule;
  /** Base seed (u32) of the per-step masks. Default: one draw from `rng`. */
  seed?: number;
  /** The model's Rng, drawn once for the base seed when `seed` is not given. */
  rng?: Rng;
}

/** Options of a {@link QatController}; everything optional (absent: fully quantised, no noise). */
export interface QatControllerOptions {
  /** λ ramp of the weights (`W + λ(Q(W) − W)`). Absent: λ = 1. */
  weights?: RampSchedule | null;
  /** λ ramp of the activations. Absent: λ = 1. */
  activations?: RampSchedule | null;
  /** Quantise block after block over the ramps (`'first-to-last'` or `'last-to-first'`). Default false. */
  layerwise?: false | LayerOrder;
  /** Quantisation noise, or null. */
  noise?: NoiseOptions | null;
  /** Temperature of the `'soft'` STE, annealed (e.g. `{ from: 1, to: 0.05, steps: 2000 }`). Absent: the layers' own. */
  softTemperature?: AnnealSchedule | null;
}

/** The values a step got, for logs: λ per block, the noise fraction and the soft temperature. */
export interface QatStepState {
  step: number;
  weightLambda: number[];
  activationLambda: number[];
  /** Quantised fraction of weights (1 without noise). */
  noiseP: number;
  softTemperature: number | null;
}

/**
 * Drives the per-step QAT state of a model's BitLinear layers.
 *
 * @example
 * const qat = new QatController(model, { weights: { steps: 1000 }, activations: { steps: 500, shape: 'sigmoid' } });
 * for (let step = 0; step < iters; step++) {
 *   qat.beginStep(step);  // before the forward
 *   trainStep(...);
 * }
 */
export class QatController {
  readonly layers: readonly BitLinearEntry[];
  readonly blocks: number;
  /** The base seed of the quantisation-noise masks (save it with a checkpoint to resume the same masks). */
  readonly noiseSeed: number;
  private readonly weights: Required<RampSchedule> | null;
  private readonly activations: Required<RampSchedule> | null;
  private readonly layerwise: false | LayerOrder;
  private readonly noise: (NoiseOptions & { schedule: Required<RampSchedule> }) | null;
  private readonly soft: Required<AnnealSchedule> | null;

  constructor(model: QatModel, options: QatControllerOptions = {}) {
    const where = 'QatController';
    this.layers = bitLinearLayers(model);
    if (this.layers.length === 0) throw new Error(`${where}: the model has no BitLinear layers; build it with bitlinear: true`);
    this.blocks = model.blocks.length;
    this.weights = options.weights ? checkRamp(options.weights, `${where} weights`) : null;
    this.activations = options.activations ? checkRamp(options.activations, `${where} activations`) : null;
    const lw = options.layerwise ?? false;
    if (lw !== false && lw !== 'first-to-last' && lw !== 'last-to-first') throw new Error(`${where}: layerwise must be false, 'first-to-last' or 'last-to-first', got ${String(lw)}`);
    this.layerwise = lw;
    const n = options.noise ?? null;
    if (n) {
      if (!(typeof n.start === 'number' && n.start >= 0 && n.start <= 1)) throw new Error(`${where} noise: start must be a fraction in [0, 1], got ${String(n.start)}`);
      if (n.seed !== undefined && !(Number.isInteger(n.seed) && n.seed >= 0 && n.seed <= 0xffffffff)) throw new Error(`${where} noise: seed must be an integer in [0, 2^32), got ${String(n.seed)}`);
      if (n.seed === undefined && !n.rng) throw new Error(`${where} noise: give a seed or the model's rng`);
      this.noise = { ...n, schedule: checkRamp(n.schedule, `${where} noise schedule`) };
    } else this.noise = null;
    this.noiseSeed = n ? (n.seed ?? n.rng!.nextU32()) >>> 0 : 0;
    this.soft = options.softTemperature ? checkAnneal(options.softTemperature, `${where} softTemperature`, true) : null;
  }

  /** Weight λ of block `block` at `step`. */
  weightLambdaAt(step: number, block: number): number {
    return this.lambdaOf(this.weights, step, block);
  }

  /** Activation λ of block `block` at `step`. */
  activationLambdaAt(step: number, block: number): number {
    return this.lambdaOf(this.activations, step, block);
  }

  /** Quantised fraction of weights at `step` (1 without noise). */
  noiseAt(step: number): number {
    if (!this.noise) return 1;
    return this.noise.start + (1 - this.noise.start) * rampAt(this.noise.schedule, step);
  }

  /** Set every layer's QAT state for `step` (call before the step's forward). Returns the values, for logging. */
  beginStep(step: number): QatStepState {
    if (!(Number.isInteger(step) && step >= 0)) throw new Error(`QatController.beginStep: step must be a non-negative integer, got ${String(step)}`);
    const p = this.noiseAt(step);
    const temperature = this.soft ? annealAt(this.soft, step) : null;
    const state: QatStepState = {
      step,
      weightLambda: Array.from({ length: this.blocks }, (_, b) => this.weightLambdaAt(step, b)),
      activationLambda: Array.from({ length: this.blocks }, (_, b) => this.activationLambdaAt(step, b)),
      noiseP: p,
      softTemperature: temperature,
    };
    this.layers.forEach(({ layer, block }, i) => {
      layer.weightLambda = state.weightLambda[block]!;
      layer.activationLambda = state.activationLambda[block]!;
      layer.noise = p < 1 ? { p, seed: stepSeed(this.noiseSeed, step, i) } : null;
      if (temperature !== null) layer.softTemperature = temperature;
    });
    return state;
  }

  private lambdaOf(ramp: Required<RampSchedule> | null, step: number, block: number): number {
    if (!ramp) return 1;
    return this.layerwise ? layerwiseRampAt(ramp, step, block, this.blocks, this.layerwise) : rampAt(ramp, step);
  }
}

/** The noise seed of layer `layer` at `step`: a hash of (base, step, layer). */
function stepSeed(base: number, step: number, layer: number): number {
  let h = (base ^ Math.imul(step + 1, 0x9e3779b1) ^ Math.imul(layer + 1, 0x85ebca6b)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d) >>> 0;
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}
