// Gradient checkpointing: the same losses and gradients, bit for bit, with a smaller arena.
import { describe, expect, it } from 'vitest';
import type { Backend } from '../src/backend/backend.js';
import { JsBackend } from '../src/backend/js/index.js';
import { checkpoint, forwardBlocks, gradientScope } from '../src/autograd/checkpoint.js';
import { add, linear, gelu, sum } from '../src/autograd/index.js';
import { Heap } from '../src/tensor/heap.js';
import { GPT, type GPTConfig } from '../src/nn/gpt.js';
import { AdamW } from '../src/optim/adamw.js';
import { trainStep } from '../src/optim/train-step.js';
import { Rng } from '../src/util/rng.js';
import { ParameterSet } from '../src/tensor/parameters.js';
import { LlamaModel } from '../src/nn/llama.js';
import { freezeParameters } from '../src/peft/model-walk.js';
import { PrefixTuning, prefixShapeOf, resolvePrefixTuningConfig } from '../src/peft/prefix.js';

const V = 24, B = 3, T = 12;

/** Train `steps` steps; return every loss, the final gradient block and the arena high-water mark. */
async function run(backend: Backend, cfg: GPTConfig, checkpointing: boolean | number, steps: number) {
  const heap = new Heap(backend);
  const model = new GPT(cfg).materialize(heap, new Rng(3));
  model.gradientCheckpointing = checkpointing;
  const opt = new AdamW(model.params, { lr: 3e-3, clipNorm: 1 });
  const rng = new Rng(4);
  const losses: number[] = [];
  for (let s = 0; s < steps; s++) {
    const tokens = Int32Array.from({ length: B * T }, () => rng.int(V));
    losses.push(await trainStep(heap, model, opt, { tokens, targets: tokens.map((x) => (x * 7 + 1) % V), B, T }));
  }
  const grads = backend.readSync(model.params.gradOffset, model.params.blockSize);
  const values = backend.readSync(model.params.paramOffset, model.params.blockSize);
  return { losses, grads: Array.from(grads), values: Array.from(values), highWater: heap.stats().arenaHighWater };
}

/** An f64 js heap with a (4, 3) input and a (3, 3) weight drawn from `seed`, for the op-level tests. */
function smallCase(seed: number) {
  const rng = new Rng(seed);
  const xs = new Float64Array(12), ws = new Float64Array(9);
  rng.fillNormal(xs);
  rng.fillNormal(ws);
  return { heap: new Heap(new JsBackend({ dtype: 'f64' })), xs, ws };
}

describe('gradient checkpointing', () => {
  const bitnet: GPTConfig = { vocabSize: V, contextLength: T, layers: 3, heads: 2, dim: 16, bitlinear: true, bitlinearOptions: { norm: false } };
  const fp: GPTConfig = { vocabSize: V, contextLength: T, layers: 3, heads: 2, dim: 16, mlp: 'swiglu', norm: 'rms', pos: 'rope' };

  it('gives bit-identical losses, gradients and weights over 5 steps (wasm, BitLinear GPT)', async () => {
    const { createWasmBackend } = await import('../src/backend/wasm/index.js');
    const plain = await run(await createWasmBackend(), bitnet, false, 5);
    const ckpt = await run(await createWasmBackend(), bitnet, true, 5);
    expect(ckpt.losses).toEqual(plain.losses);
    expect(ckpt.grads).toEqual(plain.grads);
    expect(ckpt.values).toEqual(plain.values);
    expect(ckpt.highWater).toBeLessThan(plain.highWater);
  });

  it('the same on the js backend for an FP SwiGLU/RoPE GPT', async () => {
    const plain = await run(new JsBackend({ dtype: 'f32' }), fp, false, 3);
    const ckpt = await run(new JsBackend({ dtype: 'f32' }), fp, true, 3);
    expect(ckpt.losses).toEqual(plain.losses);
    expect(ckpt.grads).toEqual(plain.grads);
  });

  it('the saving grows with depth: 8 layers keep less than a third of the arena', async () => {
    const { createWasmBackend } = await import('../src/backend/wasm/index.js');
    const deep: GPTConfig = { ...bitnet, layers: 8, dim: 32 };
    const plain = await run(await createWasmBackend(), deep, false, 1);
    const ckpt = await run(await createWasmBackend(), deep, true, 1);
    expect(ckpt.losses).toEqual(plain.losses);
    expect(ckpt.highWater / plain.highWater).toBeLessThan(1 / 3);
  });

  it('partial recomputation (the first n blocks): the same bits, the arena between none and all', async () => {
    const { createWasmBackend } = await import('../src/backend/wasm/index.js');
    const deep: GPTConfig = { ...bitnet, layers: 6, dim: 32 };
    const [none, some, all] = [await run(await createWasmBackend(), deep, false, 2), await run(await createWasmBackend(), deep, 3, 2), await run(await createWasmBackend(), deep, true, 2)];
    expect(some.losses).toEqual(none.losses);
    expect(some.grads).toEqual(none.grads);
    expect(all.highWater).toBeLessThan(some.highWater);
    expect(some.highWater).toBeLessThan(none.highWater);
    expect((await run(await createWasmBackend(), deep, 6, 1)).highWater).toBe((await run(await createWasmBackend(), deep, true, 1)).highWater);
    await expect(run(await createWasmBackend(), deep, 1.5, 1)).rejects.toThrow(/checkpointed blocks must be an integer >= 0, got 1.5/);
  });

  it('a chain of blocks hands one output gradient down: a layer more costs one (B, T, C) block output, not two', async () => {
    const { createWasmBackend } = await import('../src/backend/wasm/index.js');
    const at = async (layers: number) => (await run(await createWasmBackend(), { ...fp, layers }, true, 1)).highWater;
    const perLayer = ((await at(6)) - (await at(3))) / 3;
    expect(perLayer).toBeGreaterThanOrEqual(B * T * fp.dim);
    expect(perLayer).toBeLessThan(1.5 * B * T * fp.dim);
  });

  it('with a frozen base and prefix tuning (its MLP output read inside every block): the same adapter gradients, GPT and LLaMA/GQA', async () => {
    const { createWasmBackend } = await import('../src/backend/wasm/index.js');
    const run = async (llama: boolean, checkpointing: boolean) => {
      const heap = new Heap(await createWasmBackend());
      const model = llama
        ? new LlamaModel({ vocabSize: V, contextLength: T + 4, layers: 3, heads: 4, kvHeads: 2, dim: 16, hidden: 32 }).materialize(heap, new Rng(3))
        : new GPT({ ...bitnet, contextLength: T + 4 }).materialize(heap, new Rng(3));
      freezeParameters(model);
      model.gradientCheckpointing = checkpointing;
      const trainable = new ParameterSet();
      const prefix = new PrefixTuning(resolvePrefixTuningConfig({ num_virtual_tokens: 4, prefix_projection: true, encoder_hidden_size: 8 }), prefixShapeOf(model), trainable);
      trainable.materialize(heap, new Rng(5));
      prefix.attach(model);
      const rng = new Rng(4);
      const tokens = Int32Array.from({ length: B * T }, () => rng.int(V));
      const { loss } = model.forward(heap.indices(tokens, [B, T]), heap.indices(tokens.map((x) => (x + 2) % V), [B, T]));
      loss!.backward();
      const out = { loss: loss!.dataSync()[0], grads: Array.from(heap.backend.readSync(trainable.gradOffset, trainable.blockSize)), highWater: heap.stats().arenaHighWater };
      heap.resetArena();
      return out;
    };
    for (const llama of [false, true]) {
      const plain = await run(llama, false);
      const ckpt = await run(llama, true);
      expect(ckpt.loss).toBe(plain.loss);
      expect(ckpt.grads).toEqual(plain.grads);
      expect(plain.grads.some((g) => g !== 0)).toBe(true);
      expect(ckpt.highWater).toBeLessThan(plain.highWater);
    }
  });

  it('blocks that are not checkpointed free their activation gradients block by block: the same gradients, a smaller arena (f64)', () => {
    const heap = new Heap(new JsBackend({ dtype: 'f64' }));
    const rng = new Rng(11);
    const L = 5, N = 6, C = 7;
    const xs = new Float64Array(N * C);
    rng.fillNormal(xs);
    const wss = Array.from({ length: L }, () => { const w = new Float64Array(C * C); rng.fillNormal(w); return w.map((v) => v / 3); });
    const grads = (scoped: boolean) => {
      const base = heap.stats().arenaHighWater;
      const x = heap.fromArray(xs, [N, C], { requiresGrad: true });
      const ws = wss.map((w) => heap.fromArray(w, [C, C], { requiresGrad: true }));
      // a residual block whose activations (and their gradients) are larger than its input
      const blocks = ws.map((w) => ({ forward: (h: ReturnType<typeof heap.empty>) => add(h, linear(gelu(linear(h, w)), w)) }));
      const y = scoped ? forwardBlocks(blocks, x, false, ws) : blocks.reduce((h, b) => b.forward(h), x);
      sum(y).backward();
      const out = { g: [x, ...ws].map((t) => Array.from(t.grad!.dataSync())), arena: heap.stats().arenaHighWater - base };
      heap.resetArena();
      return out;
    };
    const plain = grads(false);
    const scoped = grads(true);
    expect(scoped.g).toEqual(plain.g);
    expect(plain.g[0]!.some((v) => v !== 0)).toBe(true);
    // unscoped, every block's activation gradients (3 of N×C each) stay until the step ends
    expect(plain.arena - scoped.arena).toBeGreaterThanOrEqual(2 * (L - 1) * N * C);
    // a scope with nothing to differentiate leaves no tape entry behind
    const c = heap.fromArray(xs, [N, C]);
    const y = gradientScope((h) => gelu(h), c);
    expect(y.requiresGrad).toBe(false);
    expect(heap.tape.length).toBe(0);
  });

  it('an outside activation the block reads but inputs did not name is an error, not a freed gradient', () => {
    const { heap, xs, ws } = smallCase(13);
    for (const via of ['scope', 'checkpoint'] as const) {
      const x = heap.fromArray(xs, [4, 3], { requiresGrad: true });
      const w = heap.fromArray(ws, [3, 3], { requiresGrad: true }); // an activation, not a parameter
      const f = (h: ReturnType<typeof heap.empty>) => add(h, gelu(linear(h, w)));
      const y = via === 'scope' ? forwardBlocks([{ forward: f }], x, false) : checkpoint(f, x);
      expect(() => sum(y).backward()).toThrow(/made before a checkpointed \(or gradient-scoped\) block and takes a gradient inside it; pass it in the inputs/);
      heap.resetArena();
      expect(heap.gradientFloor).toBe(0);
    }
  });

  it('is the plain op when nothing requires grad, and refuses an output of another shape', () => {
    const heap = new Heap(new JsBackend({ dtype: 'f64' }));
    const x = heap.fromArray([1, -2, 3, 0.5], [2, 2]);
    const w = heap.fromArray([1, 0, 0, 1], [2, 2]);
    const y = checkpoint((h) => gelu(linear(h, w)), x);
    expect(y.requiresGrad).toBe(false);
    expect(heap.tape.length).toBe(0);
    const xg = heap.fromArray([1, -2, 3, 0.5], [2, 2], { requiresGrad: true });
    expect(() => checkpoint((h) => sum(h), xg)).toThrow(/checkpoint: fn\(x\) returned \(\), expected \(2,2\); pass outShape/);
  });

  it('backpropagates to the input and the parameters as the unchecked op does (f64)', () => {
    const { heap, xs, ws } = smallCase(9);
    const grads = (useCheckpoint: boolean) => {
      const x = heap.fromArray(xs, [4, 3], { requiresGrad: true });
      const w = heap.fromArray(ws, [3, 3], { requiresGrad: true });
      const f = (h: ReturnType<typeof heap.empty>) => gelu(linear(h, w));
      sum(useCheckpoint ? checkpoint(f, x, [w]) : f(x)).backward();
      const out = [Array.from(x.grad!.dataSync()), Array.from(w.grad!.dataSync())];
      heap.resetArena();
      return out;
    };
    expect(grads(true)).toEqual(grads(false));
  });
});
