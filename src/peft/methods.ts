/**
 * The fine-tuning methods beside LoRA/QLoRA, on a `PeftModel`'s frozen base (packed ternary or
 * f32 projections, no optimizer state for it): AdaLoRA (adapters in SVD form, ./adalora.ts),
 * prefix tuning / P-tuning v2 (./prefix.ts), prompt tuning (./prompt.ts) and BitFit
 * (./bitfit.ts). `setupMethod` builds one — its trainable tensors registered in the PeftModel's
 * `params`, so the optimizer and the memory report see exactly them — and says how to finish it
 * after the base is loaded, which trainer hooks it needs, and how to write its adapter files.
 *
 *   const m = setupMethod('prefix', { model: src.model, json: { num_virtual_tokens: 16 }, totalSteps: iters });
 *   m.model.materialize(heap, rng); m.model.loadBase(values, source); m.ready(rng);
 *   new Trainer({ model: m.model, ..., options: { extension: m.extension() } }); ... await m.save(fs, dir, base);
 */
import type { GradientCheckpointing } from '../autograd/checkpoint.js';
import { decodeSafetensors, encodeSafetensors } from '../io/safetensors.js';
import type { GPT } from '../nn/gpt.js';
import type { LlamaModel } from '../nn/llama.js';
import type { FileSystem } from '../runtime/fs-types.js';
import { joinPath } from '../runtime/fs-types.js';
import type { StepExtension } from '../train/extension.js';
import type { ModelConfig } from '../train/model.js';
import type { Rng } from '../util/rng.js';
import { AdaLora, adaLoraConfigJSON, adaLoraFileTensors, loadAdaLoraTensors, resolveAdaLoraConfig } from './adalora.js';
import { BitFit, type BitFitTargets } from './bitfit.js';
import { PeftConfigError, loraConfigJSON, resolveLoraConfig } from './config.js';
import { ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, PEFT_KEY_PREFIX } from './format.js';
import { PeftModel, type PeftBaseConfig } from './model.js';
import { PrefixTuning, prefixShapeOf, prefixTuningConfigJSON, resolvePrefixTuningConfig } from './prefix.js';
import { encodePromptAdapter } from './prompt-files.js';
import { PromptTuning, promptTuningConfigJSON, resolvePromptTuningConfig } from './prompt.js';

/** The methods of this module (`--peft`); `p-tuning-v2` is prefix tuning (PEFT's PREFIX_TUNING). */
export type PeftMethodB = 'adalora' | 'prefix' | 'p-tuning-v2' | 'prompt' | 'bitfit';
export const PEFT_METHODS_B: readonly PeftMethodB[] = ['adalora', 'prefix', 'p-tuning-v2', 'prompt', 'bitfit'];

/** A built method: its PeftModel (trainable tensors in `params`), and what the run does with it. */
export interface MethodSetup {
  method: PeftMethodB;
  model: PeftModel;
  /** After `model.materialize` and `model.loadBase`: initialise / bind the method's tensors. */
  ready(rng: Rng, init?: { initTokenIds?: readonly number[] }): void;
  /** The trainer's hooks (dropout seeds of the step; AdaLoRA: its loss and rank allocation). */
  extension(): StepExtension;
  /** Write adapter_config.json and adapter_model.safetensors into `dir`. */
  save(fs: FileSystem, dir: string, baseModel: string | null): Promise<void>;
  /** One line for the run header. */
  describe(): string;
  /** P: positions of the context the method's virtual tokens take (prefix and prompt tuning; 0 for the others). */
  virtualTokens: number;
  /** Set the trained tensors from a saved adapter (`readMethodAdapter`), after `ready`; bad keys and shapes are refused by name before anything is written. */
  load(adapter: MethodAdapter): void;
}

/** An adapter directory of one of these methods, read (`readMethodAdapter`). */
export interface MethodAdapter {
  method: PeftMethodB;
  config: Record<string, unknown>;
  /** Tensors by their file keys, f32. */
  tensors: Map<string, { shape: number[]; data: Float32Array }>;
}

/** What `setupMethod` needs: the base (a GPT ModelConfig or `{ family, config }`), the method's PEFT-style JSON, the run's steps. */
export interface MethodOptions {
  model: ModelConfig | PeftBaseConfig;
  /** The method's config with PEFT's names: AdaLoraConfig / PrefixTuningConfig / PromptTuningConfig keys; BitFit: `{ targets }`. */
  json: Record<string, unknown>;
  totalSteps: number;
  /** Recompute each block's activations in backward (`--gradient-checkpointing`). */
  gradientCheckpointing?: GradientCheckpointing;
}

const asModel = (peft: PeftModel) => peft.base as unknown as GPT | LlamaModel;

function metadataOf(peft: PeftModel, method: PeftMethodB): Record<string, string> {
  return { format: 'pt', 'bitnet.method': method, 'bitnet.base_kind': peft.baseKind, 'bitnet.base_model': JSON.stringify(peft.modelConfig) };
}

async function writeFiles(fs: FileSystem, dir: string, config: object, weights: Uint8Array): Promise<void> {
  await fs.mkdirp(dir);
  await fs.writeFileAtomic(joinPath(dir, ADAPTER_WEIGHTS_FILE), weights);
  await fs.writeFileAtomic(joinPath(dir, ADAPTER_CONFIG_FILE), `${JSON.stringify(config, null, 2)}\n`);
}

/** Build `method` over the base; throws `PeftConfigError` naming the key for bad settings, before any memory is used. */
export function setupMethod(method: PeftMethodB, opts: MethodOptions): MethodSetup {
  const plain = (): PeftModel => PeftModel.build({ model: opts.model, lora: resolveLoraConfig({}), adapters: false });
  const checkpointing = (peft: PeftModel) => {
    if (opts.gradientCheckpointing) asModel(peft).gradientCheckpointing = opts.gradientCheckpointing;
  };
  const seeds = (peft: PeftModel): StepExtension => ({ beforeStep: (step) => peft.beginStep(step) });

  if (method === 'adalora') {
    const { lora, ada } = resolveAdaLoraConfig(opts.json, opts.totalSteps, '--config adalora');
    const peft = PeftModel.build({ model: opts.model, lora });
    const adalora = AdaLora.attach(peft, ada);
    checkpointing(peft);
    return {
      method, model: peft, virtualTokens: 0,
      ready: (rng) => void adalora.init(rng),
      extension: () => adalora.extension(),
      save: async (fs, dir, base) => {
        const { tensors, rankPattern } = adaLoraFileTensors(adalora.allocator, PEFT_KEY_PREFIX);
        const json = adaLoraConfigJSON(loraConfigJSON(lora, base), ada, rankPattern);
        const weights = encodeSafetensors(new Map([...tensors].map(([k, t]) => [k, { dtype: 'F32' as const, shape: t.shape, data: t.data }])), metadataOf(peft, method));
        await writeFiles(fs, dir, json, weights);
      },
      load: (a) => loadAdaLoraTensors(adalora.allocator, a.tensors, (a.config.rank_pattern ?? {}) as Record<string, unknown>, PEFT_KEY_PREFIX),
      describe: () => `adalora: init_r ${ada.initR} → target_r ${ada.targetR} on ${adalora.adapters.length} projections (budget ${adalora.allocator.initBudget} → ${adalora.allocator.targetBudget} triplets; tinit ${ada.tinit}, tfinal ${ada.tfinal}, deltaT ${ada.deltaT}; orth_reg_weight ${ada.orthRegWeight})`,
    };
  }

  if (method === 'prefix' || method === 'p-tuning-v2') {
    const cfg = resolvePrefixTuningConfig(opts.json, '--config prefix');
    const peft = plain();
    const shape = prefixShapeOf(asModel(peft));
    const prefix = new PrefixTuning(cfg, shape, peft.params);
    checkpointing(peft);
    return {
      method, model: peft, virtualTokens: cfg.numVirtualTokens,
      ready: () => void prefix.attach(asModel(peft)),
      extension: () => seeds(peft),
      save: async (fs, dir, base) => {
        const files = encodePromptAdapter({ config: prefixTuningConfigJSON(cfg, shape, base), embeddings: prefix.promptEmbeddings(), shape: [cfg.numVirtualTokens, prefix.width] }, metadataOf(peft, method));
        await writeFiles(fs, dir, JSON.parse(files['adapter_config.json']) as object, files['adapter_model.safetensors']);
      },
      load: (a) => prefix.loadPromptEmbeddings(promptEmbeddingsOf(a)),
      describe: () => `${method}: ${cfg.numVirtualTokens} virtual key/value positions in each of ${shape.layers} layers${cfg.prefixProjection ? `, through the MLP (hidden ${cfg.encoderHiddenSize ?? shape.dim})` : ''}`,
    };
  }

  if (method === 'prompt') {
    const cfg = resolvePromptTuningConfig(opts.json, '--config prompt');
    const peft = plain();
    const m = asModel(peft);
    const prompt = new PromptTuning(cfg, m.config.dim, peft.params);
    checkpointing(peft);
    return {
      method, model: peft, virtualTokens: cfg.numVirtualTokens,
      ready: (rng, init = {}) => void prompt.attach(m, { rng, ...(init.initTokenIds ? { initTokenIds: init.initTokenIds } : {}) }),
      extension: () => seeds(peft),
      save: async (fs, dir, base) => {
        const files = encodePromptAdapter({ config: promptTuningConfigJSON(cfg, m.config, base), embeddings: prompt.promptEmbeddings(), shape: [cfg.numVirtualTokens, m.config.dim] }, metadataOf(peft, method));
        await writeFiles(fs, dir, JSON.parse(files['adapter_config.json']) as object, files['adapter_model.safetensors']);
      },
      load: (a) => prompt.loadPromptEmbeddings(promptEmbeddingsOf(a)),
      describe: () => `prompt: ${cfg.numVirtualTokens} soft prompt embeddings (init ${cfg.init})`,
    };
  }

  if (method === 'bitfit') {
    const targets = (opts.json.targets ?? 'auto') as BitFitTargets;
    for (const key of Object.keys(opts.json)) if (key !== 'targets') throw new PeftConfigError(`--config bitfit: unknown key ${JSON.stringify(key)}; BitFit takes only "targets" (auto, bias, norm or both)`);
    if (!['auto', 'bias', 'norm', 'both'].includes(targets)) throw new PeftConfigError(`--config bitfit: targets must be "auto", "bias", "norm" or "both", got ${JSON.stringify(targets)}`);
    const peft = plain();
    const bitfit = new BitFit(peft.base, peft.params, targets);
    checkpointing(peft);
    return {
      method, model: peft, virtualTokens: 0,
      ready: () => void bitfit.bind(),
      extension: () => seeds(peft),
      save: async (fs, dir, base) => {
        const values = bitfit.values();
        const tensors = new Map([...values].map(([name, data]) => [PEFT_KEY_PREFIX + name, { dtype: 'F32' as const, shape: [data.length], data }]));
        // PEFT has no BitFit type: the tensors carry the base's HF names (transformers applies them with load_state_dict(strict=False))
        const config = { peft_type: null, bitnet_method: 'BITFIT', targets: bitfit.targets, trained: [...values.keys()], base_model_name_or_path: base };
        await writeFiles(fs, dir, config, encodeSafetensors(tensors, metadataOf(peft, method)));
      },
      load: (a) => {
        const values = new Map<string, Float32Array>();
        for (const [key, t] of a.tensors) {
          if (!key.startsWith(PEFT_KEY_PREFIX)) throw new PeftConfigError(`BitFit adapter: tensor ${key} does not start with ${PEFT_KEY_PREFIX}`);
          values.set(key.slice(PEFT_KEY_PREFIX.length), t.data);
        }
        bitfit.load(values);
      },
      describe: () => `bitfit: the ${bitfit.targets === 'norm' ? 'norm scales (a BitNet model has no biases)' : bitfit.targets === 'bias' ? 'biases' : 'biases and norm scales'}, ${bitfit.tensors.length} tensors`,
    };
  }
  throw new PeftConfigError(`--peft ${String(method)}: unknown method; expected lora, qlora, ${PEFT_METHODS_B.join(', ')}`);
}

function promptEmbeddingsOf(a: MethodAdapter): Float32Array {
  for (const key of a.tensors.keys()) if (key !== 'prompt_embeddings') throw new PeftConfigError(`${a.method} adapter: unknown tensor ${key}; it holds only prompt_embeddings`);
  const t = a.tensors.get('prompt_embeddings');
  if (!t) throw new PeftConfigError(`${a.method} adapter: no prompt_embeddings tensor`);
  return t.data;
}

/** Which of these methods an adapter_config.json describes, or null (LoRA / QLoRA: ./format.ts). */
export function methodOfAdapterConfig(config: Record<string, unknown>): PeftMethodB | null {
  if (config.peft_type === 'ADALORA') return 'adalora';
  if (config.peft_type === 'PREFIX_TUNING') return 'prefix';
  if (config.peft_type === 'PROMPT_TUNING') return 'prompt';
  if (config.bitnet_method === 'BITFIT') return 'bitfit';
  return null;
}

/** Read an adapter directory of one of these methods (null when it is a LoRA / QLoRA adapter). F16/BF16 tensors become f32. */
export async function readMethodAdapter(fs: FileSystem, dir: string): Promise<MethodAdapter | null> {
  const where = `adapter ${dir}`;
  let config: Record<string, unknown>;
  try {
    config = JSON.parse(await fs.readText(joinPath(dir, ADAPTER_CONFIG_FILE))) as Record<string, unknown>;
  } catch (err) {
    throw new PeftConfigError(`${where}/${ADAPTER_CONFIG_FILE}: ${(err as Error).message}`);
  }
  const method = methodOfAdapterConfig(config);
  if (!method) return null;
  const { tensors } = decodeSafetensors(await fs.readFile(joinPath(dir, ADAPTER_WEIGHTS_FILE)), { source: `${where}/${ADAPTER_WEIGHTS_FILE}` });
  const out = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [key, t] of tensors) {
    if (t.dtype !== 'F32') throw new PeftConfigError(`${where}: tensor ${key} is ${t.dtype}; this loader reads F32 adapters of ${method}`);
    out.set(key, { shape: t.shape, data: t.data as Float32Array });
  }
  return { method, config, tensors: out };
}

/**
 * Build the method an adapter describes over its base (not materialized): the saved config as
 * the settings (a prefix is loaded without its MLP, as PEFT saves the MLP's output).
 */
export function setupMethodForAdapter(adapter: MethodAdapter, model: ModelConfig | PeftBaseConfig): MethodSetup {
  const c = adapter.config;
  // a saved prefix is the MLP's output: load it as the prefix itself; a soft prompt's init no longer matters
  const json: Record<string, unknown> = adapter.method === 'bitfit' ? { targets: c.targets ?? 'auto' }
    : adapter.method === 'prefix' ? { ...c, prefix_projection: false }
      : adapter.method === 'prompt' ? { ...c, prompt_tuning_init: 'RANDOM', prompt_tuning_init_text: null } : c;
  return setupMethod(adapter.method, { model, json, totalSteps: typeof adapter.config.total_step === 'number' ? adapter.config.total_step : 1 });
}
