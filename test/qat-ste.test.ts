// Straight-through estimator variants of bitLinear, selectable per layer: the soft STE's weight
// gradient against finite differences of its surrogate forward (tanh soft rounding) in f64, the
// LSQ step-size gradient against the analytic formula of Esser et al. (2019) in f64, LSQ's
// initialisation from the absmean scale, and the LSQ parameter in a GPT (registered, no decay,
// receives a gradient). wasm agrees with the js f32 twin within a few ulps.
import { describe, expect, it } from 'vitest';
import type { Backend } from '../src/backend/backend.js';
import { JsBackend } from '../src/backend/js/index.js';
import { WasmBackend } from '../src/backend/wasm/index.js';
import { bitLinear, mul, sum, type BitLinearOpOptions } from '../src/autograd/index.js';
import { BitLinear } from '../src/nn/bitlinear.js';
import { GPT } from '../src/nn/gpt.js';
import { bitLinearLayers } from '../src/qat/index.js';
import { Heap } from '../src/tensor/heap.js';
import { Rng } from '../src/util/rng.js';

const f = Math.fround;
const rne = (v: number): number => {
  const r = Math.floor(v + 0.5);
  return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;
};

function randomF32(rng: Rng, n: number, std = 1): Float64Array {
  const v = new Float64Array(n);
  rng.fillNormal(v, 0, std);
  return v.map(f);
}

/** The absmean multiplier as the kernels compute it (f64 sum, f32 result). */
function absmeanScale(w: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < w.length; i++) s += Math.abs(w[i]!);
  return f(1 / Math.max(s / w.length, 1e-5));
}

interface Grads { y: Float64Array; dx: Float64Array; dw: Float64Array; dstep?: Float64Array; R: Float64Array }

/** bitLinear of x (M,K), W (N,K) and the gradients of L = Σ y ⊙ R. `step`: LSQ step sizes (a trainable tensor). */
function run(be: Backend, x: Float64Array, w: Float64Array, M: number, N: number, K: number, opts: BitLinearOpOptions, step?: number[]): Grads {
  const heap = new Heap(be);
  const xt = heap.fromArray(x, [M, K], { requiresGrad: true });
  const wt = heap.fromArray(w, [N, K], { requiresGrad: true });
  const st = step ? heap.fromArray(step, [step.length], { requiresGrad: true }) : null;
  const y = bitLinear(xt, wt, null, { ...opts, weightStep: st });
  const R = randomF32(new Rng(123), M * N);
  const yv = Float64Array.from(y.dataSync());
  sum(mul(y, heap.fromArray(R, [M, N]))).backward();
  return {
    y: yv, R,
    dx: Float64Array.from(xt.grad!.dataSync()),
    dw: Float64Array.from(wt.grad!.dataSync()),
    dstep: st ? Float64Array.from(st.grad!.dataSync()) : undefined,
  };
}

/** G = dYᵀ·x̃ (N,K) in f64: the gradient of L with respect to the quantised weights. */
function gradWq(R: Float64Array, xt: Float64Array, M: number, N: number, K: number): Float64Array {
  const g = new Float64Array(N * K);
  for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) {
    let s = 0;
    for (let m = 0; m < M; m++) s += R[m * N + n]! * xt[m * K + k]!;
    g[n * K + k] = s;
  }
  return g;
}

const maxRelErr = (got: ArrayLike<number>, want: ArrayLike<number>): number => {
  let scale = 1e-30, err = 0;
  for (let i = 0; i < want.length; i++) { scale = Math.max(scale, Math.abs(want[i]!)); err = Math.max(err, Math.abs(got[i]! - want[i]!)); }
  return err / scale;
};

describe("the 'soft' STE (tanh soft rounding with a temperature)", () => {
  const [M, N, K] = [6, 5, 24];
  const rng = new Rng(1);
  const x = randomF32(rng, M * K), w = randomF32(rng, N * K, 0.05);

  for (const T of [1, 0.2]) {
    it(`gives the weight gradient of its surrogate forward x·(s_T(clamp(W·s, −1, 1))/s)ᵀ, checked by finite differences in f64 (T = ${T})`, () => {
      const g = run(new JsBackend({ dtype: 'f64' }), x, w, M, N, K, { ste: 'soft', softTemperature: T, quantizeActivations: false });
      const s = absmeanScale(w);
      const alpha = 1 / T;
      // the surrogate forward: soft rounding s_α(u) = floor(u) + ½ + tanh(α r)/(2 tanh(α/2)), r = u − floor(u) − ½
      const softRound = (u: number): number => {
        const c = Math.max(-1, Math.min(1, u));
        const fl = Math.floor(c);
        return fl + 0.5 + Math.tanh(alpha * (c - fl - 0.5)) / (2 * Math.tanh(alpha / 2));
      };
      const loss = (wv: Float64Array): number => {
        let L = 0;
        for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) {
          let y = 0;
          for (let k = 0; k < K; k++) y += x[m * K + k]! * (softRound(wv[n * K + k]! * s) / s);
          L += y * g.R[m * N + n]!;
        }
        return L;
      };
      const h = 1e-7;
      let checked = 0;
      for (let i = 0; i < N * K; i++) {
        const u = w[i]! * s;
        if (Math.abs(Math.abs(u) - 1) < 1e-3) continue; // the clamp's kink
        const p = Float64Array.from(w), q = Float64Array.from(w);
        p[i]! += h; q[i]! -= h;
        const fd = (loss(p) - loss(q)) / (2 * h);
        expect(Math.abs(g.dw[i]! - fd), `dW[${i}] u=${u.toFixed(3)}`).toBeLessThanOrEqual(1e-5 * (Math.abs(fd) + 1));
        checked++;
      }
      expect(checked).toBeGreaterThan(0.9 * N * K);
      // beyond the clamp (|W·s| > 1) the gradient is 0, as in the clipped STE
      const outside = Array.from(w).map((v, i) => [Math.abs(v * s), i] as const).filter(([u]) => u > 1.001);
      expect(outside.length).toBeGreaterThan(0);
      for (const [, i] of outside) expect(g.dw[i]).toBe(0);
    });
  }

  it('approaches the clipped STE at a high temperature and sharpens around the rounding thresholds at a low one', () => {
    const clipped = run(new JsBackend({ dtype: 'f64' }), x, w, M, N, K, { ste: 'clipped', quantizeActivations: false });
    const hot = run(new JsBackend({ dtype: 'f64' }), x, w, M, N, K, { ste: 'soft', softTemperature: 8, quantizeActivations: false });
    expect(maxRelErr(hot.dw, clipped.dw)).toBeLessThan(0.01);
    const cold = run(new JsBackend({ dtype: 'f64' }), x, w, M, N, K, { ste: 'soft', softTemperature: 0.05, quantizeActivations: false });
    const s = absmeanScale(w);
    const G = gradWq(cold.R, x, M, N, K);
    // near u = ±0.5 the slope is α/2 / tanh(α/4·2) ≈ 10; near u = 0 it vanishes
    for (let i = 0; i < N * K; i++) {
      const u = Math.abs(f(w[i]! * s));
      if (Math.abs(u - 0.5) < 0.01) expect(Math.abs(cold.dw[i]!)).toBeGreaterThan(5 * Math.abs(G[i]!));
      if (u < 0.2) expect(Math.abs(cold.dw[i]!)).toBeLessThan(1e-3 * Math.abs(G[i]!) + 1e-12);
    }
  });

  it('leaves the forward and dX on the packed path unchanged (only the weight gradient differs)', () => {
    const be = WasmBackend.createSync();
    const a = run(be, x, w, M, N, K, {});
    const b = run(be, x, w, M, N, K, { ste: 'soft', softTemperature: 0.3 });
    expect(Array.from(b.y)).toEqual(Array.from(a.y));
    expect(Array.from(b.dx)).toEqual(Array.from(a.dx));
    expect(maxRelErr(b.dw, a.dw)).toBeGreaterThan(0.01);
  });

  it('agrees on wasm and js within 1e-5 relative', () => {
    const a = run(WasmBackend.createSync(), x, w, M, N, K, { ste: 'soft', softTemperature: 0.3, norm: true });
    const b = run(new JsBackend({ dtype: 'f32' }), x, w, M, N, K, { ste: 'soft', softTemperature: 0.3, norm: true });
    for (const k of ['y', 'dx', 'dw'] as const) expect(maxRelErr(a[k], b[k]), k).toBeLessThan(1e-5);
  });
});

describe("the 'lsq' STE (a learnable step size, Esser et al. 2019)", () => {
  const [M, N, K] = [7, 8, 32];
  const rng = new Rng(2);
  const x = randomF32(rng, M * K), w = randomF32(rng, N * K, 0.05);

  for (const [label, group] of [['per tensor', N * K], ['per channel', K]] as const) {
    it(`gives dΔ = Σ dŴ·(round(u) − u, or ±1 beyond the clamp)/sqrt(group) and dW = dŴ·[|u| ≤ 1] (${label}, f64)`, () => {
      const groups = (N * K) / group;
      const step = Array.from({ length: groups }, (_, g) => f(0.03 + 0.002 * g));
      const g = run(new JsBackend({ dtype: 'f64' }), x, w, M, N, K, { ste: 'lsq', group, quantizeActivations: false }, step);
      const G = gradWq(g.R, x, M, N, K);
      const want = new Float64Array(groups);
      for (let i = 0; i < N * K; i++) {
        const gi = Math.floor(i / group);
        const u = f(w[i]! * f(1 / step[gi]!));
        const d = u >= 1 ? 1 : u <= -1 ? -1 : rne(u) - u;
        want[gi]! += (G[i]! * d) / Math.sqrt(group);
        expect(g.dw[i]).toBeCloseTo(Math.abs(u) <= 1 ? G[i]! : 0, 9);
      }
      expect(maxRelErr(g.dstep!, want)).toBeLessThan(1e-9);
      // the forward uses the step size: y = x · (clamp(round(W/Δ))·Δ)ᵀ
      const y0 = new Float64Array(M * N);
      for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) {
        let acc = 0;
        for (let k = 0; k < K; k++) {
          const i = n * K + k, sw = f(1 / step[Math.floor(i / group)]!);
          acc += x[m * K + k]! * f(Math.max(-1, Math.min(1, rne(f(w[i]! * sw)))) / sw);
        }
        y0[m * N + n] = acc;
      }
      expect(maxRelErr(g.y, y0)).toBeLessThan(1e-12);
    });
  }

  it('initialises a step size of 0 to mean|W| at the first forward, so the first step equals the absmean quantiser', () => {
    const be = WasmBackend.createSync();
    const heap = new Heap(be);
    const xt = heap.fromArray(x, [M, K]), wt = heap.fromArray(w, [N, K]);
    const step = heap.fromArray([0], [1]);
    const lsq = bitLinear(xt, wt, null, { ste: 'lsq', weightStep: step }).dataSync();
    const plain = bitLinear(xt, wt).dataSync();
    expect(Array.from(lsq)).toEqual(Array.from(plain));
    expect(step.dataSync()[0]).toBe(f(1 / absmeanScale(w)));
  });

  it('is registered in a GPT as `…weight_step` per part, without weight decay, and learns (receives a gradient)', () => {
    const model = new GPT({ vocabSize: 11, contextLength: 8, layers: 1, heads: 2, dim: 16, bitlinear: true, bitlinearOptions: { ste: 'lsq', scale: 'channel' } });
    const names = model.params.names().filter((n) => n.endsWith('weight_step'));
    expect(names).toContain('model.layers.0.self_attn.q_proj.weight_step');
    expect(names).toContain('model.layers.0.mlp.down_proj.weight_step');
    expect(model.params.getParam('model.layers.0.self_attn.k_proj.weight_step').shape).toEqual([16]); // per channel: one per row
    const heap = new Heap(new JsBackend());
    model.materialize(heap, new Rng(3));
    const { start, length } = model.params.noDecayRange;
    const qkv = bitLinearLayers(model)[0]!.layer as BitLinear;
    const off = qkv.weightStep!.offset - model.params.paramOffset;
    expect(off).toBeGreaterThanOrEqual(start);
    expect(off).toBeLessThan(start + length);
    const tokens = heap.indices(Int32Array.from({ length: 16 }, (_, i) => i % 11), [2, 8]);
    model.forward(tokens, tokens).loss!.backward();
    const dstep = qkv.weightStep!.grad!.dataSync();
    expect(dstep.some((v) => v !== 0)).toBe(true);
    expect(qkv.weightStep!.dataSync().every((v) => v > 0)).toBe(true); // initialised by the forward
  });

  it('rejects a step-size tensor of the wrong size and a weightStep without ste lsq', () => {
    const heap = new Heap(new JsBackend());
    const xt = heap.zeros([2, 16]), wt = heap.zeros([4, 16]);
    expect(() => bitLinear(xt, wt, null, { ste: 'lsq' })).toThrow(/needs weightStep/);
    expect(() => bitLinear(xt, wt, null, { ste: 'lsq', weightStep: heap.zeros([3]) })).toThrow(/must hold 1 step sizes/);
    expect(() => bitLinear(xt, wt, null, { weightStep: heap.zeros([1]) })).toThrow(/pass ste: 'lsq'/);
    expect(() => bitLinear(xt, wt, null, { ste: 'soft', softTemperature: 0 })).toThrow(/softTemperature must be a finite number > 0, got 0/);
  });
});

describe('STE variants per layer', () => {
  it('gives each layer the STE named for it in steByLayer (others keep the default), and anneals temperatures per layer', () => {
    const model = new GPT({
      vocabSize: 11, contextLength: 8, layers: 1, heads: 2, dim: 16, bitlinear: true,
      bitlinearOptions: { ste: 'soft', softTemperature: 0.5, steByLayer: { 'model.layers.0.mlp.down_proj': 'lsq', 'model.layers.0.self_attn.qkv_proj': 'clipped' } },
    });
    const byName = Object.fromEntries(bitLinearLayers(model).map((e) => [e.name, e.layer]));
    expect(byName['model.layers.0.self_attn.qkv_proj']!.ste).toBe('clipped');
    expect(byName['model.layers.0.self_attn.o_proj']!.ste).toBe('soft');
    expect(byName['model.layers.0.mlp.down_proj']!.ste).toBe('lsq');
    expect(model.params.names().filter((n) => n.endsWith('weight_step'))).toEqual(['model.layers.0.mlp.down_proj.weight_step']);
    byName['model.layers.0.mlp.up_proj']!.softTemperature = 0.1;
    expect(byName['model.layers.0.self_attn.o_proj']!.softTemperature).toBe(0.5);
  });

  it('rejects an steByLayer entry for a layer the model does not have, listing the valid ones', () => {
    const make = () => new GPT({ vocabSize: 11, contextLength: 8, layers: 1, heads: 2, dim: 16, bitlinear: true, bitlinearOptions: { steByLayer: { 'model.layers.3.mlp.up_proj': 'soft' } } });
    expect(make).toThrow(/steByLayer names unknown layer "model\.layers\.3\.mlp\.up_proj"; valid names: model\.layers\.0\.self_attn\.qkv_proj, model\.layers\.0\.self_attn\.o_proj/);
  });
});
