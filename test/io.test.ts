import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  CheckpointManager,
  type CheckpointData,
  CHECKPOINT_FORMAT_VERSION,
  decodeSafetensors,
  encodeSafetensors,
  latestCheckpoint,
  listCheckpoints,
  loadCheckpoint,
  readSafetensorsHeader,
  resolveCheckpointDir,
  saveCheckpoint,
  type SafetensorsTensor,
  tensorDataFromBytes,
  tensorDataToBytes,
} from '../src/io/index.js';
import {
  type FileData,
  type FileSystem,
  FileSystemError,
  MemoryFileSystem,
  createNodeFileSystem,
  detectFileSystemKind,
  getDefaultFileSystem,
  joinPath,
  dirname,
  basename,
} from '../src/runtime/fs.js';
import { CharTokenizer } from '../src/data/index.js';
import { Rng } from '../src/util/rng.js';

const tmpRoots: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'bitnet-io-'));
  tmpRoots.push(d);
  return d;
}
afterAll(() => {
  for (const d of tmpRoots) rmSync(d, { recursive: true, force: true });
});

const ascii = (s: string) => [...new TextEncoder().encode(s)];
const f32le = (...v: number[]) => [...new Uint8Array(new Float32Array(v).buffer)];

describe('safetensors: byte-exact with the reference writer', () => {
  it('matches the reference serialisation of one F32 tensor (header 64 bytes, no padding)', () => {
    // Vector from the reference implementation's own test suite (test_serialization).
    const expected = [
      64, 0, 0, 0, 0, 0, 0, 0, 123, 34, 97, 116, 116, 110, 46, 48, 34, 58, 123, 34, 100,
      116, 121, 112, 101, 34, 58, 34, 70, 51, 50, 34, 44, 34, 115, 104, 97, 112, 101, 34,
      58, 91, 49, 44, 50, 44, 51, 93, 44, 34, 100, 97, 116, 97, 95, 111, 102, 102, 115,
      101, 116, 115, 34, 58, 91, 48, 44, 50, 52, 93, 125, 125, 0, 0, 0, 0, 0, 0, 128, 63,
      0, 0, 0, 64, 0, 0, 64, 64, 0, 0, 128, 64, 0, 0, 160, 64,
    ];
    const bytes = encodeSafetensors(new Map([['attn.0', { dtype: 'F32', shape: [1, 2, 3], data: new Float32Array([0, 1, 2, 3, 4, 5]) }]]));
    expect([...bytes]).toEqual(expected);
    const back = decodeSafetensors(new Uint8Array(expected), { source: 'vector' });
    expect([...back.tensors.get('attn.0')!.data]).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it('decodes from a Node Buffer (whose slice() is a view) into arrays that own just their tensor', () => {
    const bytes = encodeSafetensors({ a: { dtype: 'F32', shape: [2], data: new Float32Array([1, 2]) }, b: { dtype: 'F32', shape: [3], data: new Float32Array([3, 4, 5]) } });
    const back = decodeSafetensors(Buffer.from(bytes), { source: 'buffer' });
    expect([...back.tensors.get('b')!.data]).toEqual([3, 4, 5]);
    expect(back.tensors.get('b')!.data.length).toBe(3);
    expect(back.tensors.get('a')!.data.buffer.byteLength).toBe(8);
  });

  it('pads the header with spaces to a multiple of 8 (reference test_serialization_forced_alignement)', () => {
    const json = '{"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}}';
    const expected = [72, 0, 0, 0, 0, 0, 0, 0, ...ascii(json), ...ascii(' '.repeat(72 - json.length)), ...f32le(0, 1, 2, 3, 4, 5)];
    const bytes = encodeSafetensors({ attn0: { dtype: 'F32', shape: [1, 1, 2, 3], data: new Float32Array([0, 1, 2, 3, 4, 5]) } });
    expect([...bytes]).toEqual(expected);
  });

  it('writes an empty map as "{}" + 6 spaces, and metadata first (reference test_empty)', () => {
    expect([...encodeSafetensors(new Map())]).toEqual([8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32]);
    expect([...encodeSafetensors(new Map(), { framework: 'pt' })]).toEqual([
      40, 0, 0, 0, 0, 0, 0, 0, 123, 34, 95, 95, 109, 101, 116, 97, 100, 97, 116, 97, 95,
      95, 34, 58, 123, 34, 102, 114, 97, 109, 101, 119, 111, 114, 107, 34, 58, 34, 112,
      116, 34, 125, 125, 32, 32, 32, 32, 32,
    ]);
    const empty = decodeSafetensors(encodeSafetensors(new Map()), { source: 'empty' });
    expect(empty.tensors.size).toBe(0);
    expect(empty.metadata).toBeUndefined();
  });

  it('reads the hand-made fixture (every dtype class, scalar, empty tensor) and re-encodes it byte for byte', () => {
    const fixture = new Uint8Array(readFileSync(new URL('./fixtures/tiny.safetensors', import.meta.url)));
    const { tensors, metadata } = decodeSafetensors(fixture, { source: 'fixtures/tiny.safetensors' });
    expect(metadata).toEqual({ format: 'pt' });
    expect([...tensors.keys()]).toEqual(['d', 'a', 'i', 'z', 'b', 'u']); // data-offset order
    expect(tensors.get('d')).toEqual({ dtype: 'F64', shape: [], data: new Float64Array([3.5]) });
    expect(tensors.get('a')).toEqual({ dtype: 'F32', shape: [2], data: new Float32Array([1, -2.5]) });
    expect(tensors.get('i')).toEqual({ dtype: 'I32', shape: [2, 1], data: new Int32Array([7, -1]) });
    expect(tensors.get('z')).toEqual({ dtype: 'I8', shape: [3], data: new Int8Array([-128, 0, 127]) });
    expect(tensors.get('b')).toEqual({ dtype: 'U8', shape: [0], data: new Uint8Array(0) });
    expect(tensors.get('u')).toEqual({ dtype: 'U8', shape: [2], data: new Uint8Array([0, 255]) });
    // Insertion order is irrelevant: the writer sorts by dtype alignment, then name.
    const shuffled = new Map([...tensors.entries()].reverse());
    expect(encodeSafetensors(shuffled, { format: 'pt' })).toEqual(fixture);
  });
});

describe('safetensors: round trips', () => {
  it('round-trips every supported dtype with shapes, values and metadata intact', () => {
    const input = new Map<string, SafetensorsTensor>([
      ['f32', { dtype: 'F32', shape: [2, 3], data: new Float32Array([1.5, -0, NaN, Infinity, -1e-30, 3.4e38]) }],
      ['f64', { dtype: 'F64', shape: [2], data: new Float64Array([Math.PI, -1e300]) }],
      ['i32', { dtype: 'I32', shape: [3], data: new Int32Array([-2147483648, 0, 2147483647]) }],
      ['u32', { dtype: 'U32', shape: [1], data: new Uint32Array([4294967295]) }],
      ['i16', { dtype: 'I16', shape: [2], data: new Int16Array([-32768, 32767]) }],
      ['u16', { dtype: 'U16', shape: [1], data: new Uint16Array([65535]) }],
      ['f16', { dtype: 'F16', shape: [2], data: new Uint16Array([0x3c00, 0xc000]) }],
      ['bf16', { dtype: 'BF16', shape: [1], data: new Uint16Array([0x3f80]) }],
      ['i8', { dtype: 'I8', shape: [2], data: new Int8Array([-128, 127]) }],
      ['u8', { dtype: 'U8', shape: [2, 2], data: new Uint8Array([0, 1, 254, 255]) }],
      ['bool', { dtype: 'BOOL', shape: [2], data: new Uint8Array([1, 0]) }],
      ['i64', { dtype: 'I64', shape: [2], data: new BigInt64Array([-(2n ** 63n), 42n]) }],
      ['u64', { dtype: 'U64', shape: [1], data: new BigUint64Array([2n ** 64n - 1n]) }],
      ['scalar', { dtype: 'F32', shape: [], data: new Float32Array([7]) }],
      ['zero', { dtype: 'F32', shape: [0, 4], data: new Float32Array(0) }],
    ]);
    const meta = { format: 'pt', note: 'h\u00e9llo "quoted"' };
    const bytes = encodeSafetensors(input, meta);
    const header = readSafetensorsHeader(bytes, { source: 'rt' });
    expect(header.dataStart % 8).toBe(0);
    expect([...header.entries.keys()].slice(0, 4)).toEqual(['u64', 'i64', 'f64', 'f32']); // 8-byte dtypes first
    const { tensors, metadata } = decodeSafetensors(bytes, { source: 'rt' });
    expect(metadata).toEqual(meta);
    expect(tensors.size).toBe(input.size);
    for (const [name, t] of input) {
      const got = tensors.get(name)!;
      expect(got.dtype, name).toBe(t.dtype);
      expect(got.shape, name).toEqual(t.shape);
      expect(got.data.constructor, name).toBe(t.data.constructor);
      expect(new Uint8Array(got.data.buffer, got.data.byteOffset, got.data.byteLength), name).toEqual(
        new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength),
      );
    }
  });

  it('accepts raw little-endian bytes for any dtype and subarray views of a larger buffer', () => {
    const big = new Float32Array([9, 1, 2, 9]);
    const bytes = encodeSafetensors({
      view: { dtype: 'F32', shape: [2], data: big.subarray(1, 3) },
      raw: { dtype: 'F32', shape: [1], data: new Uint8Array(new Float32Array([5]).buffer) },
    });
    const { tensors } = decodeSafetensors(bytes, { source: 'x' });
    expect([...tensors.get('view')!.data]).toEqual([1, 2]);
    expect([...tensors.get('raw')!.data]).toEqual([5]);
  });

  it('swaps each element on a big-endian host and nothing on a little-endian one', () => {
    const le = new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]);
    const onBigEndian = tensorDataFromBytes('F32', le, false);
    expect([...new Uint8Array(onBigEndian.buffer)]).toEqual([4, 3, 2, 1, 8, 7, 6, 5]);
    expect([...tensorDataToBytes(onBigEndian, 4, false)]).toEqual([...le]);
    expect([...new Uint8Array(tensorDataFromBytes('I16', le, true).buffer)]).toEqual([...le]);
  });

  it('refuses to encode inconsistent tensors, naming the tensor', () => {
    expect(() => encodeSafetensors({ w: { dtype: 'F32', shape: [2, 2], data: new Float32Array(3) } })).toThrow(
      /tensor "w": shape \[2, 2\] of F32 needs 16 bytes, data has 12/,
    );
    expect(() => encodeSafetensors({ w: { dtype: 'F32', shape: [2], data: new Int32Array(2) } })).toThrow(/dtype F32 needs a Float32Array/);
    expect(() => encodeSafetensors({ w: { dtype: 'F4' as 'F32', shape: [2], data: new Float32Array(2) } })).toThrow(/unknown dtype "F4"/);
    expect(() => encodeSafetensors({ __metadata__: { dtype: 'U8', shape: [0], data: new Uint8Array(0) } })).toThrow(/invalid tensor name/);
    expect(() => encodeSafetensors({ w: { dtype: 'U8', shape: [-1], data: new Uint8Array(0) } })).toThrow(/non-negative integers/);
  });
});

/** A safetensors file from a header string and a data buffer (padding to 8 like the writer). */
function rawFile(json: string, data: number[] = [], n?: number): Uint8Array {
  const h = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setUint32(0, n ?? h.length, true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

describe('safetensors: corrupt files are rejected with the file and the problem named', () => {
  const src = { source: 'checkpoint ckpt-120/model.safetensors' };
  const good = encodeSafetensors({ w: { dtype: 'F32', shape: [1024], data: new Float32Array(1024) } });

  it('rejects a header length larger than the file (a garbage u64)', () => {
    const bad = good.slice();
    new DataView(bad.buffer).setBigUint64(0, 9000000000000000000n, true);
    expect(() => decodeSafetensors(bad, src)).toThrow(
      'checkpoint ckpt-120/model.safetensors: header length 9e18 exceeds file size 4168 (file truncated or not safetensors)',
    );
  });

  it('rejects files shorter than 8 bytes, truncated data and a truncated header', () => {
    expect(() => decodeSafetensors(new Uint8Array(5), src)).toThrow(/: file is 5 bytes, shorter than the 8-byte header length/);
    expect(() => decodeSafetensors(good.subarray(0, good.length - 1), src)).toThrow(
      /tensor "w" data_offsets \[0, 4096\] run past the end of the data buffer \(4095 bytes; file truncated\)/,
    );
    expect(() => decodeSafetensors(good.subarray(0, 40), src)).toThrow(/header length 64 exceeds file size 40/);
  });

  it('rejects garbage, a header that is not a JSON object, and invalid UTF-8', () => {
    const garbage = new TextEncoder().encode('\x10\x00\x00\x00\x00\x00\x00\x00this is no JSON!');
    expect(() => decodeSafetensors(garbage, src)).toThrow(/header must start with '\{', found "this is no JSON!" \(not a safetensors file\)/);
    expect(() => decodeSafetensors(rawFile('{"w": [1, 2'), src)).toThrow(/header is not valid JSON/);
    expect(() => decodeSafetensors(rawFile('{"w": 3}'), src)).toThrow(/tensor "w": entry must be an object/);
    const notUtf8 = rawFile('{"w"    }');
    notUtf8[10] = 0xff;
    expect(() => decodeSafetensors(notUtf8, src)).toThrow(/header is not valid UTF-8/);
  });

  it('rejects unknown dtypes, bad shapes, bad metadata', () => {
    expect(() => decodeSafetensors(rawFile('{"w":{"dtype":"F128","shape":[1],"data_offsets":[0,16]}}', new Array(16).fill(0)), src)).toThrow(
      /tensor "w": unknown dtype "F128" \(known: BOOL, U8/,
    );
    expect(() => decodeSafetensors(rawFile('{"w":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}', [0, 0, 0, 0]), src)).toThrow(/shape \[1.5\] must be a list/);
    expect(() => decodeSafetensors(rawFile('{"__metadata__":{"n":1}}'), src)).toThrow(/__metadata__ "n" must be a string, got 1/);
    expect(() => decodeSafetensors(rawFile('{"w":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}', [0, 0, 0, 0]), src)).toThrow(/data_offsets \[4,0\] must be \[begin, end\]/);
  });

  it('rejects offsets that overlap, leave holes, leave trailing bytes, or disagree with shape x dtype', () => {
    // Two U8 tensors "a" and "b" with the given [begin, end] offsets over an n-byte buffer.
    const two = ([a0, a1]: number[], [b0, b1]: number[], n: number) =>
      rawFile(
        `{"a":{"dtype":"U8","shape":[${a1 - a0}],"data_offsets":[${a0},${a1}]},` +
          `"b":{"dtype":"U8","shape":[${b1 - b0}],"data_offsets":[${b0},${b1}]}}`,
        new Array(n).fill(0),
      );
    expect(() => decodeSafetensors(two([0, 4], [2, 6], 6), src)).toThrow(/tensor "b" data_offsets \[2, 6\] overlap tensor "a" \(which ends at 4\)/);
    expect(() => decodeSafetensors(two([0, 4], [5, 6], 6), src)).toThrow(/data buffer bytes \[4, 5\) belong to no tensor \(a hole before tensor "b"\)/);
    expect(() => decodeSafetensors(two([0, 4], [4, 6], 8), src)).toThrow(/data buffer has 8 bytes but the tensors cover 6 \(trailing bytes belong to no tensor\)/);
    expect(decodeSafetensors(two([0, 4], [4, 6], 6), src).tensors.size).toBe(2);
    expect(() => decodeSafetensors(rawFile('{"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}}', new Array(20).fill(0)), src)).toThrow(
      /tensor "w": shape \[2, 3\] of F32 needs 24 bytes but data_offsets \[0, 20\] hold 20/,
    );
  });

  it('accepts tensors stored in any header order as long as the offsets tile the buffer', () => {
    const f = rawFile('{"late":{"dtype":"U8","shape":[1],"data_offsets":[2,3]},"early":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}', [1, 2, 3]);
    const { tensors } = decodeSafetensors(f, src);
    expect([...tensors.keys()]).toEqual(['early', 'late']);
    expect([...tensors.get('late')!.data]).toEqual([3]);
  });
});

const fileSystems: [string, () => Promise<{ fs: FileSystem; root: string }>][] = [
  ['MemoryFileSystem', async () => {
    const fs = new MemoryFileSystem();
    await fs.mkdirp('/work');
    return { fs, root: '/work' };
  }],
  ['node fs', async () => ({ fs: await createNodeFileSystem(), root: tempDir() })],
];

describe.each(fileSystems)('FileSystem contract: %s', (_name, make) => {
  it('writes, reads, appends and lists files; list is sorted and atomic writes leave no temp files', async () => {
    const { fs, root } = await make();
    const d = joinPath(root, 'a/b');
    await fs.mkdirp(d);
    await fs.mkdirp(d); // idempotent
    await fs.writeFile(joinPath(d, 'z.txt'), 'zeta');
    await fs.writeFileAtomic(joinPath(d, 'm.bin'), new Uint8Array([1, 2, 3]));
    await fs.writeFileAtomic(joinPath(d, 'm.bin'), new Uint8Array([4, 5]));
    await fs.appendFile(joinPath(d, 'log.jsonl'), '{"a":1}\n');
    await fs.appendFile(joinPath(d, 'log.jsonl'), '{"a":2}\n');
    expect(await fs.list(d)).toEqual(['log.jsonl', 'm.bin', 'z.txt']);
    expect([...(await fs.readFile(joinPath(d, 'm.bin')))]).toEqual([4, 5]);
    expect(await fs.readText(joinPath(d, 'z.txt'))).toBe('zeta');
    expect(await fs.readText(joinPath(d, 'log.jsonl'))).toBe('{"a":1}\n{"a":2}\n');
    expect(await fs.stat(joinPath(d, 'z.txt'))).toMatchObject({ isFile: true, isDirectory: false, size: 4 });
    expect((await fs.stat(d)).isDirectory).toBe(true);
    expect(await fs.exists(joinPath(d, 'nope'))).toBe(false);
    expect(await fs.exists(joinPath(root, 'a'))).toBe(true);
  });

  it('fails with the operation, the path and the code', async () => {
    const { fs, root } = await make();
    const missing = joinPath(root, 'missing.txt');
    const err = await fs.readFile(missing).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FileSystemError);
    expect(err).toMatchObject({ code: 'ENOENT', path: missing, op: 'readFile' });
    expect((err as Error).message).toBe(`readFile ${missing}: ENOENT (no such file or directory)`);
    await expect(fs.writeFile(joinPath(root, 'no/such/dir/f'), 'x')).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(fs.writeFileAtomic(joinPath(root, 'no/such/dir/f'), 'x')).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(fs.list(missing)).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(fs.stat(missing)).rejects.toMatchObject({ code: 'ENOENT' });
    await fs.mkdirp(joinPath(root, 'dir'));
    await expect(fs.readFile(joinPath(root, 'dir'))).rejects.toMatchObject({ code: 'EISDIR' });
  });

  it('leaves neither a temporary file nor a changed target when an atomic write fails', async () => {
    const { fs, root } = await make();
    await fs.mkdirp(joinPath(root, 'ad/target'));
    await fs.writeFile(joinPath(root, 'ad/keep.txt'), 'old');
    await expect(fs.writeFileAtomic(joinPath(root, 'ad/target'), 'new')).rejects.toMatchObject({ code: 'EISDIR' });
    expect(await fs.list(joinPath(root, 'ad'))).toEqual(['keep.txt', 'target']);
    expect(await fs.readText(joinPath(root, 'ad/keep.txt'))).toBe('old');
  });

  it('removes files, empty directories, trees (recursive) and missing paths (force)', async () => {
    const { fs, root } = await make();
    const t = joinPath(root, 'tree');
    await fs.mkdirp(joinPath(t, 'sub'));
    await fs.writeFile(joinPath(t, 'sub/f'), 'x');
    await expect(fs.remove(t)).rejects.toMatchObject({ code: 'ENOTEMPTY' });
    await fs.remove(joinPath(t, 'sub/f'));
    await fs.remove(joinPath(t, 'sub'));
    await fs.writeFile(joinPath(t, 'g'), 'y');
    await fs.remove(t, { recursive: true });
    expect(await fs.exists(t)).toBe(false);
    await expect(fs.remove(t)).rejects.toMatchObject({ code: 'ENOENT' });
    await fs.remove(t, { force: true });
  });

  it('renames like POSIX: a file replaces a file, a directory replaces only an empty one', async () => {
    const { fs, root } = await make();
    await fs.writeFile(joinPath(root, 'f1'), 'one');
    await fs.writeFile(joinPath(root, 'f2'), 'two');
    await fs.rename(joinPath(root, 'f1'), joinPath(root, 'f2'));
    expect(await fs.readText(joinPath(root, 'f2'))).toBe('one');
    expect(await fs.exists(joinPath(root, 'f1'))).toBe(false);
    await fs.mkdirp(joinPath(root, 'd1/x'));
    await fs.writeFile(joinPath(root, 'd1/x/f'), 'deep');
    await fs.mkdirp(joinPath(root, 'd2'));
    await fs.writeFile(joinPath(root, 'd2/keep'), 'k');
    await expect(fs.rename(joinPath(root, 'd1'), joinPath(root, 'd2'))).rejects.toMatchObject({ code: 'ENOTEMPTY' });
    await fs.rename(joinPath(root, 'd1'), joinPath(root, 'd3'));
    expect(await fs.readText(joinPath(root, 'd3/x/f'))).toBe('deep');
    expect(await fs.exists(joinPath(root, 'd1'))).toBe(false);
    await fs.mkdirp(joinPath(root, 'empty'));
    await fs.rename(joinPath(root, 'd3'), joinPath(root, 'empty'));
    expect(await fs.readText(joinPath(root, 'empty/x/f'))).toBe('deep');
    await expect(fs.rename(joinPath(root, 'nope'), joinPath(root, 'x'))).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

describe('browser safety', () => {
  it('keeps node:* out of src/data and src/io, and imports node:fs in src/runtime only lazily', () => {
    const read = (rel: string) => readFileSync(new URL(`../src/${rel}`, import.meta.url), 'utf8');
    const files = ['data/tokenizer.ts', 'data/dataset.ts', 'io/safetensors.ts', 'io/checkpoint.ts', 'io/checkpoint-manager.ts',
      'runtime/fs.ts', 'runtime/fs-types.ts', 'runtime/fs-memory.ts', 'runtime/fs-node.ts'];
    for (const f of files) {
      const src = read(f);
      // a value import of node:* (type-only imports are erased by the compiler)
      expect(src, f).not.toMatch(/^import\s+(?!type\b)[^;]*from\s+['"]node:/m);
      expect(src, f).not.toMatch(/import\(\s*['"]node:/);
    }
  });
});

describe('host detection and paths', () => {
  it('picks the node file system in Node and joins paths with "/"', async () => {
    expect(detectFileSystemKind()).toBe('node');
    expect((await getDefaultFileSystem()).kind).toBe('node');
    expect(joinPath('runs/', '/x', 'ckpt-1')).toBe('runs/x/ckpt-1');
    expect(joinPath('/', 'a')).toBe('/a');
    expect(dirname('runs/x/ckpt-1/')).toBe('runs/x');
    expect(dirname('file')).toBe('.');
    expect(basename('runs/x/ckpt-1')).toBe('ckpt-1');
  });
});

// ---------------------------------------------------------------------------------------------
// Checkpoints

function fakeCheckpoint(step: number, metric: number | null = null): CheckpointData {
  const rng = new Rng(step);
  const w = new Float32Array(64);
  rng.fillNormal(w, 0, 0.02);
  w[0] = step; // lets a test see which save it loaded
  const m = new Float32Array(64).fill(step / 10);
  return {
    model: new Map([
      ['model.embed_tokens.weight', { dtype: 'F32', shape: [8, 8], data: w }],
      ['model.norm.weight', { dtype: 'F32', shape: [8], data: new Float32Array(8).fill(1) }],
    ]),
    optimizer: new Map([
      ['model.embed_tokens.weight.exp_avg', { dtype: 'F32', shape: [8, 8], data: m }],
      ['model.embed_tokens.weight.exp_avg_sq', { dtype: 'F32', shape: [8, 8], data: m.map((x) => x * x) }],
    ]),
    trainer: {
      step,
      config: { layers: 4, dim: 128, lr: 1e-3 },
      rng: rng.state(),
      scheduler: { kind: 'cosine', warmup: 100 },
      metric,
      tokenizer: CharTokenizer.fromText('hello world').toJSON(),
    },
  };
}

/** Wraps a FileSystem and "crashes the process" at its k-th mutating call: that call and all later ones throw. */
class CrashingFileSystem implements FileSystem {
  readonly kind = 'memory' as const;
  calls = 0;
  dead = false;
  constructor(private inner: FileSystem, private crashAt: number) {}
  private async step<T>(what: () => Promise<T>, partial?: () => Promise<void>): Promise<T> {
    if (this.dead) throw new Error('process is dead');
    if (this.calls++ === this.crashAt) {
      this.dead = true;
      if (partial) await partial();
      throw new Error(`simulated crash at mutating call ${this.crashAt}`);
    }
    return what();
  }
  private alive<T>(what: () => Promise<T>): Promise<T> {
    return this.dead ? Promise.reject(new Error('process is dead')) : what();
  }
  readFile(p: string) { return this.alive(() => this.inner.readFile(p)); }
  readText(p: string) { return this.alive(() => this.inner.readText(p)); }
  exists(p: string) { return this.alive(() => this.inner.exists(p)); }
  stat(p: string) { return this.alive(() => this.inner.stat(p)); }
  list(p: string) { return this.alive(() => this.inner.list(p)); }
  writeFile(p: string, d: FileData) { return this.step(() => this.inner.writeFile(p, d)); }
  appendFile(p: string, d: FileData) { return this.step(() => this.inner.appendFile(p, d)); }
  // A crash inside an atomic write leaves a half-written temporary file behind, as a real one would.
  writeFileAtomic(p: string, d: FileData) {
    const half = typeof d === 'string' ? d.slice(0, d.length >> 1) : d.subarray(0, d.length >> 1);
    return this.step(() => this.inner.writeFileAtomic(p, d), () => this.inner.writeFile(`${p}.tmp-crash`, half));
  }
  mkdirp(p: string) { return this.step(() => this.inner.mkdirp(p)); }
  remove(p: string, o?: { recursive?: boolean; force?: boolean }) { return this.step(() => this.inner.remove(p, o)); }
  rename(a: string, b: string) { return this.step(() => this.inner.rename(a, b)); }
}

describe.each(fileSystems)('checkpoints on %s', (_name, make) => {
  it('round-trips weights, optimizer state and trainer state (RNG state, tokenizer) exactly', async () => {
    const { fs, root } = await make();
    const dir = joinPath(root, 'run/ckpt-120');
    const data = fakeCheckpoint(120, 1.87);
    await saveCheckpoint(fs, dir, data);
    expect(await fs.list(dir)).toEqual(['model.safetensors', 'optimizer.safetensors', 'trainer.json']);
    expect(await fs.list(joinPath(root, 'run'))).toEqual(['ckpt-120']);
    const ck = await loadCheckpoint(fs, dir);
    expect(ck.formatVersion).toBe(CHECKPOINT_FORMAT_VERSION);
    expect(ck.dir).toBe(dir);
    expect(ck.trainer).toEqual(data.trainer);
    expect(ck.modelMetadata).toEqual({ format: 'pt' });
    expect(ck.model).toEqual(data.model);
    expect(ck.optimizer).toEqual(data.optimizer);
    const resumed = Rng.fromState(ck.trainer.rng);
    const original = Rng.fromState(data.trainer.rng);
    expect(resumed.nextU32()).toBe(original.nextU32());
  });

  it('survives a crash at every write of a save: the previous checkpoint stays loadable, the next save succeeds', async () => {
    // Count the mutating calls of one save into an existing checkpoint directory.
    const probe = await make();
    const probeDir = joinPath(probe.root, 'ckpt');
    await saveCheckpoint(probe.fs, probeDir, fakeCheckpoint(1));
    const counter = new CrashingFileSystem(probe.fs, Infinity);
    await saveCheckpoint(counter, probeDir, fakeCheckpoint(2));
    expect(counter.calls).toBeGreaterThanOrEqual(6);

    for (let k = 0; k < counter.calls; k++) {
      const { fs, root } = await make();
      const dir = joinPath(root, `crash-${k}/best`);
      await saveCheckpoint(fs, dir, fakeCheckpoint(1));
      const crashing = new CrashingFileSystem(fs, k);
      await expect(saveCheckpoint(crashing, dir, fakeCheckpoint(2))).rejects.toThrow(/simulated crash/);
      // After the "restart": whatever is on disk loads as one complete checkpoint, old or new.
      const ck = await loadCheckpoint(fs, dir);
      const step = ck.trainer.step;
      expect([1, 2]).toContain(step);
      expect(ck.model.get('model.embed_tokens.weight')!.data[0]).toBe(step);
      expect(ck.optimizer!.get('model.embed_tokens.weight.exp_avg')!.data[0]).toBeCloseTo(step / 10, 6);
      // The next save cleans up and replaces it.
      await saveCheckpoint(fs, dir, fakeCheckpoint(3));
      expect((await loadCheckpoint(fs, dir)).trainer.step).toBe(3);
      expect(await fs.list(joinPath(root, `crash-${k}`))).toEqual(['best']);
      expect(await fs.list(dir)).toEqual(['model.safetensors', 'optimizer.safetensors', 'trainer.json']);
    }
  });

  it('says what is wrong with a broken checkpoint', async () => {
    const { fs, root } = await make();
    const dir = joinPath(root, 'ckpt-7');
    await expect(loadCheckpoint(fs, dir)).rejects.toThrow(`checkpoint ${dir} not found (no such directory)`);
    await saveCheckpoint(fs, dir, fakeCheckpoint(7));
    const model = joinPath(dir, 'model.safetensors');
    const trainer = joinPath(dir, 'trainer.json');
    const modelBytes = await fs.readFile(model);
    const trainerText = await fs.readText(trainer);

    await fs.writeFile(model, modelBytes.subarray(0, 100));
    await expect(loadCheckpoint(fs, dir)).rejects.toThrow(`checkpoint ${model} is 100 bytes but trainer.json recorded ${modelBytes.length} (file truncated or replaced)`);
    const garbage = modelBytes.slice();
    new DataView(garbage.buffer).setBigUint64(0, 9000000000000000000n, true);
    await fs.writeFile(model, garbage);
    await expect(loadCheckpoint(fs, dir)).rejects.toThrow(`checkpoint ${model}: header length 9e18 exceeds file size ${modelBytes.length} (file truncated or not safetensors)`);
    await fs.remove(model);
    await expect(loadCheckpoint(fs, dir)).rejects.toThrow(`checkpoint ${dir} is incomplete: model.safetensors is missing`);
    await fs.writeFile(model, modelBytes);

    await fs.writeFile(trainer, trainerText.slice(0, 50));
    await expect(loadCheckpoint(fs, dir)).rejects.toThrow(`checkpoint ${trainer} is not valid JSON`);
    await fs.writeFile(trainer, trainerText.replace('"formatVersion": 1', '"formatVersion": 2'));
    await expect(loadCheckpoint(fs, dir)).rejects.toThrow(/written by a newer bitnet-training \(format version 2\); this build reads up to version 1/);
    await fs.writeFile(trainer, trainerText.replace('"bitnet-training-checkpoint"', '"something-else"'));
    await expect(loadCheckpoint(fs, dir)).rejects.toThrow(/is not a bitnet-training checkpoint/);
    await fs.writeFile(trainer, trainerText.replace('"step": 7', '"step": -1'));
    await expect(loadCheckpoint(fs, dir)).rejects.toThrow(/"step" must be a non-negative integer, got -1/);
    await fs.remove(trainer);
    await expect(loadCheckpoint(fs, dir)).rejects.toThrow(`checkpoint ${dir} has no trainer.json (incomplete, or not a checkpoint directory)`);
  });

  it('keeps the last N ckpt-<step> directories plus the best, and remembers the best across restarts', async () => {
    const { fs, root } = await make();
    const run = joinPath(root, 'run');
    const mgr = new CheckpointManager(fs, run, { keepLast: 2 });
    const metrics = [3.0, 2.5, 2.7, 2.4, 2.6];
    const results = [];
    for (let i = 0; i < metrics.length; i++) results.push(await mgr.save(fakeCheckpoint((i + 1) * 100, metrics[i])));
    expect(results.map((r) => r.isBest)).toEqual([true, true, false, true, false]);
    expect(results[2].removed).toEqual([joinPath(run, 'ckpt-100')]);
    expect(await fs.list(run)).toEqual(['best', 'ckpt-400', 'ckpt-500']);
    expect((await listCheckpoints(fs, run)).map((c) => c.step)).toEqual([400, 500]);
    expect(await latestCheckpoint(fs, run)).toBe(joinPath(run, 'ckpt-500'));
    const best = await loadCheckpoint(fs, joinPath(run, 'best'));
    expect(best.trainer.step).toBe(400);
    expect(best.trainer.metric).toBe(2.4);
    expect((await loadCheckpoint(fs, joinPath(run, 'ckpt-500'))).trainer.bestMetric).toBe(2.4);

    // A new manager (a resumed run) reads the best metric back and only replaces best/ when beaten.
    const again = new CheckpointManager(fs, run, { keepLast: 2 });
    expect(await again.bestMetric()).toBe(2.4);
    expect((await again.save(fakeCheckpoint(600, 2.45))).isBest).toBe(false);
    expect((await again.save(fakeCheckpoint(700, 2.3))).isBest).toBe(true);
    expect((await loadCheckpoint(fs, joinPath(run, 'best'))).trainer.step).toBe(700);
    expect(await fs.list(run)).toEqual(['best', 'ckpt-600', 'ckpt-700']);
  });

  it('supports higher-is-better metrics, keepLast 1, and checkpoints without a metric', async () => {
    const { fs, root } = await make();
    const run = joinPath(root, 'acc');
    const mgr = new CheckpointManager(fs, run, { keepLast: 1, mode: 'max' });
    expect((await mgr.save(fakeCheckpoint(1, 0.5))).isBest).toBe(true);
    expect((await mgr.save(fakeCheckpoint(2, 0.4))).isBest).toBe(false);
    expect((await mgr.save(fakeCheckpoint(3, null))).isBest).toBe(false);
    expect((await mgr.save(fakeCheckpoint(4, 0.9))).isBest).toBe(true);
    expect(await fs.list(run)).toEqual(['best', 'ckpt-4']);
    expect(() => new CheckpointManager(fs, run, { keepLast: 0 })).toThrow(/keepLast must be a positive integer/);
  });

  it('finishes interrupted swaps and removes half-written directories before saving', async () => {
    const { fs, root } = await make();
    const run = joinPath(root, 'sweep');
    const mgr = new CheckpointManager(fs, run, { keepLast: 5 });
    await mgr.save(fakeCheckpoint(10, 1));
    // Simulate leftovers of a crash: a half-written ckpt-20.tmp and best moved aside mid-swap.
    await fs.mkdirp(joinPath(run, 'ckpt-20.tmp'));
    await fs.writeFile(joinPath(run, 'ckpt-20.tmp/model.safetensors'), 'partial');
    await fs.rename(joinPath(run, 'best'), joinPath(run, 'best.old'));
    expect((await loadCheckpoint(fs, joinPath(run, 'best'))).dir).toBe(joinPath(run, 'best.old'));
    expect(await resolveCheckpointDir(fs, joinPath(run, 'best'))).toBe(joinPath(run, 'best'));

    const fresh = new CheckpointManager(fs, run, { keepLast: 5 });
    await fresh.save(fakeCheckpoint(30, 2));
    expect(await fs.list(run)).toEqual(['best', 'ckpt-10', 'ckpt-30']);
    expect((await loadCheckpoint(fs, joinPath(run, 'best'))).trainer.step).toBe(10);
  });

  it('resolves --resume from a checkpoint or from a run directory, and explains a run directory', async () => {
    const { fs, root } = await make();
    const run = joinPath(root, 'res');
    const mgr = new CheckpointManager(fs, run, { keepLast: 3 });
    await mgr.save(fakeCheckpoint(5));
    await mgr.save(fakeCheckpoint(15));
    expect(await resolveCheckpointDir(fs, run)).toBe(joinPath(run, 'ckpt-15'));
    expect(await resolveCheckpointDir(fs, joinPath(run, 'ckpt-5'))).toBe(joinPath(run, 'ckpt-5'));
    await expect(loadCheckpoint(fs, run)).rejects.toThrow(/looks like a run directory holding ckpt-15, ckpt-5: pass one of those/);
    await expect(resolveCheckpointDir(fs, joinPath(root, 'none'))).rejects.toThrow(/not found/);
    await fs.mkdirp(joinPath(root, 'emptyrun'));
    await expect(resolveCheckpointDir(fs, joinPath(root, 'emptyrun'))).rejects.toThrow(/no checkpoint in .*emptyrun/);
  });
});
