/**
 * Layer sensitivity and mixed-precision mitigation. For a model and evaluation batches, per
 * projection: the val-loss change when only that projection is full precision (against the
 * all-ternary model), and when only that projection is ternary (against the all-FP model). The
 * most sensitive projections can then be kept in FP or 8-bit (`setProjectionPrecision`,
 * `autoMixedPrecision`; in a config: `bitlinearOptions.keepFp` / `keepInt8`).
 */
import { noGrad } from '../autograd/tape.js';
import type { TokenBatch } from '../optim/train-step.js';
import type { ProjectionPrecision } from './projection.js';
import type { ForwardModel } from './calibrate.js';
import { type QatModel, bitLinearLayers } from './controller.js';

/**
 * Mean loss of `model` over `batches` (no gradient; resets the arena after each batch). The model
 * runs as it stands: under a `QatController` mid-ramp that is the partly quantised model (λ < 1);
 * call `qat.beginStep(rampEnd)` first to evaluate it fully ternary.
 */
export async function evaluateLoss(model: ForwardModel, batches: readonly TokenBatch[]): Promise<number> {
  if (batches.length === 0) throw new Error('evaluateLoss: no batches given; pass at least one batch');
  const heap = model.params.heap;
  let total = 0;
  for (const b of batches) {
    const shape = [b.B, b.T];
    const loss = noGrad(() => model.forward(heap.indices(b.tokens, shape), heap.indices(b.targets, shape)).loss);
    if (!loss) throw new Error('evaluateLoss: model.forward returned no loss');
    total += await loss.item();
    heap.resetArena();
  }
  return total / batches.length;
}

/** One projection's row of a sensitivity analysis. */
export interface SensitivityRow {
  name: string;
  /** Loss with only this projection in FP, minus the all-ternary loss (negative: FP helps). */
  fp_delta: number;
  /** Loss with only this projection ternary, minus the all-FP loss (positive: ternary hurts). */
  ternary_delta: number;
}

/** The result: baselines and one row per projection, most sensitive first (largest −fp_delta). */
export interface SensitivityReport {
  event: 'sensitivity';
  batches: number;
  baseline: { ternary: number; fp: number };
  rows: SensitivityRow[];
}

/**
 * Measure every projection's sensitivity (see the file header). Runs `2 + 2·P` evaluations of
 * `batches` (P projections) with every λ at 1 and no noise, then restores the model's state.
 *
 * @example
 * const report = await sensitivityAnalysis(model, valBatches);
 * console.log(formatSensitivityTable(report));
 */
export async function sensitivityAnalysis(model: ForwardModel, batches: readonly TokenBatch[]): Promise<SensitivityReport> {
  const entries = bitLinearLayers(model);
  if (entries.length === 0) throw new Error('sensitivityAnalysis: the model has no BitLinear layers; build it with bitlinear: true');
  const saved = entries.map(({ layer }) => ({
    precisions: layer.names.map((n) => layer.precisionOf(n)),
    weightLambda: layer.weightLambda, activationLambda: layer.activationLambda, noise: layer.noise,
  }));
  const names = entries.flatMap((e) => e.layer.names);
  const setAll = (p: ProjectionPrecision): void => {
    for (const { layer } of entries) for (const n of layer.names) layer.setPrecision(n, p);
  };
  const layerOf = (name: string) => entries.find((e) => e.layer.names.includes(name))!.layer;
  try {
    for (const { layer } of entries) { layer.weightLambda = 1; layer.activationLambda = 1; layer.noise = null; }
    setAll('ternary');
    const ternary = await evaluateLoss(model, batches);
    setAll('fp');
    const fp = await evaluateLoss(model, batches);
    const rows: SensitivityRow[] = [];
    for (const name of names) {
      setAll('ternary');
      layerOf(name).setPrecision(name, 'fp');
      const onlyFp = await evaluateLoss(model, batches);
      setAll('fp');
      layerOf(name).setPrecision(name, 'ternary');
      const onlyTernary = await evaluateLoss(model, batches);
      rows.push({ name, fp_delta: onlyFp - ternary, ternary_delta: onlyTernary - fp });
    }
    rows.sort((a, b) => a.fp_delta - b.fp_delta || b.ternary_delta - a.ternary_delta);
    return { event: 'sensitivity', batches: batches.length, baseline: { ternary, fp }, rows };
  } finally {
    entries.forEach(({ layer }, i) => {
      const s = saved[i]!;
      layer.names.forEach((n, j) => layer.setPrecision(n, s.precisions[j]!));
      layer.weightLambda = s.weightLambda; layer.activationLambda = s.activationLambda; layer.noise = s.noise;
    });
  }
}

/** The report as a ranked text table (one line per projection) for a terminal. */
export function formatSensitivityTable(report: SensitivityReport): string {
  const w = Math.max(10, ...report.rows.map((r) => r.name.length));
  const f = (v: number): string => (v >= 0 ? '+' : '') + v.toFixed(4);
  const lines = [
    `baseline val loss: all ternary ${report.baseline.ternary.toFixed(4)}, all FP ${report.baseline.fp.toFixed(4)} (${report.batches} batches)`,
    `${'rank'.padStart(4)}  ${'projection'.padEnd(w)}  ${'only FP Δ'.padStart(10)}  ${'only ternary Δ'.padStart(14)}`,
  ];
  report.rows.forEach((r, i) => lines.push(`${String(i + 1).padStart(4)}  ${r.name.padEnd(w)}  ${f(r.fp_delta).padStart(10)}  ${f(r.ternary_delta).padStart(14)}`));
  return lines.join('\n');
}

/**
 * Keep projections in another precision (mixed precision), by name. Unknown names throw an
 * error naming them and listing the valid ones.
 *
 * @example
 * setProjectionPrecision(model, ['model.layers.0.self_attn.q_proj'], 'fp');
 */
export function setProjectionPrecision(model: QatModel, names: readonly string[], precision: ProjectionPrecision): void {
  const entries = bitLinearLayers(model);
  const valid = entries.flatMap((e) => e.layer.names);
  const unknown = names.filter((n) => !valid.includes(n));
  if (unknown.length > 0) {
    throw new Error(`setProjectionPrecision: unknown projection${unknown.length > 1 ? 's' : ''} ${unknown.map((n) => JSON.stringify(n)).join(', ')}; valid names: ${valid.join(', ')}`);
  }
  for (const name of names) entries.find((e) => e.layer.names.includes(name))!.layer.setPrecision(name, precision);
}

/** How `autoMixedPrecision` picks: the `k` most sensitive projections, or all whose FP gain is at least `lossDeltaThreshold`. */
export type MixedPrecisionPick = { k: number } | { lossDeltaThreshold: number };

/**
 * Pick the most sensitive projections of a sensitivity report (largest loss gain when kept FP)
 * and keep them in `precision` (default 'fp'). Returns the chosen names, most sensitive first.
 *
 * @example
 * const kept = autoMixedPrecision(model, report, { k: 2 });
 */
export function autoMixedPrecision(model: QatModel, report: SensitivityReport, pick: MixedPrecisionPick, precision: ProjectionPrecision = 'fp'): string[] {
  let chosen: SensitivityRow[];
  if ('k' in pick) {
    if (!(Number.isInteger(pick.k) && pick.k >= 0)) throw new Error(`autoMixedPrecision: k must be a non-negative integer, got ${String(pick.k)}`);
    chosen = report.rows.slice(0, pick.k);
  } else {
    const t = pick.lossDeltaThreshold;
    if (!(Number.isFinite(t) && t >= 0)) throw new Error(`autoMixedPrecision: lossDeltaThreshold must be a finite number >= 0 (a val-loss gain), got ${String(t)}`);
    chosen = report.rows.filter((r) => -r.fp_delta >= t);
  }
  const names = chosen.map((r) => r.name);
  setProjectionPrecision(model, names, precision);
  return names;
}
