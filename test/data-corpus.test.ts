import { execFileSync } from 'node:child_process';
import { closeSync, existsSync, ftruncateSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  CharTokenizer, FileTokens, HfTokenizer, TextDataset, Utf8PieceDecoder, corpusProgressPrinter, isOnDisk, loadCorpus, loadTrainingCorpus, parseUnknownChars,
} from '../src/data/index.js';
import { createNodeFileSystem } from '../src/runtime/fs-node.js';
import { MemoryFileSystem } from '../src/runtime/fs-memory.js';
import { Rng } from '../src/util/rng.js';
import { LLAMA2_CONFIG, sentencePieceTokenizer } from './data-fixtures.js';

const dir = mkdtempSync(join(tmpdir(), 'bt-corpus-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const fs = await createNodeFileSystem();
const SHAKESPEARE = readFileSync(new URL('../examples/data/tinyshakespeare.txt', import.meta.url), 'utf8');
const KJV = readFileSync(new URL('../../shared/data/kjv-excerpt.txt', import.meta.url), 'utf8');

/** A text with 1-, 2-, 3- and 4-byte characters, so piece boundaries fall inside sequences. */
function multibyteText(n: number): string {
  const parts = ['plain ascii ', 'é', 'ñandú ', '世界', '\u{1F642}', '\n', 'Ωμέγα '];
  let s = '';
  for (let i = 0; s.length < n; i++) s += parts[(i * 7 + 3) % parts.length];
  return s;
}

const same = (a: ArrayLike<number>, b: ArrayLike<number>) => expect(Array.from(a)).toEqual(Array.from(b));

describe('loadCorpus: streaming a file in pieces', () => {
  it('gives the ids of the whole text when pieces cut through multi-byte characters', async () => {
    const text = multibyteText(60_000);
    const path = join(dir, 'multi.txt');
    writeFileSync(path, text);
    const progress: number[] = [];
    const ds = await loadCorpus(fs, path, { pieceBytes: 4093, onProgress: (p) => p.phase === 'tokenize' && progress.push(p.bytesDone) });
    const whole = TextDataset.fromText(text);
    expect((ds.tokenizer as CharTokenizer).vocab).toEqual((whole.tokenizer as CharTokenizer).vocab);
    same(ds.tokens as Uint8Array, whole.tokens as Int32Array);
    expect(ds.tokens).toBeInstanceOf(Uint8Array); // 27 symbols: one byte an id
    expect(progress.length).toBeGreaterThan(10);
    expect(progress.at(-1)).toBe(Buffer.byteLength(text));
  });

  it('reports invalid UTF-8 with its real byte offset, also past the first piece and at a cut-off end', async () => {
    const good = Buffer.from(multibyteText(20_000));
    const bad = Buffer.concat([good, Buffer.from([0x61, 0xff, 0x62])]);
    writeFileSync(join(dir, 'bad.txt'), bad);
    await expect(loadCorpus(fs, join(dir, 'bad.txt'), { pieceBytes: 1000 })).rejects.toThrow(
      new RegExp(`bad\\.txt: not valid UTF-8 \\(first invalid byte 0xff at offset ${good.length + 1}\\)`),
    );
    const cut = Buffer.concat([Buffer.from('abc'), Buffer.from('世').subarray(0, 2)]);
    writeFileSync(join(dir, 'cut.txt'), cut);
    await expect(loadCorpus(fs, join(dir, 'cut.txt'), { pieceBytes: 2 })).rejects.toThrow(/first invalid byte 0xe4 at offset 3, a sequence cut off by the end of the file/);
    const d = new Utf8PieceDecoder('x');
    expect(d.decode(Uint8Array.from([0xe4, 0xb8]), 0) + d.decode(Uint8Array.from([0x96]), 2) + d.finish()).toBe('世');
  });

  it('reads a valid corpus larger than one piece many times over without one big string (issue 13 item 7, scaled down)', async () => {
    // the 600 MB file failed because the whole file became one string; here 6 MiB in 64 KiB pieces
    const unit = 'To be, or not to be, that is the question: ';
    const path = join(dir, 'big.txt');
    writeFileSync(path, unit.repeat(Math.ceil((6 << 20) / unit.length)));
    const ds = await loadCorpus(fs, path, { pieceBytes: 64 << 10, contextLength: 64 });
    expect(ds.tokens.length).toBe(Math.ceil((6 << 20) / unit.length) * unit.length);
    expect(ds.tokenizer.decode((ds.val as Uint8Array).subarray(0, unit.length * 2))).toContain('question');
  });

  it('refuses devices and FIFOs unless asked, and then reads at most the cap', async () => {
    await expect(loadCorpus(fs, '/dev/zero')).rejects.toThrow(/data file \/dev\/zero is a character device, not a regular file: .*pass --data-any-file/);
    const fifo = join(dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    await expect(loadCorpus(fs, fifo)).rejects.toThrow(/is a FIFO \(named pipe\), not a regular file/);
    const zeros = await loadCorpus(fs, '/dev/zero', { allowSpecialFile: true, maxSpecialBytes: 10_000, tokenizer: 'byte' });
    expect(zeros.tokens.length).toBe(10_000);
    await expect(loadCorpus(fs, dir)).rejects.toThrow(/is a directory/);
    await expect(loadCorpus(fs, join(dir, 'missing.txt'))).rejects.toThrow(/data file .*missing\.txt: no such file or directory/);
  });

  it('takes binary data as it is with --tokenizer byte', async () => {
    const bytes = new Uint8Array(5000);
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 131 + 7) & 255; // 0xff, lone continuation bytes, ...
    writeFileSync(join(dir, 'blob.bin'), bytes);
    const ds = await loadCorpus(fs, join(dir, 'blob.bin'), { tokenizer: 'byte', pieceBytes: 999 });
    same(ds.tokens as Uint8Array, bytes);
    await expect(loadCorpus(fs, join(dir, 'blob.bin'))).rejects.toThrow(/not valid UTF-8 .*or train on its bytes with --tokenizer byte/);
  });
});

describe('loadCorpus: token files for corpora larger than memory', () => {
  it('moves the ids to a token file past the in-memory limit; batches equal the in-memory ones', async () => {
    // the 3 GB file hit ERR_FS_FILE_TOO_LARGE; scaled down: a 3 MiB corpus, 1 MiB of ids allowed in memory
    const path = join(dir, 'shakes3.txt');
    const text = SHAKESPEARE.repeat(3);
    writeFileSync(path, text);
    const tokenFile = join(dir, 'shakes3.tokens.bin');
    await expect(loadCorpus(fs, path, { maxInMemoryTokenBytes: 1 << 20 })).rejects.toThrow(/more than 1 MiB of token ids .*--token-cache PATH/);
    const disk = await loadCorpus(fs, path, { maxInMemoryTokenBytes: 1 << 20, tokenFile, pieceBytes: 256 << 10 });
    expect(isOnDisk(disk.tokens)).toBe(true);
    expect(disk.train).toBeInstanceOf(FileTokens);
    const mem = TextDataset.fromText(text);
    expect([disk.train.length, disk.val.length]).toEqual([mem.train.length, mem.val.length]);
    for (const split of ['train', 'val'] as const) {
      const a = disk.sampleBatch(split, 8, 64, new Rng(5));
      const b = mem.sampleBatch(split, 8, 64, new Rng(5));
      same(a.inputs, b.inputs);
      same(a.targets, b.targets);
    }
    // 1 byte an id (65 symbols), then the trailer
    expect(readFileSync(tokenFile).length).toBeGreaterThan(text.length);
    await disk.close();
  });

  it('reuses a matching token file instead of tokenising again, and ignores a stale one', async () => {
    const path = join(dir, 'cache.txt');
    writeFileSync(path, SHAKESPEARE.slice(0, 100_000));
    const tokenFile = join(dir, 'cache.tokens.bin');
    const first = await loadCorpus(fs, path, { tokenFile });
    expect(isOnDisk(first.tokens)).toBe(false);
    expect(existsSync(tokenFile)).toBe(true);
    let tokenized = false;
    const second = await loadCorpus(fs, path, { tokenFile, onProgress: (p) => { if (p.phase === 'tokenize') tokenized = true; } });
    expect(tokenized).toBe(false);
    expect(isOnDisk(second.tokens)).toBe(true);
    same(second.sampleBatch('train', 4, 32, new Rng(1)).inputs, first.sampleBatch('train', 4, 32, new Rng(1)).inputs);
    await second.close();
    writeFileSync(path, SHAKESPEARE.slice(0, 90_000)); // changed corpus: the file no longer matches
    const third = await loadCorpus(fs, path, { tokenFile });
    expect(third.tokens.length).toBe(90_000);
  });

  it('sizes the id type to the vocabulary (u8, u16) and stays near one byte an id for a char corpus', async () => {
    const path = join(dir, 'wide.txt');
    let wide = '';
    for (let cp = 0x4e00; cp < 0x4e00 + 300; cp++) wide += String.fromCodePoint(cp);
    writeFileSync(path, wide.repeat(4));
    const ds = await loadCorpus(fs, path);
    expect(ds.tokenizer.vocabSize).toBe(300);
    expect(ds.tokens).toBeInstanceOf(Uint16Array);
  });
});

describe('loadCorpus: characters the tokenizer cannot encode (issue 11 item 9)', () => {
  const shakespeareChars = CharTokenizer.fromText(SHAKESPEARE);
  const kjvPath = join(dir, 'kjv.txt');
  writeFileSync(kjvPath, KJV);
  const unknown = [...new Set(KJV)].filter((c) => !shakespeareChars.canEncode(c));
  const count = (c: string) => KJV.split(c).length - 1;

  it('lists every character of kjv-excerpt.txt that tinyshakespeare lacks, with counts, and names the flag', async () => {
    expect(unknown).toEqual(expect.arrayContaining(['(', ')']));
    const err = await loadCorpus(fs, kjvPath, { tokenizer: shakespeareChars }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    const msg = (err as Error).message;
    const total = unknown.reduce((s, c) => s + count(c), 0);
    expect(msg).toContain(`${total} characters (${unknown.length} distinct) are not in the tokenizer's vocabulary`);
    expect(msg).toContain(`"(" (U+0028) ×${count('(')}`);
    expect(msg).toContain(`")" (U+0029) ×${count(')')}`);
    expect(msg).toMatch(/--unknown-chars drop.*--unknown-chars replace=X/);
  });

  it('drops them or replaces them when asked', async () => {
    const dropped = await loadCorpus(fs, kjvPath, { tokenizer: shakespeareChars, unknownChars: { action: 'drop' } });
    const expected = [...KJV].filter((c) => shakespeareChars.canEncode(c)).join('');
    expect(dropped.tokenizer.decode(dropped.tokens)).toBe(expected);
    const replaced = await loadCorpus(fs, kjvPath, { tokenizer: shakespeareChars, unknownChars: parseUnknownChars('replace=?') });
    expect(replaced.tokenizer.decode(replaced.tokens)).toBe([...KJV].map((c) => (shakespeareChars.canEncode(c) ? c : '?')).join(''));
    expect(() => parseUnknownChars('replace=ab')).toThrow(/takes one character/);
    expect(() => parseUnknownChars('skip')).toThrow(/expected error, drop or replace=X/);
    await expect(loadCorpus(fs, kjvPath, { tokenizer: shakespeareChars, unknownChars: { action: 'replace', with: '(' } })).rejects.toThrow(/replace=\(: "\(" \(U\+0028\) is not encodable by the tokenizer either/);
  });

  it('uses the run options: --unknown-chars, --tokenizer-json, the default token file only when needed', async () => {
    const mfs = new MemoryFileSystem({
      '/c.txt': 'the hello (the) hello the world '.repeat(200),
      '/tok/tokenizer.json': JSON.stringify(sentencePieceTokenizer('llama2')),
      '/tok/tokenizer_config.json': JSON.stringify(LLAMA2_CONFIG),
    });
    const base = { data: '/c.txt', tokenizer: 'char' as const, tokenizerJson: '/tok', unknownChars: 'error', dataAnyFile: false, tokenCache: null, dataMaxMemoryMb: 1024, valFraction: 0.1, context: 16 };
    const ds = await loadTrainingCorpus(mfs, base);
    expect(ds.tokenizer).toBeInstanceOf(HfTokenizer);
    expect(ds.tokens[0]).toBe(1); // <s>
    same((ds.tokens as Uint16Array).subarray(1), (ds.tokenizer as HfTokenizer).encode('the hello (the) hello the world '.repeat(200)));
    expect((await mfs.list('/')).filter((n) => n.includes('tokens'))).toEqual([]); // small: nothing written
    const fixed = CharTokenizer.fromText('the hlowrd');
    await expect(loadTrainingCorpus(mfs, base, fixed)).rejects.toThrow(/"\(" \(U\+0028\) ×200, "\)" \(U\+0029\) ×200/);
    const dropped = await loadTrainingCorpus(mfs, { ...base, unknownChars: 'drop' }, fixed);
    expect(dropped.tokens.length).toBe(('the hello (the) hello the world '.length - 2) * 200);
  });
});

describe('corpusProgressPrinter', () => {
  it('prints a line at most every second for a large corpus and nothing for a small one', () => {
    const lines: string[] = [];
    let t = 0;
    const p = corpusProgressPrinter({ write: (s: string) => lines.push(s) }, 'big.txt', { now: () => t });
    for (let i = 1; i <= 10; i++) {
      t += 300;
      p({ phase: 'tokenize', bytesDone: i * (10 << 20), bytesTotal: 100 << 20, tokens: i * 1000 });
    }
    expect(lines.length).toBe(3 + 1); // t = 300 (first), 1500, 2700, and the last piece
    expect(lines.at(-1)).toBe('tokenizing big.txt: 100% (100/100 MiB, 33.3 MiB/s, 10000 tokens)\n');
    const quiet: string[] = [];
    corpusProgressPrinter({ write: (s: string) => quiet.push(s) }, 'small.txt')({ phase: 'tokenize', bytesDone: 1000, bytesTotal: 1000, tokens: 1000 });
    expect(quiet).toEqual([]);
  });
});

describe('sparse files', () => {
  it('reads a large sparse file (NUL bytes) with the byte tokenizer in bounded pieces', async () => {
    const path = join(dir, 'sparse.bin');
    const fd = openSync(path, 'w');
    ftruncateSync(fd, 24 << 20);
    closeSync(fd);
    const ds = await loadCorpus(fs, path, { tokenizer: 'byte', maxInMemoryTokenBytes: 8 << 20, tokenFile: join(dir, 'sparse.tokens.bin') });
    expect(ds.tokens.length).toBe(24 << 20);
    expect(isOnDisk(ds.tokens)).toBe(true);
    expect(Math.max(...ds.sampleBatch('train', 2, 16, new Rng(0)).inputs)).toBe(0);
    await ds.close();
  });
});
