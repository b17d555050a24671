/**
 * Learning-rate (and weight-decay) schedules: pure functions of the optimizer step.
 *
 *   cosine     linear warmup to `peakLr`, then half a cosine down to `minLr` at `totalSteps`
 *              (nanoGPT's `get_lr`)
 *   linear     linear warmup, then a straight line down to `minLr` at `totalSteps`
 *   constant   linear warmup, then `peakLr` for ever
 *   two-stage  the BitNet b1.58 recipe: warmup and a cosine from `peakLr` (stage 1, weight decay
 *              `weightDecay`); at `dropAt · totalSteps` the LR drops to `secondStageLr` and
 *              follows a cosine to `minLr` while weight decay is `secondStageWeightDecay` (0):
 *              a latent weight's magnitude is its ternary value's confidence, and decay flips them.
 *
 * `step` is the 0-based index of the update about to be taken. Warmup, as in nanoGPT:
 * `lr = peakLr · (step + 1) / (warmup + 1)` for `step < warmup`. Past `totalSteps` the LR stays
 * at its final value. The cosine is computed with `+ - * /` only (`detCos`), not `Math.cos`,
 * so every JavaScript engine computes the same bits (DESIGN.md decision 6).
 */

/** What a schedule gives for one step. */
export interface ScheduleValue {
  lr: number;
  weightDecay: number;
}

/** Fields every schedule shares. */
interface ScheduleBase {
  /** The LR at the end of warmup. */
  peakLr: number;
  /** Steps of linear warmup (default 0). */
  warmup?: number;
  /** Weight decay (default 0.1; the second stage of `two-stage` uses `secondStageWeightDecay`). */
  weightDecay?: number;
}

/** Warmup, then a half cosine from `peakLr` to `minLr` (default `peakLr / 10`) at `totalSteps`. */
export interface CosineSchedule extends ScheduleBase {
  kind: 'cosine';
  totalSteps: number;
  minLr?: number;
}

/** Warmup, then a linear decay from `peakLr` to `minLr` (default 0) at `totalSteps`. */
export interface LinearSchedule extends ScheduleBase {
  kind: 'linear';
  totalSteps: number;
  minLr?: number;
}

/** Warmup, then `peakLr`. */
export interface ConstantSchedule extends ScheduleBase {
  kind: 'constant';
}

/** The BitNet b1.58 two-stage schedule (see the module comment). */
export interface TwoStageSchedule extends ScheduleBase {
  kind: 'two-stage';
  totalSteps: number;
  /** Fraction of `totalSteps` where stage 2 starts, in (0, 1]. Default 0.5. */
  dropAt?: number;
  /** The LR stage 2 starts from. Default `peakLr / 4` (at least `minLr`). */
  secondStageLr?: number;
  /** The LR at `totalSteps`. Default `secondStageLr / 10`. */
  minLr?: number;
  /** Weight decay in stage 2. Default 0. */
  secondStageWeightDecay?: number;
}

export type ScheduleConfig = CosineSchedule | LinearSchedule | ConstantSchedule | TwoStageSchedule;
export type ScheduleKind = ScheduleConfig['kind'];
export const SCHEDULE_KINDS: readonly ScheduleKind[] = ['cosine', 'linear', 'constant', 'two-stage'];

/** A schedule with every default filled in and every value checked. */
export interface ResolvedSchedule {
  kind: ScheduleKind;
  peakLr: number;
  warmup: number;
  weightDecay: number;
  /** Infinity for `constant`. */
  totalSteps: number;
  minLr: number;
  /** First step of stage 2 (`two-stage` only; Infinity otherwise). */
  dropStep: number;
  secondStageLr: number;
  secondStageWeightDecay: number;
}

function checkNumber(kind: string, name: string, v: unknown, opts: { min?: number; integer?: boolean; positive?: boolean; max?: number } = {}): number {
  const where = `schedule '${kind}': ${name}`;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`${where} must be a finite number, got ${typeof v === 'number' ? v : JSON.stringify(v)}`);
  if (opts.integer && !Number.isInteger(v)) throw new Error(`${where} must be an integer, got ${v}`);
  if (opts.positive && !(v > 0)) throw new Error(`${where} must be > 0, got ${v}`);
  if (opts.min !== undefined && v < opts.min) throw new Error(`${where} must be >= ${opts.min}, got ${v}`);
  if (opts.max !== undefined && v > opts.max) throw new Error(`${where} must be <= ${opts.max}, got ${v}`);
  return v;
}

/** Fill defaults and validate: negative lengths, non-finite values, a warmup longer than the run. Errors name the field and the value. */
export function resolveSchedule(config: ScheduleConfig): ResolvedSchedule {
  const kind = (config as { kind?: unknown })?.kind;
  if (!SCHEDULE_KINDS.includes(kind as ScheduleKind)) {
    throw new Error(`schedule: unknown kind ${JSON.stringify(kind)} (expected one of ${SCHEDULE_KINDS.join(', ')})`);
  }
  const k = kind as ScheduleKind;
  const peakLr = checkNumber(k, 'peakLr', config.peakLr, { min: 0 });
  const warmup = checkNumber(k, 'warmup', config.warmup ?? 0, { min: 0, integer: true });
  const weightDecay = checkNumber(k, 'weightDecay', config.weightDecay ?? 0.1, { min: 0 });
  const resolved: ResolvedSchedule = {
    kind: k, peakLr, warmup, weightDecay,
    totalSteps: Infinity, minLr: peakLr, dropStep: Infinity, secondStageLr: peakLr, secondStageWeightDecay: weightDecay,
  };
  if (config.kind === 'constant') return resolved;
  const totalSteps = checkNumber(k, 'totalSteps', config.totalSteps, { min: 1, integer: true });
  if (warmup > totalSteps) throw new Error(`schedule '${k}': warmup (${warmup}) must not exceed totalSteps (${totalSteps})`);
  resolved.totalSteps = totalSteps;
  if (config.kind === 'cosine') {
    resolved.minLr = checkNumber(k, 'minLr', config.minLr ?? peakLr / 10, { min: 0 });
  } else if (config.kind === 'linear') {
    resolved.minLr = checkNumber(k, 'minLr', config.minLr ?? 0, { min: 0 });
  } else {
    const dropAt = checkNumber(k, 'dropAt', config.dropAt ?? 0.5, { positive: true, max: 1 });
    const minLr = config.minLr === undefined ? undefined : checkNumber(k, 'minLr', config.minLr, { min: 0 });
    resolved.secondStageLr = checkNumber(k, 'secondStageLr', config.secondStageLr ?? Math.max(peakLr / 4, minLr ?? 0), { min: 0 });
    resolved.minLr = minLr ?? resolved.secondStageLr / 10;
    if (resolved.secondStageLr > peakLr) throw new Error(`schedule '${k}': secondStageLr (${resolved.secondStageLr}) must not exceed peakLr (${peakLr})`);
    if (resolved.minLr > resolved.secondStageLr) throw new Error(`schedule '${k}': minLr (${resolved.minLr}) must not exceed secondStageLr (${resolved.secondStageLr})`);
    resolved.secondStageWeightDecay = checkNumber(k, 'secondStageWeightDecay', config.secondStageWeightDecay ?? 0, { min: 0 });
    resolved.dropStep = Math.max(warmup, Math.round(dropAt * totalSteps));
  }
  if (resolved.minLr > peakLr) throw new Error(`schedule '${k}': minLr (${resolved.minLr}) must not exceed peakLr (${peakLr})`);
  return resolved;
}

const PI = 3.141592653589793;
const HALF_PI = 1.5707963267948966;
/** (-1)^k / (2k)!, k = 0..14, from correctly rounded divisions (the same bits everywhere). */
const COS_COEFFS: readonly number[] = (() => {
  const c = [1];
  for (let k = 1; k <= 14; k++) c.push(-c[k - 1]! / ((2 * k - 1) * (2 * k)));
  return c;
})();

/**
 * cos(x) for x in [0, π], from `+ - * /` only (bit-identical in every engine), accurate to
 * ~1 ulp: cos(π - x) = -cos(x) folds x into [0, π/2]; there the Taylor series converges fast.
 */
export function detCos(x: number): number {
  if (!(x >= 0 && x <= PI)) throw new Error(`detCos: x must be in [0, π], got ${x}`);
  let sign = 1;
  if (x > HALF_PI) {
    x = PI - x;
    sign = -1;
  }
  // Σ (-1)^k x^2k / (2k)!, 14 terms (the next is < 1e-25 for x <= π/2), Horner from the smallest
  const x2 = x * x;
  let sum = COS_COEFFS[COS_COEFFS.length - 1]!;
  for (let k = COS_COEFFS.length - 2; k >= 0; k--) sum = sum * x2 + COS_COEFFS[k]!;
  return sign * sum;
}

/** `hi → lo` along half a cosine as `ratio` goes 0 → 1. */
function cosineBetween(hi: number, lo: number, ratio: number): number {
  const r = Math.min(1, Math.max(0, ratio));
  return lo + 0.5 * (1 + detCos(PI * r)) * (hi - lo);
}

/** The LR and weight decay of a resolved schedule at `step` (0-based). */
export function scheduleValueAt(s: ResolvedSchedule, step: number): ScheduleValue {
  if (!(Number.isInteger(step) && step >= 0)) throw new Error(`schedule '${s.kind}': step must be a non-negative integer, got ${step}`);
  if (step < s.warmup) return { lr: (s.peakLr * (step + 1)) / (s.warmup + 1), weightDecay: s.weightDecay };
  switch (s.kind) {
    case 'constant':
      return { lr: s.peakLr, weightDecay: s.weightDecay };
    case 'cosine':
      return { lr: cosineBetween(s.peakLr, s.minLr, (step - s.warmup) / Math.max(1, s.totalSteps - s.warmup)), weightDecay: s.weightDecay };
    case 'linear': {
      const r = Math.min(1, (step - s.warmup) / Math.max(1, s.totalSteps - s.warmup));
      return { lr: s.peakLr + r * (s.minLr - s.peakLr), weightDecay: s.weightDecay };
    }
    case 'two-stage': {
      if (step < s.dropStep) {
        // stage 1: the cosine of a full run, cut off at the drop
        return { lr: cosineBetween(s.peakLr, s.minLr, (step - s.warmup) / Math.max(1, s.totalSteps - s.warmup)), weightDecay: s.weightDecay };
      }
      const lr = cosineBetween(s.secondStageLr, s.minLr, (step - s.dropStep) / Math.max(1, s.totalSteps - s.dropStep));
      return { lr, weightDecay: s.secondStageWeightDecay };
    }
  }
}

/** A schedule as a function of the step. */
export type Schedule = ((step: number) => ScheduleValue) & { readonly config: ResolvedSchedule };

/**
 * Validate `config` once and return `step → { lr, weightDecay }`.
 *
 * @example
 * const schedule = createSchedule({ kind: 'cosine', peakLr: 1e-3, minLr: 1e-4, warmup: 100, totalSteps: 2000 });
 * schedule(0).lr;    // 1e-3 / 101
 * schedule(2000).lr; // 1e-4
 */
export function createSchedule(config: ScheduleConfig): Schedule {
  const resolved = resolveSchedule(config);
  return Object.assign((step: number) => scheduleValueAt(resolved, step), { config: resolved });
}
