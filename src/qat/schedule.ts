/**
 * Schedules of quantisation-aware training, as pure functions of the step (so a resumed run
 * gets the same values): the λ ramps of progressive quantisation (linear `min(t, 1)`, exponential
 * `1 − (1 − t)^k`, sigmoid), their layer-by-layer variant, and geometric / linear annealing of a
 * value (the soft-STE temperature, the quantisation-noise fraction).
 */

/** The shape of a ramp from 0 to 1 over `t ∈ [0, 1]`. */
export type RampShape = 'linear' | 'exponential' | 'sigmoid';

/**
 * A ramp 0 → 1 over `steps` steps starting at step `start`:
 * `t = clamp((step − start) / steps, 0, 1)` and
 * - `'linear'`: `t` (the BitNet "lambda warmup" `min(step/N, 1)`);
 * - `'exponential'`: `1 − (1 − t)^k` (fast start; `k` default 3);
 * - `'sigmoid'`: `σ(a(t − ½))` rescaled to run exactly from 0 to 1 (`a = sharpness`, default 10).
 * `steps: 0` is a step function: 1 from `start` on.
 */
export interface RampSchedule {
  shape?: RampShape;
  steps: number;
  /** First step of the ramp (default 0). */
  start?: number;
  /** Power of the exponential ramp (> 0, default 3). */
  k?: number;
  /** Steepness of the sigmoid ramp (> 0, default 10). */
  sharpness?: number;
}

/** Layer-by-layer progressive quantisation: the blocks are quantised one after another over the ramp. */
export type LayerOrder = 'first-to-last' | 'last-to-first';

/** A value annealed from `from` to `to` over a ramp: `'geometric'` (default; `from·(to/from)^r`) or `'linear'`. */
export interface AnnealSchedule {
  from: number;
  to: number;
  steps: number;
  start?: number;
  interpolation?: 'geometric' | 'linear';
}

/** Throw unless `s` is a valid ramp; `where` names it in the message (e.g. `'QatController weights'`). */
export function checkRamp(s: RampSchedule, where: string): Required<RampSchedule> {
  if (s === null || typeof s !== 'object') throw new Error(`${where}: a ramp schedule must be an object like { shape: 'linear', steps: 1000 }, got ${String(s)}`);
  const shape = s.shape ?? 'linear';
  if (shape !== 'linear' && shape !== 'exponential' && shape !== 'sigmoid') {
    throw new Error(`${where}: shape must be 'linear', 'exponential' or 'sigmoid', got ${String(shape)}`);
  }
  if (!(Number.isInteger(s.steps) && s.steps >= 0)) throw new Error(`${where}: steps must be a non-negative integer (the ramp length), got ${String(s.steps)}`);
  const start = s.start ?? 0;
  if (!(Number.isInteger(start) && start >= 0)) throw new Error(`${where}: start must be a non-negative integer step, got ${String(start)}`);
  const k = s.k ?? 3;
  if (!(Number.isFinite(k) && k > 0)) throw new Error(`${where}: k (the exponential ramp's power) must be a finite number > 0, got ${String(k)}`);
  const sharpness = s.sharpness ?? 10;
  if (!(Number.isFinite(sharpness) && sharpness > 0)) throw new Error(`${where}: sharpness (the sigmoid ramp's steepness) must be a finite number > 0, got ${String(sharpness)}`);
  return { shape, steps: s.steps, start, k, sharpness };
}

/** The ramp's shape applied to `t ∈ [0, 1]` (values outside are clamped). */
export function rampShape(s: Required<RampSchedule>, t: number): number {
  const u = Math.min(1, Math.max(0, t));
  if (u >= 1) return 1;
  if (u <= 0) return 0;
  if (s.shape === 'linear') return u;
  if (s.shape === 'exponential') return 1 - (1 - u) ** s.k;
  const sig = (v: number): number => 1 / (1 + Math.exp(-s.sharpness * (v - 0.5)));
  return (sig(u) - sig(0)) / (sig(1) - sig(0));
}

/** Progress `t ∈ [0, 1]` of the ramp at `step`. */
export function rampProgress(s: Required<RampSchedule>, step: number): number {
  if (step < s.start) return 0;
  if (s.steps === 0) return 1;
  return Math.min(1, (step - s.start) / s.steps);
}

/**
 * The ramp's value at `step`, in [0, 1].
 *
 * @example
 * rampAt({ steps: 1000 }, 250);                              // 0.25 (linear, BitNet's λ warmup)
 * rampAt({ shape: 'exponential', steps: 1000, k: 2 }, 250);  // 1 − 0.75² = 0.4375
 */
export function rampAt(schedule: RampSchedule, step: number): number {
  const s = checkRamp(schedule, 'rampAt');
  return rampShape(s, rampProgress(s, step));
}

/**
 * λ of block `index` of `layers` at `step` when quantising layer by layer: the ramp's progress t
 * is split into `layers` equal slices and block i ramps (with the ramp's shape) during its slice,
 * `λ_i = shape(clamp(t·layers − i, 0, 1))` (`i` counted from the last block for `'last-to-first'`).
 */
export function layerwiseRampAt(schedule: RampSchedule, step: number, index: number, layers: number, order: LayerOrder = 'first-to-last'): number {
  const s = checkRamp(schedule, 'layerwiseRampAt');
  if (!(Number.isInteger(layers) && layers > 0 && Number.isInteger(index) && index >= 0 && index < layers)) {
    throw new Error(`layerwiseRampAt: index ${index} must be an integer in [0, ${layers}) and layers a positive integer`);
  }
  if (order !== 'first-to-last' && order !== 'last-to-first') throw new Error(`layerwiseRampAt: order must be 'first-to-last' or 'last-to-first', got ${String(order)}`);
  const i = order === 'first-to-last' ? index : layers - 1 - index;
  return rampShape(s, rampProgress(s, step) * layers - i);
}

/** Throw unless `s` is a valid anneal schedule. */
export function checkAnneal(s: AnnealSchedule, where: string, positive: boolean): Required<AnnealSchedule> {
  if (s === null || typeof s !== 'object') throw new Error(`${where}: an anneal schedule must be an object like { from: 1, to: 0.05, steps: 1000 }, got ${String(s)}`);
  for (const key of ['from', 'to'] as const) {
    const v = s[key];
    if (!(Number.isFinite(v) && (positive ? v > 0 : true))) throw new Error(`${where}: ${key} must be a finite number${positive ? ' > 0' : ''}, got ${String(v)}`);
  }
  const interpolation = s.interpolation ?? 'geometric';
  if (interpolation !== 'geometric' && interpolation !== 'linear') throw new Error(`${where}: interpolation must be 'geometric' or 'linear', got ${String(interpolation)}`);
  if (interpolation === 'geometric' && !(s.from > 0 && s.to > 0)) throw new Error(`${where}: geometric annealing needs from and to > 0, got ${s.from} and ${s.to} (use interpolation: 'linear')`);
  const r = checkRamp({ steps: s.steps, start: s.start }, where);
  return { from: s.from, to: s.to, steps: r.steps, start: r.start, interpolation };
}

/**
 * The annealed value at `step`: `from` before `start`, `to` after `start + steps`, in between
 * `from·(to/from)^t` (geometric) or `from + (to − from)·t` (linear).
 *
 * @example
 * annealAt({ from: 1, to: 0.01, steps: 100 }, 50); // 0.1
 */
export function annealAt(schedule: AnnealSchedule, step: number): number {
  const s = checkAnneal(schedule, 'annealAt', false);
  const t = rampProgress({ shape: 'linear', steps: s.steps, start: s.start, k: 3, sharpness: 10 }, step);
  return s.interpolation === 'geometric' ? s.from * (s.to / s.from) ** t : s.from + (s.to - s.from) * t;
}
