// Issue 13 item 6: the memory plan is computed from the config and an impossible size refused at
// once with what was needed; the plan's activation term is a true lower bound of the arena.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBackend } from '../src/backend/index.js';
import { AdamW } from '../src/optim/adamw.js';
import { Heap } from '../src/tensor/heap.js';
import { type ModelConfig, createModel } from '../src/train/model.js';
import { activationLowerBound, countParameters } from '../src/train/memory-plan.js';
import { Rng } from '../src/util/rng.js';
import { S, bt, workDir } from './reliability-cli.js';

let dir = '';
let cleanup = () => {};
beforeAll(() => ({ dir, cleanup } = workDir('bitnet-memory-')));
afterAll(() => cleanup());

const base: ModelConfig = { vocabSize: 65, contextLength: 16, layers: 1, heads: 2, dim: 32, norm: 'layer', mlp: 'gelu', pos: 'learned', bitlinear: true, bitlinearNorm: false, bias: false, tiedHead: false, initStd: 0.02 };

describe('the plan', () => {
  it.each([
    [{}, 2, 16], [{ layers: 3 }, 2, 16], [{ dim: 48, heads: 4 }, 3, 16], [{ mlp: 'swiglu' as const, pos: 'rope' as const }, 2, 16], [{ bitlinear: false, vocabSize: 256 }, 4, 8],
    [{ norm: 'rms' as const, mlp: 'relu2' as const, tiedHead: true, bias: true }, 1, 16],
  ])('counts parameters exactly and bounds the measured arena from below (%o, B=%i, T=%i)', async (over, B, T) => {
    const cfg = { ...base, ...over, contextLength: T };
    const backend = await createBackend('wasm', { threads: 1 });
    try {
      const heap = new Heap(backend);
      const model = createModel(cfg).materialize(heap, new Rng(1));
      expect(countParameters(cfg)).toBe(model.params.count);
      const opt = new AdamW(model.params, { lr: 1e-3 });
      const ids = Int32Array.from({ length: B * T }, (_, i) => (i * 7) % cfg.vocabSize);
      opt.zeroGrad();
      model.forward(heap.indices(ids, [B, T]), heap.indices(ids, [B, T])).loss!.backward();
      opt.step();
      heap.resetArena();
      const measured = heap.stats().arenaHighWater;
      const bound = activationLowerBound(cfg, B, T);
      expect(bound).toBeLessThanOrEqual(measured);
      expect(bound).toBeGreaterThan(measured / 3); // not vacuous
    } finally {
      backend.dispose();
    }
  });
});

describe('impossible sizes are refused at once', () => {
  it.each([
    [['--layers', '1000000000'], /memory plan: this run needs at least [\d.e+]+ PiB .*more than the 4 GiB a wasm32 memory can hold; lower --layers or --dim/],
    [['--dim', '1024', '--heads', '8', '--layers', '8', '--context', '256', '--batch', '64'], /memory plan: this run needs at least 15\.\d GiB — 1\.50 GiB for 101M parameters \(weights, gradients, AdamW m and v\) and ≥ 14\.\d GiB of activations for batch 64 x context 256 — more than the 4 GiB a wasm32 memory can hold; lower --batch/],
    [['--batch', '1000000000'], /memory plan: .* for batch 1000000000 x context 32 .*lower --batch/],
    [['--eval-iters', '1000000000000'], /--eval-iters 1000000000000: the fixed evaluation batches \(1000000000000 per split, 4 x 32 tokens each\) would take [\d.]+ PiB; at most 524,288 fit in the 1\.00 GiB allowed/],
  ])('train %s', (flags, message) => {
    const r = bt(dir, ['train', ...S, '--iters', '10', '--out', 'never', ...flags]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(message);
    expect(r.seconds).toBeLessThan(20); // not minutes of growing memory
  });

  it('sample --tokens 1e12 says the limit; a trainer.json claiming 1e9 layers is refused before building the model', () => {
    const ok = bt(dir, ['train', ...S, '--iters', '6', '--out', 'm', '--log-every', '3']);
    expect(ok.status).toBe(0);
    const tokens = bt(dir, ['sample', '--ckpt', 'm', '--tokens', '1000000000000']);
    expect(tokens.status).toBe(1);
    expect(tokens.stderr).toContain('--tokens 1000000000000: at most 10,000,000 tokens per sample');
    const tj = join(dir, 'm/ckpt-6/trainer.json');
    const json = JSON.parse(readFileSync(tj, 'utf8')) as { config: { model: { layers: number } } };
    json.config.model.layers = 1e9;
    writeFileSync(tj, JSON.stringify(json));
    const r = bt(dir, ['sample', '--ckpt', 'm/ckpt-6', '--tokens', '5']);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/memory plan: this run needs at least .* more than the 4 GiB a wasm32 memory can hold; the checkpoint's model is too large/);
    expect(r.seconds).toBeLessThan(20);
  });
});
