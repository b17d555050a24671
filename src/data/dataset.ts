/**
 * A tokenized text corpus split by position into train and val (the first 90% / the last 10%,
 * as nanoGPT's prepare.py does), and random (input, target) windows drawn from the seeded `Rng`
 * as nanoGPT's `get_batch` does: offsets uniform in [0, len - T), targets = inputs shifted by one.
 * The same seed gives the same batches in every runtime (the Rng is integer-only).
 */

import type { Rng } from '../util/rng.js';
import { type Tokenizer, createTokenizer } from './tokenizer.js';

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

/** Byte offset of the first invalid UTF-8 sequence in `bytes`, or -1 if all of it is valid. */
export function findInvalidUtf8(bytes: Uint8Array): number {
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i];
    if (b < 0x80) { i++; continue; }
    let need: number;
    let min: number;
    let cp: number;
    if (b >= 0xc2 && b <= 0xdf) { need = 1; min = 0x80; cp = b & 0x1f; }
    else if (b >= 0xe0 && b <= 0xef) { need = 2; min = 0x800; cp = b & 0x0f; }
    else if (b >= 0xf0 && b <= 0xf4) { need = 3; min = 0x10000; cp = b & 0x07; }
    else return i;
    if (i + need >= bytes.length) return i; // truncated sequence at the end
    for (let k = 1; k <= need; k++) {
      const c = bytes[i + k];
      if ((c & 0xc0) !== 0x80) return i;
      cp = (cp << 6) | (c & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
    i += need + 1;
  }
  return -1;
}

/** A corpus as token ids, split into train and val by position. */
export class TextDataset {
  readonly tokenizer: Tokenizer;
  /** All tokens of the corpus. */
  readonly tokens: Int32Array;
  /** The first part (views into `tokens`). */
  readonly train: Int32Array;
  /** The last `valFraction` of the tokens. */
  readonly val: Int32Array;
  readonly valFraction: number;
  readonly source: string;

  private constructor(tokens: Int32Array, tokenizer: Tokenizer, valFraction: number, source: string) {
    this.tokens = tokens;
    this.tokenizer = tokenizer;
    this.valFraction = valFraction;
    this.source = source;
    const nTrain = Math.floor(tokens.length * (1 - valFraction));
    this.train = tokens.subarray(0, nTrain);
    this.val = tokens.subarray(nTrain);
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
   * build the dataset as `fromText` does.
   */
  static fromBytes(bytes: Uint8Array, options: TextDatasetOptions = {}): TextDataset {
    const source = options.source ?? 'corpus';
    if (bytes.length === 0) throw new Error(`${source}: the corpus is empty (0 bytes); give it some UTF-8 text`);
    let text: string;
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    } catch {
      const at = findInvalidUtf8(bytes);
      throw new Error(
        `${source}: not valid UTF-8 (first invalid byte 0x${bytes[at]?.toString(16).padStart(2, '0')} at offset ${at}); ` +
          'text corpora must be UTF-8 — convert the file (e.g. iconv -t UTF-8)',
      );
    }
    return TextDataset.fromText(text, options);
  }

  /** The tokens of a split. */
  split(name: Split): Int32Array {
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
      inputs.set(data.subarray(offset, offset + T), b * T);
      targets.set(data.subarray(offset + 1, offset + T + 1), b * T);
    }
    return { inputs, targets };
  }
}
