/**
 * `LoraProjection`: the `LinearLayer` a PEFT model puts where a projection was (DESIGN.md
 * decision 11). It holds a frozen base (dense f32, packed ternary, or NF4) and, for each adapted
 * part of a (possibly stacked q/k/v) projection, LoRA matrices A (r,K) and B (R,r) registered in
 * the trainable parameter set as `${projection}.lora_A.weight` / `.lora_B.weight` (PEFT's names
 * without the `base_model.model.` prefix).
 *
 *   standard          y = base(x) + s·(drop(x)·Aᵀ)·Bᵀ        (the adapter beside the base's kernel)
 *   quantisation-aware y = BitLinear(x; W + s·B·A)           (ternary bases; W is the frozen latent)
 */
import { bitLinear } from '../autograd/ops/bitlinear.js';
import { type FrozenKernel, type LoraAdapterArgs, loraMergedWeight, loraProjection } from '../autograd/ops/lora.js';
import type { LinearLayer } from '../nn/linear.js';
import type { Tensor } from '../tensor/tensor.js';
import type { FrozenTernaryOptions, PackedBase } from './frozen.js';
import { svdScaledRows } from './adalora.js';

/** One adapted part of a projection. */
export interface LoraAdapter {
  /** The projection's name, e.g. `model.layers.0.self_attn.q_proj`. */
  name: string;
  A: Tensor;
  B: Tensor;
  r: number;
  alpha: number;
  /** s = α/r (α/√r with rsLoRA). */
  scale: number;
  /** First output row (column of y) of this part. */
  row0: number;
  /** AdaLoRA's singular values (r, 1): the adapter is B·(A ⊙ E) (./adalora.ts); absent for LoRA. */
  E?: Tensor;
}

/** What a `LoraProjection` computes its base with. */
export type ProjectionBase =
  | { kind: 'kernel'; kernel: FrozenKernel; packed: PackedBase | null }
  /** Quantisation-aware mode: the frozen f32 latent of a BitLinear, quantised with the adapter added. */
  | { kind: 'quant-aware'; latent: Tensor; options: FrozenTernaryOptions };

export class LoraProjection implements LinearLayer {
  readonly inFeatures: number;
  readonly outFeatures: number;
  /** Rows of each stacked part. */
  readonly partRows: number;
  /** Stacked part names (one for most projections, q/k/v for attention's fused projection). */
  readonly names: readonly string[];
  readonly bias: Tensor | null;
  /** The adapters (adapted parts only). */
  readonly adapters: readonly LoraAdapter[];
  readonly base: ProjectionBase;
  /** Dropout probability of the adapters' input (PEFT's lora_dropout). */
  dropout = 0;
  /** Seed of this projection's dropout mask at the next forward (the model sets it per step). */
  dropoutSeed = 0;

  constructor(init: { names: readonly string[]; inFeatures: number; partRows: number; bias: Tensor | null; adapters: LoraAdapter[]; base: ProjectionBase }) {
    this.names = [...init.names];
    this.inFeatures = init.inFeatures;
    this.partRows = init.partRows;
    this.outFeatures = init.partRows * init.names.length;
    this.bias = init.bias;
    this.adapters = init.adapters;
    this.base = init.base;
  }

  /** The dense f32 weight (dense bases and quantisation-aware latents); packed bases have none. */
  get weight(): Tensor {
    const b = this.base;
    if (b.kind === 'quant-aware') return b.latent;
    if (b.kernel.kind === 'dense') return (b.kernel as unknown as { weight: Tensor }).weight;
    throw new Error(`${this.names.join(', ')}: a frozen ${b.kernel.kind} base keeps only its packed codes; there is no f32 weight tensor`);
  }

  forward(x: Tensor): Tensor {
    const b = this.base;
    if (b.kind === 'quant-aware') {
      const w = this.adapters.length > 0
        ? loraMergedWeight(b.latent, this.adapters.map((a) => ({ A: a.E ? svdScaledRows(a.A, a.E) : a.A, B: a.B, scale: a.scale, row0: a.row0 })))
        : b.latent;
      return bitLinear(x, w, this.bias, { norm: b.options.norm, normWeight: b.options.normWeight, normEps: b.options.normEps, group: b.options.group });
    }
    const adapters: LoraAdapterArgs[] = this.adapters.map((a) => ({ A: a.E ? svdScaledRows(a.A, a.E) : a.A, B: a.B, scale: a.scale, col0: a.row0 }));
    return loraProjection(x, b.kernel, adapters, this.bias, this.dropout > 0 ? { p: this.dropout, seed: this.dropoutSeed } : null);
  }
}
