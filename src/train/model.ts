/**
 * The model a run trains, described by a JSON-safe `ModelConfig` (stored in every checkpoint's
 * trainer.json), and the shape check that refuses a checkpoint of another model.
 */
import { GPT, type GPTConfig } from '../nn/gpt.js';
import type { RunConfig } from './config.js';

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
}

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
    bitlinearNorm: run.bitlinearNorm,
    bias: run.bias,
    tiedHead: run.tiedHead,
    initStd: run.initStd,
  };
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
    if (a !== requested[k]) out.push(`${k} ${JSON.stringify(a)} in the checkpoint, ${JSON.stringify(requested[k])} requested (${FLAG_OF[k]})`);
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
    bitlinearOptions: { norm: cfg.bitlinearNorm ?? true },
    bias: cfg.bias,
    tiedHead: cfg.tiedHead,
    initStd: cfg.initStd,
  };
  return new GPT(gptConfig);
}

/**
 * The `ModelConfig` of a built model, from its resolved config (what a checkpoint records so that
 * `sampleFromCheckpoint` can rebuild it). Options the model's config lacks get their defaults.
 */
export function modelConfigOf(resolved: object): ModelConfig {
  const c = resolved as Partial<ModelConfig> & { vocabSize: number; contextLength: number; layers: number; heads: number; dim: number };
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
    bitlinearNorm: (c as { bitlinearOptions?: { norm?: boolean } }).bitlinearOptions?.norm ?? true,
    bias: c.bias ?? false,
    tiedHead: c.tiedHead ?? false,
    initStd: c.initStd ?? 0.02,
  };
}
