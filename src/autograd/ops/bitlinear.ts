/**
 * `bitLinear`: the BitNet b1.58 linear op (DESIGN.md "BitNet b1.58 numerics"), forward on the
 * packed path, backward by the straight-through estimator.
 *
 *   forward   xn = RMSNorm(x)                        (optional, built in as in the BitNet FAQ)
 *             xq, sx = absmax int8 per token of xn   (s_x = 127 / max|xn|)
 *             Wq, sw = absmean ternary of W           (quantised and packed, 2 bits, every forward)
 *             y = (xq · Wqᵀ) / (s_x · s_w) + b        (int8 × ternary, int32 sums, one rescale)
 *   backward  dxn = dY · (Wq / s_w)                   (f32 × ternary, adds and subtracts)
 *             dW  = dYᵀ · (xq / s_x)                  (f32 GEMM on the dequantised activations)
 *             dx  = RMSNorm backward of dxn           (when the norm is built in)
 *
 * The quantisers are identities for the gradient (STE). The clipped variant zeroes dW where the
 * ternary clamp was active (|W·s_w| > 1); with per-token absmax scales the int8 clamp is never
 * active (|xn·s_x| ≤ 127), so the activation gradient is the identity in both variants.
 */
import { activationRowBytes, checkWeightScaleGroup, packedTernaryBytes } from '../../quant/layout.js';
import type { Tensor } from '../../tensor/tensor.js';
import { assertArg, checkArgs, formatShape, recordOp, requireFinite, rows, wantsGrad } from './common.js';

/** Straight-through estimator: `'identity'`, or `'clipped'` (no weight gradient where the ternary clamp bites). */
export type SteVariant = 'identity' | 'clipped';

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
}

/**
 * BitNet b1.58 linear: `y = quant8(norm(x)) · ternary(W)ᵀ + b`. x is (..., C), W is (OC, C),
 * b is (OC) or null; y is (..., OC). See the file header for forward, backward and STE.
 *
 * @example
 * const y = bitLinear(x, w, null, { norm: true });                         // per-tensor scale
 * const z = bitLinear(x, w, null, { group: weightScaleGroup(OC, C, 'channel') });
 */
export function bitLinear(x: Tensor, weight: Tensor, bias: Tensor | null = null, options: BitLinearOpOptions = {}): Tensor {
  const op = 'bitLinear';
  const norm = options.norm ?? false;
  const normWeight = options.normWeight ?? null;
  const heap = checkArgs(op, { x, weight, bias, normWeight });
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
  assertArg(ste === 'identity' || ste === 'clipped', op, `ste must be 'identity' or 'clipped', got ${String(ste)}`);
  const group = options.group ?? N * K;
  checkWeightScaleGroup(`${op} weight ${formatShape(weight.shape)}`, N, K, group, true);
  const quantizeActs = options.quantizeActivations ?? true;
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
  // sw (N*K/group) absmean scales; packed (ceil(N/4), K) ternary codes: once per forward, reused in backward
  const sw = heap.alloc((N * K) / group);
  be.absmeanScales(sw, weight.offset, N * K, group);
  const packed = heap.alloc(be.byteSlots(packedTernaryBytes(N, K)));
  be.ternaryPack(packed, weight.offset, sw, N, K, group);

  const out = heap.empty([...x.shape.slice(0, -1), N]);
  let xq = 0;
  let sx = 0;
  if (quantizeActs) {
    // xq (M,K8) int8, sx (M): absmax per token; out (M,N) = xq·Wqᵀ / (sx·sw) on the packed kernel
    xq = heap.alloc(be.byteSlots(M * activationRowBytes(K)));
    sx = heap.alloc(M);
    be.quantizeActivations(xq, sx, xn, M, K);
    be.ternaryForward(out.offset, xq, sx, packed, sw, heap.alloc(be.ternaryScratchSlots('forward', N, K)), M, N, K, group);
  } else {
    // weight-only ternary: out (M,N) = xn · (Wq/sw)ᵀ in f32
    const wdq = heap.alloc(N * K);
    be.ternaryDequantize(wdq, packed, sw, N, K, group);
    be.gemm('nt', out.offset, xn, wdq, M, N, K, false);
  }
  if (bias) be.addBias(out.offset, bias.offset, M, N);

  recordOp(op, [x, weight, bias, normWeight], out, () => {
    const dout = out.gradPtr;
    // forward: y = q(xn)·q(W)ᵀ with q the identity for the gradient (STE), so
    // dxn += dY·(Wq/sw) (the packed weights of the forward), then dx += RMSNorm'ᵀ·dxn
    if (wantsGrad(x) || wantsGrad(normWeight)) {
      const dxn = norm ? heap.allocZeroed(M * K) : heap.gradOf(x);
      be.ternaryBackwardDx(dxn, dout, packed, sw, heap.alloc(be.ternaryScratchSlots('backwardDx', N, K)), M, N, K, group);
      if (norm) {
        const dx = wantsGrad(x) ? heap.gradOf(x) : heap.allocZeroed(x.size);
        const dg = normWeight ? (wantsGrad(normWeight) ? heap.gradOf(normWeight) : heap.allocZeroed(K)) : 0;
        be.rmsNormBackward(dx, dg, dxn, x.offset, normWeight ? normWeight.offset : 0, rstd, M, K);
      }
    }
    // dW += dYᵀ·(xq/sx): the activations the forward multiplied by (dequantised int8, or xn)
    if (wantsGrad(weight)) {
      let a = xn;
      if (quantizeActs) {
        a = heap.alloc(M * K);
        be.dequantizeActivations(a, xq, sx, M, K);
      }
      if (ste === 'identity') {
        be.gemm('tn', heap.gradOf(weight), dout, a, N, K, M, true);
      } else {
        const dwq = heap.alloc(N * K);
        be.gemm('tn', dwq, dout, a, N, K, M, false);
        be.steClippedWeights(heap.gradOf(weight), dwq, weight.offset, sw, N, K, group);
      }
    }
    if (wantsGrad(bias)) be.biasBackward(heap.gradOf(bias), dout, M, N);
  });
  return out;
}
