/**
 * LoRA ops (src/peft/): a frozen projection with low-rank adapters beside it, and the merged
 * weight `W + s·B·A` of the quantisation-aware mode.
 *
 *   loraProjection   y = base(x) + Σ_p s_p · (drop(x)·A_pᵀ)·B_pᵀ   (into part p's output columns) + b
 *                    base: a frozen kernel (dense f32, packed ternary, NF4) that computes
 *                    `x·Wᵀ` forward and `dY·W` backward and has no weight gradient
 *   backward         h_p = s_p·drop(x)·A_pᵀ (M,r) is saved;
 *                    dB_p += dY_pᵀ·h_p,  dh_p = s_p·dY_p·B_p,  dA_p += dh_pᵀ·drop(x),
 *                    dx += base'ᵀ(dY) + drop'(Σ_p dh_p·A_p)
 *
 *   loraMergedWeight W̃ = W + Σ_p s_p·B_p·A_p (rows of part p);  dA_p += s_p·B_pᵀ·dW̃_p,  dB_p += s_p·dW̃_p·A_pᵀ
 *
 * Dropout (PEFT's `lora_dropout`, on the adapter's input only) keeps an element with probability
 * 1 − p and scales it by 1/(1 − p); the mask is the QAT noise hash of (seed, element), so a seed
 * gives the same mask in every backend and at every thread count (see `Backend.qatLerp`).
 */
import type { Ptr } from '../../backend/backend.js';
import type { Heap } from '../../tensor/heap.js';
import type { Tensor } from '../../tensor/tensor.js';
import { isGradEnabled } from '../tape.js';
import { assertArg, checkArgs, formatShape, recordOp, rows, wantsGrad } from './common.js';

/**
 * A frozen base projection W (N,K) as kernels: `forward` writes `out (M,N) = x (M,K)·Wᵀ` and
 * returns the closure that accumulates `dx (M,K) += dy (M,N)·W`. Nothing of W is trained.
 */
export interface FrozenKernel {
  readonly inFeatures: number;
  readonly outFeatures: number;
  /** What the base holds (`'dense'`, `'ternary'`, `'nf4'`), for messages. */
  readonly kind: string;
  forward(heap: Heap, x: Ptr, out: Ptr, M: number): (dy: Ptr, dx: Ptr) => void;
}

/** One adapter of a projection part: A (r,K), B (R,r), its scale s and the output columns it adds to. */
export interface LoraAdapterArgs {
  A: Tensor;
  B: Tensor;
  /** s = α/r (or α/√r with rsLoRA). */
  scale: number;
  /** First output column of this part (0 for an unstacked projection). */
  col0: number;
}

/** Dropout of the adapters' input: drop probability `p` in [0,1) and a u32 `seed` (a fresh one per step and layer). */
export interface LoraDropout {
  p: number;
  seed: number;
}

/**
 * A frozen projection plus LoRA adapters: `y = base(x) + Σ s·(drop(x)·Aᵀ)·Bᵀ + b`. x is (..., K);
 * y is (..., N). Dropout applies while recording gradients only (not under `noGrad`).
 *
 * @example
 * const y = loraProjection(x, frozenDense, [{ A, B, scale: 2, col0: 0 }], null);
 */
export function loraProjection(x: Tensor, base: FrozenKernel, adapters: readonly LoraAdapterArgs[], bias: Tensor | null = null, dropout: LoraDropout | null = null): Tensor {
  const op = 'loraProjection';
  const named: Record<string, Tensor | null> = { x, bias };
  adapters.forEach((a, i) => {
    named[`A${i}`] = a.A;
    named[`B${i}`] = a.B;
  });
  const heap = checkArgs(op, named);
  const K = base.inFeatures;
  const N = base.outFeatures;
  assertArg(x.rank >= 1 && x.shape[x.rank - 1] === K, op, `x ${formatShape(x.shape)} must be (..., ${K}) for the ${base.kind} base (${N}, ${K})`);
  if (bias) assertArg(bias.rank === 1 && bias.shape[0] === N, op, `bias ${formatShape(bias.shape)} must be (${N})`);
  for (const a of adapters) checkAdapter(op, a, K, N);
  const M = rows(x);
  const be = heap.backend;
  const out = heap.empty([...x.shape.slice(0, -1), N]);
  const baseBackward = base.forward(heap, x.offset, out.offset, M);

  // the adapters' input: x, or its dropout (mask seeded per call)
  const drop = dropout && dropout.p > 0 && isGradEnabled() && adapters.length > 0 ? dropout : null;
  let xa = x.offset;
  let zeros = 0;
  if (drop) {
    assertArg(drop.p < 1 && Number.isInteger(drop.seed) && drop.seed >= 0 && drop.seed <= 0xffffffff, op, `dropout needs p in [0, 1) and a u32 seed, got ${JSON.stringify(drop)}`);
    zeros = heap.allocZeroed(M * K);
    const scaled = heap.alloc(M * K);
    be.scale(scaled, x.offset, 1 / (1 - drop.p), M * K);
    xa = heap.alloc(M * K);
    be.qatLerp(xa, zeros, scaled, M * K, { lambda: 1, p: 1 - drop.p, seed: drop.seed });
  }
  // h = s·xa·Aᵀ (M,r), then out[:, col0..col0+R) += h·Bᵀ
  const saved = adapters.map((a) => {
    const r = a.A.shape[0]!;
    const R = a.B.shape[0]!;
    const h = heap.alloc(M * r);
    be.gemm('nt', h, xa, a.A.offset, M, r, K, false);
    be.scale(h, h, a.scale, M * r);
    if (R === N) be.gemm('nt', out.offset, h, a.B.offset, M, N, r, true);
    else {
      const t = heap.alloc(M * R);
      be.gemm('nt', t, h, a.B.offset, M, R, r, false);
      be.qatCopyColumns(out.offset, N, a.col0, t, R, 0, M, R, true);
    }
    return { a, r, R, h };
  });
  if (bias) be.addBias(out.offset, bias.offset, M, N);

  recordOp(op, [x, bias, ...adapters.flatMap((a) => [a.A, a.B])], out, () => {
    const dout = out.gradPtr;
    const wantsDx = wantsGrad(x);
    // d(xa) of the adapters (M,K): accumulated here, then through the dropout mask into dx
    const dxa = !wantsDx ? 0 : drop ? heap.allocZeroed(M * K) : heap.gradOf(x);
    for (const { a, r, R, h } of saved) {
      let dy = dout;
      if (R !== N) {
        dy = heap.alloc(M * R);
        be.qatCopyColumns(dy, R, 0, dout, N, a.col0, M, R, false);
      }
      // forward: t = h·Bᵀ, so dB += dYᵀ·h (tn) and dh = dY·B (nn)
      if (wantsGrad(a.B)) be.gemm('tn', heap.gradOf(a.B), dy, h, R, r, M, true);
      if (!wantsGrad(a.A) && !wantsDx) continue;
      const dh = heap.alloc(M * r);
      be.gemm('nn', dh, dy, a.B.offset, M, r, R, false);
      // forward: h = s·xa·Aᵀ, so dA += s·dhᵀ·xa (tn) and dxa += s·dh·A (nn)
      be.scale(dh, dh, a.scale, M * r);
      if (wantsGrad(a.A)) be.gemm('tn', heap.gradOf(a.A), dh, xa, r, K, M, true);
      if (wantsDx) be.gemm('nn', dxa, dh, a.A.offset, M, K, r, true);
    }
    if (wantsDx) {
      if (drop) {
        // forward: xa = mask·x/(1−p), so dx += mask·dxa/(1−p)
        const scaled = heap.alloc(M * K);
        be.scale(scaled, dxa, 1 / (1 - drop.p), M * K);
        const masked = heap.alloc(M * K);
        be.qatLerp(masked, zeros, scaled, M * K, { lambda: 1, p: 1 - drop.p, seed: drop.seed });
        be.axpy(heap.gradOf(x), 1, masked, M * K);
      }
      baseBackward(dout, heap.gradOf(x));
    }
    if (wantsGrad(bias)) be.biasBackward(heap.gradOf(bias), dout, M, N);
  });
  return out;
}

/** One adapter of a row block of W: rows [row0, row0 + R) get s·B·A. */
export interface LoraWeightPart {
  A: Tensor;
  B: Tensor;
  scale: number;
  row0: number;
}

/**
 * The quantisation-aware LoRA weight `W̃ = W + Σ s·B·A` (N,K), as an arena tensor whose gradient
 * flows to A and B (W is frozen: no gradient). A BitLinear then quantises W̃, so the adapter
 * learns through the quantiser and merging `W + s·B·A` into the latent reproduces the trained model.
 */
export function loraMergedWeight(weight: Tensor, parts: readonly LoraWeightPart[]): Tensor {
  const op = 'loraMergedWeight';
  const named: Record<string, Tensor> = { weight };
  parts.forEach((p, i) => {
    named[`A${i}`] = p.A;
    named[`B${i}`] = p.B;
  });
  const heap = checkArgs(op, named);
  assertArg(weight.rank === 2, op, `weight must be (N, K), got ${formatShape(weight.shape)}`);
  const [N, K] = weight.shape as [number, number];
  for (const p of parts) checkAdapter(op, { ...p, col0: p.row0 }, K, N);
  const be = heap.backend;
  const out = heap.empty([N, K]);
  be.copy(out.offset, weight.offset, N * K);
  const scaledB = parts.map((p) => {
    const [R, r] = p.B.shape as [number, number];
    const sb = heap.alloc(R * r);
    be.scale(sb, p.B.offset, p.scale, R * r);
    // W̃[row0..row0+R) += (s·B) (R,r) · A (r,K)
    be.gemm('nn', out.offset + p.row0 * K, sb, p.A.offset, R, K, r, true);
    return sb;
  });
  recordOp(op, [weight, ...parts.flatMap((p) => [p.A, p.B])], out, () => {
    const dw = out.gradPtr;
    parts.forEach((p, i) => {
      const [R, r] = p.B.shape as [number, number];
      const dwp = dw + p.row0 * K;
      // forward: W̃_p += (sB)·A, so dA += (sB)ᵀ·dW̃_p (tn) and dB += s·dW̃_p·Aᵀ (nt)
      if (wantsGrad(p.A)) be.gemm('tn', heap.gradOf(p.A), scaledB[i]!, dwp, r, K, R, true);
      if (wantsGrad(p.B)) {
        const t = heap.alloc(R * r);
        be.gemm('nt', t, dwp, p.A.offset, R, r, K, false);
        be.axpy(heap.gradOf(p.B), p.scale, t, R * r);
      }
    });
    if (wantsGrad(weight)) be.axpy(heap.gradOf(weight), 1, dw, N * K);
  });
  return out;
}

function checkAdapter(op: string, a: LoraAdapterArgs, K: number, N: number): void {
  assertArg(a.A.rank === 2 && a.A.shape[1] === K, op, `lora_A ${a.A.describe()} must be (r, ${K})`);
  const r = a.A.shape[0]!;
  assertArg(a.B.rank === 2 && a.B.shape[1] === r, op, `lora_B ${a.B.describe()} must be (R, ${r}) to match lora_A ${a.A.describe()}`);
  const R = a.B.shape[0]!;
  assertArg(Number.isInteger(a.col0) && a.col0 >= 0 && a.col0 + R <= N, op, `adapter rows ${a.col0}..${a.col0 + R} do not fit the ${N} outputs`);
  assertArg(Number.isFinite(a.scale), op, `scale must be a finite number, got ${a.scale}`);
}
