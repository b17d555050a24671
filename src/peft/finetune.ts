/**
 * `runFinetune`: a parameter-efficient fine-tuning run, what `bitnet-train finetune` runs. It reads
 * the base checkpoint (`from`) and the corpus, builds the `PeftModel` (LoRA on the base's
 * precision, or QLoRA: NF4 for a full-precision base), trains only the adapters with the
 * trainer (checkpoints, evaluation, bit-identical `resume`), and writes the adapter in PEFT's
 * format into every checkpoint directory and into `<out>/adapter`.
 *
 * Everything is checked before anything is written: the base checkpoint, the LoRA settings
 * against the model (unknown target modules, r too large), the corpus against the base's
 * tokenizer (characters it cannot encode are listed, with `unknownChars` to drop or replace them).
 */
import { createBackend } from '../backend/index.js';
import { TextDataset } from '../data/dataset.js';
import type { Tokenizer } from '../data/tokenizer.js';
import { type JsonObject, loadCheckpoint } from '../io/checkpoint.js';
import { resolveCheckpointDir } from '../io/checkpoint-manager.js';
import { AdamW } from '../optim/adamw.js';
import { AdamW8bit } from '../optim/adamw8bit.js';
import type { GradientCheckpointing } from '../autograd/checkpoint.js';
import type { ScheduleKind } from '../optim/schedule.js';
import { getDefaultFileSystem } from '../runtime/fs.js';
import { type FileSystem, joinPath } from '../runtime/fs-types.js';
import { defaultThreads } from '../runtime/threads.js';
import { Heap } from '../tensor/heap.js';
import { Rng } from '../util/rng.js';
import { JsonLinesLog, loggingCallbacks } from '../train/log.js';
import type { ModelConfig } from '../train/model.js';
import { loadSourceCheckpoint } from '../train/sources.js';
import { f32Values } from '../train/state.js';
import { Trainer, type TrainResult, type TrainerCallbacks } from '../train/trainer.js';
import { type LoraConfig, type LoraConfigJSON, resolveLoraConfig } from './config.js';
import { applyAdapter, loadAdapter, saveAdapter } from './format.js';
import { type PeftBaseConfig, type PeftMemory, PeftModel } from './model.js';
import { hfFilesFromFileSystem } from '../io/hf/source.js';
import { readHfWeights } from '../io/hf/weights.js';
import { llamaConfigFromHf } from '../nn/hf-config.js';
import { LlamaModel } from '../nn/llama.js';
import { HfTokenizer } from '../data/hf-tokenizer.js';
import { nf4BaseFactory } from './nf4.js';
import { PEFT_METHODS_B, type PeftMethodB, readMethodAdapter, setupMethod, setupMethodForAdapter } from './methods.js';

/** The PEFT methods `finetune` runs here (part B's methods add to this list). */
export type PeftMethod = 'lora' | 'qlora' | PeftMethodB;

/** Options of a fine-tuning run (the `finetune` flags in camelCase). */
export interface FinetuneOptions {
  /** The base checkpoint (a checkpoint directory or a run directory); or null with `fromHf`. */
  from: string | null;
  /** A Hugging Face LLaMA / BitNet directory (config.json, model.safetensors, tokenizer.json) as the base. */
  fromHf?: string | null;
  data: string;
  peft: PeftMethod;
  /** LoRA settings with PEFT's snake_case names (`r`, `lora_alpha`, `target_modules`, ...; `quant_aware`). */
  lora: LoraConfigJSON & { quant_aware?: boolean };
  iters: number;
  lr: number;
  minLr: number;
  warmup: number;
  weightDecay: number;
  /** adamw (f32 m, v) or adamw8bit (8-bit blockwise m, v: src/optim/adamw8bit.ts). Default adamw. */
  optimizer?: 'adamw' | 'adamw8bit';
  beta2: number;
  clip: number;
  schedule: ScheduleKind;
  batch: number;
  /** Tokens per sequence; default the base's context length. */
  context: number | null;
  valFraction: number;
  seed: number;
  evalEvery: number;
  evalIters: number;
  logEvery: number;
  saveEvery: number;
  keep: number;
  out: string;
  backend: 'wasm' | 'js';
  threads: number | null;
  /** Characters the base's tokenizer cannot encode: `'error'` (default; lists them), `'drop'`, or `'replace=X'`. */
  unknownChars: string;
  /** Continue a fine-tuning run from one of its checkpoints. */
  resume: string | null;
  /** Recompute each block's activations in backward (`--gradient-checkpointing`): less memory, the same bits. */
  gradientCheckpointing?: boolean;
  /** Recompute only the first N blocks (`--gradient-checkpointing-layers N`; overrides `gradientCheckpointing`): memory and speed in between. */
  gradientCheckpointingLayers?: number | null;
}

export const DEFAULT_FINETUNE_OPTIONS: Omit<FinetuneOptions, 'from' | 'data' | 'out'> = {
  fromHf: null, peft: 'lora', lora: {}, iters: 800, lr: 3e-3, minLr: 1e-4, warmup: 50, weightDecay: 0, beta2: 0.99, clip: 1, schedule: 'cosine',
  batch: 12, context: null, valFraction: 0.1, seed: 1337, evalEvery: 200, evalIters: 20, logEvery: 10, saveEvery: 0, keep: 2,
  backend: 'wasm', threads: null, unknownChars: 'error', resume: null,
};

/** What `onStart` reports: the run header's numbers. */
export interface FinetuneStartInfo {
  base: string;
  peft: PeftMethod;
  /** The method's settings in one line (AdaLoRA, prefix, prompt, BitFit; absent for LoRA/QLoRA, which `lora` describes). */
  method?: string;
  baseKind: string;
  lora: LoraConfig;
  targets: readonly string[];
  trainable: number;
  total: number;
  /** Bytes: base, adapters + gradients, optimizer state, activations of one step. */
  memory: PeftMemory & { optimizer: number };
  threads: number;
  outDir: string;
  trainTokens: number;
  valTokens: number;
  startStep: number;
  /** Characters dropped or replaced in the corpus. */
  unknownChars: { char: string; count: number }[];
}

export interface FinetuneHooks extends TrainerCallbacks {
  onStart?: (info: FinetuneStartInfo) => void | Promise<void>;
  onWarning?: (message: string) => void;
}

export interface FinetuneResult extends TrainResult {
  outDir: string;
  adapterDir: string;
}

/** Characters of `text` the tokenizer cannot encode, with counts (code point order). */
export function unknownCharacters(tokenizer: Tokenizer, text: string): Map<string, number> {
  const out = new Map<string, number>();
  if (!tokenizer.canEncode) return out;
  const known = new Map<string, boolean>();
  for (const ch of text) {
    let ok = known.get(ch);
    if (ok === undefined) known.set(ch, (ok = tokenizer.canEncode(ch)));
    if (!ok) out.set(ch, (out.get(ch) ?? 0) + 1);
  }
  return new Map([...out].sort(([a], [b]) => a.codePointAt(0)! - b.codePointAt(0)!));
}

/** Apply the `unknownChars` policy to `text`: throws listing the characters for `'error'`. */
export function cleanCorpus(tokenizer: Tokenizer, text: string, policy: string, source: string): { text: string; unknown: Map<string, number> } {
  const unknown = unknownCharacters(tokenizer, text);
  if (unknown.size === 0) return { text, unknown };
  const list = [...unknown].map(([c, n]) => `${JSON.stringify(c)} (U+${c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}) ×${n}`).join(', ');
  if (policy === 'error') {
    throw new Error(`${source}: ${unknown.size} character${unknown.size > 1 ? 's' : ''} the base model's tokenizer cannot encode: ${list}; pass --unknown-chars drop to remove them or --unknown-chars replace=X to replace them by X`);
  }
  let replacement = '';
  if (policy.startsWith('replace=')) {
    replacement = policy.slice('replace='.length);
    if ([...replacement].length !== 1 || !(tokenizer.canEncode?.(replacement) ?? true)) throw new Error(`--unknown-chars ${policy}: X must be one character the base's tokenizer encodes`);
  } else if (policy !== 'drop') throw new Error(`--unknown-chars: expected error, drop or replace=X, got ${JSON.stringify(policy)}`);
  let out = '';
  for (const ch of text) out += unknown.has(ch) ? replacement : ch;
  return { text: out, unknown };
}

/** A base model read for fine-tuning: its config, tokenizer and f32 tensors by name. */
export interface FinetuneBase {
  /** Where it came from (a checkpoint directory, or a Hugging Face directory). */
  dir: string;
  model: ModelConfig | PeftBaseConfig;
  contextLength: number;
  tokenizer: Tokenizer;
  tensors: Map<string, { shape: readonly number[]; data: Float32Array }>;
}

/** Read the base of a fine-tuning: a bitnet-train checkpoint (`from`) or a Hugging Face directory (`fromHf`). */
export async function readFinetuneBase(fs: FileSystem, from: string | null, fromHf: string | null | undefined, flag = '--from'): Promise<FinetuneBase> {
  if (fromHf) {
    const files = hfFilesFromFileSystem(fs, fromHf);
    if (!(await files.exists('config.json'))) throw new Error(`--from-hf ${fromHf}: no config.json; give a Hugging Face model directory (config.json, model.safetensors, tokenizer.json)`);
    const spec = llamaConfigFromHf(JSON.parse(await files.readText('config.json')), `${fromHf}/config.json`);
    if (!(await files.exists('tokenizer.json'))) throw new Error(`--from-hf ${fromHf}: no tokenizer.json; the fine-tuning corpus must be encoded with the base's tokenizer`);
    const tc = (await files.exists('tokenizer_config.json')) ? JSON.parse(await files.readText('tokenizer_config.json')) : {};
    const tokenizer = HfTokenizer.fromJSON(JSON.parse(await files.readText('tokenizer.json')), tc);
    const probe = new LlamaModel(spec.config);
    const { values } = await readHfWeights(probe, files, spec);
    const tensors = new Map([...values].map(([k, v]) => [k, { shape: probe.params.getParam(k).shape, data: v }]));
    return { dir: fromHf, model: { family: 'llama', config: spec.config }, contextLength: spec.config.contextLength, tokenizer, tensors };
  }
  if (!from) throw new Error(`${flag}: the base is missing; give --from DIR (a bitnet-train checkpoint or run directory) or --from-hf DIR (a Hugging Face model directory)`);
  const src = await loadSourceCheckpoint(fs, from, flag);
  if (!src.tokenizer) throw new Error(`${flag} ${src.ckpt.dir}: trainer.json has no tokenizer; cannot encode the fine-tuning corpus`);
  const source = `${flag} ${src.ckpt.dir}/model.safetensors`;
  const tensors = new Map([...f32Values(src.ckpt.model, source)].map(([k, v]) => [k, { shape: src.ckpt.model.get(k)!.shape, data: v }]));
  return { dir: src.ckpt.dir, model: src.model, contextLength: src.model.contextLength, tokenizer: src.tokenizer, tensors };
}

/** Build the PEFT model of a method over a base config (not materialized). */
export function buildPeftModel(peft: PeftMethod, model: ModelConfig | PeftBaseConfig, lora: LoraConfig): PeftModel {
  if (peft === 'qlora') return PeftModel.build({ model, lora, quantizedBase: { kind: 'nf4', create: nf4BaseFactory } });
  return PeftModel.build({ model, lora });
}

/** Run a fine-tuning; see the file header. */
export async function runFinetune(options: FinetuneOptions, hooks: FinetuneHooks = {}, env: { fs?: FileSystem; signal?: AbortSignal } = {}): Promise<FinetuneResult> {
  const fs = env.fs ?? (await getDefaultFileSystem());
  let opts = options;
  let resumeCkpt;
  if (opts.resume) {
    resumeCkpt = await loadCheckpoint(fs, await resolveCheckpointDir(fs, opts.resume));
    const saved = (resumeCkpt.trainer.config as { finetune?: FinetuneOptions }).finetune;
    if (!saved) throw new Error(`--resume ${opts.resume}: ${resumeCkpt.dir} is not a fine-tuning checkpoint (trainer.json has no config.finetune)`);
    opts = { ...saved, iters: options.iters, out: options.out ?? saved.out, threads: options.threads, resume: options.resume };
  }
  // 1. the base, the LoRA settings against it, the corpus against its tokenizer
  const src = await readFinetuneBase(fs, opts.from, opts.fromHf);
  // part B's methods (AdaLoRA, prefix / p-tuning-v2, prompt, BitFit: ./methods.ts) read their PEFT-style keys from opts.lora
  const checkpointing: GradientCheckpointing = opts.gradientCheckpointingLayers ?? opts.gradientCheckpointing ?? false;
  const method = (PEFT_METHODS_B as readonly string[]).includes(opts.peft)
    ? setupMethod(opts.peft as PeftMethodB, { model: src.model, json: opts.lora as Record<string, unknown>, totalSteps: opts.iters, gradientCheckpointing: checkpointing })
    : null;
  const lora = method ? method.model.lora : resolveLoraConfig(opts.lora, '--config lora', hooks.onWarning);
  const model = method ? method.model : buildPeftModel(opts.peft, src.model, lora);
  if (checkpointing !== false) (model.base as { gradientCheckpointing?: GradientCheckpointing }).gradientCheckpointing = checkpointing;
  const bytes = await fs.readFile(opts.data).catch((err: Error) => {
    throw new Error(`data file ${opts.data}: ${err.message}`);
  });
  const raw = new TextDecoder('utf-8', { fatal: false }).decode(bytes);
  const { text, unknown } = cleanCorpus(src.tokenizer, raw, opts.unknownChars, opts.data);
  // prefix / prompt tuning's P virtual tokens take P positions of the context
  const virtual = method?.virtualTokens ?? 0;
  const context = opts.context ?? src.contextLength - virtual;
  if (context + virtual > src.contextLength) {
    throw new Error(`--context ${context} is longer than the base model's context length ${src.contextLength}${virtual ? ` less the ${virtual} virtual tokens (at most ${src.contextLength - virtual})` : ''}`);
  }
  const dataset = TextDataset.fromText(text, { tokenizer: src.tokenizer, valFraction: opts.valFraction, source: opts.data, contextLength: context });

  const backend = await createBackend(opts.backend, { threads: opts.threads ?? (await defaultThreads()) });
  try {
    const heap = new Heap(backend);
    model.materialize(heap, new Rng(opts.seed));
    model.loadBase(src.tensors, `${opts.fromHf ? '--from-hf' : '--from'} ${src.dir}`);
    const initText = (opts.lora as { prompt_tuning_init_text?: unknown }).prompt_tuning_init_text;
    method?.ready(new Rng(opts.seed + 2), typeof initText === 'string' ? { initTokenIds: Array.from(src.tokenizer.encode(initText)) } : {});
    const adam = { lr: opts.lr, betas: [0.9, opts.beta2] as [number, number], weightDecay: opts.weightDecay, clipNorm: opts.clip };
    const optimizer = opts.optimizer === 'adamw8bit' ? new AdamW8bit(model.params, adam) : new AdamW(model.params, adam);
    const outDir = opts.out;
    const log = new JsonLinesLog(fs, joinPath(outDir, 'log.jsonl'));
    const logged = loggingCallbacks(log, hooks);
    const record: JsonObject = { finetune: { ...opts, resume: null } as unknown as JsonObject, base: src.dir };
    const writeAdapter = (dir: string) => (method ? method.save(fs, dir, src.dir) : saveAdapter(fs, dir, model, { baseModel: src.dir }));
    const trainer = new Trainer({
      model: { params: model.params, forward: (t, y) => model.forward(t, y) },
      dataset,
      optimizer,
      options: {
        iters: opts.iters, batchSize: opts.batch, contextLength: context, seed: opts.seed,
        schedule: { kind: opts.schedule, peakLr: opts.lr, warmup: Math.min(opts.warmup, opts.iters), totalSteps: opts.iters, minLr: opts.minLr, weightDecay: opts.weightDecay } as never,
        evalEvery: opts.evalEvery, evalIters: opts.evalIters, logEvery: opts.logEvery, saveEvery: opts.saveEvery,
        checkpoints: { fs, dir: outDir, keep: opts.keep },
        config: record,
        extension: method ? method.extension() : { beforeStep: (step) => model.beginStep(step) },
        ...logged,
        onCheckpoint: async (i) => {
          await writeAdapter(i.path);
          await logged.onCheckpoint(i);
        },
      },
    });
    if (resumeCkpt) trainer.restore(resumeCkpt);
    // one forward + backward on a throwaway batch measures the activations (no update, nothing kept)
    {
      const b = dataset.sampleBatch('train', opts.batch, context, new Rng(opts.seed + 1));
      const { loss } = model.forward(heap.indices(b.inputs, [opts.batch, context]), heap.indices(b.targets, [opts.batch, context]));
      loss!.backward();
      heap.resetArena();
      model.params.zeroGrad();
    }
    const counts = model.parameterCounts();
    await hooks.onStart?.({
      ...(method ? { method: method.describe() } : {}),
      base: src.dir, peft: opts.peft, baseKind: model.baseKind, lora, targets: model.targets, trainable: counts.trainable, total: counts.total,
      memory: { ...model.memory(), optimizer: optimizer instanceof AdamW8bit ? optimizer.stateBytes : 2 * 4 * model.params.blockSize }, threads: (backend as { threads?: number }).threads ?? 1, outDir,
      trainTokens: dataset.train.length, valTokens: dataset.val.length, startStep: trainer.step,
      unknownChars: [...unknown].map(([char, count]) => ({ char, count })),
    });
    const result = await trainer.train({ signal: env.signal });
    const adapterDir = joinPath(outDir, 'adapter');
    await writeAdapter(adapterDir);
    await log.write({ event: 'done', step: result.step, val_loss: result.lastEval?.valLoss ?? null, train_seconds: result.trainSeconds, tokens_per_s: result.tokensPerSecond });
    return { ...result, outDir, adapterDir };
  } finally {
    backend.dispose();
  }
}

/**
 * Load a base (a checkpoint, or with `hf` a Hugging Face directory) with an adapter directory on
 * `heap` (sampling, evaluation, merging): the adapter's config decides the model; its tensors must fit it.
 */
export async function loadAdaptedModel(fs: FileSystem, heap: Heap, basePath: string, adapterDir: string, options: { hf?: boolean; warnings?: (m: string) => void } = {}): Promise<{ model: PeftModel; tokenizer: Tokenizer; base: FinetuneBase }> {
  const base = await readFinetuneBase(fs, options.hf ? null : basePath, options.hf ? basePath : null, '--ckpt');
  // AdaLoRA, prefix / prompt tuning, BitFit adapters (./methods.ts)
  const other = await readMethodAdapter(fs, adapterDir);
  if (other) {
    const m = setupMethodForAdapter(other, base.model);
    m.model.materialize(heap, new Rng(0));
    m.model.loadBase(base.tensors, `--ckpt ${base.dir}`);
    m.ready(new Rng(0));
    m.load(other);
    return { model: m.model, tokenizer: base.tokenizer, base };
  }
  const adapter = await loadAdapter(fs, adapterDir, options.warnings);
  const kind = adapter.metadata['bitnet.base_kind'];
  const model = buildPeftModel(kind === 'nf4' ? 'qlora' : 'lora', base.model, adapter.config);
  model.materialize(heap, new Rng(0));
  model.loadBase(base.tensors, `--ckpt ${base.dir}`);
  applyAdapter(model, adapter);
  return { model, tokenizer: base.tokenizer, base };
}
