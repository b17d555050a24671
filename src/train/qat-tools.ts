/**
 * QAT operations on a saved checkpoint (what `bitnet-train calibrate` and `bitnet-train analyze`
 * run):
 *
 * - `calibrateCheckpoint`: static activation clips for a BitLinear checkpoint, measured on N
 *   training batches, written as a new checkpoint whose model has `activationScale: 'static'`
 *   (resumable: the new parameters get zero optimizer state).
 * - `analyzeCheckpoint`: per-projection sensitivity (val-loss change with only that projection FP,
 *   and with only it ternary) plus one error-analysis report. A full-precision checkpoint is
 *   analysed as its BitLinear conversion (the same weights, quantised).
 */
import { noGrad } from '../autograd/tape.js';
import { createBackend } from '../backend/index.js';
import { TextDataset } from '../data/dataset.js';
import { type JsonObject, saveCheckpoint } from '../io/checkpoint.js';
import type { SafetensorsTensor } from '../io/safetensors.js';
import type { TokenBatch } from '../optim/train-step.js';
import {
  type CalibrationMethod, type CalibrationResult, type QuantReport, QuantErrorAnalyzer, type SensitivityReport, calibrate, sensitivityAnalysis,
} from '../qat/index.js';
import { getDefaultFileSystem } from '../runtime/fs.js';
import { defaultThreads } from '../runtime/threads.js';
import { Heap } from '../tensor/heap.js';
import { Rng } from '../util/rng.js';
import { DEFAULT_RUN_CONFIG } from './config.js';
import { type LanguageModel, type ModelConfig, createModel } from './model.js';
import { type RunEnvironment, readInput } from './run.js';
import { type SourceCheckpoint, analysisBatches, loadSourceCheckpoint } from './sources.js';
import { exportModelTensors, importModelTensors } from './state.js';

/** Options shared by the checkpoint tools. */
export interface CheckpointToolOptions {
  /** A checkpoint directory, or a run directory (its latest `ckpt-<step>`). */
  ckpt: string;
  /** Batches to measure on (calibrate: default 8; analyze: default 4). */
  batches?: number;
  /** The corpus (default: the checkpoint's run's). */
  data?: string;
  /** Seed of the batch draws (default: the checkpoint's run's). */
  seed?: number;
  backend?: 'wasm' | 'js';
  threads?: number;
}

/** A checkpoint's model materialized on a fresh backend, with batches of its corpus. */
interface Loaded {
  src: SourceCheckpoint;
  model: LanguageModel;
  modelCfg: ModelConfig;
  heap: Heap;
  dataset: TextDataset;
  B: number;
  T: number;
  seed: number;
  dispose(): void;
}

async function loadForTool(command: string, o: CheckpointToolOptions, env: RunEnvironment, edit: (m: ModelConfig) => ModelConfig, prepare?: (model: LanguageModel) => void): Promise<Loaded> {
  const fs = env.fs ?? (await getDefaultFileSystem());
  const src = await loadSourceCheckpoint(fs, o.ckpt, '--ckpt');
  if (!src.tokenizer) throw new Error(`--ckpt ${src.ckpt.dir}: trainer.json has no tokenizer; cannot turn text into ids`);
  const data = o.data ?? src.run.data ?? DEFAULT_RUN_CONFIG.data;
  const bytes = await readInput(fs, data, `${command}: data file`);
  const T = Math.min(src.run.context ?? src.model.contextLength, src.model.contextLength);
  const B = src.run.batch ?? DEFAULT_RUN_CONFIG.batch;
  const dataset = TextDataset.fromBytes(bytes, { tokenizer: src.tokenizer, valFraction: src.run.valFraction ?? DEFAULT_RUN_CONFIG.valFraction, source: data, contextLength: T });
  const modelCfg = edit(src.model);
  const model = createModel(modelCfg);
  const backend = await createBackend(o.backend ?? 'wasm', { threads: o.threads ?? (await defaultThreads()) });
  try {
    const heap = new Heap(backend);
    model.materialize(heap, new Rng(0));
    importModelTensors(model.params, src.ckpt.model, `--ckpt ${src.ckpt.dir}/model.safetensors`, { partial: true });
    prepare?.(model);
    return { src, model, modelCfg, heap, dataset, B, T, seed: o.seed ?? src.run.seed ?? DEFAULT_RUN_CONFIG.seed, dispose: () => backend.dispose() };
  } catch (err) {
    backend.dispose();
    throw err;
  }
}

function positiveInt(flag: string, v: number | undefined, dflt: number): number {
  const n = v ?? dflt;
  if (!(Number.isSafeInteger(n) && n > 0)) throw new Error(`${flag} must be a positive integer, got ${String(v)}`);
  return n;
}

/** Options of `calibrateCheckpoint`. */
export interface CalibrateCheckpointOptions extends CheckpointToolOptions {
  method?: CalibrationMethod;
  percentile?: number;
  momentum?: number;
  /** Where the calibrated checkpoint goes (default `<checkpoint>-calibrated`; the checkpoint itself is allowed). */
  out?: string;
}

/** What `calibrateCheckpoint` did. */
export interface CalibrateCheckpointResult {
  checkpoint: string;
  out: string;
  step: number;
  result: CalibrationResult;
}

/** Calibrate static activation clips of a BitLinear checkpoint and save the result (see the file header). */
export async function calibrateCheckpoint(o: CalibrateCheckpointOptions, env: RunEnvironment = {}): Promise<CalibrateCheckpointResult> {
  const n = positiveInt('calibrate: --batches', o.batches, 8);
  const fs = env.fs ?? (await getDefaultFileSystem());
  const l = await loadForTool('calibrate', o, { ...env, fs }, (m) => {
    if (!m.bitlinear) throw new Error('calibrate: the checkpoint is a full-precision model (--fp): it has no activation quantisers; convert it first (bitnet-train convert --from DIR)');
    return { ...m, activationScale: 'static', activationSte: m.activationScale === 'static' ? (m.activationSte ?? 'clipped') : 'clipped' };
  });
  try {
    const rng = new Rng(l.seed);
    const batches: TokenBatch[] = Array.from({ length: n }, () => {
      const b = l.dataset.sampleBatch('train', l.B, l.T, rng);
      return { tokens: b.inputs, targets: b.targets, B: l.B, T: l.T };
    });
    const result = await calibrate(l.model, batches, { method: o.method ?? 'absmax', percentile: o.percentile, momentum: o.momentum });
    const src = l.src.ckpt;
    const out = o.out ?? `${src.dir}-calibrated`;
    const model = await exportModelTensors(l.model.params);
    const run = { ...l.src.run, activationScale: 'static', activationSte: l.modelCfg.activationSte };
    const extra = (src.trainer.extra ?? {}) as JsonObject & { optimizer?: { kind?: string } };
    await saveCheckpoint(fs, out, {
      model,
      ...(src.optimizer ? { optimizer: withZeroState(src.optimizer, model, src.model, extra.optimizer?.kind === 'sgd' ? ['momentum_buffer'] : ['exp_avg', 'exp_avg_sq']) } : {}),
      trainer: {
        ...src.trainer,
        config: { ...src.trainer.config, run, model: { ...l.modelCfg } } as unknown as JsonObject,
        extra: { ...extra, calibration: { method: result.method, batches: result.batches, from: src.dir } },
      },
    });
    return { checkpoint: src.dir, out, step: src.trainer.step, result };
  } finally {
    l.dispose();
  }
}

/** The optimizer tensors plus zero state for parameters the old model lacked (they start without history). */
function withZeroState(opt: Map<string, SafetensorsTensor>, model: Map<string, SafetensorsTensor>, old: Map<string, SafetensorsTensor>, suffixes: string[]): Map<string, SafetensorsTensor> {
  const out = new Map(opt);
  for (const [name, t] of model) {
    if (old.has(name)) continue;
    for (const s of suffixes) out.set(`${name}.${s}`, { dtype: 'F32', shape: [...t.shape], data: new Float32Array(t.data.length) });
  }
  return out;
}

/** What `analyzeCheckpoint` measured. */
export interface AnalyzeResult {
  checkpoint: string;
  step: number;
  /** The checkpoint holds a full-precision model, analysed as its BitLinear conversion. */
  fullPrecisionCheckpoint: boolean;
  sensitivity: SensitivityReport;
  quantError: QuantReport;
}

/** Sensitivity analysis and one error-analysis report of a checkpoint (see the file header). */
export async function analyzeCheckpoint(o: CheckpointToolOptions, env: RunEnvironment = {}): Promise<AnalyzeResult> {
  const n = positiveInt('analyze: --batches', o.batches, 4);
  let analyzer: QuantErrorAnalyzer | undefined;
  const l = await loadForTool('analyze', o, env, (m) => (m.bitlinear ? m : { ...m, bitlinear: true, bitlinearNorm: false /* λ-free conversion: the FP model has no norm in front of its projections */ }), (model) => {
    analyzer = new QuantErrorAnalyzer(model, { every: 1 }); // static memory: before the first forward
  });
  try {
    const batches = analysisBatches(l.dataset, l.B, l.T, n, l.seed + 104723);
    const sensitivity = await sensitivityAnalysis(l.model, batches);
    const b = batches[0]!;
    analyzer!.beginStep(0);
    noGrad(() => l.model.forward(l.heap.indices(b.tokens, [b.B, b.T])));
    l.heap.resetArena();
    const quantError = await analyzer!.report(0);
    return { checkpoint: l.src.ckpt.dir, step: l.src.ckpt.trainer.step, fullPrecisionCheckpoint: !l.src.model.bitlinear, sensitivity, quantError };
  } finally {
    l.dispose();
  }
}
