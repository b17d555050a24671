/**
 * Linear layers and the seam where BitLinear plugs in: attention and MLP build their
 * projections through a `LinearFactory`, so a quantised layer replaces the dense one by
 * passing another factory in the model config. Embeddings and the LM head stay dense.
 */
import { linear } from '../autograd/ops/linear.js';
import type { ParameterSet } from '../tensor/parameters.js';
import type { Tensor } from '../tensor/tensor.js';

/** What a factory needs to build one (possibly stacked) projection. */
export interface LinearSpec {
  /** Where to register the weights. */
  params: ParameterSet;
  /**
   * Name prefixes, one per output part, e.g. `['model.layers.0.mlp.up_proj']`, or the three
   * `q_proj`, `k_proj`, `v_proj` of attention, stacked along the output dim into one matrix.
   * Parameters are `${prefix}.weight` (and `${prefix}.bias`).
   */
  names: readonly string[];
  /** Input features C. */
  inFeatures: number;
  /** Output features of EACH part; the layer outputs `names.length * outFeatures`. */
  outFeatures: number;
  /** Register and add a bias. */
  bias: boolean;
  /** Standard deviation of the normal weight init. */
  initStd: number;
}

/** A projection `(..., inFeatures) → (..., outFeatures)` with trainable parameters. */
export interface LinearLayer {
  /** The (OC, C) weight (stacked parts: the whole matrix). */
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  readonly inFeatures: number;
  /** Total output features (all parts). */
  readonly outFeatures: number;
  forward(x: Tensor): Tensor;
}

/** Builds a projection: `denseLinear` here; a BitLinear factory in the quantised model. */
export type LinearFactory = (spec: LinearSpec) => LinearLayer;

/** A dense f32 linear layer: `y = x·Wᵀ + b`. Weight decayed, bias not. */
export class Linear implements LinearLayer {
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  readonly inFeatures: number;
  readonly outFeatures: number;

  constructor(spec: LinearSpec) {
    const { params, names, inFeatures, outFeatures, initStd } = spec;
    checkFeatures(names, inFeatures, outFeatures);
    this.inFeatures = inFeatures;
    this.outFeatures = outFeatures * names.length;
    this.weight = params.registerStacked(names.map((n) => `${n}.weight`), [outFeatures, inFeatures], {
      init: { kind: 'normal', std: initStd },
      decay: true,
    }).whole;
    this.bias = spec.bias
      ? params.registerStacked(names.map((n) => `${n}.bias`), [outFeatures], { init: { kind: 'zeros' }, decay: false }).whole
      : null;
  }

  forward(x: Tensor): Tensor {
    return linear(x, this.weight, this.bias);
  }
}

/** The default factory: dense f32 `Linear`. */
export const denseLinear: LinearFactory = (spec) => new Linear(spec);

function checkFeatures(names: readonly string[], inFeatures: number, outFeatures: number): void {
  for (const [what, n] of [['inFeatures', inFeatures], ['outFeatures', outFeatures]] as const) {
    if (!Number.isInteger(n) || n <= 0) throw new Error(`Linear ${names.join(', ')}: ${what} must be a positive integer, got ${n}`);
  }
}
