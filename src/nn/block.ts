/**
 * The transformer block: pre-norm causal self-attention and MLP, each with a residual.
 *
 *   x = x + o_proj(attention(rope?(qkv_proj(norm1(x)))))
 *   x = x + mlp(norm2(x))
 */
import { attention } from '../autograd/ops/attention.js';
import { gelu, relu2, silu } from '../autograd/ops/activation.js';
import { add, mul } from '../autograd/ops/elementwise.js';
import type { ParameterSet } from '../tensor/parameters.js';
import type { Tensor } from '../tensor/tensor.js';
import type { LinearFactory, LinearLayer } from './linear.js';
import { LayerNorm, RMSNorm, type NormLayer } from './norm.js';
import type { RotaryEmbedding } from './rope.js';

/** The block settings a model config resolves to. */
export interface BlockConfig {
  dim: number;
  heads: number;
  norm: 'layer' | 'rms';
  normEps: number;
  mlp: 'gelu' | 'swiglu' | 'relu2';
  /** MLP hidden width. */
  hidden: number;
  bias: boolean;
  initStd: number;
  /** Builds the attention and MLP projections (dense, or BitLinear). */
  linear: LinearFactory;
}

/** A norm layer of the configured kind, registered as `${name}.weight` (+ `.bias`). */
export function makeNorm(params: ParameterSet, name: string, cfg: Pick<BlockConfig, 'dim' | 'norm' | 'normEps' | 'bias'>): NormLayer {
  return cfg.norm === 'rms'
    ? new RMSNorm(params, name, cfg.dim, { eps: cfg.normEps })
    : new LayerNorm(params, name, cfg.dim, { eps: cfg.normEps, bias: cfg.bias });
}

/**
 * Causal multi-head self-attention: fused q/k/v projection (HF names kept), RoPE on q and k
 * when a `RotaryEmbedding` is given (else positions come from the embedding), attention, o_proj.
 */
export class CausalSelfAttention {
  readonly qkv: LinearLayer;
  readonly out: LinearLayer;
  readonly heads: number;
  /** The model's shared RoPE table, or null (learned positions). */
  readonly rotary: RotaryEmbedding | null;

  constructor(params: ParameterSet, prefix: string, cfg: BlockConfig, rotary: RotaryEmbedding | null = null) {
    const { dim, bias, initStd } = cfg;
    this.heads = cfg.heads;
    this.rotary = rotary;
    this.qkv = cfg.linear({ params, names: ['q', 'k', 'v'].map((p) => `${prefix}.${p}_proj`), inFeatures: dim, outFeatures: dim, bias, initStd });
    this.out = cfg.linear({ params, names: [`${prefix}.o_proj`], inFeatures: dim, outFeatures: dim, bias, initStd });
  }

  /** x (B, T, C) → (B, T, C). */
  forward(x: Tensor): Tensor {
    const qkv = this.qkv.forward(x);
    return this.out.forward(attention(this.rotary ? this.rotary.forward(qkv, this.heads) : qkv, this.heads));
  }
}

/**
 * The feed-forward part: GELU or squared ReLU (`up_proj`, act, `down_proj`), or SwiGLU
 * (`down_proj(silu(gate_proj(x)) * up_proj(x))`).
 */
export class MLP {
  readonly gate: LinearLayer | null;
  readonly up: LinearLayer;
  readonly down: LinearLayer;
  readonly kind: 'gelu' | 'swiglu' | 'relu2';

  constructor(params: ParameterSet, prefix: string, cfg: BlockConfig) {
    const { dim, hidden, bias, initStd } = cfg;
    this.kind = cfg.mlp;
    const proj = (name: string, inFeatures: number, outFeatures: number) =>
      cfg.linear({ params, names: [`${prefix}.${name}`], inFeatures, outFeatures, bias, initStd });
    this.gate = cfg.mlp === 'swiglu' ? proj('gate_proj', dim, hidden) : null;
    this.up = proj('up_proj', dim, hidden);
    this.down = proj('down_proj', hidden, dim);
  }

  /** x (B, T, C) → (B, T, C). */
  forward(x: Tensor): Tensor {
    let h: Tensor;
    if (this.gate) h = mul(silu(this.gate.forward(x)), this.up.forward(x));
    else h = this.kind === 'relu2' ? relu2(this.up.forward(x)) : gelu(this.up.forward(x));
    return this.down.forward(h);
  }
}

/** One pre-norm decoder block, parameters under `model.layers.${index}`. */
export class Block {
  readonly inputNorm: NormLayer;
  readonly attn: CausalSelfAttention;
  readonly postAttentionNorm: NormLayer;
  readonly mlp: MLP;

  constructor(params: ParameterSet, index: number, cfg: BlockConfig, rotary: RotaryEmbedding | null = null) {
    const prefix = `model.layers.${index}`;
    this.inputNorm = makeNorm(params, `${prefix}.input_layernorm`, cfg);
    this.attn = new CausalSelfAttention(params, `${prefix}.self_attn`, cfg, rotary);
    this.postAttentionNorm = makeNorm(params, `${prefix}.post_attention_layernorm`, cfg);
    this.mlp = new MLP(params, `${prefix}.mlp`, cfg);
  }

  /** x (B, T, C) → (B, T, C). */
  forward(x: Tensor): Tensor {
    const h = add(x, this.attn.forward(this.inputNorm.forward(x)));
    return add(h, this.mlp.forward(this.postAttentionNorm.forward(h)));
  }
}
