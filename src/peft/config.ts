/**
 * LoRA settings with Hugging Face PEFT's `LoraConfig` names (peft/tuners/lora/config.py), as
 * they appear in `adapter_config.json`: `r`, `lora_alpha`, `lora_dropout`, `target_modules`,
 * `bias`, `use_rslora`, `modules_to_save`, `layers_to_transform`, `layers_pattern`,
 * `rank_pattern`, `alpha_pattern`. `resolveLoraConfig` validates a (partial) config and fills
 * PEFT's defaults; `loraConfigJSON` writes the file PEFT reads back.
 *
 * Two keys are this library's own and travel in the adapter's safetensors metadata, not in
 * adapter_config.json (so PEFT sees a plain LoRA): `quant_aware` (the adapter learns through the
 * BitLinear quantiser, see src/peft/README.md) and `base_kind` (dense, ternary or nf4).
 */

/** What `bias` trains besides the adapters: nothing, every bias, or the biases of adapted projections. */
export type LoraBias = 'none' | 'all' | 'lora_only';

/** `adapter_config.json` of a LoRA adapter (PEFT's snake_case names; every key optional here). */
export interface LoraConfigJSON {
  peft_type?: string;
  task_type?: string | null;
  r?: number;
  lora_alpha?: number;
  lora_dropout?: number;
  /** Module names (suffix match), one regex (full match), or `"all-linear"` (every projection but the LM head). */
  target_modules?: string[] | string | null;
  bias?: LoraBias;
  use_rslora?: boolean;
  modules_to_save?: string[] | null;
  layers_to_transform?: number[] | number | null;
  layers_pattern?: string[] | string | null;
  rank_pattern?: Record<string, number>;
  alpha_pattern?: Record<string, number>;
  [key: string]: unknown;
}

/** A validated LoRA config with every default filled in. */
export interface LoraConfig {
  r: number;
  loraAlpha: number;
  loraDropout: number;
  /** Names (suffix match), a regex string (full match), or 'all-linear'. */
  targetModules: readonly string[] | { regex: string } | 'all-linear';
  bias: LoraBias;
  useRslora: boolean;
  /** Modules (e.g. `lm_head`, `model.embed_tokens`) trained in full and saved with the adapter. */
  modulesToSave: readonly string[];
  /** Only these layer indices get adapters (null: all). */
  layersToTransform: readonly number[] | null;
  /** The name of the layer list in module names (default `layers`). */
  layersPattern: string | null;
  /** Per-module rank overrides: a key matches a module whose name ends with it (a regex, as PEFT). */
  rankPattern: Readonly<Record<string, number>>;
  /** Per-module alpha overrides, matched as `rankPattern`. */
  alphaPattern: Readonly<Record<string, number>>;
  /**
   * Quantisation-aware LoRA on BitLinear bases: the forward quantises `W + s·B·A`, so merging gives
   * the trained model exactly (the base keeps its f32 latent for it). Default false.
   */
  quantAware: boolean;
}

/** PEFT's default targets for LLaMA-style models (`TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING['llama']`). */
export const DEFAULT_TARGET_MODULES = ['q_proj', 'v_proj'] as const;

/** adapter_config.json keys PEFT writes that change nothing here at these values (other values are refused). */
const NEUTRAL_KEYS: Record<string, (v: unknown) => boolean> = {
  fan_in_fan_out: (v) => v === false || v == null,
  use_dora: (v) => v === false || v == null,
  layer_replication: (v) => v == null,
  lora_bias: (v) => v === false || v == null,
  init_lora_weights: (v) => v === true || v === false || v === 'gaussian' || v == null,
  exclude_modules: (v) => v == null || (Array.isArray(v) && v.length === 0),
  use_qalora: (v) => v === false || v == null,
  target_parameters: (v) => v == null || (Array.isArray(v) && v.length === 0),
  trainable_token_indices: (v) => v == null,
};

/** Keys PEFT writes that only describe the run (base model name, revision, ...): read and ignored. */
const INFORMATIONAL_KEYS = new Set([
  'peft_type', 'task_type', 'base_model_name_or_path', 'revision', 'inference_mode', 'auto_mapping', 'megatron_config',
  'megatron_core', 'loftq_config', 'eva_config', 'corda_config', 'runtime_config', 'qalora_group_size', 'alora_invocation_tokens', 'peft_version',
]);

const LORA_KEYS = new Set(['r', 'lora_alpha', 'lora_dropout', 'target_modules', 'bias', 'use_rslora', 'modules_to_save', 'layers_to_transform', 'layers_pattern', 'rank_pattern', 'alpha_pattern']);

/** Bad LoRA settings: the message names the key and what it needs. */
export class PeftConfigError extends Error {
  override readonly name = 'PeftConfigError';
}

function positiveInt(where: string, key: string, v: unknown): number {
  if (!(typeof v === 'number' && Number.isInteger(v) && v > 0)) throw new PeftConfigError(`${where}: ${key} must be a positive integer, got ${JSON.stringify(v)}`);
  return v;
}

function finiteNumber(where: string, key: string, v: unknown): number {
  if (!(typeof v === 'number' && Number.isFinite(v))) throw new PeftConfigError(`${where}: ${key} must be a finite number, got ${JSON.stringify(v)}`);
  return v;
}

function numberRecord(where: string, key: string, v: unknown, check: (k: string, n: unknown) => number): Record<string, number> {
  if (v == null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) throw new PeftConfigError(`${where}: ${key} must be an object of module pattern → number, got ${JSON.stringify(v)}`);
  return Object.fromEntries(Object.entries(v as Record<string, unknown>).map(([k, n]) => [k, check(`${key}[${JSON.stringify(k)}]`, n)]));
}

/**
 * Validate a LoRA config (PEFT's snake_case keys; `quant_aware` is ours) and fill PEFT's
 * defaults: r 8, lora_alpha 8, lora_dropout 0, target_modules q_proj + v_proj, bias none.
 * `warnings` receives the keys that were ignored. Throws `PeftConfigError` naming the key.
 */
export function resolveLoraConfig(json: LoraConfigJSON & { quant_aware?: boolean }, where = 'LoRA config', warnings?: (message: string) => void): LoraConfig {
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new PeftConfigError(`${where}: expected a JSON object, got ${JSON.stringify(json)}`);
  const peftType = json.peft_type;
  if (peftType !== undefined && peftType !== 'LORA') {
    throw new PeftConfigError(`${where}: peft_type is ${JSON.stringify(peftType)}; this loader reads LoRA adapters (peft_type "LORA")`);
  }
  for (const [key, v] of Object.entries(json)) {
    if (LORA_KEYS.has(key) || INFORMATIONAL_KEYS.has(key) || key === 'quant_aware') continue;
    const neutral = NEUTRAL_KEYS[key];
    if (neutral) {
      if (!neutral(v)) throw new PeftConfigError(`${where}: ${key} = ${JSON.stringify(v)} is not supported (only its default is); remove it or train the adapter without it`);
      continue;
    }
    warnings?.(`${where}: key ${JSON.stringify(key)} is not a LoraConfig field this library knows; ignored`);
  }
  const r = positiveInt(where, 'r', json.r ?? 8);
  const loraAlpha = finiteNumber(where, 'lora_alpha', json.lora_alpha ?? 8);
  const loraDropout = finiteNumber(where, 'lora_dropout', json.lora_dropout ?? 0);
  if (loraDropout < 0 || loraDropout >= 1) throw new PeftConfigError(`${where}: lora_dropout must be in [0, 1), got ${loraDropout}`);
  const tm = json.target_modules ?? [...DEFAULT_TARGET_MODULES];
  let targetModules: LoraConfig['targetModules'];
  if (tm === 'all-linear') targetModules = 'all-linear';
  else if (typeof tm === 'string') {
    try {
      new RegExp(tm);
    } catch (err) {
      throw new PeftConfigError(`${where}: target_modules ${JSON.stringify(tm)} is not a valid regular expression (${(err as Error).message})`);
    }
    targetModules = { regex: tm };
  } else if (Array.isArray(tm) && tm.length > 0 && tm.every((t) => typeof t === 'string' && t.length > 0)) targetModules = [...tm];
  else throw new PeftConfigError(`${where}: target_modules must be a non-empty list of module names, a regex string or "all-linear", got ${JSON.stringify(tm)}`);
  const bias = json.bias ?? 'none';
  if (bias !== 'none' && bias !== 'all' && bias !== 'lora_only') throw new PeftConfigError(`${where}: bias must be "none", "all" or "lora_only", got ${JSON.stringify(bias)}`);
  const useRslora = json.use_rslora ?? false;
  if (typeof useRslora !== 'boolean') throw new PeftConfigError(`${where}: use_rslora must be true or false, got ${JSON.stringify(useRslora)}`);
  const mts = json.modules_to_save ?? [];
  if (!Array.isArray(mts) || mts.some((m) => typeof m !== 'string' || m.length === 0)) throw new PeftConfigError(`${where}: modules_to_save must be a list of module names, got ${JSON.stringify(mts)}`);
  const ltt = json.layers_to_transform;
  let layersToTransform: number[] | null = null;
  if (ltt != null) {
    const list = typeof ltt === 'number' ? [ltt] : ltt;
    if (!Array.isArray(list) || list.some((i) => !(Number.isInteger(i) && (i as number) >= 0))) throw new PeftConfigError(`${where}: layers_to_transform must be a layer index or a list of them, got ${JSON.stringify(ltt)}`);
    layersToTransform = [...list];
  }
  const lp = json.layers_pattern;
  const layersPattern = lp == null ? null : typeof lp === 'string' ? lp : Array.isArray(lp) && lp.length === 1 && typeof lp[0] === 'string' ? lp[0] : null;
  if (lp != null && layersPattern === null) throw new PeftConfigError(`${where}: layers_pattern must be one name (e.g. "layers"), got ${JSON.stringify(lp)}`);
  const rankPattern = numberRecord(where, 'rank_pattern', json.rank_pattern, (k, n) => positiveInt(where, k, n));
  const alphaPattern = numberRecord(where, 'alpha_pattern', json.alpha_pattern, (k, n) => finiteNumber(where, k, n));
  for (const k of [...Object.keys(rankPattern), ...Object.keys(alphaPattern)]) {
    try {
      new RegExp(k);
    } catch (err) {
      throw new PeftConfigError(`${where}: pattern ${JSON.stringify(k)} is not a valid regular expression (${(err as Error).message})`);
    }
  }
  const quantAware = json.quant_aware ?? false;
  if (typeof quantAware !== 'boolean') throw new PeftConfigError(`${where}: quant_aware must be true or false, got ${JSON.stringify(quantAware)}`);
  if (quantAware && loraDropout > 0) {
    throw new PeftConfigError(`${where}: lora_dropout ${loraDropout} with quant_aware: the quantisation-aware adapter sits inside the weight, where dropout of its input does not apply; set lora_dropout 0`);
  }
  return { r, loraAlpha, loraDropout, targetModules, bias, useRslora, modulesToSave: [...mts], layersToTransform, layersPattern, rankPattern, alphaPattern, quantAware };
}

/** The adapter_config.json PEFT reads (`LoraConfig.from_pretrained`): every key in PEFT's spelling. */
export function loraConfigJSON(cfg: LoraConfig, baseModel: string | null): LoraConfigJSON {
  const tm = cfg.targetModules;
  return {
    peft_type: 'LORA',
    task_type: 'CAUSAL_LM',
    base_model_name_or_path: baseModel,
    inference_mode: true,
    r: cfg.r,
    lora_alpha: cfg.loraAlpha,
    lora_dropout: cfg.loraDropout,
    target_modules: tm === 'all-linear' ? 'all-linear' : Array.isArray(tm) ? [...tm] : (tm as { regex: string }).regex,
    bias: cfg.bias,
    use_rslora: cfg.useRslora,
    modules_to_save: cfg.modulesToSave.length > 0 ? [...cfg.modulesToSave] : null,
    layers_to_transform: cfg.layersToTransform ? [...cfg.layersToTransform] : null,
    layers_pattern: cfg.layersPattern,
    rank_pattern: { ...cfg.rankPattern },
    alpha_pattern: { ...cfg.alphaPattern },
    fan_in_fan_out: false,
    init_lora_weights: true,
    use_dora: false,
    revision: null,
  };
}

/** PEFT's pattern lookup (`get_pattern_key`): the first key `k` such that the module name matches `(.*\.)?(k)$`. */
export function patternKey(keys: readonly string[], module: string): string | undefined {
  return keys.find((k) => new RegExp(`^(.*\\.)?(${k})$`).test(module));
}

/** Rank and alpha of one module: `rank_pattern` / `alpha_pattern` overrides, else r and lora_alpha. */
export function rankAndAlpha(cfg: LoraConfig, module: string): { r: number; alpha: number } {
  const rk = patternKey(Object.keys(cfg.rankPattern), module);
  const ak = patternKey(Object.keys(cfg.alphaPattern), module);
  return { r: rk !== undefined ? cfg.rankPattern[rk]! : cfg.r, alpha: ak !== undefined ? cfg.alphaPattern[ak]! : cfg.loraAlpha };
}

/** The adapter scale s: α/r, or α/√r with rsLoRA (`use_rslora`). */
export function loraScale(cfg: Pick<LoraConfig, 'useRslora'>, r: number, alpha: number): number {
  return cfg.useRslora ? alpha / Math.sqrt(r) : alpha / r;
}
