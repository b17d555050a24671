// AdaLoRA: the SVD form B·(A ⊙ E) and the orthogonality regulariser against central finite
// differences (f64, js backend, 1e-6 relative as grad.test.ts), PEFT's budget schedule and
// sensitivity scores against their definitions, masking to the budget, PEFT-format files resized
// by rank_pattern and loaded back, a run that lowers the loss and ends at the target budget,
// and bad input.
import { describe, expect, it } from 'vitest';
import { JsBackend } from '../src/backend/js/index.js';
import { mul, noGrad, sum } from '../src/autograd/index.js';
import { Heap } from '../src/tensor/heap.js';
import type { Tensor } from '../src/tensor/tensor.js';
import { AdamW } from '../src/optim/adamw.js';
import { Rng } from '../src/util/rng.js';
import { PeftModel } from '../src/peft/model.js';
import type { ModelConfig } from '../src/train/model.js';
import {
  AdaLora, RankAllocator, adaLoraBudget, adaLoraConfigJSON, adaLoraFileTensors, loadAdaLoraTensors, orthogonalityPenalty, resolveAdaLoraConfig, svdScaledRows,
} from '../src/peft/adalora.js';
import { loraConfigJSON } from '../src/peft/config.js';

const H = 1e-5;
const f64Heap = () => new Heap(new JsBackend({ dtype: 'f64' }));
const randn = (rng: Rng, n: number) => {
  const a = new Float64Array(n);
  rng.fillNormal(a);
  return a;
};
const maxAbs = (a: ArrayLike<number>) => Array.from(a).reduce((m, v) => Math.max(m, Math.abs(v)), 0);

/** Worst relative error of d(Σ f·R)/d(inputs) against central differences. */
function checkGrad(f: (...t: Tensor[]) => Tensor, shapes: number[][]): number {
  const heap = f64Heap();
  const vals = shapes.map((s) => randn(new Rng(s.length * 7 + s[0]!), s.reduce((a, b) => a * b, 1)));
  const run = (grad: boolean) => {
    const ts = vals.map((v, i) => heap.fromArray(v, shapes[i]!, { requiresGrad: grad }));
    const body = () => {
      const out = f(...ts);
      const R = randn(new Rng(11), out.size);
      return sum(mul(out, heap.fromArray(R, out.shape)));
    };
    const l = grad ? body() : noGrad(body);
    const value = l.dataSync()[0]!;
    let grads: Float64Array[] = [];
    if (grad) {
      l.backward();
      grads = ts.map((t) => Float64Array.from(t.grad!.dataSync()));
    }
    heap.resetArena();
    return { value, grads };
  };
  const { grads } = run(true);
  let worst = 0;
  vals.forEach((v, i) => {
    let err = 0, scale = 1;
    for (let j = 0; j < v.length; j++) {
      const keep = v[j]!;
      v[j] = keep + H;
      const up = run(false).value;
      v[j] = keep - H;
      const down = run(false).value;
      v[j] = keep;
      const num = (up - down) / (2 * H);
      err = Math.max(err, Math.abs(num - grads[i]![j]!));
      scale = Math.max(scale, Math.abs(num));
    }
    worst = Math.max(worst, err / scale);
  });
  return worst;
}

describe('AdaLoRA ops', () => {
  it('A ⊙ E (rows of A scaled by the singular values): gradients to A and E', () => {
    expect(checkGrad((A, E) => svdScaledRows(A, E), [[4, 7], [4, 1]])).toBeLessThan(1e-6);
  });

  it('the orthogonality penalty w·Σ‖P Pᵀ − I‖_F / n (lora_A rows, lora_B columns): value and gradients', () => {
    const heap = f64Heap();
    const rng = new Rng(2);
    const A = randn(rng, 3 * 5), B = randn(rng, 6 * 3);
    const pen = noGrad(() => orthogonalityPenalty([{ P: heap.fromArray(A, [3, 5]), side: 'rows' }, { P: heap.fromArray(B, [6, 3]), side: 'cols' }], 0.5).dataSync()[0]!);
    const fro = (m: number[][]) => Math.sqrt(m.flat().reduce((s, x) => s + x * x, 0));
    const gram = (get: (i: number, j: number) => number, r: number, inner: number) =>
      Array.from({ length: r }, (_, i) => Array.from({ length: r }, (_, j) => {
        let s = 0;
        for (let k = 0; k < inner; k++) s += get(i, k) * get(j, k);
        return s - (i === j ? 1 : 0);
      }));
    const want = (0.5 * (fro(gram((i, k) => A[i * 5 + k]!, 3, 5)) + fro(gram((i, k) => B[k * 3 + i]!, 3, 6)))) / 2;
    expect(Math.abs(pen - want)).toBeLessThan(1e-12);
    expect(checkGrad((a, b) => orthogonalityPenalty([{ P: a, side: 'rows' }, { P: b, side: 'cols' }], 0.7), [[3, 5], [6, 3]])).toBeLessThan(1e-6);
  });

  it("PEFT's budget schedule: init budget through tinit, cubic decrease masked every deltaT, target after T − tfinal", () => {
    const { ada } = resolveAdaLoraConfig({ init_r: 6, target_r: 4, tinit: 2, tfinal: 3, deltaT: 2, total_step: 20 }, null);
    const b = (step: number) => adaLoraBudget(ada, 24, 16, step);
    expect(b(2)).toEqual({ budget: 24, mask: false });
    // step 5: c = 1 − 3/15 = 0.8 → trunc(8·0.512 + 16) = 20, 5 % 2 ≠ 0
    expect(b(5)).toEqual({ budget: 20, mask: false });
    expect(b(6)).toEqual({ budget: Math.trunc(8 * (1 - 4 / 15) ** 3 + 16), mask: true });
    expect(b(17)).toEqual({ budget: 16, mask: false });
    expect(b(18)).toEqual({ budget: 16, mask: true });
  });
});

const tinyModel = (over: Partial<ModelConfig> = {}): ModelConfig => ({
  vocabSize: 11, contextLength: 8, layers: 2, heads: 2, dim: 16, norm: 'layer', mlp: 'gelu', pos: 'learned',
  bitlinear: false, bias: false, tiedHead: false, initStd: 0.1, ...over,
});

function adaModel(heap: Heap, json: Record<string, unknown> = {}, over: Partial<ModelConfig> = {}) {
  const { lora, ada } = resolveAdaLoraConfig({ init_r: 4, target_r: 2, lora_alpha: 8, target_modules: ['q_proj', 'v_proj', 'down_proj'], tinit: 2, tfinal: 4, total_step: 16, ...json }, null);
  const peft = PeftModel.build({ model: tinyModel(over), lora });
  const adalora = AdaLora.attach(peft, ada);
  peft.materialize(heap, new Rng(1));
  peft.initBaseRandom(new Rng(2));
  adalora.init(new Rng(3));
  return { peft, adalora, lora, ada };
}

function batch(rng: Rng, B: number, T: number) {
  const tokens = Int32Array.from({ length: B * T }, () => rng.int(11));
  return { tokens, targets: tokens.map((t) => (t * 3 + 1) % 11) };
}

describe('AdaLoRA on a PeftModel', () => {
  it("registers PEFT's lora_A (r, in), lora_E (r, 1), lora_B (out, r); E's gradient through the model matches finite differences", () => {
    const heap = f64Heap();
    const { peft, adalora } = adaModel(heap);
    expect(peft.params.names().filter((n) => n.includes('layers.0.self_attn.q_proj'))).toEqual([
      'model.layers.0.self_attn.q_proj.lora_A.weight', 'model.layers.0.self_attn.q_proj.lora_B.weight', 'model.layers.0.self_attn.q_proj.lora_E',
    ]);
    expect(adalora.adapters).toHaveLength(6);
    // non-zero E so every path carries gradient
    for (const a of adalora.adapters) heap.backend.write(a.E.offset, [0.5, -0.3, 0.2, 0.8]);
    const { tokens, targets } = batch(new Rng(5), 2, 6);
    const lossOf = () => noGrad(() => peft.forward(heap.indices(tokens, [2, 6]), heap.indices(targets, [2, 6])).loss!.dataSync()[0]!);
    const ext = adalora.extension();
    ext.loss(heap.indices(tokens, [2, 6]), heap.indices(targets, [2, 6]), 0).backward();
    const grads = adalora.adapters.map((a) => Float64Array.from(heap.backend.readSync(a.E.gradPtr, 4)));
    heap.resetArena();
    // the loss's E gradient (the penalty does not involve E): check against the plain loss's differences
    let worst = 0;
    adalora.adapters.forEach((a, i) => {
      const e = Float64Array.from(heap.backend.readSync(a.E.offset, 4));
      for (let j = 0; j < 4; j++) {
        heap.backend.write(a.E.offset + j, [e[j]! + H]);
        const up = lossOf();
        heap.resetArena();
        heap.backend.write(a.E.offset + j, [e[j]! - H]);
        const down = lossOf();
        heap.resetArena();
        heap.backend.write(a.E.offset + j, [e[j]!]);
        worst = Math.max(worst, Math.abs((up - down) / (2 * H) - grads[i]![j]!));
      }
    });
    expect(worst / Math.max(1, maxAbs(grads.flatMap((g) => Array.from(g))))).toBeLessThan(1e-6);
  });

  it('scores are PEFT\'s EMAs of |w·g| and their uncertainty; masking zeroes the lowest triplets down to the budget', () => {
    const heap = f64Heap();
    const { adalora } = adaModel(heap);
    const alloc = adalora.allocator;
    const a0 = adalora.adapters[0]!;
    // one update with known weights and gradients
    const rng = new Rng(8);
    for (const a of adalora.adapters) {
      for (const t of [a.A, a.E, a.B]) {
        heap.backend.write(t.offset, randn(rng, t.size));
        heap.backend.write(t.gradPtr, randn(rng, t.size));
      }
    }
    const w = Float64Array.from(heap.backend.readSync(a0.E.offset, 4)), g = Float64Array.from(heap.backend.readSync(a0.E.gradPtr, 4));
    alloc.update(0); // step 0 ≤ tinit: scores only
    const s = alloc.tripletScores()[0]!;
    // first update from zero: Ī = (1−β1)|wg|, Ū = (1−β2)·|I − Ī| = (1−β2)·β1·|wg|; β = 0.85
    const e = (i: number) => 0.15 * Math.abs(w[i]! * g[i]!) * 0.15 * 0.85 * Math.abs(w[i]! * g[i]!);
    const A = Float64Array.from(heap.backend.readSync(a0.A.offset, a0.A.size)), gA = Float64Array.from(heap.backend.readSync(a0.A.gradPtr, a0.A.size));
    let mA = 0;
    for (let k = 0; k < 16; k++) mA += (0.15 * Math.abs(A[k]! * gA[k]!)) * (0.15 * 0.85 * Math.abs(A[k]! * gA[k]!));
    const B = Float64Array.from(heap.backend.readSync(a0.B.offset, a0.B.size)), gB = Float64Array.from(heap.backend.readSync(a0.B.gradPtr, a0.B.size));
    let mB = 0;
    for (let o = 0; o < 16; o++) mB += (0.15 * Math.abs(B[o * 4]! * gB[o * 4]!)) * (0.15 * 0.85 * Math.abs(B[o * 4]! * gB[o * 4]!));
    expect(Math.abs(s[0]! - (e(0) + mA / 16 + mB / 16))).toBeLessThan(1e-15 + 1e-12 * Math.abs(s[0]!));
    // mask to 15 of 24: the 9 lowest scores' E become 0
    alloc.maskToBudget(15);
    const all = alloc.tripletScores().flatMap((x) => Array.from(x));
    const threshold = [...all].sort((x, y) => x - y)[8]!;
    const ranks = [...alloc.ranks().values()];
    expect(ranks.reduce((x, y) => x + y)).toBe(15);
    adalora.adapters.forEach((a, i) => {
      const ev = heap.backend.readSync(a.E.offset, 4);
      alloc.tripletScores()[i]!.forEach((sc, j) => {
        if (sc <= threshold) expect(ev[j]).toBe(0);
        else expect(ev[j]).not.toBe(0);
      });
    });
    // state round trip
    const state = JSON.parse(JSON.stringify(alloc.state()));
    const again = new RankAllocator(adalora.adapters, adalora.ada);
    again.restore(state, 'trainer.json');
    expect(again.tripletScores()).toEqual(alloc.tripletScores());
    expect(again.kept).toEqual(alloc.kept);
  });

  it('a run lowers the loss, ends at target_r per projection on average, and its PEFT files (resized by rank_pattern) load back to the same logits', () => {
    const heap = new Heap(new JsBackend());
    const { peft, adalora, lora, ada } = adaModel(heap);
    const ext = adalora.extension();
    const opt = new AdamW(peft.params, { lr: 1e-2, weightDecay: 0 });
    const rng = new Rng(9);
    const losses: number[] = [];
    for (let step = 0; step < 16; step++) {
      const { tokens, targets } = batch(rng, 4, 8);
      opt.zeroGrad();
      ext.beforeStep(step);
      const l = ext.loss(heap.indices(tokens, [4, 8]), heap.indices(targets, [4, 8]), step);
      losses.push(l.itemSync());
      l.backward();
      opt.step();
      ext.afterUpdate(step);
      heap.resetArena();
    }
    expect(losses.at(-1)!).toBeLessThan(losses[0]! - 0.2);
    const ranks = [...adalora.allocator.ranks().values()];
    expect(ranks.reduce((x, y) => x + y)).toBe(2 * 6);
    const probe = Int32Array.from([1, 2, 3, 4, 5, 6, 7, 8]);
    const logits = () => noGrad(() => Array.from(peft.forward(heap.indices(probe, [1, 8])).logits.dataSync()));
    const before = logits();
    heap.resetArena();
    const { tensors, rankPattern } = adaLoraFileTensors(adalora.allocator);
    const q0 = 'base_model.model.model.layers.0.self_attn.q_proj';
    const k = adalora.allocator.kept[0]!.filter(Boolean).length;
    expect(tensors.get(`${q0}.lora_A`)!.shape).toEqual([k, 16]);
    expect(tensors.get(`${q0}.lora_E`)!.shape).toEqual([k, 1]);
    expect(tensors.get(`${q0}.lora_B`)!.shape).toEqual([16, k]);
    const json = adaLoraConfigJSON(loraConfigJSON(lora, null), ada, rankPattern);
    expect(json).toMatchObject({ peft_type: 'ADALORA', init_r: 4, target_r: 2, tinit: 2, tfinal: 4, total_step: 16, beta1: 0.85, orth_reg_weight: 0.5 });
    expect(json.rank_pattern![`${q0}.lora_E`]).toEqual(adalora.allocator.kept[0]);
    // a fresh model of the same base, loaded from the files
    const fresh = adaModel(heap);
    loadAdaLoraTensors(fresh.adalora.allocator, tensors, JSON.parse(JSON.stringify(json.rank_pattern)));
    // the base weights of both came from the same seeds; the adapters from the files
    const after = noGrad(() => Array.from(fresh.peft.forward(heap.indices(probe, [1, 8])).logits.dataSync()));
    heap.resetArena();
    expect(Math.max(...after.map((v, i) => Math.abs(v - before[i]!)))).toBeLessThan(1e-6);
    // bad input, refused before anything is written
    const extra = new Map(tensors);
    extra.set('base_model.model.model.layers.0.mlp.up_proj.lora_A', { shape: [1, 16], data: new Float32Array(16) });
    expect(() => loadAdaLoraTensors(fresh.adalora.allocator, extra, json.rank_pattern!)).toThrow(/unknown tensor base_model.model.model.layers.0.mlp.up_proj.lora_A/);
    const wrong = new Map(tensors);
    wrong.set(`${q0}.lora_B`, { shape: [32, k], data: new Float32Array(32 * k) });
    expect(() => loadAdaLoraTensors(fresh.adalora.allocator, wrong, json.rank_pattern!)).toThrow(/q_proj.lora_B has shape \(32, \d\) but this model needs \(16, \d\); the adapter is of another base/);
  });

  it('refuses bad settings by name', () => {
    expect(() => resolveAdaLoraConfig({ init_r: 4, target_r: 8 }, 100)).toThrow(/target_r 8 is larger than init_r 4/);
    expect(() => resolveAdaLoraConfig({ beta1: 1 }, 100)).toThrow(/beta1 must be in \(0, 1\), got 1/);
    expect(() => resolveAdaLoraConfig({}, null)).toThrow(/total_step is needed/);
    expect(() => resolveAdaLoraConfig({ tinit: 60, tfinal: 40 }, 100)).toThrow(/tinit 60 \+ tfinal 40 must be less than total_step 100/);
    expect(() => resolveAdaLoraConfig({ peft_type: 'LORA' }, 100)).toThrow(/peft_type is "LORA", expected "ADALORA"/);
  });
});
