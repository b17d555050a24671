// NF4 matmuls of QLoRA (src/peft/nf4.ts has the format), the reference of assembly/nf4.ts:
// W (N,K) is dequantised one row at a time (w = NF4[code] · (table[q]·absmax2[b/256] + offset),
// f32 as in the wasm kernel) and never stored whole. Bytes take one element slot each.
import type { Floats, Nf4Weight, Ptr } from '../backend.js';

const NF4 = Float32Array.from([
  -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635, -0.18477343022823334,
  -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
  0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
]);

/** Row n of deq(W) (K values) into `row`. */
function dequantRow(mem: Floats, w: Nf4Weight, n: number, K: number, row: Float64Array): void {
  const f = Math.fround;
  const off = f(w.offset);
  for (let k = 0; k < K; k += 64) {
    const b = (n * K + k) / 64;
    const s = f(f(f(mem[w.table + mem[w.absmaxCodes + b]!]!) * f(mem[w.absmaxScales + (b >> 8)]!)) + off);
    for (let j = 0; j < 64; j++) {
      const i = n * K + k + j;
      const byte = mem[w.codes + (i >> 1)]!;
      row[k + j] = f(NF4[(i & 1) === 0 ? byte >> 4 : byte & 15]! * s);
    }
  }
}

/** out (M,N) = x (M,K) · deq(W)ᵀ. */
export function nf4Forward(mem: Floats, out: Ptr, x: Ptr, w: Nf4Weight, M: number, N: number, K: number): void {
  const row = new Float64Array(K);
  for (let n = 0; n < N; n++) {
    dequantRow(mem, w, n, K, row);
    for (let m = 0; m < M; m++) {
      let acc = 0;
      for (let k = 0; k < K; k++) acc += mem[x + m * K + k]! * row[k]!;
      mem[out + m * N + n] = acc;
    }
  }
}

/** dx (M,K) += dy (M,N) · deq(W). */
export function nf4BackwardDx(mem: Floats, dx: Ptr, dy: Ptr, w: Nf4Weight, M: number, N: number, K: number): void {
  const row = new Float64Array(K);
  const acc = new Float64Array(M * K);
  for (let n = 0; n < N; n++) {
    dequantRow(mem, w, n, K, row);
    for (let m = 0; m < M; m++) {
      const g = mem[dy + m * N + n]!;
      if (g === 0) continue;
      for (let k = 0; k < K; k++) acc[m * K + k] += g * row[k]!;
    }
  }
  for (let i = 0; i < M * K; i++) mem[dx + i] = mem[dx + i]! + acc[i]!;
}
