/**
 * `bitnet-train finetune` and `bitnet-train merge` (src/peft/). Flags follow PEFT's LoraConfig
 * names (`--lora-r`, `--lora-alpha`, `--lora-dropout`, `--target-modules`, `--lora-bias`,
 * `--use-rslora`, `--modules-to-save`, `--layers-to-transform`, `--rank-pattern`,
 * `--alpha-pattern`); `--config FILE` is a JSON object of the flags in camelCase plus `lora`, an
 * object with PEFT's snake_case keys (what adapter_config.json holds). Flags override the file.
 */
import type { OptionSpec } from '../train/config.js';
import { getDefaultFileSystem } from '../runtime/fs.js';
import { joinPath } from '../runtime/fs-types.js';
import { Heap } from '../tensor/heap.js';
import { Rng } from '../util/rng.js';
import { createBackend } from '../backend/index.js';
import { saveCheckpoint, type JsonObject } from '../io/checkpoint.js';
import { loadSourceCheckpoint } from '../train/sources.js';
import { f32Values } from '../train/state.js';
import { TextDataset } from '../data/dataset.js';
import { createModel } from '../train/model.js';
import { noGrad } from '../autograd/tape.js';
import type { LoraConfigJSON } from '../peft/config.js';
import { DEFAULT_FINETUNE_OPTIONS, type FinetuneOptions, cleanCorpus, loadAdaptedModel, runFinetune } from '../peft/finetune.js';
import { loadAdapter } from '../peft/format.js';
import { mergeAdapter } from '../peft/merge.js';
import { type FlagSpec, type SampleArgs, UsageError, flagLines, parseFlags, sampleSpec } from './args.js';
import { generate } from '../train/generate.js';
import { promptIds } from '../train/run.js';
import type { FileSystem } from '../runtime/fs-types.js';
import type { CliIO } from './commands.js';
import { formatRate } from './progress.js';

const T = (key: string, type: OptionSpec['type'], help: string, values?: readonly string[]): FlagSpec => sampleSpec(key, type, help, values);

/** LoRA flags → PEFT keys. */
const LORA_FLAGS: [FlagSpec, keyof LoraConfigJSON | 'quant_aware'][] = [
  [T('loraR', 'posInt', 'LoRA rank r (PEFT r; default 8)'), 'r'],
  [T('loraAlpha', 'posNum', 'lora_alpha: the adapter scale is alpha/r (default 8)'), 'lora_alpha'],
  [T('loraDropout', 'fraction', 'lora_dropout on the adapters\' input (default 0)'), 'lora_dropout'],
  [T('targetModules', 'list', 'target_modules: names (q_proj,v_proj), all-linear, or one regex (default q_proj,v_proj)'), 'target_modules'],
  [T('loraBias', 'enum', 'bias: which biases train besides the adapters', ['none', 'all', 'lora_only']), 'bias'],
  [T('useRslora', 'bool', 'use_rslora: scale alpha/sqrt(r)'), 'use_rslora'],
  [T('modulesToSave', 'list', 'modules_to_save: modules trained in full and saved with the adapter (e.g. lm_head)'), 'modules_to_save'],
  [T('layersToTransform', 'list', 'layers_to_transform: layer indices to adapt (default all)'), 'layers_to_transform'],
  [T('rankPattern', 'list', 'rank_pattern: MODULE=R,... per-module ranks'), 'rank_pattern'],
  [T('alphaPattern', 'list', 'alpha_pattern: MODULE=ALPHA,... per-module alphas'), 'alpha_pattern'],
  [T('quantAware', 'bool', 'quantisation-aware LoRA on a BitLinear base: the forward quantises W + BA, so merging is exact'), 'quant_aware'],
  // AdaLoRA (PEFT's AdaLoraConfig), prefix / prompt tuning (PrefixTuningConfig, PromptTuningConfig), BitFit
  [T('initR', 'posInt', 'adalora: init_r, triplets per projection at the start (default 12)'), 'init_r'],
  [T('targetR', 'posInt', 'adalora: target_r, the average final rank (default 8)'), 'target_r'],
  [T('tinit', 'nonNegInt', 'adalora: tinit, steps before the budget starts shrinking (default 0)'), 'tinit'],
  [T('tfinal', 'nonNegInt', 'adalora: tfinal, last steps at the final budget (default 0)'), 'tfinal'],
  [T('deltaT', 'posInt', 'adalora: deltaT, steps between reallocations (default 1)'), 'deltaT'],
  [T('adaloraBeta1', 'unitOpen', 'adalora: beta1, EMA of the sensitivity (default 0.85)'), 'beta1'],
  [T('adaloraBeta2', 'unitOpen', 'adalora: beta2, EMA of its uncertainty (default 0.85)'), 'beta2'],
  [T('orthRegWeight', 'nonNegNum', 'adalora: orth_reg_weight of the orthogonality penalty (default 0.5)'), 'orth_reg_weight'],
  [T('numVirtualTokens', 'posInt', 'prefix / p-tuning-v2 / prompt: num_virtual_tokens (required for them)'), 'num_virtual_tokens'],
  [T('prefixProjection', 'bool', 'prefix: train the prefix through the MLP (prefix_projection)'), 'prefix_projection'],
  [T('encoderHiddenSize', 'posInt', 'prefix: the MLP\'s hidden width (encoder_hidden_size; default the model width)'), 'encoder_hidden_size'],
  [T('promptTuningInit', 'enum', 'prompt: initialisation of the soft prompt', ['RANDOM', 'SAMPLE_VOCAB', 'TEXT']), 'prompt_tuning_init'],
  [T('promptTuningInitText', 'string', 'prompt: the text whose token embeddings start the soft prompt (with TEXT)'), 'prompt_tuning_init_text'],
  [T('bitfitTargets', 'enum', 'bitfit: what trains (auto: biases, or the norm scales of a model without biases, as BitNet)', ['auto', 'bias', 'norm', 'both']), 'targets'],
];

const RUN_FLAGS: FlagSpec[] = [
  T('from', 'string', 'base checkpoint (a checkpoint or run directory of bitnet-train)'),
  T('fromHf', 'string', 'base: a Hugging Face LLaMA/BitNet directory (config.json, model.safetensors, tokenizer.json)'),
  T('data', 'string', 'UTF-8 fine-tuning corpus (required)'),
  T('peft', 'enum', 'method: lora (on the base\'s precision; ternary bases stay packed), qlora (NF4 base, FP bases), adalora, prefix (= p-tuning-v2), prompt, bitfit', ['lora', 'qlora', 'adalora', 'prefix', 'p-tuning-v2', 'prompt', 'bitfit']),
  T('gradientCheckpointing', 'bool', 'recompute each block\'s activations in backward: less activation memory, the same bits, ~1.3x step time'),
  T('gradientCheckpointingLayers', 'nonNegInt', 'recompute only the first N blocks (Megatron\'s --recompute-num-layers): memory and step time between none and --gradient-checkpointing'),
  T('iters', 'posInt', 'optimizer steps'),
  T('lr', 'posNum', 'peak learning rate'),
  T('minLr', 'nonNegNum', 'final learning rate'),
  T('warmup', 'nonNegInt', 'warmup steps (at most --iters)'),
  T('weightDecay', 'nonNegNum', 'AdamW weight decay of the adapters'),
  T('optimizer', 'enum', 'adamw, or adamw8bit (m and v as 8-bit blockwise codes, ~2 bytes a trainable parameter instead of 8)', ['adamw', 'adamw8bit']),
  T('beta2', 'unitOpen', 'AdamW beta2'),
  T('clip', 'nonNegNum', 'global gradient-norm clip (0: off)'),
  T('schedule', 'enum', 'learning-rate schedule', ['cosine', 'linear', 'constant']),
  T('batch', 'posInt', 'sequences per step'),
  T('context', 'posInt', 'tokens per sequence (default the base\'s context length)'),
  T('valFraction', 'fraction', 'fraction of the corpus (from its end) held out for validation'),
  T('seed', 'nonNegInt', 'seed of the adapters\' init, the data order and dropout'),
  T('evalEvery', 'nonNegInt', 'evaluate every N steps (0: at the end)'),
  T('evalIters', 'posInt', 'batches per evaluation'),
  T('logEvery', 'posInt', 'progress line every N steps'),
  T('saveEvery', 'nonNegInt', 'checkpoint (with the adapter files) every N steps'),
  T('keep', 'posInt', 'checkpoints kept'),
  T('out', 'string', 'run directory (required; the adapter goes to <out>/adapter)'),
  T('backend', 'enum', 'kernels', ['wasm', 'js']),
  T('threads', 'posInt', 'threads (default every core)'),
  T('unknownChars', 'string', 'characters the base\'s tokenizer cannot encode: error (lists them), drop, or replace=X'),
  T('resume', 'string', 'continue a fine-tuning from one of its checkpoints (bit-identical)'),
];

const CONFIG_FLAG = T('config', 'string', 'JSON object: these flags in camelCase, plus "lora": {PEFT LoraConfig keys}');
const FINETUNE_FLAGS: FlagSpec[] = [CONFIG_FLAG, ...RUN_FLAGS, ...LORA_FLAGS.map(([f]) => f)];

function pairs(flag: string, list: string[], int: boolean): Record<string, number> {
  return Object.fromEntries(list.map((p) => {
    const i = p.lastIndexOf('=');
    const v = Number(p.slice(i + 1));
    if (i <= 0 || !Number.isFinite(v) || (int && !Number.isInteger(v))) throw new UsageError(`${flag}: expected MODULE=${int ? 'R' : 'ALPHA'},..., got '${p}'`);
    return [p.slice(0, i), v];
  }));
}

/** The LoRA keys of parsed flags, in PEFT's names. */
function loraFromFlags(values: Record<string, unknown>): LoraConfigJSON & { quant_aware?: boolean } {
  const out: Record<string, unknown> = {};
  for (const [f, key] of LORA_FLAGS) {
    const v = values[f.spec.key];
    if (v === undefined) continue;
    if (key === 'target_modules') {
      const list = v as string[];
      out[key] = list.length === 1 && (list[0] === 'all-linear' || /[*()[\]|^$\\+?]/.test(list[0]!)) ? list[0] : list;
    } else if (key === 'layers_to_transform') {
      out[key] = (v as string[]).map((x) => {
        if (!/^\d+$/.test(x)) throw new UsageError(`--layers-to-transform: expected layer indices (0,1,...), got '${x}'`);
        return Number(x);
      });
    } else if (key === 'rank_pattern') out[key] = pairs('--rank-pattern', v as string[], true);
    else if (key === 'alpha_pattern') out[key] = pairs('--alpha-pattern', v as string[], false);
    else out[key] = v;
  }
  return out as LoraConfigJSON;
}

const MB = (b: number) => `${(b / 1048576).toFixed(b < 10 * 1048576 ? 2 : 0)} MB`;

/** `bitnet-train finetune`. */
export async function finetuneCommand(argv: readonly string[], io: CliIO): Promise<number> {
  const { values, help } = parseFlags('finetune', argv, FINETUNE_FLAGS);
  if (help) {
    io.stdout.write(finetuneHelp());
    return 0;
  }
  const fs = io.fs ?? (await getDefaultFileSystem());
  let file: Record<string, unknown> = {};
  if (values.config !== undefined) {
    try {
      file = JSON.parse(await fs.readText(values.config as string)) as Record<string, unknown>;
    } catch (err) {
      throw new UsageError(`--config ${String(values.config)}: ${(err as Error).message}`);
    }
    const known = new Set([...RUN_FLAGS.map((f) => f.spec.key as string), 'lora']);
    const bad = Object.keys(file).filter((k) => !known.has(k));
    if (bad.length > 0) throw new UsageError(`--config ${String(values.config)}: unknown key${bad.length > 1 ? 's' : ''} ${bad.join(', ')}; keys are the flags in camelCase (${[...known].join(', ')})`);
  }
  const { config: _c, ...flagValues } = values;
  const run = { ...DEFAULT_FINETUNE_OPTIONS, ...file, ...Object.fromEntries(Object.entries(flagValues).filter(([k]) => RUN_FLAGS.some((f) => f.spec.key === k))) } as unknown as FinetuneOptions;
  run.lora = { ...((file.lora as object | undefined) ?? {}), ...loraFromFlags(values) };
  if (!run.resume) {
    if (!run.from && !run.fromHf) throw new UsageError('finetune: the base is missing; give --from DIR (a bitnet-train checkpoint) or --from-hf DIR (a Hugging Face model directory)');
    if (run.from && run.fromHf) throw new UsageError('finetune: give one base: --from or --from-hf, not both');
    if (!run.data) throw new UsageError('finetune: --data FILE is required (the UTF-8 fine-tuning corpus)');
  }
  if (!run.out) throw new UsageError('finetune: --out DIR is required (the run directory; the adapter goes to DIR/adapter)');
  run.from ??= null;
  const result = await runFinetune(run, {
    onWarning: (m) => io.stderr.write(`warning: ${m}\n`),
    onStart: (i) => {
      const l = i.lora;
      const pct = ((100 * i.trainable) / i.total).toFixed(i.trainable / i.total < 0.01 ? 3 : 2);
      io.stdout.write(
        `base: ${i.base} | frozen as ${i.baseKind === 'ternary' ? 'packed 2-bit ternary codes + scales' : i.baseKind === 'nf4' ? 'NF4 (4-bit, double-quantised scales)' : 'f32'}\n` +
          (i.method ? `peft: ${i.method}\n` : `peft: ${i.peft} r ${l.r}, alpha ${l.loraAlpha}${l.useRslora ? ' (rsLoRA)' : ''}, dropout ${l.loraDropout}, bias ${l.bias}${l.quantAware ? ', quantisation-aware' : ''} | ${i.targets.length} projections adapted${l.modulesToSave.length ? ` | modules_to_save ${l.modulesToSave.join(', ')}` : ''}\n`) +
          `trainable params: ${i.trainable.toLocaleString('en-US')} || all params: ${i.total.toLocaleString('en-US')} || trainable%: ${pct}\n` +
          `memory: base ${MB(i.memory.base)} | adapters + grads ${MB(i.memory.adapters)} | optimizer state ${MB(i.memory.optimizer)} | activations ${MB(i.memory.activations)}\n` +
          `data: ${i.trainTokens} train / ${i.valTokens} val tokens${i.unknownChars.length ? ` (${run.unknownChars === 'drop' ? 'dropped' : 'replaced'}: ${i.unknownChars.map((c) => `${JSON.stringify(c.char)} ×${c.count}`).join(', ')})` : ''} | ${i.threads} thread${i.threads > 1 ? 's' : ''} | run directory ${i.outDir}\n`,
      );
    },
    onLog: (i) => void io.stdout.write(`step ${String(i.step).padStart(5)}/${run.iters} | loss ${i.loss.toFixed(4)} | lr ${i.lr.toExponential(2)} | ${formatRate(i.tokensPerSecond)} tok/s\n`),
    onEval: (i) => void io.stdout.write(`eval step ${i.step}: train loss ${i.trainLoss.toFixed(4)} | val loss ${i.valLoss.toFixed(4)}${i.best ? ' | best so far' : ''}\n`),
  }, { fs });
  io.stdout.write(`done: step ${result.step} | val loss ${result.lastEval?.valLoss.toFixed(4) ?? '?'} | ${formatRate(result.tokensPerSecond)} tok/s | adapter (PEFT format): ${result.adapterDir}\n`);
  return 0;
}

const MERGE_FLAGS: FlagSpec[] = [
  T('ckpt', 'string', 'base checkpoint (required)'),
  T('adapter', 'string', 'adapter directory (adapter_config.json + adapter_model.safetensors; required)'),
  T('out', 'string', 'where the merged checkpoint goes (required; never the base)'),
  T('data', 'string', 'corpus to report val loss before/after on (optional)'),
  T('unknownChars', 'string', 'error, drop or replace=X (with --data)'),
  T('evalIters', 'posInt', 'batches of the val loss report'),
];

/** `bitnet-train merge`: W + s·B·A into a new checkpoint; per projection the ternary flip fraction; val loss before/after. */
export async function mergeCommand(argv: readonly string[], io: CliIO): Promise<number> {
  const { values, help } = parseFlags('merge', argv, MERGE_FLAGS);
  if (help) {
    io.stdout.write(`Usage: bitnet-train merge --ckpt BASE --adapter DIR --out DIR [--data FILE]\n\nMerges a LoRA adapter into its base: W + s·B·A (BitLinear bases: into the latent, re-quantised by the forward).\nWrites a new checkpoint; the base is never overwritten.\n\nOptions:\n${flagLines(MERGE_FLAGS, {})}\n`);
    return 0;
  }
  for (const k of ['ckpt', 'adapter', 'out'] as const) if (values[k] === undefined) throw new UsageError(`merge: --${k} is required`);
  const fs = io.fs ?? (await getDefaultFileSystem());
  const src = await loadSourceCheckpoint(fs, values.ckpt as string, '--ckpt');
  const out = values.out as string;
  const norm = (p: string) => p.replace(/\/+$/, '');
  if (norm(out) === norm(src.ckpt.dir) || norm(out) === norm(values.ckpt as string)) throw new UsageError(`merge: --out ${out} is the base checkpoint; merging never overwrites the base — give another directory`);
  if (await fs.exists(out)) throw new UsageError(`merge: --out ${out} exists; give a new directory`);
  const adapter = await loadAdapter(fs, values.adapter as string, (m) => io.stderr.write(`warning: ${m}\n`));
  const source = `--ckpt ${src.ckpt.dir}/model.safetensors`;
  const base = new Map([...f32Values(src.ckpt.model, source)].map(([k, v]) => [k, { shape: src.ckpt.model.get(k)!.shape, data: v }]));
  const ternary = src.model.bitlinear;
  const merged = mergeAdapter(base, adapter.tensors, adapter.config, ternary);
  // val loss of the adapted model and of the merged one, on the same batches
  let report = '';
  if (values.data !== undefined && src.tokenizer) {
    const text = cleanCorpus(src.tokenizer, await fs.readText(values.data as string), (values.unknownChars as string | undefined) ?? 'error', values.data as string).text;
    const ds = TextDataset.fromText(text, { tokenizer: src.tokenizer, valFraction: 0.1 });
    const n = (values.evalIters as number | undefined) ?? 20;
    const B = 12;
    const Tn = src.model.contextLength;
    const batches = () => {
      const rng = new Rng(7919);
      return Array.from({ length: n }, () => ds.sampleBatch('val', B, Tn, rng));
    };
    const evalModel = (heap: Heap, m: { forward: (a: never, b: never) => { loss?: { itemSync(): number } } }) => {
      let s = 0;
      for (const b of batches()) {
        s += noGrad(() => m.forward(heap.indices(b.inputs, [B, Tn]) as never, heap.indices(b.targets, [B, Tn]) as never).loss!.itemSync());
        heap.resetArena();
      }
      return s / n;
    };
    const be = await createBackend('wasm');
    try {
      const heap = new Heap(be);
      const { model } = await loadAdaptedModel(fs, heap, values.ckpt as string, values.adapter as string);
      const before = evalModel(heap, model as never);
      const plain = createModel(src.model).materialize(heap, new Rng(0));
      plain.params.importValues(new Map([...merged.tensors].map(([k, v]) => [k, v.data])));
      const after = evalModel(heap, plain as never);
      report = `val loss: adapted ${before.toFixed(4)} → merged ${after.toFixed(4)} (${after >= before ? '+' : ''}${(after - before).toFixed(4)})\n`;
    } finally {
      be.dispose();
    }
  }
  const tensors = new Map([...merged.tensors].map(([k, v]) => [k, { dtype: 'F32' as const, shape: v.shape, data: v.data }]));
  const trainer = { ...src.ckpt.trainer, config: { ...(src.ckpt.trainer.config as JsonObject), merged_adapter: values.adapter as string } as JsonObject };
  await saveCheckpoint(fs, out, { model: tensors, trainer });
  for (const p of merged.projections) {
    io.stdout.write(`${p.name}: r ${p.r}${p.flipFraction !== null ? ` | ternary codes flipped ${(100 * p.flipFraction).toFixed(2)}%` : ''}\n`);
  }
  if (ternary) {
    const mean = merged.projections.reduce((s, p) => s + p.flipFraction!, 0) / merged.projections.length;
    io.stdout.write(`mean flip fraction ${(100 * mean).toFixed(2)}%${adapter.metadata['bitnet.quant_aware'] === 'true' ? ' (quantisation-aware adapter: the merged model is the trained one)' : ' (a standard adapter: re-quantising changes the model; train with --quant-aware to merge exactly)'}\n`);
  }
  io.stdout.write(report);
  io.stdout.write(`merged checkpoint: ${joinPath(out)}\n`);
  return 0;
}

/** `bitnet-train finetune --help`. */
export function finetuneHelp(): string {
  return `Usage: bitnet-train finetune (--from DIR | --from-hf DIR) --data FILE --out DIR [--peft lora|qlora|adalora|prefix|p-tuning-v2|prompt|bitfit] [options]

Parameter-efficient fine-tuning: the base is frozen (a BitLinear base stays packed, 2 bits a
weight; QLoRA keeps a full-precision base in NF4); only the LoRA adapters (and what --lora-bias
and --modules-to-save add) train, and only they have gradients and optimizer state. The adapter
is written in Hugging Face PEFT's format (adapter_config.json + adapter_model.safetensors) to
DIR/adapter and into every checkpoint. Sample with: bitnet-train sample --ckpt BASE --adapter DIR/adapter

Options:
${flagLines([CONFIG_FLAG, ...RUN_FLAGS], DEFAULT_FINETUNE_OPTIONS as unknown as Record<string, unknown>)}

LoRA (PEFT's LoraConfig names):
${flagLines(LORA_FLAGS.map(([f]) => f), {})}
  --help                this text
`;
}

/** `bitnet-train sample --ckpt BASE --adapter DIR`: generate with the adapted model (the base stays as it is). */
export async function sampleWithAdapter(args: SampleArgs, io: CliIO, fs: FileSystem): Promise<number> {
  const be = await createBackend(args.backend);
  try {
    const heap = new Heap(be);
    const { model, tokenizer, base } = await loadAdaptedModel(fs, heap, args.ckpt, args.adapter!, { warnings: (m) => io.stderr.write(`warning: ${m}\n`) });
    const prompt = args.promptIds ? Int32Array.from(args.promptIds) : promptIds(tokenizer, args.prompt);
    if (!args.printIds) io.stdout.write(args.prompt);
    const ids = generate(model, heap, prompt, {
      maxNewTokens: args.tokens, temperature: args.temperature, topK: args.topK, rng: new Rng(args.seed),
      onToken: args.printIds ? undefined : (id) => io.stdout.write(tokenizer.decode([id])),
    });
    io.stdout.write(args.printIds ? `${Array.from(ids).join(',')}\n` : '\n');
    io.stderr.write(`(sampled from ${base.dir} with adapter ${args.adapter})\n`);
    return 0;
  } finally {
    be.dispose();
  }
}
