// The QAT kernels (assembly/qat.ts, src/backend/js/qat.ts) on awkward shapes: wasm against the
// js f32 twin bit for bit (elementwise and per-row integer-exact kernels), against formulas
// written here in f64, and the thread-split contract (WasmBackend `splits`: the same bits for
// any split of the range). Kernels with exp/log/tanh (soft STE, distillation) agree with js
// within a few f32 ulps (relative 1e-5).
import { describe, expect, it } from 'vitest';
import type { Backend, QatBlend } from '../src/backend/backend.js';
import { JsBackend } from '../src/backend/js/index.js';
import { WasmBackend } from '../src/backend/wasm/index.js';
import { noiseHash, noiseThreshold } from '../src/backend/js/qat.js';
import { Rng } from '../src/util/rng.js';

const f = Math.fround;
const rne = (v: number): number => {
  const r = Math.floor(v + 0.5);
  return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;
};
const code = (u: number): number => Math.max(-1, Math.min(1, rne(u)));

/** Backends under test: js f32, js f64, wasm, wasm split into 3 and 7 parts. */
const BACKENDS: [string, () => Backend][] = [
  ['js32', () => new JsBackend({ dtype: 'f32' })],
  ['js64', () => new JsBackend({ dtype: 'f64' })],
  ['wasm', () => WasmBackend.createSync()],
  ['wasm/3', () => WasmBackend.createSync({ splits: 3 })],
  ['wasm/7', () => WasmBackend.createSync({ splits: 7 })],
];

/** Named buffers at the same offsets in every backend; values written as f32. */
function setup(sizes: Record<string, number>) {
  const bes = BACKENDS.map(([name, make]) => ({ name, be: make() }));
  const off: Record<string, number> = {};
  let top = 0;
  for (const [k, n] of Object.entries(sizes)) { off[k] = top; top += n + 5; }
  for (const { be } of bes) be.reserve(be.base + top);
  const p = (be: Backend, k: string): number => be.base + off[k]!;
  return {
    bes,
    p,
    write(k: string, data: ArrayLike<number>) { for (const { be } of bes) be.write(p(be, k), Array.from(data, f)); },
    run(fn: (be: Backend, q: (k: string) => number) => void) { for (const { be } of bes) fn(be, (k) => p(be, k)); },
    read(k: string): Record<string, Float64Array> {
      return Object.fromEntries(bes.map(({ name, be }) => [name, Float64Array.from(be.readSync(p(be, k), sizes[k]!))]));
    },
  };
}

const random = (rng: Rng, n: number, std = 1): number[] => Array.from({ length: n }, () => f(std * rng.normal()));
const bits = (a: ArrayLike<number>) => Array.from(new Uint32Array(Float32Array.from(a).buffer));

/** wasm == js32 bit for bit (unless `tolerant`), every split == wasm bit for bit. */
function expectAgree(out: Record<string, Float64Array>, tolerant = false): void {
  expect(bits(out['wasm/3']!)).toEqual(bits(out.wasm!));
  expect(bits(out['wasm/7']!)).toEqual(bits(out.wasm!));
  if (!tolerant) expect(bits(out.wasm!)).toEqual(bits(out.js32!));
  else out.wasm!.forEach((v, i) => expect(Math.abs(v - out.js32![i]!)).toBeLessThanOrEqual(1e-5 * Math.abs(out.js32![i]!) + 1e-30));
}

describe('quantisation noise mask', () => {
  it('keeps a fraction p of elements, the same elements on every backend, all of them at p = 1', () => {
    const n = 4003;
    const t = setup({ a: n, b: n, out: n });
    t.write('a', new Array(n).fill(0));
    t.write('b', new Array(n).fill(1));
    for (const p of [0, 0.3, 1]) {
      const blend: QatBlend = { lambda: 1, p, seed: 0xdeadbeef };
      t.run((be, q) => be.qatLerp(q('out'), q('a'), q('b'), n, blend));
      const out = t.read('out');
      expectAgree(out);
      const on = out.js64!.reduce((s, v) => s + v, 0);
      if (p === 0) expect(on).toBe(0);
      else if (p === 1) expect(on).toBe(n);
      else expect(Math.abs(on / n - p)).toBeLessThan(0.03);
      // element i is on exactly where the documented hash says so
      const thr = noiseThreshold(p);
      out.js64!.forEach((v, i) => expect(v).toBe(thr >= 1 << 24 || noiseHash(0xdeadbeef, i) >>> 8 < thr ? 1 : 0));
    }
  });

  it('draws a different mask for a different seed', () => {
    const thr = noiseThreshold(0.5);
    let same = 0;
    for (let i = 0; i < 1000; i++) same += Number((noiseHash(1, i) >>> 8 < thr) === (noiseHash(2, i) >>> 8 < thr));
    expect(same).toBeGreaterThan(400);
    expect(same).toBeLessThan(600);
  });
});

describe('qatLerp (progressive quantisation x + λ(q(x) − x))', () => {
  it('computes a + λ(b − a) in f32, copies a at λ = 0 and b at λ = 1 exactly', () => {
    const n = 1001;
    const rng = new Rng(1);
    const t = setup({ a: n, b: n, out: n });
    const a = random(rng, n), b = random(rng, n);
    t.write('a', a); t.write('b', b);
    for (const lambda of [0, 0.37, 1]) {
      t.run((be, q) => be.qatLerp(q('out'), q('a'), q('b'), n, { lambda, p: 1, seed: 0 }));
      const out = t.read('out');
      expectAgree(out);
      out.js64!.forEach((v, i) => expect(v).toBeCloseTo(a[i]! + lambda * (b[i]! - a[i]!), 12));
      if (lambda === 0) expect(bits(out.wasm!)).toEqual(bits(a));
      if (lambda === 1) expect(bits(out.wasm!)).toEqual(bits(b));
    }
  });
});

describe('qatSteWeights', () => {
  const [N, K] = [7, 37];
  const rng = new Rng(2);
  const w = random(rng, N * K, 0.05), dwq = random(rng, N * K), dw0 = random(rng, N * K);
  const s = [f(1 / 0.04)];
  for (const surrogate of ['identity', 'clipped', 'soft'] as const) {
    for (const blend of [{ lambda: 1, p: 1, seed: 0 }, { lambda: 0.6, p: 0.5, seed: 77 }]) {
      it(`accumulates dwq·((1−λ_i) + λ_i·g(u)) for the ${surrogate} surrogate (λ ${blend.lambda}, p ${blend.p})`, () => {
        const t = setup({ dw: N * K, dwq: N * K, w: N * K, s: 1 });
        t.write('dw', dw0); t.write('dwq', dwq); t.write('w', w); t.write('s', s);
        const T = 0.25;
        t.run((be, q) => be.qatSteWeights(q('dw'), q('dwq'), q('w'), q('s'), N, K, N * K, surrogate, T, blend));
        const out = t.read('dw');
        expectAgree(out, surrogate === 'soft');
        const thr = noiseThreshold(blend.p);
        const alpha = 1 / T;
        out.js64!.forEach((v, i) => {
          const u = f(w[i]! * s[0]!);
          const r = u - Math.floor(u) - 0.5;
          const soft = (alpha * (1 - Math.tanh(alpha * r) ** 2)) / (2 * Math.tanh(alpha / 2));
          const g = surrogate === 'identity' ? 1 : Math.abs(u) > 1 ? 0 : surrogate === 'clipped' ? 1 : soft;
          const l = thr >= 1 << 24 || noiseHash(blend.seed, i) >>> 8 < thr ? blend.lambda : 0;
          expect(v).toBeCloseTo(dw0[i]! + dwq[i]! * ((1 - l) + l * g), 10);
        });
      });
    }
  }

  it('at λ = 1 with the clipped surrogate equals steClippedWeights', () => {
    const t = setup({ a: N * K, b: N * K, dwq: N * K, w: N * K, s: 1 });
    t.write('a', dw0); t.write('b', dw0); t.write('dwq', dwq); t.write('w', w); t.write('s', s);
    t.run((be, q) => {
      be.qatSteWeights(q('a'), q('dwq'), q('w'), q('s'), N, K, N * K, 'clipped', 1, { lambda: 1, p: 1, seed: 0 });
      be.steClippedWeights(q('b'), q('dwq'), q('w'), q('s'), N, K, N * K);
    });
    const a = t.read('a'), b = t.read('b');
    for (const name of ['wasm', 'js32']) expect(bits(a[name]!)).toEqual(bits(b[name]!));
  });

  it('rejects a soft surrogate without a positive temperature', () => {
    const be = new JsBackend();
    be.reserve(be.base + 4 * N * K);
    const p = be.base;
    expect(() => be.qatSteWeights(p, p, p, p, N, K, N * K, 'soft', 0, { lambda: 1, p: 1, seed: 0 })).toThrow(/temperature = 0 must be a finite number > 0/);
  });
});

describe('LSQ kernels', () => {
  it('initialise a step size ≤ 0 from the absmean scale and turn positive steps into multipliers', () => {
    const t = setup({ sw: 3, step: 3, abs: 3 });
    t.write('step', [0, 0.02, -1]); t.write('abs', [50, 60, 70]);
    t.run((be, q) => be.qatLsqScales(q('sw'), q('step'), q('abs'), 3));
    const sw = t.read('sw'), step = t.read('step');
    expectAgree(sw); expectAgree(step);
    expect(Array.from(sw.wasm!)).toEqual([50, f(1 / f(0.02)), 70]);
    expect(Array.from(step.wasm!)).toEqual([f(1 / 50), f(0.02), f(1 / 70)]);
  });

  it('sum λ_i·dwq_i·(round(u) − u, or ±1 beyond the clamp) per group, times the gradient scale', () => {
    const [count, group] = [6 * 40, 40];
    const rng = new Rng(3);
    const w = random(rng, count, 0.05), dwq = random(rng, count), sw = random(rng, count / group, 2).map((v) => f(20 + v));
    const t = setup({ ds: count / group, dwq: count, w: count, sw: count / group });
    t.write('ds', new Array(count / group).fill(0.5)); t.write('dwq', dwq); t.write('w', w); t.write('sw', sw);
    const blend = { lambda: 0.8, p: 0.7, seed: 5 };
    t.run((be, q) => be.qatLsqStepGrad(q('ds'), q('dwq'), q('w'), q('sw'), count, group, 0.25, blend));
    const out = t.read('ds');
    expectAgree(out);
    const thr = noiseThreshold(blend.p);
    for (let g = 0; g < count / group; g++) {
      let acc = 0;
      for (let i = g * group; i < (g + 1) * group; i++) {
        const u = f(w[i]! * sw[g]!);
        const d = u >= 1 ? 1 : u <= -1 ? -1 : rne(u) - u;
        acc += (noiseHash(blend.seed, i) >>> 8 < thr ? blend.lambda : 0) * dwq[i]! * d;
      }
      expect(out.js64![g]!).toBeCloseTo(0.5 + 0.25 * acc, 10);
    }
  });
});

describe('qatQuantizeActivationsStatic', () => {
  it('uses the calibrated clip for every row, clamping outliers to ±127/−128, and falls back to per-row absmax at clip ≤ 0', () => {
    const [M, K] = [5, 13];
    const rng = new Rng(4);
    const x = random(rng, M * K, 2);
    for (const clip of [1.5, 0]) {
      const t = setup({ xq: M * 16, sx: M, x: M * K, clip: 1, xq2: M * 16, sx2: M });
      t.write('x', x); t.write('clip', [clip]);
      t.run((be, q) => {
        be.qatQuantizeActivationsStatic(q('xq'), q('sx'), q('x'), q('clip'), M, K);
        be.quantizeActivations(q('xq2'), q('sx2'), q('x'), M, K);
      });
      const sx = t.read('sx');
      expectAgree(sx);
      const wasm = t.bes.find((b) => b.name === 'wasm')!.be, js = t.bes.find((b) => b.name === 'js32')!.be;
      /** The int8 bytes of a buffer: one per slot in js, four per f32 slot in wasm. */
      const bytes = (be: Backend, name: string): number[] => {
        const raw = be.readSync(t.p(be, name), be.byteSlots(M * 16));
        if (be.name === 'js') return Array.from(raw);
        return Array.from(new Int8Array((raw as Float32Array).buffer)).slice(0, M * 16);
      };
      expect(bytes(wasm, 'xq')).toEqual(bytes(js, 'xq'));
      if (clip > 0) {
        const s = f(127 / clip);
        expect(Array.from(sx.wasm!)).toEqual(new Array(M).fill(s));
        const q = bytes(js, 'xq');
        for (let m = 0; m < M; m++) for (let k = 0; k < K; k++) {
          expect(q[m * 16 + k]).toBe(Math.max(-128, Math.min(127, rne(f(x[m * K + k]! * s)))));
        }
        expect(q.some((v) => v === 127 || v === -128)).toBe(true);
      } else {
        expect(bits(sx.wasm!)).toEqual(bits(t.read('sx2').wasm!));
        expect(bytes(wasm, 'xq')).toEqual(bytes(wasm, 'xq2'));
      }
    }
  });
});

describe('qatCopyColumns', () => {
  it('copies or accumulates a column block between matrices of different widths', () => {
    const M = 6;
    const rng = new Rng(5);
    const src = random(rng, M * 9), dst0 = random(rng, M * 11);
    for (const accumulate of [false, true]) {
      const t = setup({ src: M * 9, dst: M * 11 });
      t.write('src', src); t.write('dst', dst0);
      t.run((be, q) => be.qatCopyColumns(q('dst'), 11, 4, q('src'), 9, 2, M, 5, accumulate));
      const out = t.read('dst');
      expectAgree(out);
      for (let m = 0; m < M; m++) for (let j = 0; j < 11; j++) {
        const inBlock = j >= 4 && j < 9;
        const want = inBlock ? (accumulate ? f(dst0[m * 11 + j]! + src[m * 9 + j - 2]!) : src[m * 9 + j - 2]!) : dst0[m * 11 + j]!;
        expect(out.wasm![m * 11 + j]).toBe(want);
      }
    }
  });
});

describe('grid penalty and latent-weight clamp', () => {
  const [N, K, group] = [6, 32, 16];
  const rng = new Rng(6);
  const w = random(rng, N * K, 0.05);
  const scales = random(rng, (N * K) / group, 3).map((v) => f(25 + v));
  const sOf = (i: number) => scales[Math.floor(i / group)]!;

  it('sums (u − q(u))² per row and adds dout·coef·(u − q(u))·s to the gradient', () => {
    const t = setup({ rows: N, w: N * K, s: scales.length, dw: N * K, dout: 1 });
    t.write('w', w); t.write('s', scales); t.write('dw', new Array(N * K).fill(0.1)); t.write('dout', [2]);
    t.run((be, q) => {
      be.qatGridPenalty(q('rows'), q('w'), q('s'), N, K, group);
      be.qatGridPenaltyBackward(q('dw'), q('w'), q('s'), q('dout'), 0.5, N, K, group);
    });
    const rows = t.read('rows'), dw = t.read('dw');
    expectAgree(rows); expectAgree(dw);
    for (let n = 0; n < N; n++) {
      let want = 0;
      for (let k = 0; k < K; k++) { const u = f(w[n * K + k]! * sOf(n * K + k)); want += (u - code(u)) ** 2; }
      expect(rows.js64![n]!).toBeCloseTo(want, 10);
    }
    dw.js64!.forEach((v, i) => { const u = f(w[i]! * sOf(i)); expect(v).toBeCloseTo(f(0.1) + 2 * 0.5 * (u - code(u)) * sOf(i), 9); });
  });

  it('clamps latent weights to ±bound/s', () => {
    const t = setup({ w: N * K, s: scales.length });
    t.write('w', w); t.write('s', scales);
    t.run((be, q) => be.qatClampWeights(q('w'), q('s'), N, K, group, 1.5));
    const out = t.read('w');
    expectAgree(out);
    let clamped = 0;
    out.wasm!.forEach((v, i) => {
      const b = f(1.5 / sOf(i));
      expect(v).toBe(Math.max(-b, Math.min(b, w[i]!)));
      if (v !== w[i]) clamped++;
    });
    expect(clamped).toBeGreaterThan(0);
  });
});

describe('distillation kernels', () => {
  it('give α·CE + (1−α)T²·KL per row and its gradient α(p − onehot) + (1−α)T(p_T − q_T)', () => {
    const [N, V, T, alpha] = [5, 11, 2, 0.3];
    const rng = new Rng(7);
    const z = random(rng, N * V, 2), tz = random(rng, N * V, 2), targets = Array.from({ length: N }, (_, i) => (3 * i + 1) % V);
    const t = setup({ loss: N, p: N * V, pT: N * V, qT: N * V, z: N * V, t: N * V, tg: N, dz: N * V, dl: N });
    t.write('z', z); t.write('t', tz); t.write('dz', new Array(N * V).fill(0)); t.write('dl', [1, 0.5, 2, 1, 1]);
    t.run((be, q) => {
      be.writeIndices(q('tg'), new Int32Array(targets));
      be.kdForward(q('loss'), q('p'), q('pT'), q('qT'), q('z'), q('t'), q('tg'), N, V, T, alpha);
      be.kdBackward(q('dz'), q('p'), q('pT'), q('qT'), q('tg'), q('dl'), N, V, T, alpha);
    });
    const loss = t.read('loss'), dz = t.read('dz');
    expectAgree(loss, true); expectAgree(dz, true);
    const dl = [1, 0.5, 2, 1, 1];
    for (let r = 0; r < N; r++) {
      const row = z.slice(r * V, r * V + V), trow = tz.slice(r * V, r * V + V);
      const soft = (v: number[], tau: number) => { const m = Math.max(...v); const e = v.map((x) => Math.exp((x - m) / tau)); const s = e.reduce((a, b) => a + b); return e.map((x) => x / s); };
      const p = soft(row, 1), ps = soft(row, T), pt = soft(trow, T);
      const ce = -Math.log(p[targets[r]!]!);
      const kl = pt.reduce((s, v, i) => s + v * Math.log(v / ps[i]!), 0);
      expect(loss.js64![r]!).toBeCloseTo(alpha * ce + (1 - alpha) * T * T * kl, 10);
      for (let i = 0; i < V; i++) {
        const g = alpha * (p[i]! - (i === targets[r] ? 1 : 0)) + (1 - alpha) * T * (ps[i]! - pt[i]!);
        expect(dz.js64![r * V + i]!).toBeCloseTo(dl[r]! * g, 10);
      }
    }
  });
});
