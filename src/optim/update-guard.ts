/**
 * The non-finite guard of an optimizer step: decide, before anything is written, whether an
 * update would leave a NaN or Inf in the weights or the optimizer state; a step that would is
 * refused and memory stays exactly as it was (the trainer counts it like a non-finite loss).
 *
 * Inputs are three sums of squares the backend computes in f64 and stores as f32 (so a stored
 * finite sum means every element's square is finite): ‖g‖² of the gradient block, ‖p‖² of the
 * parameters and ‖s‖² of a state block (AdamW's m, SGD's momentum buffer). From the kernels'
 * formulas (assembly/optim.ts; sgd.ts) every intermediate is bounded by these norms; the step is
 * applied only if every bound stays below FLT_MAX / 4 (slack for f32 rounding). The bounds are
 * loose — a refused step has weights or moments beyond ~1e30, i.e. a run that already diverged —
 * but never wrong: an applied update is finite.
 */

/** The largest finite f32. */
export const FLT_MAX = 3.4028234663852886e38;
const LIMIT = FLT_MAX / 4;

/** What one guarded `step()` did. */
export type StepOutcome =
  | { applied: true; gradNorm: number }
  | {
    applied: false;
    /** `'gradient'`: the gradient holds NaN/Inf (or its norm overflows f32); `'overflow'`: the update would overflow the weights or state. */
    reason: 'gradient' | 'overflow';
    gradNorm: number;
    /** One sentence for messages: what would have gone non-finite. */
    detail: string;
  };

/** The three norms the guard reads (square roots of the stored sums; NaN/Inf when a sum is). */
export interface GuardNorms {
  grad: number;
  param: number;
  state: number;
}

function refuseGradient(g: number): StepOutcome {
  return { applied: false, reason: 'gradient', gradNorm: g, detail: `the gradient norm is ${g} (NaN or Inf values in the gradient, or a norm beyond f32's range)` };
}

const bad = (x: number) => !(Number.isFinite(x) && x < LIMIT);

/**
 * AdamW (the fused kernel: g = c·grad; m' = β1·m + (1−β1)·g; v' = β2·v + (1−β2)·g²;
 * p' = p − lr·(m'/bc1 / (√(v'/bc2) + ε) + wd·p)). m' and v' are convex combinations, so
 * |m'| ≤ max(|m|, |g|) and v' ≤ max(v, g²) stay finite while g² does; v'/bc2 may overflow to
 * Inf harmlessly (the ratio becomes 0). What can overflow is m'/bc1 and the ratio, bounded by
 * |m̂| / ε, and the weight p'.
 */
export function adamwGuard(n: GuardNorms, hp: { lr: number; beta1: number; eps: number; weightDecay: number; step: number; clip: number }): StepOutcome {
  const g = n.grad;
  if (!Number.isFinite(g)) return refuseGradient(g);
  const c = hp.clip > 0 ? Math.min(1, hp.clip / (g + 1e-6)) : 1;
  const mNew = hp.beta1 * n.state + (1 - hp.beta1) * c * g;
  const mHat = mNew / (1 - Math.pow(hp.beta1, hp.step));
  const ratio = mHat / hp.eps;
  const weight = n.param + hp.lr * (ratio + hp.weightDecay * n.param);
  if (bad(c * c * g * g) || bad(n.param) || bad(n.state) || bad(mHat) || bad(ratio) || bad(hp.lr * ratio) || bad(weight)) {
    return {
      applied: false, reason: 'overflow', gradNorm: g,
      detail: `the update would overflow f32 (weight norm ${n.param.toPrecision(3)}, first-moment norm ${n.state.toPrecision(3)}, lr ${hp.lr}: the weights are diverging)`,
    };
  }
  return { applied: true, gradNorm: g };
}

/**
 * SGD (g' = c·grad + wd·p; buf' = μ·buf + (1−dampening)·g' (= g' on the first step);
 * u = nesterov ? g' + μ·buf' : buf' (g' without momentum); p' = p − lr·u).
 */
export function sgdGuard(n: GuardNorms, hp: { lr: number; momentum: number; dampening: number; nesterov: boolean; weightDecay: number; clip: number; first: boolean }): StepOutcome {
  const g = n.grad;
  if (!Number.isFinite(g)) return refuseGradient(g);
  const c = hp.clip > 0 ? Math.min(1, hp.clip / (g + 1e-6)) : 1;
  const gNew = c * g + hp.weightDecay * n.param;
  const hasBuf = hp.momentum > 0;
  const buf = !hasBuf ? 0 : hp.first ? gNew : hp.momentum * n.state + (1 - hp.dampening) * gNew;
  const u = !hasBuf ? gNew : hp.nesterov ? gNew + hp.momentum * buf : buf;
  const weight = n.param + hp.lr * u;
  if (bad(c * g) || bad(n.param) || bad(n.state) || bad(gNew) || bad(buf) || bad(u) || bad(hp.lr * u) || bad(weight)) {
    return {
      applied: false, reason: 'overflow', gradNorm: g,
      detail: `the update would overflow f32 (weight norm ${n.param.toPrecision(3)}, momentum norm ${n.state.toPrecision(3)}, lr ${hp.lr}: the weights are diverging)`,
    };
  }
  return { applied: true, gradNorm: g };
}
