// The tape, the heap and the parameter set: what they promise beyond correct gradients.
import { describe, expect, it } from 'vitest';
import { JsBackend } from '../src/backend/js/index.js';
import { add, attention, crossEntropy, embedding, gelu, linear, mean, noGrad, sum } from '../src/autograd/index.js';
import { Heap } from '../src/tensor/heap.js';
import { ParameterSet } from '../src/tensor/parameters.js';
import { GPT } from '../src/nn/gpt.js';
import { Rng } from '../src/util/rng.js';

const heapOf = (dtype: 'f32' | 'f64' = 'f64') => new Heap(new JsBackend({ dtype }));

describe('gradient accumulation', () => {
  it('a parameter used twice (tied embedding and head) receives the sum of both gradients', () => {
    // Untied: two parameters with equal values; tied: one parameter used in both places.
    const V = 6, C = 4, B = 2, T = 3;
    const tok = Int32Array.from([1, 5, 2, 2, 0, 3]);
    const tgt = Int32Array.from([5, 2, 2, 0, 3, 1]);
    const gradsOf = (tied: boolean) => {
      const heap = heapOf();
      const ps = new ParameterSet();
      const wte = ps.register('wte', [V, C], { init: { kind: 'normal', std: 0.5 }, decay: false });
      const head = tied ? wte : ps.register('head', [V, C], { init: { kind: 'normal', std: 0.5 }, decay: true });
      ps.materialize(heap, new Rng(3));
      if (!tied) heap.backend.write(head.offset, wte.dataSync()); // same values as the tied table
      const x = embedding(heap.indices(tok, [B, T]), wte);
      crossEntropy(linear(gelu(x), head), heap.indices(tgt, [B, T])).backward();
      return { wte: wte.grad!.dataSync(), head: head.grad!.dataSync() };
    };
    const untied = gradsOf(false);
    const tied = gradsOf(true);
    for (let i = 0; i < V * C; i++) expect(tied.wte[i]).toBeCloseTo(untied.wte[i]! + untied.head[i]!, 12);
    // and each path alone is non-trivial, so the sum is a real test
    expect(Math.max(...untied.wte.map(Math.abs))).toBeGreaterThan(1e-3);
    expect(Math.max(...untied.head.map(Math.abs))).toBeGreaterThan(1e-3);
  });

  it('two backward passes without zeroGrad add up, and zeroGrad clears the gradient block', () => {
    const heap = heapOf();
    const ps = new ParameterSet();
    const w = ps.register('w', [3, 2], { init: { kind: 'normal', std: 1 }, decay: true });
    ps.materialize(heap, new Rng(1));
    const x = [0.5, -1, 2, 0.25];
    const step = () => {
      sum(linear(heap.fromArray(x, [2, 2]), w)).backward();
      heap.resetArena();
    };
    step();
    const once = w.grad!.dataSync();
    step();
    const twice = w.grad!.dataSync();
    for (let i = 0; i < 6; i++) expect(twice[i]).toBeCloseTo(2 * once[i]!, 12);
    ps.zeroGrad();
    expect([...w.grad!.dataSync()]).toEqual([0, 0, 0, 0, 0, 0]);
  });

  it('an activation used twice accumulates its gradient (residual x + f(x))', () => {
    const heap = heapOf();
    const x = heap.fromArray([1, -2, 3], [3], { requiresGrad: true });
    sum(add(x, x)).backward();
    expect([...x.grad!.dataSync()]).toEqual([2, 2, 2]);
  });
});

describe('noGrad', () => {
  it('records nothing, allocates no gradients, and its loss cannot be backpropagated', () => {
    const heap = heapOf();
    const model = new GPT({ vocabSize: 5, contextLength: 4, layers: 1, heads: 2, dim: 4 }).materialize(heap, new Rng(1));
    const tok = heap.indices(Int32Array.from([0, 1, 2, 3]), [1, 4]);
    const loss = noGrad(() => model.forward(tok, tok).loss!);
    expect(heap.tape.length).toBe(0);
    expect(loss.requiresGrad).toBe(false);
    expect(loss.gradPtr).toBe(0);
    expect(() => loss.backward()).toThrow(/noGrad/);
    // with grad: the same forward records one entry per layer-sized op
    const recorded = model.forward(tok, tok).loss!;
    expect(heap.tape.names()).toContain('attention');
    expect(heap.tape.length).toBeGreaterThan(5);
    expect(recorded.itemSync()).toBe(loss.itemSync());
  });

  it('restores grad mode after fn throws, and rejects async functions', () => {
    expect(() => noGrad(() => { throw new Error('boom'); })).toThrow('boom');
    const heap = heapOf();
    const x = heap.fromArray([1, 2], [2], { requiresGrad: true });
    expect(sum(x).requiresGrad).toBe(true);
    expect(() => noGrad(async () => 1)).toThrow(/synchronous/);
  });
});

describe('errors name the op, both shapes and the fix', () => {
  const heap = heapOf();
  const t = (shape: number[]) => heap.zeros(shape);

  it('linear: input and weight with different in-features', () => {
    expect(() => linear(t([2, 3, 5]), t([4, 6]))).toThrow(/^linear: .*\(2,3,5\).*\(4,6\)/);
  });
  it('add: different shapes', () => {
    expect(() => add(t([2, 3]), t([3, 2]))).toThrow(/^add: a \(2,3\) and b \(3,2\) must have the same shape/);
  });
  it('crossEntropy: targets not matching the logits rows', () => {
    const targets = heap.indices(new Int32Array(4), [4]);
    expect(() => crossEntropy(t([2, 3, 7]), targets)).toThrow(/^crossEntropy: logits \(2,3,7\) and targets \(4\)/);
  });
  it('crossEntropy and embedding: ids outside the vocabulary', () => {
    const ids = heap.indices(Int32Array.from([0, 9]), [1, 2]);
    expect(() => crossEntropy(t([1, 2, 7]), ids)).toThrow(/^crossEntropy: .*\[0, 9\].*V = 7/);
    expect(() => embedding(ids, t([7, 4]))).toThrow(/^embedding: .*\[0, 9\].*\(7,4\)/);
  });
  it('attention: a width that does not split into the heads', () => {
    expect(() => attention(t([1, 4, 12]), 3)).toThrow(/^attention: qkv \(1,4,12\): C = 4 must split into 3 heads/);
  });
  it('GPT.forward: a sequence longer than the context', () => {
    const h = heapOf();
    const model = new GPT({ vocabSize: 5, contextLength: 4, layers: 1, heads: 1, dim: 4 }).materialize(h, new Rng(1));
    expect(() => model.forward(h.indices(new Int32Array(6), [1, 6]))).toThrow(/T = 6 > contextLength 4/);
  });
});

describe('the arena', () => {
  it('throws when an activation is used after its arena was reset, naming the op and the fix', () => {
    const heap = heapOf();
    for (let i = 0; i < 41; i++) heap.resetArena();
    const x = heap.fromArray([1, 2, 3], [3]);
    heap.resetArena();
    expect(() => gelu(x)).toThrow('gelu: x (3) is a tensor from step 41 used after arena reset (now step 42); read values with await t.data() before the step ends');
    expect(() => x.dataSync()).toThrow(/^dataSync: .*step 41 used after arena reset/);
  });

  it('keeps parameters valid across resets', () => {
    const heap = heapOf();
    const ps = new ParameterSet();
    const w = ps.register('w', [2], { init: { kind: 'ones' }, decay: false });
    ps.materialize(heap, new Rng(1));
    heap.resetArena();
    expect([...w.dataSync()]).toEqual([1, 1]);
  });

  it('refuses static allocation while it holds activations', () => {
    const heap = heapOf();
    heap.zeros([8]);
    expect(() => heap.allocStatic(4, 'adamw.m')).toThrow(/allocStatic\(adamw.m\): the arena holds .* create the model and optimizer before the first forward/);
    heap.resetArena();
    expect(() => heap.allocStatic(4, 'adamw.m')).not.toThrow();
  });

  it('tracks the high-water mark: peak usage, 16-element aligned, unchanged by reset', () => {
    const heap = heapOf();
    heap.zeros([5]);
    heap.zeros([20]);
    expect(heap.stats().arenaElements).toBe(16 + 32);
    heap.resetArena();
    heap.zeros([3]);
    expect(heap.stats()).toMatchObject({ arenaElements: 16, arenaHighWater: 48, generation: 1 });
  });
});

describe('backward', () => {
  it('throws for a non-scalar output, suggesting a reduction', () => {
    const heap = heapOf();
    const x = heap.fromArray([1, 2, 3, 4], [2, 2], { requiresGrad: true });
    expect(() => gelu(x).backward()).toThrow('backward: loss has shape (2,2) (4 elements); backward() needs a scalar — reduce it first with mean() or sum()');
  });

  it('consumes the tape: a second backward on the same loss throws instead of double-counting', () => {
    const heap = heapOf();
    const x = heap.fromArray([1, 2], [2], { requiresGrad: true });
    const loss = mean(gelu(x));
    loss.backward();
    expect(heap.tape.length).toBe(0);
    expect(() => loss.backward()).toThrow(/already run/);
  });
});

describe('ParameterSet', () => {
  const build = () => {
    const ps = new ParameterSet();
    ps.register('model.embed_tokens.weight', [5, 3], { init: { kind: 'normal', std: 0.02 }, decay: false });
    ps.register('model.layers.0.mlp.up_proj.weight', [4, 3], { init: { kind: 'normal', std: 0.02 }, decay: true });
    ps.register('model.norm.weight', [3], { init: { kind: 'ones' }, decay: false });
    return ps;
  };

  it('lays out weight-decayed parameters first, each group 16-aligned, gradients at a fixed offset', () => {
    const heap = heapOf();
    const ps = build();
    ps.materialize(heap, new Rng(1));
    const up = ps.getParam('model.layers.0.mlp.up_proj.weight');
    const emb = ps.getParam('model.embed_tokens.weight');
    const norm = ps.getParam('model.norm.weight');
    expect(up.offset).toBe(ps.paramOffset);
    expect(ps.decayRange).toEqual({ start: 0, length: 16 });
    expect(emb.offset).toBe(ps.paramOffset + 16);
    expect(norm.offset).toBe(ps.paramOffset + 32);
    expect(ps.noDecayRange).toEqual({ start: 16, length: 32 });
    for (const [, p] of ps) expect(p.gradPtr - p.offset).toBe(ps.gradOffset - ps.paramOffset);
    expect(ps.count).toBe(15 + 12 + 3);
  });

  it('initialises a tensor larger than one write chunk with the values of one draw over all of it, in registration order', () => {
    const heap = heapOf();
    const ps = new ParameterSet();
    const n = (1 << 20) * 2 + 5; // three chunks, the last of 5
    ps.register('big.weight', [n], { init: { kind: 'normal', std: 0.5 }, decay: true });
    ps.register('small.weight', [7], { init: { kind: 'normal', std: 1 }, decay: true });
    ps.register('ones.weight', [n], { init: { kind: 'ones' }, decay: false });
    ps.materialize(heap, new Rng(21));
    const want = new Float64Array(n + 7);
    const rng = new Rng(21);
    rng.fillNormal(want.subarray(0, n), 0, 0.5);
    rng.fillNormal(want.subarray(n), 0, 1);
    expect(Array.from(ps.getParam('big.weight').dataSync()).every((v, i) => v === want[i])).toBe(true);
    expect(Array.from(ps.getParam('small.weight').dataSync())).toEqual(Array.from(want.subarray(n)));
    expect(ps.getParam('ones.weight').dataSync().every((v) => v === 1)).toBe(true);
  });

  it('a frozen set allocates no gradient block: its tensors take no gradient and say so', () => {
    const heap = heapOf();
    const before = heap.stats().staticElements;
    const ps = build().freeze();
    ps.materialize(heap, new Rng(1));
    expect(heap.stats().staticElements - before).toBe(ps.blockSize); // values only (an unfrozen set: twice)
    for (const [, p] of ps) {
      expect(p.requiresGrad).toBe(false);
      expect(p.gradPtr).toBe(0);
    }
    expect(() => ps.gradOffset).toThrow(/a frozen set has no gradient block/);
    ps.zeroGrad(); // nothing to clear
    // a gradient flows through a frozen weight to the input, never into it
    const x = heap.fromArray([1, 2, 3, 4, 5, 6], [2, 3], { requiresGrad: true });
    sum(linear(x, ps.getParam('model.layers.0.mlp.up_proj.weight'))).backward();
    expect(x.grad).not.toBeNull();
    expect(() => build().freeze().freeze().materialize(heapOf(), new Rng(1))).not.toThrow();
    expect(() => ps.freeze()).toThrow(/already materialized; freeze it before materialize/);
  });

  it('initialises identically on f32 and f64 backends (values drawn in registration order)', () => {
    const a = build();
    const b = build();
    a.materialize(heapOf('f64'), new Rng(9));
    b.materialize(heapOf('f32'), new Rng(9));
    const va = a.exportValuesSync();
    const vb = b.exportValuesSync();
    for (const name of a.names()) expect([...vb.get(name)!]).toEqual([...va.get(name)!]);
    expect([...va.get('model.norm.weight')!]).toEqual([1, 1, 1]);
  });

  it('exports and imports all values by name, rejecting a different model shape', async () => {
    const a = build();
    a.materialize(heapOf(), new Rng(1));
    const b = build();
    b.materialize(heapOf(), new Rng(2));
    const saved = await a.exportValues();
    b.importValues(saved);
    expect(b.exportValuesSync()).toEqual(saved);
    const wrong = new Map(saved);
    wrong.set('model.norm.weight', new Float32Array(4));
    expect(() => b.importValues(wrong)).toThrow(/model.norm.weight has 4 values but the model's \(3\) needs 3/);
    expect(() => b.importValues(new Map([['nope', new Float32Array(1)]]))).toThrow(/unknown parameter nope/);
  });

  it('names GPT parameters the Hugging Face LLaMA way', () => {
    const m = new GPT({ vocabSize: 5, contextLength: 4, layers: 2, heads: 1, dim: 4, norm: 'rms', mlp: 'swiglu' });
    const names = m.params.names();
    for (const n of [
      'model.embed_tokens.weight', 'model.layers.1.self_attn.q_proj.weight', 'model.layers.1.self_attn.k_proj.weight',
      'model.layers.1.self_attn.v_proj.weight', 'model.layers.0.self_attn.o_proj.weight', 'model.layers.0.mlp.gate_proj.weight',
      'model.layers.0.mlp.up_proj.weight', 'model.layers.0.mlp.down_proj.weight', 'model.layers.0.input_layernorm.weight',
      'model.layers.0.post_attention_layernorm.weight', 'model.norm.weight', 'lm_head.weight',
    ]) expect(names).toContain(n);
    expect(() => m.params.getParam('model.layers.0.self_attn.qkv.weight')).toThrow(/no parameter named/);
  });
});
