/**
 * BitNet b1.58 quantizers of the `js` backend: the reference the wasm kernels of
 * `assembly/quant.ts` are tested against, bit for bit (same f32 roundings, same order of the
 * f64 reduction). Numerics, layouts and the scale `group` are documented in `src/quant/README.md`:
 *
 * - weights, absmean ternary: `s = 1 / max(mean|W|, 1e-5)`, `Wq = clamp(round(W*s), -1, 1)`;
 * - activations, absmax int8 per token: `s = 127 / max(max|x|, 1e-5)`, `xq = clamp(round(x*s), -128, 127)`;
 * - `round` is round-half-to-even ({@link roundHalfEven}), products `W*s`, `x*s` are f32.
 *
 * Every buffer argument is a view whose element 0 is the buffer's first element (pass
 * `mem.subarray(p)` for a backend pointer). Integer buffers (int8 activations, packed bytes)
 * may be typed integer arrays or float slots holding the integers. Arguments are not checked
 * here: `src/quant/layout.ts` has the size and group checks.
 */
import { activationRowBytes } from '../../quant/layout.js';

/** Storage a js kernel reads or writes. */
export type NumArray = Float32Array | Float64Array | Int8Array | Uint8Array | Int16Array | Int32Array;

const fround = Math.fround;
/** 1e-5 as an f32, the clamp of the activation scale (`Mathf.max(amax, <f32>1e-5)` in wasm). */
const EPS_F32 = fround(1e-5);
/** Elements per partial sum of the absmean reduction (`ABSMEAN_CHUNK` in assembly/quant.ts). */
export const ABSMEAN_CHUNK = 4096;

/**
 * Round to the nearest integer, ties to even (IEEE `roundTiesToEven`, wasm `f32.nearest`,
 * `torch.round`). `Math.round` rounds ties up, so ties that land on an odd integer step back.
 *
 * @example
 * [0.5, 1.5, 2.5, -0.5, -1.5].map(roundHalfEven); // [0, 2, 2, -0, -2]
 */
export function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** `a < b ? b : a`: the max wasm's `f32x4.pmax` computes (no NaN propagation). */
function pmax(a: number, b: number): number {
  return a < b ? b : a;
}

/** Scale index of the row segment that starts at (n, k); see the `group` convention. */
export function scaleIndex(n: number, k: number, K: number, group: number): number {
  return Math.floor((n * K) / group) + (group >= K ? 0 : Math.floor(k / group));
}

/** Sum of |w[off..off+len)| in f64: lanes S_j over i = j (mod 4), then (S0+S2) + (S1+S3). */
function sumAbsChunk(w: NumArray, off: number, len: number): number {
  let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  const len4 = len & ~3;
  let i = 0;
  for (; i < len4; i += 4) {
    s0 += Math.abs(w[off + i]);
    s1 += Math.abs(w[off + i + 1]);
    s2 += Math.abs(w[off + i + 2]);
    s3 += Math.abs(w[off + i + 3]);
  }
  if (i < len) s0 += Math.abs(w[off + i]);
  if (i + 1 < len) s1 += Math.abs(w[off + i + 1]);
  if (i + 2 < len) s2 += Math.abs(w[off + i + 2]);
  return (s0 + s2) + (s1 + s3);
}

/**
 * Absmean scales: `scales[g] = f32(1 / max(sum|w| / group, 1e-5))` over the g-th run of `group`
 * consecutive elements of `w` (count elements), for g in [g0, g1). The |w| sum runs in f64
 * over 4096-element chunks in chunk order, each chunk in the 4-lane order of the wasm kernel,
 * so both backends produce the same scale bits.
 */
export function absmeanScales(scales: NumArray, w: NumArray, count: number, group: number, g0: number, g1: number): void {
  void count;
  for (let g = g0; g < g1; g++) {
    const start = g * group;
    let sum = 0;
    for (let c = 0; c < group; c += ABSMEAN_CHUNK) sum += sumAbsChunk(w, start + c, Math.min(ABSMEAN_CHUNK, group - c));
    scales[g] = fround(1 / Math.max(sum / group, 1e-5));
  }
}

/** Ternary code Wq + 1 in {0,1,2} of latent weight w under scale s. */
function code(w: number, s: number): number {
  return roundHalfEven(Math.max(-1, Math.min(1, fround(w * s)))) + 1;
}

/**
 * Quantise latent weights w (N,K) with `scales` and pack them, 2 bits a weight, into
 * packed (ceil(N/4), K): byte (r,k) holds `Wq[i*R + r, k] + 1` in bits 2i..2i+1 (R = ceil(N/4));
 * rows n >= N are padded with code 1 (weight 0). Packed rows [r0, r1).
 */
export function ternaryPack(packed: NumArray, w: NumArray, scales: NumArray, N: number, K: number, group: number, r0: number, r1: number): void {
  const R = (N + 3) >> 2;
  for (let r = r0; r < r1; r++) {
    for (let k = 0; k < K; k++) {
      let byte = 0;
      for (let i = 0; i < 4; i++) {
        const n = i * R + r;
        const c = n < N ? code(w[n * K + k], scales[scaleIndex(n, k, K, group)]) : 1;
        byte |= c << (2 * i);
      }
      packed[r * K + k] = byte;
    }
  }
}

/** The ternary weight Wq[n,k] in {-1,0,1} stored in packed (ceil(N/4), K). */
export function ternaryAt(packed: NumArray, n: number, k: number, N: number, K: number): number {
  const R = (N + 3) >> 2;
  return ((packed[(n % R) * K + k] >> ((Math.floor(n / R)) * 2)) & 3) - 1;
}

/** wq (N,K) = the ternary weights in {-1,0,1} of packed (ceil(N/4), K). Rows [r0, r1). */
export function ternaryUnpack(wq: NumArray, packed: NumArray, N: number, K: number, r0: number, r1: number): void {
  for (let n = r0; n < r1; n++) for (let k = 0; k < K; k++) wq[n * K + k] = ternaryAt(packed, n, k, N, K);
}

/** out (N,K) = Wq / s as f32 (`±f32(1/s)` or 0) from packed (ceil(N/4), K). Rows [r0, r1). */
export function ternaryDequantize(out: NumArray, packed: NumArray, scales: NumArray, N: number, K: number, group: number, r0: number, r1: number): void {
  for (let n = r0; n < r1; n++) {
    for (let k = 0; k < K; k++) out[n * K + k] = fround(ternaryAt(packed, n, k, N, K) / scales[scaleIndex(n, k, K, group)]);
  }
}

/**
 * Absmax int8 quantisation per row (token): `sx[m] = f32(127 / max(max|x[m,:]|, 1e-5))`,
 * `xq[m,k] = clamp(round(x[m,k]*sx[m]), -128, 127)`; x (M,K), xq (M,K8) with
 * K8 = `activationRowBytes(K)` and padding written as 0, sx (M). Rows [r0, r1).
 */
export function quantizeActivations(xq: NumArray, sx: NumArray, x: NumArray, M: number, K: number, r0: number, r1: number): void {
  const K8 = activationRowBytes(K);
  for (let m = r0; m < r1; m++) {
    let amax = 0;
    for (let k = 0; k < K; k++) amax = pmax(amax, Math.abs(x[m * K + k]));
    const s = fround(127 / pmax(amax, EPS_F32));
    sx[m] = s;
    for (let k = 0; k < K; k++) xq[m * K8 + k] = roundHalfEven(Math.max(-128, Math.min(127, fround(x[m * K + k] * s))));
    for (let k = K; k < K8; k++) xq[m * K8 + k] = 0;
  }
}

/** out (M,K) = f32(xq / sx[m]): the dequantised activations (dW = dYᵀ·out). Rows [r0, r1). */
export function dequantizeActivations(out: NumArray, xq: NumArray, sx: NumArray, M: number, K: number, r0: number, r1: number): void {
  const K8 = activationRowBytes(K);
  for (let m = r0; m < r1; m++) {
    const s = sx[m];
    for (let k = 0; k < K; k++) out[m * K + k] = fround(xq[m * K8 + k] / s);
  }
}

/**
 * Clipped straight-through estimator for weights: `dw[n,k] += dwq[n,k]` where
 * `|f32(w[n,k]*s)| <= 1` (clamp(·,-1,1) is the identity there), `+= 0` elsewhere. Rows [r0, r1).
 */
export function steClippedWeights(dw: NumArray, dwq: NumArray, w: NumArray, scales: NumArray, N: number, K: number, group: number, r0: number, r1: number): void {
  for (let n = r0; n < r1; n++) {
    for (let k = 0; k < K; k++) {
      const i = n * K + k;
      const keep = Math.abs(fround(w[i] * scales[scaleIndex(n, k, K, group)])) <= 1;
      dw[i] = fround(dw[i] + (keep ? dwq[i] : 0));
    }
  }
}

/**
 * Clipped straight-through estimator for activations: `dx[m,k] += dxq[m,k]` where
 * `-128 <= f32(x[m,k]*sx[m]) <= 127`, `+= 0` elsewhere. Rows [r0, r1).
 */
export function steClippedActivations(dx: NumArray, dxq: NumArray, x: NumArray, sx: NumArray, M: number, K: number, r0: number, r1: number): void {
  for (let m = r0; m < r1; m++) {
    for (let k = 0; k < K; k++) {
      const i = m * K + k;
      const v = fround(x[i] * sx[m]);
      dx[i] = fround(dx[i] + (v >= -128 && v <= 127 ? dxq[i] : 0));
    }
  }
}
