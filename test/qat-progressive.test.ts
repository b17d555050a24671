// Progressive quantisation (λ warmup) and quantisation noise: with λ = 1 the op is exactly the
// packed path (bit for bit against the kernels called by hand); with λ < 1 the forward is
// x̃·W̃ᵀ, W̃ = W + λw(Q(W) − W), x̃ = xn + λa(Q(xn) − xn) (f64 reference), λ = 0 is the dense
// linear op bit for bit, and the gradients are the STE ones through the blend. The schedules
// (linear, exponential, sigmoid, layer by layer) and the QatController that applies them per step.
import { describe, expect, it } from 'vitest';
import type { Backend } from '../src/backend/backend.js';
import { JsBackend } from '../src/backend/js/index.js';
import { WasmBackend, createWasmBackend } from '../src/backend/wasm/index.js';
import { noiseHash, noiseThreshold } from '../src/backend/js/qat.js';
import { bitLinear, linear, mul, sum, type BitLinearOpOptions } from '../src/autograd/index.js';
import { GPT } from '../src/nn/gpt.js';
import { segmentSeed } from '../src/qat/projection.js';
import { activationRowBytes, packedTernaryBytes } from '../src/quant/layout.js';
import {
  QatController, annealAt, bitLinearLayers, layerwiseRampAt, rampAt, setQuantLambda,
} from '../src/qat/index.js';
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

interface Out { y: Float64Array; dx: Float64Array; dw: Float64Array; R: Float64Array }

function run(be: Backend, x: Float64Array, w: Float64Array, M: number, N: number, K: number, opts: BitLinearOpOptions): Out {
  const heap = new Heap(be);
  const xt = heap.fromArray(x, [M, K], { requiresGrad: true });
  const wt = heap.fromArray(w, [N, K], { requiresGrad: true });
  const y = bitLinear(xt, wt, null, opts);
  const R = randomF32(new Rng(77), M * N);
  const yv = Float64Array.from(y.dataSync());
  sum(mul(y, heap.fromArray(R, [M, N]))).backward();
  return { y: yv, dx: Float64Array.from(xt.grad!.dataSync()), dw: Float64Array.from(wt.grad!.dataSync()), R };
}

/** Q(W) = Wq/s (absmean, per tensor) and Q(x) = xq/sx (absmax per row), as the kernels compute them. */
function quantized(x: Float64Array, w: Float64Array, M: number, K: number) {
  let a = 0;
  for (const v of w) a += Math.abs(v);
  const s = f(1 / Math.max(a / w.length, 1e-5));
  const qw = w.map((v) => f(Math.max(-1, Math.min(1, rne(f(v * s)))) / s));
  const qx = new Float64Array(M * K);
  for (let m = 0; m < M; m++) {
    let amax = 0;
    for (let k = 0; k < K; k++) amax = Math.max(amax, Math.abs(x[m * K + k]!));
    const sx = f(127 / Math.max(amax, f(1e-5)));
    for (let k = 0; k < K; k++) qx[m * K + k] = f(Math.max(-128, Math.min(127, rne(f(x[m * K + k]! * sx)))) / sx);
  }
  return { qw, qx, s };
}

/** a (M,K)·b (N,K)ᵀ in f64. */
function matmulNT(a: ArrayLike<number>, b: ArrayLike<number>, M: number, N: number, K: number): Float64Array {
  const out = new Float64Array(M * N);
  for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) {
    let s = 0;
    for (let k = 0; k < K; k++) s += a[m * K + k]! * b[n * K + k]!;
    out[m * N + n] = s;
  }
  return out;
}

const maxRel = (got: ArrayLike<number>, want: ArrayLike<number>): number => {
  let scale = 1e-30, err = 0;
  for (let i = 0; i < want.length; i++) { scale = Math.max(scale, Math.abs(want[i]!)); err = Math.max(err, Math.abs(got[i]! - want[i]!)); }
  return err / scale;
};

const [M, N, K] = [9, 12, 40];
const rng = new Rng(10);
const X = randomF32(rng, M * K, 1.5), W = randomF32(rng, N * K, 0.05);

describe('progressive quantisation at λ = 1', () => {
  it('is exactly the packed int8 × ternary path: y, dX and dW bit-identical to the kernels called by hand (wasm)', () => {
    const be = WasmBackend.createSync();
    const got = run(be, X, W, M, N, K, { weightLambda: 1, activationLambda: 1, noise: { p: 1, seed: 9 }, ste: 'clipped' });
    // by hand: absmean → pack → int8 per token → ternaryForward; dX by ternaryBackwardDx; dW = mask ⊙ dYᵀ·(xq/sx)
    const heap = new Heap(be);
    const x = heap.fromArray(X, [M, K]).offset, w = heap.fromArray(W, [N, K]).offset, dy = heap.fromArray(got.R, [M, N]).offset;
    const sw = heap.alloc(1), packed = heap.alloc(be.byteSlots(packedTernaryBytes(N, K)));
    const xq = heap.alloc(be.byteSlots(M * activationRowBytes(K))), sx = heap.alloc(M), y = heap.alloc(M * N);
    be.absmeanScales(sw, w, N * K, N * K);
    be.ternaryPack(packed, w, sw, N, K, N * K);
    be.quantizeActivations(xq, sx, x, M, K);
    be.ternaryForward(y, xq, sx, packed, sw, heap.alloc(be.ternaryScratchSlots('forward', N, K)), M, N, K, N * K);
    const dx = heap.allocZeroed(M * K), xd = heap.alloc(M * K), dwq = heap.alloc(N * K), dw = heap.allocZeroed(N * K);
    be.ternaryBackwardDx(dx, dy, packed, sw, heap.alloc(be.ternaryScratchSlots('backwardDx', N, K)), M, N, K, N * K);
    be.dequantizeActivations(xd, xq, sx, M, K);
    be.gemm('tn', dwq, dy, xd, N, K, M, false);
    be.steClippedWeights(dw, dwq, w, sw, N, K, N * K);
    expect(bits(got.y)).toEqual(bits(be.readSync(y, M * N)));
    expect(bits(got.dx)).toEqual(bits(be.readSync(dx, M * K)));
    expect(bits(got.dw)).toEqual(bits(be.readSync(dw, N * K)));
  });

  it('leaves a GPT whose controller has finished its ramps bit-identical to one without a controller', () => {
    const cfg = { vocabSize: 13, contextLength: 8, layers: 2, heads: 2, dim: 16, bitlinear: true } as const;
    const loss = (withController: boolean): number => {
      const model = new GPT(cfg);
      const heap = new Heap(WasmBackend.createSync());
      model.materialize(heap, new Rng(4));
      if (withController) {
        const qat = new QatController(model, { weights: { steps: 10 }, activations: { steps: 5, shape: 'sigmoid' }, layerwise: 'first-to-last', noise: { start: 0.5, schedule: { steps: 10 }, seed: 3 } });
        qat.beginStep(3);
        qat.beginStep(10);
      }
      const t = heap.indices(Int32Array.from({ length: 16 }, (_, i) => (i * 5) % 13), [2, 8]);
      return model.forward(t, t).loss!.itemSync();
    };
    expect(loss(true)).toBe(loss(false));
  });
});

describe('progressive quantisation at λ < 1', () => {
  for (const [lw, la] of [[0.3, 1], [1, 0.4], [0.6, 0.25], [0, 0.7]] as const) {
    it(`computes y = x̃·W̃ᵀ with W̃ = W + ${lw}(Q(W) − W), x̃ = x + ${la}(Q(x) − x), and the STE gradients dX = dY·W̃, dW = dYᵀ·x̃ (f64)`, () => {
      const got = run(new JsBackend({ dtype: 'f64' }), X, W, M, N, K, { weightLambda: lw, activationLambda: la });
      const { qw, qx } = quantized(X, W, M, K);
      const wt = W.map((v, i) => v + lw * (qw[i]! - v));
      const xt = X.map((v, i) => v + la * (qx[i]! - v));
      expect(maxRel(got.y, matmulNT(xt, wt, M, N, K))).toBeLessThan(1e-12);
      const dx = new Float64Array(M * K), dw = new Float64Array(N * K);
      for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) {
        dx[m * K + k]! += got.R[m * N + n]! * wt[n * K + k]!;
        dw[n * K + k]! += got.R[m * N + n]! * xt[m * K + k]!;
      }
      // at λw = 1, dX runs on the ternary kernel, which sums in f32 (src/quant/README.md)
      expect(maxRel(got.dx, dx)).toBeLessThan(lw === 1 ? 1e-6 : 1e-12);
      expect(maxRel(got.dw, dw)).toBeLessThan(1e-12);
    });
  }

  it('with unquantised activations equals the blend (1 − λ)·y_fp + λ·y_ternary of the two outputs', () => {
    const be = new JsBackend({ dtype: 'f64' });
    const lam = 0.35;
    const mixed = run(be, X, W, M, N, K, { weightLambda: lam, quantizeActivations: false }).y;
    const fp = run(be, X, W, M, N, K, { weightLambda: 0, quantizeActivations: false }).y;
    const tern = run(be, X, W, M, N, K, { weightLambda: 1, quantizeActivations: false }).y;
    expect(maxRel(mixed, fp.map((v, i) => (1 - lam) * v + lam * tern[i]!))).toBeLessThan(1e-12);
  });

  it('at λ = 0 for weights and activations is the dense linear op, bit for bit (wasm)', () => {
    const be = WasmBackend.createSync();
    const got = run(be, X, W, M, N, K, { weightLambda: 0, activationLambda: 0 });
    const heap = new Heap(be);
    const xt = heap.fromArray(X, [M, K], { requiresGrad: true }), wt = heap.fromArray(W, [N, K], { requiresGrad: true });
    const y = linear(xt, wt);
    const yv = y.dataSync();
    sum(mul(y, heap.fromArray(got.R, [M, N]))).backward();
    expect(bits(got.y)).toEqual(bits(yv));
    expect(bits(got.dx)).toEqual(bits(xt.grad!.dataSync()));
    expect(bits(got.dw)).toEqual(bits(wt.grad!.dataSync()));
  });

  it('scales the clipped STE mask by λ: dW = dW̃ ⊙ ((1 − λ) + λ·[|W·s| ≤ 1]) (f64)', () => {
    const lam = 0.7;
    const got = run(new JsBackend({ dtype: 'f64' }), X, W, M, N, K, { weightLambda: lam, ste: 'clipped', quantizeActivations: false });
    const { s } = quantized(X, W, M, K);
    let masked = 0;
    for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) {
      let g = 0;
      for (let m = 0; m < M; m++) g += got.R[m * N + n]! * X[m * K + k]!;
      const inside = Math.abs(f(W[n * K + k]! * s)) <= 1;
      if (!inside) masked++;
      expect(got.dw[n * K + k]).toBeCloseTo(g * (1 - lam + (inside ? lam : 0)), 10);
    }
    expect(masked).toBeGreaterThan(0);
  });

  it('rejects λ outside [0, 1], naming the value', () => {
    const heap = new Heap(new JsBackend());
    const x = heap.zeros([2, 16]), w = heap.zeros([4, 16]);
    expect(() => bitLinear(x, w, null, { weightLambda: 1.5 })).toThrow(/weightLambda must be a number in \[0, 1\], got 1.5/);
    expect(() => bitLinear(x, w, null, { activationLambda: -0.1 })).toThrow(/activationLambda must be a number in \[0, 1\], got -0.1/);
  });
});

describe('quantisation noise', () => {
  it('quantises exactly the weights the seeded mask selects, a fraction p of them, and passes the gradient straight through', () => {
    // x = I (M = K) and unquantised activations make y = W̃ᵀ: every mixed weight is visible
    const [n, k, p, seed] = [10, 48, 0.4, 12345];
    const eye = new Float64Array(k * k).map((_, i) => (i % (k + 1) === 0 ? 1 : 0));
    const w = randomF32(new Rng(3), n * k, 0.05);
    const got = run(new JsBackend({ dtype: 'f64' }), eye, w, k, n, k, { noise: { p, seed }, quantizeActivations: false });
    const { qw } = quantized(eye, w, k, k);
    const thr = noiseThreshold(p), segSeed = segmentSeed(seed, 0);
    let on = 0;
    for (let row = 0; row < n; row++) for (let c = 0; c < k; c++) {
      const i = row * k + c;
      const quantised = noiseHash(segSeed, i) >>> 8 < thr;
      on += Number(quantised);
      expect(got.y[c * n + row]).toBe(quantised ? qw[i] : w[i]);
    }
    expect(Math.abs(on / (n * k) - p)).toBeLessThan(0.08);
    // dW is dYᵀ·x for every weight (identity STE: (1 − λ_i) + λ_i = 1)
    for (let row = 0; row < n; row++) for (let c = 0; c < k; c++) expect(got.dw[row * k + c]).toBe(got.R[c * n + row]);
  });

  it('draws the same mask for the same seed and another for another seed; p = 1 quantises every weight (the packed path)', () => {
    const be = WasmBackend.createSync();
    const a = run(be, X, W, M, N, K, { noise: { p: 0.5, seed: 1 } }).y;
    const b = run(be, X, W, M, N, K, { noise: { p: 0.5, seed: 1 } }).y;
    const c = run(be, X, W, M, N, K, { noise: { p: 0.5, seed: 2 } }).y;
    expect(bits(a)).toEqual(bits(b));
    expect(bits(a)).not.toEqual(bits(c));
    expect(bits(run(be, X, W, M, N, K, { noise: { p: 1, seed: 1 } }).y)).toEqual(bits(run(be, X, W, M, N, K, {}).y));
  });

  it('uses the documented counter-based hash for the mask', () => {
    // element i is on iff noiseHash(seed, i) >>> 8 < floor(p·2^24): about p of them
    const thr = noiseThreshold(0.25);
    let on = 0;
    for (let i = 0; i < 20000; i++) on += Number(noiseHash(99, i) >>> 8 < thr);
    expect(Math.abs(on / 20000 - 0.25)).toBeLessThan(0.01);
  });

  it('rejects p outside [0, 1] and a seed that is not a u32', () => {
    const heap = new Heap(new JsBackend());
    const x = heap.zeros([2, 16]), w = heap.zeros([4, 16]);
    expect(() => bitLinear(x, w, null, { noise: { p: 1.2, seed: 0 } })).toThrow(/noise.p must be a fraction in \[0, 1\], got 1.2/);
    expect(() => bitLinear(x, w, null, { noise: { p: 0.5, seed: -1 } })).toThrow(/noise.seed must be an integer in \[0, 2\^32\), got -1/);
  });
});

describe('thread-count invariance', () => {
  it('gives the same bits on 1 and 2 threads for progressive, noisy, soft and LSQ steps of a GPT', async () => {
    const cfg = { vocabSize: 13, contextLength: 16, layers: 1, heads: 2, dim: 64, bitlinear: true, bitlinearOptions: { ste: 'lsq' as const, steByLayer: { 'model.layers.0.mlp.up_proj': 'soft' as const } } };
    const grads: number[][] = [];
    for (const threads of [1, 2]) {
      const be = await createWasmBackend({ threads });
      const heap = new Heap(be);
      const model = new GPT(cfg).materialize(heap, new Rng(8));
      new QatController(model, { weights: { steps: 10 }, activations: { steps: 10 }, noise: { start: 0.3, schedule: { steps: 10 }, seed: 4 } }).beginStep(4);
      const t = heap.indices(Int32Array.from({ length: 64 }, (_, i) => (i * 3) % 13), [4, 16]);
      model.forward(t, t).loss!.backward();
      grads.push(Array.from(be.readSync(model.params.gradOffset, model.params.blockSize)));
      be.dispose();
    }
    expect(bits(grads[1]!)).toEqual(bits(grads[0]!));
  });
});

describe('λ schedules', () => {
  it('ramps linearly as min(step/N, 1) (BitNet λ warmup), exponentially as 1 − (1 − t)^k, and along a rescaled sigmoid from 0 to 1', () => {
    expect(rampAt({ steps: 100 }, 25)).toBe(0.25);
    expect(rampAt({ steps: 100 }, 250)).toBe(1);
    expect(rampAt({ steps: 100, start: 50 }, 75)).toBe(0.25);
    expect(rampAt({ steps: 100, start: 50 }, 10)).toBe(0);
    expect(rampAt({ shape: 'exponential', steps: 100, k: 2 }, 25)).toBeCloseTo(1 - 0.75 ** 2, 15);
    expect(rampAt({ shape: 'sigmoid', steps: 100 }, 0)).toBe(0);
    expect(rampAt({ shape: 'sigmoid', steps: 100 }, 50)).toBeCloseTo(0.5, 12);
    expect(rampAt({ shape: 'sigmoid', steps: 100 }, 100)).toBe(1);
    expect(rampAt({ shape: 'sigmoid', steps: 100, sharpness: 10 }, 20)).toBeLessThan(0.05);
    expect(rampAt({ steps: 0 }, 0)).toBe(1);
  });

  it('quantises layer by layer: block i ramps during the i-th slice of the schedule', () => {
    const s = { steps: 400 };
    expect([0, 1, 2, 3].map((b) => layerwiseRampAt(s, 150, b, 4))).toEqual([1, 0.5, 0, 0]);
    expect([0, 1, 2, 3].map((b) => layerwiseRampAt(s, 150, b, 4, 'last-to-first'))).toEqual([0, 0, 0.5, 1]);
    expect(layerwiseRampAt(s, 400, 3, 4)).toBe(1);
  });

  it('anneals a temperature geometrically or linearly', () => {
    expect(annealAt({ from: 1, to: 0.01, steps: 100 }, 50)).toBeCloseTo(0.1, 12);
    expect(annealAt({ from: 1, to: 0.01, steps: 100 }, 500)).toBeCloseTo(0.01, 15);
    expect(annealAt({ from: 1, to: 0, steps: 10, interpolation: 'linear' }, 5)).toBe(0.5);
  });

  it('rejects negative lengths and bad shapes, naming the offending value', () => {
    expect(() => rampAt({ steps: -5 }, 0)).toThrow(/steps must be a non-negative integer \(the ramp length\), got -5/);
    expect(() => rampAt({ steps: 10, start: -1 }, 0)).toThrow(/start must be a non-negative integer step, got -1/);
    expect(() => rampAt({ shape: 'cosine' as 'linear', steps: 10 }, 0)).toThrow(/shape must be 'linear', 'exponential' or 'sigmoid', got cosine/);
    expect(() => rampAt({ shape: 'exponential', steps: 10, k: 0 }, 0)).toThrow(/k .* must be a finite number > 0, got 0/);
    const model = new GPT({ vocabSize: 5, contextLength: 4, layers: 1, heads: 1, dim: 16, bitlinear: true });
    expect(() => new QatController(model, { weights: { steps: -100 } })).toThrow(/QatController weights: steps must be a non-negative integer \(the ramp length\), got -100/);
    expect(() => annealAt({ from: 0, to: 1, steps: 10 }, 0)).toThrow(/from must be a finite number > 0|geometric annealing/);
  });
});

describe('QatController', () => {
  const model = new GPT({ vocabSize: 5, contextLength: 4, layers: 3, heads: 1, dim: 16, bitlinear: true, bitlinearOptions: { ste: 'soft' } });

  it('sets per-block λ for weights and activations, the noise fraction and a fresh seed per step and layer, and the soft temperature', () => {
    const qat = new QatController(model, {
      weights: { steps: 300 }, activations: { steps: 100, shape: 'exponential', k: 2 }, layerwise: 'first-to-last',
      noise: { start: 0.2, schedule: { steps: 200 }, rng: new Rng(5) }, softTemperature: { from: 1, to: 0.01, steps: 200 },
    });
    const state = qat.beginStep(150);
    expect(state.weightLambda).toEqual([1, 0.5, 0]);
    expect(state.activationLambda).toEqual([1, 1, 1]);
    expect(state.noiseP).toBeCloseTo(0.2 + 0.8 * 0.75, 12);
    expect(state.softTemperature).toBeCloseTo(0.01 ** 0.75, 12);
    const layers = bitLinearLayers(model);
    expect(layers.map((e) => e.layer.weightLambda)).toEqual(layers.map((e) => [1, 0.5, 0][e.block]));
    expect(layers.every((e) => e.layer.noise!.p === state.noiseP && e.layer.softTemperature === state.softTemperature)).toBe(true);
    const seeds = new Set(layers.map((e) => e.layer.noise!.seed));
    expect(seeds.size).toBe(layers.length);
    const before = layers[0]!.layer.noise!.seed;
    qat.beginStep(151);
    expect(layers[0]!.layer.noise!.seed).not.toBe(before);
    qat.beginStep(200);
    expect(layers.every((e) => e.layer.noise === null)).toBe(true); // p reached 1
    // a second controller with the same seed gives the same masks (resume)
    const again = new QatController(model, { noise: { start: 0.2, schedule: { steps: 200 }, seed: qat.noiseSeed } });
    again.beginStep(151);
    const resumed = layers.map((e) => e.layer.noise!.seed);
    qat.beginStep(151);
    expect(layers.map((e) => e.layer.noise!.seed)).toEqual(resumed);
  });

  it('sets a model-wide λ with setQuantLambda and rejects values outside [0, 1]', () => {
    setQuantLambda(model, { weights: 0.25, activations: 0.5 });
    expect(bitLinearLayers(model).every((e) => e.layer.weightLambda === 0.25 && e.layer.activationLambda === 0.5)).toBe(true);
    expect(() => setQuantLambda(model, { weights: 2 })).toThrow(/weights must be a number in \[0, 1\], got 2/);
    expect(() => new QatController(model, { noise: { start: 0.5, schedule: { steps: 10 } } })).toThrow(/give a seed or the model's rng/);
    expect(() => new QatController(new GPT({ vocabSize: 5, contextLength: 4, layers: 1, heads: 1, dim: 16 }))).toThrow(/no BitLinear layers/);
  });
});
