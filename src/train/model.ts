/**
 * The model a run trains, described by a JSON-safe `ModelConfig` (stored in every checkpoint's
 * trainer.json), and the shape check that refuses a checkpoint of another model.
 *
 * The BitLinear QAT options that change parameters or the computation (`ste`, `steByLayer`,
 * `activationScale`, `activationSte`, `keepFp`, `keepInt8`) are part of the model config, so a
 * resumed run and `sample` rebuild exactly the trained model. Checkpoints written before these
 * fields existed have none of them: absent means the default.
 */
import type { RopeScaling } from '../backend/backend.js';
import type { BitLinearOptions } from '../nn/bitlinear.js';
import { GPT, type GPTConfig } from '../nn/gpt.js';
import { type LlamaConfig, LlamaModel, type ResolvedLlamaConfig } from '../nn/llama.js';
import type { RunConfig } from './config.js';
import { type STE_VARIANTS, parseSteByLayer } from './qat-config.js';

/** The model's shape and options, as saved in `trainer.json` (`config.model`). */
export interface ModelConfig {
  vocabSize: number;
  contextLength: number;
  layers: number;
  heads: number;
  dim: number;
  norm: 'layer' | 'rms';
  mlp: 'gelu' | 'swiglu' | 'relu2';
  pos: 'learned' | 'rope';
  /** BitLinear (ternary weights, int8 activations) in attention and MLP; false is the FP32 baseline. */
  bitlinear: boolean;
  /** BitLinear's built-in RMSNorm before the activation quantiser (the BitNet FAQ's layer); default true. */
  bitlinearNorm?: boolean;
  bias: boolean;
  tiedHead: boolean;
  initStd: number;
  // ---- the LLaMA families (absent: a GPT) ----
  /** `'gpt'` (absent), `'llama'` or `'bitnet'`: see `RunConfig.family`. */
  family?: 'gpt' | 'llama' | 'bitnet';
  /** llama/bitnet: key/value heads. */
  kvHeads?: number;
  /** llama/bitnet: head size. */
  headDim?: number;
  /** llama/bitnet: MLP width. */
  hidden?: number;
  /** llama/bitnet: RoPE base θ. */
  ropeTheta?: number;
  /** llama/bitnet: RMSNorm epsilon. */
  normEps?: number;
  /** llama/bitnet: RoPE scaling (absent: none); the factors as `RunConfig`'s `rope*` keys. */
  ropeScaling?: 'linear' | 'llama3';
  ropeScalingFactor?: number;
  ropeLowFreqFactor?: number;
  ropeHighFreqFactor?: number;
  ropeOriginalMaxPositions?: number;
  // ---- BitLinear QAT options (BitLinear models only; absent: the default) ----
  /** Weight STE (`'lsq'` adds `…weight_step` parameters). */
  ste?: (typeof STE_VARIANTS)[number];
  /** Per-layer STE overrides by layer name. */
  steByLayer?: Record<string, (typeof STE_VARIANTS)[number]>;
  /** `'static'` adds one `…input_clip` parameter per layer. */
  activationScale?: 'token' | 'static';
  activationSte?: 'identity' | 'clipped';
  /** Projections kept in full precision. */
  keepFp?: string[];
  /** Projections kept at 8 bits. */
  keepInt8?: string[];
}

/** The QAT fields of `ModelConfig`: a checkpoint must match them too (they change parameters or the computation). */
export const MODEL_QAT_KEYS = ['ste', 'steByLayer', 'activationScale', 'activationSte', 'keepFp', 'keepInt8'] as const;

const QAT_FLAG_OF: Record<(typeof MODEL_QAT_KEYS)[number], string> = {
  ste: '--ste', steByLayer: '--ste-by-layer', activationScale: '--activation-scale', activationSte: '--activation-ste', keepFp: '--keep-fp', keepInt8: '--keep-int8',
};

/** The fields that decide the parameter shapes and the computation: a checkpoint must match all of them. */
export const MODEL_SHAPE_KEYS = ['vocabSize', 'contextLength', 'layers', 'heads', 'dim', 'norm', 'mlp', 'pos', 'bitlinear', 'bitlinearNorm', 'bias', 'tiedHead', 'family', 'kvHeads', 'headDim', 'hidden', 'ropeTheta', 'normEps', 'ropeScaling', 'ropeScalingFactor', 'ropeLowFreqFactor', 'ropeHighFreqFactor', 'ropeOriginalMaxPositions'] as const;

/** The CLI flag that sets each shape field, for messages. */
const FLAG_OF: Record<(typeof MODEL_SHAPE_KEYS)[number], string> = {
  vocabSize: '--tokenizer / the corpus', contextLength: '--context', layers: '--layers', heads: '--heads', dim: '--dim',
  norm: '--norm', mlp: '--mlp', pos: '--pos', bitlinear: '--fp', bitlinearNorm: '--bitlinear-norm', bias: 'bias', tiedHead: 'tiedHead',
  family: '--family', kvHeads: '--kv-heads', headDim: 'headDim', hidden: '--hidden', ropeTheta: 'ropeTheta', normEps: 'normEps',
  ropeScaling: 'ropeScaling', ropeScalingFactor: 'ropeScalingFactor', ropeLowFreqFactor: 'ropeLowFreqFactor', ropeHighFreqFactor: 'ropeHighFreqFactor', ropeOriginalMaxPositions: 'ropeOriginalMaxPositions',
};

/** The model config a run config describes, for a tokenizer of `vocabSize` ids. */
export function modelConfigFromRun(run: RunConfig, vocabSize: number): ModelConfig {
  const family = run.family ?? 'gpt';
  if (family !== 'gpt') return llamaModelConfigFromRun(run, vocabSize, family);
  return {
    vocabSize,
    contextLength: run.context,
    layers: run.layers,
    heads: run.heads,
    dim: run.dim,
    norm: run.norm,
    mlp: run.mlp,
    pos: run.pos,
    bitlinear: !run.fp,
    bitlinearNorm: !run.fp && run.bitlinearNorm, // an FP model has no BitLinear norm to record
    bias: run.bias,
    tiedHead: run.tiedHead,
    initStd: run.initStd,
    ...(run.fp ? {} : {
      ste: run.ste,
      steByLayer: parseSteByLayer(run.steByLayer),
      activationScale: run.activationScale,
      activationSte: run.activationSte ?? (run.activationScale === 'static' ? 'clipped' : 'identity'),
      keepFp: [...run.keepFp],
      keepInt8: [...run.keepInt8],
    }),
  };
}

/**
 * A llama/bitnet `ModelConfig` from a run config: RMSNorm and RoPE always, `mlp` swiglu (SiLU) or
 * relu2 as the gated activation, `bias` for both attention and MLP, no BitLinear norm of its own
 * (BitNet's sub-norms are separate layers). Throws naming the flag for what the family lacks.
 */
function llamaModelConfigFromRun(run: RunConfig, vocabSize: number, family: 'llama' | 'bitnet'): ModelConfig {
  if (run.mlp === 'gelu') throw new Error(`--family ${family}: the MLP is gated; give --mlp swiglu (SiLU, LLaMA) or --mlp relu2 (BitNet b1.58 2B4T)`);
  if (run.norm !== 'rms') throw new Error(`--family ${family}: norms are RMSNorm; give --norm rms`);
  if (run.pos !== 'rope') throw new Error(`--family ${family}: positions are RoPE; give --pos rope`);
  if (run.maxPositions !== null && run.maxPositions < run.context) throw new Error(`maxPositions ${run.maxPositions} is shorter than --context ${run.context}`);
  if (run.vocabRows !== null && run.vocabRows < vocabSize) throw new Error(`the tokenizer has ${vocabSize} ids but the model has ${run.vocabRows} embedding rows (vocabRows); use the model's own tokenizer`);
  const hidden = run.hidden ?? (run.mlp === 'swiglu' ? Math.ceil((8 * run.dim) / 3 / 16) * 16 : 4 * run.dim);
  const base: ModelConfig = {
    family,
    vocabSize: run.vocabRows ?? vocabSize,
    contextLength: run.maxPositions ?? run.context,
    layers: run.layers,
    heads: run.heads,
    dim: run.dim,
    norm: 'rms',
    mlp: run.mlp,
    pos: 'rope',
    bitlinear: !run.fp,
    bitlinearNorm: false,
    bias: run.bias,
    tiedHead: run.tiedHead,
    initStd: run.initStd,
    kvHeads: run.kvHeads ?? run.heads,
    headDim: run.headDim ?? run.dim / run.heads,
    hidden,
    ropeTheta: run.ropeTheta ?? (family === 'bitnet' ? 500000 : 10000),
    normEps: run.normEps ?? 1e-5,
    ...ropeScalingFromRun(run),
  };
  if (run.fp) return base;
  return {
    ...base,
    ste: run.ste,
    steByLayer: parseSteByLayer(run.steByLayer),
    activationScale: run.activationScale,
    activationSte: run.activationSte ?? (run.activationScale === 'static' ? 'clipped' : 'identity'),
    keepFp: [...run.keepFp],
    keepInt8: [...run.keepInt8],
  };
}

/** The RoPE-scaling fields of a run's model (none: no fields); throws naming a missing factor. */
function ropeScalingFromRun(run: RunConfig): Partial<ModelConfig> {
  if (run.ropeScaling === 'none') return {};
  const need = (key: 'ropeScalingFactor' | 'ropeLowFreqFactor' | 'ropeHighFreqFactor' | 'ropeOriginalMaxPositions'): number => {
    const v = run[key];
    if (v === null) throw new Error(`ropeScaling ${run.ropeScaling} needs ${key}`);
    return v;
  };
  if (run.ropeScaling === 'linear') return { ropeScaling: 'linear', ropeScalingFactor: need('ropeScalingFactor') };
  return { ropeScaling: 'llama3', ropeScalingFactor: need('ropeScalingFactor'), ropeLowFreqFactor: need('ropeLowFreqFactor'), ropeHighFreqFactor: need('ropeHighFreqFactor'), ropeOriginalMaxPositions: need('ropeOriginalMaxPositions') };
}

/** The `RopeScaling` a `ModelConfig` records, or null. */
function ropeScalingOf(cfg: ModelConfig): RopeScaling | null {
  if (cfg.ropeScaling === 'linear') return { kind: 'linear', factor: cfg.ropeScalingFactor! };
  if (cfg.ropeScaling === 'llama3') {
    return { kind: 'llama3', factor: cfg.ropeScalingFactor!, lowFreqFactor: cfg.ropeLowFreqFactor!, highFreqFactor: cfg.ropeHighFreqFactor!, originalMaxPositions: cfg.ropeOriginalMaxPositions! };
  }
  return null;
}

/** The `LlamaConfig` a llama/bitnet `ModelConfig` describes. */
export function llamaConfigOf(cfg: ModelConfig): LlamaConfig {
  if (cfg.family !== 'llama' && cfg.family !== 'bitnet') throw new Error(`llamaConfigOf: model family ${String(cfg.family ?? 'gpt')} is not a LLaMA family`);
  return {
    family: cfg.family,
    vocabSize: cfg.vocabSize,
    contextLength: cfg.contextLength,
    layers: cfg.layers,
    heads: cfg.heads,
    dim: cfg.dim,
    hidden: cfg.hidden!,
    kvHeads: cfg.kvHeads,
    headDim: cfg.headDim,
    ropeTheta: cfg.ropeTheta,
    ropeScaling: ropeScalingOf(cfg),
    normEps: cfg.normEps,
    tiedHead: cfg.tiedHead,
    attentionBias: cfg.bias,
    mlpBias: cfg.bias,
    act: cfg.mlp === 'relu2' ? 'relu2' : 'silu',
    initStd: cfg.initStd,
    bitlinear: cfg.bitlinear,
    bitlinearOptions: { ...bitLinearOptionsOf(cfg), norm: false },
  };
}

/** A JSON form where key order and list order do not matter (lists of names are sets). */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return JSON.stringify([...v].map(String).sort());
  if (v !== null && typeof v === 'object') return JSON.stringify(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : 1)));
  return JSON.stringify(v);
}

/**
 * Differences between a checkpoint's model and the requested one, as `name: saved → requested`
 * lines (empty when they match).
 */
export function modelShapeDifferences(saved: Partial<ModelConfig>, requested: ModelConfig): string[] {
  const out: string[] = [];
  for (const k of MODEL_SHAPE_KEYS) {
    const a = saved[k];
    if (a === undefined) continue;
    if (k === 'bitlinearNorm' && !saved.bitlinear && !requested.bitlinear) continue; // no BitLinear layers: no norm in them
    if (a !== requested[k]) out.push(`${k} ${JSON.stringify(a)} in the checkpoint, ${JSON.stringify(requested[k])} requested (${FLAG_OF[k]})`);
  }
  if (saved.bitlinear && requested.bitlinear) {
    for (const k of MODEL_QAT_KEYS) {
      const a = saved[k];
      if (a === undefined || requested[k] === undefined) continue;
      if (canonical(a) !== canonical(requested[k])) out.push(`${k} ${JSON.stringify(a)} in the checkpoint, ${JSON.stringify(requested[k])} requested (${QAT_FLAG_OF[k]})`);
    }
  }
  return out;
}

/** Every model family a run trains: the GPT, or a LLaMA-family model (llama, bitnet). */
export type LanguageModel = GPT | LlamaModel;

/** Build the model a `ModelConfig` describes (not yet materialized): a GPT, or a `LlamaModel` for family llama/bitnet. */
export function createModel(cfg: ModelConfig): LanguageModel {
  if (cfg.family === 'llama' || cfg.family === 'bitnet') return new LlamaModel(llamaConfigOf(cfg));
  return createGPT(cfg);
}

/** Build the GPT a (gpt-family) `ModelConfig` describes. */
export function createGPT(cfg: ModelConfig): GPT {
  const gptConfig: GPTConfig = {
    vocabSize: cfg.vocabSize,
    contextLength: cfg.contextLength,
    layers: cfg.layers,
    heads: cfg.heads,
    dim: cfg.dim,
    norm: cfg.norm,
    mlp: cfg.mlp,
    pos: cfg.pos,
    bitlinear: cfg.bitlinear,
    bitlinearOptions: bitLinearOptionsOf(cfg),
    bias: cfg.bias,
    tiedHead: cfg.tiedHead,
    initStd: cfg.initStd,
  };
  return new GPT(gptConfig);
}

/** The BitLinear options a `ModelConfig` records (defaults for absent fields). */
export function bitLinearOptionsOf(cfg: ModelConfig): BitLinearOptions {
  return {
    norm: cfg.bitlinearNorm ?? true,
    ...(cfg.ste !== undefined ? { ste: cfg.ste } : {}),
    ...(cfg.steByLayer !== undefined ? { steByLayer: cfg.steByLayer } : {}),
    ...(cfg.activationScale !== undefined ? { activationScale: cfg.activationScale } : {}),
    ...(cfg.activationSte !== undefined ? { activationSte: cfg.activationSte } : {}),
    ...(cfg.keepFp !== undefined ? { keepFp: cfg.keepFp } : {}),
    ...(cfg.keepInt8 !== undefined ? { keepInt8: cfg.keepInt8 } : {}),
  };
}

/**
 * The `ModelConfig` of a built model, from its resolved config (what a checkpoint records so that
 * `sampleFromCheckpoint` can rebuild it). Options the model's config lacks get their defaults.
 */
export function modelConfigOf(resolved: object): ModelConfig {
  const fam = (resolved as { family?: string }).family;
  if (fam === 'llama' || fam === 'bitnet') return modelConfigOfLlama(resolved as ResolvedLlamaConfig);
  const c = resolved as Partial<ModelConfig> & { vocabSize: number; contextLength: number; layers: number; heads: number; dim: number };
  const o = (resolved as { bitlinearOptions?: BitLinearOptions }).bitlinearOptions;
  const qat = c.bitlinear && o ? {
    ste: o.ste ?? 'identity',
    steByLayer: { ...(o.steByLayer ?? {}) },
    activationScale: o.activationScale ?? 'token',
    activationSte: o.activationSte ?? 'identity',
    keepFp: [...(o.keepFp ?? [])],
    keepInt8: [...(o.keepInt8 ?? [])],
  } : {};
  return {
    vocabSize: c.vocabSize,
    contextLength: c.contextLength,
    layers: c.layers,
    heads: c.heads,
    dim: c.dim,
    norm: c.norm ?? 'layer',
    mlp: c.mlp ?? 'gelu',
    pos: c.pos ?? 'learned',
    bitlinear: c.bitlinear ?? false,
    bitlinearNorm: (c.bitlinear ?? false) && ((c as { bitlinearOptions?: { norm?: boolean } }).bitlinearOptions?.norm ?? true),
    bias: c.bias ?? false,
    tiedHead: c.tiedHead ?? false,
    initStd: c.initStd ?? 0.02,
    ...qat,
  };
}

/** The `ModelConfig` of a resolved llama/bitnet config (attention and MLP biases must agree: one `bias` flag). */
function modelConfigOfLlama(c: ResolvedLlamaConfig): ModelConfig {
  if (c.attentionBias !== c.mlpBias) throw new Error(`a model with attention_bias ${c.attentionBias} and mlp_bias ${c.mlpBias} cannot be trained from the CLI (one bias flag for both); use the API (LlamaModel)`);
  const o = c.bitlinearOptions;
  return {
    family: c.family,
    vocabSize: c.vocabSize,
    contextLength: c.contextLength,
    layers: c.layers,
    heads: c.heads,
    dim: c.dim,
    norm: 'rms',
    mlp: c.act === 'relu2' ? 'relu2' : 'swiglu',
    pos: 'rope',
    bitlinear: c.bitlinear,
    bitlinearNorm: false,
    bias: c.attentionBias,
    tiedHead: c.tiedHead,
    initStd: c.initStd,
    kvHeads: c.kvHeads,
    headDim: c.headDim,
    hidden: c.hidden,
    ropeTheta: c.ropeTheta,
    normEps: c.normEps,
    ...(c.ropeScaling === null ? {} : c.ropeScaling.kind === 'linear'
      ? { ropeScaling: 'linear' as const, ropeScalingFactor: c.ropeScaling.factor }
      : { ropeScaling: 'llama3' as const, ropeScalingFactor: c.ropeScaling.factor, ropeLowFreqFactor: c.ropeScaling.lowFreqFactor, ropeHighFreqFactor: c.ropeScaling.highFreqFactor, ropeOriginalMaxPositions: c.ropeScaling.originalMaxPositions }),
    ...(c.bitlinear ? {
      ste: o.ste ?? 'identity', steByLayer: { ...(o.steByLayer ?? {}) }, activationScale: o.activationScale ?? 'token', activationSte: o.activationSte ?? 'identity',
      keepFp: [...(o.keepFp ?? [])], keepInt8: [...(o.keepInt8 ?? [])],
    } : {}),
  };
}
