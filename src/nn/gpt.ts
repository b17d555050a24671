/**
 * `GPT`: a small decoder-only transformer (token embeddings + learned positions or RoPE,
 * pre-norm blocks, final norm, LM head), with Hugging Face LLaMA-style parameter names.
 */
import { type GradientCheckpointing, forwardBlocks } from '../autograd/checkpoint.js';
import { embedding } from '../autograd/ops/embedding.js';
import { crossEntropy } from '../autograd/ops/loss.js';
import { rowView } from '../peft/prefix-ops.js';
import { linear } from '../autograd/ops/linear.js';
import type { Heap } from '../tensor/heap.js';
import { ParameterSet } from '../tensor/parameters.js';
import { type Tensor, formatShape } from '../tensor/tensor.js';
import type { Rng } from '../util/rng.js';
import { Block, type BlockConfig, makeNorm } from './block.js';
import { Embedding } from './embedding.js';
import { type LinearFactory, denseLinear } from './linear.js';
import type { NormLayer } from './norm.js';
import { RotaryEmbedding } from './rope.js';
import { type BitLinearOptions, bitLinearFactory, checkKeepLists, projectionNames, resolveBitLinearOptions } from './bitlinear.js';

/** Model shape and options. Only the first five fields are required. */
export interface GPTConfig {
  vocabSize: number;
  /** Longest sequence (rows of the position table). */
  contextLength: number;
  layers: number;
  heads: number;
  /** Model width C; must split into `heads` evenly. */
  dim: number;
  /** `'layer'` (default) or `'rms'`. */
  norm?: 'layer' | 'rms';
  /**
   * `'gelu'` (default; hidden 4·dim), `'relu2'` (squared ReLU, as in BitNet b1.58 2B4T;
   * hidden 4·dim) or `'swiglu'` (hidden ≈ 8/3·dim, a multiple of 16).
   */
  mlp?: 'gelu' | 'swiglu' | 'relu2';
  /** MLP hidden width; overrides the default above. */
  hidden?: number;
  /** Biases in linear layers and LayerNorm. Default false. */
  bias?: boolean;
  /** Share the token embedding with the LM head. Default false. */
  tiedHead?: boolean;
  /** Std of the normal init of every matrix and embedding. Default 0.02. */
  initStd?: number;
  /** Epsilon of every norm. Default 1e-5. */
  normEps?: number;
  /**
   * Positions: `'learned'` (default; a `model.embed_positions` table added to the token
   * embeddings) or `'rope'` (rotary embedding of q and k inside attention, LLaMA convention;
   * no position parameters; needs an even head size dim/heads).
   */
  pos?: 'learned' | 'rope';
  /** RoPE base θ (`rope_theta`). Default 10000. */
  ropeTheta?: number;
  // ---- BitNet b1.58 ----
  /**
   * Train the attention and MLP projections as BitNet b1.58 `BitLinear` layers (ternary
   * weights, int8 activations, packed kernels); embeddings and the LM head stay f32.
   * Default false here (the FP32 baseline, and what existing code got before); the
   * `bitnet-train` CLI defaults to true (`--fp` turns it off).
   */
  bitlinear?: boolean;
  /** Options of every BitLinear (`norm`, `normAffine`, `scale`, `ste`, ...); `normEps` defaults to the model's. */
  bitlinearOptions?: BitLinearOptions;
  /**
   * Builds the attention and MLP projections. Default: `bitLinearFactory(bitlinearOptions)`
   * with `bitlinear: true`, else `denseLinear`. A factory given here takes precedence over `bitlinear`.
   */
  linear?: LinearFactory;
}

/** A config with every default filled in. */
export type ResolvedGPTConfig = Required<GPTConfig>;

/** Fill defaults and validate; throws naming the field and the fix. */
export function resolveGPTConfig(config: GPTConfig): ResolvedGPTConfig {
  for (const key of ['vocabSize', 'contextLength', 'layers', 'heads', 'dim'] as const) {
    const v = config[key];
    if (!Number.isInteger(v) || v <= 0) throw new Error(`GPT config: ${key} must be a positive integer, got ${v}`);
  }
  if (config.dim % config.heads !== 0) throw new Error(`GPT config: dim ${config.dim} must be divisible by heads ${config.heads}`);
  const norm = config.norm ?? 'layer';
  if (norm !== 'layer' && norm !== 'rms') throw new Error(`GPT config: norm must be 'layer' or 'rms', got ${String(norm)}`);
  const mlp = config.mlp ?? 'gelu';
  if (mlp !== 'gelu' && mlp !== 'swiglu' && mlp !== 'relu2') throw new Error(`GPT config: mlp must be 'gelu', 'swiglu' or 'relu2', got ${String(mlp)}`);
  const pos = config.pos ?? 'learned';
  if (pos !== 'learned' && pos !== 'rope') throw new Error(`GPT config: pos must be 'learned' or 'rope', got ${String(pos)}`);
  if (pos === 'rope' && (config.dim / config.heads) % 2 !== 0) {
    throw new Error(`GPT config: pos 'rope' needs an even head size, but dim ${config.dim} / heads ${config.heads} = ${config.dim / config.heads}; change dim or heads`);
  }
  const ropeTheta = config.ropeTheta ?? 10000;
  if (!(Number.isFinite(ropeTheta) && ropeTheta > 0)) throw new Error(`GPT config: ropeTheta must be a finite number > 0, got ${ropeTheta}`);
  const hidden = config.hidden ?? (mlp === 'swiglu' ? Math.ceil((8 * config.dim) / 3 / 16) * 16 : 4 * config.dim);
  if (!Number.isInteger(hidden) || hidden <= 0) throw new Error(`GPT config: hidden must be a positive integer, got ${hidden}`);
  const initStd = config.initStd ?? 0.02;
  if (!(Number.isFinite(initStd) && initStd >= 0)) throw new Error(`GPT config: initStd must be a finite number >= 0, got ${initStd}`);
  const normEps = config.normEps ?? 1e-5;
  if (!(Number.isFinite(normEps) && normEps > 0)) throw new Error(`GPT config: normEps must be a finite number > 0, got ${normEps}`);
  // BitNet b1.58: the projections' factory
  const bitlinear = config.bitlinear ?? false;
  if (typeof bitlinear !== 'boolean') throw new Error(`GPT config: bitlinear must be true or false, got ${String(bitlinear)}`);
  const bitlinearOptions = resolveBitLinearOptions({ normEps, ...config.bitlinearOptions });
  return {
    vocabSize: config.vocabSize,
    contextLength: config.contextLength,
    layers: config.layers,
    heads: config.heads,
    dim: config.dim,
    norm,
    mlp,
    hidden,
    pos,
    ropeTheta,
    bias: config.bias ?? false,
    tiedHead: config.tiedHead ?? false,
    initStd,
    normEps,
    bitlinear,
    bitlinearOptions,
    linear: config.linear ?? (bitlinear ? bitLinearFactory(bitlinearOptions) : denseLinear),
  };
}

/**
 * P learned virtual tokens in front of every sequence (prompt tuning, prefix tuning; src/peft/):
 * the real tokens take positions P..P+T-1, as in Hugging Face PEFT.
 */
export interface VirtualTokens {
  /** P. */
  readonly count: number;
  /** The embedded tokens (B, T, C) → what the first block sees (prompt tuning prepends P rows; prefix tuning computes its keys and values here and returns x). */
  prepend(x: Tensor): Tensor;
  /** Activations made in `prepend` that the blocks read (for gradient checkpointing). */
  inputs(): readonly Tensor[];
  /** The last block's output → (B, T, C): without the rows `prepend` added. */
  strip(x: Tensor): Tensor;
}

/** What `forward` returns: logits (B, T, V), and the mean cross-entropy when targets were given. */
export interface GPTOutput {
  logits: Tensor;
  loss?: Tensor;
}

/**
 * A decoder-only transformer.
 *
 * @example
 * const heap = new Heap(backend);
 * const model = new GPT({ vocabSize: 65, contextLength: 64, layers: 4, heads: 4, dim: 128 });
 * model.materialize(heap, new Rng(1337));
 * const { loss } = model.forward(heap.indices(x, [B, T]), heap.indices(y, [B, T]));
 */
export class GPT {
  readonly config: ResolvedGPTConfig;
  /** Every parameter, by HF-style name. */
  readonly params = new ParameterSet();
  readonly tokenEmbedding: Embedding;
  /** Learned positions (`pos: 'learned'`), or null with RoPE. */
  readonly positionEmbedding: Embedding | null;
  /** The RoPE table shared by every layer (`pos: 'rope'`), or null. */
  readonly rotary: RotaryEmbedding | null;
  readonly blocks: Block[];
  readonly finalNorm: NormLayer;
  /** The LM head weight (V, C): `lm_head.weight`, or the token embedding when tied. */
  readonly headWeight: Tensor;
  /**
   * Recompute blocks' activations in backward instead of keeping them (`forwardBlocks` in
   * src/autograd/checkpoint.ts): true every block, a number n the first n; less arena memory, one
   * more forward of those blocks per step, the same bits.
   */
  gradientCheckpointing: GradientCheckpointing = false;
  /** Prompt or prefix tuning's virtual tokens (src/peft/prompt.ts, prefix.ts), or null. */
  virtualTokens: VirtualTokens | null = null;

  constructor(config: GPTConfig) {
    const cfg = (this.config = resolveGPTConfig(config));
    const p = this.params;
    this.tokenEmbedding = new Embedding(p, 'model.embed_tokens', cfg.vocabSize, cfg.dim, cfg.initStd);
    const rope = cfg.pos === 'rope';
    this.positionEmbedding = rope ? null : new Embedding(p, 'model.embed_positions', cfg.contextLength, cfg.dim, cfg.initStd);
    this.rotary = rope ? new RotaryEmbedding(cfg.contextLength, cfg.dim / cfg.heads, cfg.ropeTheta) : null;
    const blockCfg: BlockConfig = cfg;
    this.blocks = Array.from({ length: cfg.layers }, (_, i) => new Block(p, i, blockCfg, this.rotary));
    // QAT mixed precision: bitlinearOptions.keepFp / keepInt8 must name projections of this model
    checkKeepLists(cfg.bitlinearOptions, projectionNames(p.names()));
    this.finalNorm = makeNorm(p, 'model.norm', cfg);
    this.headWeight = cfg.tiedHead
      ? this.tokenEmbedding.weight
      : p.register('lm_head.weight', [cfg.vocabSize, cfg.dim], { init: { kind: 'normal', std: cfg.initStd }, decay: true });
  }

  /**
   * Allocate the parameter and gradient blocks on `heap` and initialise from `rng` (and, with
   * RoPE, the static cos/sin table). Call before the first forward. Returns `this`.
   */
  materialize(heap: Heap, rng: Rng): this {
    this.params.materialize(heap, rng);
    this.rotary?.materialize(heap);
    return this;
  }

  /**
   * tokens (B, T) indices, T <= contextLength → logits (B, T, V); with targets (B, T) also the
   * mean cross-entropy `loss` (a scalar: `loss.backward()`, `await loss.item()`).
   */
  forward(tokens: Tensor, targets?: Tensor): GPTOutput {
    const { contextLength } = this.config;
    if (tokens.rank !== 2) throw new Error(`GPT.forward: tokens must be (B, T), got ${formatShape(tokens.shape)}`);
    if (tokens.shape[1]! > contextLength) {
      throw new Error(`GPT.forward: tokens ${formatShape(tokens.shape)} have T = ${tokens.shape[1]} > contextLength ${contextLength}; crop the sequence to the last ${contextLength} tokens`);
    }
    // prompt / prefix tuning: P virtual tokens come first, so the tokens' positions start at P
    const vt = this.virtualTokens;
    const P = vt ? vt.count : 0;
    if (vt && tokens.shape[1]! + P > contextLength) {
      throw new Error(`GPT.forward: tokens ${formatShape(tokens.shape)} and ${P} virtual tokens exceed contextLength ${contextLength}; crop the sequence to the last ${contextLength - P} tokens`);
    }
    const wpe = this.positionEmbedding?.weight ?? null;
    let x = embedding(tokens, this.tokenEmbedding.weight, wpe && P > 0 ? rowView(wpe, P, wpe.shape[0]! - P) : wpe);
    if (vt) x = vt.prepend(x);
    const inputs = vt ? vt.inputs() : [];
    x = forwardBlocks(this.blocks, x, this.gradientCheckpointing, inputs);
    if (vt) x = vt.strip(x);
    const logits = linear(this.finalNorm.forward(x), this.headWeight);
    return targets ? { logits, loss: crossEntropy(logits, targets) } : { logits };
  }
}
