// `bitnet-train train --backend webgpu` as a user runs it (dist/cli/main.js, built by `npm test`'s
// pretest): a tiny run on the adapter Dawn finds, and the error when there is none. Skipped with
// the reason printed only where no adapter exists, and never under CI=true.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { webgpuOrReason } from './portable/webgpu-harness.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const MAIN = join(ROOT, 'dist/cli/main.js');
const found = await webgpuOrReason();
found.gpu?.dispose();
const built = existsSync(join(ROOT, 'dist/gpu/index.js'));
if (!found.gpu) console.warn(`webgpu: SKIPPING the webgpu CLI test: ${found.reason}`);
if (!built && !process.env.CI) console.warn('webgpu: SKIPPING the webgpu CLI test: dist/ is not built (npm run build)');

const dir = mkdtempSync(join(tmpdir(), 'bitnet-webgpu-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const TINY = ['--layers', '1', '--dim', '16', '--heads', '2', '--context', '8', '--batch', '2', '--iters', '2', '--eval-iters', '1', '--log-every', '1'];

function cli(args: string[], env: Record<string, string | undefined>) {
  return spawnSync(process.execPath, [MAIN, ...args], { cwd: dir, encoding: 'utf8', timeout: 90_000, env: { ...process.env, ...env } });
}

describe.skipIf(!found.gpu || (!built && !process.env.CI))('bitnet-train --backend webgpu', () => {
  it('trains, evaluates and checkpoints; the end-of-training sample is skipped with a warning naming the way to sample', () => {
    const r = cli(['train', '--backend', 'webgpu', ...TINY, '--out', join(dir, 'run')], {});
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/backend webgpu/);
    expect(r.stdout).toMatch(/eval step 2: train loss \d/);
    expect(r.stderr + r.stdout).toMatch(/no sample after training: .* `bitnet-train sample --backend wasm`/);
    const log = readFileSync(join(dir, 'run/log.jsonl'), 'utf8');
    expect(log).toMatch(/"event":"eval"/);
    expect(existsSync(join(dir, 'run/ckpt-2/model.safetensors'))).toBe(true);
  });

  it('without a usable adapter: one error naming what is missing and suggesting --backend wasm, nothing written', () => {
    const r = cli(['train', '--backend', 'webgpu', ...TINY, '--out', join(dir, 'none')], { VK_ICD_FILENAMES: join(dir, 'no-such-icd.json') });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/webgpu backend: no WebGPU adapter found .*VK_ICD_FILENAMES.*--backend wasm/);
    expect(existsSync(join(dir, 'none'))).toBe(false);
  });
});
