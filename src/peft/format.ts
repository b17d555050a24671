/**
 * Adapters in Hugging Face PEFT's file format (DESIGN.md decision 10):
 *
 *   <dir>/adapter_config.json        the LoraConfig (./config.ts `loraConfigJSON`)
 *   <dir>/adapter_model.safetensors  `base_model.model.<module>.lora_A.weight` (r, in) and
 *                                    `….lora_B.weight` (out, r), F32; trained biases and
 *                                    modules_to_save as `base_model.model.<name>`; metadata
 *                                    `format: pt` plus this library's `bitnet.*` keys
 *
 * `peft.PeftModel.from_pretrained(base, dir)` loads such a directory. Loading here refuses, before
 * touching the model, a key that is not one of the model's trainable tensors (naming it and what
 * the keys should look like) and a tensor of another shape (an adapter of another base).
 */
import type { SafetensorsTensor } from '../io/safetensors.js';
import { decodeSafetensors, encodeSafetensors } from '../io/safetensors.js';
import type { FileSystem } from '../runtime/fs-types.js';
import { joinPath } from '../runtime/fs-types.js';
import { type LoraConfig, type LoraConfigJSON, PeftConfigError, loraConfigJSON, resolveLoraConfig } from './config.js';
import type { PeftModel } from './model.js';

export const ADAPTER_CONFIG_FILE = 'adapter_config.json';
export const ADAPTER_WEIGHTS_FILE = 'adapter_model.safetensors';
/** PEFT's prefix of every saved key: the PeftModel's `base_model` (a LoraModel) and its `model`. */
export const PEFT_KEY_PREFIX = 'base_model.model.';

/** A PEFT adapter read from disk. */
export interface LoadedAdapter {
  dir: string;
  config: LoraConfig;
  /** The raw adapter_config.json. */
  json: LoraConfigJSON;
  /** Tensors by this library's names (prefix stripped), as f32. */
  tensors: Map<string, { shape: number[]; data: Float32Array }>;
  /** The safetensors metadata (`bitnet.quant_aware`, `bitnet.base_kind`, `bitnet.base_model`, ...). */
  metadata: Record<string, string>;
}

/** The trainable tensors in PEFT's key names, as safetensors F32 tensors. */
export async function adapterTensors(model: PeftModel): Promise<Map<string, SafetensorsTensor>> {
  const values = await model.params.exportValues();
  const out = new Map<string, SafetensorsTensor>();
  for (const [name, data] of values) out.set(PEFT_KEY_PREFIX + name, { dtype: 'F32', shape: [...model.params.getParam(name).shape], data });
  return out;
}

/**
 * Write `adapter_config.json` and `adapter_model.safetensors` into `dir` (each atomically).
 * `baseModel` is recorded as `base_model_name_or_path` (the base checkpoint's path).
 */
export async function saveAdapter(fs: FileSystem, dir: string, model: PeftModel, options: { baseModel?: string | null; extraMetadata?: Record<string, string> } = {}): Promise<void> {
  await fs.mkdirp(dir);
  const metadata: Record<string, string> = {
    format: 'pt',
    'bitnet.quant_aware': String(model.lora.quantAware),
    'bitnet.base_kind': model.baseKind,
    'bitnet.base_model': JSON.stringify(model.modelConfig),
    ...(options.extraMetadata ?? {}),
  };
  const bytes = encodeSafetensors(await adapterTensors(model), metadata);
  await fs.writeFileAtomic(joinPath(dir, ADAPTER_WEIGHTS_FILE), bytes);
  const json = loraConfigJSON(model.lora, options.baseModel ?? null);
  // as PEFT saves it after injection: the short names of the modules actually adapted
  if (model.lora.targetModules === 'all-linear') json.target_modules = [...new Set(model.targets.map((t) => t.slice(t.lastIndexOf('.') + 1)))].sort();
  await fs.writeFileAtomic(joinPath(dir, ADAPTER_CONFIG_FILE), JSON.stringify(json, null, 2) + '\n');
}

/** f32 values of an F32, F16 or BF16 tensor (PEFT often saves adapters in half precision). */
function toF32(name: string, t: SafetensorsTensor, source: string): Float32Array {
  if (t.dtype === 'F32') return t.data as Float32Array;
  const bits = t.data as Uint16Array;
  const out = new Float32Array(bits.length);
  const u32 = new Uint32Array(out.buffer);
  if (t.dtype === 'BF16') {
    for (let i = 0; i < bits.length; i++) u32[i] = bits[i]! << 16;
    return out;
  }
  if (t.dtype === 'F16') {
    for (let i = 0; i < bits.length; i++) {
      const h = bits[i]!;
      const s = (h & 0x8000) ? -1 : 1;
      const e = (h >> 10) & 0x1f;
      const f = h & 0x3ff;
      out[i] = e === 0 ? s * f * 2 ** -24 : e === 31 ? (f ? NaN : s * Infinity) : s * (1 + f / 1024) * 2 ** (e - 15);
    }
    return out;
  }
  throw new Error(`${source}: tensor ${name} is ${t.dtype}; adapters must be F32, F16 or BF16`);
}

/** Read a PEFT adapter directory. Throws naming the file for a missing or malformed one. */
export async function loadAdapter(fs: FileSystem, dir: string, warnings?: (m: string) => void): Promise<LoadedAdapter> {
  const cfgPath = joinPath(dir, ADAPTER_CONFIG_FILE);
  const wPath = joinPath(dir, ADAPTER_WEIGHTS_FILE);
  for (const p of [cfgPath, wPath]) {
    if (!(await fs.exists(p))) throw new Error(`adapter ${dir}: ${p} is missing; an adapter directory holds ${ADAPTER_CONFIG_FILE} and ${ADAPTER_WEIGHTS_FILE} (bitnet-train finetune writes them)`);
  }
  let json: LoraConfigJSON;
  try {
    json = JSON.parse(await fs.readText(cfgPath)) as LoraConfigJSON;
  } catch (err) {
    throw new Error(`adapter ${cfgPath}: not valid JSON (${(err as Error).message})`);
  }
  const decoded = decodeSafetensors(await fs.readFile(wPath), { source: wPath });
  const metadata = decoded.metadata ?? {};
  const quantAware = metadata['bitnet.quant_aware'] === 'true';
  const config = resolveLoraConfig({ ...json, quant_aware: quantAware }, cfgPath, warnings);
  const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [key, t] of decoded.tensors) {
    if (!key.startsWith(PEFT_KEY_PREFIX)) throw new Error(`${wPath}: key ${key} does not start with ${PEFT_KEY_PREFIX}; PEFT adapter keys look like ${PEFT_KEY_PREFIX}model.layers.0.self_attn.q_proj.lora_A.weight`);
    const name = key.slice(PEFT_KEY_PREFIX.length);
    tensors.set(name.replace(/\.default(\.weight|\.bias)$/, '$1'), { shape: [...t.shape], data: toF32(key, t, wPath) });
  }
  return { dir, config, json, tensors, metadata };
}

/**
 * Put a loaded adapter's tensors into `model`'s trainable set. Every key must be one of its
 * trainable tensors with the same shape (else the adapter is of another base or another config),
 * and every trainable tensor must be in the file.
 */
export function applyAdapter(model: PeftModel, adapter: Pick<LoadedAdapter, 'dir' | 'tensors'>): void {
  const source = joinPath(adapter.dir, ADAPTER_WEIGHTS_FILE);
  const unknown = [...adapter.tensors.keys()].filter((n) => !model.params.has(n));
  if (unknown.length > 0) {
    const example = model.params.names()[0];
    throw new PeftConfigError(
      `${source}: unknown key${unknown.length > 1 ? 's' : ''} ${unknown.slice(0, 4).map((n) => PEFT_KEY_PREFIX + n).join(', ')}${unknown.length > 4 ? `, … (${unknown.length} in all)` : ''}; ` +
        `this model's adapter keys are lora_A/lora_B of its target modules, e.g. ${PEFT_KEY_PREFIX}${example} (is the adapter for another base, or another target_modules?)`,
    );
  }
  const values = new Map<string, Float32Array>();
  for (const [name, t] of model.params) {
    const v = adapter.tensors.get(name);
    if (!v) throw new PeftConfigError(`${source}: missing ${PEFT_KEY_PREFIX}${name} (${t.shape.join(',')}); the adapter does not match this config`);
    if (v.shape.length !== t.shape.length || v.shape.some((d, i) => d !== t.shape[i])) {
      throw new PeftConfigError(`${source}: ${PEFT_KEY_PREFIX}${name} has shape (${v.shape.join(',')}) but this base needs (${t.shape.join(',')}); the adapter was trained on another base model`);
    }
    values.set(name, v.data);
  }
  model.params.importValues(values);
}
