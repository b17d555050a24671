// Issue 13 item 2: every checkpoint file's CRC-32C is recorded in trainer.json and verified on load;
// silent corruption of tensor data is refused by sample and --resume with a message naming the file.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createCRC32 } from 'hash-wasm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { crc32cHex, crc32cJs, loadChecksum } from '../src/io/checksum.js';
import { S, bt, workDir } from './reliability-cli.js';

let dir = '';
let cleanup = () => {};
beforeAll(() => ({ dir, cleanup } = workDir('bitnet-checksum-')));
afterAll(() => cleanup());

describe('CRC-32C', () => {
  it('is the Castagnoli CRC (check value of "123456789" is e3069283, RFC 3720)', async () => {
    const bytes = new TextEncoder().encode('123456789');
    expect(crc32cJs(bytes)).toBe(0xe3069283);
    expect((await loadChecksum())(bytes)).toBe('e3069283');
    expect(crc32cHex(new Uint8Array(0))).toBe('00000000');
  });

  it('the portable JavaScript loop equals hash-wasm on random data of every length 0..70 and 1 MiB + 3', async () => {
    const hasher = await createCRC32(0x82f63b78);
    let seed = 7;
    const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 24);
    for (const n of [...Array.from({ length: 71 }, (_, i) => i), (1 << 20) + 3]) {
      const data = Uint8Array.from({ length: n }, rand);
      expect(crc32cHex(data)).toBe(hasher.init().update(data).digest('hex'));
    }
  });
});

describe('a checkpoint with 50 bytes of its tensor data flipped', () => {
  it('is recorded with a checksum per file, and refused by sample and --resume naming the file', () => {
    const r = bt(dir, ['train', ...S, '--iters', '6', '--out', 'C', '--log-every', '3']);
    expect(r.status).toBe(0);
    const tj = JSON.parse(readFileSync(join(dir, 'C/ckpt-6/trainer.json'), 'utf8')) as { files: Record<string, { bytes: number; crc32c: string }> };
    expect(Object.keys(tj.files).sort()).toEqual(['model.safetensors', 'optimizer.safetensors']);
    const path = join(dir, 'C/ckpt-6/model.safetensors');
    const bytes = readFileSync(path);
    expect(tj.files['model.safetensors']!.crc32c).toBe(crc32cHex(bytes));
    // XOR 50 bytes well inside the data section (after the 8-byte length and the JSON header)
    const header = Number(bytes.readBigUInt64LE(0));
    for (let i = 0; i < 50; i++) bytes[8 + header + 1000 + i * 7]! ^= 0x5a;
    writeFileSync(path, bytes);
    const expected = /checkpoint C\/ckpt-6\/model\.safetensors is corrupt: its CRC-32C is [0-9a-f]{8} but trainer\.json recorded [0-9a-f]{8}/;
    const s = bt(dir, ['sample', '--ckpt', 'C/ckpt-6', '--tokens', '5']);
    expect(s.status).toBe(1);
    expect(s.stderr).toMatch(expected);
    const t = bt(dir, ['train', '--resume', 'C/ckpt-6', '--iters', '10']);
    expect(t.status).toBe(1);
    expect(t.stderr).toMatch(expected);
  });
});
