/**
 * Prefix tuning / P-tuning v2 (Li & Liang 2021; Liu et al. 2022), with Hugging Face PEFT's
 * `PrefixTuningConfig` names: P = `num_virtual_tokens` learned key/value positions in every
 * layer, in front of the tokens. The base model is frozen; only the prefix trains.
 *
 *   prefix_projection false   E (P, L·2·D) is the prefix itself            (PEFT: PrefixEncoder.embedding)
 *   prefix_projection true    E (P, C) → Linear(C, H) → tanh → Linear(H, L·2·D)   (the reparameterisation MLP)
 *
 * D = kvHeads·headDim is a layer's key (or value) width (PEFT's token_dim for grouped-query models),
 * H = `encoder_hidden_size`. Row p of the output holds, layer after layer, that layer's key then
 * value: columns [2l·D, (2l+1)·D) and [(2l+1)·D, (2l+2)·D) — PEFT's `past_key_values` layout, so
 * the PEFT file's `prompt_embeddings` is that output (P, L·2·D), which PEFT saves for both modes.
 *
 * Attention with the prefix (./prefix-ops.ts): the fused qkv gets P leading rows [0 | k_p | v_p],
 * causal attention runs over P+T rows, the first P outputs are dropped. The tokens take positions
 * P..P+T-1 (RoPE rotates them by those; learned positions are looked up there), as in PEFT with
 * transformers' `past_key_values`; the prefix keys are not rotated (they are cached keys).
 */
import { attention, groupedAttention } from '../autograd/ops/attention.js';
import { linear } from '../autograd/ops/linear.js';
import { rope, ropeHeads } from '../autograd/ops/rope.js';
import { noGrad } from '../autograd/tape.js';
import type { KvPrefix } from '../nn/block.js';
import type { GPT, VirtualTokens } from '../nn/gpt.js';
import type { LlamaModel } from '../nn/llama.js';
import type { RotaryEmbedding } from '../nn/rope.js';
import type { ParameterSet } from '../tensor/parameters.js';
import type { Tensor } from '../tensor/tensor.js';
import { PeftConfigError } from './config.js';
import { dropRows, prependRows, rowView, tanh } from './prefix-ops.js';

/** The keys PEFT's virtual-token configs share (`PromptLearningConfig`: prefix and prompt tuning). */
export interface PromptLearningConfigJSON {
  peft_type?: string;
  task_type?: string | null;
  num_virtual_tokens?: number;
  token_dim?: number | null;
  num_transformer_submodules?: number | null;
  num_attention_heads?: number | null;
  num_layers?: number | null;
  [key: string]: unknown;
}

/** `adapter_config.json` of a prefix-tuning adapter (PEFT's names). */
export interface PrefixTuningConfigJSON extends PromptLearningConfigJSON {
  encoder_hidden_size?: number | null;
  prefix_projection?: boolean;
  [key: string]: unknown;
}

/** A validated prefix-tuning config. */
export interface PrefixTuningConfig {
  /** P: learned key/value positions per layer. */
  numVirtualTokens: number;
  /** Train the prefix through the MLP (PEFT's `prefix_projection`). */
  prefixProjection: boolean;
  /** Hidden width H of the MLP (PEFT's `encoder_hidden_size`; default the model width). */
  encoderHiddenSize: number | null;
}

/** The attention shape a prefix is built for. */
export interface PrefixModelShape {
  layers: number;
  /** Model width C (the MLP's input width). */
  dim: number;
  /** Query heads. */
  heads: number;
  /** Key/value heads (= heads without grouped-query attention). */
  kvHeads: number;
  headDim: number;
}

const KEYS = new Set(['peft_type', 'task_type', 'num_virtual_tokens', 'token_dim', 'num_transformer_submodules', 'num_attention_heads', 'num_layers',
  'encoder_hidden_size', 'prefix_projection', 'inference_mode', 'base_model_name_or_path', 'revision', 'peft_version', 'auto_mapping']);

/** Validate a prefix-tuning config (PEFT's keys; `num_virtual_tokens` required) and fill defaults. */
export function resolvePrefixTuningConfig(json: PrefixTuningConfigJSON, where = 'prefix tuning config'): PrefixTuningConfig {
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new PeftConfigError(`${where}: expected a JSON object, got ${JSON.stringify(json)}`);
  if (json.peft_type !== undefined && json.peft_type !== 'PREFIX_TUNING') throw new PeftConfigError(`${where}: peft_type is ${JSON.stringify(json.peft_type)}, expected "PREFIX_TUNING"`);
  for (const key of Object.keys(json)) if (!KEYS.has(key)) throw new PeftConfigError(`${where}: unknown key ${JSON.stringify(key)}; PrefixTuningConfig's keys are ${[...KEYS].join(', ')}`);
  const P = json.num_virtual_tokens;
  if (!(typeof P === 'number' && Number.isInteger(P) && P > 0)) throw new PeftConfigError(`${where}: num_virtual_tokens must be a positive integer, got ${JSON.stringify(P)}`);
  const prefixProjection = json.prefix_projection ?? false;
  if (typeof prefixProjection !== 'boolean') throw new PeftConfigError(`${where}: prefix_projection must be true or false, got ${JSON.stringify(prefixProjection)}`);
  const H = json.encoder_hidden_size ?? null;
  if (H !== null && !(typeof H === 'number' && Number.isInteger(H) && H > 0)) throw new PeftConfigError(`${where}: encoder_hidden_size must be a positive integer, got ${JSON.stringify(H)}`);
  const subs = json.num_transformer_submodules ?? 1;
  if (subs !== 1) throw new PeftConfigError(`${where}: num_transformer_submodules ${JSON.stringify(subs)}: decoder-only models have 1`);
  return { numVirtualTokens: P, prefixProjection, encoderHiddenSize: H };
}

/** Check a PEFT config's model-shape keys (when present) against the model; a mismatch names both. */
export function checkPrefixShape(json: PrefixTuningConfigJSON, shape: PrefixModelShape, where = 'prefix tuning config'): void {
  const want: Record<string, number> = { num_layers: shape.layers, token_dim: shape.kvHeads * shape.headDim, num_attention_heads: shape.kvHeads };
  for (const [key, v] of Object.entries(want)) {
    const got = json[key];
    if (got != null && got !== v) throw new PeftConfigError(`${where}: ${key} is ${JSON.stringify(got)} but the base model needs ${v}; the adapter was trained for another base`);
  }
}

/**
 * The prefix of every layer, as trainable parameters in `params` and hooks on a GPT's attention.
 *
 * @example
 * const prefix = new PrefixTuning({ numVirtualTokens: 16, prefixProjection: true, encoderHiddenSize: 256 }, shapeOf(model), trainable);
 * trainable.materialize(heap, rng);
 * prefix.attach(model);   // model.forward now attends over the prefix in every layer
 */
export class PrefixTuning implements VirtualTokens {
  readonly config: PrefixTuningConfig;
  readonly shape: PrefixModelShape;
  /** The (P, L·2·D) prefix without projection, else the MLP's input embedding (P, C). */
  readonly embedding: Tensor;
  /** The MLP (`prefix_projection`): transform.0 (H, C) + bias, transform.2 (L·2·D, H) + bias; null without. */
  readonly mlp: { w0: Tensor; b0: Tensor; w2: Tensor; b2: Tensor } | null;
  private current: Tensor | null = null;

  constructor(config: PrefixTuningConfig, shape: PrefixModelShape, params: ParameterSet) {
    this.config = config;
    this.shape = shape;
    const P = config.numVirtualTokens;
    const width = this.width;
    // PEFT: nn.Embedding (N(0, 1)); nn.Linear (kaiming-uniform, here the normal of the same variance)
    if (!config.prefixProjection) {
      this.embedding = params.register('prompt_encoder.embedding.weight', [P, width], { init: { kind: 'normal', std: 1 }, decay: false });
      this.mlp = null;
    } else {
      const C = shape.dim;
      const H = config.encoderHiddenSize ?? C;
      const std = (fanIn: number) => 1 / Math.sqrt(3 * fanIn);
      this.embedding = params.register('prompt_encoder.embedding.weight', [P, C], { init: { kind: 'normal', std: 1 }, decay: false });
      this.mlp = {
        w0: params.register('prompt_encoder.transform.0.weight', [H, C], { init: { kind: 'normal', std: std(C) }, decay: true }),
        b0: params.register('prompt_encoder.transform.0.bias', [H], { init: { kind: 'normal', std: std(C) }, decay: false }),
        w2: params.register('prompt_encoder.transform.2.weight', [width, H], { init: { kind: 'normal', std: std(H) }, decay: true }),
        b2: params.register('prompt_encoder.transform.2.bias', [width], { init: { kind: 'normal', std: std(H) }, decay: false }),
      };
    }
  }

  /** P. */
  get count(): number {
    return this.config.numVirtualTokens;
  }

  /** L·2·D: one row of `prompt_embeddings`. */
  get width(): number {
    return this.shape.layers * 2 * this.shape.kvHeads * this.shape.headDim;
  }

  /** Hook every block's attention and the model's input (`model.virtualTokens`); a GPT or a LLaMA-family model. */
  attach(model: GPT | LlamaModel): this {
    const have = prefixShapeOf(model);
    const want = this.shape;
    if ((Object.keys(want) as (keyof PrefixModelShape)[]).some((k) => have[k] !== want[k])) {
      throw new PeftConfigError(`prefix tuning: built for ${JSON.stringify(want)}, but the model is ${JSON.stringify(have)}`);
    }
    model.blocks.forEach((block, l) => {
      const hook: KvPrefix = {
        attend: (qkv, h, rotary) => this.attend(l, qkv, h, rotary),
        attendGrouped: (q, k, v, h, kvh, rotary) => this.attendGrouped(l, q, k, v, h, kvh, rotary),
      };
      block.attn.kvPrefix = hook;
    });
    model.virtualTokens = this;
    return this;
  }

  /** The prefix of every layer (P, L·2·D): the embedding, or the MLP's output. */
  encode(): Tensor {
    const m = this.mlp;
    return m ? linear(tanh(linear(this.embedding, m.w0, m.b0)), m.w2, m.b2) : this.embedding;
  }

  prepend(x: Tensor): Tensor {
    this.current = this.encode();
    return x;
  }

  inputs(): readonly Tensor[] {
    return this.current && this.current.kind === 'activation' ? [this.current] : [];
  }

  strip(x: Tensor): Tensor {
    return x;
  }

  /** Layer l's attention over [prefix; tokens]: qkv (B, T, 3C) → (B, T, C). */
  attend(l: number, qkv: Tensor, heads: number, rotary: RotaryEmbedding | null): Tensor {
    const kv = this.current;
    if (!kv) throw new Error('prefix tuning: the prefix was not computed for this forward; call model.forward (it runs virtualTokens.prepend first)');
    qkv.heap.check(kv, 'prefix tuning', 'prefix');
    const P = this.count;
    const C = qkv.shape[2]! / 3;
    const D = this.shape.kvHeads * this.shape.headDim;
    const q = rotary ? rope(qkv, heads, rowView(rotary.table, P, rotary.table.shape[0]! - P)) : qkv;
    // rows [0 | k_p | v_p] (k and v adjacent in both the fused qkv and the prefix row), then the tokens
    const withPrefix = prependRows(q, P, { source: kv, col: 2 * l * D, width: 2 * D, at: C });
    return dropRows(attention(withPrefix, heads), P);
  }

  /** Layer l's grouped-query attention over [prefix; tokens]: q (B, T, NH·hs), k, v (B, T, NKV·hs) → (B, T, NH·hs). */
  attendGrouped(l: number, q: Tensor, k: Tensor, v: Tensor, heads: number, kvHeads: number, rotary: RotaryEmbedding): Tensor {
    const kv = this.current;
    if (!kv) throw new Error('prefix tuning: the prefix was not computed for this forward; call model.forward (it runs virtualTokens.prepend first)');
    q.heap.check(kv, 'prefix tuning', 'prefix');
    const P = this.count;
    const D = this.shape.kvHeads * this.shape.headDim;
    const table = rowView(rotary.table, P, rotary.table.shape[0]! - P);
    const qp = prependRows(ropeHeads(q, table), P, null);
    const kp = prependRows(ropeHeads(k, table), P, { source: kv, col: 2 * l * D, width: D, at: 0 });
    const vp = prependRows(v, P, { source: kv, col: (2 * l + 1) * D, width: D, at: 0 });
    return dropRows(groupedAttention(qp, kp, vp, heads, kvHeads), P);
  }

  /** PEFT's `prompt_embeddings` (P, L·2·D): the prefix as it is now (the MLP's output with projection). */
  promptEmbeddings(): Float32Array {
    const heap = this.embedding.heap;
    const out = noGrad(() => Float32Array.from(this.encode().dataSync()));
    if (this.mlp) heap.resetArena();
    return out;
  }

  /** Set the prefix from PEFT's `prompt_embeddings` (only without projection: PEFT saves the MLP's output, not the MLP). */
  loadPromptEmbeddings(values: ArrayLike<number>): void {
    if (this.mlp) throw new PeftConfigError('prefix tuning: a saved prefix is the MLP\'s output; load it with prefix_projection false');
    const want = this.count * this.width;
    if (values.length !== want) throw new PeftConfigError(`prefix tuning: prompt_embeddings has ${values.length} values but this model needs (${this.count}, ${this.width}) = ${want}; the adapter was trained for another base`);
    this.embedding.heap.backend.write(this.embedding.offset, values);
  }
}

/** The prefix shape of a model: a GPT (multi-head attention: kvHeads = heads) or a LLaMA-family model (its kvHeads, headDim). */
export function prefixShapeOf(model: GPT | LlamaModel): PrefixModelShape {
  const c = model.config as { layers: number; dim: number; heads: number; kvHeads?: number; headDim?: number };
  return { layers: c.layers, dim: c.dim, heads: c.heads, kvHeads: c.kvHeads ?? c.heads, headDim: c.headDim ?? c.dim / c.heads };
}

/** `prefixShapeOf` for a GPT. */
export const gptPrefixShape = (model: GPT): PrefixModelShape => prefixShapeOf(model);

/** adapter_config.json of a prefix (PEFT's `PrefixTuningConfig`; token_dim and heads as PEFT sets them for this base). */
export function prefixTuningConfigJSON(cfg: PrefixTuningConfig, shape: PrefixModelShape, baseModel: string | null): PrefixTuningConfigJSON {
  return {
    peft_type: 'PREFIX_TUNING',
    task_type: 'CAUSAL_LM',
    base_model_name_or_path: baseModel,
    revision: null,
    inference_mode: true,
    num_virtual_tokens: cfg.numVirtualTokens,
    token_dim: shape.kvHeads * shape.headDim,
    num_transformer_submodules: 1,
    num_attention_heads: shape.kvHeads,
    num_layers: shape.layers,
    encoder_hidden_size: cfg.encoderHiddenSize ?? shape.dim,
    prefix_projection: cfg.prefixProjection,
  };
}
