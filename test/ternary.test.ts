// Packed ternary matmuls of BitLinear: the wasm kernels (build/kernels.wasm, instantiated
// directly) against independent references and the js twins (src/backend/js/ternary.ts).
//
// Tolerances, u = 2^-24 (f32 unit roundoff):
//   forward integer accumulation: exact (int32 sums equal the sums of xq*Wq computed here);
//   forward after the rescale, per tensor / per channel: |y - ref| <= 2^-22 |ref|, where ref is
//     the f64 fake-quant product sum_k (xq/sx)(Wq/sw) (two f32 roundings: sx*sw and the division);
//   forward, per group: |y - ref| <= (G+2) u sum_g |term_g| (f32 sum over the K/G segments);
//   dX: |dx - ref| <= (N+2) u (sum_n |dy Wq/sw| + |dx0|) (f32 recursive summation over N);
//   wasm == js bit for bit everywhere, and any split of the row range is bit-identical.
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import * as jq from '../src/backend/js/quant.js';
import * as jt from '../src/backend/js/ternary.js';
import {
  activationRowBytes, packedTernaryBytes, quantizeTernaryWeights, ternaryBackwardDxScratchBytes,
  ternaryForwardScratchBytes, unpackTernaryI2, weightScaleCount, weightScaleGroup,
} from '../src/quant/index.js';
import { Rng } from '../src/util/rng.js';

const U = 2 ** -24;

/** build/kernels.wasm on its own memory, with a bump allocator over byte offsets. */
class Kernels {
  private top = 1 << 16;
  constructor(readonly k: Record<string, (...a: number[]) => void>, readonly memory: WebAssembly.Memory) {}
  static load(): Kernels {
    const module = new WebAssembly.Module(readFileSync(new URL('../build/kernels.wasm', import.meta.url)));
    const memory = new WebAssembly.Memory({ initial: 64 });
    const env: Record<string, unknown> = {};
    for (const imp of WebAssembly.Module.imports(module)) {
      env[imp.name] = imp.kind === 'memory' ? memory : () => { throw new Error(`wasm import ${imp.name} called`); };
    }
    const instance = new WebAssembly.Instance(module, { env } as WebAssembly.Imports);
    return new Kernels(instance.exports as unknown as Record<string, (...a: number[]) => void>, memory);
  }
  reset(): void { this.top = 1 << 16; }
  alloc(bytes: number): number {
    const p = this.top;
    this.top += (bytes + 63) & ~63;
    const need = Math.ceil(this.top / 65536) - this.memory.buffer.byteLength / 65536;
    if (need > 0) this.memory.grow(need);
    return p;
  }
  f32(p: number, n: number): Float32Array { return new Float32Array(this.memory.buffer, p, n); }
  i32(p: number, n: number): Int32Array { return new Int32Array(this.memory.buffer, p, n); }
  i8(p: number, n: number): Int8Array { return new Int8Array(this.memory.buffer, p, n); }
  u8(p: number, n: number): Uint8Array { return new Uint8Array(this.memory.buffer, p, n); }
  put(data: Float32Array | Uint8Array): number {
    const p = this.alloc(data.byteLength);
    new Uint8Array(this.memory.buffer, p, data.byteLength).set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    return p;
  }
}

const bits = (a: Float32Array): Uint32Array => new Uint32Array(a.buffer.slice(a.byteOffset, a.byteOffset + a.byteLength));

let W: Kernels;
beforeAll(() => { W = Kernels.load(); });

/** A BitLinear layer's operands in wasm memory: x (M,K) quantised, W (N,K) packed with `group` scales. */
function layer(M: number, N: number, K: number, group: number, seed: number) {
  W.reset();
  const rng = new Rng(seed);
  const x = new Float32Array(M * K), w = new Float32Array(N * K);
  rng.fillNormal(x, 0, 1);
  rng.fillNormal(w, 0, 0.02);
  const K8 = activationRowBytes(K);
  const xq = W.alloc(M * K8), sx = W.alloc(M * 4);
  W.k.quantize_activations(xq, sx, W.put(x), M, K, 0, M);
  const q = quantizeTernaryWeights(w, N, K, group);
  const wp = W.put(q.packed), sw = W.put(q.scales);
  const scratch = W.alloc(Math.max(ternaryForwardScratchBytes(K), ternaryBackwardDxScratchBytes(N)));
  const xqv = Int8Array.from(W.i8(xq, M * K8)), sxv = Float32Array.from(W.f32(sx, M));
  const wq = unpackTernaryI2(q.packed, N, K);
  return { M, N, K, K8, group, xq, sx, wp, sw, scratch, xqv, sxv, wq, q, rng };
}

type Layer = ReturnType<typeof layer>;

function forward(L: Layer, r0 = 0, r1 = L.M, out = W.alloc(L.M * L.N * 4)): number {
  W.k.ternary_forward(out, L.xq, L.sx, L.wp, L.sw, L.scratch, L.M, L.N, L.K, L.group, r0, r1);
  return out;
}

describe('packed int8 x ternary forward', () => {
  const shapes: [number, number, number][] = [[1, 1, 1], [3, 5, 13], [7, 6, 37], [4, 9, 130], [2, 4, 16], [33, 17, 100], [96, 128, 512]];

  it.each(shapes)('accumulates xq·Wqᵀ exactly in int32 (M=%i, N=%i, K=%i)', (M, N, K) => {
    const L = layer(M, N, K, N * K, M * 31 + N * 7 + K);
    const out = W.alloc(M * N * 4);
    W.k.ternary_forward_i32(out, L.xq, L.wp, L.scratch, M, N, K, 0, M);
    const want = new Int32Array(M * N);
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++) {
        let s = 0;
        for (let k = 0; k < K; k++) s += L.xqv[m * L.K8 + k] * L.wq[n * K + k];
        want[m * N + n] = s;
      }
    }
    expect(W.i32(out, M * N)).toEqual(want);
    const js = new Int32Array(M * N);
    jt.ternaryForwardI32(js, L.xqv, L.q.packed, M, N, K, 0, M);
    expect(js).toEqual(want);
  });

  it.each(shapes)('rescales once per row: out = f32(acc) / f32(sx*sw), bit-identical to js (M=%i, N=%i, K=%i)', (M, N, K) => {
    const L = layer(M, N, K, N * K, M + N + K);
    const acc = W.alloc(M * N * 4);
    W.k.ternary_forward_i32(acc, L.xq, L.wp, L.scratch, M, N, K, 0, M);
    const out = W.f32(forward(L), M * N);
    const a = W.i32(acc, M * N), sw = L.q.scales[0];
    const want = Float32Array.from(a, (v, i) => Math.fround(Math.fround(v) / Math.fround(L.sxv[Math.floor(i / N)] * sw)));
    expect(bits(out)).toEqual(bits(want));
    const js = new Float32Array(M * N);
    jt.ternaryForward(js, L.xqv, L.sxv, L.q.packed, L.q.scales, M, N, K, N * K, 0, M);
    expect(bits(js)).toEqual(bits(want));
  });

  const grans: [string, number, number, number, (N: number, K: number) => number][] = [
    ['per tensor', 9, 10, 48, (N, K) => N * K],
    ['per channel', 9, 10, 45, (N, K) => K],
    ['per group of 16', 9, 10, 64, (N, K) => weightScaleGroup(N, K, 'group', 16)],
    ['per group of 32', 8, 12, 128, (N, K) => weightScaleGroup(N, K, 'group', 32)],
  ];
  it.each(grans)('equals the f64 fake-quant reference within the stated tolerance, %s scales', (gran, M, N, K, g) => {
    const group = g(N, K), L = layer(M, N, K, group, K * 3 + M);
    const out = W.f32(forward(L), M * N);
    const js = new Float32Array(M * N);
    jt.ternaryForward(js, L.xqv, L.sxv, L.q.packed, L.q.scales, M, N, K, group, 0, M);
    expect(bits(out)).toEqual(bits(js));
    expect(weightScaleCount(N, K, group)).toBe(L.q.scales.length);
    const seg = group >= K ? K : group;
    let worst = 0;
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++) {
        let ref = 0, mag = 0;
        for (let k0 = 0; k0 < K; k0 += seg) {
          let t = 0;
          for (let k = k0; k < k0 + seg; k++) t += (L.xqv[m * L.K8 + k] / L.sxv[m]) * (L.wq[n * K + k] / L.q.scales[jq.scaleIndex(n, k0, K, group)]);
          ref += t;
          mag += Math.abs(t);
        }
        const err = Math.abs(out[m * N + n] - ref);
        const tol = gran.startsWith('per group') ? (K / seg + 2) * U * mag : 4 * U * Math.abs(ref);
        expect(err).toBeLessThanOrEqual(tol);
        worst = Math.max(worst, err / (mag || 1));
      }
    }
    expect(worst).toBeLessThan(1e-6);
  });

  it('gives bit-identical rows for any split of the row range', () => {
    const L = layer(29, 10, 70, 70, 4);
    const whole = W.f32(forward(L), 29 * 10).slice();
    const parts = W.alloc(29 * 10 * 4);
    for (const [r0, r1] of [[0, 5], [5, 6], [6, 17], [17, 29]]) forward(L, r0, r1, parts);
    expect(bits(W.f32(parts, 29 * 10))).toEqual(bits(whole));
  });

  it('ignores the padding bytes of the int8 rows (K = 13, rows of 16)', () => {
    const L = layer(5, 6, 13, 78, 8);
    const a = W.f32(forward(L), 30).slice();
    for (let m = 0; m < 5; m++) for (let k = 13; k < 16; k++) W.i8(L.xq, 5 * 16)[m * 16 + k] = 100 - 7 * k;
    expect(bits(W.f32(forward(L), 30))).toEqual(bits(a));
  });

  it('runs the reference shape (768 x 128 -> 384) bit-identical to js', () => {
    const M = 768, N = 384, K = 128, L = layer(M, N, K, N * K, 1);
    const out = W.f32(forward(L), M * N);
    const js = new Float32Array(M * N);
    jt.ternaryForward(js, L.xqv, L.sxv, L.q.packed, L.q.scales, M, N, K, N * K, 0, M);
    expect(bits(out)).toEqual(bits(js));
  });
});

describe('backward dX = dY · (Wq/sw), adds and subtracts of dY', () => {
  const cases: [string, number, number, number, (N: number, K: number) => number][] = [
    ['per tensor', 7, 9, 37, (N, K) => N * K],
    ['per tensor', 300, 5, 16, (N, K) => N * K], // two 256-row blocks
    ['per channel', 4, 6, 50, (N, K) => K],
    ['per group of 16', 5, 3, 64, (N, K) => weightScaleGroup(N, K, 'group', 16)],
    ['per tensor', 12, 128, 128, (N, K) => N * K],
  ];
  it.each(cases)('accumulates into dx like js bit for bit and within (N+2)u of the f64 reference, %s (M=%i, N=%i, K=%i)', (_, M, N, K, g) => {
    const group = g(N, K), L = layer(M, N, K, group, M * N + K);
    const dy = new Float32Array(M * N), dx0 = new Float32Array(M * K);
    L.rng.fillNormal(dy, 0, 1);
    L.rng.fillNormal(dx0, 0, 0.1);
    const dyp = W.put(dy), dxp = W.put(dx0);
    W.k.ternary_backward_dx(dxp, dyp, L.wp, L.sw, L.scratch, M, N, K, group, 0, M);
    const dx = W.f32(dxp, M * K);
    const js = dx0.slice();
    jt.ternaryBackwardDx(js, dy, L.q.packed, L.q.scales, M, N, K, group, 0, M);
    expect(bits(dx)).toEqual(bits(js));
    for (let m = 0; m < M; m++) {
      for (let k = 0; k < K; k++) {
        let ref = dx0[m * K + k], mag = Math.abs(ref);
        for (let n = 0; n < N; n++) {
          const t = (dy[m * N + n] * L.wq[n * K + k]) / L.q.scales[jq.scaleIndex(n, k, K, group)];
          ref += t;
          mag += Math.abs(t);
        }
        expect(Math.abs(dx[m * K + k] - ref)).toBeLessThanOrEqual((N + 2) * U * mag * 1.01);
      }
    }
  });

  it('gives bit-identical rows for any split of the row range', () => {
    const M = 21, N = 11, K = 40, L = layer(M, N, K, N * K, 9);
    const dy = new Float32Array(M * N);
    L.rng.fillNormal(dy, 0, 1);
    const dyp = W.put(dy), a = W.put(new Float32Array(M * K)), b = W.put(new Float32Array(M * K));
    W.k.ternary_backward_dx(a, dyp, L.wp, L.sw, L.scratch, M, N, K, N * K, 0, M);
    for (const [r0, r1] of [[0, 1], [1, 8], [8, 21]]) W.k.ternary_backward_dx(b, dyp, L.wp, L.sw, L.scratch, M, N, K, N * K, r0, r1);
    expect(bits(W.f32(b, M * K))).toEqual(bits(W.f32(a, M * K)));
  });
});

describe('backward dW = dYᵀ · (xq/sx) with gemm_tn over dequantised activations', () => {
  it('matches the f64 reference within (M+2)u', () => {
    const M = 19, N = 6, K = 23, L = layer(M, N, K, N * K, 10);
    const dy = new Float32Array(M * N);
    L.rng.fillNormal(dy, 0, 1);
    const dyp = W.put(dy), xd = W.alloc(M * K * 4), dw = W.put(new Float32Array(N * K));
    W.k.dequantize_activations(xd, L.xq, L.sx, M, K, 0, M);
    W.k.gemm_tn(dw, dyp, xd, N, K, M, 1, 0, N); // dW (N,K) += dY (M,N)ᵀ · Xdq (M,K)
    const got = W.f32(dw, N * K);
    for (let n = 0; n < N; n++) {
      for (let k = 0; k < K; k++) {
        let ref = 0, mag = 0;
        for (let m = 0; m < M; m++) {
          const t = dy[m * N + n] * (L.xqv[m * L.K8 + k] / L.sxv[m]);
          ref += t;
          mag += Math.abs(t);
        }
        expect(Math.abs(got[n * K + k] - ref)).toBeLessThanOrEqual((M + 2) * U * mag * 1.01 + 1e-30);
      }
    }
    expect(packedTernaryBytes(N, K)).toBe(L.q.packed.length);
  });
});
