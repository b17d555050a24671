// The step profiler: a proxy around the Backend and timing of the tape's ops. It must not change
// a single bit of training, must count each op of the measured steps exactly once (evaluation
// excluded), and its totals must add up.
import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import type { Backend } from '../src/backend/backend.js';
import { createBackend } from '../src/backend/index.js';
import { TextDataset } from '../src/data/dataset.js';
import { StepProfiler, formatProfile } from '../src/monitor/profiler.js';
import { GPT } from '../src/nn/gpt.js';
import { AdamW } from '../src/optim/adamw.js';
import { Heap } from '../src/tensor/heap.js';
import { Trainer } from '../src/train/trainer.js';
import { Rng } from '../src/util/rng.js';

const TEXT = readFileSync(new URL('../examples/data/tinyshakespeare.txt', import.meta.url), 'utf8').slice(0, 20000);
const backends: Backend[] = [];
afterEach(() => {
  for (const be of backends.splice(0)) be.dispose();
});

async function train(profiler: StepProfiler | undefined, kind: 'wasm' | 'js', threads = 1, checkpointing = false): Promise<number[]> {
  const backend = await createBackend(kind, { threads });
  backends.push(backend);
  const heap = new Heap(profiler ? profiler.wrapBackend(backend) : backend);
  profiler?.attachTape(heap.tape);
  const dataset = TextDataset.fromText(TEXT, { tokenizer: 'char' });
  const model = new GPT({ vocabSize: dataset.tokenizer.vocabSize, contextLength: 16, layers: 2, heads: 2, dim: 32, bitlinear: true });
  model.materialize(heap, new Rng(1));
  model.gradientCheckpointing = checkpointing;
  const losses: number[] = [];
  const trainer = new Trainer({
    model, dataset, optimizer: new AdamW(model.params, { lr: 1e-2, clipNorm: 1 }),
    options: {
      iters: 6, batchSize: 4, contextLength: 16, schedule: { kind: 'constant', peakLr: 1e-2, warmup: 0 }, evalEvery: 2, evalIters: 2,
      onStep: (i) => {
        losses.push(i.loss);
      },
    },
  });
  profiler?.attachTrainer(trainer);
  await trainer.train();
  return losses;
}

describe('StepProfiler', () => {
  it('leaves training bit-identical and counts each op of the window once, evaluations excluded', async () => {
    const plain = await train(undefined, 'wasm');
    const profiler = new StepProfiler(3, 1);
    expect(await train(profiler, 'wasm')).toEqual(plain);
    const r = profiler.report();
    expect([r.steps, r.fromStep, r.toStep]).toEqual([3, 2, 4]);
    const op = (name: string, phase: string) => r.ops.find((o) => o.name === name && o.phase === phase);
    // per step: one embedding, 2 blocks x (q/k/v fused, o, fc, proj) BitLinear ops, one crossEntropy
    expect(op('crossEntropy', 'forward')!.calls).toBe(3);
    expect(op('crossEntropy', 'backward')!.calls).toBe(3);
    expect(op('bitLinear', 'forward')!.calls).toBe(3 * 2 * 4);
    expect(op('bitLinear', 'backward')!.calls).toBe(3 * 2 * 4);
    const adamw = r.kernels.find((k) => k.name === 'adamwStep')!;
    expect(adamw.phase).toBe('update');
    expect(adamw.calls % 3).toBe(0);
    const opsMs = r.ops.reduce((a, o) => a + o.ms, 0);
    expect(opsMs).toBeLessThanOrEqual(r.stepMs);
    expect(r.computeMs!).toBeLessThanOrEqual(r.backendMs);
    expect(r.dispatchMs!).toBeGreaterThanOrEqual(0);
    expect(r.pool).toBeNull();
    expect(formatProfile(r)).toMatch(/^profile: steps 2-4 \(3 steps\)/);
  });

  it('with gradient checkpointing, counts the recomputed forward inside its backward once (no double count, the update phase intact)', async () => {
    const plain = await train(undefined, 'wasm', 1, true);
    const profiler = new StepProfiler(3, 1);
    expect(await train(profiler, 'wasm', 1, true)).toEqual(plain);
    const r = profiler.report();
    const opsMs = r.ops.reduce((a, o) => a + o.ms, 0);
    expect(opsMs).toBeLessThanOrEqual(r.stepMs);
    expect(r.ops.filter((o) => o.name === 'bitLinear' && o.phase === 'forward')[0]!.calls).toBe(3 * 2 * 4); // the first forward only
    expect(r.kernels.find((k) => k.name === 'adamwStep')!.phase).toBe('update');
  });

  it('on 2 threads, splits backend time into compute, dispatch and waiting for workers', async () => {
    const profiler = new StepProfiler(2, 1);
    await train(profiler, 'wasm', 2);
    const r = profiler.report();
    expect(r.pool!.threads).toBe(2);
    expect(r.pool!.threadedMs).toBeGreaterThan(0);
    expect(r.pool!.threadedMs).toBeLessThanOrEqual(r.backendMs);
    expect(r.pool!.callerWaitMs).toBeGreaterThanOrEqual(0);
    expect(r.computeMs! + r.dispatchMs! + r.pool!.callerWaitMs).toBeCloseTo(r.backendMs, 6);
    expect(formatProfile(r)).toContain('thread pool: 2 threads');
  });

  it('profiles the js backend (no WASM internals: compute and dispatch are not split)', async () => {
    const profiler = new StepProfiler(2, 0);
    await train(profiler, 'js');
    const r = profiler.report();
    expect([r.steps, r.fromStep]).toEqual([2, 1]);
    expect(r.computeMs).toBeNull();
    expect(r.kernels.some((k) => k.name === 'gemm' && k.phase === 'backward')).toBe(true);
  });
});
