// Issue 13 item 1: a diverged run never applies a non-finite update, never writes a non-finite
// checkpoint, never rotates away its last good one; sample and --resume refuse a non-finite one.
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBackend } from '../src/backend/index.js';
import { CheckpointError, encodeCheckpoint, loadCheckpoint } from '../src/io/checkpoint.js';
import { encodeSafetensors } from '../src/io/safetensors.js';
import { AdamW } from '../src/optim/adamw.js';
import { SGD } from '../src/optim/sgd.js';
import { adamwGuard } from '../src/optim/update-guard.js';
import { createNodeFileSystem } from '../src/runtime/fs-node.js';
import { Heap } from '../src/tensor/heap.js';
import { ParameterSet } from '../src/tensor/parameters.js';
import { Rng } from '../src/util/rng.js';
import { S, bt, workDir } from './reliability-cli.js';

let dir = '';
let cleanup = () => {};
beforeAll(() => ({ dir, cleanup } = workDir('bitnet-nonfinite-')));
afterAll(() => cleanup());

/** Every tensor of every checkpoint directory in `run` loads (checksums, finiteness) and is finite. */
async function expectAllCheckpointsFinite(run: string): Promise<string[]> {
  const fs = await createNodeFileSystem();
  const names = readdirSync(join(dir, run)).filter((n) => /^ckpt-\d+$|^best$/.test(n));
  for (const n of names) {
    const ck = await loadCheckpoint(fs, join(dir, run, n));
    for (const [, t] of [...ck.model, ...(ck.optimizer ?? [])]) for (const x of t.data as Float32Array) if (!Number.isFinite(x)) throw new Error(`${n}: non-finite`);
  }
  return names;
}

describe('a diverging run (--lr 1e6)', () => {
  it('skips the non-finite updates, keeps only finite checkpoints, and names a last checkpoint that loads and resumes', async () => {
    const r = bt(dir, ['train', ...S, '--iters', '30', '--lr', '1e6', '--save-every', '2', '--log-every', '1', '--out', 'D']);
    expect(r.status).toBe(1);
    const m = /the last checkpoint, (D\/ckpt-\d+), is intact/.exec(r.stderr);
    expect(m, r.stderr).not.toBeNull();
    expect(r.stderr).toMatch(/update(s in a row could not be applied| skipped)/);
    const names = await expectAllCheckpointsFinite('D');
    expect(names.length).toBeGreaterThan(0);
    expect(names).toContain(m![1]!.slice(2));
    // the named checkpoint loads and training continues from it (its weights are finite, if diverged)
    const resumed = bt(dir, ['train', '--resume', m![1]!, '--iters', '30', '--lr', '1e-3', '--log-every', '1']);
    expect(resumed.stdout).toContain(`resumed from ${m![1]} at step ${m![1]!.split('-')[1]}`);
    expect(resumed.stderr).not.toMatch(/checkpoint .* (corrupt|non-finite|incomplete)/);
  });

  it('with --lr 1e30 --clip 0 still leaves a finite checkpoint behind', async () => {
    const r = bt(dir, ['train', ...S, '--iters', '30', '--lr', '1e30', '--clip', '0', '--save-every', '2', '--log-every', '1', '--out', 'E']);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/the last checkpoint, E\/ckpt-\d+, is intact/);
    expect((await expectAllCheckpointsFinite('E')).length).toBeGreaterThan(0);
  });
});

describe('the optimizer guard', () => {
  async function setup(values: number[], grads: number[]) {
    const backend = await createBackend('wasm', { threads: 1 });
    const heap = new Heap(backend);
    const params = new ParameterSet();
    const w = params.register('w', [values.length], { init: { kind: 'zeros' }, decay: true });
    params.materialize(heap, new Rng(1));
    backend.write(w.offset, values);
    backend.write(params.gradOffset, grads);
    const read = () => Array.from(backend.readSync(params.paramOffset, values.length));
    return { backend, params, read };
  }

  it('AdamW refuses a NaN/Inf gradient and leaves weights, moments and step count as they were', async () => {
    const { backend, params, read } = await setup([0.5, -0.25, 1], [0.1, Infinity, 0.2]);
    const opt = new AdamW(params, { lr: 1e-2 });
    const before = read();
    const m0 = await opt.exportState();
    const out = opt.step();
    expect(out).toMatchObject({ applied: false, reason: 'gradient' });
    expect(read()).toEqual(before);
    const m1 = await opt.exportState();
    expect(m1.step).toBe(0);
    expect([...m1.m.get('w')!, ...m1.v.get('w')!]).toEqual([...m0.m.get('w')!, ...m0.v.get('w')!]);
    backend.write(params.gradOffset, [0.1, 0.3, 0.2]);
    expect(opt.step()).toMatchObject({ applied: true });
    expect(read()).not.toEqual(before);
    backend.dispose();
  });

  it('AdamW refuses an update whose weights would overflow f32 (finite gradient, weight decay at lr 1e6), bit for bit unchanged', async () => {
    const { backend, params, read } = await setup([3e33, -1, 2], [0.1, 0.2, 0.3]);
    const opt = new AdamW(params, { lr: 1e6, weightDecay: 0.1 }); // p·(1 − lr·wd) = −3e38·... overflows
    const before = read();
    const out = opt.step();
    expect(out).toMatchObject({ applied: false, reason: 'overflow' });
    expect(read()).toEqual(before);
    backend.dispose();
  });

  it('SGD refuses a NaN gradient and an overflowing update alike', async () => {
    const a = await setup([1, 2], [NaN, 1]);
    const sgd = new SGD(a.params, { lr: 0.1, momentum: 0.9 });
    expect(sgd.step()).toMatchObject({ applied: false, reason: 'gradient' });
    expect(a.read()).toEqual([1, 2]);
    expect(sgd.stepCount).toBe(0);
    a.backend.dispose();
    const b = await setup([1e38, 2], [1, 1]);
    const big = new SGD(b.params, { lr: 1e30, weightDecay: 0.5 });
    expect(big.step()).toMatchObject({ applied: false, reason: 'overflow' });
    expect(b.read()).toEqual([1e38, 2].map((x) => Math.fround(x)));
    b.backend.dispose();
  });

  it('accepts every update of ordinary training (the bound only bites beyond ~1e30)', () => {
    const ok = adamwGuard({ grad: 50, param: 300, state: 10 }, { lr: 3e-3, beta1: 0.9, eps: 1e-8, weightDecay: 0.1, step: 1, clip: 0 });
    expect(ok).toEqual({ applied: true, gradNorm: 50 });
  });
});

describe('non-finite checkpoints', () => {
  it('encodeCheckpoint refuses NaN/Inf in the weights or the optimizer state, naming the tensor', async () => {
    const data = (x: number) => ({ model: { w: { dtype: 'F32' as const, shape: [2], data: new Float32Array([1, x]) } }, trainer: { step: 1, config: {}, rng: [1, 2, 3, 4] as [number, number, number, number] } });
    await expect(encodeCheckpoint(data(NaN))).rejects.toThrow(/model\.safetensors tensor w holds 1 non-finite value \(NaN at index 1\)/);
    await expect(encodeCheckpoint({ ...data(1), optimizer: { 'w.exp_avg': { dtype: 'F32', shape: [2], data: new Float32Array([Infinity, 0]) } } }))
      .rejects.toThrow(/optimizer\.safetensors tensor w\.exp_avg holds 1 non-finite value \(Infinity at index 0\)/);
    await expect(encodeCheckpoint(data(2))).resolves.toBeDefined();
  });

  it('sample and --resume refuse a checkpoint holding NaN (one written by an older build), with a clear message', async () => {
    const ok = bt(dir, ['train', ...S, '--iters', '6', '--out', 'N', '--log-every', '2']);
    expect(ok.status).toBe(0);
    // poison one weight, re-recording size and checksum as an older build (no finite check) would have written it
    const fs = await createNodeFileSystem();
    const ck = await loadCheckpoint(fs, join(dir, 'N/ckpt-6'));
    const [name, t] = [...ck.model][0]!;
    (t.data as Float32Array)[3] = NaN;
    const bytes = encodeSafetensors(ck.model, { format: 'pt' });
    writeFileSync(join(dir, 'N/ckpt-6/model.safetensors'), bytes);
    const tj = JSON.parse(await fs.readText(join(dir, 'N/ckpt-6/trainer.json'))) as { files: Record<string, { bytes: number; xxh64?: string }> };
    tj.files['model.safetensors'] = { bytes: bytes.length };
    writeFileSync(join(dir, 'N/ckpt-6/trainer.json'), JSON.stringify(tj));
    const expected = new RegExp(`N/ckpt-6/model\\.safetensors: tensor ${name.replace(/\./g, '\\.')} holds 1 non-finite value \\(NaN at index 3\\)`);
    const s = bt(dir, ['sample', '--ckpt', 'N/ckpt-6', '--tokens', '5']);
    expect(s.status).toBe(1);
    expect(s.stderr).toMatch(expected);
    const r = bt(dir, ['train', '--resume', 'N/ckpt-6', '--iters', '10']);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(expected);
    await expect(loadCheckpoint(fs, join(dir, 'N/ckpt-6'))).rejects.toThrow(CheckpointError);
  });
});
