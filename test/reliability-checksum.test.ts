// Issue 13 item 2: every checkpoint file's XXH64 is recorded in trainer.json and verified on load;
// silent corruption of tensor data is refused by sample and --resume with a message naming the file.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createXXHash64 } from 'hash-wasm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadChecksum, xxh64Hex } from '../src/io/checksum.js';
import { S, bt, workDir } from './reliability-cli.js';

let dir = '';
let cleanup = () => {};
beforeAll(() => ({ dir, cleanup } = workDir('bitnet-checksum-')));
afterAll(() => cleanup());

describe('XXH64', () => {
  it('is XXH64 with seed 0 (the reference values of "" and "abc")', async () => {
    expect(xxh64Hex(new Uint8Array(0))).toBe('ef46db3751d8e999');
    expect(xxh64Hex(new TextEncoder().encode('abc'))).toBe('44bc2cf5ad770999');
    expect((await loadChecksum())(new TextEncoder().encode('abc'))).toBe('44bc2cf5ad770999');
  });

  it('the portable BigInt implementation equals hash-wasm on random data of every length 0..100 and 64 KiB + 13', async () => {
    const hasher = await createXXHash64();
    let seed = 7;
    const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 24);
    for (const n of [...Array.from({ length: 101 }, (_, i) => i), (1 << 16) + 13]) {
      const data = Uint8Array.from({ length: n }, rand);
      expect(xxh64Hex(data)).toBe(hasher.init().update(data).digest('hex'));
    }
  });
});

describe('a checkpoint with 50 bytes of its tensor data flipped', () => {
  it('is recorded with a checksum per file, and refused by sample and --resume naming the file', () => {
    const r = bt(dir, ['train', ...S, '--iters', '6', '--out', 'C', '--log-every', '3']);
    expect(r.status).toBe(0);
    const tj = JSON.parse(readFileSync(join(dir, 'C/ckpt-6/trainer.json'), 'utf8')) as { files: Record<string, { bytes: number; xxh64: string }> };
    expect(Object.keys(tj.files).sort()).toEqual(['model.safetensors', 'optimizer.safetensors']);
    const path = join(dir, 'C/ckpt-6/model.safetensors');
    const bytes = readFileSync(path);
    expect(tj.files['model.safetensors']!.xxh64).toBe(xxh64Hex(bytes));
    // XOR 50 bytes well inside the data section (after the 8-byte length and the JSON header)
    const header = Number(bytes.readBigUInt64LE(0));
    for (let i = 0; i < 50; i++) bytes[8 + header + 1000 + i * 7]! ^= 0x5a;
    writeFileSync(path, bytes);
    const expected = /checkpoint C\/ckpt-6\/model\.safetensors is corrupt: its XXH64 checksum is [0-9a-f]{16} but trainer\.json recorded [0-9a-f]{16}/;
    const s = bt(dir, ['sample', '--ckpt', 'C/ckpt-6', '--tokens', '5']);
    expect(s.status).toBe(1);
    expect(s.stderr).toMatch(expected);
    const t = bt(dir, ['train', '--resume', 'C/ckpt-6', '--iters', '10']);
    expect(t.status).toBe(1);
    expect(t.stderr).toMatch(expected);
  });
});
