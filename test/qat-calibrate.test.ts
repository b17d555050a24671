// Activation calibration: the op with a static clip (s = 127/c for every token, outliers
// saturating, the clipped activation STE zeroing their gradient; an uncalibrated clip of 0 is
// the per-token path), the observation hook, `calibrate` (absmax, percentile, EMA) writing each
// layer's `…input_clip`, and online recalibration every K steps.
import { describe, expect, it } from 'vitest';
import { JsBackend } from '../src/backend/js/index.js';
import { WasmBackend } from '../src/backend/wasm/index.js';
import { bitLinear, mul, rmsNorm, sum } from '../src/autograd/index.js';
import { GPT } from '../src/nn/gpt.js';
import type { TokenBatch } from '../src/optim/train-step.js';
import { OnlineCalibrator, absPercentile, bitLinearLayers, calibrate } from '../src/qat/index.js';
import { Heap } from '../src/tensor/heap.js';
import type { Tensor } from '../src/tensor/tensor.js';
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

describe('bitLinear with a static activation clip', () => {
  const [M, N, K] = [8, 6, 32];
  const rng = new Rng(1);
  const x = randomF32(rng, M * K, 1), w = randomF32(rng, N * K, 0.05);

  it('quantises every token with s = 127/clip, saturating beyond the clip, and the clipped STE zeroes their gradient (f64)', () => {
    const clip = 1.2;
    const heap = new Heap(new JsBackend({ dtype: 'f64' }));
    const xt = heap.fromArray(x, [M, K], { requiresGrad: true }), wt = heap.fromArray(w, [N, K]);
    const y = bitLinear(xt, wt, null, { activationClip: heap.fromArray([clip], [1]), activationSte: 'clipped' });
    const R = randomF32(new Rng(2), M * N);
    const yv = y.dataSync();
    sum(mul(y, heap.fromArray(R, [M, N]))).backward();
    const dx = xt.grad!.dataSync();
    let a = 0;
    for (const v of w) a += Math.abs(v);
    const sw = f(1 / (a / w.length)), sx = f(127 / clip);
    const wq = w.map((v) => Math.max(-1, Math.min(1, rne(f(v * sw)))));
    const xq = x.map((v) => Math.max(-128, Math.min(127, rne(f(v * sx)))));
    let saturated = 0;
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++) {
        let acc = 0;
        for (let k = 0; k < K; k++) acc += xq[m * K + k]! * wq[n * K + k]!;
        expect(yv[m * N + n]).toBeCloseTo(acc / (sx * sw), 5);
      }
      for (let k = 0; k < K; k++) {
        const v = f(x[m * K + k]! * sx);
        const inside = v >= -128 && v <= 127;
        if (!inside) saturated++;
        let g = 0;
        for (let n = 0; n < N; n++) g += R[m * N + n]! * f(wq[n * K + k]! / sw);
        if (inside) expect(dx[m * K + k]).toBeCloseTo(g, 5);
        else expect(dx[m * K + k]).toBe(0);
      }
    }
    expect(saturated).toBeGreaterThan(0);
  });

  it('with a clip of 0 (not calibrated yet) is the per-token path, bit for bit', () => {
    const be = WasmBackend.createSync();
    const heap = new Heap(be);
    const xt = heap.fromArray(x, [M, K]), wt = heap.fromArray(w, [N, K]);
    const stat = bitLinear(xt, wt, null, { activationClip: heap.fromArray([0], [1]), activationSte: 'clipped' }).dataSync();
    expect(bits(stat)).toEqual(bits(bitLinear(xt, wt).dataSync()));
  });

  it("passes the quantiser's input to the observe hook: RMSNorm(x) with the built-in norm", () => {
    const heap = new Heap(WasmBackend.createSync());
    const xt = heap.fromArray(x, [M, K]), wt = heap.fromArray(w, [N, K]);
    let seen: Tensor | null = null;
    bitLinear(xt, wt, null, { norm: true, observe: (xn) => { seen = xn; } });
    expect(seen!.shape).toEqual([M, K]);
    expect(bits(seen!.dataSync())).toEqual(bits(rmsNorm(xt, null, 1e-5).dataSync()));
  });
});

const SHAPE = { vocabSize: 17, contextLength: 16, layers: 2, heads: 2, dim: 32, bitlinear: true } as const;

function batches(n: number, seed: number): TokenBatch[] {
  const rng = new Rng(seed);
  return Array.from({ length: n }, () => {
    const tokens = Int32Array.from({ length: 4 * 16 }, () => rng.int(17));
    return { tokens, targets: tokens.map((t) => (t + 1) % 17), B: 4, T: 16 };
  });
}

/** The quantiser inputs of every layer over `bs`, observed with the layers' hooks. */
async function observed(model: GPT, heap: Heap, bs: TokenBatch[]): Promise<Float32Array[][]> {
  const entries = bitLinearLayers(model);
  const out: Float32Array[][] = entries.map(() => []);
  for (const b of bs) {
    const seen: Tensor[] = [];
    entries.forEach((e, i) => { e.layer.observe = (xn) => { seen[i] = xn; }; });
    model.forward(heap.indices(b.tokens, [b.B, b.T]));
    for (let i = 0; i < entries.length; i++) out[i]!.push(Float32Array.from(await seen[i]!.data()));
    heap.resetArena();
  }
  for (const e of entries) e.layer.observe = null;
  return out;
}

describe('calibrate', () => {
  function setup(options = {}) {
    const model = new GPT({ ...SHAPE, bitlinearOptions: { activationScale: 'static', activationSte: 'clipped', ...options } });
    const heap = new Heap(WasmBackend.createSync());
    model.materialize(heap, new Rng(7));
    return { model, heap };
  }

  it('registers one input_clip per layer (stacked q/k/v share one), without weight decay, 0 until calibrated', () => {
    const { model } = setup();
    const clips = model.params.names().filter((n) => n.endsWith('input_clip'));
    expect(clips).toEqual([
      'model.layers.0.self_attn.qkv_proj.input_clip', 'model.layers.0.self_attn.o_proj.input_clip',
      'model.layers.0.mlp.up_proj.input_clip', 'model.layers.0.mlp.down_proj.input_clip',
      'model.layers.1.self_attn.qkv_proj.input_clip', 'model.layers.1.self_attn.o_proj.input_clip',
      'model.layers.1.mlp.up_proj.input_clip', 'model.layers.1.mlp.down_proj.input_clip',
    ]);
    expect(bitLinearLayers(model).every((e) => e.layer.inputClip!.dataSync()[0] === 0)).toBe(true);
  });

  it("with 'absmax' writes the largest |x| seen over the batches into every layer's clip", async () => {
    const { model, heap } = setup();
    const bs = batches(3, 1);
    const seen = await observed(model, heap, bs);
    const result = await calibrate(model, bs);
    expect(result.batches).toBe(3);
    bitLinearLayers(model).forEach((e, i) => {
      const want = Math.max(...seen[i]!.map((v) => absPercentile(v, 100)));
      expect(result.layers[i]!.clip).toBe(want);
      expect(e.layer.inputClip!.dataSync()[0]).toBe(f(want));
    });
  });

  it("with 'percentile' averages the batches' p-th percentiles of |x|, and saturates the outliers above it", async () => {
    const { model, heap } = setup();
    const bs = batches(2, 2);
    const seen = await observed(model, heap, bs);
    const result = await calibrate(model, bs, { method: 'percentile', percentile: 99 });
    result.layers.forEach((l, i) => {
      const want = (absPercentile(seen[i]![0]!, 99) + absPercentile(seen[i]![1]!, 99)) / 2;
      expect(l.clip).toBeCloseTo(want, 12);
      expect(l.clip).toBeLessThan(Math.max(...seen[i]!.map((v) => absPercentile(v, 100))));
    });
    // the model now quantises with the static clips: its loss differs from the per-token one (clips reset to 0)
    const b = bs[0]!;
    const lossNow = (): number => {
      const l = model.forward(heap.indices(b.tokens, [b.B, b.T]), heap.indices(b.targets, [b.B, b.T])).loss!.itemSync();
      heap.resetArena();
      return l;
    };
    const staticLoss = lossNow();
    for (const e of bitLinearLayers(model)) heap.backend.write(e.layer.inputClip!.offset, [0]);
    expect(lossNow()).not.toBe(staticLoss);
  });

  it("with 'ema' continues from the current clips: c ← m·c + (1 − m)·absmax(batch)", async () => {
    const { model, heap } = setup();
    const [b1, b2] = batches(2, 3);
    await calibrate(model, [b1!]);
    const first = bitLinearLayers(model).map((e) => e.layer.inputClip!.dataSync()[0]!);
    const seen = await observed(model, heap, [b2!]);
    const result = await calibrate(model, [b2!], { method: 'ema', momentum: 0.8 });
    result.layers.forEach((l, i) => expect(l.clip).toBeCloseTo(0.8 * first[i]! + 0.2 * absPercentile(seen[i]![0]!, 100), 6));
  });

  it('recalibrates online every K steps (an EMA by default) and does nothing in between', async () => {
    const { model } = setup();
    const online = new OnlineCalibrator(model, { every: 5, momentum: 0.5 });
    const bs = batches(3, 4);
    expect(await online.maybeRefresh(3, bs[0]!)).toBeNull();
    expect(bitLinearLayers(model)[0]!.layer.inputClip!.dataSync()[0]).toBe(0);
    const r0 = await online.maybeRefresh(0, bs[0]!);
    expect(r0!.method).toBe('ema');
    const c0 = bitLinearLayers(model)[0]!.layer.inputClip!.dataSync()[0]!;
    expect(c0).toBeGreaterThan(0);
    await online.maybeRefresh(5, bs[1]!);
    expect(bitLinearLayers(model)[0]!.layer.inputClip!.dataSync()[0]).not.toBe(c0);
  });

  it('returns the clips of per-token models too, without writing anything', async () => {
    const model = new GPT(SHAPE);
    model.materialize(new Heap(new JsBackend()), new Rng(1));
    const r = await calibrate(model, batches(1, 5));
    expect(r.layers.every((l) => !l.written && l.clip > 0)).toBe(true);
  });

  it('rejects bad options and empty batch lists, naming the value', async () => {
    const { model } = setup();
    await expect(calibrate(model, batches(1, 6), { method: 'mse' as 'absmax' })).rejects.toThrow(/method must be 'absmax', 'percentile' or 'ema', got mse/);
    await expect(calibrate(model, batches(1, 6), { method: 'percentile', percentile: 0 })).rejects.toThrow(/percentile must be in \(0, 100\], got 0/);
    await expect(calibrate(model, [])).rejects.toThrow(/no batches given/);
    expect(() => new OnlineCalibrator(model, { every: 0 })).toThrow(/every must be a positive integer .* got 0/);
    expect(() => new GPT({ ...SHAPE, bitlinearOptions: { activationScale: 'layer' as 'token' } })).toThrow(/activationScale must be 'token' or 'static', got layer/);
  });
});
