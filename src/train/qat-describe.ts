/**
 * What a run's QAT options do, in words (the run header of `bitnet-train train`), and the short
 * progress line of an error-analysis report.
 */
import type { RunConfig } from './config.js';
import type { QuantErrorEvent } from './log.js';
import type { QatTraining } from './qat.js';

/** One line per active QAT feature of `cfg` (empty for plain BitNet training or an FP run). */
export function describeQat(cfg: RunConfig, qat: QatTraining): string[] {
  const out: string[] = [];
  if (cfg.from) out.push(`initial weights: ${cfg.from}`);
  if (cfg.teacher) out.push(`distillation: teacher ${cfg.teacher}, alpha ${cfg.distillAlpha}, temperature ${cfg.distillTemperature}`);
  if (cfg.fp) return out;
  const w = cfg.quantWarmupWeights ?? cfg.quantWarmup;
  const a = cfg.quantWarmupActivations ?? cfg.quantWarmup;
  if (w > 0 || a > 0) {
    const lw = cfg.quantLayerwise ? `, layer by layer (${cfg.quantLayerOrder})` : '';
    out.push(`progressive quantisation (${cfg.quantSchedule}${lw}): weights over ${w} steps, activations over ${a} steps`);
  }
  if (cfg.quantNoise !== null) out.push(`quantisation noise: ${cfg.quantNoise} of the weights quantised at step 0, 1 after ${cfg.quantNoiseSteps ?? Math.floor(cfg.iters / 2)} steps`);
  const ste = cfg.steByLayer.length > 0 ? `${cfg.ste} (per layer: ${cfg.steByLayer.join(', ')})` : cfg.ste;
  const soft = cfg.softTemperatureEnd !== null ? `, soft temperature ${cfg.softTemperature} → ${cfg.softTemperatureEnd}` : cfg.ste === 'soft' ? `, soft temperature ${cfg.softTemperature}` : '';
  if (cfg.ste !== 'identity' || cfg.steByLayer.length > 0) out.push(`weight STE: ${ste}${soft}`);
  if (cfg.activationScale === 'static') {
    const refresh = cfg.calibrateEvery > 0 ? `, refreshed every ${cfg.calibrateEvery} steps` : '';
    out.push(`activation scales: static (${cfg.calibrateMethod}${refresh}), activation STE ${cfg.activationSte ?? 'clipped'}`);
  }
  if (cfg.keepFp.length > 0) out.push(`kept in full precision: ${cfg.keepFp.join(', ')}`);
  if (cfg.keepInt8.length > 0) out.push(`kept at 8 bits: ${cfg.keepInt8.join(', ')}`);
  if (qat.regularizer) out.push(`ternary-grid penalty: weight ${cfg.qatReg}${cfg.qatRegStart > 0 || cfg.qatRegRamp > 0 ? ` from step ${cfg.qatRegStart}, ramped over ${cfg.qatRegRamp} steps` : ''}`);
  if (cfg.clampLatent !== null) out.push(`latent weights clamped to ±${cfg.clampLatent} grid steps`);
  if (qat.analyzer) out.push(`error analysis every ${cfg.errorEvery} steps (log: quant_error)`);
  return out;
}

const fmt = (x: number, d = 1): string => (Number.isFinite(x) ? x.toFixed(d) : '?');

/**
 * `quant step 100: weight SQNR 9.1 dB (worst 8.4 model.layers.3.mlp.down_proj) | activation SQNR 37.9 dB |
 * −1/0/+1 0.31/0.38/0.31 | flips 0.42%` — means over the ternary projections.
 */
export function formatQuantSummary(e: QuantErrorEvent): string {
  const layers = e.layers.filter((l) => l.precision === 'ternary');
  if (layers.length === 0) return `quant step ${e.step}: no ternary projections`;
  const mean = (xs: number[]): number => (xs.length > 0 ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);
  const ws = layers.filter((l) => l.weight_sqnr_db !== null);
  const worst = ws.reduce<(typeof ws)[number] | undefined>((m, l) => (m === undefined || l.weight_sqnr_db! < m.weight_sqnr_db! ? l : m), undefined);
  const act = layers.map((l) => l.activation_sqnr_db).filter((x): x is number => x !== null);
  const flips = layers.map((l) => l.flip_rate).filter((x): x is number => x !== null);
  const parts = [
    `weight SQNR ${fmt(mean(ws.map((l) => l.weight_sqnr_db!)))} dB${worst ? ` (worst ${fmt(worst.weight_sqnr_db!)} ${worst.name})` : ''}`,
    `activation SQNR ${act.length > 0 ? `${fmt(mean(act))} dB` : 'n/a'}`,
    `-1/0/+1 ${fmt(mean(layers.map((l) => l.ternary.neg)), 2)}/${fmt(mean(layers.map((l) => l.ternary.zero)), 2)}/${fmt(mean(layers.map((l) => l.ternary.pos)), 2)}`,
    `flips ${flips.length > 0 ? `${fmt(100 * mean(flips), 2)}%` : 'n/a'}`,
  ];
  return `quant step ${e.step}: ${parts.join(' | ')}`;
}
