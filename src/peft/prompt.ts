/**
 * Prompt tuning (Lester et al. 2021), with Hugging Face PEFT's `PromptTuningConfig` names:
 * P = `num_virtual_tokens` learned embeddings (`prompt_embeddings`, (P, C)) prepended to the
 * embedded tokens; the base model is frozen. As in PEFT, the virtual tokens take positions
 * 0..P-1 and the tokens P..P+T-1 (learned positions are added to both; RoPE rotates all P+T
 * rows), and the outputs of the P virtual rows are dropped before the final norm and LM head.
 *
 * Initialisation (`prompt_tuning_init`): `RANDOM` (N(0, 1), PEFT's nn.Embedding), `SAMPLE_VOCAB`
 * (rows of the token embedding at random ids) or `TEXT` (the token embeddings of
 * `prompt_tuning_init_text`, repeated to P, as PEFT does).
 */
import { add } from '../autograd/ops/elementwise.js';
import { noGrad } from '../autograd/tape.js';
import type { GPT, VirtualTokens } from '../nn/gpt.js';
import type { LlamaModel } from '../nn/llama.js';
import type { ParameterSet } from '../tensor/parameters.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Rng } from '../util/rng.js';
import { PeftConfigError } from './config.js';
import { dropRows, prependRows, rowView } from './prefix-ops.js';
import type { PromptLearningConfigJSON } from './prefix.js';

/** `adapter_config.json` of a prompt-tuning adapter (PEFT's names). */
export interface PromptTuningConfigJSON extends PromptLearningConfigJSON {
  prompt_tuning_init?: 'RANDOM' | 'SAMPLE_VOCAB' | 'TEXT';
  prompt_tuning_init_text?: string | null;
  tokenizer_name_or_path?: string | null;
  [key: string]: unknown;
}

/** A validated prompt-tuning config. */
export interface PromptTuningConfig {
  numVirtualTokens: number;
  init: 'RANDOM' | 'SAMPLE_VOCAB' | 'TEXT';
  /** The text of `TEXT` init (tokenised by the caller's tokenizer). */
  initText: string | null;
}

const KEYS = new Set(['peft_type', 'task_type', 'num_virtual_tokens', 'token_dim', 'num_transformer_submodules', 'num_attention_heads', 'num_layers',
  'prompt_tuning_init', 'prompt_tuning_init_text', 'tokenizer_name_or_path', 'tokenizer_kwargs', 'inference_mode', 'base_model_name_or_path', 'revision', 'peft_version', 'auto_mapping']);

/** Validate a prompt-tuning config (PEFT's keys; `num_virtual_tokens` required). */
export function resolvePromptTuningConfig(json: PromptTuningConfigJSON, where = 'prompt tuning config'): PromptTuningConfig {
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new PeftConfigError(`${where}: expected a JSON object, got ${JSON.stringify(json)}`);
  if (json.peft_type !== undefined && json.peft_type !== 'PROMPT_TUNING') throw new PeftConfigError(`${where}: peft_type is ${JSON.stringify(json.peft_type)}, expected "PROMPT_TUNING"`);
  for (const key of Object.keys(json)) if (!KEYS.has(key)) throw new PeftConfigError(`${where}: unknown key ${JSON.stringify(key)}; PromptTuningConfig's keys are ${[...KEYS].join(', ')}`);
  const P = json.num_virtual_tokens;
  if (!(typeof P === 'number' && Number.isInteger(P) && P > 0)) throw new PeftConfigError(`${where}: num_virtual_tokens must be a positive integer, got ${JSON.stringify(P)}`);
  const init = json.prompt_tuning_init ?? 'RANDOM';
  if (init !== 'RANDOM' && init !== 'SAMPLE_VOCAB' && init !== 'TEXT') throw new PeftConfigError(`${where}: prompt_tuning_init must be "RANDOM", "SAMPLE_VOCAB" or "TEXT", got ${JSON.stringify(init)}`);
  const initText = json.prompt_tuning_init_text ?? null;
  if (init === 'TEXT' && !(typeof initText === 'string' && initText.length > 0)) throw new PeftConfigError(`${where}: prompt_tuning_init "TEXT" needs prompt_tuning_init_text (a non-empty string)`);
  return { numVirtualTokens: P, init, initText };
}

/**
 * Soft prompt embeddings in front of every sequence.
 *
 * @example
 * const prompt = new PromptTuning({ numVirtualTokens: 8, init: 'RANDOM', initText: null }, model.config.dim, trainable);
 * trainable.materialize(heap, rng);
 * prompt.attach(model);
 */
export class PromptTuning implements VirtualTokens {
  readonly config: PromptTuningConfig;
  /** (P, C), PEFT's `prompt_embeddings`. */
  readonly embedding: Tensor;
  private positions: Tensor | null = null;

  constructor(config: PromptTuningConfig, dim: number, params: ParameterSet) {
    this.config = config;
    this.embedding = params.register('prompt_encoder.embedding.weight', [config.numVirtualTokens, dim], { init: { kind: 'normal', std: 1 }, decay: false });
  }

  get count(): number {
    return this.config.numVirtualTokens;
  }

  /**
   * Hook the model's input. `SAMPLE_VOCAB` and `TEXT` init copy token embedding rows (`initTokenIds`:
   * the tokenised init text; `rng` draws the sampled ids); call after both parameter sets are materialized.
   */
  attach(model: GPT | LlamaModel, init: { rng?: Rng; initTokenIds?: readonly number[] } = {}): this {
    const C = model.config.dim;
    if (this.embedding.shape[1] !== C) throw new PeftConfigError(`prompt tuning: built for width ${this.embedding.shape[1]}, but the model's is ${C}`);
    if (this.count >= model.config.contextLength) throw new PeftConfigError(`prompt tuning: num_virtual_tokens ${this.count} leaves no room in the context of ${model.config.contextLength}; use fewer virtual tokens`);
    const P = this.count;
    const V = model.config.vocabSize;
    let ids: number[] | null = null;
    if (this.config.init === 'SAMPLE_VOCAB') {
      if (!init.rng) throw new PeftConfigError('prompt tuning: prompt_tuning_init "SAMPLE_VOCAB" needs an rng');
      ids = Array.from({ length: P }, () => init.rng!.int(V));
    } else if (this.config.init === 'TEXT') {
      const text = init.initTokenIds ?? [];
      if (text.length === 0) throw new PeftConfigError('prompt tuning: prompt_tuning_init "TEXT" needs the init text\'s token ids (initTokenIds)');
      ids = Array.from({ length: P }, (_, i) => text[i % text.length]!);
    }
    if (ids) {
      const wte = model.tokenEmbedding.weight;
      const rows = wte.heap.backend.readSync(wte.offset, wte.size);
      const values = new Float64Array(P * C);
      ids.forEach((id, p) => {
        if (!(Number.isInteger(id) && id >= 0 && id < V)) throw new PeftConfigError(`prompt tuning: init token id ${id} is outside the vocabulary [0, ${V})`);
        values.set(rows.subarray(id * C, (id + 1) * C), p * C);
      });
      this.embedding.heap.backend.write(this.embedding.offset, values);
    }
    const wpe = 'positionEmbedding' in model ? model.positionEmbedding : null;
    this.positions = wpe ? rowView(wpe.weight, 0, P) : null;
    model.virtualTokens = this;
    return this;
  }

  prepend(x: Tensor): Tensor {
    const P = this.count;
    const rows = this.positions ? add(this.embedding, this.positions) : this.embedding;
    return prependRows(x, P, { source: rows, col: 0, width: x.shape[2]!, at: 0 });
  }

  inputs(): readonly Tensor[] {
    return [];
  }

  strip(x: Tensor): Tensor {
    return dropRows(x, this.count);
  }

  /** PEFT's `prompt_embeddings` (P, C). */
  promptEmbeddings(): Float32Array {
    return noGrad(() => Float32Array.from(this.embedding.dataSync()));
  }

  /** Set the soft prompt from PEFT's `prompt_embeddings`. */
  loadPromptEmbeddings(values: ArrayLike<number>): void {
    if (values.length !== this.embedding.size) {
      throw new PeftConfigError(`prompt tuning: prompt_embeddings has ${values.length} values but this model needs (${this.embedding.shape.join(', ')}) = ${this.embedding.size}; the adapter was trained for another base`);
    }
    this.embedding.heap.backend.write(this.embedding.offset, values);
  }
}

/** adapter_config.json of a soft prompt (PEFT's `PromptTuningConfig`). */
export function promptTuningConfigJSON(cfg: PromptTuningConfig, shape: { layers: number; dim: number; heads: number }, baseModel: string | null): PromptTuningConfigJSON {
  return {
    peft_type: 'PROMPT_TUNING',
    task_type: 'CAUSAL_LM',
    base_model_name_or_path: baseModel,
    revision: null,
    inference_mode: true,
    num_virtual_tokens: cfg.numVirtualTokens,
    token_dim: shape.dim,
    num_transformer_submodules: 1,
    num_attention_heads: shape.heads,
    num_layers: shape.layers,
    prompt_tuning_init: cfg.init,
    prompt_tuning_init_text: cfg.initText,
    tokenizer_name_or_path: null,
  };
}
