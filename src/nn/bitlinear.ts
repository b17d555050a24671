/**
 * `BitLinear`: the BitNet b1.58 projection, a drop-in `LinearLayer` for the `LinearFactory`
 * seam of attention and MLP (embeddings and the LM head stay dense, as in Hugging Face's
 * BitNet integration). Latent weights are f32 parameters with the dense layer's names and init;
 * every forward quantises them to ternary, packs them and runs the int8 × ternary kernel
 * (`bitLinear` in src/autograd/ops/bitlinear.ts).
 *
 * Parameter names: `${name}.weight` (and `.bias`) exactly as in `Linear`. The built-in norm has
 * no parameters by default (the BitNet FAQ's `RMSNorm(x)`); with `normAffine` its scale is
 * registered under Hugging Face BitNet's names where the position matches — the norm in front of
 * `self_attn.o_proj` is `self_attn.attn_sub_norm.weight`, the one in front of `mlp.down_proj` is
 * `mlp.ffn_sub_norm.weight` (BitNet b1.58 2B4T's "subln") — and `${name}.norm.weight` elsewhere;
 * stacked q/k/v share one input and so one norm: `self_attn.qkv_proj.norm.weight`.
 *
 * Quantisation-aware training (src/qat/README.md): the STE variants `'soft'` and `'lsq'` (LSQ
 * registers a learnable step size per scale group, `${name}.weight_step`, no weight decay, 0 =
 * "initialise from mean|W| at the first forward"); a static activation clip
 * (`activationScale: 'static'` registers `${layer}.input_clip`, one value per layer, named like the
 * built-in norm, no gradient; 0 = "not calibrated yet", per-token scales until `calibrate` sets it);
 * per-projection precision (`keepFp`, `keepInt8`, or `setPrecision` later); and the per-step state a
 * `QatController` sets (`weightLambda`, `activationLambda`, `noise`, `softTemperature`).
 */
import type { Ptr } from '../backend/backend.js';
import { bitLinear, type ActivationSteVariant, type ProjectionPrecision, type QuantNoise, type SteVariant } from '../autograd/ops/bitlinear.js';
import { weightScaleGroup } from '../quant/layout.js';
import type { Tensor } from '../tensor/tensor.js';
import type { LinearFactory, LinearLayer, LinearSpec } from './linear.js';

/** How many latent weights share one absmean scale. */
export type BitLinearScale = 'tensor' | 'channel' | { group: number };

/** Options of a BitLinear layer (also `GPTConfig.bitlinearOptions`); every field has a default. */
export interface BitLinearOptions {
  /** Built-in RMSNorm in front of the activation quantiser, as in the BitNet FAQ. Default true. */
  norm?: boolean;
  /** Give the built-in norm a learned scale (init 1, no weight decay). Default false (the FAQ's plain RMSNorm). */
  normAffine?: boolean;
  /** Epsilon of the built-in norm. Default 1e-5 (a GPT passes its `normEps`). */
  normEps?: number;
  /**
   * Absmean weight scale: `'tensor'` (default; one per projection, so stacked q/k/v get one each),
   * `'channel'` (one per output row) or `{ group: G }` (per G input elements; G a multiple of 16 dividing C).
   */
  scale?: BitLinearScale;
  /**
   * Weight straight-through estimator: `'identity'` (default), `'clipped'` (no weight gradient where
   * |W·s| > 1), `'soft'` (slope of tanh soft rounding at `softTemperature`), `'lsq'` (learnable step size).
   */
  ste?: SteVariant;
  /** Quantise activations to int8 per token (default true); false gives weight-only ternary (W1.58A32). */
  quantizeActivations?: boolean;
  /**
   * Per-layer STE overrides by layer name (`bitLinearLayerName`: a projection such as
   * `model.layers.0.mlp.down_proj`, or `model.layers.0.self_attn.qkv_proj` for stacked q/k/v).
   */
  steByLayer?: Readonly<Record<string, SteVariant>>;
  /** Initial temperature of the `'soft'` STE (a `QatController` may anneal it). Default 1. */
  softTemperature?: number;
  /** Activation STE: `'identity'` (default) or `'clipped'` (zero gradient where a static clip saturates). */
  activationSte?: ActivationSteVariant;
  /** Activation scales: `'token'` (default, absmax per token) or `'static'` (one calibrated clip per layer, see `calibrate`). */
  activationScale?: 'token' | 'static';
  /** Projections kept in full precision (quantisers off), by name, e.g. `'model.layers.0.self_attn.q_proj'`. */
  keepFp?: readonly string[];
  /** Projections kept at 8 bits (per-output-channel absmax int8 weights), by name. */
  keepInt8?: readonly string[];
}

/** BitLinear options with every default filled in. */
export type ResolvedBitLinearOptions = Required<BitLinearOptions>;

/** Fill defaults and validate; throws naming the option and the fix. */
export function resolveBitLinearOptions(options: BitLinearOptions = {}): ResolvedBitLinearOptions {
  const where = 'BitLinear options';
  const norm = options.norm ?? true;
  const normAffine = options.normAffine ?? false;
  const quantizeActivations = options.quantizeActivations ?? true;
  for (const [key, v] of [['norm', norm], ['normAffine', normAffine], ['quantizeActivations', quantizeActivations]] as const) {
    if (typeof v !== 'boolean') throw new Error(`${where}: ${key} must be true or false, got ${String(v)}`);
  }
  if (normAffine && !norm) throw new Error(`${where}: normAffine needs norm: true (the affine scale belongs to the built-in norm)`);
  const normEps = options.normEps ?? 1e-5;
  if (!(Number.isFinite(normEps) && normEps > 0)) throw new Error(`${where}: normEps must be a finite number > 0, got ${normEps}`);
  const scale = options.scale ?? 'tensor';
  const groupOk = typeof scale === 'object' && scale !== null && Number.isInteger(scale.group) && scale.group > 0 && scale.group % 16 === 0;
  if (scale !== 'tensor' && scale !== 'channel' && !groupOk) {
    throw new Error(`${where}: scale must be 'tensor', 'channel' or { group: G } with G a positive multiple of 16, got ${JSON.stringify(scale)}`);
  }
  const ste = options.ste ?? 'identity';
  if (!['identity', 'clipped', 'soft', 'lsq'].includes(ste)) throw new Error(`${where}: ste must be 'identity', 'clipped', 'soft' or 'lsq', got ${String(ste)}`);
  const steByLayer = { ...(options.steByLayer ?? {}) };
  for (const [layer, v] of Object.entries(steByLayer)) {
    if (!['identity', 'clipped', 'soft', 'lsq'].includes(v)) throw new Error(`${where}: steByLayer[${JSON.stringify(layer)}] must be 'identity', 'clipped', 'soft' or 'lsq', got ${String(v)}`);
  }
  const softTemperature = options.softTemperature ?? 1;
  if (!(Number.isFinite(softTemperature) && softTemperature > 0)) throw new Error(`${where}: softTemperature must be a finite number > 0, got ${softTemperature}`);
  const activationSte = options.activationSte ?? 'identity';
  if (activationSte !== 'identity' && activationSte !== 'clipped') throw new Error(`${where}: activationSte must be 'identity' or 'clipped', got ${String(activationSte)}`);
  const activationScale = options.activationScale ?? 'token';
  if (activationScale !== 'token' && activationScale !== 'static') throw new Error(`${where}: activationScale must be 'token' or 'static', got ${String(activationScale)}`);
  const keepFp = nameList(where, 'keepFp', options.keepFp);
  const keepInt8 = nameList(where, 'keepInt8', options.keepInt8);
  const both = keepFp.filter((n) => keepInt8.includes(n));
  if (both.length > 0) throw new Error(`${where}: ${both.join(', ')} is in both keepFp and keepInt8; keep each projection in one precision`);
  return { norm, normAffine, normEps, scale, ste, steByLayer, quantizeActivations, softTemperature, activationSte, activationScale, keepFp, keepInt8 };
}

function nameList(where: string, key: string, v: readonly string[] | undefined): readonly string[] {
  if (v === undefined) return [];
  if (!Array.isArray(v) || v.some((n) => typeof n !== 'string')) throw new Error(`${where}: ${key} must be an array of projection names, got ${JSON.stringify(v)}`);
  return [...v];
}

/**
 * Throw unless every name in `keepFp` / `keepInt8` is one of `projections` (the model's
 * projection names, e.g. `model.layers.0.mlp.up_proj`), naming the unknown values and listing the valid ones.
 */
export function checkKeepLists(options: Pick<BitLinearOptions, 'keepFp' | 'keepInt8' | 'steByLayer'>, projections: readonly string[]): void {
  const layers = [...new Set(projections.map((n) => (/\.[qkv]_proj$/.test(n) ? n.replace(/\.[qkv]_proj$/, '.qkv_proj') : n)))];
  const badSte = Object.keys(options.steByLayer ?? {}).filter((n) => !layers.includes(n));
  if (badSte.length > 0) throw new Error(`BitLinear options: steByLayer names unknown layer${badSte.length > 1 ? 's' : ''} ${badSte.map((n) => JSON.stringify(n)).join(', ')}; valid names: ${layers.join(', ')}`);
  for (const key of ['keepFp', 'keepInt8'] as const) {
    const unknown = (options[key] ?? []).filter((n) => !projections.includes(n));
    if (unknown.length > 0) {
      throw new Error(`BitLinear options: ${key} names unknown projection${unknown.length > 1 ? 's' : ''} ${unknown.map((n) => JSON.stringify(n)).join(', ')}; valid names: ${projections.join(', ')}`);
    }
  }
}

/** The projection names of a model's parameter names: every `…_proj.weight` without `.weight`. */
export function projectionNames(paramNames: readonly string[]): string[] {
  return paramNames.filter((n) => /_proj\.weight$/.test(n)).map((n) => n.slice(0, -'.weight'.length));
}

/** The name of a BitLinear's built-in norm scale (see the file header). */
export function bitLinearNormName(names: readonly string[]): string {
  const first = names[0]!;
  const parent = first.slice(0, first.lastIndexOf('.'));
  const leaf = (n: string): string => n.slice(n.lastIndexOf('.') + 1);
  if (names.length === 1) {
    if (first.endsWith('self_attn.o_proj')) return `${parent}.attn_sub_norm.weight`;
    if (first.endsWith('mlp.down_proj')) return `${parent}.ffn_sub_norm.weight`;
    return `${first}.norm.weight`;
  }
  const sameParent = names.every((n) => n.slice(0, n.lastIndexOf('.')) === parent);
  if (sameParent && names.every((n) => leaf(n).endsWith('_proj'))) {
    return `${parent}.${names.map((n) => leaf(n).slice(0, -'_proj'.length)).join('')}_proj.norm.weight`;
  }
  return `${first}.norm.weight`;
}

/**
 * The name of a BitLinear layer as a whole: its projection's name, or for stacked parts with one
 * parent the fused name (`model.layers.0.self_attn.qkv_proj`). Its static activation clip is
 * `${layerName}.input_clip`.
 */
export function bitLinearLayerName(names: readonly string[]): string {
  const first = names[0]!;
  if (names.length === 1) return first;
  const parent = first.slice(0, first.lastIndexOf('.'));
  const leaf = (n: string): string => n.slice(n.lastIndexOf('.') + 1);
  const sameParent = names.every((n) => n.slice(0, n.lastIndexOf('.')) === parent);
  if (sameParent && names.every((n) => leaf(n).endsWith('_proj'))) {
    return `${parent}.${names.map((n) => leaf(n).slice(0, -'_proj'.length)).join('')}_proj`;
  }
  return first;
}

/** A BitNet b1.58 projection `(..., inFeatures) → (..., outFeatures)`. */
export class BitLinear implements LinearLayer {
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  /** The built-in norm's scale (C), or null (no norm, or a norm without affine). */
  readonly normWeight: Tensor | null;
  readonly inFeatures: number;
  readonly outFeatures: number;
  readonly options: ResolvedBitLinearOptions;
  /** The weight-scale `group` passed to the kernels (per part for stacked projections). */
  readonly group: number;
  /** Projection names of the stacked parts, e.g. `['model.layers.0.self_attn.q_proj', …k_proj, …v_proj]`. */
  readonly names: readonly string[];
  /** Output rows of each part. */
  readonly partRows: number;
  /** This layer's weight STE (`options.ste`, or its `steByLayer` override). */
  readonly ste: SteVariant;
  /** LSQ step sizes Δ (N*K/group) with `ste: 'lsq'`, else null. */
  readonly weightStep: Tensor | null;
  /** The static activation clip (1) with `activationScale: 'static'`, else null. */
  readonly inputClip: Tensor | null;

  // ---- QAT state, set per step (a QatController does it) ----
  /** λ of progressive weight quantisation, in [0,1]. 1: fully quantised. */
  weightLambda = 1;
  /** λ of progressive activation quantisation, in [0,1]. */
  activationLambda = 1;
  /** Quantisation noise of this step, or null. */
  noise: QuantNoise | null = null;
  /** Temperature of the `'soft'` STE. */
  softTemperature: number;
  /** Calibration hook: receives the activation quantiser's input of each forward. */
  observe: ((xn: Tensor) => void) | null = null;
  /** Two static elements for the next forward's activation error sums (error analysis), or 0. */
  activationStats: Ptr = 0;
  private readonly precisions: ProjectionPrecision[];

  constructor(spec: LinearSpec, options: BitLinearOptions = {}) {
    const { params, names, inFeatures, outFeatures, initStd } = spec;
    for (const [what, n] of [['inFeatures', inFeatures], ['outFeatures', outFeatures]] as const) {
      if (!Number.isInteger(n) || n <= 0) throw new Error(`BitLinear ${names.join(', ')}: ${what} must be a positive integer, got ${n}`);
    }
    const o = (this.options = resolveBitLinearOptions(options));
    this.names = [...names];
    this.partRows = outFeatures;
    this.inFeatures = inFeatures;
    this.outFeatures = outFeatures * names.length;
    const scale = o.scale;
    // per tensor = per part: R*K with R = outFeatures rows, so q, k and v get a scale each
    this.group = scale === 'tensor' ? outFeatures * inFeatures
      : scale === 'channel' ? inFeatures
        : weightScaleGroup(this.outFeatures, inFeatures, 'group', scale.group);
    this.weight = params.registerStacked(names.map((n) => `${n}.weight`), [outFeatures, inFeatures], {
      init: { kind: 'normal', std: initStd },
      decay: true,
    }).whole;
    this.bias = spec.bias
      ? params.registerStacked(names.map((n) => `${n}.bias`), [outFeatures], { init: { kind: 'zeros' }, decay: false }).whole
      : null;
    this.normWeight = o.norm && o.normAffine
      ? params.register(bitLinearNormName(names), [inFeatures], { init: { kind: 'ones' }, decay: false })
      : null;
    this.ste = o.steByLayer[bitLinearLayerName(names)] ?? o.ste;
    this.weightStep = this.ste === 'lsq'
      ? params.registerStacked(names.map((n) => `${n}.weight_step`), [(outFeatures * inFeatures) / this.group], { init: { kind: 'zeros' }, decay: false }).whole
      : null;
    this.inputClip = o.activationScale === 'static'
      ? params.register(`${bitLinearLayerName(names)}.input_clip`, [1], { init: { kind: 'zeros' }, decay: false })
      : null;
    this.softTemperature = o.softTemperature;
    this.precisions = names.map((n) => (o.keepFp.includes(n) ? 'fp' : o.keepInt8.includes(n) ? 'int8' : 'ternary'));
  }

  /** The precision of the part called `name` (one of `names`). */
  precisionOf(name: string): ProjectionPrecision {
    return this.precisions[this.partIndex(name)]!;
  }

  /** Keep the part called `name` in another precision from the next forward on (mixed precision). */
  setPrecision(name: string, precision: ProjectionPrecision): void {
    if (precision !== 'ternary' && precision !== 'int8' && precision !== 'fp') throw new Error(`BitLinear.setPrecision: precision must be 'ternary', 'int8' or 'fp', got ${String(precision)}`);
    this.precisions[this.partIndex(name)] = precision;
  }

  private partIndex(name: string): number {
    const i = this.names.indexOf(name);
    if (i < 0) throw new Error(`BitLinear: no projection ${JSON.stringify(name)} in this layer (its parts: ${this.names.join(', ')})`);
    return i;
  }

  forward(x: Tensor): Tensor {
    const o = this.options;
    return bitLinear(x, this.weight, this.bias, {
      norm: o.norm,
      normWeight: this.normWeight,
      normEps: o.normEps,
      group: this.group,
      ste: this.ste,
      quantizeActivations: o.quantizeActivations,
      softTemperature: this.softTemperature,
      weightStep: this.weightStep,
      activationSte: o.activationSte,
      activationClip: this.inputClip,
      weightLambda: this.weightLambda,
      activationLambda: this.activationLambda,
      noise: this.noise,
      parts: this.precisions,
      observe: this.observe,
      activationStats: this.activationStats,
    });
  }
}

/**
 * A `LinearFactory` that builds BitLinear projections (validates the options once, up front).
 *
 * @example
 * const model = new GPT({ ...shape, linear: bitLinearFactory({ norm: false, scale: 'channel' }) });
 */
export function bitLinearFactory(options: BitLinearOptions = {}): LinearFactory {
  const resolved = resolveBitLinearOptions(options);
  return (spec) => new BitLinear(spec, resolved);
}
