// Shared by test/reliability-*.test.ts: `bt` (the built CLI) in a temporary directory with a small
// corpus, and the scenario flags S (issue 13), scaled down where a scenario needs it.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const ROOT = new URL('..', import.meta.url).pathname;
export const MAIN = join(ROOT, 'dist/cli/main.js');

/** The issue's `S`: `--layers 2 --heads 2 --dim 64 --context 32 --batch 4 --warmup 5 --eval-iters 2 --threads 1`. */
export const S = ['--data', 'small.txt', '--layers', '2', '--heads', '2', '--dim', '64', '--context', '32', '--batch', '4', '--warmup', '5', '--eval-iters', '2', '--threads', '1'];

/** A temporary working directory with `small.txt` (the first 40 kB of tinyshakespeare). */
export function workDir(prefix: string): { dir: string; cleanup(): void } {
  if (!existsSync(MAIN)) execFileSync(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', join(ROOT, 'tsconfig.json')]);
  const dir = mkdtempSync(join(tmpdir(), prefix));
  writeFileSync(join(dir, 'small.txt'), readFileSync(join(ROOT, 'examples/data/tinyshakespeare.txt'), 'utf8').slice(0, 40000));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface CliResult {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  seconds: number;
}

/** Run `bt ...args` to completion in `cwd`. */
export function bt(cwd: string, args: string[], timeoutMs = 60_000): CliResult {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [MAIN, ...args], { cwd, encoding: 'utf8', timeout: timeoutMs });
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr, seconds: (performance.now() - t0) / 1000 };
}

/**
 * Start `bt ...args` in `cwd`; `when(stdout)` true sends `signal` (once). Resolves when it exits.
 * `afterMs` instead sends the signal that long after the start.
 */
export function btSignalled(cwd: string, args: string[], signal: NodeJS.Signals, trigger: { when?: (stdout: string) => boolean; afterMs?: number; delayMs?: number }): Promise<CliResult & { sentAt: number }> {
  const t0 = performance.now();
  const child = spawn(process.execPath, [MAIN, ...args], { cwd });
  let stdout = '';
  let stderr = '';
  let sentAt = -1;
  let armed = false;
  const send = () => {
    if (sentAt >= 0) return;
    sentAt = (performance.now() - t0) / 1000;
    child.kill(signal);
  };
  const arm = () => {
    if (armed) return;
    armed = true;
    if (trigger.delayMs) setTimeout(send, trigger.delayMs);
    else send();
  };
  child.stdout.on('data', (d) => {
    stdout += d;
    if (trigger.when?.(stdout)) arm();
  });
  child.stderr.on('data', (d) => (stderr += d));
  if (trigger.afterMs !== undefined) setTimeout(send, trigger.afterMs);
  const guard = setTimeout(() => child.kill('SIGKILL'), 60_000);
  return new Promise((resolve) => child.on('close', (status, sig) => {
    clearTimeout(guard);
    resolve({ status, signal: sig, stdout, stderr, seconds: (performance.now() - t0) / 1000, sentAt });
  }));
}

/** The JSON-lines log at `path`, every line parsed (throws on a torn or invalid line). */
export function readLog(path: string): Record<string, unknown>[] {
  return readFileSync(path, 'utf8').split('\n').filter((l) => l.length > 0).map((l) => JSON.parse(l) as Record<string, unknown>);
}
