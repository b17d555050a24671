/**
 * Checkpoints a run reads besides its own: `--from` (the weights a conversion or fine-tune starts
 * from) and `--teacher` (distillation) — loaded and checked before anything is written — and the
 * start-of-run QAT decisions that depend on the model: projection names of `--keep-fp` /
 * `--keep-int8` / `--ste-by-layer`, and `--auto-mixed-precision`.
 */
import type { TextDataset } from '../data/dataset.js';
import { HfTokenizer } from '../data/hf-tokenizer.js';
import { hfFilesFromFileSystem } from '../io/hf/source.js';
import { type HfLoadProgress, readHfWeights } from '../io/hf/weights.js';
import type { JsonObject } from '../io/checkpoint.js';
import type { SafetensorsTensor } from '../io/safetensors.js';
import { llamaConfigFromHf } from '../nn/hf-config.js';
import { LlamaModel, resolveLlamaConfig } from '../nn/llama.js';
import { type Tokenizer, tokenizerFromJSON } from '../data/tokenizer.js';
import { CheckpointError, type LoadedCheckpoint, loadCheckpoint } from '../io/checkpoint.js';
import { resolveCheckpointDir } from '../io/checkpoint-manager.js';
import { projectionNames } from '../nn/bitlinear.js';
import type { TokenBatch } from '../optim/train-step.js';
import { type SensitivityReport, autoMixedPrecision, checkTeacher, sensitivityAnalysis } from '../qat/index.js';
import type { FileSystem } from '../runtime/fs-types.js';
import type { Heap } from '../tensor/heap.js';
import { Rng } from '../util/rng.js';
import { type RunConfig, closest, validatePartialConfig } from './config.js';
import { type LanguageModel, type ModelConfig, createModel, modelConfigOf, modelShapeDifferences } from './model.js';
import { importModelTensors } from './state.js';

/** A checkpoint read by another run. */
export interface SourceCheckpoint {
  /** The flag that named it, for messages: `--from` or `--teacher`. */
  flag: string;
  ckpt: LoadedCheckpoint;
  model: ModelConfig;
  /** Its run options (empty for a checkpoint not written by bitnet-train's runner). */
  run: Partial<RunConfig>;
  tokenizer: Tokenizer | undefined;
}

/** Whether `path` is a Hugging Face model directory (a config.json, not a bitnet-train checkpoint's trainer.json). */
export async function isHfModelDirectory(fs: FileSystem, path: string): Promise<boolean> {
  const dir = path.replace(/\/+$/, '');
  return (await fs.exists(`${dir}/config.json`)) && !(await fs.exists(`${dir}/trainer.json`));
}

/**
 * A Hugging Face directory (`--from-hf DIR`, or `--from` / `--teacher` naming one) as a source:
 * its config.json mapped to a llama/bitnet model config, its weights read and converted to f32
 * (one copy of the model; packed BitNet weights become latent weights quantising to the same
 * codes), and its tokenizer.json. The run then trains that model on the corpus with that
 * tokenizer. Errors start with `flag path:`.
 */
export async function loadHfSource(fs: FileSystem, path: string, flag: string, onProgress?: (p: HfLoadProgress) => void): Promise<SourceCheckpoint> {
  const dir = path.replace(/\/+$/, '');
  try {
    const files = hfFilesFromFileSystem(fs, dir);
    const spec = llamaConfigFromHf(JSON.parse(await files.readText('config.json')), `${dir}/config.json`);
    const resolved = resolveLlamaConfig(spec.config);
    const model = modelConfigOf(resolved);
    let tokenizer: Tokenizer | undefined;
    if (await files.exists('tokenizer.json')) {
      const tc = (await files.exists('tokenizer_config.json')) ? JSON.parse(await files.readText('tokenizer_config.json')) : {};
      const hf = HfTokenizer.fromJSON(JSON.parse(await files.readText('tokenizer.json')), tc);
      if (hf.vocabSize > resolved.vocabSize) {
        throw new Error(`${dir}/tokenizer.json: the tokenizer has ${hf.vocabSize} ids but config.json vocab_size is ${resolved.vocabSize}; use the tokenizer files that came with these weights`);
      }
      tokenizer = hf;
    } else {
      throw new Error(`no tokenizer.json; a run needs the model's own tokenizer (its token ids are the embedding rows), so add the tokenizer files that came with these weights`);
    }
    const { values } = await readHfWeights(new LlamaModel(spec.config), files, spec, { onProgress });
    const tensors = new Map<string, SafetensorsTensor>();
    const shapes = new Map([...new LlamaModel(spec.config).params].map(([n, t]) => [n, t.shape]));
    for (const [name, data] of values) tensors.set(name, { dtype: 'F32', shape: [...shapes.get(name)!], data });
    const ckpt: LoadedCheckpoint = {
      dir, formatVersion: 0, model: tensors,
      trainer: { step: 0, config: { model: model as unknown as JsonObject }, rng: new Rng(0).state(), ...(tokenizer ? { tokenizer: tokenizer.toJSON() } : {}) },
    };
    return { flag, ckpt, model, run: {}, tokenizer };
  } catch (err) {
    throw new Error(`${flag} ${dir}: ${(err as Error).message.replace(`${dir}/`, '').replace(/^config\.json: /, 'config.json: ')}`);
  }
}

/**
 * Load a checkpoint (or a run directory's latest) named by `flag`, or a Hugging Face model
 * directory (`onProgress`: its weight stream); errors start with `flag path:`.
 */
export async function loadSourceCheckpoint(fs: FileSystem, path: string, flag: string, onProgress?: (p: HfLoadProgress) => void): Promise<SourceCheckpoint> {
  if (await isHfModelDirectory(fs, path)) return loadHfSource(fs, path, flag, onProgress);
  let ckpt: LoadedCheckpoint;
  try {
    ckpt = await loadCheckpoint(fs, await resolveCheckpointDir(fs, path));
  } catch (err) {
    if (err instanceof CheckpointError) throw new Error(`${flag} ${path}: ${err.message}`);
    throw err;
  }
  const saved = ckpt.trainer.config as { model?: ModelConfig; run?: unknown };
  if (!saved.model || typeof saved.model.vocabSize !== 'number') throw new Error(`${flag} ${ckpt.dir}: trainer.json has no config.model; it was not written by bitnet-train`);
  const run = saved.run ? validatePartialConfig(saved.run, `${flag} ${ckpt.dir}/trainer.json config.run`) : {};
  return { flag, ckpt, model: saved.model, run, tokenizer: ckpt.trainer.tokenizer ? tokenizerFromJSON(ckpt.trainer.tokenizer) : undefined };
}

/**
 * The run options a `--from` checkpoint fixes: the model shape and (as defaults) its corpus and
 * the built-in norm (off for a full-precision source).
 */
export function shapeLayerOf(src: SourceCheckpoint): Partial<RunConfig> {
  const m = src.model;
  const r = src.run;
  const family = m.family ?? 'gpt';
  const llama: Partial<RunConfig> = family === 'gpt' ? {} : {
    family, kvHeads: m.kvHeads ?? null, headDim: m.headDim ?? null, hidden: m.hidden ?? null, ropeTheta: m.ropeTheta ?? null, normEps: m.normEps ?? null,
    // a Hugging Face model keeps its RoPE table (max_position_embeddings); the training window is --context
    maxPositions: m.contextLength, vocabRows: m.vocabSize, fp: !m.bitlinear,
    ropeScaling: m.ropeScaling ?? 'none', ropeScalingFactor: m.ropeScalingFactor ?? null, ropeLowFreqFactor: m.ropeLowFreqFactor ?? null,
    ropeHighFreqFactor: m.ropeHighFreqFactor ?? null, ropeOriginalMaxPositions: m.ropeOriginalMaxPositions ?? null,
  };
  return {
    ...llama,
    ...(r.data !== undefined ? { data: r.data } : {}),
    ...(r.tokenizer !== undefined ? { tokenizer: r.tokenizer } : {}),
    ...(r.valFraction !== undefined ? { valFraction: r.valFraction } : {}),
    layers: m.layers, heads: m.heads, dim: m.dim, ...(family === 'gpt' ? { context: m.contextLength } : {}), norm: m.norm, mlp: m.mlp, pos: m.pos, bias: m.bias, tiedHead: m.tiedHead, initStd: m.initStd,
    // a full-precision model has no norm in front of its projections: without BitLinear's built-in
    // one, λ = 0 reproduces it bit for bit (a BitLinear source keeps its own setting)
    bitlinearNorm: m.bitlinear ? (m.bitlinearNorm ?? true) : false,
  };
}

/** Throw unless the `--from` checkpoint has the requested shape (precision and QAT options may differ). */
export function checkSourceShape(src: SourceCheckpoint, requested: ModelConfig): void {
  const diff = modelShapeDifferences({ ...src.model, bitlinear: false, bitlinearNorm: undefined }, { ...requested, bitlinear: false });
  if (diff.length > 0) throw new Error(`${src.flag} ${src.ckpt.dir} is a different model shape: ${diff.join('; ')}. Leave the shape flags out (they default to the checkpoint's)`);
}

/** Load `--from` weights into `model`: parameters the checkpoint lacks (QAT additions) keep their init; its QAT-only tensors the model lacks are skipped. */
export function importSourceWeights(model: LanguageModel, src: SourceCheckpoint): void {
  const tensors = new Map([...src.ckpt.model].filter(([name]) => model.params.has(name) || !/\.(weight_step|input_clip)$/.test(name)));
  importModelTensors(model.params, tensors, `${src.flag} ${src.ckpt.dir}/model.safetensors`, { partial: true });
}

/** Throw unless the teacher can teach a student of `student` with `tokenizer`. */
export function checkTeacherSource(src: SourceCheckpoint, student: ModelConfig, tokenizer: Tokenizer): void {
  try {
    checkTeacher({ config: src.model, forward: () => { throw new Error('unreachable'); } }, { config: student, forward: () => { throw new Error('unreachable'); } });
  } catch (err) {
    throw new Error(`${src.flag} ${src.ckpt.dir}: ${(err as Error).message}`);
  }
  if (src.tokenizer && JSON.stringify(src.tokenizer.toJSON()) !== JSON.stringify(tokenizer.toJSON())) {
    throw new Error(`${src.flag} ${src.ckpt.dir}: the teacher's tokenizer has the student's ${tokenizer.vocabSize} ids but maps them to other tokens; train the teacher on the same corpus with the same --tokenizer`);
  }
}

/** Build the teacher on the student's heap (materialized, weights loaded); its forward runs without a gradient. */
export function buildTeacher(heap: Heap, src: SourceCheckpoint): LanguageModel {
  const teacher = createModel(src.model).materialize(heap, new Rng(0));
  importModelTensors(teacher.params, src.ckpt.model, `${src.flag} ${src.ckpt.dir}/model.safetensors`);
  return teacher;
}

/**
 * Check and normalise the projection names of `--keep-fp`, `--keep-int8` and `--ste-by-layer`
 * against the model `cfg` describes: a name may leave out the leading `model.`; an unknown name is
 * an error naming it and listing the valid ones. Returns the lists with full names.
 */
export function resolveProjectionLists(cfg: ModelConfig): Pick<ModelConfig, 'keepFp' | 'keepInt8' | 'steByLayer'> {
  if (!cfg.bitlinear) return {};
  const probe = createModel({ ...cfg, keepFp: [], keepInt8: [], steByLayer: {} });
  const projections = projectionNames(probe.params.names());
  // a GPT fuses q/k/v into one BitLinear layer (…qkv_proj); a LLaMA-family model has each projection apart
  const fused = cfg.family === undefined || cfg.family === 'gpt';
  const layers = fused ? [...new Set(projections.map((n) => n.replace(/\.[qkv]_proj$/, '.qkv_proj')))] : projections;
  const full = (n: string, valid: string[]) => (valid.includes(n) || !valid.includes(`model.${n}`) ? n : `model.${n}`);
  const check = (flag: string, names: readonly string[], valid: string[], what: string): string[] => {
    const out = names.map((n) => full(n, valid));
    const unknown = out.filter((n) => !valid.includes(n));
    if (unknown.length > 0) {
      const u = unknown[0]!;
      const near = closest(u.startsWith('model.') ? u : `model.${u}`, valid);
      throw new Error(`${flag}: unknown ${what}${unknown.length > 1 ? 's' : ''} ${unknown.map((n) => JSON.stringify(n)).join(', ')}${near ? ` (did you mean ${JSON.stringify(near)}?)` : ''}; valid names: ${valid.join(', ')}`);
    }
    return [...new Set(out)];
  };
  const keepFp = check('--keep-fp', cfg.keepFp ?? [], projections, 'projection');
  const keepInt8 = check('--keep-int8', cfg.keepInt8 ?? [], projections, 'projection');
  const both = keepFp.filter((n) => keepInt8.includes(n));
  if (both.length > 0) throw new Error(`--keep-fp and --keep-int8 both name ${both.join(', ')}; keep each projection in one precision`);
  const steNames = check('--ste-by-layer', Object.keys(cfg.steByLayer ?? {}), layers, 'layer');
  const steByLayer = Object.fromEntries(Object.values(cfg.steByLayer ?? {}).map((v, i) => [steNames[i]!, v]));
  return { keepFp, keepInt8, steByLayer };
}

/** `RunConfig.steByLayer` entries (`layer=variant`) of a normalised record. */
export function steByLayerEntries(record: Record<string, string>): string[] {
  return Object.entries(record).map(([k, v]) => `${k}=${v}`);
}

/** `n` val batches for an analysis, from an Rng of their own. */
export function analysisBatches(dataset: TextDataset, B: number, T: number, n: number, seed: number): TokenBatch[] {
  const rng = new Rng(seed);
  return Array.from({ length: n }, () => {
    const b = dataset.sampleBatch('val', B, T, rng);
    return { tokens: b.inputs, targets: b.targets, B, T };
  });
}

/**
 * `--auto-mixed-precision K` / `--auto-mixed-precision-threshold X`: measure every projection's
 * sensitivity on the model as it is (the `--from` weights, or the initial ones) and keep the
 * chosen projections (besides those kept explicitly) in `cfg.autoMixedPrecisionAs`.
 */
export async function chooseMixedPrecision(model: LanguageModel, cfg: RunConfig, dataset: TextDataset): Promise<{ projections: string[]; report: SensitivityReport } | null> {
  if (cfg.autoMixedPrecision === null && cfg.autoMixedPrecisionThreshold === null) return null;
  const batches = analysisBatches(dataset, cfg.batch, cfg.context, cfg.sensitivityBatches, cfg.seed + 104723);
  const report = await sensitivityAnalysis(model, batches);
  const explicit = new Set([...cfg.keepFp, ...cfg.keepInt8]);
  const candidates: SensitivityReport = { ...report, rows: report.rows.filter((r) => !explicit.has(r.name)) };
  const pick = cfg.autoMixedPrecision !== null ? { k: cfg.autoMixedPrecision } : { lossDeltaThreshold: cfg.autoMixedPrecisionThreshold! };
  const projections = autoMixedPrecision(model, candidates, pick, cfg.autoMixedPrecisionAs);
  return { projections, report };
}

