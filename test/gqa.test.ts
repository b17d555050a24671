// Grouped-query attention (the LLaMA / BitNet families): the kernels on both backends against
// a direct f64 definition (query head h attends with kv head floor(h / (NH/NKV)), HF's
// repeat_kv), gradients vs central finite differences, bit-identical results for any split of
// the work and thread count, and the GPT's fused-qkv attention unchanged bit for bit.
//
// Tolerances: js f64 vs the definition 1e-12; wasm (f32) vs js 2e-5 relative to the largest
// |value|; finite differences (f64, h = 1e-5) 1e-6 relative, as in grad.test.ts.
import { afterAll, describe, expect, it } from 'vitest';
import type { Backend } from '../src/backend/backend.js';
import { JsBackend } from '../src/backend/js/index.js';
import { WasmBackend, createWasmBackend } from '../src/backend/wasm/index.js';
import { attention, groupedAttention, mul, rope, ropeHeads, sum } from '../src/autograd/index.js';
import { Heap } from '../src/tensor/heap.js';
import type { Tensor } from '../src/tensor/tensor.js';
import { RotaryEmbedding } from '../src/nn/rope.js';
import { Rng } from '../src/util/rng.js';

const backends: Backend[] = [];
afterAll(() => backends.forEach((b) => b.dispose()));
const wasm = (splits = 1) => {
  const be = WasmBackend.createSync({ splits });
  backends.push(be);
  return be;
};

function randn(rng: Rng, n: number, std = 1): Float64Array {
  const a = new Float64Array(n);
  rng.fillNormal(a, 0, std);
  return a;
}
const f32 = (a: Float64Array) => Float64Array.from(a, (v) => Math.fround(v));
const maxAbs = (a: ArrayLike<number>) => Array.from(a).reduce((m, v) => Math.max(m, Math.abs(v)), 0);
const relErr = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let e = 0;
  for (let i = 0; i < b.length; i++) e = Math.max(e, Math.abs(a[i]! - b[i]!));
  return e / Math.max(1e-30, maxAbs(b));
};

/** Causal GQA from its definition, f64: q (B,T,NH*hs), k, v (B,T,NKV*hs) → (B,T,NH*hs). */
function referenceGqa(q: Float64Array, k: Float64Array, v: Float64Array, B: number, T: number, NH: number, NKV: number, hs: number): Float64Array {
  const out = new Float64Array(B * T * NH * hs);
  for (let b = 0; b < B; b++) for (let h = 0; h < NH; h++) {
    const g = Math.floor(h / (NH / NKV));
    for (let t = 0; t < T; t++) {
      const s: number[] = [];
      for (let u = 0; u <= t; u++) {
        let d = 0;
        for (let i = 0; i < hs; i++) d += q[(b * T + t) * NH * hs + h * hs + i]! * k[(b * T + u) * NKV * hs + g * hs + i]!;
        s.push(d / Math.sqrt(hs));
      }
      const m = Math.max(...s);
      const e = s.map((x) => Math.exp(x - m));
      const z = e.reduce((a, c) => a + c, 0);
      for (let i = 0; i < hs; i++) {
        let acc = 0;
        for (let u = 0; u <= t; u++) acc += (e[u]! / z) * v[(b * T + u) * NKV * hs + g * hs + i]!;
        out[(b * T + t) * NH * hs + h * hs + i] = acc;
      }
    }
  }
  return out;
}

interface GqaRun { out: Float64Array; dq: Float64Array; dk: Float64Array; dv: Float64Array }

/** Forward and backward of `groupedAttention` on `heap` with upstream gradient R. */
function runGqa(heap: Heap, q: Float64Array, k: Float64Array, v: Float64Array, R: Float64Array, B: number, T: number, NH: number, NKV: number, hs: number): GqaRun {
  const tq = heap.fromArray(q, [B, T, NH * hs], { requiresGrad: true });
  const tk = heap.fromArray(k, [B, T, NKV * hs], { requiresGrad: true });
  const tv = heap.fromArray(v, [B, T, NKV * hs], { requiresGrad: true });
  const out = groupedAttention(tq, tk, tv, NH, NKV);
  const loss = sum(mul(out, heap.fromArray(R, out.shape)));
  loss.backward();
  const read = (t: Tensor, grad = false) => Float64Array.from(heap.backend.readSync(grad ? t.gradPtr : t.offset, t.size));
  const r = { out: read(out), dq: read(tq, true), dk: read(tk, true), dv: read(tv, true) };
  heap.resetArena();
  return r;
}

const shapes = [
  { B: 2, T: 7, NH: 6, NKV: 2, hs: 5 },
  { B: 1, T: 9, NH: 4, NKV: 1, hs: 12 },
  { B: 3, T: 5, NH: 3, NKV: 3, hs: 7 },
];

describe('grouped-query attention kernels', () => {
  for (const { B, T, NH, NKV, hs } of shapes) {
    it(`js (f64) equals the definition, and wasm equals js, B ${B} T ${T} NH ${NH} NKV ${NKV} hs ${hs}`, () => {
      const rng = new Rng(11 + NH * 7 + NKV);
      const q = f32(randn(rng, B * T * NH * hs));
      const k = f32(randn(rng, B * T * NKV * hs));
      const v = f32(randn(rng, B * T * NKV * hs));
      const R = f32(randn(rng, B * T * NH * hs));
      const js = runGqa(new Heap(new JsBackend({ dtype: 'f64' })), q, k, v, R, B, T, NH, NKV, hs);
      expect(relErr(js.out, referenceGqa(q, k, v, B, T, NH, NKV, hs))).toBeLessThan(1e-12);
      const w = runGqa(new Heap(wasm()), q, k, v, R, B, T, NH, NKV, hs);
      for (const key of ['out', 'dq', 'dk', 'dv'] as const) expect(relErr(w[key], js[key]), key).toBeLessThan(2e-5);
    });
  }

  it('gives the same bits for any split of the work (1, 3, 7 parts) and at 2 threads', async () => {
    const { B, T, NH, NKV, hs } = { B: 2, T: 11, NH: 8, NKV: 2, hs: 6 };
    const rng = new Rng(5);
    const [q, k, v, R] = [randn(rng, B * T * NH * hs), randn(rng, B * T * NKV * hs), randn(rng, B * T * NKV * hs), randn(rng, B * T * NH * hs)];
    const base = runGqa(new Heap(wasm(1)), q, k, v, R, B, T, NH, NKV, hs);
    const threaded = await createWasmBackend({ threads: 2 });
    backends.push(threaded);
    for (const be of [wasm(3), wasm(7), threaded]) {
      const r = runGqa(new Heap(be), q, k, v, R, B, T, NH, NKV, hs);
      for (const key of ['out', 'dq', 'dk', 'dv'] as const) expect(Array.from(r[key]), key).toEqual(Array.from(base[key]));
    }
  });

  it('equals multi-head attention over kv heads repeated NH/NKV times (HF repeat_kv), gradients summed over the repeats', () => {
    const { B, T, NH, NKV, hs } = { B: 2, T: 6, NH: 6, NKV: 3, hs: 4 };
    const rng = new Rng(9);
    const [q, k, v, R] = [randn(rng, B * T * NH * hs), randn(rng, B * T * NKV * hs), randn(rng, B * T * NKV * hs), randn(rng, B * T * NH * hs)];
    const repeat = (x: Float64Array) => {
      const y = new Float64Array(B * T * NH * hs);
      for (let r = 0; r < B * T; r++) for (let h = 0; h < NH; h++) for (let i = 0; i < hs; i++) y[r * NH * hs + h * hs + i] = x[r * NKV * hs + Math.floor(h / (NH / NKV)) * hs + i]!;
      return y;
    };
    const heap = new Heap(new JsBackend({ dtype: 'f64' }));
    const g = runGqa(heap, q, k, v, R, B, T, NH, NKV, hs);
    const m = runGqa(heap, q, repeat(k), repeat(v), R, B, T, NH, NH, hs);
    expect(relErr(g.out, m.out)).toBeLessThan(1e-12);
    expect(relErr(g.dq, m.dq)).toBeLessThan(1e-12);
    const fold = (d: Float64Array) => {
      const y = new Float64Array(B * T * NKV * hs);
      for (let r = 0; r < B * T; r++) for (let h = 0; h < NH; h++) for (let i = 0; i < hs; i++) y[r * NKV * hs + Math.floor(h / (NH / NKV)) * hs + i]! += d[r * NH * hs + h * hs + i]!;
      return y;
    };
    expect(relErr(g.dk, fold(m.dk))).toBeLessThan(1e-12);
    expect(relErr(g.dv, fold(m.dv))).toBeLessThan(1e-12);
  });

  it('with kvHeads = heads computes the fused-qkv attention of the GPT bit for bit (wasm)', () => {
    const { B, T, NH, hs } = { B: 2, T: 9, NH: 4, hs: 8 };
    const C = NH * hs;
    const rng = new Rng(3);
    const qkv = randn(rng, B * T * 3 * C);
    const R = randn(rng, B * T * C);
    const heap = new Heap(wasm());
    const fused = heap.fromArray(qkv, [B, T, 3 * C], { requiresGrad: true });
    const y = attention(fused, NH);
    sum(mul(y, heap.fromArray(R, y.shape))).backward();
    const yFused = Array.from(heap.backend.readSync(y.offset, y.size));
    const dFused = Array.from(heap.backend.readSync(fused.gradPtr, fused.size));
    heap.resetArena();
    const part = (j: number) => Float64Array.from({ length: B * T * C }, (_, i) => qkv[Math.floor(i / C) * 3 * C + j * C + (i % C)]!);
    const g = runGqa(heap, part(0), part(1), part(2), R, B, T, NH, NH, hs);
    expect(Array.from(g.out)).toEqual(yFused);
    const dSplit = Array.from({ length: B * T * 3 * C }, (_, i) => {
      const [r, c] = [Math.floor(i / (3 * C)), i % (3 * C)];
      return [g.dq, g.dk, g.dv][Math.floor(c / C)]![r * C + (c % C)]!;
    });
    expect(dSplit).toEqual(dFused);
  });

  it('refuses kv heads that do not divide the query heads and k/v of the wrong width, naming both shapes', () => {
    const heap = new Heap(new JsBackend());
    const q = heap.fromArray(new Float64Array(2 * 3 * 12), [2, 3, 12]);
    const kv = heap.fromArray(new Float64Array(2 * 3 * 6), [2, 3, 6]);
    expect(() => groupedAttention(q, kv, kv, 4, 3)).toThrow(/4 query heads must split into kvHeads = 3/);
    expect(() => groupedAttention(q, kv, kv, 4, 1)).toThrow(/k \(2,3,6\) must be \(2,3,3\)/);
  });
});

describe('grouped-query attention gradients', () => {
  it('match central finite differences for q, k and v (js f64, NH 4, NKV 2)', () => {
    const { B, T, NH, NKV, hs } = { B: 2, T: 4, NH: 4, NKV: 2, hs: 3 };
    const rng = new Rng(21);
    const inputs = [randn(rng, B * T * NH * hs), randn(rng, B * T * NKV * hs), randn(rng, B * T * NKV * hs)];
    const R = randn(rng, B * T * NH * hs);
    const heap = new Heap(new JsBackend({ dtype: 'f64' }));
    const f = (x: Float64Array[]) => {
      const out = referenceGqa(x[0]!, x[1]!, x[2]!, B, T, NH, NKV, hs);
      return out.reduce((s, o, i) => s + o * R[i]!, 0);
    };
    const g = runGqa(heap, inputs[0]!, inputs[1]!, inputs[2]!, R, B, T, NH, NKV, hs);
    const analytic = [g.dq, g.dk, g.dv];
    const h = 1e-5;
    inputs.forEach((x, j) => {
      const numeric = new Float64Array(x.length);
      for (let i = 0; i < x.length; i++) {
        const plus = inputs.map((a) => Float64Array.from(a));
        const minus = inputs.map((a) => Float64Array.from(a));
        plus[j]![i]! += h;
        minus[j]![i]! -= h;
        numeric[i] = (f(plus) - f(minus)) / (2 * h);
      }
      let err = 0;
      for (let i = 0; i < x.length; i++) err = Math.max(err, Math.abs(analytic[j]![i]! - numeric[i]!));
      expect(err / Math.max(1, maxAbs(numeric)), ['dq', 'dk', 'dv'][j]).toBeLessThan(1e-6);
    });
  });
});

describe('RoPE on separate q and k (ropeHeads)', () => {
  it('rotates q and k exactly as the fused-qkv rope does, bit for bit (wasm), and its gradient is the inverse rotation', () => {
    const { B, T, NH, hs } = { B: 2, T: 5, NH: 3, hs: 10 };
    const C = NH * hs;
    const rng = new Rng(4);
    const qkv = randn(rng, B * T * 3 * C);
    const R = randn(rng, B * T * 3 * C);
    const heap = new Heap(wasm(3));
    const rotary = new RotaryEmbedding(8, hs, 5e5).materialize(heap);
    const fused = heap.fromArray(qkv, [B, T, 3 * C], { requiresGrad: true });
    const y = rope(fused, NH, rotary.table);
    sum(mul(y, heap.fromArray(R, y.shape))).backward();
    const yF = Array.from(heap.backend.readSync(y.offset, y.size));
    const dF = Array.from(heap.backend.readSync(fused.gradPtr, fused.size));
    heap.resetArena();
    const part = (a: Float64Array, j: number) => Float64Array.from({ length: B * T * C }, (_, i) => a[Math.floor(i / C) * 3 * C + j * C + (i % C)]!);
    for (const j of [0, 1]) {
      const x = heap.fromArray(part(qkv, j), [B, T, C], { requiresGrad: true });
      const yr = ropeHeads(x, rotary.table);
      sum(mul(yr, heap.fromArray(part(R, j), yr.shape))).backward();
      const got = Array.from(heap.backend.readSync(yr.offset, yr.size));
      const dgot = Array.from(heap.backend.readSync(x.gradPtr, x.size));
      expect(got).toEqual(Array.from(part(Float64Array.from(yF), j)));
      expect(dgot).toEqual(Array.from(part(Float64Array.from(dF), j)));
      heap.resetArena();
    }
  });

  it('agrees between wasm and js for a k of fewer heads (NKV 2, hs 6) and refuses a width that is not whole heads', () => {
    const { B, T, H, hs } = { B: 3, T: 7, H: 2, hs: 6 };
    const rng = new Rng(8);
    const x = f32(randn(rng, B * T * H * hs));
    const run = (be: Backend) => {
      const heap = new Heap(be);
      const rotary = new RotaryEmbedding(T, hs).materialize(heap);
      const y = ropeHeads(heap.fromArray(x, [B, T, H * hs]), rotary.table);
      return Float64Array.from(heap.backend.readSync(y.offset, y.size));
    };
    expect(relErr(run(wasm()), run(new JsBackend({ dtype: 'f64' })))).toBeLessThan(2e-6);
    const heap = new Heap(new JsBackend());
    const rotary = new RotaryEmbedding(T, hs).materialize(heap);
    expect(() => ropeHeads(heap.fromArray(new Float64Array(B * T * 8), [B, T, 8]), rotary.table)).toThrow(/not a whole number of heads of 6/);
  });
});

describe('scaled RoPE tables (rope_scaling linear and llama3)', () => {
  /** Llama 3.1's inverse frequencies, written from transformers' _compute_llama3_parameters (f64). */
  function llama3Inv(hs: number, theta: number, factor: number, lo: number, hi: number, old: number): number[] {
    return Array.from({ length: hs / 2 }, (_, i) => {
      const inv = 1 / theta ** ((2 * i) / hs);
      const wavelen = (2 * Math.PI) / inv;
      const scaled = wavelen > old / lo ? inv / factor : inv;
      const smooth = (old / wavelen - lo) / (hi - lo);
      const medium = !(wavelen < old / hi) && !(wavelen > old / lo);
      return medium ? ((1 - smooth) * scaled) / factor + smooth * scaled : scaled;
    });
  }
  const scaling = { kind: 'llama3', factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192 } as const;

  it('llama3: cos/sin of t·inv_i with the three wavelength bands (wasm and js within one f32 rounding, up to t = 4095)', () => {
    const [T, hs, theta] = [4096, 64, 500000];
    const inv = llama3Inv(hs, theta, 32, 1, 4, 8192);
    // the bands are all present at these settings: unscaled, smoothed and divided frequencies
    const base = Array.from({ length: hs / 2 }, (_, i) => 1 / theta ** ((2 * i) / hs));
    expect(inv.some((v, i) => v === base[i])).toBe(true);
    expect(inv.some((v, i) => Math.abs(v - base[i]! / 32) < 1e-30)).toBe(true);
    expect(inv.some((v, i) => v < base[i]! && v > base[i]! / 32)).toBe(true);
    for (const be of [wasm(3), new JsBackend({ dtype: 'f64' })] as Backend[]) {
      const heap = new Heap(be);
      const rotary = new RotaryEmbedding(T, hs, theta, scaling).materialize(heap);
      const table = be.readSync(rotary.table.offset, T * hs);
      let worst = 0;
      for (let t = 0; t < T; t++) for (let i = 0; i < hs / 2; i++) {
        worst = Math.max(worst, Math.abs(table[t * hs + i]! - Math.cos(t * inv[i]!)), Math.abs(table[t * hs + hs / 2 + i]! - Math.sin(t * inv[i]!)));
      }
      expect(worst, be.name).toBeLessThanOrEqual(be.dtype === 'f64' ? 1e-9 : 2 ** -24);
    }
  });

  it('linear: the plain table at positions t / factor', () => {
    const [T, hs, theta, factor] = [64, 16, 10000, 4];
    const be = wasm();
    const heap = new Heap(be);
    const scaled = be.readSync(new RotaryEmbedding(T, hs, theta, { kind: 'linear', factor }).materialize(heap).table.offset, T * hs);
    for (let t = 0; t < T; t++) for (let i = 0; i < hs / 2; i++) {
      expect(Math.abs(scaled[t * hs + i]! - Math.cos((t / factor) * theta ** ((-2 * i) / hs)))).toBeLessThan(2 ** -24);
    }
  });

  it('refuses bad scaling parameters, naming them', () => {
    const be = new JsBackend();
    be.reserve(be.base + 64);
    expect(() => be.ropeTableScaled(be.base, 4, 8, 10000, { ...scaling, highFreqFactor: 1 })).toThrow(/highFreqFactor 1 must exceed lowFreqFactor 1/);
    expect(() => be.ropeTableScaled(be.base, 4, 8, 10000, { kind: 'linear', factor: 0 })).toThrow(/scaling\.factor = 0 must be a finite number > 0/);
  });
});
