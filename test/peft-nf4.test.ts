// QLoRA's NF4 base (src/peft/nf4.ts) and merging (src/peft/merge.ts): the format's numerics, the
// wasm kernels against the js reference on odd shapes and split ranges, gradients through an NF4
// base against finite differences, and merge exactness for a dense base.
import { describe, expect, it } from 'vitest';
import { JsBackend } from '../src/backend/js/index.js';
import { WasmBackend } from '../src/backend/wasm/index.js';
import type { Backend } from '../src/backend/backend.js';
import { mul, noGrad, sum } from '../src/autograd/index.js';
import { loraProjection } from '../src/autograd/ops/lora.js';
import { FrozenNF4, NF4_LEVELS, dequantizeNf4, dynamicMap8, quantizeNf4 } from '../src/peft/nf4.js';
import { PeftModel } from '../src/peft/model.js';
import { resolveLoraConfig } from '../src/peft/config.js';
import { mergeAdapter } from '../src/peft/merge.js';
import { AdamW } from '../src/optim/adamw.js';
import { Heap } from '../src/tensor/heap.js';
import { createModel, type ModelConfig } from '../src/train/model.js';
import { Rng } from '../src/util/rng.js';

function normals(rng: Rng, n: number, std = 1): Float32Array {
  const v = new Float32Array(n);
  rng.fillNormal(v, 0, std);
  return v;
}

describe('NF4 with double-quantised absmax (bitsandbytes layout)', () => {
  it("uses bitsandbytes' 16 levels and its 256-entry signed dynamic map", () => {
    expect(NF4_LEVELS).toHaveLength(16);
    expect(NF4_LEVELS[0]).toBe(-1);
    expect(NF4_LEVELS[7]).toBe(0);
    expect(NF4_LEVELS[15]).toBe(1);
    const dyn = dynamicMap8();
    expect(dyn).toHaveLength(256);
    for (let i = 1; i < 256; i++) expect(dyn[i]!).toBeGreaterThanOrEqual(dyn[i - 1]!);
    expect(dyn[255]).toBe(1);
    expect([...dyn].filter((v) => v === 0)).toHaveLength(1);
    expect(Math.min(...[...dyn].filter((v) => v > 0))).toBeCloseTo(1e-6 * 0.55, 9); // 10^-6 · mean(0.1, 1)
  });

  it('stores 4.13 bits a weight and reconstructs within half the widest level gap of the block absmax', () => {
    const rng = new Rng(1);
    const w = normals(rng, 64 * 300, 0.02);
    const q = quantizeNf4(w);
    expect(q.codes.length).toBe(w.length / 2);
    expect(q.absmaxCodes.length).toBe(300);
    expect(q.absmaxScales.length).toBe(2);
    const d = dequantizeNf4(q);
    let worst = 0; // error / absmax of the block
    for (let b = 0; b < 300; b++) {
      let absmax = 0;
      for (let i = b * 64; i < (b + 1) * 64; i++) absmax = Math.max(absmax, Math.abs(w[i]!));
      for (let i = b * 64; i < (b + 1) * 64; i++) worst = Math.max(worst, Math.abs(d[i]! - w[i]!) / absmax);
    }
    // half the widest NF4 gap (1 − 0.7230)/2 = 0.1385, plus the 8-bit absmax error
    expect(worst).toBeLessThanOrEqual(0.1385 + 0.02);
    // quantising the dequantised values gives the same codes (the grid is a fixed point)
    expect(quantizeNf4(d).codes).toEqual(q.codes);
  });
});

function nf4Case(be: Backend, M: number, N: number, K: number, seed: number): { y: Float32Array; dx: Float32Array } {
  const heap = new Heap(be);
  const rng = new Rng(seed);
  const base = new FrozenNF4(N, K);
  base.materialize(heap);
  base.load(heap, normals(rng, N * K, 0.05));
  const x = heap.alloc(M * K);
  be.write(x, normals(rng, M * K));
  const y = heap.alloc(M * N);
  const back = base.forward(heap, x, y, M);
  const dy = heap.alloc(M * N);
  be.write(dy, normals(rng, M * N));
  const dx = heap.alloc(M * K);
  be.write(dx, normals(rng, M * K));
  back(dy, dx);
  return { y: Float32Array.from(be.readSync(y, M * N)), dx: Float32Array.from(be.readSync(dx, M * K)) };
}

describe('NF4 kernels: wasm against the js reference', () => {
  it('forward and dX agree on odd shapes, for any split of the rows', () => {
    for (const [M, N, K] of [[1, 1, 64], [7, 5, 128], [33, 13, 192]] as const) {
      const ref = nf4Case(new JsBackend(), M, N, K, M + N);
      for (const splits of [1, 3]) {
        const got = nf4Case(WasmBackend.createSync({ splits }), M, N, K, M + N);
        let worst = 0;
        for (const [a, b] of [[got.y, ref.y], [got.dx, ref.dx]] as const) {
          for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!) / (1 + Math.abs(b[i]!)));
        }
        expect(worst).toBeLessThanOrEqual(1e-5);
      }
    }
  });

  it('refuses K that is not a multiple of 64, naming the fix', () => {
    expect(() => new FrozenNF4(8, 100, 'model.layers.0.mlp.up_proj')).toThrow(/up_proj has 100 input features; NF4 blocks of 64 need a multiple of 64/);
  });
});

describe('QLoRA: LoRA over an NF4 base', () => {
  it('x, A and B gradients match finite differences (f64, h = 1e-5)', () => {
    const heap = new Heap(new JsBackend({ dtype: 'f64' }));
    const rng = new Rng(8);
    const [M, K, N, r] = [3, 64, 4, 2];
    const base = new FrozenNF4(N, K);
    base.materialize(heap);
    base.load(heap, normals(rng, N * K));
    const x = heap.fromArray(normals(rng, M * K), [M, K], { requiresGrad: true });
    const A = heap.fromArray(normals(rng, r * K), [r, K], { requiresGrad: true });
    const B = heap.fromArray(normals(rng, N * r), [N, r], { requiresGrad: true });
    const R = normals(rng, M * N);
    const f = () => sum(mul(loraProjection(x, base, [{ A, B, scale: 1.3, col0: 0 }], null), heap.fromArray(R, [M, N])));
    f().backward();
    for (const t of [x, A, B]) {
      const g = heap.backend.readSync(t.gradPtr, t.size);
      for (let i = 0; i < t.size; i += 7) {
        const v = heap.backend.readSync(t.offset + i, 1)[0]!;
        heap.backend.write(t.offset + i, [v + 1e-5]);
        const lp = noGrad(() => f().itemSync());
        heap.backend.write(t.offset + i, [v - 1e-5]);
        const lm = noGrad(() => f().itemSync());
        heap.backend.write(t.offset + i, [v]);
        expect(Math.abs(g[i]! - (lp - lm) / 2e-5)).toBeLessThan(1e-6 * Math.max(1, Math.abs(g[i]!)));
      }
    }
  });
});

describe('merging', () => {
  it('into a dense base is exact: the merged model gives the adapted model\'s logits', () => {
    const cfg: ModelConfig = { vocabSize: 9, contextLength: 8, layers: 1, heads: 2, dim: 16, norm: 'layer', mlp: 'gelu', pos: 'learned', bitlinear: false, bias: false, tiedHead: false, initStd: 0.2 };
    const heap = new Heap(new JsBackend({ dtype: 'f64' }));
    const lora = resolveLoraConfig({ r: 3, lora_alpha: 6, target_modules: 'all-linear', rank_pattern: { down_proj: 2 } });
    const peft = PeftModel.build({ model: cfg, lora }).materialize(heap, new Rng(1));
    const opt = new AdamW(peft.params, { lr: 0.05, weightDecay: 0 });
    const tokens = Int32Array.from([1, 2, 3, 4, 5, 6, 7, 8]);
    const targets = Int32Array.from([2, 3, 4, 5, 6, 7, 8, 0]);
    for (let s = 0; s < 5; s++) {
      opt.zeroGrad();
      peft.forward(heap.indices(tokens, [1, 8]), heap.indices(targets, [1, 8])).loss!.backward();
      opt.step();
      heap.resetArena();
    }
    const logits = (m: { forward: (t: ReturnType<Heap['indices']>) => { logits: { dataSync(): ArrayLike<number> } } }) =>
      Float64Array.from(noGrad(() => m.forward(heap.indices(tokens, [1, 8])).logits.dataSync()));
    const adapted = logits(peft as never);
    heap.resetArena();
    const toMap = (vals: Map<string, Float32Array>, set: { getParam(n: string): { shape: readonly number[] } }) =>
      new Map([...vals].map(([k, v]) => [k, { shape: set.getParam(k).shape, data: v }]));
    const merged = mergeAdapter(toMap(peft.base.params.exportValuesSync(), peft.base.params), toMap(peft.params.exportValuesSync(), peft.params), lora, false);
    expect(merged.projections.map((p) => p.name)).toContain('model.layers.0.mlp.down_proj');
    const plain = createModel(cfg).materialize(heap, new Rng(0));
    plain.params.importValues(new Map([...merged.tensors].map(([k, v]) => [k, v.data])));
    const got = logits(plain as never);
    for (let i = 0; i < got.length; i++) expect(Math.abs(got[i]! - adapted[i]!)).toBeLessThan(1e-5);
  });
});
