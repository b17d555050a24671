/**
 * Packed ternary matmuls of the `js` backend (BitLinear forward and dX): the reference for
 * `assembly/ternary.ts`, bit for bit. Layouts as in `./quant.ts`: xq (M,K8) int8 rows with
 * K8 = `activationRowBytes(K)`; packed W (ceil(N/4), K), 2 bits a weight; scales by `group`.
 * Buffers are views (element 0 = the buffer's first element). No scratch is needed here; the
 * weight rows are decoded into a module-level buffer that grows and is reused (no garbage per call).
 */
import { activationRowBytes } from '../../quant/layout.js';
import { scaleIndex, ternaryUnpack, type NumArray } from './quant.js';

const fround = Math.fround;
let decoded = new Int8Array(0);

/** The ternary weights of packed (ceil(N/4), K) as (N,K) int8, in a reused buffer. */
function decodeAll(w: NumArray, N: number, K: number): Int8Array {
  if (decoded.length < N * K) decoded = new Int8Array(N * K);
  ternaryUnpack(decoded, w, N, K, 0, N);
  return decoded;
}

/** Weight-scale segment length along K: the whole row for per-tensor and per-channel scales. */
function segmentLength(K: number, group: number): number {
  return group >= K ? K : group;
}

/**
 * out (M,N) = rescaled `xq · Wqᵀ`: for each weight-scale segment g of the row (one for
 * per-tensor and per-channel scales), `acc = sum_k xq[m,k]*Wq[n,k]` exactly, then
 * `y += f32(acc) / f32(sx[m]*sw[n,g])` in f32 from `y = 0`. Rows [r0, r1).
 */
export function ternaryForward(out: NumArray, xq: NumArray, sx: NumArray, w: NumArray, sw: NumArray,
  M: number, N: number, K: number, group: number, r0: number, r1: number): void {
  void M;
  const K8 = activationRowBytes(K), wq = decodeAll(w, N, K), seg = segmentLength(K, group);
  for (let m = r0; m < r1; m++) {
    const xo = m * K8;
    for (let n = 0; n < N; n++) {
      const wo = n * K;
      let y = 0;
      for (let k0 = 0; k0 < K; k0 += seg) {
        let acc = 0;
        for (let k = k0; k < k0 + seg; k++) acc += xq[xo + k] * wq[wo + k];
        y = fround(y + fround(fround(acc) / fround(sx[m] * sw[scaleIndex(n, k0, K, group)])));
      }
      out[m * N + n] = y;
    }
  }
}

/** out (M,N) = `xq · Wqᵀ`, the exact integer accumulations (int32 range: |acc| <= 128*K). Rows [r0, r1). */
export function ternaryForwardI32(out: NumArray, xq: NumArray, w: NumArray, M: number, N: number, K: number, r0: number, r1: number): void {
  void M;
  const K8 = activationRowBytes(K), wq = decodeAll(w, N, K);
  for (let m = r0; m < r1; m++) {
    for (let n = 0; n < N; n++) {
      let acc = 0;
      for (let k = 0; k < K; k++) acc += xq[m * K8 + k] * wq[n * K + k];
      out[m * N + n] = acc;
    }
  }
}

let accRow = new Float32Array(0);

/**
 * dx (M,K) += dy (M,N) · (Wq/sw): `dx[m,k] += acc`, `acc = sum_n f32(dy[m,n] * f32(1/sw[n,g(k)])) * Wq[n,k]`
 * summed from 0 in n order in f32. Wq is ternary, so each term is added, subtracted or skipped
 * (a multiply by 0 is kept so that signed zeros match the wasm kernel). Rows [r0, r1).
 */
export function ternaryBackwardDx(dx: NumArray, dy: NumArray, w: NumArray, sw: NumArray,
  M: number, N: number, K: number, group: number, r0: number, r1: number): void {
  void M;
  const wq = decodeAll(w, N, K), seg = segmentLength(K, group);
  if (accRow.length < K) accRow = new Float32Array(K);
  const acc = accRow; // Float32Array: each store rounds to f32
  for (let m = r0; m < r1; m++) {
    acc.fill(0, 0, K);
    for (let n = 0; n < N; n++) {
      const d = dy[m * N + n];
      for (let k0 = 0; k0 < K; k0 += seg) {
        const t = fround(d * fround(1 / sw[scaleIndex(n, k0, K, group)]));
        const k1 = Math.min(k0 + seg, K);
        for (let k = k0; k < k1; k++) acc[k] += wq[n * K + k] * t;
      }
    }
    for (let k = 0; k < K; k++) dx[m * K + k] = fround(dx[m * K + k] + acc[k]);
  }
}
