/**
 * The one place a Hugging Face `config.json` becomes a family config (and back): `llama`
 * (`LlamaForCausalLM`) and `bitnet` (`BitNetForCausalLM`). Every key is either mapped, known not
 * to change the computation, or refused — before anything is allocated — with an error naming the
 * file, the key, its value and what is supported.
 */
import type { RopeScaling } from '../backend/backend.js';
import type { LlamaConfig, LlamaFamily, ResolvedLlamaConfig } from './llama.js';
import { resolveLlamaConfig } from './llama.js';

/**
 * How a checkpoint's BitNet projections are stored (`quantization_config`, transformers'
 * integrations/bitnet.py): `online` — latent (master) weights, quantised every forward
 * (`-bf16` form, trainable); `offline` — ternary weights (U8 packed 4 a byte along dim 0, or
 * ternary values) plus `weight_scale`, which `linear_class: 'bitlinear'` divides the output by
 * (scale = 1/mean|W|) and `'autobitlinear'` multiplies it by (scale = mean|W|).
 */
export interface HfQuantization {
  mode: 'online' | 'offline';
  linearClass: 'bitlinear' | 'autobitlinear';
}

/** What a `config.json` says: the family config and the facts a loader and a tokenizer need. */
export interface HfModelSpec {
  family: LlamaFamily;
  /** `architectures[0]`: `'LlamaForCausalLM'` or `'BitNetForCausalLM'`. */
  architecture: string;
  /** The model config (validated: `resolveLlamaConfig` accepts it). */
  config: LlamaConfig;
  /** BitNet projections' storage form, or null for a dense (FP) checkpoint. */
  quantization: HfQuantization | null;
  bosTokenId: number | null;
  /** One id or several (`eos_token_id` may be a list). */
  eosTokenId: number | number[] | null;
  padTokenId: number | null;
  /** `torch_dtype` as written (informational; tensors carry their own dtype). */
  torchDtype: string | null;
}

const ARCHITECTURE: Record<LlamaFamily, string> = { llama: 'LlamaForCausalLM', bitnet: 'BitNetForCausalLM' };

/** Keys of PretrainedConfig and of common exporters that do not change the forward pass. */
const INERT_KEYS = new Set([
  'architectures', 'model_type', 'torch_dtype', 'dtype', 'transformers_version', 'use_cache', '_name_or_path', 'name_or_path',
  'bos_token_id', 'eos_token_id', 'pad_token_id', 'sep_token_id', 'decoder_start_token_id', 'tokenizer_class',
  'return_dict', 'output_hidden_states', 'output_attentions', 'torchscript', 'use_bfloat16', 'tf_legacy_loss',
  'pruned_heads', 'chunk_size_feed_forward', 'is_encoder_decoder', 'is_decoder', 'cross_attention_hidden_size',
  'add_cross_attention', 'tie_encoder_decoder', 'id2label', 'label2id', 'problem_type', 'finetuning_task',
  'task_specific_params', 'prefix', 'max_length', 'min_length', 'do_sample', 'early_stopping', 'num_beams',
  'num_beam_groups', 'diversity_penalty', 'temperature', 'top_k', 'top_p', 'typical_p', 'repetition_penalty',
  'length_penalty', 'no_repeat_ngram_size', 'encoder_no_repeat_ngram_size', 'bad_words_ids', 'num_return_sequences',
  'output_scores', 'return_dict_in_generate', 'forced_bos_token_id', 'forced_eos_token_id', 'remove_invalid_values',
  'exponential_decay_length_penalty', 'suppress_tokens', 'begin_suppress_tokens', 'auto_map', 'is_llama_config',
  'attn_implementation', '_attn_implementation_autoset',
]);

/** Keys this mapping reads. */
const MAPPED_KEYS = [
  'vocab_size', 'hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads', 'num_key_value_heads',
  'head_dim', 'max_position_embeddings', 'rms_norm_eps', 'rope_theta', 'tie_word_embeddings', 'attention_bias',
  'mlp_bias', 'hidden_act', 'initializer_range', 'quantization_config', 'rope_parameters',
  // accepted only at the value that means "off" / "standard"
  'rope_scaling', 'rope_interleaved', 'attention_dropout', 'pretraining_tp', 'sliding_window', 'use_sliding_window',
] as const;

/** An error in a `config.json`, naming the file and the key. */
export class HfConfigError extends Error {
  constructor(file: string, key: string, message: string) {
    super(`${file}: ${key} ${message}`);
    this.name = 'HfConfigError';
  }
}

/**
 * Map a parsed Hugging Face `config.json` onto a family config, refusing what this library
 * cannot run (a `rope_scaling` type, sliding-window attention, mixture of experts, an unknown
 * `model_type` or key...) with one error naming `file`, the key and the fix.
 *
 * @example
 * const spec = llamaConfigFromHf(JSON.parse(text), 'SmolLM2-135M/config.json');
 * const model = new LlamaModel(spec.config);
 */
export function llamaConfigFromHf(json: unknown, file = 'config.json'): HfModelSpec {
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new HfConfigError(file, '(top level)', 'must be a JSON object');
  const c = json as Record<string, unknown>;
  const fail = (key: string, message: string): never => {
    throw new HfConfigError(file, key, message);
  };
  const modelType = c.model_type;
  if (modelType !== 'llama' && modelType !== 'bitnet') {
    fail('model_type', `${JSON.stringify(modelType)} is not supported; supported: "llama" (LlamaForCausalLM) and "bitnet" (BitNetForCausalLM)`);
  }
  const family = modelType as LlamaFamily;
  const archs = c.architectures;
  if (archs !== undefined) {
    if (!Array.isArray(archs) || archs.length !== 1 || archs[0] !== ARCHITECTURE[family]) {
      fail('architectures', `${JSON.stringify(archs)} does not match model_type "${family}"; expected ["${ARCHITECTURE[family]}"] (a causal LM)`);
    }
  }
  // every key: mapped, inert, or refused
  for (const key of Object.keys(c)) {
    if (INERT_KEYS.has(key) || (MAPPED_KEYS as readonly string[]).includes(key)) continue;
    if (/expert|moe|router/i.test(key)) fail(key, `(mixture of experts) is not supported; only dense LLaMA and BitNet models are`);
    fail(key, `is not a key this library understands for model_type "${family}"; supported keys: ${MAPPED_KEYS.join(', ')} (and the generic PretrainedConfig keys)`);
  }

  const posInt = (key: string, required: boolean): number | undefined => {
    const v = c[key];
    if (v === undefined || v === null) return required ? fail(key, 'is missing; a LLaMA/BitNet config.json must give it') : undefined;
    if (!Number.isInteger(v) || (v as number) <= 0) fail(key, `must be a positive integer, got ${JSON.stringify(v)}`);
    return v as number;
  };
  const positive = (key: string): number | undefined => {
    const v = c[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) fail(key, `must be a finite number > 0, got ${JSON.stringify(v)}`);
    return v as number;
  };
  const bool = (key: string): boolean | undefined => {
    const v = c[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'boolean') fail(key, `must be true or false, got ${JSON.stringify(v)}`);
    return v as boolean;
  };
  const id = (key: string): number | null => {
    const v = c[key];
    if (v === undefined || v === null) return null;
    if (!Number.isInteger(v) || (v as number) < 0) fail(key, `must be a token id (an integer >= 0), got ${JSON.stringify(v)}`);
    return v as number;
  };

  const vocabSize = posInt('vocab_size', true)!;
  const dim = posInt('hidden_size', true)!;
  const hidden = posInt('intermediate_size', true)!;
  const layers = posInt('num_hidden_layers', true)!;
  const heads = posInt('num_attention_heads', true)!;
  const kvHeads = posInt('num_key_value_heads', false) ?? heads;
  if (heads % kvHeads !== 0) fail('num_key_value_heads', `${kvHeads} must divide num_attention_heads ${heads} (grouped-query attention)`);
  const headDim = posInt('head_dim', false) ?? (dim % heads === 0 ? dim / heads : fail('hidden_size', `${dim} is not divisible by num_attention_heads ${heads}; give head_dim`));
  if (headDim % 2 !== 0) fail('head_dim', `${headDim} must be even (RoPE rotates pairs (i, i + head_dim/2))`);
  const contextLength = posInt('max_position_embeddings', true)!;
  // transformers' defaults where a key is absent: LlamaConfig rms_norm_eps 1e-6, BitNetConfig 1e-5
  const normEps = positive('rms_norm_eps') ?? (family === 'llama' ? 1e-6 : 1e-5);
  // transformers >= 5 writes rope_parameters {rope_type, rope_theta, factor, ...} instead of rope_theta / rope_scaling
  const rp = c.rope_parameters;
  if (rp !== undefined && rp !== null && (typeof rp !== 'object' || Array.isArray(rp))) fail('rope_parameters', `must be an object, got ${JSON.stringify(rp)}`);
  const rpo = (rp ?? {}) as Record<string, unknown>;
  if (rp && c.rope_scaling !== undefined && c.rope_scaling !== null) fail('rope_scaling', 'and rope_parameters are both given; a config.json has one of them');
  const rpTheta = rpo.rope_theta;
  if (rpTheta !== undefined && !(typeof rpTheta === 'number' && Number.isFinite(rpTheta) && rpTheta > 0)) fail('rope_parameters.rope_theta', `must be a finite number > 0, got ${JSON.stringify(rpTheta)}`);
  const ropeTheta = positive('rope_theta') ?? (rpTheta as number | undefined);
  const initStd = c.initializer_range === undefined ? undefined : (positive('initializer_range') ?? undefined);
  const tiedHead = bool('tie_word_embeddings') ?? false; // LlamaConfig's and BitNetConfig's default
  const attentionBias = bool('attention_bias');
  const mlpBias = bool('mlp_bias');
  if (family === 'bitnet' && mlpBias) fail('mlp_bias', 'true is not supported for model_type "bitnet" (BitNetMLP has no biases)');
  const act = c.hidden_act ?? (family === 'bitnet' ? 'relu2' : 'silu');
  if (act !== 'silu' && act !== 'relu2') fail('hidden_act', `${JSON.stringify(act)} is not supported; supported: "silu" (SwiGLU) and "relu2" (squared ReLU)`);
  if (family === 'bitnet' && heads * headDim !== dim) {
    fail('head_dim', `${headDim} × num_attention_heads ${heads} must equal hidden_size ${dim} for model_type "bitnet" (attn_sub_norm has hidden_size weights)`);
  }

  // accepted only at their standard values
  const { rope_theta: _theta, ...rpScaling } = rpo;
  void _theta;
  const ropeScaling = parseRopeScaling(rp ? (Object.keys(rpScaling).length > 0 ? rpScaling : null) : c.rope_scaling, contextLength, fail);
  if (c.rope_interleaved !== undefined && c.rope_interleaved !== false) fail('rope_interleaved', `${JSON.stringify(c.rope_interleaved)} is not supported; only false (Hugging Face rotate_half RoPE)`);
  if (c.attention_dropout !== undefined && c.attention_dropout !== 0 && c.attention_dropout !== 0.0) fail('attention_dropout', `${JSON.stringify(c.attention_dropout)} is not supported; only 0 (no dropout)`);
  if (c.pretraining_tp !== undefined && c.pretraining_tp !== 1) fail('pretraining_tp', `${JSON.stringify(c.pretraining_tp)} is not supported; only 1`);
  if (c.use_sliding_window === true) fail('use_sliding_window', 'true is not supported: sliding-window attention is not implemented; only full causal attention');
  if (c.sliding_window !== undefined && c.sliding_window !== null && c.use_sliding_window !== false) {
    fail('sliding_window', `${JSON.stringify(c.sliding_window)} is not supported: sliding-window attention is not implemented; supported: null`);
  }

  const quantization = parseQuantization(c.quantization_config, family, fail);
  const config: LlamaConfig = {
    family, vocabSize, contextLength, layers, heads, kvHeads, headDim, dim, hidden, tiedHead, act: act as 'silu' | 'relu2',
    ...(normEps !== undefined ? { normEps } : {}),
    ...(ropeScaling ? { ropeScaling } : {}),
    ...(ropeTheta !== undefined ? { ropeTheta } : {}),
    ...(initStd !== undefined ? { initStd } : {}),
    ...(attentionBias !== undefined ? { attentionBias } : {}),
    ...(mlpBias !== undefined ? { mlpBias } : {}),
    // a LLaMA with a BitNet quantization_config has BitLinear projections (transformers' bitnet quantizer)
    bitlinear: family === 'bitnet' || quantization !== null,
  };
  try {
    resolveLlamaConfig(config);
  } catch (err) {
    throw new HfConfigError(file, '(model)', `is not a valid model: ${(err as Error).message}`);
  }
  const eos = c.eos_token_id;
  let eosTokenId: number | number[] | null = null;
  if (Array.isArray(eos)) {
    if (!eos.every((e) => Number.isInteger(e) && e >= 0)) fail('eos_token_id', `must be a token id or a list of them, got ${JSON.stringify(eos)}`);
    eosTokenId = eos as number[];
  } else eosTokenId = id('eos_token_id');
  const td = c.torch_dtype ?? c.dtype;
  return {
    family, architecture: ARCHITECTURE[family], config, quantization,
    bosTokenId: id('bos_token_id'), eosTokenId, padTokenId: id('pad_token_id'),
    torchDtype: typeof td === 'string' ? td : null,
  };
}

/** `rope_scaling`: null / default (plain RoPE), `linear`, or Llama 3.1's `llama3`; every other type refused. */
function parseRopeScaling(rs: unknown, maxPositions: number, fail: (key: string, message: string) => never): RopeScaling | null {
  const key = 'rope_scaling';
  if (rs === undefined || rs === null) return null;
  const supported = 'supported: null, {"rope_type": "default"}, "linear" and "llama3"';
  if (typeof rs !== 'object' || Array.isArray(rs)) fail(key, `${JSON.stringify(rs)} must be an object or null; ${supported}`);
  const o = rs as Record<string, unknown>;
  const type = o.rope_type ?? o.type;
  const num = (k: string): number => {
    const v = o[k];
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) fail(`${key}.${k}`, `must be a finite number > 0, got ${JSON.stringify(v)}`);
    return v as number;
  };
  const only = (keys: string[]) => {
    for (const k of Object.keys(o)) if (!['rope_type', 'type', ...keys].includes(k)) fail(`${key}.${k}`, `is not supported for rope_type ${JSON.stringify(type)} (known: ${keys.join(', ')})`);
  };
  if (type === 'default') {
    only([]);
    return null;
  }
  if (type === 'linear') {
    only(['factor']);
    return { kind: 'linear', factor: num('factor') };
  }
  if (type === 'llama3') {
    only(['factor', 'low_freq_factor', 'high_freq_factor', 'original_max_position_embeddings']);
    const s: RopeScaling = { kind: 'llama3', factor: num('factor'), lowFreqFactor: num('low_freq_factor'), highFreqFactor: num('high_freq_factor'), originalMaxPositions: num('original_max_position_embeddings') };
    if (!(s.highFreqFactor > s.lowFreqFactor)) fail(`${key}.high_freq_factor`, `${s.highFreqFactor} must exceed low_freq_factor ${s.lowFreqFactor}`);
    void maxPositions;
    return s;
  }
  return fail(key, `${JSON.stringify(rs)} is not supported: RoPE scaling type ${JSON.stringify(type)} is not implemented; ${supported}`);
}

function parseQuantization(q: unknown, family: LlamaFamily, fail: (key: string, message: string) => never): HfQuantization | null {
  const key = 'quantization_config';
  if (q === undefined || q === null) {
    // transformers' BitNet models always carry one; without it, the -bf16 (online) form is meant
    return family === 'bitnet' ? { mode: 'online', linearClass: 'autobitlinear' } : null;
  }
  if (typeof q !== 'object' || Array.isArray(q)) fail(key, `must be an object, got ${JSON.stringify(q)}`);
  const o = q as Record<string, unknown>;
  if (o.quant_method !== 'bitnet') fail(`${key}.quant_method`, `${JSON.stringify(o.quant_method)} is not supported; supported: "bitnet" (BitNet b1.58 ternary projections)`);
  const linearClass = o.linear_class ?? 'bitlinear';
  if (linearClass !== 'bitlinear' && linearClass !== 'autobitlinear') fail(`${key}.linear_class`, `${JSON.stringify(linearClass)} is not supported; supported: "bitlinear", "autobitlinear"`);
  const mode = o.quantization_mode ?? 'offline';
  if (mode !== 'online' && mode !== 'offline') fail(`${key}.quantization_mode`, `${JSON.stringify(mode)} is not supported; supported: "online", "offline"`);
  if (mode === 'online' && linearClass === 'bitlinear') fail(`${key}.quantization_mode`, '"online" needs linear_class "autobitlinear" (transformers quantises master weights online only in AutoBitLinear)');
  const mtnc = o.modules_to_not_convert;
  if (mtnc !== undefined && mtnc !== null) {
    if (!Array.isArray(mtnc) || mtnc.some((m) => m !== 'lm_head')) fail(`${key}.modules_to_not_convert`, `${JSON.stringify(mtnc)} is not supported; only ["lm_head"] (every attention/MLP projection is a BitLinear)`);
  }
  for (const k of Object.keys(o)) {
    if (!['quant_method', 'linear_class', 'quantization_mode', 'modules_to_not_convert', 'use_rms_norm', 'rms_norm_eps'].includes(k)) {
      fail(`${key}.${k}`, 'is not supported; supported keys: quant_method, linear_class, quantization_mode, modules_to_not_convert');
    }
  }
  if (o.use_rms_norm === true) fail(`${key}.use_rms_norm`, 'true is not supported (a norm inside BitLinear); only false');
  return { mode: mode as HfQuantization['mode'], linearClass: linearClass as HfQuantization['linearClass'] };
}

/** Options of `hfConfigOf`. */
export interface HfConfigOptions {
  /** BitNet projections' form to declare; default online/autobitlinear for a BitLinear model. */
  quantization?: HfQuantization | null;
  bosTokenId?: number | null;
  eosTokenId?: number | number[] | null;
  padTokenId?: number | null;
  /** `torch_dtype` to declare. Default `'bfloat16'` for BitNet, `'float32'` otherwise. */
  torchDtype?: string;
}

/**
 * The Hugging Face `config.json` object of a model config (the inverse of `llamaConfigFromHf`;
 * exporters write it). Throws for a llama-family model with BitLinear projections but no
 * sub-norms declared as `bitnet` — that is a `llama` with a `quantization_config`.
 */
export function hfConfigOf(config: LlamaConfig | ResolvedLlamaConfig, options: HfConfigOptions = {}): Record<string, unknown> {
  const c = resolveLlamaConfig(config);
  if (c.family === 'bitnet' && !c.subNorms) throw new Error('hfConfigOf: a bitnet-family model without sub-norms has no BitNetForCausalLM form');
  if (c.family === 'llama' && c.subNorms) throw new Error('hfConfigOf: a llama-family model with sub-norms has no LlamaForCausalLM form; use family "bitnet"');
  const quantization = options.quantization !== undefined ? options.quantization : (c.bitlinear ? { mode: 'online', linearClass: 'autobitlinear' } as HfQuantization : null);
  const out: Record<string, unknown> = {
    architectures: [ARCHITECTURE[c.family]],
    model_type: c.family,
    vocab_size: c.vocabSize,
    hidden_size: c.dim,
    intermediate_size: c.hidden,
    num_hidden_layers: c.layers,
    num_attention_heads: c.heads,
    num_key_value_heads: c.kvHeads,
    head_dim: c.headDim,
    max_position_embeddings: c.contextLength,
    rms_norm_eps: c.normEps,
    rope_theta: c.ropeTheta,
    rope_scaling: c.ropeScaling === null ? null : c.ropeScaling.kind === 'linear'
      ? { rope_type: 'linear', factor: c.ropeScaling.factor }
      : { rope_type: 'llama3', factor: c.ropeScaling.factor, low_freq_factor: c.ropeScaling.lowFreqFactor, high_freq_factor: c.ropeScaling.highFreqFactor, original_max_position_embeddings: c.ropeScaling.originalMaxPositions },
    tie_word_embeddings: c.tiedHead,
    attention_bias: c.attentionBias,
    ...(c.family === 'llama' ? { mlp_bias: c.mlpBias } : {}),
    hidden_act: c.act,
    initializer_range: c.initStd,
    attention_dropout: 0,
    bos_token_id: options.bosTokenId ?? null,
    eos_token_id: options.eosTokenId ?? null,
    ...(options.padTokenId !== undefined && options.padTokenId !== null ? { pad_token_id: options.padTokenId } : {}),
    torch_dtype: options.torchDtype ?? (c.bitlinear ? 'bfloat16' : 'float32'),
  };
  if (quantization) out.quantization_config = { quant_method: 'bitnet', linear_class: quantization.linearClass, quantization_mode: quantization.mode };
  return out;
}
