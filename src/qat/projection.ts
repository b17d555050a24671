/**
 * The forward and backward of one row block ("segment") of a BitLinear weight, for every
 * quantisation mode `bitLinear` supports (src/autograd/ops/bitlinear.ts is the op; numerics in
 * ./README.md). A stacked q/k/v weight whose parts have different precisions runs as several
 * segments that share the input, each writing its own output columns.
 *
 *   ternary, λw = λa = 1, no noise   y = packed int8 × ternary (ternaryForward)          [the default]
 *   otherwise                        y = x̃ · W̃ᵀ   (one f32 GEMM)
 *                                    W̃ = W + λ_i (Q(W) − W)   (λ_i = λw, or 0 where the noise mask is off)
 *                                    x̃ = xn + λa (Q(xn) − xn)
 *   backward (STE)                   dx̃ = dY · W̃      (ternaryBackwardDx when W̃ = Q(W)),
 *                                    dxn += dx̃ ⊙ ((1 − λa) + λa·mask_a)    (mask_a: clipped activation STE)
 *                                    dW̃ = dYᵀ · x̃,  dW += dW̃ ⊙ ((1 − λ_i) + λ_i·g(u))   (g per STE variant)
 *                                    dΔ += gradScale Σ λ_i dW̃_i ∂Q/∂Δ                    (LSQ only)
 */
import type { Backend, Ptr, QatBlend } from '../backend/backend.js';
import { activationRowBytes, packedTernaryBytes } from '../quant/layout.js';
import type { Heap } from '../tensor/heap.js';

/** How a projection (or a part of a stacked one) is quantised: ternary (BitNet), 8-bit weights, or not at all. */
export type ProjectionPrecision = 'ternary' | 'int8' | 'fp';

/** Weight straight-through estimators (see ./README.md). */
export type WeightSte = 'identity' | 'clipped' | 'soft' | 'lsq';

/** What all segments of one call share: the quantiser input and its lazily computed int8 codes. */
export class SharedActivations {
  private xqPtr = 0;
  private sxPtr = 0;
  private xdPtr = 0;

  constructor(
    readonly heap: Heap,
    /** The quantiser input xn (M,K) (after the built-in norm). */
    readonly xn: Ptr,
    readonly M: number,
    readonly K: number,
    /** Static clip value (1) or 0 for per-token absmax scales. */
    readonly clip: Ptr,
  ) {}

  /** int8 codes (M,K8) and per-row scales (M) of xn, computed on first use. */
  codes(): { xq: Ptr; sx: Ptr } {
    if (this.xqPtr === 0) {
      const { heap, M, K } = this;
      const be = heap.backend;
      this.xqPtr = heap.alloc(be.byteSlots(M * activationRowBytes(K)));
      this.sxPtr = heap.alloc(M);
      if (this.clip) be.qatQuantizeActivationsStatic(this.xqPtr, this.sxPtr, this.xn, this.clip, M, K);
      else be.quantizeActivations(this.xqPtr, this.sxPtr, this.xn, M, K);
    }
    return { xq: this.xqPtr, sx: this.sxPtr };
  }

  /** The dequantised activations Q(xn) = xq / sx (M,K), computed on first use. */
  dequantized(): Ptr {
    if (this.xdPtr === 0) {
      const { xq, sx } = this.codes();
      this.xdPtr = this.heap.alloc(this.M * this.K);
      this.heap.backend.dequantizeActivations(this.xdPtr, xq, sx, this.M, this.K);
    }
    return this.xdPtr;
  }
}

/** One row block [row0, row0 + rows) of W (N,K) and how to quantise it. */
export interface SegmentSpec {
  row0: number;
  rows: number;
  precision: ProjectionPrecision;
  /** Weight λ in [0,1] (ignored for 'fp'). */
  weightLambda: number;
  /** Activation λ in [0,1] (0 when activations are not quantised). */
  activationLambda: number;
}

/** What every segment of a call shares besides the activations. */
export interface SegmentContext {
  heap: Heap;
  acts: SharedActivations;
  /** Latent weights W (N,K) and their gradient block (0 when W needs no gradient). */
  w: Ptr;
  dw: Ptr;
  K: number;
  group: number;
  ste: WeightSte;
  activationSte: 'identity' | 'clipped';
  softTemperature: number;
  /** LSQ step sizes Δ (N*K/group) and their gradient (0 when absent / not needed). */
  step: Ptr;
  dstep: Ptr;
  lsqGradScale: number;
  /** Quantisation noise: fraction p of weights quantised (p >= 1: all), seed. */
  noise: { p: number; seed: number } | null;
}

/** A segment after its forward: `backward(dy, dxn)` accumulates into dxn (M,K) (0: no dx wanted) and dW. */
export interface SegmentRun {
  backward(dy: Ptr, dxn: Ptr): void;
}

/**
 * Forward of one segment: writes y (M, rows) at `y`. Returns the closure of its backward.
 */
export function segmentForward(ctx: SegmentContext, seg: SegmentSpec, y: Ptr): SegmentRun {
  const { heap, acts, K, group } = ctx;
  const be = heap.backend;
  const { M, xn } = acts;
  const n = seg.rows;
  const count = n * K;
  const wp = ctx.w + seg.row0 * K;
  const fp = seg.precision === 'fp';
  const lw = fp ? 0 : seg.weightLambda;
  const la = fp ? 0 : seg.activationLambda;
  const noiseOn = !fp && lw > 0 && ctx.noise !== null && ctx.noise.p < 1;
  const blend: QatBlend = noiseOn
    ? { lambda: lw, p: ctx.noise!.p, seed: segmentSeed(ctx.noise!.seed, seg.row0) }
    : { lambda: lw, p: 1, seed: 0 };
  const ternary = seg.precision === 'ternary' && lw > 0;
  const int8 = seg.precision === 'int8' && lw > 0;

  // weight quantiser: sw (n*K/group) + packed codes (ternary), or per-row int8 dequantised (int8)
  let sw = 0;
  let packed = 0;
  let wd = 0;
  if (ternary) {
    const groups = count / group;
    sw = heap.alloc(groups);
    if (ctx.ste === 'lsq') {
      const absmean = heap.alloc(groups);
      be.absmeanScales(absmean, wp, count, group);
      be.qatLsqScales(sw, ctx.step + (seg.row0 * K) / group, absmean, groups);
    } else {
      be.absmeanScales(sw, wp, count, group);
    }
    packed = heap.alloc(be.byteSlots(packedTernaryBytes(n, K)));
    be.ternaryPack(packed, wp, sw, n, K, group);
  } else if (int8) {
    const wq = heap.alloc(be.byteSlots(n * activationRowBytes(K)));
    const s8 = heap.alloc(n);
    be.quantizeActivations(wq, s8, wp, n, K); // per output row absmax: each row a "token"
    wd = heap.alloc(count);
    be.dequantizeActivations(wd, wq, s8, n, K);
  }
  const wExact = (ternary || int8) && lw === 1 && !noiseOn; // W̃ = Q(W) exactly
  const aExact = la === 1;
  const packedPath = ternary && wExact && aExact;

  let wt = wp; // W̃ (n,K)
  let xt = xn; // x̃ (M,K)
  if (packedPath) {
    const { xq, sx } = acts.codes();
    be.ternaryForward(y, xq, sx, packed, sw, heap.alloc(be.ternaryScratchSlots('forward', n, K)), M, n, K, group);
  } else {
    if (ternary) {
      wd = heap.alloc(count);
      be.ternaryDequantize(wd, packed, sw, n, K, group);
    }
    if (wExact) wt = wd;
    else if (lw > 0) {
      wt = heap.alloc(count);
      be.qatLerp(wt, wp, wd, count, blend);
    }
    if (aExact) xt = acts.dequantized();
    else if (la > 0) {
      xt = heap.alloc(M * K);
      be.qatLerp(xt, xn, acts.dequantized(), M * K, { lambda: la, p: 1, seed: 0 });
    }
    be.gemm('nt', y, xt, wt, M, n, K, false);
  }

  return {
    backward(dy: Ptr, dxn: Ptr): void {
      if (dxn) inputGradient(be, heap, ctx, acts, dy, dxn, { n, la, packed, sw, wt, useTernaryDx: ternary && wExact });
      if (!ctx.dw) return;
      // forward: y = x̃·W̃ᵀ, so dW̃ = dYᵀ·x̃ (x̃ = the dequantised int8 activations on the packed path)
      const a = packedPath ? acts.dequantized() : xt;
      const dwp = ctx.dw + seg.row0 * K;
      if (!ternary || ctx.ste === 'identity') {
        // identity surrogate (and 8-bit / fp): ∂W̃/∂W = (1 − λ_i) + λ_i = 1
        be.gemm('tn', dwp, dy, a, n, K, M, true);
        return;
      }
      const dwq = heap.alloc(count);
      be.gemm('tn', dwq, dy, a, n, K, M, false);
      if (ctx.ste === 'clipped' && wExact) be.steClippedWeights(dwp, dwq, wp, sw, n, K, group);
      else if (ctx.ste === 'lsq') {
        be.qatSteWeights(dwp, dwq, wp, sw, n, K, group, 'clipped', 1, blend);
        if (ctx.dstep) be.qatLsqStepGrad(ctx.dstep + (seg.row0 * K) / group, dwq, wp, sw, count, group, ctx.lsqGradScale, blend);
      } else {
        be.qatSteWeights(dwp, dwq, wp, sw, n, K, group, ctx.ste === 'soft' ? 'soft' : 'clipped', ctx.softTemperature, blend);
      }
    },
  };
}

/** dxn += (dY·W̃) ⊙ ((1 − λa) + λa·mask_a). */
function inputGradient(be: Backend, heap: Heap, ctx: SegmentContext, acts: SharedActivations, dy: Ptr, dxn: Ptr,
  s: { n: number; la: number; packed: Ptr; sw: Ptr; wt: Ptr; useTernaryDx: boolean }): void {
  const { M, K } = acts;
  // forward: x̃ = xn + λa·(Q(xn) − xn) with the difference detached; the clipped activation STE
  // replaces the quantiser's unit slope by the clamp mask, so ∂x̃/∂xn = (1 − λa) + λa·mask
  const masked = s.la > 0 && ctx.activationSte === 'clipped';
  const target = masked ? heap.allocZeroed(M * K) : dxn;
  if (s.useTernaryDx) be.ternaryBackwardDx(target, dy, s.packed, s.sw, heap.alloc(be.ternaryScratchSlots('backwardDx', s.n, K)), M, s.n, K, ctx.group);
  else be.gemm('nn', target, dy, s.wt, M, K, s.n, true);
  if (!masked) return;
  const { sx } = acts.codes();
  if (s.la === 1) {
    be.steClippedActivations(dxn, target, acts.xn, sx, M, K);
    return;
  }
  be.axpy(dxn, 1 - s.la, target, M * K);
  const scaled = heap.alloc(M * K);
  be.scale(scaled, target, s.la, M * K);
  be.steClippedActivations(dxn, scaled, acts.xn, sx, M, K);
}

/**
 * The noise seed of the segment starting at row `row0`: the parts of a stacked weight draw
 * different masks. Element i (flat, inside the segment) is quantised when
 * `noiseHash(segmentSeed(seed, row0), i) >>> 8 < floor(p·2^24)`.
 */
export function segmentSeed(seed: number, row0: number): number {
  let h = (seed ^ Math.imul(row0 + 1, 0x9e3779b1)) >>> 0;
  h = Math.imul(h ^ (h >>> 15), 0x2c1b3c6d) >>> 0;
  return (h ^ (h >>> 12)) >>> 0;
}
