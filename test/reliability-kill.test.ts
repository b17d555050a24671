// Issue 13: kill -9 and SIGTERM at random points of a short run, resuming after each. Every
// checkpoint left loads (sizes, CRC-32C, finite values), each resume continues from the latest,
// the log parses line by line, and the run finishes at its last step.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCheckpoint } from '../src/io/checkpoint.js';
import { createNodeFileSystem } from '../src/runtime/fs-node.js';
import { Rng } from '../src/util/rng.js';
import { S, bt, btSignalled, readLog, workDir } from './reliability-cli.js';

let dir = '';
let cleanup = () => {};
beforeAll(() => ({ dir, cleanup } = workDir('bitnet-kill-')));
afterAll(() => cleanup());

const ITERS = 160;

describe('kill -9 / SIGTERM loop', () => {
  it('leaves only loadable checkpoints, resumes each time, and ends with a parseable log at step 160', async () => {
    const fs = await createNodeFileSystem();
    const rng = new Rng(13);
    const args = (first: boolean) => first
      ? ['train', ...S, '--iters', String(ITERS), '--save-every', '10', '--eval-every', '40', '--log-every', '5', '--out', 'k']
      : ['train', '--resume', 'k', '--iters', String(ITERS), '--log-every', '5'];
    let first = true;
    let lastStep = 0;
    for (let round = 0; round < 4; round++) {
      const signal = round % 2 === 0 ? 'SIGKILL' : 'SIGTERM';
      // a random point 50-300 ms into training (after the run header)
      const delayMs = 50 + Math.floor(rng.uniform() * 250);
      const r = await btSignalled(dir, args(first), signal, { when: (s) => s.includes('run directory:'), delayMs });
      if (r.status === 0) break; // finished before the signal
      expect(r.stderr).not.toMatch(/error/);
      if (signal === 'SIGTERM') expect(r.status).toBe(143);
      else expect(r.signal).toBe('SIGKILL');
      const ckpts = readdirSync(join(dir, 'k')).filter((n) => /^ckpt-\d+$/.test(n) || n === 'best');
      if (ckpts.length > 0) first = false;
      for (const n of ckpts) {
        const ck = await loadCheckpoint(fs, join(dir, 'k', n)); // throws on a torn, corrupt or non-finite file
        expect(ck.optimizer).toBeDefined();
      }
      const steps = ckpts.filter((n) => n !== 'best').map((n) => Number(n.slice(5)));
      if (steps.length > 0) {
        expect(Math.max(...steps)).toBeGreaterThanOrEqual(lastStep); // never lost a checkpoint it had
        lastStep = Math.max(...steps);
      }
      readLog(join(dir, 'k/log.jsonl')); // every line is JSON
    }
    const done = bt(dir, args(first));
    expect(done.stderr).not.toMatch(/error/);
    expect(done.status).toBe(0);
    const log = readLog(join(dir, 'k/log.jsonl'));
    expect(log.at(-1)).toMatchObject({ event: 'done', step: ITERS });
    const steps = log.filter((e) => e.event === 'step').map((e) => e.step as number);
    expect(steps.at(-1)).toBe(ITERS);
    for (const n of readdirSync(join(dir, 'k')).filter((x) => /^ckpt-\d+$|^best$/.test(x))) await loadCheckpoint(fs, join(dir, 'k', n));
  });
});
