/**
 * A whole run from a `RunConfig`: read the corpus, build backend, model, optimizer and trainer,
 * resume if asked, train with logging and checkpoints, sample some text at the end. This is what
 * `bitnet-train train` runs, and the one-call API:
 *
 * ```ts
 * import { runTraining } from 'bitnet-training';
 * const result = await runTraining({ iters: 200, fp: true, out: 'runs/demo' });
 * console.log(result.lastEval?.valLoss, result.sample);
 * ```
 *
 * Everything that can be checked is checked before anything is written (flags, corpus, model
 * shape against the checkpoint, the checkpoint's files), so bad input never touches a run
 * directory.
 */
import type { Backend } from '../backend/backend.js';
import { defaultThreads } from '../runtime/threads.js';
import { createBackend, readsAreAsync } from '../backend/index.js';
import type { CorpusProgress } from '../data/corpus.js';
import { loadTrainingCorpus } from '../data/run-corpus.js';
import { createTextStream } from '../data/text-stream.js';
import { type Tokenizer, tokenizerFromJSON } from '../data/tokenizer.js';
import { type JsonObject, type LoadedCheckpoint, loadCheckpoint } from '../io/checkpoint.js';
import { resolveCheckpointDir } from '../io/checkpoint-manager.js';
import { RUN_LOCK_DIR, type RunLock, acquireRunLock } from '../io/run-lock.js';
import { StepProfiler, formatProfile } from '../monitor/profiler.js';
import { writeRunReport } from '../monitor/report.js';
import { TensorBoardWriter } from '../monitor/tensorboard.js';
import { writeQuantError, writeRunConfig } from '../monitor/trainer-tensorboard.js';
import { AdamW } from '../optim/adamw.js';
import { AdamW8bit } from '../optim/adamw8bit.js';
import { SGD } from '../optim/sgd.js';
import type { ScheduleConfig } from '../optim/schedule.js';
import { getDefaultFileSystem } from '../runtime/fs.js';
import { type FileSystem, FileSystemError, FS_CODE_TEXT, dirname, joinPath } from '../runtime/fs-types.js';
import { Heap } from '../tensor/heap.js';
import { Rng } from '../util/rng.js';
import { type RunConfig, resolveRunConfig, validatePartialConfig } from './config.js';
import { generate } from './generate.js';
import { backendMemoryLimit, checkMemoryPlan, checkModelShape, checkRunMemory, checkSampleTokens, planSamplingMemory } from './memory-plan.js';
import { type CalibrationEvent, JsonLinesLog, type MixedPrecisionEvent, type QuantErrorEvent, loggingCallbacks } from './log.js';
import { type ModelConfig, createModel, modelConfigFromRun, modelShapeDifferences } from './model.js';
import { QatTraining } from './qat.js';
import { qatConfigWarnings } from './qat-config.js';
import { describeQat } from './qat-describe.js';
import {
  type SourceCheckpoint, buildTeacher, checkSourceShape, checkTeacherSource, chooseMixedPrecision, importSourceWeights, loadSourceCheckpoint,
  resolveProjectionLists, shapeLayerOf, steByLayerEntries,
} from './sources.js';
import { importModelTensors } from './state.js';
import { Trainer, type TrainResult, type TrainerCallbacks } from './trainer.js';

/** What `onStart` reports once everything is set up, before the first step. */
export interface RunStartInfo {
  config: RunConfig;
  model: ModelConfig;
  /** Trainable parameters. */
  parameters: number;
  backend: string;
  /** Threads the backend runs kernels on. */
  threads: number;
  outDir: string;
  logFile: string;
  /** The checkpoint resumed from. */
  resumedFrom?: string;
  /** The checkpoint whose weights the run started from (`--from`). */
  initialisedFrom?: string;
  /** The distillation teacher's checkpoint. */
  teacher?: string;
  /** One line per active QAT feature (empty for plain training). */
  qat: string[];
  startStep: number;
  trainTokens: number;
  valTokens: number;
}

/** Progress hooks of `runTraining` (the trainer's callbacks plus run-level ones). */
export interface RunHooks extends TrainerCallbacks {
  onStart?: (info: RunStartInfo) => void | Promise<void>;
  /** Something the run does differently from what was asked (an option this build lacks). */
  onWarning?: (message: string) => void;
  /** Each decoded piece of the final sample, as it is generated. */
  onSampleText?: (text: string) => void;
  /** An error-analysis report (`--error-every`). */
  onQuantError?: (e: QuantErrorEvent) => void | Promise<void>;
  /** Static activation clips measured (at the start, or an online refresh). */
  onCalibration?: (e: CalibrationEvent) => void | Promise<void>;
  /** The projections `--auto-mixed-precision` kept, once at the start. */
  onMixedPrecision?: (e: MixedPrecisionEvent) => void | Promise<void>;
  /** Reading and tokenising the corpus, after each piece of a few MiB. */
  onDataProgress?: (p: CorpusProgress) => void;
  /** Text to show when the run ends: the `--profile` table, where `--report` wrote the report. */
  onSummary?: (text: string) => void;
}

/** Where the run reads and writes (defaults: the host file system, the current time for `runs/<timestamp>`). */
export interface RunEnvironment {
  fs?: FileSystem;
  now?: () => Date;
  /**
   * Aborting it stops the run after the step in flight, with a checkpoint of that step (resume
   * continues bit-identically) and no sample; the result's `stopReason` is `'interrupted'`.
   * The CLI aborts it on the first Ctrl-C.
   */
  signal?: AbortSignal;
}

export interface RunResult extends TrainResult {
  config: RunConfig;
  outDir: string;
  logFile: string;
  /** The text sampled after training ('' when `sampleTokens` is 0). */
  sample: string;
}

/** Read a whole file, turning "no such file" and "is a directory" into messages that name `what`. */
export async function readInput(fs: FileSystem, path: string, what: string): Promise<Uint8Array> {
  try {
    return await fs.readFile(path);
  } catch (err) {
    if (err instanceof FileSystemError) throw new Error(`${what} ${path}: ${FS_CODE_TEXT[err.code] ?? err.code}`);
    throw err;
  }
}

/** A fresh `runs/<timestamp>` directory name (a suffix avoids reusing an existing one). */
async function defaultOutDir(fs: FileSystem, date: Date): Promise<string> {
  const stamp = date.toISOString().replace(/\.\d+Z$/, '').replace(/:/g, '-');
  let dir = joinPath('runs', stamp);
  for (let i = 2; await fs.exists(dir); i++) dir = joinPath('runs', `${stamp}-${i}`);
  return dir;
}

/** The schedule a run config describes. */
export function scheduleFromRun(cfg: RunConfig): ScheduleConfig {
  const base = { peakLr: cfg.lr, warmup: cfg.warmup, weightDecay: cfg.weightDecay, totalSteps: cfg.iters, minLr: cfg.minLr };
  switch (cfg.schedule) {
    case 'constant': return { kind: 'constant', peakLr: cfg.lr, warmup: cfg.warmup, weightDecay: cfg.weightDecay };
    case 'two-stage': return { kind: 'two-stage', ...base, dropAt: cfg.dropAt, ...(cfg.secondStageLr !== null ? { secondStageLr: cfg.secondStageLr } : {}) };
    default: return { kind: cfg.schedule, ...base };
  }
}

/** The run options trainer.json keeps (not where this run happened to write). */
function persistentConfig(cfg: RunConfig): Partial<RunConfig> {
  const { out: _o, logFile: _l, resume: _r, ...rest } = cfg;
  return rest;
}

/** Prompt ids for sampling: the prompt's tokens, or a newline (else id 0) when it is empty. */
export function promptIds(tokenizer: Tokenizer, prompt: string): Int32Array {
  // a tokenizer that starts sequences with BOS (Hugging Face ones) gets it in front, and BOS alone stands for an empty prompt
  const bos = tokenizer.addBos && tokenizer.bosId != null ? [tokenizer.bosId] : [];
  if (prompt.length > 0) return Int32Array.from([...bos, ...tokenizer.encode(prompt)]);
  if (bos.length > 0) return Int32Array.from(bos);
  try {
    return tokenizer.encode('\n');
  } catch {
    return new Int32Array([0]);
  }
}

/**
 * Train as `config` says (layers of partial configs merge left to right over the defaults).
 * Throws with a clear message on bad input; `TrainingError` when a NaN streak stops training.
 */
export async function runTraining(config: Partial<RunConfig> | Partial<RunConfig>[], hooks: RunHooks = {}, env: RunEnvironment = {}): Promise<RunResult> {
  const layers = (Array.isArray(config) ? config : [config]).map((c, i) => validatePartialConfig(c, Array.isArray(config) ? `config[${i}]` : 'config'));
  const fs = env.fs ?? (await getDefaultFileSystem());
  const resumeArg = layers.reduce<string | null>((r, l) => (l.resume !== undefined ? l.resume : r), null);

  // 1. the checkpoint to resume from: its run config is the base layer, its tokenizer is kept
  let ckpt: LoadedCheckpoint | undefined;
  let savedModel: Partial<ModelConfig> | undefined;
  let savedRun: Partial<RunConfig> = {};
  if (resumeArg) {
    ckpt = await loadCheckpoint(fs, await resolveCheckpointDir(fs, resumeArg));
    const saved = ckpt.trainer.config as { run?: unknown; model?: Partial<ModelConfig> };
    savedRun = saved.run ? validatePartialConfig(saved.run, `checkpoint ${ckpt.dir}/trainer.json config.run`) : {};
    savedModel = saved.model;
  }
  // --from (a fresh run only): its shape and corpus are the defaults; its weights the start
  const fromGiven = layers.reduce<string | null>((r, l) => (l.from !== undefined ? l.from : r), null);
  if (resumeArg && fromGiven) hooks.onWarning?.(`--from ${fromGiven} is ignored: --resume continues its checkpoint's own weights`);
  const fromArg = resumeArg ? null : fromGiven;
  const from: SourceCheckpoint | undefined = fromArg ? await loadSourceCheckpoint(fs, fromArg, '--from') : undefined;
  const cfg = resolveRunConfig(savedRun, from ? shapeLayerOf(from) : {}, ...layers);
  const teacherSrc = cfg.teacher ? await loadSourceCheckpoint(fs, cfg.teacher, '--teacher') : undefined;
  // the memory plan before the corpus is read (its vocabulary at least 1, or 256 bytes): an impossible size fails at once
  checkRunMemory(cfg, modelConfigFromRun(cfg, cfg.tokenizer === 'byte' ? 256 : 1), teacherSrc?.model);

  // 2. data
  const savedTokenizer = ckpt?.trainer.tokenizer ?? from?.ckpt.trainer.tokenizer;
  const dataset = await loadTrainingCorpus(fs, cfg, savedTokenizer ? tokenizerFromJSON(savedTokenizer) : undefined, hooks.onDataProgress);

  // 3. model shape (checked against the checkpoints before any memory is touched)
  const modelCfg = modelConfigFromRun(cfg, dataset.tokenizer.vocabSize);
  Object.assign(modelCfg, resolveProjectionLists(modelCfg));
  if (modelCfg.bitlinear) {
    cfg.keepFp = [...modelCfg.keepFp!];
    cfg.keepInt8 = [...modelCfg.keepInt8!];
    cfg.steByLayer = steByLayerEntries(modelCfg.steByLayer!);
  }
  if (from) checkSourceShape(from, modelCfg);
  if (teacherSrc) checkTeacherSource(teacherSrc, modelCfg, dataset.tokenizer);
  if (ckpt && savedModel) {
    const diff = modelShapeDifferences(savedModel, modelCfg);
    if (diff.length > 0) throw new Error(`checkpoint ${ckpt.dir} is from a different model: ${diff.join('; ')}. Resume with the checkpoint's settings, or start a new run without --resume`);
  }
  checkRunMemory(cfg, modelCfg, teacherSrc?.model);
  const model = createModel(modelCfg);
  for (const w of qatConfigWarnings(cfg, ckpt?.trainer.step ?? 0)) hooks.onWarning?.(w);

  let backend: Backend | undefined;
  let lock: RunLock | undefined;
  try {
    backend = await createBackend(cfg.backend, { threads: cfg.threads ?? (await defaultThreads()) });
    if (cfg.optimizer === 'sgd' && readsAreAsync(backend)) throw new Error(`optimizer 'sgd' reads its clipping factor synchronously, which the ${backend.name} backend cannot; use optimizer 'adamw' (the default) or --backend wasm`);
    const profiler = cfg.profile ? new StepProfiler(cfg.profileSteps) : undefined;
    const heap = new Heap(profiler ? profiler.wrapBackend(backend) : backend);
    profiler?.attachTape(heap.tape);
    model.materialize(heap, new Rng(cfg.seed));
    if (from) importSourceWeights(model, from);
    const teacher = teacherSrc ? buildTeacher(heap, teacherSrc) : null;
    const adam = { lr: cfg.lr, betas: [cfg.beta1, cfg.beta2] as [number, number], weightDecay: cfg.weightDecay, clipNorm: cfg.clip };
    const optimizer = cfg.optimizer === 'sgd'
      ? new SGD(model.params, { lr: cfg.lr, momentum: cfg.momentum, weightDecay: cfg.weightDecay, clipNorm: cfg.clip })
      : cfg.optimizer === 'adamw8bit' ? new AdamW8bit(model.params, adam) : new AdamW(model.params, adam);
    const outDir = cfg.out ?? (ckpt ? dirname(ckpt.dir) : await defaultOutDir(fs, (env.now ?? (() => new Date()))()));
    lock = await acquireRunLock(fs, outDir); // one run per directory (a dead run's lock is taken over)
    if (lock.tookOverFrom) hooks.onWarning?.(`took over ${outDir}/${RUN_LOCK_DIR} of pid ${lock.tookOverFrom.pid}, which is no longer running`);
    const logFile = cfg.logFile ?? joinPath(outDir, 'log.jsonl');
    const log = new JsonLinesLog(fs, logFile);
    const tb = cfg.tensorboard !== null ? await TensorBoardWriter.create(fs, cfg.tensorboard) : undefined;
    const qat = new QatTraining(model, cfg, dataset, teacher, {
      onQuantError: async (e) => {
        await log.write(e);
        if (tb) await writeQuantError(tb, e, model.params);
        await hooks.onQuantError?.(e);
      },
      onCalibration: async (e) => {
        await log.write(e);
        await hooks.onCalibration?.(e);
      },
    });
    // what checkpoints record; --auto-mixed-precision below adds its picks before the first save
    const record = { run: persistentConfig(cfg), model: { ...modelCfg } };
    const trainer = new Trainer({
      model,
      dataset,
      optimizer,
      options: {
        iters: cfg.iters,
        batchSize: cfg.batch,
        contextLength: cfg.context,
        gradAccum: cfg.gradAccum,
        schedule: scheduleFromRun(cfg),
        seed: cfg.seed,
        evalEvery: cfg.evalEvery,
        evalIters: cfg.evalIters,
        logEvery: cfg.logEvery,
        saveEvery: cfg.saveEvery,
        checkpoints: { fs, dir: outDir, keep: cfg.keep },
        patience: cfg.patience,
        maxNanSteps: cfg.maxNanSteps,
        config: record as unknown as JsonObject,
        extension: qat,
        tensorboard: tb,
        ...loggingCallbacks(log, hooks),
      },
    });
    if (ckpt) trainer.restore(ckpt);
    profiler?.attachTrainer(trainer);
    await hooks.onStart?.({
      config: cfg, model: modelCfg, parameters: model.params.count, backend: backend.name, threads: (backend as { threads?: number }).threads ?? 1, outDir, logFile,
      resumedFrom: ckpt?.dir, startStep: trainer.step, trainTokens: dataset.train.length, valTokens: dataset.val.length,
      ...(from ? { initialisedFrom: from.ckpt.dir } : {}), ...(teacherSrc ? { teacher: teacherSrc.ckpt.dir } : {}), qat: describeQat(cfg, qat),
    });

    if (!ckpt) {
      // start-of-run QAT decisions (a resumed run has them in its checkpoint)
      const mp = await chooseMixedPrecision(model, cfg, dataset);
      if (mp) {
        const key = cfg.autoMixedPrecisionAs === 'fp' ? 'keepFp' : 'keepInt8';
        cfg[key] = [...cfg[key], ...mp.projections];
        modelCfg[key] = [...cfg[key]];
        record.run = persistentConfig(cfg);
        record.model = { ...modelCfg };
        const e: MixedPrecisionEvent = { event: 'mixed_precision', precision: cfg.autoMixedPrecisionAs, projections: mp.projections, sensitivity: mp.report };
        await log.write(e);
        await hooks.onMixedPrecision?.(e);
      }
      qat.beforeEval(0); // the QAT state of step 0: calibrate the clips on the activations step 0 sees
      await qat.initialCalibration();
    }

    await log.write({ event: 'config', step: trainer.step, run: record.run, model: record.model, parameters: model.params.count });
    if (tb) writeRunConfig(tb, record, trainer.step);
    const result = await trainer.train({ signal: env.signal });
    if (profiler) {
      const p = profiler.report();
      await log.write({ event: 'profile', ...p });
      hooks.onSummary?.(formatProfile(p));
    }

    let sample = '';
    if (cfg.sampleTokens > 0 && result.stopReason !== 'interrupted' && readsAreAsync(backend)) {
      // sampling reads logits synchronously token by token (train/generate.ts)
      hooks.onWarning?.(`no sample after training: sampling needs synchronous reads, which the ${backend.name} backend does not have; sample from the checkpoint with \`bitnet-train sample --backend wasm\``);
    } else if (cfg.sampleTokens > 0 && result.stopReason !== 'interrupted') {
      const prompt = promptIds(dataset.tokenizer, cfg.prompt);
      const stream = hooks.onSampleText ? createTextStream(dataset.tokenizer, prompt) : undefined;
      const ids = generate(model, heap, prompt, {
        maxNewTokens: cfg.sampleTokens,
        temperature: cfg.temperature,
        topK: cfg.topK,
        rng: new Rng(cfg.seed + 104729),
        onToken: stream ? (id) => { const t = stream.push(id); if (t) hooks.onSampleText!(t); } : undefined,
      });
      const rest = stream?.flush();
      if (rest) hooks.onSampleText!(rest);
      sample = dataset.tokenizer.decode([...prompt, ...ids]).slice(dataset.tokenizer.decode(prompt).length);
      await log.write({ event: 'sample', step: result.step, prompt: cfg.prompt, text: sample });
    }
    await log.write({ event: 'done', step: result.step, val_loss: result.lastEval?.valLoss ?? null, train_seconds: result.trainSeconds, tokens_per_s: result.tokensPerSecond, ...(result.stopReason === 'interrupted' ? { stop_reason: 'interrupted' as const } : {}) });
    await tb?.close();
    if (cfg.report) {
      try {
        const path = await writeRunReport(fs, logFile, joinPath(outDir, 'report.html'));
        hooks.onSummary?.(`report: ${path}`);
      } catch (err) {
        hooks.onWarning?.(`--report: ${(err as Error).message}; the run itself completed (write the report later with bitnet-train report ${outDir})`);
      }
    }
    return { ...result, config: cfg, outDir, logFile, sample };
  } finally {
    await lock?.release();
    backend?.dispose();
    await dataset.close();
  }
}

/** Options of `sampleFromCheckpoint`. */
export interface SampleOptions {
  /** A checkpoint directory, or a run directory (its latest `ckpt-<step>`). */
  ckpt: string;
  prompt?: string;
  /** Tokens to generate (default 500). */
  tokens?: number;
  temperature?: number;
  topK?: number;
  seed?: number;
  backend?: 'wasm' | 'js';
  /** Token ids to continue instead of `prompt` (a checkpoint without a tokenizer works with these). */
  promptIds?: ArrayLike<number>;
  /** The text each generated token adds, as it is generated (decoded in context, so multi-byte characters and word-initial spaces come out right). */
  onText?: (text: string) => void;
  /** Each generated id. */
  onId?: (id: number) => void;
}

/** Load a checkpoint's model and tokenizer and generate text from a prompt. Returns the prompt plus the generated text. */
export async function sampleFromCheckpoint(options: SampleOptions, env: RunEnvironment = {}): Promise<{ text: string; ids: Int32Array; checkpoint: string; step: number }> {
  const fs = env.fs ?? (await getDefaultFileSystem());
  checkSampleTokens(options.tokens ?? 500, '--tokens');
  const ckpt = await loadCheckpoint(fs, await resolveCheckpointDir(fs, options.ckpt), { optimizer: false }); // sampling needs only the weights
  const saved = ckpt.trainer.config as { model?: ModelConfig };
  if (!saved.model || typeof saved.model.vocabSize !== 'number') throw new Error(`checkpoint ${ckpt.dir}/trainer.json has no config.model; it was not written by bitnet-train`);
  if (!ckpt.trainer.tokenizer && options.promptIds === undefined) throw new Error(`checkpoint ${ckpt.dir}/trainer.json has no tokenizer; cannot turn text into ids (give the prompt as --prompt-ids and read the output with --print-ids)`);
  checkModelShape(saved.model, `checkpoint ${ckpt.dir}/trainer.json config.model`);
  const tokenizer = ckpt.trainer.tokenizer ? tokenizerFromJSON(ckpt.trainer.tokenizer) : undefined;
  if (tokenizer && tokenizer.vocabSize !== saved.model.vocabSize) {
    throw new Error(`checkpoint ${ckpt.dir}/trainer.json: its tokenizer has ${tokenizer.vocabSize} ids but config.model.vocabSize is ${saved.model.vocabSize} (the file was edited or damaged); use another checkpoint`);
  }
  checkMemoryPlan(planSamplingMemory(saved.model), backendMemoryLimit(options.backend ?? 'wasm'), { context: saved.model.contextLength, training: false });
  const model = createModel(saved.model);
  const prompt = options.promptIds !== undefined ? Int32Array.from(options.promptIds) : promptIds(tokenizer!, options.prompt ?? '');
  const stream = tokenizer && options.onText ? createTextStream(tokenizer, prompt) : undefined;
  const backend = await createBackend(options.backend ?? 'wasm');
  try {
    const heap = new Heap(backend);
    model.materialize(heap, new Rng(0));
    importModelTensors(model.params, ckpt.model, `checkpoint ${ckpt.dir}/model.safetensors`);
    const ids = generate(model, heap, prompt, {
      maxNewTokens: options.tokens ?? 500,
      temperature: options.temperature ?? 0.8,
      topK: options.topK ?? 0,
      rng: new Rng(options.seed ?? 1337),
      onToken: (id) => {
        options.onId?.(id);
        const t = stream?.push(id);
        if (t) options.onText!(t);
      },
    });
    const rest = stream?.flush();
    if (rest) options.onText!(rest);
    // the text after the prompt: decoded with the prompt, so the first token's leading space survives
    const head = tokenizer ? tokenizer.decode(prompt) : '';
    const after = tokenizer ? tokenizer.decode([...prompt, ...ids]).slice(head.length) : '';
    return { text: (options.promptIds !== undefined ? head : (options.prompt ?? '')) + after, ids, checkpoint: ckpt.dir, step: ckpt.trainer.step };
  } finally {
    backend.dispose();
  }
}
