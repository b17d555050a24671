/**
 * The LLaMA model families: Hugging Face's `LlamaForCausalLM` (family `'llama'`) and
 * `BitNetForCausalLM` (family `'bitnet'`, BitNet b1.58 2B4T: BitLinear projections, squared
 * ReLU, sub-norms; defaults in bitnet.ts). One wiring of the layer-sized ops:
 *
 *   x = embed_tokens(tokens)
 *   per layer: x += o_proj(subnorm?(gqa(rope(q_proj(n)), rope(k_proj(n)), v_proj(n)))), n = input_layernorm(x)
 *              x += down_proj(subnorm?(act(gate_proj(n)) · up_proj(n))),              n = post_attention_layernorm(x)
 *   logits = lm_head(norm(x))      (lm_head = embed_tokens when tied)
 *
 * Parameter names are Hugging Face's, so a checkpoint's tensors load by name (src/io/hf/).
 * A Hugging Face `config.json` becomes a `LlamaConfig` in one place: `llamaConfigFromHf` (hf-config.ts).
 */
import { type GradientCheckpointing, forwardBlocks } from '../autograd/checkpoint.js';
import type { VirtualTokens } from './gpt.js';
import { linearCrossEntropy } from '../autograd/ops/loss.js';
import { linear } from '../autograd/ops/linear.js';
import type { RopeScaling } from '../backend/backend.js';
import type { Heap } from '../tensor/heap.js';
import { ParameterSet } from '../tensor/parameters.js';
import { type Tensor, formatShape } from '../tensor/tensor.js';
import type { Rng } from '../util/rng.js';
import { type BitLinearOptions, bitLinearFactory, checkKeepLists, projectionNames, resolveBitLinearOptions } from './bitlinear.js';
import { DecoderBlock, type DecoderBlockConfig, type NamedProjection } from './block.js';
import { Embedding } from './embedding.js';
import { type LinearFactory, denseLinear } from './linear.js';
import { RMSNorm } from './norm.js';
import { RotaryEmbedding } from './rope.js';

/** The model families `LlamaModel` wires. */
export type LlamaFamily = 'llama' | 'bitnet';

/**
 * A LLaMA-family model's shape and options (the Hugging Face `config.json` keys in brackets).
 * Only the first six fields are required; the family decides the defaults of the rest.
 */
export interface LlamaConfig {
  /** `'llama'` (default) or `'bitnet'` (BitNet b1.58 2B4T defaults: see `bitnetDefaults`). */
  family?: LlamaFamily;
  /** [vocab_size] */
  vocabSize: number;
  /** Longest sequence: rows of the RoPE table [max_position_embeddings]. */
  contextLength: number;
  /** [num_hidden_layers] */
  layers: number;
  /** Query heads [num_attention_heads]. */
  heads: number;
  /** Model width [hidden_size]. */
  dim: number;
  /** MLP width [intermediate_size]. */
  hidden: number;
  /** Key/value heads [num_key_value_heads]; divides heads. Default heads (multi-head attention). */
  kvHeads?: number;
  /** Head size [head_dim]; even. Default dim / heads. */
  headDim?: number;
  /** RoPE base θ [rope_theta]. Default 10000 (llama), 500000 (bitnet). */
  ropeTheta?: number;
  /** RoPE scaling [rope_scaling]: `linear`, or Llama 3.1's `llama3`; null (default): plain RoPE. */
  ropeScaling?: RopeScaling | null;
  /** Epsilon of every RMSNorm [rms_norm_eps]. Default 1e-5. */
  normEps?: number;
  /** Share embed_tokens with the LM head [tie_word_embeddings]. Default false (llama), true (bitnet). */
  tiedHead?: boolean;
  /** Biases in q/k/v/o [attention_bias]. Default false. */
  attentionBias?: boolean;
  /** Biases in gate/up/down [mlp_bias]. Default false. */
  mlpBias?: boolean;
  /** Gated MLP activation [hidden_act]: `'silu'` (SwiGLU; llama default) or `'relu2'` (bitnet default). */
  act?: 'silu' | 'relu2';
  /** RMSNorm before o_proj and down_proj (`attn_sub_norm`, `ffn_sub_norm`). Default: family is bitnet. */
  subNorms?: boolean;
  /** Std of the normal init of matrices and embeddings [initializer_range]. Default 0.02. */
  initStd?: number;
  /**
   * The seven projections are BitNet b1.58 BitLinear layers (ternary weights, int8 activations).
   * Default: family is bitnet. A llama with `bitlinear: true` is a LLaMA being converted to
   * 1.58 bit (no sub-norms, so at λ = 0 it computes the FP model).
   */
  bitlinear?: boolean;
  /**
   * BitLinear options. Default `{ norm: false }`: Hugging Face's BitLinear has no norm of its
   * own (BitNet's sub-norms are separate layers). `normEps` defaults to the model's.
   */
  bitlinearOptions?: BitLinearOptions;
  /** Builds the projections; overrides `bitlinear`. */
  linear?: LinearFactory;
}

/** A `LlamaConfig` with every default filled in. */
export type ResolvedLlamaConfig = Required<LlamaConfig>;

/** The defaults of family `'bitnet'` (BitNet b1.58 2B4T), where they differ from llama's. */
export const bitnetDefaults = { ropeTheta: 500000, tiedHead: true, act: 'relu2', subNorms: true, bitlinear: true } as const;

/** Fill defaults and validate; throws naming the field, its value and the fix. */
export function resolveLlamaConfig(config: LlamaConfig): ResolvedLlamaConfig {
  const where = 'Llama config';
  const family = config.family ?? 'llama';
  if (family !== 'llama' && family !== 'bitnet') throw new Error(`${where}: family must be 'llama' or 'bitnet', got ${String(family)}`);
  const bit = family === 'bitnet';
  for (const key of ['vocabSize', 'contextLength', 'layers', 'heads', 'dim', 'hidden'] as const) {
    const v = config[key];
    if (!Number.isInteger(v) || v <= 0) throw new Error(`${where}: ${key} must be a positive integer, got ${v}`);
  }
  const { heads, dim } = config;
  const kvHeads = config.kvHeads ?? heads;
  if (!Number.isInteger(kvHeads) || kvHeads <= 0 || heads % kvHeads !== 0) {
    throw new Error(`${where}: kvHeads must be a positive integer dividing heads ${heads} (grouped-query attention), got ${kvHeads}`);
  }
  if (config.headDim === undefined && dim % heads !== 0) throw new Error(`${where}: dim ${dim} must be divisible by heads ${heads}, or give headDim`);
  const headDim = config.headDim ?? dim / heads;
  if (!Number.isInteger(headDim) || headDim <= 0 || headDim % 2 !== 0) {
    throw new Error(`${where}: headDim must be a positive even integer (RoPE rotates pairs (i, i + headDim/2)), got ${headDim}`);
  }
  const ropeTheta = config.ropeTheta ?? (bit ? bitnetDefaults.ropeTheta : 10000);
  if (!(Number.isFinite(ropeTheta) && ropeTheta > 0)) throw new Error(`${where}: ropeTheta must be a finite number > 0, got ${ropeTheta}`);
  const ropeScaling = config.ropeScaling ?? null;
  if (ropeScaling !== null) {
    const ok = (v: unknown) => typeof v === 'number' && Number.isFinite(v) && v > 0;
    const good = ropeScaling.kind === 'linear' ? ok(ropeScaling.factor)
      : ropeScaling.kind === 'llama3' && ok(ropeScaling.factor) && ok(ropeScaling.lowFreqFactor) && ok(ropeScaling.originalMaxPositions) && ropeScaling.highFreqFactor > ropeScaling.lowFreqFactor;
    if (!good) throw new Error(`${where}: ropeScaling must be { kind: 'linear', factor > 0 } or { kind: 'llama3', factor, lowFreqFactor, highFreqFactor > lowFreqFactor, originalMaxPositions } (all > 0), got ${JSON.stringify(ropeScaling)}`);
  }
  const normEps = config.normEps ?? 1e-5;
  if (!(Number.isFinite(normEps) && normEps > 0)) throw new Error(`${where}: normEps must be a finite number > 0, got ${normEps}`);
  const initStd = config.initStd ?? 0.02;
  if (!(Number.isFinite(initStd) && initStd >= 0)) throw new Error(`${where}: initStd must be a finite number >= 0, got ${initStd}`);
  const act = config.act ?? (bit ? bitnetDefaults.act : 'silu');
  if (act !== 'silu' && act !== 'relu2') throw new Error(`${where}: act must be 'silu' or 'relu2', got ${String(act)}`);
  const flags = {
    tiedHead: config.tiedHead ?? (bit ? bitnetDefaults.tiedHead : false),
    attentionBias: config.attentionBias ?? false,
    mlpBias: config.mlpBias ?? false,
    subNorms: config.subNorms ?? (bit ? bitnetDefaults.subNorms : false),
    bitlinear: config.bitlinear ?? (bit ? bitnetDefaults.bitlinear : false),
  };
  for (const [key, v] of Object.entries(flags)) if (typeof v !== 'boolean') throw new Error(`${where}: ${key} must be true or false, got ${String(v)}`);
  if (flags.subNorms && heads * headDim !== dim) {
    throw new Error(`${where}: subNorms (BitNet's attn_sub_norm) needs heads·headDim = dim, got ${heads}·${headDim} = ${heads * headDim} and dim ${dim}`);
  }
  if (config.bitlinearOptions?.norm === true && flags.subNorms) {
    throw new Error(`${where}: bitlinearOptions.norm: true would add a second norm where BitNet's sub-norms already are; leave norm out (Hugging Face's BitLinear has none)`);
  }
  const bitlinearOptions = resolveBitLinearOptions({ norm: false, normEps, ...config.bitlinearOptions });
  return {
    family, vocabSize: config.vocabSize, contextLength: config.contextLength, layers: config.layers, heads, dim, hidden: config.hidden,
    kvHeads, headDim, ropeTheta, ropeScaling, normEps, act, initStd, ...flags, bitlinearOptions,
    linear: config.linear ?? (flags.bitlinear ? bitLinearFactory(bitlinearOptions) : denseLinear),
  };
}

/**
 * What `forward` returns: logits (B, T, V) without targets; with targets the mean cross-entropy
 * `loss` alone (the head and the loss run fused, chunk by chunk, so the (B, T, V) logits are never
 * held whole: `linearCrossEntropy`).
 */
export interface LlamaOutput {
  logits?: Tensor;
  loss?: Tensor;
}

/**
 * A LLaMA-family causal LM (`LlamaForCausalLM`, `BitNetForCausalLM`) on the tape.
 *
 * @example
 * const model = new LlamaModel({ vocabSize: 97, contextLength: 128, layers: 2, heads: 4, kvHeads: 2, dim: 64, hidden: 160 })
 *   .materialize(heap, new Rng(1));
 * const { loss } = model.forward(heap.indices(x, [B, T]), heap.indices(y, [B, T]));
 * // BitNet b1.58 2B4T's architecture: new LlamaModel({ family: 'bitnet', ... })
 */
export class LlamaModel {
  readonly config: ResolvedLlamaConfig;
  /** Every parameter, by Hugging Face name. */
  readonly params = new ParameterSet();
  readonly tokenEmbedding: Embedding;
  /** The RoPE table shared by every layer. */
  readonly rotary: RotaryEmbedding;
  readonly blocks: DecoderBlock[];
  readonly finalNorm: RMSNorm;
  /** The LM head weight (V, dim): `lm_head.weight`, or the token embedding when tied. */
  readonly headWeight: Tensor;
  /**
   * Recompute blocks' activations in backward instead of keeping them (`forwardBlocks` in
   * src/autograd/checkpoint.ts): true every block, a number n the first n; less arena memory, one
   * more forward of those blocks per step, the same bits.
   */
  gradientCheckpointing: GradientCheckpointing = false;
  /** Prompt or prefix tuning's virtual tokens (src/peft/prompt.ts, prefix.ts), or null. */
  virtualTokens: VirtualTokens | null = null;

  constructor(config: LlamaConfig) {
    const cfg = (this.config = resolveLlamaConfig(config));
    const p = this.params;
    this.tokenEmbedding = new Embedding(p, 'model.embed_tokens', cfg.vocabSize, cfg.dim, cfg.initStd);
    this.rotary = new RotaryEmbedding(cfg.contextLength, cfg.headDim, cfg.ropeTheta, cfg.ropeScaling);
    const blockCfg: DecoderBlockConfig = cfg;
    this.blocks = Array.from({ length: cfg.layers }, (_, i) => new DecoderBlock(p, i, blockCfg, this.rotary));
    // every projection is its own BitLinear layer here (no fused qkv): steByLayer names projections
    const projections = projectionNames(p.names());
    const { steByLayer = {}, ...lists } = cfg.bitlinearOptions;
    checkKeepLists(lists, projections);
    const badSte = Object.keys(steByLayer).filter((n) => !projections.includes(n));
    if (badSte.length > 0) throw new Error(`BitLinear options: steByLayer names unknown layer${badSte.length > 1 ? 's' : ''} ${badSte.map((n) => JSON.stringify(n)).join(', ')}; valid names: ${projections.join(', ')}`);
    this.finalNorm = new RMSNorm(p, 'model.norm', cfg.dim, { eps: cfg.normEps });
    this.headWeight = cfg.tiedHead
      ? this.tokenEmbedding.weight
      : p.register('lm_head.weight', [cfg.vocabSize, cfg.dim], { init: { kind: 'normal', std: cfg.initStd }, decay: true });
  }

  /**
   * Allocate parameters and gradients on `heap`, initialise them from `rng` (null: leave them 0,
   * for a loader that writes every value), compute the RoPE table. Returns `this`.
   */
  materialize(heap: Heap, rng: Rng | null): this {
    this.params.materialize(heap, rng);
    this.rotary.materialize(heap);
    return this;
  }

  /** Every block's seven projections with their names (q, k, v, o, gate, up, down per layer). */
  projections(): NamedProjection[] {
    return this.blocks.flatMap((b) => b.projections());
  }

  /**
   * tokens (B, T) indices, T <= contextLength → logits (B, T, V); with targets (B, T) instead the
   * mean cross-entropy `loss`.
   */
  forward(tokens: Tensor): { logits: Tensor };
  forward(tokens: Tensor, targets: Tensor | undefined): LlamaOutput;
  forward(tokens: Tensor, targets?: Tensor): LlamaOutput {
    const { contextLength } = this.config;
    if (tokens.rank !== 2) throw new Error(`LlamaModel.forward: tokens must be (B, T), got ${formatShape(tokens.shape)}`);
    if (tokens.shape[1]! > contextLength) {
      throw new Error(`LlamaModel.forward: tokens ${formatShape(tokens.shape)} have T = ${tokens.shape[1]} > contextLength ${contextLength}; crop the sequence to the last ${contextLength} tokens`);
    }
    // prompt / prefix tuning (src/peft/): P virtual tokens first; RoPE then numbers the tokens from P
    const vt = this.virtualTokens;
    if (vt && tokens.shape[1]! + vt.count > contextLength) {
      throw new Error(`LlamaModel.forward: tokens ${formatShape(tokens.shape)} and ${vt.count} virtual tokens exceed contextLength ${contextLength}; crop the sequence to the last ${contextLength - vt.count} tokens`);
    }
    let x = this.tokenEmbedding.forward(tokens);
    if (vt) x = vt.prepend(x);
    const inputs = vt ? vt.inputs() : [];
    x = forwardBlocks(this.blocks, x, this.gradientCheckpointing, inputs);
    if (vt) x = vt.strip(x);
    const h = this.finalNorm.forward(x);
    return targets ? { loss: linearCrossEntropy(h, this.headWeight, targets) } : { logits: linear(h, this.headWeight) };
  }
}
