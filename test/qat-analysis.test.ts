// Quantisation error analysis: per projection, the SQNR of the ternary weights and of the int8
// activations, the ternary code distribution, the flip rate since the last report and the weight
// scale, against values computed here from the parameters and the observed layer inputs; the
// report is a plain JSON object, activation sums run only on armed (report) steps.
import { describe, expect, it } from 'vitest';
import { WasmBackend } from '../src/backend/wasm/index.js';
import { GPT } from '../src/nn/gpt.js';
import { QuantErrorAnalyzer, bitLinearLayers } from '../src/qat/index.js';
import { Heap } from '../src/tensor/heap.js';
import type { Tensor } from '../src/tensor/tensor.js';
import { Rng } from '../src/util/rng.js';

const f = Math.fround;
const rne = (v: number): number => {
  const r = Math.floor(v + 0.5);
  return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;
};
const SHAPE = { vocabSize: 13, contextLength: 16, layers: 2, heads: 2, dim: 32, bitlinear: true } as const;

function setup(options = {}) {
  const model = new GPT({ ...SHAPE, bitlinearOptions: options });
  const heap = new Heap(WasmBackend.createSync());
  model.materialize(heap, new Rng(3));
  return { model, heap, analyzer: new QuantErrorAnalyzer(model, { every: 10 }) };
}

const tokensOf = (heap: Heap) => heap.indices(Int32Array.from({ length: 64 }, (_, i) => (i * 5 + 1) % 13), [4, 16]);

/** Weight statistics of one projection computed here (absmean per tensor). */
function weightRef(w: Float32Array) {
  let a = 0;
  for (const v of w) a += Math.abs(v);
  const s = f(1 / (a / w.length));
  let sig = 0, err = 0;
  const counts = { neg: 0, zero: 0, pos: 0 };
  const codes = Array.from(w, (v) => {
    const q = Math.max(-1, Math.min(1, rne(f(v * s))));
    sig += v * v;
    err += (v - f(q / s)) ** 2;
    counts[q < 0 ? 'neg' : q > 0 ? 'pos' : 'zero']++;
    return q;
  });
  return { s, sqnr: 10 * Math.log10(sig / err), counts, codes };
}

/** Activation SQNR of xn (M,K) under absmax int8 per row. */
function activationRef(xn: ArrayLike<number>, K: number): number {
  let sig = 0, err = 0;
  for (let m = 0; m < xn.length / K; m++) {
    let amax = 0;
    for (let k = 0; k < K; k++) amax = Math.max(amax, Math.abs(xn[m * K + k]!));
    const s = f(127 / amax);
    for (let k = 0; k < K; k++) {
      const v = xn[m * K + k]!;
      sig += v * v;
      err += (v - f(Math.max(-128, Math.min(127, rne(f(v * s)))) / s)) ** 2;
    }
  }
  return 10 * Math.log10(sig / err);
}

describe('QuantErrorAnalyzer', () => {
  it('reports per projection the weight and activation SQNR, the ternary distribution and the weight scale', async () => {
    const { model, heap, analyzer } = setup();
    const entries = bitLinearLayers(model);
    const inputs: Tensor[] = [];
    entries.forEach((e, i) => { e.layer.observe = (xn) => { inputs[i] = xn; }; });
    analyzer.beginStep(20);
    model.forward(tokensOf(heap));
    const acts = await Promise.all(inputs.map((t) => t.data()));
    const report = await analyzer.report(20);
    expect(report.event).toBe('quant');
    expect(report.step).toBe(20);
    expect(report.layers.map((l) => l.name)).toEqual(entries.flatMap((e) => e.layer.names));
    for (const l of report.layers) {
      const w = model.params.getParam(`${l.name}.weight`).dataSync() as Float32Array;
      const ref = weightRef(w);
      expect(l.weight_sqnr_db!).toBeCloseTo(ref.sqnr, 9);
      expect(l.scale).toBe(ref.s);
      expect(l.ternary.neg).toBe(ref.counts.neg / w.length);
      expect(l.ternary.pos).toBe(ref.counts.pos / w.length);
      expect(l.ternary.neg + l.ternary.zero + l.ternary.pos).toBeCloseTo(1, 12);
      expect(l.flip_rate).toBeNull();
      expect(l.precision).toBe('ternary');
      const li = entries.findIndex((e) => e.layer.names.includes(l.name));
      // the device sums are f32-chunked: 1e-4 dB
      expect(l.activation_sqnr_db!).toBeCloseTo(activationRef(acts[li]!, entries[li]!.layer.inFeatures), 3);
    }
    expect(JSON.parse(JSON.stringify(report))).toEqual(report);
  });

  it('measures the flip rate of ternary codes since the previous report', async () => {
    const { model, heap, analyzer } = setup();
    await analyzer.report(0);
    const p = model.params.getParam('model.layers.0.mlp.up_proj.weight');
    const w = p.dataSync() as Float32Array;
    const before = weightRef(w).codes;
    // flip the sign of the first 100 weights: nonzero codes flip, the scale stays
    heap.backend.write(p.offset, Array.from(w.subarray(0, 100), (v) => -v));
    const flipped = before.slice(0, 100).filter((q) => q !== 0).length;
    const report = await analyzer.report(10);
    const up = report.layers.find((l) => l.name === 'model.layers.0.mlp.up_proj')!;
    expect(up.flip_rate).toBe(flipped / w.length);
    expect(report.layers.find((l) => l.name === 'model.layers.0.mlp.down_proj')!.flip_rate).toBe(0);
  });

  it('sums activation errors only on report steps (armed by beginStep) and reports null otherwise', async () => {
    const { model, heap, analyzer } = setup();
    expect(analyzer.due(30) && !analyzer.due(31)).toBe(true);
    analyzer.beginStep(31);
    expect(bitLinearLayers(model).every((e) => e.layer.activationStats === 0)).toBe(true);
    model.forward(tokensOf(heap));
    const r = await analyzer.report(31);
    expect(r.layers.every((l) => l.activation_sqnr_db === null)).toBe(true);
  });

  it('reports the LSQ scale 1/Δ and the precision of projections kept in FP', async () => {
    const { model, heap, analyzer } = setup({ ste: 'lsq', keepFp: ['model.layers.1.self_attn.v_proj'] });
    model.forward(tokensOf(heap)); // initialises Δ = mean|W|
    const r = await analyzer.report(0);
    const q = r.layers.find((l) => l.name === 'model.layers.0.self_attn.q_proj')!;
    const step = model.params.getParam('model.layers.0.self_attn.q_proj.weight_step').dataSync()[0]!;
    expect(q.scale).toBe(f(1 / step));
    expect(r.layers.find((l) => l.name === 'model.layers.1.self_attn.v_proj')!.precision).toBe('fp');
    expect(() => new QuantErrorAnalyzer(model, { every: 0 })).toThrow(/every must be a positive integer .* got 0/);
  });
});
