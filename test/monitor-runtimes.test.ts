// TensorBoard event files from the built package in Node, Deno and Bun (the file system through
// the runtime adapter, hash-wasm and @bufbuild/protobuf imported by name), read back by the
// independent reader. A runtime whose binary is absent is skipped with a reason (not under CI).
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readEvents, scalarSeries } from './monitor-reader.js';
import { REPO_ROOT, binPath } from './portable/chromium.js';

const dir = mkdtempSync(join(tmpdir(), 'bitnet-tb-runtimes-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function run(cmd: string, args: string[]): Promise<{ runtime: string; path: string }> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { cwd: REPO_ROOT, timeout: 60_000, env: { ...process.env, NO_COLOR: '1' } }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')}: ${err.message}\n${stderr}`));
      else resolve(JSON.parse(stdout.trim().split('\n').at(-1)!) as { runtime: string; path: string });
    });
  });
}

const runtimes: [string, string | undefined, (out: string) => string[]][] = [
  ['node', process.execPath, (out) => ['test/monitor-portable.mjs', out]],
  ['deno', binPath('deno'), (out) => ['run', '-A', 'test/monitor-portable.mjs', out]],
  ['bun', binPath('bun'), (out) => ['test/monitor-portable.mjs', out]],
];

describe('TensorBoard event files in every runtime', () => {
  for (const [name, bin, args] of runtimes) {
    const skip = !bin && !process.env.CI;
    if (skip) console.warn(`monitor-runtimes: SKIPPING ${name}: not installed (npm i -D ${name})`);
    it.skipIf(skip)(`${name} writes an event file the reader decodes`, async () => {
      if (!bin) throw new Error(`${name} is not installed; CI=true requires it`);
      const r = await run(bin, args(join(dir, name)));
      expect(r.runtime.startsWith(name)).toBe(true);
      const events = readEvents(readFileSync(r.path));
      expect(events[0]!.fileVersion).toBe('brain.Event:2');
      const s = scalarSeries(events);
      expect(s.get('train/loss')).toEqual([3.5, 3, 2.5, 2, 1.5].map((value, i) => ({ step: i + 1, value })));
      const h = events.find((e) => e.summary?.value[0]?.histo)!.summary!.value[0]!.histo!;
      expect([h.min, h.max, h.num, h.sum]).toEqual([-2, 3, 6, 1.5]);
    }, 90_000);
  }
});
