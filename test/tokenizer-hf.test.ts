import { describe, expect, it } from 'vitest';
import { HfTokenizer, TextDataset, loadHfTokenizer, tokenizerFromJSON } from '../src/data/index.js';
import { MemoryFileSystem } from '../src/runtime/fs-memory.js';
import { LLAMA2_CONFIG, byteLevelTokenizer, sentencePieceTokenizer } from './data-fixtures.js';

const ids = (a: ArrayLike<number>) => Array.from(a);
/** Byte-level ids of unmerged text: 1 + each UTF-8 byte (see data-fixtures). */
const byteIds = (s: string) => Array.from(new TextEncoder().encode(s), (b) => 1 + b);

/** A long text mixing words the merges know, others, punctuation, newlines, runs of spaces and non-ASCII. */
function mixedText(n: number): string {
  const words = ['hello', 'the', 'world', 'Hello,', 'thee', 'hell.', 'rather', 'ñandú', 'émigré', 'Tother', '42', 'x\n\nHi', 'a  b', 'to'];
  const out: string[] = [];
  let x = 12345;
  let len = 0;
  while (len < n) {
    x = (x * 1103515245 + 12345) >>> 0;
    const w = words[(x >>> 8) % words.length]!;
    out.push(w);
    len += w.length + 1;
  }
  return out.join(' ');
}

describe('HfTokenizer: byte-level BPE (GPT-2 / SmolLM2 form)', () => {
  const tok = HfTokenizer.fromJSON(byteLevelTokenizer('gpt2'));

  it('applies the merges in rank order within each pre-token (hand-derived ids)', () => {
    // "hello" -> h e l l o -> (h e)=rank 0, (l l)=rank 1 -> he ll o -> (he ll)=rank 2 -> hell o
    // " the" -> Ġ t h e -> he, then Ġt, then Ġthe; " world" -> Ġ w o r l d -> (o r) before (Ġ w)
    expect(ids(tok.encode('hello the world'))).toEqual([259, 1 + 111, 261, 263, 262, 1 + 108, 1 + 100]);
    expect(tok.decode([259, 112, 261])).toBe('hello the');
  });

  it('encodes any byte: non-ASCII text becomes its UTF-8 bytes, and decodes back', () => {
    expect(ids(tok.encode('é'))).toEqual(byteIds('é'));
    expect(ids(tok.encode(' ñ'))).toEqual(byteIds(' ñ'));
    const s = 'Grüße, 世界! \u{1F642}\ttabs\r\n';
    expect(tok.decode(tok.encode(s))).toBe(s);
    expect(tok.canEncode('\u{1F642}')).toBe(true);
    expect(tok.byteCoverage).toBe('byte-level');
  });

  it('has no BOS (SmolLM2 adds none) and counts added tokens in vocabSize', () => {
    expect(tok.bosId).toBeNull();
    expect(tok.addBos).toBe(false);
    expect(tok.vocabSize).toBe(264);
    expect(tok.tokenToId('<|endoftext|>')).toBe(0);
    expect(ids(tok.encode('hi<|endoftext|>'))).toEqual([...byteIds('hi'), 0]);
    expect(tok.decode([0, 259], { skipSpecialTokens: true })).toBe('hell');
  });

  it('encodes a long text in chunks with exactly the ids of one call, and reports progress', () => {
    const text = mixedText(300_000);
    const calls: number[] = [];
    const chunked = tok.encode(text, { onProgress: (d) => calls.push(d) });
    expect(calls.length).toBeGreaterThan(3);
    expect(calls.at(-1)).toBe(text.length);
    const whole = (tok as unknown as { encodeRaw(t: string, o: number): Int32Array }).encodeRaw(text, 0);
    expect(ids(chunked)).toEqual(ids(whole));
    expect(tok.decode(chunked)).toBe(text);
  });

  it('gives the same ids through the stream encoder, whatever the piece boundaries', () => {
    const text = mixedText(20_000);
    const enc = tok.streamEncoder();
    const parts: number[] = [];
    for (let at = 0; at < text.length; at += 777) parts.push(...enc.push(text.slice(at, at + 777)));
    parts.push(...enc.end());
    expect(parts).toEqual(ids(tok.encode(text)));
  });
});

describe('HfTokenizer: byte-level BPE (Llama 3 form: Split + ByteLevel, BOS by TemplateProcessing)', () => {
  const tok = HfTokenizer.fromJSON(byteLevelTokenizer('llama3'), { bos_token: '<|begin_of_text|>', eos_token: '<|endoftext|>' });

  it('reads BOS from tokenizer_config.json and addBos from the post-processor; encode adds no special tokens', () => {
    expect(tok.bosId).toBe(264);
    expect(tok.addBos).toBe(true);
    expect(tok.eosId).toBe(0);
    expect(tok.addEos).toBe(false);
    expect(ids(tok.encode('hello the world'))).toEqual([259, 112, 261, 263, 262, 109, 101]);
    expect(ids(tok.encodeSequence('hello'))).toEqual([264, 259, 112]);
  });

  it('follows add_bos_token: false over the template', () => {
    const noBos = HfTokenizer.fromJSON(byteLevelTokenizer('llama3'), { bos_token: '<|begin_of_text|>', add_bos_token: false });
    expect(noBos.addBos).toBe(false);
    expect(ids(noBos.encodeSequence('hello'))).toEqual([259, 112]);
  });

  it('chunks a long text with the ids of one call', () => {
    const text = mixedText(150_000);
    const whole = (tok as unknown as { encodeRaw(t: string, o: number): Int32Array }).encodeRaw(text, 0);
    expect(ids(tok.encode(text))).toEqual(ids(whole));
  });
});

describe.each(['llama2', 'tinyllama'] as const)('HfTokenizer: SentencePiece-style BPE with byte fallback (%s form)', (style) => {
  const tok = HfTokenizer.fromJSON(sentencePieceTokenizer(style), LLAMA2_CONFIG);

  it('marks words with ▁, merges by rank, and falls back to <0xXX> bytes (hand-derived ids)', () => {
    // ▁hello: (h e) first -> ▁ he l l o; (l o) -> ▁ he l lo; no merge (▁ he) exists: 4 tokens
    // ▁the: (▁ t) -> ▁t h e -> (h e) -> ▁t he -> (▁t he) -> ▁the
    // é is not in the vocabulary: its bytes C3 A9 -> <0xC3> (3 + 0xC3), <0xA9>; so is H (3 + 0x48)
    expect(ids(tok.encode('hello the é Hi'))).toEqual([259, 290, 271, 292, 291, 259, 3 + 0xc3, 3 + 0xa9, 259, 3 + 0x48, 268]);
    expect(tok.decode(tok.encode('hello the é Hi'))).toBe('hello the é Hi');
    expect(tok.byteCoverage).toBe('byte-fallback');
  });

  it('has <s> as BOS, added in front of a sequence (add_bos_token), </s> as EOS not added', () => {
    expect([tok.bosId, tok.eosId, tok.addBos, tok.addEos]).toEqual([1, 2, true, false]);
    expect(ids(tok.encodeSequence('the'))).toEqual([1, 291]);
    expect(tok.decode([1, 291, 2], { skipSpecialTokens: true })).toBe('the');
  });

  it('chunks a long text with the ids of one call (the space at a cut is dropped: ▁ is prepended per call)', () => {
    const text = mixedText(200_000);
    const whole = (tok as unknown as { encodeRaw(t: string, o: number): Int32Array }).encodeRaw(text, 0);
    expect(ids(tok.encode(text))).toEqual(ids(whole));
    const enc = tok.streamEncoder();
    const streamed: number[] = [];
    for (let at = 0; at < 30_000; at += 1001) streamed.push(...enc.push(text.slice(at, Math.min(30_000, at + 1001))));
    streamed.push(...enc.end());
    expect(streamed).toEqual(ids(tok.encode(text.slice(0, 30_000))));
  });
});

describe('HfTokenizer: files, checkpoints and bad input', () => {
  it('round-trips through the trainer.json record (tokenizerFromJSON)', () => {
    const tok = HfTokenizer.fromJSON(sentencePieceTokenizer('llama2'), LLAMA2_CONFIG);
    const back = tokenizerFromJSON(JSON.parse(JSON.stringify(tok.toJSON())));
    expect(back.kind).toBe('hf');
    expect(back.vocabSize).toBe(tok.vocabSize);
    expect(ids(back.encode('hello the world'))).toEqual(ids(tok.encode('hello the world')));
    expect((back as HfTokenizer).bosId).toBe(1);
  });

  it('loads tokenizer.json and tokenizer_config.json from a model directory', async () => {
    const fs = new MemoryFileSystem({
      '/m/tokenizer.json': JSON.stringify(sentencePieceTokenizer('tinyllama')),
      '/m/tokenizer_config.json': JSON.stringify(LLAMA2_CONFIG),
      '/n/tokenizer.json': JSON.stringify(byteLevelTokenizer('gpt2')),
    });
    const a = await loadHfTokenizer(fs, '/m');
    expect(a.bosId).toBe(1);
    const b = await loadHfTokenizer(fs, '/n/tokenizer.json');
    expect(b.bosId).toBeNull();
    await expect(loadHfTokenizer(fs, '/x')).rejects.toThrow(/tokenizer \/x: no such file or directory/);
  });

  it('refuses what it cannot read, naming the file and the key', () => {
    expect(() => HfTokenizer.fromJSON({ model: { type: 'Unigram', vocab: [] } })).toThrow(/tokenizer\.json: model\.type "Unigram" is not supported; this build reads BPE/);
    expect(() => HfTokenizer.fromJSON({})).toThrow(/no "model" object/);
    expect(() => HfTokenizer.fromJSON(byteLevelTokenizer('gpt2'), { bos_token: '<s>' })).toThrow(/tokenizer_config\.json: bos_token "<s>" is not a token of tokenizer\.json/);
    const tok = HfTokenizer.fromJSON(byteLevelTokenizer('gpt2'));
    expect(() => tok.decode([9999])).toThrow(/id 9999 at index 0 is not a token/);
  });

  it('builds a dataset whose corpus starts with BOS when the tokenizer adds one', () => {
    const tok = HfTokenizer.fromJSON(sentencePieceTokenizer('llama2'), LLAMA2_CONFIG);
    const ds = TextDataset.fromBytes(new TextEncoder().encode('the hello the hello the'), { tokenizer: tok, valFraction: 0.2 });
    expect(ds.tokens[0]).toBe(1);
    expect(ids((ds.tokens as Uint16Array).subarray(1))).toEqual(ids(tok.encode('the hello the hello the')));
  });
});
