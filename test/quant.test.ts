// BitNet b1.58 quantizers: the wasm kernels (build/kernels.wasm, instantiated directly) against
// the js reference (src/backend/js/quant.ts), bit for bit: int8 / ternary codes exactly, scales
// as the same f32 bits. Shapes include K and N that are not multiples of 4, 8 or 16.
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import * as js from '../src/backend/js/quant.js';
import {
  activationRowBytes, packedTernaryBytes, packTernaryI2, packTrits5, QuantLayoutError, quantizeTernaryWeights,
  unpackTernaryI2, unpackTrits5, weightScaleCount, weightScaleGroup,
} from '../src/quant/index.js';
import { Rng } from '../src/util/rng.js';

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
  i8(p: number, n: number): Int8Array { return new Int8Array(this.memory.buffer, p, n); }
  u8(p: number, n: number): Uint8Array { return new Uint8Array(this.memory.buffer, p, n); }
  put(data: Float32Array): number {
    const p = this.alloc(data.length * 4);
    this.f32(p, data.length).set(data);
    return p;
  }
}

function normals(rng: Rng, n: number, std = 1): Float32Array {
  const a = new Float32Array(n);
  rng.fillNormal(a, 0, std);
  return a;
}

const bits = (a: Float32Array): Uint32Array => new Uint32Array(a.buffer.slice(a.byteOffset, a.byteOffset + a.byteLength));

let W: Kernels;
beforeAll(() => { W = Kernels.load(); });

describe('roundHalfEven (the one rounding rule)', () => {
  it('rounds ties to the even integer, like torch.round and f32.nearest', () => {
    const v = [0.5, 1.5, 2.5, 3.5, -0.5, -1.5, -2.5, 126.5, 127.5, 0.49999997, 2.5000002, -7];
    expect(v.map(js.roundHalfEven)).toEqual([0, 2, 2, 4, -0, -2, -2, 126, 128, 0, 3, -7]);
  });

  it('quantises activation ties half to even in wasm and js alike (SIMD body and scalar tail)', () => {
    W.reset();
    // max |x| = 127 gives s = 1, so x*s = x: the ties reach round() unchanged; K = 21 puts
    // ties both in the 16-wide SIMD part and in the scalar tail of the row
    const ties = [0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 125.5, 126.5, -126.5, 3.5];
    const row = Float32Array.from([...ties, 127, 0, 1, -1, 4.5, 5.5, ...ties.slice(0, 5)]);
    const even = [0, 2, 2, 0, -2, -2, 126, 126, -126, 4];
    const want = [...even, 127, 0, 1, -1, 4, 6, ...even.slice(0, 5)];
    const K = row.length, K8 = activationRowBytes(K);
    const x = W.put(row), xq = W.alloc(K8), sx = W.alloc(4);
    W.k.quantize_activations(xq, sx, x, 1, K, 0, 1);
    expect(W.f32(sx, 1)[0]).toBe(1);
    expect(Array.from(W.i8(xq, K))).toEqual(want);
    const jq = new Int8Array(K8), js1 = new Float32Array(1);
    js.quantizeActivations(jq, js1, row, 1, K, 0, 1);
    expect(Array.from(jq.subarray(0, K))).toEqual(want);
  });

  it('quantises weight ties half to even and clamps to [-1, 1] (SIMD body and scalar tail)', () => {
    W.reset();
    // scale 2: w*s = 0.5 -> 0, -0.5 -> 0, 1.5 -> 2 -> 1, -1.5 -> -2 -> -1, 0.2 -> 0, 20 -> 1
    const base = [0.25, -0.25, 0.75, -0.75, 0.375, 0.1, 10, -10];
    const wantRow = [0, 0, 1, -1, 1, 0, 1, -1];
    const N = 2, K = 20;
    const w = Float32Array.from({ length: N * K }, (_, i) => base[i % 8]);
    const want = Array.from({ length: N * K }, (_, i) => wantRow[i % 8]);
    const scales = W.put(Float32Array.of(2)), wp = W.put(w), packed = W.alloc(K), wq = W.alloc(N * K);
    W.k.ternary_pack(packed, wp, scales, N, K, N * K, 0, 1);
    W.k.ternary_unpack(wq, packed, N, K, 0, N);
    expect(Array.from(W.i8(wq, N * K))).toEqual(want);
    const jp = new Uint8Array(K);
    js.ternaryPack(jp, w, Float32Array.of(2), N, K, N * K, 0, 1);
    expect(Array.from(jp)).toEqual(Array.from(W.u8(packed, K)));
  });
});

describe('absmax int8 activations per token', () => {
  const shapes: [number, number][] = [[1, 1], [3, 7], [5, 13], [4, 16], [9, 100], [2, 129], [768 / 32, 128]];
  it.each(shapes)('wasm equals js exactly for x (%i, %i): int8 values, zero padding, scale bits', (M, K) => {
    W.reset();
    const rng = new Rng(M * 1000 + K);
    const x = normals(rng, M * K, 2);
    x.fill(0, 0, Math.min(K, x.length)); // row 0 all zeros: scale clamps at 127 / 1e-5
    if (M > 2) x.fill(3e-6, 2 * K, 3 * K); // row 2 below the 1e-5 clamp
    const K8 = activationRowBytes(K);
    const xp = W.put(x), xq = W.alloc(M * K8), sx = W.alloc(M * 4);
    W.i8(xq, M * K8).fill(99); // padding must be overwritten
    W.k.quantize_activations(xq, sx, xp, M, K, 0, M);
    const jq = new Int8Array(M * K8), js1 = new Float32Array(M);
    js.quantizeActivations(jq, js1, x, M, K, 0, M);
    expect(Array.from(W.i8(xq, M * K8))).toEqual(Array.from(jq));
    expect(bits(W.f32(sx, M))).toEqual(bits(js1));
    expect(js1[0]).toBe(Math.fround(127 / Math.fround(1e-5)));
    for (let m = 0; m < M; m++) for (let k = K; k < K8; k++) expect(jq[m * K8 + k]).toBe(0);
    // the definition, independently: per row max |q| is 127 unless the row is (nearly) zero
    for (let m = 1; m < M; m++) {
      if (m === 2 && M > 2) continue;
      expect(Math.max(...Array.from(jq.subarray(m * K8, m * K8 + K), Math.abs))).toBe(127);
    }
  });

  it('gives the same rows for any split of the row range', () => {
    W.reset();
    const M = 11, K = 37, K8 = activationRowBytes(K);
    const x = W.put(normals(new Rng(7), M * K)), a = W.alloc(M * K8), b = W.alloc(M * K8), sa = W.alloc(M * 4), sb = W.alloc(M * 4);
    W.k.quantize_activations(a, sa, x, M, K, 0, M);
    W.k.quantize_activations(b, sb, x, M, K, 0, 4);
    W.k.quantize_activations(b, sb, x, M, K, 4, M);
    expect(W.u8(b, M * K8)).toEqual(W.u8(a, M * K8));
    expect(bits(W.f32(sb, M))).toEqual(bits(W.f32(sa, M)));
  });

  it('dequantises to xq / sx, the activations of dW = dYᵀ·(xq/sx)', () => {
    W.reset();
    const M = 5, K = 21, K8 = activationRowBytes(K);
    const xh = normals(new Rng(3), M * K);
    const x = W.put(xh), xq = W.alloc(M * K8), sx = W.alloc(M * 4), out = W.alloc(M * K * 4);
    W.k.quantize_activations(xq, sx, x, M, K, 0, M);
    W.k.dequantize_activations(out, xq, sx, M, K, 0, M);
    const jo = new Float32Array(M * K);
    js.dequantizeActivations(jo, W.i8(xq, M * K8), W.f32(sx, M), M, K, 0, M);
    expect(bits(W.f32(out, M * K))).toEqual(bits(jo));
    // within half a quantisation step of x
    for (let m = 0; m < M; m++) {
      const step = 1 / W.f32(sx, M)[m];
      for (let k = 0; k < K; k++) expect(Math.abs(jo[m * K + k] - xh[m * K + k])).toBeLessThanOrEqual(0.5 * step * (1 + 1e-6));
    }
  });
});

describe('absmean ternary weights', () => {
  const cases: [string, number, number, (N: number, K: number) => number][] = [
    ['per tensor', 37, 251, (N, K) => weightScaleGroup(N, K, 'tensor')], // 9287 elements: three 4096-chunks
    ['per channel', 13, 33, (N, K) => weightScaleGroup(N, K, 'channel')],
    ['per group of 16', 6, 48, (N, K) => weightScaleGroup(N, K, 'group', 16)],
    ['per group of 3', 5, 9, (N, K) => weightScaleGroup(N, K, 'group', 3)],
  ];
  it.each(cases)('scales agree bit for bit between wasm and js, %s (W %i x %i)', (_, N, K, g) => {
    W.reset();
    const group = g(N, K), count = weightScaleCount(N, K, group);
    const w = normals(new Rng(N + K), N * K, 0.02);
    const wp = W.put(w), s = W.alloc(count * 4);
    W.k.absmean_scales(s, wp, N * K, group, 0, count);
    const jsS = new Float32Array(count);
    js.absmeanScales(jsS, w, N * K, group, 0, count);
    expect(bits(W.f32(s, count))).toEqual(bits(jsS));
    // and they are 1/mean|W| of each group (f64 mean, one f32 rounding)
    for (let i = 0; i < count; i++) {
      let sum = 0;
      for (let j = i * group; j < (i + 1) * group; j++) sum += Math.abs(w[j]);
      expect(Math.abs(jsS[i] - group / sum) / (group / sum)).toBeLessThan(1e-7);
    }
  });

  it('clamps the mean at 1e-5 (all-zero weights get scale 1e5 and quantise to 0)', () => {
    W.reset();
    const wp = W.put(new Float32Array(12)), s = W.alloc(4);
    W.k.absmean_scales(s, wp, 12, 12, 0, 1);
    expect(W.f32(s, 1)[0]).toBe(Math.fround(1e5));
  });

  const packShapes: [number, number, string][] = [
    [1, 1, 'tensor'], [5, 3, 'tensor'], [7, 17, 'channel'], [13, 33, 'tensor'], [8, 64, 'group'], [384, 128, 'tensor'],
  ];
  it.each(packShapes)('packs W (%i, %i) with %s scales in one pass, byte-identical to js, and unpacks to clamp(round(W*s))', (N, K, gran) => {
    W.reset();
    const group = weightScaleGroup(N, K, gran as 'tensor', 16);
    const count = weightScaleCount(N, K, group), R = Math.ceil(N / 4);
    const w = normals(new Rng(N * 7 + K), N * K, 0.05);
    const wp = W.put(w), s = W.alloc(count * 4), packed = W.alloc(R * K), wq = W.alloc(N * K), deq = W.alloc(N * K * 4);
    W.k.absmean_scales(s, wp, N * K, group, 0, count);
    W.u8(packed, R * K).fill(0xff);
    W.k.ternary_pack(packed, wp, s, N, K, group, 0, R);
    const ref = quantizeTernaryWeights(w, N, K, group);
    expect(Array.from(W.u8(packed, R * K))).toEqual(Array.from(ref.packed));
    W.k.ternary_unpack(wq, packed, N, K, 0, N);
    const sc = W.f32(s, count);
    const want = Array.from(w, (v, i) => {
      const n = Math.floor(i / K), q = js.roundHalfEven(Math.fround(v * sc[js.scaleIndex(n, i % K, K, group)]));
      return Math.max(-1, Math.min(1, q)) + 0;
    });
    expect(Array.from(W.i8(wq, N * K))).toEqual(want);
    expect(Array.from(unpackTernaryI2(ref.packed, N, K))).toEqual(want);
    // padding rows (n >= N in the last packed row) hold code 1 = weight 0
    for (let n = N; n < 4 * R; n++) {
      for (let k = 0; k < K; k++) expect((W.u8(packed, R * K)[(n % R) * K + k] >> (2 * Math.floor(n / R))) & 3).toBe(1);
    }
    // dequantised weights: Wq / s in f32, wasm == js
    W.k.ternary_dequantize(deq, packed, s, N, K, group, 0, N);
    const jd = new Float32Array(N * K);
    js.ternaryDequantize(jd, ref.packed, ref.scales, N, K, group, 0, N);
    expect(bits(W.f32(deq, N * K))).toEqual(bits(jd));
  });

  it('uses the Hugging Face bit order: byte (r,k) holds rows r, r+R, r+2R, r+3R in bits 0-1, 2-3, 4-5, 6-7', () => {
    // N = 6 -> R = 2: byte (0,0) holds rows 0, 2, 4 and padding row 6
    const wq = [1, -1, 0, 1, -1, 0]; // W (6, 1)
    const p = packTernaryI2(wq, 6, 1);
    expect(p.length).toBe(packedTernaryBytes(6, 1));
    expect(p[0]).toBe(2 | (1 << 2) | (0 << 4) | (1 << 6)); // rows 0, 2, 4, pad
    expect(p[1]).toBe(0 | (2 << 2) | (1 << 4) | (1 << 6)); // rows 1, 3, 5, pad
    W.reset();
    const wp = W.put(Float32Array.from(wq)), s = W.put(Float32Array.of(1)), packed = W.alloc(2);
    W.k.ternary_pack(packed, wp, s, 6, 1, 6, 0, 2);
    expect(Array.from(W.u8(packed, 2))).toEqual(Array.from(p));
  });

  it('packs the same bytes for any split of the packed-row range', () => {
    W.reset();
    const N = 30, K = 45, R = 8;
    const wp = W.put(normals(new Rng(5), N * K)), s = W.alloc(4), a = W.alloc(R * K), b = W.alloc(R * K);
    W.k.absmean_scales(s, wp, N * K, N * K, 0, 1);
    W.k.ternary_pack(a, wp, s, N, K, N * K, 0, R);
    W.k.ternary_pack(b, wp, s, N, K, N * K, 0, 3);
    W.k.ternary_pack(b, wp, s, N, K, N * K, 3, R);
    expect(W.u8(b, R * K)).toEqual(W.u8(a, R * K));
  });
});

describe('clipped straight-through estimator', () => {
  it('passes weight gradients only where |W*s| <= 1, the same in wasm and js', () => {
    W.reset();
    const N = 3, K = 7; // scale 2: boundary at |w| = 0.5
    const w = Float32Array.from([0.5, -0.5, 0.50000006, -0.50000006, 0.1, 3, -3, ...Array.from({ length: 14 }, (_, i) => (i - 7) * 0.09)]);
    const dwq = Float32Array.from({ length: N * K }, (_, i) => i + 1);
    const dw0 = Float32Array.from({ length: N * K }, (_, i) => 0.25 * i);
    const wp = W.put(w), s = W.put(Float32Array.of(2)), g = W.put(dwq), dw = W.put(dw0);
    W.k.ste_clipped_weights(dw, g, wp, s, N, K, N * K, 0, N);
    const jd = dw0.slice();
    js.steClippedWeights(jd, dwq, w, Float32Array.of(2), N, K, N * K, 0, N);
    expect(bits(W.f32(dw, N * K))).toEqual(bits(jd));
    const passed = Array.from(jd, (v, i) => v !== dw0[i]);
    expect(passed.slice(0, 7)).toEqual([true, true, false, false, true, false, false]);
    for (let i = 7; i < N * K; i++) expect(passed[i]).toBe(Math.abs(w[i] * 2) <= 1);
  });

  it('passes activation gradients only where -128 <= x*s <= 127, the same in wasm and js', () => {
    W.reset();
    const M = 2, K = 6;
    const x = Float32Array.from([-128, -128.5, 127, 127.5, 0, 50, 1, -1, 2, -2, 0.5, 0.25]);
    const sx = Float32Array.of(1, 100); // row 1 with a foreign scale: |x*s| > 127 clips
    const dxq = Float32Array.from({ length: M * K }, (_, i) => i + 1);
    const xp = W.put(x), sp = W.put(sx), g = W.put(dxq), dx = W.put(new Float32Array(M * K));
    W.k.ste_clipped_activations(dx, g, xp, sp, M, K, 0, M);
    const jd = new Float32Array(M * K);
    js.steClippedActivations(jd, dxq, x, sx, M, K, 0, M);
    expect(bits(W.f32(dx, M * K))).toEqual(bits(jd));
    expect(Array.from(jd)).toEqual([1, 0, 3, 0, 5, 6, 7, 8, 0, 0, 11, 12]);
  });
});

describe('storage formats', () => {
  it('decodes every 5-trit byte back to its trits (TQ1_0 byte code)', () => {
    for (let q = 0; q < 243; q++) {
      const t = [Math.floor(q / 81) % 3, Math.floor(q / 27) % 3, Math.floor(q / 9) % 3, Math.floor(q / 3) % 3, q % 3];
      const bytes = packTrits5(t.map((v) => v - 1));
      expect(bytes.length).toBe(1);
      expect(bytes[0]).toBe(Math.ceil((q * 256) / 243));
      expect(Array.from(unpackTrits5(bytes, 5))).toEqual(t.map((v) => v - 1));
    }
  });

  it('round-trips 5-trit packing for lengths that are not multiples of 5 (1.6 bits a weight)', () => {
    const rng = new Rng(11);
    for (const n of [1, 4, 5, 6, 99, 1001]) {
      const wq = Int8Array.from({ length: n }, () => rng.int(3) - 1);
      const bytes = packTrits5(wq);
      expect(bytes.length).toBe(Math.ceil(n / 5));
      expect(unpackTrits5(bytes, n)).toEqual(wq);
    }
  });

  it('round-trips 2-bit packing from int8 for N not a multiple of 4', () => {
    const rng = new Rng(12);
    for (const [N, K] of [[1, 1], [3, 5], [9, 2], [16, 16]]) {
      const wq = Int8Array.from({ length: N * K }, () => rng.int(3) - 1);
      expect(unpackTernaryI2(packTernaryI2(wq, N, K), N, K)).toEqual(wq);
    }
  });

  it('rejects non-ternary values and impossible scale groups with a message that names the fix', () => {
    expect(() => packTernaryI2([2], 1, 1)).toThrow(/element 0 is 2, expected -1, 0 or 1/);
    expect(() => packTrits5([0, -2])).toThrow(QuantLayoutError);
    expect(() => weightScaleGroup(4, 10, 'group', 3)).toThrow(/positive divisor of K = 10/);
    expect(() => weightScaleCount(4, 8, 3)).toThrow(/must be 32 \(per tensor\), 8 \(per channel\)/);
  });
});
