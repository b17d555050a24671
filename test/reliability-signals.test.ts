// Issue 13 items 3 and 4: SIGTERM and SIGHUP stop a training like Ctrl-C (the step in flight
// finishes, a checkpoint of it is saved, exit 143 / 129), and every signal is seen after the
// current step, not at the next log or eval boundary.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Backend } from '../src/backend/backend.js';
import { createBackend } from '../src/backend/index.js';
import { TextDataset } from '../src/data/dataset.js';
import { loadCheckpoint } from '../src/io/checkpoint.js';
import { GPT } from '../src/nn/gpt.js';
import { AdamW } from '../src/optim/adamw.js';
import { MemoryFileSystem } from '../src/runtime/fs.js';
import { Heap } from '../src/tensor/heap.js';
import { type EvalInfo, Trainer } from '../src/train/trainer.js';
import { Rng } from '../src/util/rng.js';
import { S, bt, btSignalled, readLog, workDir } from './reliability-cli.js';

let dir = '';
let cleanup = () => {};
beforeAll(() => ({ dir, cleanup } = workDir('bitnet-signals-')));
afterAll(() => cleanup());

const LONG = ['train', ...S, '--iters', '100000', '--eval-every', '0', '--save-every', '0', '--log-every', '1'];

describe.each([['SIGTERM', 143], ['SIGHUP', 129]] as const)('%s', (signal, status) => {
  it(`finishes the step in flight, saves it, exits ${status}, and the run resumes from it`, async () => {
    const out = `run-${signal}`;
    const r = await btSignalled(dir, [...LONG, '--out', out], signal, { when: (s) => /step +5\/100000/.test(s) });
    expect(r.stderr).toContain(`bitnet-train: ${signal}: finishing the current step and saving a checkpoint`);
    expect(r.status).toBe(status);
    const m = new RegExp(`stopped by ${signal} at step (\\d+) of 100000 \\| checkpoint: ${out}/ckpt-(\\d+)`).exec(r.stdout);
    expect(m, r.stdout).not.toBeNull();
    expect(m![1]).toBe(m![2]);
    const step = Number(m![1]);
    const log = readLog(join(dir, out, 'log.jsonl'));
    expect(log.at(-1)).toMatchObject({ event: 'done', step, stop_reason: 'interrupted' });
    expect(Math.max(...log.filter((e) => e.event === 'step').map((e) => e.step as number))).toBe(step); // nothing lost but the signal's step
    expect(existsSync(join(dir, out, 'run.lock'))).toBe(false);
    const resumed = bt(dir, ['train', '--resume', out, '--iters', String(step + 3), '--log-every', '1']);
    expect(resumed.stderr).not.toMatch(/error/);
    expect(resumed.status).toBe(0);
    expect(resumed.stdout).toContain(`resumed from ${out}/ckpt-${step} at step ${step}`);
  });
});

describe('Ctrl-C far from any log or eval boundary', () => {
  it('stops after the current step (within seconds), not at the next boundary', async () => {
    const args = ['train', ...S, '--iters', '100000', '--eval-every', '100000', '--log-every', '100000', '--save-every', '0', '--out', 'ctrlc'];
    const r = await btSignalled(dir, args, 'SIGINT', { when: (s) => s.includes('run directory:'), delayMs: 700 });
    expect(r.status).toBe(130);
    const m = /interrupted at step (\d+) of 100000 \| checkpoint: ctrlc\/ckpt-(\d+)/.exec(r.stdout);
    expect(m, r.stdout + r.stderr).not.toBeNull();
    expect(Number(m![1])).toBeLessThan(100000);
    expect(r.seconds - r.sentAt).toBeLessThan(5); // a step of S is milliseconds; the boundary is 100000 steps away
    const ck = JSON.parse(readFileSync(join(dir, 'ctrlc', `ckpt-${m![1]}`, 'trainer.json'), 'utf8')) as { step: number };
    expect(ck.step).toBe(Number(m![1]));
  });
});

describe('an interrupt at an evaluation step', () => {
  const backends: Backend[] = [];
  afterEach(() => backends.splice(0).forEach((b) => b.dispose()));
  const TEXT = readFileSync(new URL('../examples/data/tinyshakespeare.txt', import.meta.url), 'utf8').slice(0, 20000);

  async function trainer(fs: MemoryFileSystem, evals: EvalInfo[], onStep?: (step: number) => void) {
    const backend = await createBackend('wasm', { threads: 1 });
    backends.push(backend);
    const heap = new Heap(backend);
    const dataset = TextDataset.fromText(TEXT, { tokenizer: 'char' });
    const model = new GPT({ vocabSize: dataset.tokenizer.vocabSize, contextLength: 16, layers: 1, heads: 2, dim: 16 }).materialize(heap, new Rng(1));
    const optimizer = new AdamW(model.params, { lr: 1e-2 });
    return new Trainer({ model, dataset, optimizer, options: {
      iters: 12, batchSize: 4, contextLength: 16, schedule: { kind: 'cosine', peakLr: 1e-2, warmup: 2, totalSteps: 12 },
      evalEvery: 4, saveEvery: 4, evalIters: 2, patience: 5, checkpoints: { fs, dir: 'run' },
      onEval: (e) => void evals.push(e), onStep: (i) => onStep?.(i.step),
    } });
  }

  it('skips that evaluation, and the resumed run does it first: evaluations and best/ as if never interrupted', async () => {
    const straightFs = new MemoryFileSystem();
    const straightEvals: EvalInfo[] = [];
    await (await trainer(straightFs, straightEvals)).train();

    const fs = new MemoryFileSystem();
    const evals: EvalInfo[] = [];
    const controller = new AbortController();
    const first = await trainer(fs, evals, (step) => step === 8 && controller.abort('SIGTERM'));
    expect(await first.train({ signal: controller.signal })).toMatchObject({ stopReason: 'interrupted', step: 8 });
    expect(evals.map((e) => e.step)).toEqual([4]); // the evaluation due at 8 waits for the resumed run
    const second = await trainer(fs, evals);
    second.restore(await loadCheckpoint(fs, 'run/ckpt-8'));
    await second.train();
    expect(evals).toEqual(straightEvals);
    const best = async (f: MemoryFileSystem) => (await loadCheckpoint(f, 'run/best')).trainer.step;
    expect(await best(fs)).toBe(await best(straightFs));
  });
});
