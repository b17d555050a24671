import { afterAll, describe, expect, it } from 'vitest';
import { createWasmBackend, type WasmBackend } from '../src/backend/wasm/index.js';
import { validateThreads } from '../src/runtime/threads.js';
import { Rng } from '../src/util/rng.js';
import { Heap } from '../src/tensor/index.js';
import { GPT } from '../src/nn/index.js';
import { AdamW, trainStep } from '../src/optim/index.js';

/** Random inputs written at consecutive pointers; returns the pointers. */
function fillRandom(be: WasmBackend, sizes: number[], seed: number): number[] {
  const rng = new Rng(seed);
  let p = be.base;
  const ptrs: number[] = [];
  const total = sizes.reduce((a, b) => a + b + 16, 0);
  be.reserve(be.base + total);
  for (const n of sizes) {
    const data = new Float32Array(n);
    rng.fillNormal(data);
    be.write(p, data);
    ptrs.push(p);
    p += n + 16;
  }
  return ptrs;
}

const backends: WasmBackend[] = [];
async function backend(threads: number): Promise<WasmBackend> {
  const be = await createWasmBackend({ threads });
  backends.push(be);
  return be;
}
afterAll(() => backends.forEach((b) => b.dispose()));

/** Runs a fixed sequence of heavy kernels and returns every output, to compare across thread counts. */
function kernelOutputs(be: WasmBackend): Float32Array[] {
  const [M, K, N] = [67, 129, 45];
  const [B, T, C, NH] = [3, 17, 24, 4];
  const V = 37;
  const [a, b, c, out, qkv, att, preatt, dqkv, dout, datt, dpre, x, ln, mean, rstd, logits, probs, losses, dlogits, w, dw, m, v, g] =
    fillRandom(be, [M * K, K * N, N * K, M * N, B * T * 3 * C, B * NH * T * T, B * NH * T * T, B * T * 3 * C, B * T * C, B * NH * T * T, B * NH * T * T, 300 * C, 300 * C, 300, 300, 300 * V, 300 * V, 300, 300 * V, 5000, 5000, 5000, 5000, 5000], 7);
  const targets = be.base + be.capacity - be.base - 400; // indices live at the end of the block
  be.writeIndices(targets, Int32Array.from({ length: 300 }, (_, i) => (i * 7) % V));
  const outs: Float32Array[] = [];
  const grab = (p: number, n: number) => outs.push(be.readSync(p, n) as Float32Array);
  be.gemm('nn', out, a, b, M, N, K, false); grab(out, M * N);
  be.gemm('nt', out, a, c, M, N, K, true); grab(out, M * N);
  be.gemm('tn', out, a, a, K, K, M, false); grab(out, K * K);
  be.attentionForward(dout, preatt, att, qkv, B, T, C, NH); grab(dout, B * T * C);
  be.attentionBackward(dqkv, dpre, datt, dout, qkv, att, B, T, C, NH); grab(dqkv, B * T * 3 * C);
  be.layerNormForward(ln, mean, rstd, x, x, 0, 300, C, 1e-5); grab(ln, 300 * C);
  be.layerNormBackward(x, a, b, ln, x, c, mean, rstd, 300, C); grab(x, 300 * C); grab(a, C); grab(b, C);
  be.crossEntropyForward(losses, probs, logits, targets, 300, V); grab(losses, 300);
  be.crossEntropyBackward(dlogits, probs, targets, losses, 300, V); grab(dlogits, 300 * V);
  be.sumSquares(out, dlogits, 300 * V); grab(out, 1);
  be.adamwStep(w, dw, m, v, 5000, { lr: 1e-3, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, step: 3 }, 0); grab(w, 5000);
  be.geluForward(g, w, 5000); grab(g, 5000);
  return outs;
}

describe('thread pool', () => {
  it('gives bit-identical kernel outputs for 1, 2, 3 and 4 threads', async () => {
    const reference = kernelOutputs(await backend(1));
    for (const threads of [2, 3, 4]) {
      const be = await backend(threads);
      expect(be.threads).toBe(threads);
      const outs = kernelOutputs(be);
      outs.forEach((o, i) => expect(Buffer.from(o.buffer, o.byteOffset, o.byteLength).equals(Buffer.from(reference[i].buffer, reference[i].byteOffset, reference[i].byteLength)), `output ${i} at ${threads} threads`).toBe(true));
    }
  });

  it('turns a worker that throws into an error on the calling thread, naming the kernel', async () => {
    const be = await backend(2);
    // a kernel pointed past the end of memory traps inside the worker that runs the far rows
    const pool = (be as unknown as { pool: { run: (id: number, a: number[], r: Int32Array, f: (a: number, b: number) => void) => void } }).pool;
    const bytes = be.capacity * 4;
    expect(() => pool.run(3 /* add_f32 */, [bytes + 1e8, bytes + 1e8, bytes + 1e8], Int32Array.of(0, 0, 0, 64), () => {})).toThrow(/worker 1 failed in kernel add_f32: .*out of bounds/i);
    // the pool still works afterwards
    const [p] = fillRandom(be, [70000], 1);
    be.fill(p, 70000, 0.5); // split across both threads
    expect((be.readSync(p, 70000) as Float32Array).every((v) => v === 0.5)).toBe(true);
  });

  it('ends its workers on dispose() and refuses work afterwards', async () => {
    const be = await createWasmBackend({ threads: 2 });
    be.dispose();
    expect(() => be.add(be.base, be.base, be.base, 4)).toThrow(/dispos/);
  });

  it('rejects thread counts that are not integers from 1 to 256', () => {
    for (const bad of [0, -1, 1.5, 257, NaN]) expect(() => validateThreads(bad, '--threads')).toThrow(/--threads: threads must be an integer from 1 to 256/);
    expect(validateThreads(3)).toBe(3);
  });

  it('trains 20 steps to bit-identical losses at 1, 2, 3 and 4 threads (fp and BitLinear)', async () => {
    const hex = (x: number) => new Uint32Array(Float32Array.of(x).buffer)[0]!.toString(16).padStart(8, '0');
    const lossCurve = async (threads: number, bitlinear: boolean) => {
      const be = await backend(threads);
      const heap = new Heap(be);
      // big enough that every heavy kernel is split across threads (work >= 32768)
      const model = new GPT({ vocabSize: 40, contextLength: 32, layers: 2, heads: 4, dim: 64, bitlinear }).materialize(heap, new Rng(5));
      const opt = new AdamW(model.params, { lr: 3e-3, betas: [0.9, 0.95], weightDecay: 0.1, clipNorm: 1 });
      const data = new Rng(9);
      const losses: string[] = [];
      for (let step = 0; step < 20; step++) {
        const tokens = Int32Array.from({ length: 8 * 32 }, () => data.int(40));
        const targets = Int32Array.from(tokens, (t, i) => (t + (i % 3)) % 40);
        losses.push(hex(await trainStep(heap, model, opt, { tokens, targets, B: 8, T: 32 })));
      }
      return losses;
    };
    for (const bitlinear of [false, true]) {
      const reference = await lossCurve(1, bitlinear);
      expect(new Set(reference).size).toBeGreaterThan(10); // the loss moves: this compares real curves
      for (const threads of [2, 3, 4]) expect(await lossCurve(threads, bitlinear), `${threads} threads, bitlinear ${bitlinear}`).toEqual(reference);
    }
  });
});
