/**
 * The transformer blocks: pre-norm causal self-attention and MLP, each with a residual.
 *
 *   x = x + o_proj(attention(rope?(qkv_proj(norm1(x)))))
 *   x = x + mlp(norm2(x))
 *
 * `Block` is the GPT's (fused qkv, LayerNorm or RMSNorm, GELU / SwiGLU / relu2); `DecoderBlock`
 * the LLaMA family's (separate q/k/v with grouped-query attention, RMSNorm, gated MLP, and
 * BitNet's sub-norms before o_proj and down_proj).
 */
import { attention, groupedAttention } from '../autograd/ops/attention.js';
import { gatedActivation, gelu, relu2 } from '../autograd/ops/activation.js';
import { add } from '../autograd/ops/elementwise.js';
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

/** Learned key/value positions in front of the tokens (prefix tuning, src/peft/prefix.ts). */
export interface KvPrefix {
  /** RoPE (when given) and causal attention of the fused qkv (B, T, 3C) with the prefix keys and values first → (B, T, C). */
  attend(qkv: Tensor, heads: number, rotary: RotaryEmbedding | null): Tensor;
  /** The same for grouped-query attention: q (B, T, NH·hs), k and v (B, T, NKV·hs), not yet rotated → (B, T, NH·hs). */
  attendGrouped(q: Tensor, k: Tensor, v: Tensor, heads: number, kvHeads: number, rotary: RotaryEmbedding): Tensor;
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

  /** Prefix tuning (src/peft/prefix.ts): learned key/value positions attended before the tokens, or null. */
  kvPrefix: KvPrefix | null = null;

  /** x (B, T, C) → (B, T, C). */
  forward(x: Tensor): Tensor {
    const qkv = this.qkv.forward(x);
    if (this.kvPrefix) return this.out.forward(this.kvPrefix.attend(qkv, this.heads, this.rotary));
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
    if (this.gate) h = gatedActivation(this.gate.forward(x), this.up.forward(x), 'silu');
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

// ---- the LLaMA-family block (families llama and bitnet, src/nn/llama.ts) ----------------------

/** The block settings of the LLaMA-family models (`LlamaModel`: families `llama` and `bitnet`). */
export interface DecoderBlockConfig {
  /** Model width (`hidden_size`). */
  dim: number;
  /** Query heads (`num_attention_heads`). */
  heads: number;
  /** Key/value heads (`num_key_value_heads`), dividing `heads`; = heads is multi-head attention. */
  kvHeads: number;
  /** Head size (`head_dim`); q is heads·headDim wide, k and v kvHeads·headDim. Even (RoPE). */
  headDim: number;
  /** MLP hidden width (`intermediate_size`). */
  hidden: number;
  /** Epsilon of every RMSNorm (`rms_norm_eps`). */
  normEps: number;
  /** Gated MLP activation (`hidden_act`): `down(act(gate(x)) · up(x))` with SiLU (SwiGLU) or squared ReLU. */
  act: 'silu' | 'relu2';
  /** Biases in q/k/v/o (`attention_bias`). */
  attentionBias: boolean;
  /** Biases in gate/up/down (`mlp_bias`). */
  mlpBias: boolean;
  /** BitNet's sub-norms: RMSNorm `attn_sub_norm` before o_proj and `ffn_sub_norm` before down_proj. */
  subNorms: boolean;
  initStd: number;
  /** Builds the seven projections (dense, or BitLinear). */
  linear: LinearFactory;
}

/** One projection of a block with its Hugging Face name (e.g. `model.layers.0.self_attn.q_proj`). */
export interface NamedProjection {
  name: string;
  layer: LinearLayer;
}

/**
 * Causal grouped-query self-attention as in Hugging Face's `LlamaAttention` / `BitNetAttention`:
 * separate `q_proj` (dim → heads·headDim), `k_proj`, `v_proj` (dim → kvHeads·headDim), RoPE on q
 * and k (rotate_half), `groupedAttention`, BitNet's `attn_sub_norm` when configured, `o_proj`.
 */
export class GroupedQueryAttention {
  readonly q: LinearLayer;
  readonly k: LinearLayer;
  readonly v: LinearLayer;
  readonly out: LinearLayer;
  /** `attn_sub_norm` (BitNet), or null. */
  readonly subNorm: RMSNorm | null;
  readonly heads: number;
  readonly kvHeads: number;
  readonly rotary: RotaryEmbedding;
  readonly prefix: string;

  constructor(params: ParameterSet, prefix: string, cfg: DecoderBlockConfig, rotary: RotaryEmbedding) {
    const { dim, heads, kvHeads, headDim, attentionBias: bias, initStd } = cfg;
    this.prefix = prefix;
    this.heads = heads;
    this.kvHeads = kvHeads;
    this.rotary = rotary;
    const proj = (name: string, inFeatures: number, outFeatures: number) =>
      cfg.linear({ params, names: [`${prefix}.${name}`], inFeatures, outFeatures, bias, initStd });
    this.q = proj('q_proj', dim, heads * headDim);
    this.k = proj('k_proj', dim, kvHeads * headDim);
    this.v = proj('v_proj', dim, kvHeads * headDim);
    this.subNorm = cfg.subNorms ? new RMSNorm(params, `${prefix}.attn_sub_norm`, heads * headDim, { eps: cfg.normEps }) : null;
    this.out = proj('o_proj', heads * headDim, dim);
  }

  /** q, k, v, o with their names. */
  projections(): NamedProjection[] {
    return [['q_proj', this.q], ['k_proj', this.k], ['v_proj', this.v], ['o_proj', this.out]].map(([n, layer]) => ({ name: `${this.prefix}.${n as string}`, layer: layer as LinearLayer }));
  }

  /** Prefix tuning (src/peft/prefix.ts): learned key/value positions attended before the tokens, or null. */
  kvPrefix: KvPrefix | null = null;

  /** x (B, T, dim) → (B, T, dim). */
  forward(x: Tensor): Tensor {
    if (this.kvPrefix) {
      const y = this.kvPrefix.attendGrouped(this.q.forward(x), this.k.forward(x), this.v.forward(x), this.heads, this.kvHeads, this.rotary);
      return this.out.forward(this.subNorm ? this.subNorm.forward(y) : y);
    }
    const q = this.rotary.rotate(this.q.forward(x));
    const k = this.rotary.rotate(this.k.forward(x));
    const y = groupedAttention(q, k, this.v.forward(x), this.heads, this.kvHeads);
    return this.out.forward(this.subNorm ? this.subNorm.forward(y) : y);
  }
}

/**
 * The gated MLP of LLaMA and BitNet: `down_proj(subnorm?(act(gate_proj(x)) · up_proj(x)))`,
 * act SiLU (SwiGLU) or squared ReLU; BitNet's `ffn_sub_norm` when configured.
 */
export class GatedMLP {
  readonly gate: LinearLayer;
  readonly up: LinearLayer;
  readonly down: LinearLayer;
  /** `ffn_sub_norm` (BitNet), or null. */
  readonly subNorm: RMSNorm | null;
  readonly act: 'silu' | 'relu2';
  readonly prefix: string;

  constructor(params: ParameterSet, prefix: string, cfg: DecoderBlockConfig) {
    const { dim, hidden, mlpBias: bias, initStd } = cfg;
    this.prefix = prefix;
    this.act = cfg.act;
    const proj = (name: string, inFeatures: number, outFeatures: number) =>
      cfg.linear({ params, names: [`${prefix}.${name}`], inFeatures, outFeatures, bias, initStd });
    this.gate = proj('gate_proj', dim, hidden);
    this.up = proj('up_proj', dim, hidden);
    this.subNorm = cfg.subNorms ? new RMSNorm(params, `${prefix}.ffn_sub_norm`, hidden, { eps: cfg.normEps }) : null;
    this.down = proj('down_proj', hidden, dim);
  }

  /** gate, up, down with their names. */
  projections(): NamedProjection[] {
    return [['gate_proj', this.gate], ['up_proj', this.up], ['down_proj', this.down]].map(([n, layer]) => ({ name: `${this.prefix}.${n as string}`, layer: layer as LinearLayer }));
  }

  /** x (B, T, dim) → (B, T, dim). */
  forward(x: Tensor): Tensor {
    const g = this.gate.forward(x);
    const h = gatedActivation(g, this.up.forward(x), this.act);
    return this.down.forward(this.subNorm ? this.subNorm.forward(h) : h);
  }
}

/**
 * One pre-norm LLaMA-family decoder block under `model.layers.${index}`:
 * `x += attn(input_layernorm(x)); x += mlp(post_attention_layernorm(x))`, RMSNorms.
 */
export class DecoderBlock {
  readonly inputNorm: RMSNorm;
  readonly attn: GroupedQueryAttention;
  readonly postAttentionNorm: RMSNorm;
  readonly mlp: GatedMLP;

  constructor(params: ParameterSet, index: number, cfg: DecoderBlockConfig, rotary: RotaryEmbedding) {
    const prefix = `model.layers.${index}`;
    this.inputNorm = new RMSNorm(params, `${prefix}.input_layernorm`, cfg.dim, { eps: cfg.normEps });
    this.attn = new GroupedQueryAttention(params, `${prefix}.self_attn`, cfg, rotary);
    this.postAttentionNorm = new RMSNorm(params, `${prefix}.post_attention_layernorm`, cfg.dim, { eps: cfg.normEps });
    this.mlp = new GatedMLP(params, `${prefix}.mlp`, cfg);
  }

  /** The block's seven projections, in HF order (q, k, v, o, gate, up, down). */
  projections(): NamedProjection[] {
    return [...this.attn.projections(), ...this.mlp.projections()];
  }

  /** x (B, T, dim) → (B, T, dim). */
  forward(x: Tensor): Tensor {
    const h = add(x, this.attn.forward(this.inputNorm.forward(x)));
    return add(h, this.mlp.forward(this.postAttentionNorm.forward(h)));
  }
}
