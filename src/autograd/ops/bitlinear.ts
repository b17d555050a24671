/**
 * `bitLinear`: the BitNet b1.58 linear op (DESIGN.md "BitNet b1.58 numerics"), forward on the
 * packed path, backward by the straight-through estimator; plus the quantisation-aware-training
 * modes of src/qat/ (numerics: src/qat/README.md).
 *
 *   forward   xn = RMSNorm(x)                        (optional, built in as in the BitNet FAQ)
 *             xq, sx = absmax int8 per token of xn   (s_x = 127 / max|xn|; or a static calibrated clip)
 *             Wq, sw = absmean ternary of W           (quantised and packed, 2 bits, every forward)
 *             y = (xq · Wqᵀ) / (s_x · s_w) + b        (int8 × ternary, int32 sums, one rescale)
 *   backward  dxn = dY · (Wq / s_w)                   (f32 × ternary, adds and subtracts)
 *             dW  = dYᵀ · (xq / s_x)                  (f32 GEMM on the dequantised activations)
 *             dx  = RMSNorm backward of dxn           (when the norm is built in)
 *
 * The quantisers are identities for the gradient (STE). The clipped variant zeroes dW where the
 * ternary clamp was active (|W·s_w| > 1); with per-token absmax scales the int8 clamp is never
 * active (|xn·s_x| ≤ 127), so the activation gradient is the identity in both variants.
 *
 * QAT options: weight STE `'soft'` (tanh soft-rounding slope at a temperature) and `'lsq'` (a
 * learnable step size Δ with the LSQ gradient); progressive quantisation `weightLambda` /
 * `activationLambda` (`x + λ(q(x) − x)`, the difference detached); quantisation noise (a random
 * fraction p of the weights quantised); a static activation clip with the clipped activation STE;
 * per-part precision of a stacked weight (`parts`: ternary, int8 or fp). With every λ = 1, no noise
 * and ternary parts, the op runs exactly the packed path above (bit-identical). Otherwise a segment
 * computes `y = x̃·W̃ᵀ` with one f32 GEMM on the blended operands (src/qat/projection.ts).
 */
import type { Ptr } from '../../backend/backend.js';
import { checkWeightScaleGroup } from '../../quant/layout.js';
import {
  type ProjectionPrecision, SharedActivations, type SegmentContext, type SegmentRun, type SegmentSpec, type WeightSte, segmentForward,
} from '../../qat/projection.js';
import { Tensor } from '../../tensor/tensor.js';
import { assertArg, checkArgs, formatShape, recordOp, requireFinite, rows, wantsGrad } from './common.js';

export type { ProjectionPrecision } from '../../qat/projection.js';

/**
 * Straight-through estimator of the weight quantiser: `'identity'`, `'clipped'` (no weight
 * gradient where the ternary clamp bites), `'soft'` (the slope of tanh soft rounding at
 * `softTemperature`, zero where the clamp bites) or `'lsq'` (clipped for W, plus the LSQ gradient
 * of a learnable step size `weightStep`).
 */
export type SteVariant = WeightSte;

/** Straight-through estimator of the activation quantiser: `'identity'` or `'clipped'` (zero outside the int8 range). */
export type ActivationSteVariant = 'identity' | 'clipped';

/** Quantisation noise: quantise a random fraction `p` in [0,1] of the weights (a fresh mask per `seed`, a u32). */
export interface QuantNoise {
  p: number;
  seed: number;
}

/** Options of {@link bitLinear}. */
export interface BitLinearOpOptions {
  /** Built-in RMSNorm of x before the activation quantiser. Default false. */
  norm?: boolean;
  /** Affine scale (C) of the built-in norm, or null (none). Needs `norm: true`. */
  normWeight?: Tensor | null;
  /** Epsilon of the built-in norm. Default 1e-5. */
  normEps?: number;
  /**
   * Weight-scale `group` (src/quant/layout.ts): N*K per tensor (default), K per output channel,
   * G per group (a multiple of 16 dividing K), R*K per block of R rows.
   */
  group?: number;
  /** Straight-through estimator for the weights. Default `'identity'`. */
  ste?: SteVariant;
  /**
   * Quantise activations to int8 (default true: W1.58A8 on the packed int8 × ternary kernel).
   * false: weight-only ternary, `y = x · (Wq/s_w)ᵀ` with the dequantised weights in an f32 GEMM.
   */
  quantizeActivations?: boolean;
  /** Temperature T > 0 of the `'soft'` STE (rounding sharpens as T → 0). Default 1. */
  softTemperature?: number;
  /** LSQ step sizes Δ (N*K/group), a parameter; needs `ste: 'lsq'`. Δ ≤ 0 is initialised to mean|W| by the forward. */
  weightStep?: Tensor | null;
  /** Multiplier of the LSQ step-size gradient. Default 1/sqrt(group) (LSQ's 1/sqrt(N_W·Q_P), Q_P = 1). */
  lsqGradScale?: number;
  /** Activation STE. Default `'identity'`; `'clipped'` matters with a static `activationClip`. */
  activationSte?: ActivationSteVariant;
  /** Static activation clip value c (1): every token gets s_x = 127/c (per-token absmax while c ≤ 0). Default null (per token). */
  activationClip?: Tensor | null;
  /** λ of progressive weight quantisation in [0,1]: `W + λ(Q(W) − W)`. Default 1. */
  weightLambda?: number;
  /** λ of progressive activation quantisation in [0,1]: `x + λ(Q(x) − x)`. Default 1. */
  activationLambda?: number;
  /** Quantisation noise, or null (default: every weight quantised). */
  noise?: QuantNoise | null;
  /**
   * Precision of each of the equal row blocks of a stacked weight (q, k, v), e.g.
   * `['fp', 'ternary', 'ternary']`. Default one `'ternary'` part. Parts of different precision
   * need a weight-scale group inside a part (per part, channel or group).
   */
  parts?: readonly ProjectionPrecision[];
  /** Called with the activation quantiser's input xn (M,K) (calibration); synchronous, read it with `await xn.data()` before the arena reset. */
  observe?: ((xn: Tensor) => void) | null;
  /** Two elements: the forward writes `Σ xn²` and `Σ (xn − Q(xn))²` there (error analysis). 0: off. */
  activationStats?: Ptr;
}

/**
 * BitNet b1.58 linear: `y = quant8(norm(x)) · ternary(W)ᵀ + b`. x is (..., C), W is (OC, C),
 * b is (OC) or null; y is (..., OC). See the file header for forward, backward, STE and QAT modes.
 *
 * @example
 * const y = bitLinear(x, w, null, { norm: true });                         // per-tensor scale
 * const z = bitLinear(x, w, null, { group: weightScaleGroup(OC, C, 'channel') });
 * const warm = bitLinear(x, w, null, { weightLambda: 0.3, activationLambda: 0.5 }); // progressive
 */
export function bitLinear(x: Tensor, weight: Tensor, bias: Tensor | null = null, options: BitLinearOpOptions = {}): Tensor {
  const op = 'bitLinear';
  const norm = options.norm ?? false;
  const normWeight = options.normWeight ?? null;
  const weightStep = options.weightStep ?? null;
  const activationClip = options.activationClip ?? null;
  const heap = checkArgs(op, { x, weight, bias, normWeight, weightStep, activationClip });
  assertArg(x.rank >= 1, op, 'x must be (..., C), got a scalar');
  assertArg(weight.rank === 2, op, `weight must be (OC, C), got ${formatShape(weight.shape)}`);
  const K = x.shape[x.rank - 1]!;
  const [N, WC] = weight.shape as [number, number];
  assertArg(WC === K, op, `x ${formatShape(x.shape)} and weight ${formatShape(weight.shape)}: x's last dim ${K} must equal weight's in-features ${WC}`);
  if (bias) assertArg(bias.rank === 1 && bias.shape[0] === N, op, `bias ${formatShape(bias.shape)} must be (${N}) to match weight ${formatShape(weight.shape)}`);
  if (normWeight) {
    assertArg(norm, op, 'normWeight is given but norm is false; pass norm: true to use the built-in RMSNorm');
    assertArg(normWeight.rank === 1 && normWeight.shape[0] === K, op, `normWeight ${formatShape(normWeight.shape)} must be (${K}) to match x ${formatShape(x.shape)}`);
  }
  const eps = options.normEps ?? 1e-5;
  requireFinite(op, 'normEps', eps);
  const ste = options.ste ?? 'identity';
  assertArg(['identity', 'clipped', 'soft', 'lsq'].includes(ste), op, `ste must be 'identity', 'clipped', 'soft' or 'lsq', got ${String(ste)}`);
  const group = options.group ?? N * K;
  checkWeightScaleGroup(`${op} weight ${formatShape(weight.shape)}`, N, K, group, true);
  const quantizeActs = options.quantizeActivations ?? true;
  const q = checkQatOptions(op, options, ste, N, K, group, weightStep, activationClip);
  const M = rows(x);
  const be = heap.backend;

  // xn (M,K) = RMSNorm(x), rstd (M) saved for backward
  let xn = x.offset;
  let rstd = 0;
  if (norm) {
    xn = heap.alloc(M * K);
    rstd = heap.alloc(M);
    be.rmsNormForward(xn, rstd, x.offset, normWeight ? normWeight.offset : 0, M, K, eps);
  }
  options.observe?.(norm ? new Tensor({ heap, offset: xn, shape: [M, K], kind: 'activation', generation: heap.generation }) : x);
  const acts = new SharedActivations(heap, xn, M, K, quantizeActs && activationClip ? activationClip.offset : 0);
  if (options.activationStats && quantizeActs) writeActivationStats(heap, acts, options.activationStats);

  const ctx: SegmentContext = {
    heap, acts, K, group, ste, w: weight.offset, dw: 0,
    activationSte: q.activationSte, softTemperature: q.softTemperature,
    step: weightStep ? weightStep.offset : 0, dstep: 0, lsqGradScale: q.lsqGradScale, noise: q.noise,
  };
  const segments = q.segments.map((s) => ({ ...s, activationLambda: quantizeActs ? s.activationLambda : 0 }));
  const out = heap.empty([...x.shape.slice(0, -1), N]);
  const runs: { spec: SegmentSpec; run: SegmentRun }[] = [];
  if (segments.length === 1) {
    runs.push({ spec: segments[0]!, run: segmentForward(ctx, segments[0]!, out.offset) });
  } else {
    // parts of different precision: each segment's (M, rows) output goes to its columns of out (M,N)
    for (const spec of segments) {
      const y = heap.alloc(M * spec.rows);
      runs.push({ spec, run: segmentForward(ctx, spec, y) });
      be.qatCopyColumns(out.offset, N, spec.row0, y, spec.rows, 0, M, spec.rows, false);
    }
  }
  if (bias) be.addBias(out.offset, bias.offset, M, N);

  recordOp(op, [x, weight, bias, normWeight, weightStep], out, () => {
    const dout = out.gradPtr;
    ctx.dw = wantsGrad(weight) ? heap.gradOf(weight) : 0;
    ctx.dstep = wantsGrad(weightStep) ? heap.gradOf(weightStep) : 0;
    const wantsDx = wantsGrad(x) || wantsGrad(normWeight);
    const dxn = !wantsDx ? 0 : norm ? heap.allocZeroed(M * K) : heap.gradOf(x);
    for (const { spec, run } of runs) {
      let dy = dout;
      if (runs.length > 1) {
        dy = heap.alloc(M * spec.rows);
        be.qatCopyColumns(dy, spec.rows, 0, dout, N, spec.row0, M, spec.rows, false);
      }
      run.backward(dy, dxn);
    }
    if (wantsDx && norm) {
      // forward: xn = RMSNorm(x)·g, so dx += RMSNorm'ᵀ·dxn (and dg)
      const dx = wantsGrad(x) ? heap.gradOf(x) : heap.allocZeroed(x.size);
      const dg = normWeight ? (wantsGrad(normWeight) ? heap.gradOf(normWeight) : heap.allocZeroed(K)) : 0;
      be.rmsNormBackward(dx, dg, dxn, x.offset, normWeight ? normWeight.offset : 0, rstd, M, K);
    }
    if (wantsGrad(bias)) be.biasBackward(heap.gradOf(bias), dout, M, N);
  });
  return out;
}

/** stats[0] = Σ xn², stats[1] = Σ (xn − Q(xn))² over the whole input. */
function writeActivationStats(heap: SharedActivations['heap'], acts: SharedActivations, stats: Ptr): void {
  const be = heap.backend;
  const n = acts.M * acts.K;
  const diff = heap.alloc(n);
  be.copy(diff, acts.dequantized(), n);
  be.axpy(diff, -1, acts.xn, n);
  be.sumSquares(stats, acts.xn, n);
  be.sumSquares(stats + 1, diff, n);
}

interface ResolvedQat {
  activationSte: ActivationSteVariant;
  softTemperature: number;
  lsqGradScale: number;
  noise: QuantNoise | null;
  segments: SegmentSpec[];
}

/** Validate the QAT options (naming the value and the fix) and split W into segments of equal precision. */
function checkQatOptions(op: string, o: BitLinearOpOptions, ste: SteVariant, N: number, K: number, group: number,
  weightStep: Tensor | null, activationClip: Tensor | null): ResolvedQat {
  const unit = (name: string, v: number | undefined): number => {
    const x = v ?? 1;
    assertArg(typeof x === 'number' && x >= 0 && x <= 1, op, `${name} must be a number in [0, 1], got ${String(x)}`);
    return x;
  };
  const weightLambda = unit('weightLambda', o.weightLambda);
  const activationLambda = unit('activationLambda', o.activationLambda);
  const softTemperature = o.softTemperature ?? 1;
  assertArg(Number.isFinite(softTemperature) && softTemperature > 0, op, `softTemperature must be a finite number > 0, got ${softTemperature}`);
  const activationSte = o.activationSte ?? 'identity';
  assertArg(activationSte === 'identity' || activationSte === 'clipped', op, `activationSte must be 'identity' or 'clipped', got ${String(activationSte)}`);
  const scales = (N * K) / group;
  if (ste === 'lsq') {
    assertArg(weightStep !== null, op, "ste 'lsq' needs weightStep, the learnable step sizes (a parameter of N*K/group elements)");
    assertArg(weightStep!.size === scales, op, `weightStep ${formatShape(weightStep!.shape)} must hold ${scales} step sizes (one per weight-scale group of ${group})`);
  } else {
    assertArg(weightStep === null, op, `weightStep is given but ste is '${ste}'; pass ste: 'lsq' to learn the step size`);
  }
  const lsqGradScale = o.lsqGradScale ?? 1 / Math.sqrt(group);
  requireFinite(op, 'lsqGradScale', lsqGradScale);
  if (activationClip) assertArg(activationClip.size === 1, op, `activationClip ${formatShape(activationClip.shape)} must hold one clip value`);
  const noise = o.noise ?? null;
  if (noise) {
    assertArg(typeof noise.p === 'number' && noise.p >= 0 && noise.p <= 1, op, `noise.p must be a fraction in [0, 1], got ${String(noise.p)}`);
    assertArg(Number.isInteger(noise.seed) && noise.seed >= 0 && noise.seed <= 0xffffffff, op, `noise.seed must be an integer in [0, 2^32), got ${String(noise.seed)}`);
  }
  const parts = o.parts ?? ['ternary'];
  assertArg(parts.length >= 1 && N % parts.length === 0, op, `parts (${parts.length}) must split the ${N} output rows of weight (${N}, ${K}) evenly`);
  for (const p of parts) assertArg(p === 'ternary' || p === 'int8' || p === 'fp', op, `parts must be 'ternary', 'int8' or 'fp', got ${String(p)}`);
  const R = N / parts.length;
  const segments: SegmentSpec[] = [];
  parts.forEach((precision, i) => {
    const last = segments[segments.length - 1];
    if (last && last.precision === precision) last.rows += R;
    else segments.push({ row0: i * R, rows: R, precision, weightLambda, activationLambda });
  });
  for (const s of segments) {
    assertArg((s.row0 * K) % group === 0 && (s.rows * K) % group === 0, op,
      `parts ${JSON.stringify(parts)} of weight (${N}, ${K}) split a weight-scale group of ${group} elements; use one scale per part (group ${R * K}), per channel (${K}) or per group`);
  }
  return { activationSte, softTemperature, lsqGradScale, noise: weightLambda > 0 ? noise : null, segments };
}
