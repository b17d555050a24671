/**
 * PEFT's files for prompt-learning adapters (prefix tuning, prompt tuning): `adapter_config.json`
 * and `adapter_model.safetensors` holding one F32 tensor, `prompt_embeddings` — (P, L·2·D) for a
 * prefix, (P, C) for a soft prompt — as PEFT's `get_peft_model_state_dict` writes them and
 * `set_peft_model_state_dict` reads them.
 */
import { decodeSafetensors, encodeSafetensors } from '../io/safetensors.js';
import { PeftConfigError } from './config.js';

/** The two files of an adapter directory, as bytes/text. */
export interface PromptAdapterFiles {
  'adapter_config.json': string;
  'adapter_model.safetensors': Uint8Array;
}

/** What a prompt-learning adapter file holds. */
export interface PromptAdapter {
  config: Record<string, unknown>;
  /** `prompt_embeddings`, row-major. */
  embeddings: Float32Array;
  shape: [number, number];
}

/** Serialise `config` (PEFT's JSON) and the (rows, cols) `prompt_embeddings`. */
export function encodePromptAdapter(adapter: PromptAdapter, metadata: Record<string, string> = { format: 'pt' }): PromptAdapterFiles {
  const [rows, cols] = adapter.shape;
  if (adapter.embeddings.length !== rows * cols) throw new Error(`encodePromptAdapter: ${adapter.embeddings.length} values for prompt_embeddings (${rows}, ${cols})`);
  return {
    'adapter_config.json': `${JSON.stringify(adapter.config, null, 2)}\n`,
    'adapter_model.safetensors': encodeSafetensors({ prompt_embeddings: { dtype: 'F32', shape: [rows, cols], data: adapter.embeddings } }, metadata),
  };
}

/**
 * Parse an adapter's files; `peftType` is the expected `peft_type`. Any tensor besides
 * `prompt_embeddings`, another dtype than F32/F16/BF16 or a rank other than 2 is refused by name.
 */
export function decodePromptAdapter(files: PromptAdapterFiles, peftType: 'PREFIX_TUNING' | 'PROMPT_TUNING', where = 'adapter'): PromptAdapter {
  let config: Record<string, unknown>;
  try {
    config = JSON.parse(files['adapter_config.json']) as Record<string, unknown>;
  } catch (err) {
    throw new PeftConfigError(`${where}/adapter_config.json: not valid JSON (${(err as Error).message})`);
  }
  if (config === null || typeof config !== 'object' || Array.isArray(config)) throw new PeftConfigError(`${where}/adapter_config.json: expected a JSON object`);
  if (config.peft_type !== peftType) throw new PeftConfigError(`${where}/adapter_config.json: peft_type is ${JSON.stringify(config.peft_type)}, expected ${JSON.stringify(peftType)}`);
  const { tensors } = decodeSafetensors(files['adapter_model.safetensors'], { source: `${where}/adapter_model.safetensors` });
  for (const name of tensors.keys()) {
    if (name !== 'prompt_embeddings') throw new PeftConfigError(`${where}/adapter_model.safetensors: unknown tensor ${JSON.stringify(name)}; a ${peftType} adapter holds only prompt_embeddings`);
  }
  const t = tensors.get('prompt_embeddings');
  if (!t) throw new PeftConfigError(`${where}/adapter_model.safetensors: no prompt_embeddings tensor`);
  if (t.shape.length !== 2) throw new PeftConfigError(`${where}/adapter_model.safetensors: prompt_embeddings has shape (${t.shape.join(', ')}); expected (num_virtual_tokens, width)`);
  let embeddings: Float32Array;
  if (t.dtype === 'F32') embeddings = t.data as Float32Array;
  else if (t.dtype === 'F16' || t.dtype === 'BF16') embeddings = Float32Array.from(t.data as Uint16Array, t.dtype === 'BF16' ? bf16ToF32 : f16ToF32);
  else throw new PeftConfigError(`${where}/adapter_model.safetensors: prompt_embeddings is ${t.dtype}; expected F32, F16 or BF16`);
  if (config.num_virtual_tokens !== undefined && config.num_virtual_tokens !== t.shape[0]) {
    throw new PeftConfigError(`${where}: adapter_config.json says num_virtual_tokens ${JSON.stringify(config.num_virtual_tokens)} but prompt_embeddings has ${t.shape[0]} rows`);
  }
  return { config, embeddings, shape: [t.shape[0]!, t.shape[1]!] };
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

function bf16ToF32(bits: number): number {
  u32[0] = bits << 16;
  return f32[0]!;
}

function f16ToF32(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >> 10) & 0x1f;
  const frac = bits & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}
