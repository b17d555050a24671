/**
 * QAT regularisation and the latent-weight clamp.
 *
 * Ternary-grid penalty (so latent weights settle on their grid point before training ends):
 *
 *   R = c · (1/P) Σ_parts mean_i (u_i − q(u_i))²,   u = W·s (s: the absmean or LSQ multiplier),
 *   q(u) = clamp(round(u), −1, 1);   ∂R/∂W_i = c·(2/(P·n))·(u_i − q(u_i))·s    (s and q(u) held constant)
 *
 * over the P ternary projections (FP and 8-bit projections are skipped); c follows a schedule.
 *
 * Latent-weight clamp (a post-step projection usable with any optimizer): `W ← clamp(W, ±m/s)`, so
 * no latent weight drifts more than m grid steps from zero and ternary flips stay reachable.
 */
import type { Ptr } from '../backend/backend.js';
import { recordOp } from '../autograd/ops/common.js';
import type { BitLinear } from '../nn/bitlinear.js';
import type { Heap } from '../tensor/heap.js';
import type { Tensor } from '../tensor/tensor.js';
import { type QatModel, bitLinearLayers } from './controller.js';
import { type RampSchedule, checkRamp, rampAt } from './schedule.js';

/** A ternary part of a BitLinear weight: its rows and scale layout. */
interface TernaryPart {
  layer: BitLinear;
  /** Element offset of the part inside the layer's weight. */
  offset: number;
  rows: number;
  K: number;
  group: number;
  /** Element offset of the part's LSQ step sizes inside `layer.weightStep`. */
  stepOffset: number;
}

function ternaryParts(model: QatModel): TernaryPart[] {
  const out: TernaryPart[] = [];
  for (const { layer } of bitLinearLayers(model)) {
    const K = layer.inFeatures, R = layer.partRows;
    layer.names.forEach((name, p) => {
      if (layer.precisionOf(name) === 'ternary') out.push({ layer, offset: p * R * K, rows: R, K, group: layer.group, stepOffset: (p * R * K) / layer.group });
    });
  }
  return out;
}

/** The multipliers s of a part, in the arena: absmean scales, or 1/Δ of its LSQ step sizes. */
function partScales(heap: Heap, part: TernaryPart): Ptr {
  const be = heap.backend;
  const w = part.layer.weight.offset + part.offset;
  const count = part.rows * part.K;
  const groups = count / part.group;
  const sw = heap.alloc(groups);
  if (part.layer.weightStep) {
    const absmean = heap.alloc(groups);
    be.absmeanScales(absmean, w, count, part.group);
    be.qatLsqScales(sw, part.layer.weightStep.offset + part.stepOffset, absmean, groups);
  } else {
    be.absmeanScales(sw, w, count, part.group);
  }
  return sw;
}

/**
 * The ternary-grid penalty `R` of the file header with coefficient `coef`, a scalar tensor to add to
 * the loss (`add(loss, ternaryGridPenalty(model, c))`). Its gradient flows to the latent weights.
 */
export function ternaryGridPenalty(model: QatModel, coef: number): Tensor {
  if (!(typeof coef === 'number' && Number.isFinite(coef) && coef >= 0)) throw new Error(`ternaryGridPenalty: coef must be a finite number >= 0, got ${String(coef)}`);
  const heap = model.params.heap;
  const be = heap.backend;
  const parts = ternaryParts(model);
  const out = heap.zeros([]);
  if (parts.length === 0) return out;
  const saved = parts.map((part) => {
    const w = part.layer.weight.offset + part.offset;
    const sw = partScales(heap, part);
    const rowsum = heap.alloc(part.rows);
    be.qatGridPenalty(rowsum, w, sw, part.rows, part.K, part.group);
    const total = heap.alloc(1);
    be.sum(total, rowsum, part.rows);
    const c = coef / (parts.length * part.rows * part.K);
    be.axpy(out.offset, c, total, 1);
    return { part, w, sw, c };
  });
  const weights = [...new Set(parts.map((p) => p.layer.weight))];
  recordOp('ternaryGridPenalty', weights, out, () => {
    // forward: R = Σ c·Σ (u − q(u))², so dW += dR·2c·(u − q(u))·s
    for (const { part, w, sw, c } of saved) {
      const dw = heap.gradOf(part.layer.weight) + part.offset;
      be.qatGridPenaltyBackward(dw, w, sw, out.gradPtr, 2 * c, part.rows, part.K, part.group);
    }
  });
  return out;
}

/** Options of a {@link QatRegularizer}: the penalty's weight and an optional ramp (`weight · ramp(step)`). */
export interface RegularizerOptions {
  weight: number;
  schedule?: RampSchedule | null;
}

/**
 * A weighted, scheduled ternary-grid penalty for a training loop.
 *
 * @example
 * const reg = new QatRegularizer(model, { weight: 0.01, schedule: { start: 1000, steps: 1000 } });
 * const { loss } = model.forward(tokens, targets);
 * const r = reg.loss(step);
 * (r ? add(loss!, r) : loss!).backward();
 */
export class QatRegularizer {
  readonly weight: number;
  private readonly schedule: Required<RampSchedule> | null;

  constructor(readonly model: QatModel, options: RegularizerOptions) {
    if (!(typeof options.weight === 'number' && Number.isFinite(options.weight) && options.weight >= 0)) {
      throw new Error(`QatRegularizer: weight must be a finite number >= 0, got ${String(options.weight)}`);
    }
    this.weight = options.weight;
    this.schedule = options.schedule ? checkRamp(options.schedule, 'QatRegularizer schedule') : null;
  }

  /** The penalty's coefficient at `step`. */
  coefAt(step: number): number {
    return this.weight * (this.schedule ? rampAt(this.schedule, step) : 1);
  }

  /** The penalty term of `step`, or null when its coefficient is 0. */
  loss(step: number): Tensor | null {
    const c = this.coefAt(step);
    return c > 0 ? ternaryGridPenalty(this.model, c) : null;
  }
}

/**
 * Clamp every ternary projection's latent weights to `±multiple/s` (`multiple` grid steps; s the
 * absmean multiplier, or 1/Δ with LSQ). Call after each optimizer step (AdamW or SGD).
 *
 * @example
 * opt.step();
 * clampLatentWeights(model, 2);
 * heap.resetArena();
 */
export function clampLatentWeights(model: QatModel, multiple: number): void {
  if (!(typeof multiple === 'number' && Number.isFinite(multiple) && multiple >= 1)) {
    throw new Error(`clampLatentWeights: multiple must be a finite number >= 1 (grid steps; 1 is the ternary clamp itself), got ${String(multiple)}`);
  }
  const heap = model.params.heap;
  for (const part of ternaryParts(model)) {
    const sw = partScales(heap, part);
    heap.backend.qatClampWeights(part.layer.weight.offset + part.offset, sw, part.rows, part.K, part.group, multiple);
  }
}
