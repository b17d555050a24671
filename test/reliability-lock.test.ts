// Issue 13 item 5: one run per run directory. A live holder is named ("in use by pid N") before
// anything is written; a lock left by a dead process (kill -9, a crash) is taken over.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RUN_LOCK_DIR, RunLockError, acquireRunLock } from '../src/io/run-lock.js';
import { MemoryFileSystem } from '../src/runtime/fs.js';
import { S, bt, workDir } from './reliability-cli.js';

let dir = '';
let cleanup = () => {};
beforeAll(() => ({ dir, cleanup } = workDir('bitnet-lock-')));
afterAll(() => cleanup());

function fakeLock(run: string, pid: number): void {
  mkdirSync(join(dir, run, RUN_LOCK_DIR), { recursive: true });
  writeFileSync(join(dir, run, RUN_LOCK_DIR, 'owner.json'), JSON.stringify({ pid, host: hostname(), started: '2026-01-01T00:00:00.000Z', token: 'x' }));
}

describe('the run-directory lock', () => {
  it('refuses a second run in a directory a live process holds, naming its pid, and writes nothing there', async () => {
    const holder = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)']);
    try {
      fakeLock('busy', holder.pid!);
      const r = bt(dir, ['train', ...S, '--iters', '6', '--out', 'busy']);
      expect(r.status).toBe(1);
      expect(r.stderr).toContain(`run directory busy is in use by pid ${holder.pid} on ${hostname()}, since 2026-01-01T00:00:00.000Z`);
      expect(readdirSync(join(dir, 'busy'))).toEqual([RUN_LOCK_DIR]);
    } finally {
      holder.kill('SIGKILL');
    }
  });

  it('takes over the lock of a process that is no longer alive, trains, and releases it', () => {
    const gone = spawnSync(process.execPath, ['-e', 'console.log(process.pid)'], { encoding: 'utf8' });
    fakeLock('stale', Number(gone.stdout.trim()));
    const r = bt(dir, ['train', ...S, '--iters', '6', '--out', 'stale', '--log-every', '3']);
    expect(r.stderr).toMatch(new RegExp(`took over stale/run\\.lock of pid ${gone.stdout.trim()}, which is no longer running`));
    expect(r.status).toBe(0);
    expect(existsSync(join(dir, 'stale/ckpt-6'))).toBe(true);
    expect(existsSync(join(dir, 'stale', RUN_LOCK_DIR))).toBe(false);
  });

  it('in one process: a second acquire is refused while the first holds it, and succeeds after release', async () => {
    const fs = new MemoryFileSystem();
    const a = await acquireRunLock(fs, 'runs/a');
    await expect(acquireRunLock(fs, 'runs/a')).rejects.toThrow(RunLockError);
    await expect(acquireRunLock(fs, 'runs/a')).rejects.toThrow(new RegExp(`in use by pid ${process.pid}`));
    await a.release();
    expect(await fs.exists('runs/a/run.lock')).toBe(false);
    const b = await acquireRunLock(fs, 'runs/a');
    await b.release();
    expect(await fs.list('runs/a')).toEqual([]);
  });
});
