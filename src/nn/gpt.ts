/**
 * `GPT`: a small decoder-only transformer (token + learned position embeddings, pre-norm
 * blocks, final norm, LM head), with Hugging Face LLaMA-style parameter names.
 */
import { crossEntropy } from '../autograd/ops/loss.js';
import { linear } from '../autograd/ops/linear.js';
import type { Heap } from '../tensor/heap.js';
import { ParameterSet } from '../tensor/parameters.js';
import { type Tensor, formatShape } from '../tensor/tensor.js';
import type { Rng } from '../util/rng.js';
import { Block, type BlockConfig, makeNorm } from './block.js';
import { Embedding } from './embedding.js';
import { type LinearFactory, denseLinear } from './linear.js';
import type { NormLayer } from './norm.js';

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
  /** `'gelu'` (default; hidden 4·dim) or `'swiglu'` (hidden ≈ 8/3·dim, a multiple of 16). */
  mlp?: 'gelu' | 'swiglu';
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
  /** Builds the attention and MLP projections. Default `denseLinear`; pass a BitLinear factory for ternary training. */
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
  if (mlp !== 'gelu' && mlp !== 'swiglu') throw new Error(`GPT config: mlp must be 'gelu' or 'swiglu', got ${String(mlp)}`);
  const hidden = config.hidden ?? (mlp === 'swiglu' ? Math.ceil((8 * config.dim) / 3 / 16) * 16 : 4 * config.dim);
  if (!Number.isInteger(hidden) || hidden <= 0) throw new Error(`GPT config: hidden must be a positive integer, got ${hidden}`);
  const initStd = config.initStd ?? 0.02;
  if (!(Number.isFinite(initStd) && initStd >= 0)) throw new Error(`GPT config: initStd must be a finite number >= 0, got ${initStd}`);
  const normEps = config.normEps ?? 1e-5;
  if (!(Number.isFinite(normEps) && normEps > 0)) throw new Error(`GPT config: normEps must be a finite number > 0, got ${normEps}`);
  return {
    vocabSize: config.vocabSize,
    contextLength: config.contextLength,
    layers: config.layers,
    heads: config.heads,
    dim: config.dim,
    norm,
    mlp,
    hidden,
    bias: config.bias ?? false,
    tiedHead: config.tiedHead ?? false,
    initStd,
    normEps,
    linear: config.linear ?? denseLinear,
  };
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
  readonly positionEmbedding: Embedding;
  readonly blocks: Block[];
  readonly finalNorm: NormLayer;
  /** The LM head weight (V, C): `lm_head.weight`, or the token embedding when tied. */
  readonly headWeight: Tensor;

  constructor(config: GPTConfig) {
    const cfg = (this.config = resolveGPTConfig(config));
    const p = this.params;
    this.tokenEmbedding = new Embedding(p, 'model.embed_tokens', cfg.vocabSize, cfg.dim, cfg.initStd);
    this.positionEmbedding = new Embedding(p, 'model.embed_positions', cfg.contextLength, cfg.dim, cfg.initStd);
    const blockCfg: BlockConfig = cfg;
    this.blocks = Array.from({ length: cfg.layers }, (_, i) => new Block(p, i, blockCfg));
    this.finalNorm = makeNorm(p, 'model.norm', cfg);
    this.headWeight = cfg.tiedHead
      ? this.tokenEmbedding.weight
      : p.register('lm_head.weight', [cfg.vocabSize, cfg.dim], { init: { kind: 'normal', std: cfg.initStd }, decay: true });
  }

  /** Allocate the parameter and gradient blocks on `heap` and initialise from `rng`. Returns `this`. */
  materialize(heap: Heap, rng: Rng): this {
    this.params.materialize(heap, rng);
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
    let x = this.tokenEmbedding.forward(tokens, this.positionEmbedding);
    for (const block of this.blocks) x = block.forward(x);
    const logits = linear(this.finalNorm.forward(x), this.headWeight);
    return targets ? { logits, loss: crossEntropy(logits, targets) } : { logits };
  }
}
