// The training loop: learning, bit-identical resume, NaN/Inf streaks, early stopping,
// checkpoint retention, gradient accumulation, evaluation and sampling.
import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { scale } from '../src/autograd/ops/elementwise.js';
import type { Backend } from '../src/backend/backend.js';
import { createBackend } from '../src/backend/index.js';
import { TextDataset } from '../src/data/dataset.js';
import { listCheckpoints } from '../src/io/checkpoint-manager.js';
import { loadCheckpoint } from '../src/io/checkpoint.js';
import { GPT } from '../src/nn/gpt.js';
import { AdamW } from '../src/optim/adamw.js';
import { SGD } from '../src/optim/sgd.js';
import { MemoryFileSystem } from '../src/runtime/fs.js';
import { Heap } from '../src/tensor/heap.js';
import type { Tensor } from '../src/tensor/tensor.js';
import { generate } from '../src/train/generate.js';
import { type StepExtension, type StepInfo, Trainer, type TrainerOptions, TrainingError } from '../src/train/trainer.js';
import { Rng } from '../src/util/rng.js';

const TEXT = readFileSync(new URL('../examples/data/tinyshakespeare.txt', import.meta.url), 'utf8').slice(0, 20000);
const T = 16;
const B = 4;

const backends: Backend[] = [];
afterEach(() => {
  for (const be of backends.splice(0)) be.dispose();
});

interface Setup {
  trainer: Trainer;
  model: GPT;
  heap: Heap;
  losses: number[];
  steps: StepInfo[];
}

/** A 1-layer, dim-16 model on 20k characters of Shakespeare: a step takes about a millisecond. */
async function setup(options: Partial<TrainerOptions> & { optimizer?: 'adamw' | 'sgd'; fs?: MemoryFileSystem } = {}): Promise<Setup> {
  const backend = await createBackend('wasm');
  backends.push(backend);
  const heap = new Heap(backend);
  const dataset = TextDataset.fromText(TEXT, { tokenizer: 'char' });
  const model = new GPT({ vocabSize: dataset.tokenizer.vocabSize, contextLength: T, layers: 1, heads: 2, dim: 16 });
  model.materialize(heap, new Rng(1));
  const optimizer = options.optimizer === 'sgd'
    ? new SGD(model.params, { lr: 0.1, momentum: 0.9, weightDecay: 0.01, clipNorm: 1 })
    : new AdamW(model.params, { lr: 1e-2, weightDecay: 0.1, clipNorm: 1 });
  const iters = options.iters ?? 20;
  const losses: number[] = [];
  const steps: StepInfo[] = [];
  const trainer = new Trainer({
    model,
    dataset,
    optimizer,
    options: {
      iters,
      batchSize: B,
      contextLength: T,
      schedule: { kind: 'cosine', peakLr: options.optimizer === 'sgd' ? 0.1 : 1e-2, warmup: Math.min(3, iters), totalSteps: iters },
      evalIters: 2,
      ...(options.fs ? { checkpoints: { fs: options.fs, dir: 'run', keep: options.checkpoints?.keep ?? 3 } } : {}),
      ...options,
      onStep: (i) => {
        losses.push(i.loss);
        steps.push(i);
        options.onStep?.(i);
      },
    },
  });
  return { trainer, model, heap, losses, steps };
}

describe('Trainer', () => {
  it('lowers the loss of a small model on Shakespeare', async () => {
    const { trainer, losses } = await setup({ iters: 60, evalEvery: 30 });
    const result = await trainer.train();
    expect(result.stopReason).toBe('completed');
    expect(result.step).toBe(60);
    const first = losses[0]!;
    const last10 = losses.slice(-10).reduce((a, b) => a + b, 0) / 10;
    expect(first).toBeGreaterThan(Math.log(58) - 0.3); // ~uniform over the vocabulary at init
    expect(last10).toBeLessThan(first - 0.8);
    expect(result.lastEval!.valLoss).toBeLessThan(first - 0.5);
    expect(result.lastEval!.perplexity).toBeCloseTo(Math.exp(result.lastEval!.valLoss), 10);
    expect(result.tokensPerSecond).toBeGreaterThan(0);
  });

  it.each(['adamw', 'sgd'] as const)('resumes bit-identically (%s, gradient accumulation 2): 2N steps = N steps + restore + N steps', async (optimizer) => {
    const N = 8;
    const common = { iters: 2 * N, gradAccum: 2, evalEvery: 3, saveEvery: N, optimizer } as const;
    const straight = await setup({ ...common, fs: new MemoryFileSystem() });
    await straight.trainer.train();

    const fs = new MemoryFileSystem();
    const first = await setup({ ...common, fs });
    const stopped = await first.trainer.train({ untilStep: N }); // as if the process died after step N
    expect(stopped.stopReason).toBe('until');
    expect(stopped.checkpoint).toBe(`run/ckpt-${N}`);

    const second = await setup({ ...common, fs });
    second.trainer.restore(await loadCheckpoint(fs, `run/ckpt-${N}`));
    expect(second.trainer.step).toBe(N);
    await second.trainer.train();

    const resumed = [...first.losses, ...second.losses];
    expect(resumed.length).toBe(2 * N);
    for (let i = 0; i < 2 * N; i++) expect(Object.is(resumed[i], straight.losses[i]), `loss of step ${i + 1}: ${resumed[i]} vs ${straight.losses[i]}`).toBe(true);
    const a = straight.model.params.exportValuesSync();
    const b = second.model.params.exportValuesSync();
    for (const [name, v] of a) expect(Buffer.from(b.get(name)!.buffer).equals(Buffer.from(v.buffer)), name).toBe(true);
  });

  it('stops after the step in flight when its signal aborts, saves that step, and resumes bit-identically', async () => {
    const common = { iters: 20, evalEvery: 5, saveEvery: 10 } as const;
    const straight = await setup(common);
    await straight.trainer.train();

    const fs = new MemoryFileSystem();
    const interrupt = new AbortController();
    const first = await setup({ ...common, fs, onStep: (i) => { if (i.step === 12) interrupt.abort(); } }); // aborted during step 12
    const stopped = await first.trainer.train({ signal: interrupt.signal });
    expect(stopped.stopReason).toBe('interrupted');
    expect(stopped.step).toBe(12);
    expect(stopped.lastEval).toBeUndefined();
    expect(stopped.checkpoint).toBe('run/ckpt-12');
    expect((await listCheckpoints(fs, 'run')).map((c) => c.step)).toEqual([10, 12]);

    const second = await setup({ ...common, fs });
    second.trainer.restore(await loadCheckpoint(fs, 'run/ckpt-12'));
    const rest = await second.trainer.train({ signal: new AbortController().signal });
    expect(rest.stopReason).toBe('completed');
    const resumed = [...first.losses, ...second.losses];
    expect(resumed.length).toBe(20);
    for (let i = 0; i < 20; i++) expect(Object.is(resumed[i], straight.losses[i]), `loss of step ${i + 1}`).toBe(true);
  });

  it('skips the update of a NaN/Inf step, stops after maxNanSteps in a row, and leaves the last checkpoint intact', async () => {
    const fs = new MemoryFileSystem();
    let trainerRef: Trainer | undefined;
    const s = await setup({ iters: 40, saveEvery: 5, maxNanSteps: 4, fs });
    trainerRef = s.trainer;
    // poison the loss of every step after step 10 (the backward still runs, with a NaN seed)
    const inner = s.model.forward.bind(s.model);
    (s.model as { forward: GPT['forward'] }).forward = (tokens: Tensor, targets?: Tensor) => {
      const out = inner(tokens, targets);
      if (out.loss && trainerRef!.step >= 10) s.heap.backend.write(out.loss.offset, [NaN]);
      return out;
    };
    const error = await s.trainer.train().then(() => null, (e: unknown) => e);
    expect(error).toBeInstanceOf(TrainingError);
    expect((error as Error).message).toMatch(/stopped at step 14: the loss was NaN \(not finite\) for 4 steps in a row \(steps 11-14; those updates were skipped\); the last checkpoint, run\/ckpt-10, is intact/);
    expect(s.steps.slice(10).map((i) => [i.skipped, i.nanStreak])).toEqual([[true, 1], [true, 2], [true, 3], [true, 4]]);
    expect((await listCheckpoints(fs, 'run')).map((c) => c.step)).toEqual([5, 10]);
    // no update was applied after step 10: the weights equal the checkpoint's, bit for bit
    const ckpt = await loadCheckpoint(fs, 'run/ckpt-10');
    for (const [name, v] of s.model.params.exportValuesSync()) {
      expect(Buffer.from((ckpt.model.get(name)!.data as Float32Array).buffer).equals(Buffer.from(v.buffer)), name).toBe(true);
    }
  });

  it('resets the NaN streak after a finite loss', async () => {
    const s = await setup({ iters: 12, maxNanSteps: 2 });
    const inner = s.model.forward.bind(s.model);
    (s.model as { forward: GPT['forward'] }).forward = (tokens: Tensor, targets?: Tensor) => {
      const out = inner(tokens, targets);
      if (out.loss && s.trainer.step % 2 === 1) s.heap.backend.write(out.loss.offset, [Infinity]);
      return out;
    };
    const res = await s.trainer.train();
    expect(res.step).toBe(12);
    expect(s.steps.filter((i) => i.skipped).length).toBe(6);
    expect(Math.max(...s.steps.map((i) => i.nanStreak))).toBe(1);
  });

  it('stops early when the val loss has not improved for `patience` evaluations', async () => {
    // lr 0: the weights never change, so only the first evaluation is an improvement
    const evals: number[] = [];
    const s = await setup({ iters: 50, evalEvery: 2, patience: 2, schedule: { kind: 'constant', peakLr: 0 }, onEval: (e) => void evals.push(e.step) });
    const res = await s.trainer.train();
    expect(res.stopReason).toBe('early-stop');
    expect(res.step).toBe(6);
    expect(evals).toEqual([2, 4, 6]);
    expect(res.bestValLoss).toBe(res.lastEval!.valLoss);
  });

  it('keeps the last `keep` checkpoints and a copy of the best one', async () => {
    const fs = new MemoryFileSystem();
    const saved: number[] = [];
    const evals = new Map<number, number>();
    const s = await setup({ iters: 10, saveEvery: 2, checkpoints: { fs, dir: 'run', keep: 2 }, fs, onCheckpoint: (c) => void saved.push(c.step), onEval: (e) => void evals.set(e.step, e.valLoss) });
    const res = await s.trainer.train();
    expect(saved).toEqual([2, 4, 6, 8, 10]);
    expect([...evals.keys()]).toEqual([2, 4, 6, 8, 10]); // every checkpoint carries the val loss of its own step
    expect((await listCheckpoints(fs, 'run')).map((c) => c.step)).toEqual([8, 10]);
    const best = await loadCheckpoint(fs, 'run/best');
    const bestVal = Math.min(...evals.values());
    expect(best.trainer.metric).toBe(bestVal);
    expect(evals.get(best.trainer.step)).toBe(bestVal);
    expect(res.bestValLoss).toBe(bestVal);
    expect(res.checkpoint).toBe('run/ckpt-10');
  });

  it('averages gradients over micro-batches: 2 micro-batches of B/2 make the same update as one batch of B', async () => {
    const one = await setup({ iters: 1, batchSize: 4 });
    const two = await setup({ iters: 1, batchSize: 2, gradAccum: 2 });
    await one.trainer.train();
    await two.trainer.train();
    expect(two.losses[0]).toBeCloseTo(one.losses[0]!, 5);
    const a = one.model.params.exportValuesSync();
    const b = two.model.params.exportValuesSync();
    let maxDiff = 0;
    for (const [name, v] of a) v.forEach((x, i) => (maxDiff = Math.max(maxDiff, Math.abs(x - b.get(name)![i]!))));
    expect(maxDiff).toBeLessThan(1e-6);
  });

  it('evaluates on fixed batches: the same numbers twice, without moving the data order', async () => {
    const s = await setup({ iters: 4 });
    const e1 = await s.trainer.evaluate();
    const e2 = await s.trainer.evaluate();
    expect(e2).toEqual(e1);
    const plain = await setup({ iters: 4 });
    await s.trainer.train();
    await plain.trainer.train();
    expect(s.losses).toEqual(plain.losses);
  });

  it('rejects bad options and a checkpoint of another model shape', async () => {
    await expect(setup({ gradAccum: 0 })).rejects.toThrow(/gradAccum must be a positive integer, got 0/);
    await expect(setup({ contextLength: 20000 })).rejects.toThrow(/context 20000 needs at least 20001/);
    const fs = new MemoryFileSystem();
    const s = await setup({ iters: 2, fs });
    await s.trainer.train();
    const backend = await createBackend('wasm');
    backends.push(backend);
    const heap = new Heap(backend);
    const dataset = TextDataset.fromText(TEXT);
    const wide = new GPT({ vocabSize: dataset.tokenizer.vocabSize, contextLength: T, layers: 1, heads: 2, dim: 32 }).materialize(heap, new Rng(1));
    const trainer = new Trainer({ model: wide, dataset, optimizer: new AdamW(wide.params, { lr: 1e-3 }), options: { iters: 4, batchSize: B, contextLength: T, schedule: { kind: 'constant', peakLr: 1e-3 } } });
    const ckpt = await loadCheckpoint(fs, 'run/ckpt-2');
    expect(() => trainer.restore(ckpt)).toThrow(/has shape \(58,16\) but this model.s is \(58,32\); the checkpoint is from a different model shape/);
  });
});

describe('generate', () => {
  it('is deterministic for a seed, and top-k 1 is greedy decoding', async () => {
    const s = await setup({ iters: 30 });
    await s.trainer.train();
    const prompt = s.trainer.dataset.tokenizer.encode('ROMEO:');
    const g = (seed: number, topK = 0) => generate(s.model, s.heap, prompt, { maxNewTokens: 20, temperature: 0.9, topK, rng: new Rng(seed) });
    expect([...g(5)]).toEqual([...g(5)]);
    expect([...g(5)]).not.toEqual([...g(6)]);
    // greedy: each token is the argmax of the logits given everything before it
    const greedy = g(1, 1);
    const seq = [...prompt];
    for (const id of greedy) {
      const logits = s.model.forward(s.heap.indices(Int32Array.from(seq.slice(-T)), [1, Math.min(seq.length, T)])).logits.dataSync();
      const V = s.model.config.vocabSize;
      const last = logits.subarray(logits.length - V);
      expect(id).toBe(last.indexOf(Math.max(...last)));
      s.heap.resetArena();
      seq.push(id);
    }
    expect(() => g(1, -1)).toThrow(/topK must be a non-negative integer, got -1/);
  });
});

describe('StepExtension', () => {
  it('wraps every step in beforeStep / loss / afterUpdate / afterStep, calls beforeEval before evaluations, and saves and restores its state', async () => {
    const calls: string[] = [];
    let model: GPT | undefined;
    let restored: unknown;
    const extension: StepExtension = {
      beforeStep: async (s) => { calls.push(`before ${s}`); },
      loss: (tokens, targets, s) => {
        calls.push(`loss ${s}`);
        return scale(model!.forward(tokens, targets).loss!, 2);
      },
      afterUpdate: (s) => { calls.push(`update ${s}`); },
      afterStep: async (done) => { calls.push(`after ${done}`); },
      beforeEval: (done) => { calls.push(`eval ${done}`); },
      state: () => ({ marker: 42 }),
      restore: (state) => { restored = state; },
    };
    const fs = new MemoryFileSystem();
    const plain = await setup({ iters: 2, gradAccum: 2 });
    await plain.trainer.train({ untilStep: 1 });
    const s = await setup({ iters: 2, gradAccum: 2, evalEvery: 2, saveEvery: 2, fs, extension });
    model = s.model;
    await s.trainer.train();
    expect(calls).toEqual(['before 0', 'loss 0', 'loss 0', 'update 0', 'after 1', 'before 1', 'loss 1', 'loss 1', 'update 1', 'after 2', 'eval 2']);
    expect(s.losses[0]).toBe(2 * plain.losses[0]!); // the extension's loss is the one trained and reported
    const ckpt = await loadCheckpoint(fs, 'run/ckpt-2');
    expect((ckpt.trainer.extra as { extension?: unknown }).extension).toEqual({ marker: 42 });
    const again = await setup({ iters: 4, fs, extension });
    again.trainer.restore(ckpt);
    expect(restored).toEqual({ marker: 42 });
  });
});
