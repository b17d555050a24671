// Mixed precision and sensitivity analysis: a stacked q/k/v weight with one part kept in FP runs
// that part as a dense projection and the others on the packed path (bit for bit against the
// plain ops), 8-bit parts use per-channel absmax int8 weights, keepFp names are validated
// against the model, and the sensitivity analysis / autoMixedPrecision rank and keep layers.
import { describe, expect, it } from 'vitest';
import { JsBackend } from '../src/backend/js/index.js';
import { WasmBackend } from '../src/backend/wasm/index.js';
import { bitLinear, linear, mul, sum, type BitLinearOpOptions } from '../src/autograd/index.js';
import { GPT } from '../src/nn/gpt.js';
import { AdamW } from '../src/optim/adamw.js';
import { trainStep, type TokenBatch } from '../src/optim/train-step.js';
import {
  autoMixedPrecision, bitLinearLayers, evaluateLoss, formatSensitivityTable, sensitivityAnalysis, setProjectionPrecision,
} from '../src/qat/index.js';
import type { Backend } from '../src/backend/backend.js';
import { Heap } from '../src/tensor/heap.js';
import { Rng } from '../src/util/rng.js';

const f = Math.fround;
const rne = (v: number): number => {
  const r = Math.floor(v + 0.5);
  return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;
};
const bits = (a: ArrayLike<number>): number[] => Array.from(new Uint32Array(Float32Array.from(a).buffer));

function randomF32(rng: Rng, n: number, std = 1): Float64Array {
  const v = new Float64Array(n);
  rng.fillNormal(v, 0, std);
  return v.map(f);
}

function run(be: Backend, x: Float64Array, w: Float64Array, M: number, N: number, K: number, opts: BitLinearOpOptions, R: Float64Array) {
  const heap = new Heap(be);
  const xt = heap.fromArray(x, [M, K], { requiresGrad: true }), wt = heap.fromArray(w, [N, K], { requiresGrad: true });
  const y = bitLinear(xt, wt, null, opts);
  const yv = Float64Array.from(y.dataSync());
  sum(mul(y, heap.fromArray(R, [M, N]))).backward();
  return { y: yv, dx: Float64Array.from(xt.grad!.dataSync()), dw: Float64Array.from(wt.grad!.dataSync()) };
}

/** Columns [c0, c1) of an (M, N) matrix. */
const cols = (a: Float64Array, M: number, N: number, c0: number, c1: number): number[] =>
  Array.from({ length: M * (c1 - c0) }, (_, i) => a[Math.floor(i / (c1 - c0)) * N + c0 + (i % (c1 - c0))]!);

describe('per-part precision of a stacked weight', () => {
  const [M, R, K] = [10, 8, 32];
  const N = 3 * R;
  const rng = new Rng(1);
  const x = randomF32(rng, M * K), w = randomF32(rng, N * K, 0.05), dy = randomF32(rng, M * N);

  it('runs an fp part as the dense linear op and the ternary parts on the packed path, bit for bit (wasm)', () => {
    const be = WasmBackend.createSync();
    const group = R * K; // one scale per part
    const mixed = run(be, x, w, M, N, K, { group, parts: ['fp', 'ternary', 'ternary'] }, dy);
    const tern = run(be, x, w, M, N, K, { group }, dy);
    const heap = new Heap(be);
    const xt = heap.fromArray(x, [M, K], { requiresGrad: true }), wq = heap.fromArray(w.slice(0, R * K), [R, K], { requiresGrad: true });
    const yq = linear(xt, wq);
    const yqv = yq.dataSync();
    sum(mul(yq, heap.fromArray(cols(dy, M, N, 0, R), [M, R]))).backward();
    expect(bits(cols(mixed.y, M, N, 0, R))).toEqual(bits(yqv));
    expect(bits(cols(mixed.y, M, N, R, N))).toEqual(bits(cols(tern.y, M, N, R, N)));
    expect(bits(mixed.dw.slice(0, R * K))).toEqual(bits(wq.grad!.dataSync()));
    expect(bits(mixed.dw.slice(R * K))).toEqual(bits(tern.dw.slice(R * K)));
  });

  it('gives dX = dY_q·W_q + dY_kv·Q(W_kv), the sum of both parts (f64)', () => {
    const mixed = run(new JsBackend({ dtype: 'f64' }), x, w, M, N, K, { group: R * K, parts: ['fp', 'ternary', 'ternary'], quantizeActivations: false }, dy);
    const wUsed = Float64Array.from(w);
    for (let p = 1; p < 3; p++) {
      let a = 0;
      for (let i = p * R * K; i < (p + 1) * R * K; i++) a += Math.abs(w[i]!);
      const s = f(1 / (a / (R * K)));
      for (let i = p * R * K; i < (p + 1) * R * K; i++) wUsed[i] = f(Math.max(-1, Math.min(1, rne(f(w[i]! * s)))) / s);
    }
    for (let m = 0; m < M; m++) for (let k = 0; k < K; k++) {
      let g = 0;
      for (let n = 0; n < N; n++) g += dy[m * N + n]! * wUsed[n * K + k]!;
      expect(mixed.dx[m * K + k]).toBeCloseTo(g, 5);
    }
  });

  it('quantises an int8 part with per-output-channel absmax int8 weights (f64)', () => {
    const got = run(new JsBackend({ dtype: 'f64' }), x, w, M, N, K, { group: R * K, parts: ['int8', 'int8', 'int8'], quantizeActivations: false }, dy);
    for (let n = 0; n < N; n++) {
      let amax = 0;
      for (let k = 0; k < K; k++) amax = Math.max(amax, Math.abs(w[n * K + k]!));
      const s = f(127 / amax);
      for (let m = 0; m < M; m++) {
        let acc = 0;
        for (let k = 0; k < K; k++) acc += x[m * K + k]! * f(Math.max(-128, Math.min(127, rne(f(w[n * K + k]! * s)))) / s);
        expect(got.y[m * N + n]).toBeCloseTo(acc, 10);
      }
    }
  });

  it('rejects parts that would split one weight scale, and unknown precisions', () => {
    const heap = new Heap(new JsBackend());
    const xt = heap.zeros([2, K]), wt = heap.zeros([N, K]);
    expect(() => bitLinear(xt, wt, null, { parts: ['fp', 'ternary', 'ternary'] })).toThrow(/split a weight-scale group of 768 elements; use one scale per part \(group 256\)/);
    expect(() => bitLinear(xt, wt, null, { group: R * K, parts: ['fp', 'bf16' as 'fp', 'fp'] })).toThrow(/parts must be 'ternary', 'int8' or 'fp', got bf16/);
  });
});

const SHAPE = { vocabSize: 13, contextLength: 16, layers: 2, heads: 2, dim: 32, bitlinear: true } as const;

describe('keepFp / keepInt8 in the model config', () => {
  it('keeps the named projections in FP or 8-bit and the others ternary', () => {
    const model = new GPT({ ...SHAPE, bitlinearOptions: { keepFp: ['model.layers.0.self_attn.q_proj'], keepInt8: ['model.layers.1.mlp.down_proj'] } });
    const layers = bitLinearLayers(model);
    const qkv = layers[0]!.layer;
    expect(qkv.names.map((n) => qkv.precisionOf(n))).toEqual(['fp', 'ternary', 'ternary']);
    expect(layers.find((e) => e.name === 'model.layers.1.mlp.down_proj')!.layer.precisionOf('model.layers.1.mlp.down_proj')).toBe('int8');
    expect(layers.filter((e) => e.name.endsWith('up_proj')).every((e) => e.layer.precisionOf(e.name) === 'ternary')).toBe(true);
  });

  it('rejects an unknown layer name, naming it and listing the valid ones', () => {
    const bad = () => new GPT({ ...SHAPE, bitlinearOptions: { keepFp: ['model.layers.0.self_attn.q_proj', 'model.layers.7.mlp.up_proj'] } });
    expect(bad).toThrow(/keepFp names unknown projection "model\.layers\.7\.mlp\.up_proj"; valid names: model\.layers\.0\.self_attn\.q_proj, model\.layers\.0\.self_attn\.k_proj, .*model\.layers\.1\.mlp\.down_proj$/);
    expect(() => new GPT({ ...SHAPE, bitlinearOptions: { keepFp: ['a'], keepInt8: ['a'] } })).toThrow(/a is in both keepFp and keepInt8/);
  });
});

function batches(n: number, seed: number): TokenBatch[] {
  const rng = new Rng(seed);
  return Array.from({ length: n }, () => {
    const tokens = new Int32Array(4 * 16), targets = new Int32Array(4 * 16);
    for (let b = 0; b < 4; b++) {
      const period = 3;
      const pattern = Array.from({ length: period }, () => 1 + rng.int(12));
      for (let t = 0; t < 16; t++) { tokens[b * 16 + t] = pattern[t % period]!; targets[b * 16 + t] = pattern[(t + 1) % period]!; }
    }
    return { tokens, targets, B: 4, T: 16 };
  });
}

describe('sensitivity analysis and automatic mixed precision', () => {
  async function trained(): Promise<GPT> {
    const model = new GPT(SHAPE);
    const heap = new Heap(WasmBackend.createSync());
    model.materialize(heap, new Rng(2));
    const opt = new AdamW(model.params, { lr: 3e-3 });
    for (const b of batches(30, 3)) await trainStep(heap, model, opt, b);
    return model;
  }

  it('measures, per projection, the loss change when only it is FP and when only it is ternary, ranked, and restores the model', async () => {
    const model = await trained();
    const val = batches(2, 4);
    bitLinearLayers(model)[0]!.layer.weightLambda = 0.5; // some QAT state that must survive the analysis
    const report = await sensitivityAnalysis(model, val);
    expect(report.rows.map((r) => r.name).sort()).toEqual(bitLinearLayers(model).flatMap((e) => e.layer.names).sort());
    expect(report.rows).toHaveLength(2 * 6);
    for (let i = 1; i < report.rows.length; i++) expect(report.rows[i]!.fp_delta).toBeGreaterThanOrEqual(report.rows[i - 1]!.fp_delta);
    expect(bitLinearLayers(model)[0]!.layer.weightLambda).toBe(0.5);
    expect(bitLinearLayers(model).every((e) => e.layer.names.every((n) => e.layer.precisionOf(n) === 'ternary'))).toBe(true);
    // one row by hand
    for (const e of bitLinearLayers(model)) e.layer.weightLambda = 1;
    const row = report.rows[0]!;
    const base = await evaluateLoss(model, val);
    expect(base).toBeCloseTo(report.baseline.ternary, 6);
    setProjectionPrecision(model, [row.name], 'fp');
    expect((await evaluateLoss(model, val)) - base).toBeCloseTo(row.fp_delta, 6);
    setProjectionPrecision(model, [row.name], 'ternary');
    // the table and the JSON
    const table = formatSensitivityTable(report);
    expect(table.split('\n')[2]).toContain(row.name);
    expect(JSON.parse(JSON.stringify(report)).rows[0].name).toBe(row.name);
  });

  it('keeps the k most sensitive projections (or those above a loss-delta threshold) in FP', async () => {
    const model = await trained();
    const report = await sensitivityAnalysis(model, batches(1, 5));
    const kept = autoMixedPrecision(model, report, { k: 2 });
    expect(kept).toEqual([report.rows[0]!.name, report.rows[1]!.name]);
    const precisions = bitLinearLayers(model).flatMap((e) => e.layer.names.map((n) => [n, e.layer.precisionOf(n)] as const));
    expect(precisions.filter(([, p]) => p === 'fp').map(([n]) => n).sort()).toEqual([...kept].sort());
    setProjectionPrecision(model, kept, 'ternary');
    const threshold = -report.rows[2]!.fp_delta;
    const byDelta = autoMixedPrecision(model, report, { lossDeltaThreshold: Math.max(0, threshold) }, 'int8');
    expect(byDelta).toEqual(report.rows.filter((r) => -r.fp_delta >= Math.max(0, threshold)).map((r) => r.name));
    expect(() => autoMixedPrecision(model, report, { k: -1 })).toThrow(/k must be a non-negative integer, got -1/);
    expect(() => setProjectionPrecision(model, ['lm_head'], 'fp')).toThrow(/unknown projection "lm_head"; valid names: model\.layers\.0\.self_attn\.q_proj/);
  });
});
