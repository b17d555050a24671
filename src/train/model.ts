/**
 * The model a run trains, described by a JSON-safe `ModelConfig` (stored in every checkpoint's
 * trainer.json), and the shape check that refuses a checkpoint of another model.
 *
 * The BitLinear QAT options that change parameters or the computation (`ste`, `steByLayer`,
 * `activationScale`, `activationSte`, `keepFp`, `keepInt8`) are part of the model config, so a
 * resumed run and `sample` rebuild exactly the trained model. Checkpoints written before these
 * fields existed have none of them: absent means the default.
 */
import type { BitLinearOptions } from '../nn/bitlinear.js';
import { GPT, type GPTConfig } from '../nn/gpt.js';
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
export const MODEL_SHAPE_KEYS = ['vocabSize', 'contextLength', 'layers', 'heads', 'dim', 'norm', 'mlp', 'pos', 'bitlinear', 'bitlinearNorm', 'bias', 'tiedHead'] as const;

/** The CLI flag that sets each shape field, for messages. */
const FLAG_OF: Record<(typeof MODEL_SHAPE_KEYS)[number], string> = {
  vocabSize: '--tokenizer / the corpus', contextLength: '--context', layers: '--layers', heads: '--heads', dim: '--dim',
  norm: '--norm', mlp: '--mlp', pos: '--pos', bitlinear: '--fp', bitlinearNorm: '--bitlinear-norm', bias: 'bias', tiedHead: 'tiedHead',
};

/** The model config a run config describes, for a tokenizer of `vocabSize` ids. */
export function modelConfigFromRun(run: RunConfig, vocabSize: number): ModelConfig {
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

/** Build the GPT a `ModelConfig` describes (not yet materialized). */
export function createModel(cfg: ModelConfig): GPT {
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
