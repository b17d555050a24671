// Memory cannot leak: after the first step of a fixed-shape training loop the arena's
// high-water mark, the static regions and the backend's memory size never change again.
import { describe, expect, it } from 'vitest';
import type { Backend } from '../src/backend/backend.js';
import { JsBackend } from '../src/backend/js/index.js';
import { noGrad } from '../src/autograd/tape.js';
import { Heap } from '../src/tensor/heap.js';
import { GPT } from '../src/nn/gpt.js';
import { AdamW } from '../src/optim/adamw.js';
import { trainStep } from '../src/optim/train-step.js';
import { Rng } from '../src/util/rng.js';

const V = 16, B = 4, T = 8;

/** Bytes of memory the backend holds: the wasm Memory's byte length, or the js typed array's. */
function memoryBytes(backend: Backend): number {
  const mem = (backend as { memory?: WebAssembly.Memory | Float32Array }).memory;
  if (mem instanceof WebAssembly.Memory) return mem.buffer.byteLength;
  if (mem instanceof Float32Array) return mem.byteLength;
  throw new Error(`memory.test: cannot measure the memory of backend ${backend.name}`);
}

interface Snapshot { arenaHighWater: number; staticElements: number; capacity: number; bytes: number }

/** Train `steps` steps (with a no-grad evaluation every 100) and snapshot memory after step 10 and the last. */
async function run(backend: Backend, steps: number): Promise<{ at10: Snapshot; atEnd: Snapshot; lossEnd: number }> {
  const heap = new Heap(backend);
  const model = new GPT({ vocabSize: V, contextLength: T, layers: 2, heads: 2, dim: 16, mlp: 'swiglu', tiedHead: true }).materialize(heap, new Rng(1));
  const opt = new AdamW(model.params, { lr: 3e-3, clipNorm: 1 });
  const rng = new Rng(2);
  const batch = () => {
    const tokens = Int32Array.from({ length: B * T }, () => rng.int(V));
    return { tokens, targets: tokens.map((x) => (x + 1) % V), B, T };
  };
  const snap = (): Snapshot => {
    const s = heap.stats();
    return { arenaHighWater: s.arenaHighWater, staticElements: s.staticElements, capacity: s.capacity, bytes: memoryBytes(backend) };
  };
  let at10: Snapshot | null = null;
  let lossEnd = NaN;
  for (let step = 1; step <= steps; step++) {
    lossEnd = await trainStep(heap, model, opt, batch());
    if (step % 100 === 0) {
      const b = batch();
      noGrad(() => model.forward(heap.indices(b.tokens, [B, T]), heap.indices(b.targets, [B, T])).loss!.itemSync());
      heap.resetArena();
    }
    if (step === 10) at10 = snap();
  }
  return { at10: at10!, atEnd: snap(), lossEnd };
}

describe('memory', () => {
  it('1,000 steps of a small model leave the wasm memory high-water mark constant', async () => {
    const { createWasmBackend } = await import('../src/backend/wasm/index.js');
    const { at10, atEnd, lossEnd } = await run(await createWasmBackend(), 1000);
    console.log(`wasm after step 10: ${JSON.stringify(at10)}; after step 1000: ${JSON.stringify(atEnd)}`);
    expect(atEnd).toEqual(at10);
    expect(at10.arenaHighWater).toBeGreaterThan(0);
    expect(lossEnd).toBeLessThan(0.5); // it really trained: (x + 1) mod V is learnable from the current token
  });

  it('the js backend too: 300 steps, same high-water mark, static size and memory size as after step 10', async () => {
    const { at10, atEnd } = await run(new JsBackend({ dtype: 'f32' }), 300);
    expect(atEnd).toEqual(at10);
  });
});
