/**
 * A tokenized text corpus split by position into train and val (the first 90% / the last 10%,
 * as nanoGPT's prepare.py does), and random (input, target) windows drawn from the seeded `Rng`
 * as nanoGPT's `get_batch` does: offsets uniform in [0, len - T), targets = inputs shifted by one.
 * The same seed gives the same batches in every runtime (the Rng is integer-only).
 */

import type { Rng } from '../util/rng.js';
import { CodePointSet, tokenizeBytes } from './encode-pieces.js';
import { ByteTokenizer, CharTokenizer, type Tokenizer, createTokenizer } from './tokenizer.js';
import type { UnknownCharsPolicy } from './unknown-chars.js';
import { Utf8PieceDecoder } from './utf8.js';

export { findInvalidUtf8 } from './utf8.js';

/** Token ids held in memory, in the narrowest type the vocabulary fits (u8 ≤ 256 ids, u16 ≤ 65536, else u32). */
export type TokenArray = Int32Array | Uint32Array | Uint16Array | Uint8Array;

/**
 * Token ids of a corpus too large for memory, in a token file read a window at a time
 * (token-file.ts). `subarray` is a view (no read); `read` copies ids out.
 */
export interface TokenWindowSource {
  readonly length: number;
  subarray(start: number, end?: number): TokenWindowSource;
  /** Ids [start, end) as an array (read from disk). */
  read(start: number, end: number): TokenArray;
  /** Close the file (every view of it). */
  close(): Promise<void>;
}

/** The tokens of a dataset or split: an array in memory, or a window source over a token file. */
export type TokenSequence = TokenArray | TokenWindowSource;

/** Ids [start, end) of `seq`: a view of an array, or read from a token file. */
export function tokenWindow(seq: TokenSequence, start: number, end: number): TokenArray {
  return 'read' in seq ? seq.read(start, end) : seq.subarray(start, end);
}

/** One batch: row-major (B, T) token ids; `targets[b*T + t]` is the token after `inputs[b*T + t]`. */
export interface Batch {
  inputs: Int32Array;
  targets: Int32Array;
}

export type Split = 'train' | 'val';

/** Options of `TextDataset.fromText` / `fromBytes`. */
export interface TextDatasetOptions {
  /** A tokenizer, or a kind to build one from the corpus. Default 'char'. */
  tokenizer?: Tokenizer | 'char' | 'byte';
  /** Fraction of tokens (from the end) held out for validation, in [0, 1). Default 0.1. */
  valFraction?: number;
  /** Name of the corpus in error messages (a path). Default 'corpus'. */
  source?: string;
  /** If given, check now that both splits hold at least one window of this length + 1. */
  contextLength?: number;
}

/** A corpus as token ids, split into train and val by position. */
export class TextDataset {
  readonly tokenizer: Tokenizer;
  /** All tokens of the corpus. */
  readonly tokens: TokenSequence;
  /** The first part (views into `tokens`). */
  readonly train: TokenSequence;
  /** The last `valFraction` of the tokens. */
  readonly val: TokenSequence;
  readonly valFraction: number;
  readonly source: string;

  private constructor(tokens: TokenSequence, tokenizer: Tokenizer, valFraction: number, source: string) {
    this.tokens = tokens;
    this.tokenizer = tokenizer;
    this.valFraction = valFraction;
    this.source = source;
    const nTrain = Math.floor(tokens.length * (1 - valFraction));
    this.train = tokens.subarray(0, nTrain);
    this.val = tokens.subarray(nTrain);
  }

  /**
   * A dataset over ids already tokenised by `tokenizer` (e.g. streamed from disk by
   * `loadCorpus`), split as `fromText` splits.
   */
  static fromTokens(tokens: TokenSequence, tokenizer: Tokenizer, options: Omit<TextDatasetOptions, 'tokenizer'> = {}): TextDataset {
    const source = options.source ?? 'corpus';
    const valFraction = options.valFraction ?? 0.1;
    if (!(valFraction >= 0 && valFraction < 1)) throw new Error(`${source}: valFraction must be in [0, 1), got ${valFraction}`);
    if (tokens.length === 0) throw new Error(`${source}: the corpus is empty (0 tokens); give it some text`);
    const ds = new TextDataset(tokens, tokenizer, valFraction, source);
    if (options.contextLength !== undefined) {
      ds.requireContext('train', options.contextLength);
      if (valFraction > 0) ds.requireContext('val', options.contextLength);
    }
    return ds;
  }

  /** Tokenize `text` (building a char vocabulary from it unless a tokenizer is given) and split it. */
  static fromText(text: string, options: TextDatasetOptions = {}): TextDataset {
    const source = options.source ?? 'corpus';
    const valFraction = options.valFraction ?? 0.1;
    if (!(valFraction >= 0 && valFraction < 1)) {
      throw new Error(`${source}: valFraction must be in [0, 1), got ${valFraction}`);
    }
    if (text.length === 0) throw new Error(`${source}: the corpus is empty (0 characters); give it some UTF-8 text`);
    const t = options.tokenizer ?? 'char';
    const tokenizer = typeof t === 'string' ? createTokenizer(t, text) : t;
    let tokens: Int32Array;
    try {
      tokens = tokenizer.encode(text);
    } catch (err) {
      throw new Error(`${source}: ${(err as Error).message}`);
    }
    const ds = new TextDataset(tokens, tokenizer, valFraction, source);
    if (options.contextLength !== undefined) {
      ds.requireContext('train', options.contextLength);
      if (valFraction > 0) ds.requireContext('val', options.contextLength);
    }
    return ds;
  }

  /**
   * Decode UTF-8 bytes (strictly: invalid UTF-8 is an error that gives the byte offset) and
   * build the dataset as `fromText` does, a few MiB at a time (no single string of the whole
   * corpus). A byte tokenizer takes the bytes as they are, valid UTF-8 or not.
   */
  static fromBytes(bytes: Uint8Array, options: TextDatasetOptions & { unknownChars?: UnknownCharsPolicy } = {}): TextDataset {
    const source = options.source ?? 'corpus';
    if (bytes.length === 0) throw new Error(`${source}: the corpus is empty (0 bytes); give it some UTF-8 text`);
    const t = options.tokenizer ?? 'char';
    let tokenizer: Tokenizer;
    if (t === 'byte') tokenizer = new ByteTokenizer();
    else if (t === 'char') {
      const set = new CodePointSet();
      const utf8 = new Utf8PieceDecoder(source);
      const PIECE = 4 << 20;
      for (let at = 0; at < bytes.length; at += PIECE) set.add(utf8.decode(bytes.subarray(at, Math.min(bytes.length, at + PIECE)), at));
      set.add(utf8.finish());
      tokenizer = new CharTokenizer(set.vocabulary());
    } else tokenizer = t;
    let tokens;
    try {
      tokens = tokenizeBytes(bytes, tokenizer, source, typeof t === 'string' ? undefined : (options.unknownChars ?? { action: 'error' }));
    } catch (err) {
      const msg = (err as Error).message;
      throw msg.startsWith(`${source}:`) ? err : new Error(`${source}: ${msg}`);
    }
    return TextDataset.fromTokens(tokens, tokenizer, options);
  }

  /** Release the token file of a corpus read from disk (nothing to do for one in memory). */
  async close(): Promise<void> {
    if ('read' in this.tokens) await this.tokens.close();
  }

  /** The tokens of a split. */
  split(name: Split): TokenSequence {
    if (name === 'train') return this.train;
    if (name === 'val') return this.val;
    throw new Error(`TextDataset: unknown split ${JSON.stringify(name)} (use "train" or "val")`);
  }

  /**
   * Throw unless `name` holds at least T + 1 tokens (one window plus its shifted target),
   * saying how long it is and what the context needs.
   */
  requireContext(name: Split, T: number): void {
    if (!(Number.isInteger(T) && T > 0)) throw new Error(`TextDataset: context length must be a positive integer, got ${T}`);
    const data = this.split(name);
    if (data.length >= T + 1) return;
    const hint = name === 'val' && this.valFraction === 0
      ? 'valFraction is 0, so there is no val split; set valFraction > 0'
      : `use a longer corpus or a context of at most ${Math.max(0, data.length - 1)}`;
    throw new Error(
      `${this.source}: the ${name} split has ${data.length} tokens (corpus: ${this.tokens.length} tokens, ` +
        `${Math.round(this.valFraction * 100)}% held out for val), but context ${T} needs at least ${T + 1}; ${hint}`,
    );
  }

  /**
   * Draw B windows of T tokens from `split`: for b = 0..B-1, offset = rng.int(len - T), then
   * inputs[b] = data[offset .. offset+T), targets[b] = data[offset+1 .. offset+T+1).
   * Pass `out` to reuse buffers (each of length B*T).
   */
  sampleBatch(split: Split, B: number, T: number, rng: Rng, out?: Batch): Batch {
    if (!(Number.isInteger(B) && B > 0)) throw new Error(`TextDataset.sampleBatch: batch size must be a positive integer, got ${B}`);
    this.requireContext(split, T);
    const data = this.split(split);
    const inputs = out?.inputs ?? new Int32Array(B * T);
    const targets = out?.targets ?? new Int32Array(B * T);
    if (inputs.length !== B * T || targets.length !== B * T) {
      throw new Error(`TextDataset.sampleBatch: out buffers hold ${inputs.length} and ${targets.length} ids, need B*T = ${B * T}`);
    }
    const range = data.length - T;
    for (let b = 0; b < B; b++) {
      const offset = rng.int(range);
      const window = tokenWindow(data, offset, offset + T + 1);
      inputs.set(window.subarray(0, T), b * T);
      targets.set(window.subarray(1, T + 1), b * T);
    }
    return { inputs, targets };
  }
}
