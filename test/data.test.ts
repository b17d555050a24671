import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  ByteTokenizer,
  CharTokenizer,
  TextDataset,
  createTokenizer,
  findInvalidUtf8,
  tokenizerFromJSON,
} from '../src/data/index.js';
import { Rng } from '../src/util/rng.js';

const CORPUS_PATH = new URL('../examples/data/tinyshakespeare.txt', import.meta.url);
const corpusBytes = new Uint8Array(readFileSync(CORPUS_PATH));
const corpus = new TextDecoder().decode(corpusBytes);

describe('CharTokenizer', () => {
  const tok = CharTokenizer.fromText(corpus);

  it('builds the 65-symbol vocabulary of tinyshakespeare, sorted by code point as nanoGPT does', () => {
    expect(corpusBytes.length).toBe(1_115_394);
    expect(tok.vocabSize).toBe(65);
    expect(tok.vocab.join('')).toBe("\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz");
  });

  it("gives nanoGPT's ids for 'hii there'", () => {
    expect([...tok.encode('hii there')]).toEqual([46, 47, 47, 1, 58, 46, 43, 56, 43]);
  });

  it('round-trips the whole corpus, one id per character', () => {
    const ids = tok.encode(corpus);
    expect(ids.length).toBe(corpus.length);
    expect(Math.max(...ids.subarray(0, 10000))).toBeLessThan(65);
    expect(tok.decode(ids)).toBe(corpus);
  });

  it('survives toJSON -> JSON text -> tokenizerFromJSON with the same ids', () => {
    const back = tokenizerFromJSON(JSON.parse(JSON.stringify(tok.toJSON())));
    expect(back.kind).toBe('char');
    expect(back.vocabSize).toBe(65);
    expect([...back.encode('To be, or not to be?')]).toEqual([...tok.encode('To be, or not to be?')]);
  });

  it('rejects an unknown character, naming it, its index and its line and column', () => {
    expect(() => tok.encode('ab\ncd#e')).toThrow(
      /character "#" \(U\+0023\) at index 5 \(line 2, column 3\) is not in the vocabulary of 65 characters/,
    );
  });

  it('maps unknown characters to a fallback when asked, per call or at construction', () => {
    expect(tok.decode(tok.encode('a#b', { fallback: '?' }))).toBe('a?b');
    const lenient = new CharTokenizer(tok.vocab, { fallback: ' ' });
    expect(lenient.decode(lenient.encode('x\u00e9y'))).toBe('x y');
    expect(tokenizerFromJSON(lenient.toJSON()).decode(tokenizerFromJSON(lenient.toJSON()).encode('%'))).toBe(' ');
    expect(() => new CharTokenizer(tok.vocab, { fallback: '#' })).toThrow(/fallback "#" must be one character of the vocabulary/);
  });

  it('treats a character outside the BMP as one token', () => {
    const t = CharTokenizer.fromText('a\u{1F642}b\u00e9');
    expect(t.vocab).toEqual(['a', 'b', '\u00e9', '\u{1F642}']);
    const ids = t.encode('\u{1F642}ab\u{1F642}');
    expect([...ids]).toEqual([3, 0, 1, 3]);
    expect(t.decode(ids)).toBe('\u{1F642}ab\u{1F642}');
  });

  it('rejects ids outside the vocabulary in decode and bad vocabularies in the constructor', () => {
    expect(() => tok.decode([1, 65])).toThrow(/id 65 at index 1 is outside the vocabulary 0\.\.64/);
    expect(() => new CharTokenizer(['a', 'a'])).toThrow(/lists "a" \(U\+0061\) twice/);
    expect(() => new CharTokenizer(['ab'])).toThrow(/not exactly one character/);
    expect(() => CharTokenizer.fromText('')).toThrow(/empty/);
  });
});

describe('ByteTokenizer', () => {
  const tok = new ByteTokenizer();

  it('round-trips non-ASCII text through its UTF-8 bytes (vocabulary 256)', () => {
    const text = 'h\u00e9llo, \u4e16\u754c \u{1F642}\n';
    const ids = tok.encode(text);
    expect(tok.vocabSize).toBe(256);
    expect(ids.length).toBe(new TextEncoder().encode(text).length);
    expect([...ids.subarray(0, 3)]).toEqual([0x68, 0xc3, 0xa9]);
    expect(tok.decode(ids)).toBe(text);
  });

  it('decodes invalid byte sequences to U+FFFD instead of failing, and rejects non-byte ids', () => {
    expect(tok.decode([0x61, 0xff, 0x62])).toBe('a\ufffdb');
    expect(() => tok.decode([97, 256])).toThrow(/id 256 at index 1 is not a byte/);
  });

  it('serialises to {kind: "byte"} and back', () => {
    expect(tok.toJSON()).toEqual({ kind: 'byte', version: 1 });
    expect(tokenizerFromJSON(tok.toJSON())).toBeInstanceOf(ByteTokenizer);
  });
});

describe('tokenizerFromJSON / createTokenizer', () => {
  it('rejects unknown kinds and versions with the supported ones named', () => {
    expect(() => tokenizerFromJSON({ kind: 'bpe', version: 1 })).toThrow(/unknown tokenizer kind "bpe" \(this build knows "char", "byte" and "hf"\)/);
    expect(() => tokenizerFromJSON({ kind: 'char', version: 2, vocab: ['a'] })).toThrow(/version 2/);
    expect(() => tokenizerFromJSON(null)).toThrow(/expected an object/);
    expect(() => createTokenizer('bpe' as 'char', 'x')).toThrow(/unknown tokenizer kind/);
  });
});

describe('findInvalidUtf8', () => {
  it('finds the first invalid byte: stray continuation, overlong, surrogate, too large, truncated', () => {
    const at = (...b: number[]) => findInvalidUtf8(new Uint8Array(b));
    expect(at(0x61, 0xe2, 0x82, 0xac, 0xf0, 0x9f, 0x99, 0x82)).toBe(-1);
    expect(at(0x61, 0x80)).toBe(1);
    expect(at(0xc0, 0x80)).toBe(0);
    expect(at(0x61, 0xe0, 0x80, 0x80)).toBe(1);
    expect(at(0xed, 0xa0, 0x80)).toBe(0);
    expect(at(0xf4, 0x90, 0x80, 0x80)).toBe(0);
    expect(at(0x61, 0x62, 0xe2, 0x82)).toBe(2);
  });
});

describe('TextDataset', () => {
  const ds = TextDataset.fromText(corpus);

  it("splits by position, 90/10, as nanoGPT's prepare.py (train = first int(n*0.9) tokens)", () => {
    expect(ds.tokens.length).toBe(1_115_394);
    expect(ds.train.length).toBe(1_003_854);
    expect(ds.val.length).toBe(111_540);
    expect(ds.tokenizer.decode(ds.val.subarray(0, 20))).toBe(corpus.slice(1_003_854, 1_003_874));
    const quarter = TextDataset.fromText('abcdefghij', { valFraction: 0.25 });
    expect([quarter.train.length, quarter.val.length]).toEqual([7, 3]);
  });

  it('draws offsets with rng.int(len - T) in row order, and targets are the inputs shifted by one', () => {
    const B = 4;
    const T = 8;
    const { inputs, targets } = ds.sampleBatch('train', B, T, new Rng(1337));
    const replay = new Rng(1337);
    for (let b = 0; b < B; b++) {
      const off = replay.int(ds.train.length - T);
      expect([...inputs.subarray(b * T, (b + 1) * T)]).toEqual([...ds.train.subarray(off, off + T)]);
      expect([...targets.subarray(b * T, (b + 1) * T)]).toEqual([...ds.train.subarray(off + 1, off + T + 1)]);
      for (let t = 0; t + 1 < T; t++) expect(targets[b * T + t]).toBe(inputs[b * T + t + 1]);
    }
  });

  it('gives the same batches for the same seed and different ones for another seed', () => {
    const a = new Rng(7);
    const b = new Rng(7);
    const c = new Rng(8);
    for (let i = 0; i < 3; i++) {
      const x = ds.sampleBatch('train', 12, 64, a);
      const y = ds.sampleBatch('train', 12, 64, b);
      const z = ds.sampleBatch('train', 12, 64, c);
      expect(y.inputs).toEqual(x.inputs);
      expect(y.targets).toEqual(x.targets);
      expect(z.inputs).not.toEqual(x.inputs);
    }
  });

  it('samples val windows only from the val split and fills caller buffers in place', () => {
    const out = { inputs: new Int32Array(2 * 16), targets: new Int32Array(2 * 16) };
    const got = ds.sampleBatch('val', 2, 16, new Rng(3), out);
    expect(got.inputs).toBe(out.inputs);
    const off = new Rng(3).int(ds.val.length - 16);
    expect([...out.inputs.subarray(0, 16)]).toEqual([...ds.val.subarray(off, off + 16)]);
    expect(() => ds.sampleBatch('val', 2, 16, new Rng(3), { inputs: new Int32Array(5), targets: new Int32Array(32) })).toThrow(/need B\*T = 32/);
  });

  it('uses every window start 0..len-T-1 and nothing past it (the last target is the last token)', () => {
    const tiny = TextDataset.fromText('abcdef', { valFraction: 0 });
    const seen = new Set<number>();
    const rng = new Rng(0);
    for (let i = 0; i < 200; i++) seen.add(tiny.sampleBatch('train', 1, 3, rng).inputs[0]);
    expect([...seen].sort()).toEqual([0, 1, 2]); // starts a, b, c; window "def" would need a 7th token
  });

  it('builds a byte-level dataset when asked', () => {
    const bytes = TextDataset.fromText('h\u00e9llo world, h\u00e9llo', { tokenizer: 'byte' });
    expect(bytes.tokenizer.vocabSize).toBe(256);
    expect(bytes.tokens.length).toBe(20);
  });

  it('rejects an empty corpus', () => {
    expect(() => TextDataset.fromText('', { source: 'data/empty.txt' })).toThrow(/data\/empty\.txt: the corpus is empty \(0 characters\)/);
    expect(() => TextDataset.fromBytes(new Uint8Array(0), { source: 'x.txt' })).toThrow(/x\.txt: the corpus is empty \(0 bytes\)/);
  });

  it('rejects a split shorter than one context window + 1, saying how long it is and what T needs', () => {
    const short = TextDataset.fromText('a'.repeat(50), { source: 'short.txt' });
    expect(() => short.sampleBatch('train', 1, 64, new Rng(1))).toThrow(
      /short\.txt: the train split has 45 tokens \(corpus: 50 tokens, 10% held out for val\), but context 64 needs at least 65/,
    );
    expect(() => short.sampleBatch('val', 1, 5, new Rng(1))).toThrow(/val split has 5 tokens .* context 5 needs at least 6; .* at most 4/);
    expect(() => TextDataset.fromText('a'.repeat(50), { contextLength: 64 })).toThrow(/needs at least 65/);
    const noVal = TextDataset.fromText('abcdefgh', { valFraction: 0 });
    expect(() => noVal.sampleBatch('val', 1, 2, new Rng(1))).toThrow(/valFraction is 0/);
    expect(() => TextDataset.fromText('abc', { valFraction: 1 })).toThrow(/valFraction must be in \[0, 1\)/);
  });

  it('rejects invalid UTF-8 bytes, naming the offset of the first bad byte', () => {
    const bad = new Uint8Array([0x61, 0x62, 0xff, 0x63]);
    expect(() => TextDataset.fromBytes(bad, { source: 'bin.dat' })).toThrow(/bin\.dat: not valid UTF-8 \(first invalid byte 0xff at offset 2\)/);
    expect(TextDataset.fromBytes(new TextEncoder().encode('abcdefghijk')).tokens.length).toBe(11);
  });

  it('prefixes tokenizer errors with the corpus name', () => {
    const tok = CharTokenizer.fromText('abc');
    expect(() => TextDataset.fromText('abcd', { tokenizer: tok, source: 'val.txt' })).toThrow(/^val\.txt: CharTokenizer\.encode: character "d"/);
  });
});
