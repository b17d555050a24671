// BitFit: only biases train — or, in BitNet models (no biases), the norm and sub-norm scales.
// Gradients against central finite differences (f64, js backend, 1e-6 relative as grad.test.ts),
// a short run that lowers the loss without moving the base, the file's names and bad input.
import { describe, expect, it } from 'vitest';
import { JsBackend } from '../src/backend/js/index.js';
import { noGrad } from '../src/autograd/index.js';
import { Heap } from '../src/tensor/heap.js';
import { ParameterSet } from '../src/tensor/parameters.js';
import { GPT } from '../src/nn/gpt.js';
import { LlamaModel } from '../src/nn/llama.js';
import { AdamW } from '../src/optim/adamw.js';
import { Rng } from '../src/util/rng.js';
import { BitFit } from '../src/peft/bitfit.js';
import { freezeParameters } from '../src/peft/model-walk.js';

const H = 1e-5;

describe('BitFit', () => {
  it('trains the biases of a model that has them (stacked q/k/v biases under their own names), with gradients matching finite differences', () => {
    const heap = new Heap(new JsBackend({ dtype: 'f64' }));
    const model = new GPT({ vocabSize: 9, contextLength: 6, layers: 2, heads: 2, dim: 8, bias: true }).materialize(heap, new Rng(1));
    // non-zero biases, so the check does not start at a special point
    for (const [name, t] of model.params) if (name.endsWith('.bias')) heap.backend.write(t.offset, Array.from({ length: t.size }, (_, i) => 0.1 * Math.sin(i + name.length)));
    freezeParameters(model);
    const trainable = new ParameterSet();
    const bitfit = new BitFit(model, trainable);
    trainable.materialize(heap, new Rng(2));
    bitfit.bind();
    expect(bitfit.targets).toBe('bias');
    const names = [...bitfit.values().keys()];
    expect(names).toContain('model.layers.0.self_attn.k_proj.bias');
    expect(names).toContain('model.layers.1.mlp.down_proj.bias');
    expect(names).toContain('model.norm.bias');
    expect(names.every((n) => n.endsWith('.bias'))).toBe(true);
    const tokens = Int32Array.from([1, 2, 3, 4, 5, 6, 7, 8, 0, 1]), targets = Int32Array.from([2, 3, 4, 5, 6, 7, 8, 0, 1, 2]);
    const lossOf = () => noGrad(() => model.forward(heap.indices(tokens, [2, 5]), heap.indices(targets, [2, 5])).loss!.dataSync()[0]!);
    model.forward(heap.indices(tokens, [2, 5]), heap.indices(targets, [2, 5])).loss!.backward();
    const grads = Float64Array.from(heap.backend.readSync(trainable.gradOffset, trainable.blockSize));
    heap.resetArena();
    const base = Float64Array.from(heap.backend.readSync(model.params.gradOffset, model.params.blockSize));
    expect(base.every((g) => g === 0)).toBe(true); // no gradient reaches the frozen base
    const vals = Float64Array.from(heap.backend.readSync(trainable.paramOffset, trainable.blockSize));
    const rng = new Rng(3);
    let worst = 0, scale = 1;
    for (const g of grads) scale = Math.max(scale, Math.abs(g));
    for (let s = 0; s < 30; s++) {
      const j = rng.int(trainable.blockSize);
      const at = trainable.paramOffset + j;
      heap.backend.write(at, [vals[j]! + H]);
      const up = lossOf();
      heap.resetArena();
      heap.backend.write(at, [vals[j]! - H]);
      const down = lossOf();
      heap.resetArena();
      heap.backend.write(at, [vals[j]!]);
      worst = Math.max(worst, Math.abs((up - down) / (2 * H) - grads[j]!));
    }
    expect(worst / scale).toBeLessThan(1e-6);
  });

  it('trains the norm scales of a BitNet GPT (no biases): (2L + 1)·C parameters', () => {
    const heap = new Heap(new JsBackend({ dtype: 'f32' }));
    const model = new GPT({ vocabSize: 9, contextLength: 6, layers: 3, heads: 2, dim: 8, bitlinear: true }).materialize(heap, new Rng(1));
    freezeParameters(model);
    const trainable = new ParameterSet();
    const bitfit = new BitFit(model, trainable);
    expect(bitfit.targets).toBe('norm');
    expect(bitfit.count).toBe((2 * 3 + 1) * 8);
    expect(() => new BitFit(model, new ParameterSet(), 'bias')).toThrow(/BitFit: the model has no biases to train \(BitNet models have none; use targets 'norm' or 'auto'\)/);
  });

  it("includes BitNet b1.58 2B4T's sub-norms (a LLaMA-family bitnet model), and a short run lowers the loss with the base unchanged (wasm)", async () => {
    const { createWasmBackend } = await import('../src/backend/wasm/index.js');
    const heap = new Heap(await createWasmBackend());
    const model = new LlamaModel({ family: 'bitnet', vocabSize: 16, contextLength: 16, layers: 2, heads: 4, kvHeads: 2, dim: 16, hidden: 32 }).materialize(heap, new Rng(4));
    freezeParameters(model);
    const trainable = new ParameterSet();
    const bitfit = new BitFit(model, trainable);
    trainable.materialize(heap, new Rng(5));
    bitfit.bind();
    const names = [...bitfit.values().keys()];
    expect(names).toContain('model.layers.1.self_attn.attn_sub_norm.weight');
    expect(names).toContain('model.layers.0.mlp.ffn_sub_norm.weight');
    expect(names).toContain('model.layers.0.input_layernorm.weight');
    expect(names).toContain('model.norm.weight');
    const before = Float32Array.from(heap.backend.readSync(model.params.paramOffset, model.params.blockSize));
    const opt = new AdamW(trainable, { lr: 3e-2, weightDecay: 0 });
    const rng = new Rng(6);
    const losses: number[] = [];
    for (let s = 0; s < 40; s++) {
      const tokens = Int32Array.from({ length: 4 * 12 }, () => rng.int(16));
      opt.zeroGrad();
      const { loss } = model.forward(heap.indices(tokens, [4, 12]), heap.indices(tokens.map((t) => (t % 2 === 0 ? 3 : 11)), [4, 12]));
      loss!.backward();
      opt.step();
      losses.push(loss!.dataSync()[0]!);
      heap.resetArena();
    }
    const mean = (a: number[]) => a.reduce((x, y) => x + y) / a.length;
    expect(mean(losses.slice(-5))).toBeLessThan(mean(losses.slice(0, 5)) - 0.2);
    expect(Float32Array.from(heap.backend.readSync(model.params.paramOffset, model.params.blockSize))).toEqual(before);
    // values() → load() round trip (bad input refused before anything is written); writeBack merges into the base
    const trained = bitfit.values();
    const fresh = bitfit;
    expect(() => fresh.load(new Map([['model.layers.0.mlp.up_proj.weight', new Float32Array(1)]]))).toThrow(/BitFit: unknown tensor model.layers.0.mlp.up_proj.weight/);
    expect(() => fresh.load(new Map([...trained].map(([n, v]) => [n, n === 'model.norm.weight' ? v.subarray(0, 3) : v])))).toThrow(/model.norm.weight has 3 values but the model's needs 16; the adapter is of another base/);
    fresh.load(trained);
    expect(bitfit.values()).toEqual(trained);
    bitfit.writeBack();
    expect(Array.from(model.params.getParam('model.norm.weight').dataSync())).toEqual(Array.from(trained.get('model.norm.weight')!));
  });
});
