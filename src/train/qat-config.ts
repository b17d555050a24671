/**
 * The quantisation-aware-training keys of a `RunConfig` (flags of `bitnet-train train`, keys of
 * `--config` files), their help texts and defaults, and the checks of their combinations. The
 * numerics behind each option are in src/qat/README.md; the trainer wiring is `./qat.ts`.
 */
import type { OptionSpec, RunConfig } from './config.js';

/** Weight straight-through estimators (`--ste`). */
export const STE_VARIANTS = ['identity', 'clipped', 'soft', 'lsq'] as const;

/** QAT options of a run; every field has a default (`DEFAULT_QAT_CONFIG`): plain BitNet b1.58 training. */
export interface QatRunConfig {
  /** Weight STE of every BitLinear layer. Model-affecting ('lsq' adds `…weight_step` parameters). */
  ste: (typeof STE_VARIANTS)[number];
  /** Per-layer STE overrides, `layer=variant` (layer: a projection, or `…self_attn.qkv_proj`). */
  steByLayer: string[];
  /** Initial temperature of the soft STE. */
  softTemperature: number;
  /** Soft-STE temperature at the end of the run (annealed geometrically over `iters`); null: constant. */
  softTemperatureEnd: number | null;
  /** Progressive quantisation: steps over which λ ramps 0 → 1 (weights and activations); 0: quantised from step 0. */
  quantWarmup: number;
  /** λ ramp of the weights alone (null: `quantWarmup`). */
  quantWarmupWeights: number | null;
  /** λ ramp of the activations alone (null: `quantWarmup`). */
  quantWarmupActivations: number | null;
  quantSchedule: 'linear' | 'exponential' | 'sigmoid';
  /** Quantise block after block over the ramp. */
  quantLayerwise: boolean;
  quantLayerOrder: 'first-to-last' | 'last-to-first';
  /** Quantisation noise: the fraction of weights quantised at step 0 (ramps to 1); null: off. */
  quantNoise: number | null;
  /** Steps over which the noise fraction ramps to 1 (null: half of `iters`). */
  quantNoiseSteps: number | null;
  /** Activation scales: per token (absmax) or static per-layer clips. Model-affecting ('static' adds `…input_clip`). */
  activationScale: 'token' | 'static';
  /** Activation STE; null: 'clipped' with static scales, else 'identity'. Model-affecting. */
  activationSte: 'identity' | 'clipped' | null;
  /** Recalibrate static clips every K steps (online calibration); 0: only at the start. */
  calibrateEvery: number;
  calibrateMethod: 'absmax' | 'percentile' | 'ema';
  /** Batches of the initial calibration (static scales). */
  calibrateBatches: number;
  calibratePercentile: number;
  calibrateMomentum: number;
  /** Error analysis (SQNR, ternary distribution, flip rate, scale) every N steps; 0: off. */
  errorEvery: number;
  /** Projections kept in full precision (model-affecting). */
  keepFp: string[];
  /** Projections kept at 8 bits (model-affecting). */
  keepInt8: string[];
  /** Keep the K most sensitive projections in FP, measured at the start. */
  autoMixedPrecision: number | null;
  /** Keep every projection whose FP val-loss gain is at least X, measured at the start. */
  autoMixedPrecisionThreshold: number | null;
  /** Precision of the automatically kept projections. */
  autoMixedPrecisionAs: 'fp' | 'int8';
  /** Val batches of the start-of-run sensitivity analysis. */
  sensitivityBatches: number;
  /** Weight of the ternary-grid penalty; 0: off. */
  qatReg: number;
  /** First step of the penalty. */
  qatRegStart: number;
  /** Steps over which the penalty's weight ramps up from qatRegStart (0: at once). */
  qatRegRamp: number;
  /** Clamp latent weights to ±M grid steps after every update; null: off. */
  clampLatent: number | null;
  /** Initialise the weights from this checkpoint (`convert --from`; a fresh optimizer at step 0). */
  from: string | null;
  /** Distil from this checkpoint's model (`distill --teacher`). */
  teacher: string | null;
  /** Weight of the hard-label cross-entropy in the distillation loss. */
  distillAlpha: number;
  /** Softmax temperature of the distillation loss. */
  distillTemperature: number;
}

const spec = (key: keyof QatRunConfig, type: OptionSpec['type'], flag: boolean, help: string, extra: Partial<OptionSpec> = {}): OptionSpec =>
  ({ key: key as keyof RunConfig, type, flag, help, ...extra });

/** The QAT rows of `OPTION_SPECS`. */
export const QAT_OPTION_SPECS: readonly OptionSpec[] = [
  spec('ste', 'enum', true, 'weight straight-through estimator (lsq: learnable step size)', { values: STE_VARIANTS }),
  spec('steByLayer', 'list', true, 'per-layer STE overrides (e.g. model.layers.0.mlp.down_proj=lsq)'),
  spec('softTemperature', 'posNum', true, 'initial temperature of --ste soft'),
  spec('softTemperatureEnd', 'posNum', true, 'anneal the soft-STE temperature to this by the last step', { nullable: true }),
  spec('quantWarmup', 'nonNegInt', true, 'progressive quantisation: λ ramps from 0 (FP) to 1 (ternary) over N steps; 0: off'),
  spec('quantWarmupWeights', 'nonNegInt', true, 'λ ramp of the weights alone (default --quant-warmup)', { nullable: true }),
  spec('quantWarmupActivations', 'nonNegInt', true, 'λ ramp of the activations alone (default --quant-warmup)', { nullable: true }),
  spec('quantSchedule', 'enum', true, 'shape of the λ ramp', { values: ['linear', 'exponential', 'sigmoid'] }),
  spec('quantLayerwise', 'bool', true, 'quantise block after block over the ramp'),
  spec('quantLayerOrder', 'enum', false, 'order of --quant-layerwise', { values: ['first-to-last', 'last-to-first'] }),
  spec('quantNoise', 'fraction', true, 'quantisation noise: quantise a random fraction X of the weights (annealed to 1)', { nullable: true }),
  spec('quantNoiseSteps', 'nonNegInt', true, 'steps over which the noise fraction reaches 1 (default iters/2)', { nullable: true }),
  spec('activationScale', 'enum', true, 'activation scales: per token, or static calibrated clips', { values: ['token', 'static'] }),
  spec('activationSte', 'enum', true, 'activation STE (default clipped with static scales)', { values: ['identity', 'clipped'], nullable: true }),
  spec('calibrateEvery', 'nonNegInt', true, 'online calibration: refresh the static clips every N steps; 0: only at the start'),
  spec('calibrateMethod', 'enum', true, 'how clips are measured', { values: ['absmax', 'percentile', 'ema'] }),
  spec('calibrateBatches', 'posInt', true, 'batches of the initial calibration'),
  spec('calibratePercentile', 'posNum', false, 'percentile of |x| for calibrateMethod percentile, in (0, 100]'),
  spec('calibrateMomentum', 'unitOpen', false, 'EMA momentum of calibrateMethod ema'),
  spec('errorEvery', 'nonNegInt', true, 'error analysis (SQNR, ternary fractions, flip rate, scale) every N steps; 0: off'),
  spec('keepFp', 'list', true, 'projections kept in full precision, name,... (model.layers.0.self_attn.q_proj)'),
  spec('keepInt8', 'list', true, 'projections kept at 8 bits, name,...'),
  spec('autoMixedPrecision', 'nonNegInt', true, 'keep the N most sensitive projections in FP (measured at the start)', { nullable: true }),
  spec('autoMixedPrecisionThreshold', 'nonNegNum', true, 'keep projections whose FP val-loss gain is >= X (measured at the start)', { nullable: true }),
  spec('autoMixedPrecisionAs', 'enum', false, 'precision of the automatically kept projections', { values: ['fp', 'int8'] }),
  spec('sensitivityBatches', 'posInt', false, 'val batches of the start-of-run sensitivity analysis'),
  spec('qatReg', 'nonNegNum', true, 'weight of the ternary-grid penalty on latent weights; 0: off'),
  spec('qatRegStart', 'nonNegInt', true, 'first step of the penalty'),
  spec('qatRegRamp', 'nonNegInt', true, 'steps over which the penalty weight ramps up; 0: at once'),
  spec('clampLatent', 'posNum', true, 'clamp latent weights to ±X grid steps after each update (X >= 1)', { nullable: true }),
  spec('from', 'string', true, 'initialise the weights from a checkpoint (fresh optimizer, step 0)', { nullable: true }),
  spec('teacher', 'string', true, 'distil from this checkpoint\'s model (same tokenizer)', { nullable: true }),
  spec('distillAlpha', 'fraction', true, 'distillation: weight of the hard-label loss (1: no teacher term)'),
  spec('distillTemperature', 'posNum', true, 'distillation: softmax temperature'),
];

export const DEFAULT_QAT_CONFIG: Readonly<QatRunConfig> = Object.freeze({
  ste: 'identity',
  steByLayer: [],
  softTemperature: 1,
  softTemperatureEnd: null,
  quantWarmup: 0,
  quantWarmupWeights: null,
  quantWarmupActivations: null,
  quantSchedule: 'linear',
  quantLayerwise: false,
  quantLayerOrder: 'first-to-last',
  quantNoise: null,
  quantNoiseSteps: null,
  activationScale: 'token',
  activationSte: null,
  calibrateEvery: 0,
  calibrateMethod: 'ema',
  calibrateBatches: 4,
  calibratePercentile: 99.99,
  calibrateMomentum: 0.9,
  errorEvery: 100,
  keepFp: [],
  keepInt8: [],
  autoMixedPrecision: null,
  autoMixedPrecisionThreshold: null,
  autoMixedPrecisionAs: 'fp',
  sensitivityBatches: 4,
  qatReg: 0,
  qatRegStart: 0,
  qatRegRamp: 0,
  clampLatent: null,
  from: null,
  teacher: null,
  distillAlpha: 0.5,
  distillTemperature: 2,
} satisfies QatRunConfig);

/** QAT options that need BitLinear layers, with the value that means "off". */
const NEEDS_BITLINEAR: [keyof QatRunConfig, string][] = [
  ['ste', '--ste'], ['steByLayer', '--ste-by-layer'], ['softTemperatureEnd', '--soft-temperature-end'], ['quantWarmup', '--quant-warmup'],
  ['quantWarmupWeights', '--quant-warmup-weights'], ['quantWarmupActivations', '--quant-warmup-activations'], ['quantLayerwise', '--quant-layerwise'],
  ['quantNoise', '--quant-noise'], ['activationScale', '--activation-scale'], ['activationSte', '--activation-ste'], ['calibrateEvery', '--calibrate-every'],
  ['keepFp', '--keep-fp'], ['keepInt8', '--keep-int8'], ['autoMixedPrecision', '--auto-mixed-precision'],
  ['autoMixedPrecisionThreshold', '--auto-mixed-precision-threshold'], ['qatReg', '--qat-reg'], ['clampLatent', '--clamp-latent'],
];

const STE_ENTRY = /^([^=\s]+)=(identity|clipped|soft|lsq)$/;

/** `['a=lsq', 'b=soft']` → `{ a: 'lsq', b: 'soft' }`; throws naming a malformed entry. */
export function parseSteByLayer(entries: readonly string[]): Record<string, (typeof STE_VARIANTS)[number]> {
  const out: Record<string, (typeof STE_VARIANTS)[number]> = {};
  for (const e of entries) {
    const m = STE_ENTRY.exec(e);
    if (!m) throw new Error(`--ste-by-layer: '${e}' is not layer=variant with variant one of ${STE_VARIANTS.join(', ')} (e.g. model.layers.0.mlp.down_proj=lsq)`);
    out[m[1]!] = m[2] as (typeof STE_VARIANTS)[number];
  }
  return out;
}

/** Check the QAT options' combinations (`resolveRunConfig` calls it); throws naming the flags and the fix. */
export function checkQatConfig(cfg: RunConfig): void {
  if (cfg.fp) {
    for (const [key, flag] of NEEDS_BITLINEAR) {
      if (JSON.stringify(cfg[key]) !== JSON.stringify(DEFAULT_QAT_CONFIG[key])) throw new Error(`config: ${flag} needs BitLinear layers, but --fp trains a full-precision model; drop one of them`);
    }
  }
  parseSteByLayer(cfg.steByLayer);
  if (cfg.autoMixedPrecision !== null && cfg.autoMixedPrecisionThreshold !== null) {
    throw new Error('config: --auto-mixed-precision K and --auto-mixed-precision-threshold X both pick the projections to keep; give one of them');
  }
  if (cfg.quantLayerwise && (cfg.quantWarmupWeights ?? cfg.quantWarmup) === 0 && (cfg.quantWarmupActivations ?? cfg.quantWarmup) === 0) {
    throw new Error('config: --quant-layerwise spreads the λ ramp over the blocks; add --quant-warmup N (N > 0)');
  }
  if (cfg.quantNoiseSteps !== null && cfg.quantNoise === null) throw new Error('config: --quant-noise-steps sets the ramp of quantisation noise; add --quant-noise P');
  if (cfg.calibrateEvery > 0 && cfg.activationScale !== 'static') throw new Error(`config: --calibrate-every ${cfg.calibrateEvery} refreshes static activation clips; add --activation-scale static`);
  if (cfg.calibratePercentile > 100) throw new Error(`config: calibratePercentile must be in (0, 100], got ${cfg.calibratePercentile}`);
  if (cfg.clampLatent !== null && cfg.clampLatent < 1) throw new Error(`config: --clamp-latent must be >= 1 (grid steps; 1 is the ternary range itself), got ${cfg.clampLatent}`);
  if (cfg.softTemperatureEnd !== null && cfg.ste !== 'soft' && !cfg.steByLayer.some((e) => e.endsWith('=soft'))) {
    throw new Error('config: --soft-temperature-end anneals the soft STE; add --ste soft (or a layer=soft entry in --ste-by-layer)');
  }
}

/** Warnings about QAT options that are valid but probably not what was meant. */
export function qatConfigWarnings(cfg: RunConfig, startStep: number): string[] {
  const out: string[] = [];
  if (cfg.fp) return out;
  const ramps: [string, number | null][] = [['--quant-warmup-weights', cfg.quantWarmupWeights], ['--quant-warmup-activations', cfg.quantWarmupActivations]];
  for (const [flag, own] of ramps) {
    const n = own ?? cfg.quantWarmup;
    if (n > cfg.iters) out.push(`${own === null ? '--quant-warmup' : flag} ${n} is longer than --iters ${cfg.iters}: the model is never fully quantised in this run (its evaluations run at λ < 1)`);
  }
  if (cfg.quantNoise !== null && (cfg.quantNoiseSteps ?? 0) > cfg.iters) out.push(`--quant-noise-steps ${cfg.quantNoiseSteps} is longer than --iters ${cfg.iters}: some weights are never quantised in this run`);
  if ((cfg.autoMixedPrecision !== null || cfg.autoMixedPrecisionThreshold !== null) && startStep > 0) {
    out.push('--auto-mixed-precision: resuming, the projections chosen at the start of the run are kept (the analysis is not repeated)');
  }
  return [...new Set(out)];
}
