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
 */
import { bitLinear, type SteVariant } from '../autograd/ops/bitlinear.js';
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
  /** Straight-through estimator: `'identity'` (default) or `'clipped'` (no weight gradient where |W·s| > 1). */
  ste?: SteVariant;
  /** Quantise activations to int8 per token (default true); false gives weight-only ternary (W1.58A32). */
  quantizeActivations?: boolean;
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
  if (ste !== 'identity' && ste !== 'clipped') throw new Error(`${where}: ste must be 'identity' or 'clipped', got ${String(ste)}`);
  return { norm, normAffine, normEps, scale, ste, quantizeActivations };
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

  constructor(spec: LinearSpec, options: BitLinearOptions = {}) {
    const { params, names, inFeatures, outFeatures, initStd } = spec;
    for (const [what, n] of [['inFeatures', inFeatures], ['outFeatures', outFeatures]] as const) {
      if (!Number.isInteger(n) || n <= 0) throw new Error(`BitLinear ${names.join(', ')}: ${what} must be a positive integer, got ${n}`);
    }
    const o = (this.options = resolveBitLinearOptions(options));
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
  }

  forward(x: Tensor): Tensor {
    const o = this.options;
    return bitLinear(x, this.weight, this.bias, {
      norm: o.norm,
      normWeight: this.normWeight,
      normEps: o.normEps,
      group: this.group,
      ste: o.ste,
      quantizeActivations: o.quantizeActivations,
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
