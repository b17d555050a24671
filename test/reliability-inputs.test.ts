// Issue 13 items 8 and 9: --out on procfs fails at once; sample needs no optimizer state; a
// vocabulary cut in trainer.json is found before generating; 1e400 in a config is "not a finite number".
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S, bt, workDir } from './reliability-cli.js';

let dir = '';
let cleanup = () => {};
beforeAll(() => {
  ({ dir, cleanup } = workDir('bitnet-inputs-'));
  const r = bt(dir, ['train', ...S, '--iters', '6', '--out', 'ok', '--log-every', '3']);
  if (r.status !== 0) throw new Error(r.stderr);
});
afterAll(() => cleanup());

describe('inputs', () => {
  it.skipIf(!existsSync('/proc/self'))('--out /proc/x fails at once naming the directory, instead of hanging', () => {
    const r = bt(dir, ['train', ...S, '--iters', '6', '--out', '/proc/x'], 30_000);
    expect(r.signal).toBeNull(); // not killed by the timeout
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('mkdirp /proc/x: ENOENT (/proc exists but does not accept a new directory /proc/x)');
  });

  it('sample reads a checkpoint without optimizer.safetensors', () => {
    rmSync(join(dir, 'ok/ckpt-6/optimizer.safetensors'));
    const r = bt(dir, ['sample', '--ckpt', 'ok/ckpt-6', '--tokens', '20', '--prompt', 'ROMEO:']);
    expect(r.stderr).toContain('(sampled from ok/ckpt-6, step 6)');
    expect(r.status).toBe(0);
    expect(r.stdout.length).toBeGreaterThanOrEqual('ROMEO:'.length + 20);
  });

  it('a vocabulary cut in trainer.json is refused before anything is generated', () => {
    const tj = join(dir, 'ok/best/trainer.json');
    const json = JSON.parse(readFileSync(tj, 'utf8')) as { tokenizer: { vocab: string[] } };
    const n = json.tokenizer.vocab.length;
    json.tokenizer.vocab = json.tokenizer.vocab.slice(0, 20);
    writeFileSync(tj, JSON.stringify(json));
    const r = bt(dir, ['sample', '--ckpt', 'ok/best', '--tokens', '50']);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`its tokenizer has 20 ids but config.model.vocabSize is ${n}`);
    expect(r.stdout).toBe(''); // nothing generated
  });

  it('"iters": 1e400 in a --config file is reported as not a finite number', () => {
    writeFileSync(join(dir, 'big.json'), '{ "iters": 1e400 }');
    const r = bt(dir, ['train', '--config', 'big.json', ...S]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('--config big.json: iters: expected a positive integer, got Infinity, not a finite number');
  });
});
