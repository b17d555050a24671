// linearCrossEntropy (the LM head fused with the loss, chunk by chunk) against the unfused
// crossEntropy(linear(x, W)) on the wasm backend: the same loss and gradients (bit for bit with
// a frozen weight and dloss = 1, as a LoRA step has), a smaller arena, and clear errors.
// Its gradients against finite differences are in grad.test.ts.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createWasmBackend, type WasmBackend } from '../src/backend/wasm/index.js';
import { crossEntropy, linear, linearCrossEntropy, noGrad, scale } from '../src/autograd/index.js';
import { Heap } from '../src/tensor/heap.js';
import type { Tensor } from '../src/tensor/tensor.js';
import { Rng } from '../src/util/rng.js';

let be: WasmBackend;
beforeAll(async () => {
  be = await createWasmBackend({ threads: 1 });
});
afterAll(() => be.dispose());

interface Case { N: number; C: number; V: number; seed: number }

function inputs(heap: Heap, { N, C, V, seed }: Case, trainW: boolean) {
  const rng = new Rng(seed);
  const xs = new Float32Array(N * C);
  const ws = new Float32Array(V * C);
  rng.fillNormal(xs, 0, 1);
  rng.fillNormal(ws, 0, 0.3);
  const t = new Int32Array(N);
  for (let i = 0; i < N; i++) t[i] = rng.int(V);
  const x = heap.fromArray(xs, [N, C], { requiresGrad: true });
  const w = heap.fromArray(ws, [V, C], { requiresGrad: trainW });
  return { x, w, targets: heap.indices(t, [N]) };
}

/** Loss, dX and (trainable W) dW of one step, fused with `chunk` rows or unfused. */
function step(c: Case, trainW: boolean, fused: number | null, dloss = 1) {
  const heap = new Heap(be);
  const { x, w, targets } = inputs(heap, c, trainW);
  const base = heap.stats().arenaHighWater;
  let loss: Tensor = fused === null ? crossEntropy(linear(x, w), targets) : linearCrossEntropy(x, w, targets, fused);
  const value = loss.itemSync();
  if (dloss !== 1) loss = scale(loss, dloss);
  loss.backward();
  const out = { value, dx: x.grad!.dataSync().slice(), dw: trainW ? w.grad!.dataSync().slice() : null, arena: heap.stats().arenaHighWater - base };
  return out;
}

function maxRel(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let err = 0;
  let scaleMax = 0;
  for (let i = 0; i < a.length; i++) {
    err = Math.max(err, Math.abs(a[i]! - b[i]!));
    scaleMax = Math.max(scaleMax, Math.abs(b[i]!));
  }
  return err / Math.max(scaleMax, 1e-30);
}

describe('linearCrossEntropy: the head and the loss fused, chunk by chunk', () => {
  const cases: Case[] = [
    { N: 37, C: 19, V: 101, seed: 1 },
    { N: 64, C: 32, V: 515, seed: 2 },
    { N: 5, C: 8, V: 3, seed: 3 },
  ];

  it('frozen weight, dloss 1: loss and dX bit for bit those of crossEntropy(linear(x, W)), any chunk size', () => {
    for (const c of cases) {
      const ref = step(c, false, null);
      for (const chunk of [1, 7, c.N, 0]) {
        const got = step(c, false, chunk);
        expect(got.value, `N ${c.N} chunk ${chunk}`).toBe(ref.value);
        expect(Array.from(got.dx), `N ${c.N} chunk ${chunk}`).toEqual(Array.from(ref.dx));
      }
    }
  });

  it('trainable weight: dW summed over chunks matches the unfused dW; a scaled loss scales both gradients', () => {
    for (const c of cases) {
      const ref = step(c, true, null, 0.37);
      for (const chunk of [3, 0]) {
        const got = step(c, true, chunk, 0.37);
        expect(Math.abs(got.value - ref.value)).toBeLessThan(1e-6 * Math.abs(ref.value));
        expect(maxRel(got.dx, ref.dx)).toBeLessThan(1e-5);
        expect(maxRel(got.dw!, ref.dw!)).toBeLessThan(1e-5);
      }
    }
  });

  it('holds chunk × V logits, not N × V: the arena of a 512-row, 4,096-word step is far below the unfused one', () => {
    const c = { N: 512, C: 16, V: 4096, seed: 4 };
    const ref = step(c, false, null);
    const got = step(c, false, 32);
    // unfused: logits, probs and dlogits, 3 × N × V; fused: 2 × 32 × V plus (N, C) gradients
    expect(ref.arena).toBeGreaterThan(3 * c.N * c.V);
    expect(got.arena).toBeLessThan(2 * 32 * c.V + 4 * c.N * c.C + 4 * c.N);
    expect(Array.from(got.dx)).toEqual(Array.from(ref.dx));
  });

  it('without a tape (evaluation) computes only the loss, equal to the unfused one', () => {
    const c = cases[1]!;
    const heap = new Heap(be);
    const { x, w, targets } = inputs(heap, c, true);
    const ref = noGrad(() => crossEntropy(linear(x, w), targets).itemSync());
    const before = heap.stats().arenaHighWater;
    const held = heap.stats().arenaElements;
    const got = noGrad(() => linearCrossEntropy(x, w, targets, 5).itemSync());
    expect(got).toBe(ref);
    expect(heap.stats().arenaHighWater - before).toBeLessThan(3 * 5 * c.V);
    // the chunk buffers are freed once the loss is computed: only the per-row losses and the scalars stay
    expect(heap.stats().arenaElements - held).toBeLessThan(c.N + 64);
  });

  it('bad shapes and ids are named', () => {
    const heap = new Heap(be);
    const x = heap.fromArray(new Float32Array(12), [3, 4]);
    const w = heap.fromArray(new Float32Array(20), [5, 4]);
    const wBad = heap.fromArray(new Float32Array(15), [5, 3]);
    expect(() => linearCrossEntropy(x, wBad, heap.indices(Int32Array.from([0, 1, 2]), [3]))).toThrow(/x \(3,4\) and weight \(5,3\)/);
    expect(() => linearCrossEntropy(x, w, heap.indices(Int32Array.from([0, 1]), [2]))).toThrow(/targets must be x' shape without the last dim/);
    expect(() => linearCrossEntropy(x, w, heap.indices(Int32Array.from([0, 5, 1]), [3]))).toThrow(/V = 5; targets must be in \[0, 4\]/);
    expect(() => linearCrossEntropy(x, w, heap.indices(Int32Array.from([0, 1, 2]), [3]), 1.5)).toThrow(/chunkRows must be an integer/);
  });
});
