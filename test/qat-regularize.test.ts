// QAT regularisation and the latent-weight clamp: the ternary-grid penalty's value against a
// reference computed here and its gradient against finite differences in f64 (scales held
// constant, as documented), the scheduled QatRegularizer, and the post-step clamp with AdamW
// and SGD keeping |W·s| within the chosen number of grid steps.
import { describe, expect, it } from 'vitest';
import { JsBackend } from '../src/backend/js/index.js';
import { WasmBackend } from '../src/backend/wasm/index.js';
import { add } from '../src/autograd/index.js';
import { GPT } from '../src/nn/gpt.js';
import { AdamW } from '../src/optim/adamw.js';
import { SGD } from '../src/optim/sgd.js';
import { QatRegularizer, bitLinearLayers, clampLatentWeights, ternaryGridPenalty } from '../src/qat/index.js';
import { Heap } from '../src/tensor/heap.js';
import { Rng } from '../src/util/rng.js';

const f = Math.fround;
const rne = (v: number): number => {
  const r = Math.floor(v + 0.5);
  return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;
};
const SHAPE = { vocabSize: 11, contextLength: 8, layers: 1, heads: 2, dim: 16, bitlinear: true } as const;

/** Per ternary part: its weights and absmean multiplier, read from the model. */
function parts(model: GPT) {
  return bitLinearLayers(model).flatMap(({ layer }) => layer.names.filter((n) => layer.precisionOf(n) === 'ternary').map((n) => {
    const w = Float64Array.from(model.params.getParam(`${n}.weight`).dataSync());
    let a = 0;
    for (const v of w) a += Math.abs(v);
    return { name: n, w, s: f(1 / (a / w.length)) };
  }));
}

/** R = c·(1/P) Σ_parts mean (u − q(u))², u = w·s (f32-rounded as the kernels do unless `exact`), with s fixed. */
function penalty(ps: { w: Float64Array; s: number }[], c: number, exact = false): number {
  let total = 0;
  for (const { w, s } of ps) {
    let e = 0;
    for (const v of w) { const u = exact ? v * s : f(v * s); e += (u - Math.max(-1, Math.min(1, rne(u)))) ** 2; }
    total += e / w.length;
  }
  return (c * total) / ps.length;
}

describe('ternaryGridPenalty', () => {
  it('is c·mean over ternary projections of mean (W·s − q(W·s))², skipping FP projections', () => {
    const model = new GPT({ ...SHAPE, bitlinearOptions: { keepFp: ['model.layers.0.mlp.up_proj'] } });
    model.materialize(new Heap(new JsBackend({ dtype: 'f64' })), new Rng(1));
    const ps = parts(model);
    expect(ps.map((p) => p.name)).not.toContain('model.layers.0.mlp.up_proj');
    expect(ternaryGridPenalty(model, 0.3).itemSync()).toBeCloseTo(penalty(ps, 0.3), 9);
  });

  it('has the gradient of its value with the scales held constant (finite differences, f64)', () => {
    const model = new GPT(SHAPE);
    model.materialize(new Heap(new JsBackend({ dtype: 'f64' })), new Rng(2));
    ternaryGridPenalty(model, 2).backward();
    const ps = parts(model);
    const h = 1e-7;
    for (const [pi, p] of ps.entries()) {
      const grad = model.params.getParam(`${p.name}.weight`).grad!.dataSync();
      const fds: [number, number][] = [];
      for (let i = 0; i < p.w.length; i += 7) {
        const u = p.w[i]! * p.s;
        if (Math.abs(u - Math.round(u) - 0.5) < 1e-3 || Math.abs(Math.abs(u) - 1.5) < 1e-3) continue; // rounding thresholds
        const plus = ps.map((q, qi) => (qi === pi ? { ...q, w: q.w.map((v, j) => (j === i ? v + h : v)) } : q));
        const minus = ps.map((q, qi) => (qi === pi ? { ...q, w: q.w.map((v, j) => (j === i ? v - h : v)) } : q));
        fds.push([i, (penalty(plus, 2, true) - penalty(minus, 2, true)) / (2 * h)]);
      }
      // the kernel rounds u = w·s to f32 (relative 2^-24): allow 1e-5 of the largest gradient
      const scale = Math.max(...fds.map(([, v]) => Math.abs(v)));
      for (const [i, fd] of fds) expect(Math.abs(grad[i]! - fd)).toBeLessThan(1e-5 * scale);
    }
  });

  it('is weighted and scheduled by QatRegularizer, and adds to the loss', () => {
    const model = new GPT(SHAPE);
    const heap = new Heap(WasmBackend.createSync());
    model.materialize(heap, new Rng(3));
    const reg = new QatRegularizer(model, { weight: 0.1, schedule: { start: 100, steps: 100 } });
    expect(reg.loss(50)).toBeNull();
    expect(reg.coefAt(150)).toBeCloseTo(0.05, 15);
    const r = reg.loss(150)!;
    expect(r.itemSync()).toBeCloseTo(penalty(parts(model), 0.05), 6);
    const tokens = heap.indices(Int32Array.from({ length: 16 }, (_, i) => i % 11), [2, 8]);
    const ce = model.forward(tokens, tokens).loss!;
    expect(add(ce, r).itemSync()).toBeCloseTo(ce.itemSync() + r.itemSync(), 6);
    expect(() => new QatRegularizer(model, { weight: -1 })).toThrow(/weight must be a finite number >= 0, got -1/);
    expect(() => new QatRegularizer(model, { weight: 1, schedule: { steps: -3 } })).toThrow(/steps must be a non-negative integer \(the ramp length\), got -3/);
  });

  it('pulls latent weights toward their grid points when minimised', () => {
    const model = new GPT(SHAPE);
    const heap = new Heap(WasmBackend.createSync());
    model.materialize(heap, new Rng(4));
    const opt = new SGD(model.params, { lr: 0.01 });
    const before = penalty(parts(model), 1);
    for (let i = 0; i < 40; i++) {
      opt.zeroGrad();
      ternaryGridPenalty(model, 1).backward();
      opt.step();
      heap.resetArena();
    }
    // (the absmean scale moves with the weights, so the penalty plateaus rather than reaching 0)
    expect(penalty(parts(model), 1)).toBeLessThan(0.6 * before);
  });
});

describe('clampLatentWeights', () => {
  for (const name of ['AdamW', 'SGD'] as const) {
    it(`keeps |W·s| ≤ m after each ${name} step (a post-step projection)`, () => {
      const model = new GPT(SHAPE);
      const heap = new Heap(WasmBackend.createSync());
      model.materialize(heap, new Rng(5));
      const opt = name === 'AdamW' ? new AdamW(model.params, { lr: 0.05 }) : new SGD(model.params, { lr: 5 });
      const ids = Int32Array.from({ length: 16 }, (_, i) => (i * 7) % 11);
      let clampedAny = false;
      for (let step = 0; step < 3; step++) {
        opt.zeroGrad();
        const tokens = heap.indices(ids, [2, 8]);
        model.forward(tokens, tokens).loss!.backward();
        opt.step();
        const before = parts(model);
        clampedAny ||= before.some(({ w, s }) => w.some((v) => Math.abs(f(v * s)) > 1.5));
        clampLatentWeights(model, 1.5);
        heap.resetArena();
        // every latent weight within 1.5 grid steps of the scale it had before the clamp
        parts(model).forEach(({ w }, p) => w.forEach((v) => expect(Math.abs(v)).toBeLessThanOrEqual(f(1.5 / before[p]!.s))));
      }
      expect(clampedAny).toBe(true);
    });
  }

  it('clamps each weight to ±m/s exactly, with the scales of the moment (js f64)', () => {
    const model = new GPT(SHAPE);
    model.materialize(new Heap(new JsBackend({ dtype: 'f64' })), new Rng(6));
    const before = parts(model);
    clampLatentWeights(model, 1);
    const after = parts(model);
    before.forEach(({ w, s }, p) => w.forEach((v, i) => expect(after[p]!.w[i]).toBe(Math.max(-f(1 / s), Math.min(f(1 / s), v)))));
    expect(() => clampLatentWeights(model, 0.5)).toThrow(/multiple must be a finite number >= 1 .* got 0.5/);
  });
});
