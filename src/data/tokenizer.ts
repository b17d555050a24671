/**
 * Tokenizers: text <-> token ids (Int32Array). `CharTokenizer` is nanoGPT's shakespeare_char
 * scheme (the vocabulary is the sorted set of code points in the corpus: 65 for tinyshakespeare);
 * `ByteTokenizer` maps UTF-8 bytes to ids 0..255 and accepts any text. Both serialise to JSON for
 * checkpoints (`toJSON` / `tokenizerFromJSON`). Hugging Face `tokenizer.json` BPE tokenizers
 * are `HfTokenizer` (hf-tokenizer.ts), through `@huggingface/tokenizers`.
 */
import { HfTokenizer } from './hf-tokenizer.js';

/** The JSON form of a tokenizer, stored in a checkpoint's trainer.json. */
export type TokenizerJSON =
  | { kind: 'char'; version: 1; vocab: string[]; fallback?: string }
  | { kind: 'byte'; version: 1 }
  | { kind: 'hf'; version: 1; tokenizer: Record<string, unknown>; config: Record<string, unknown> };

/** What every tokenizer offers. */
export interface Tokenizer {
  readonly kind: 'char' | 'byte' | 'hf';
  /** Number of distinct ids; ids are 0..vocabSize-1. */
  readonly vocabSize: number;
  /** The beginning-of-sequence id, for tokenizers that have one (Hugging Face ones). */
  readonly bosId?: number | null;
  /** Whether a sequence starts with `bosId` (a corpus once at its start, a prompt before its text). */
  readonly addBos?: boolean;
  /** Whether the character `ch` encodes (char: in the vocabulary; byte: always). */
  canEncode?(ch: string): boolean;
  /** Text to ids. */
  encode(text: string): Int32Array;
  /** Ids to text. */
  decode(ids: ArrayLike<number>): string;
  /** A JSON-safe description that `tokenizerFromJSON` turns back into an equal tokenizer. */
  toJSON(): TokenizerJSON;
}

/** Options of a `CharTokenizer`. */
export interface CharTokenizerOptions {
  /**
   * A character of the vocabulary that unknown characters map to in `encode`. Without it,
   * an unknown character is an error that names it and its position.
   */
  fallback?: string;
}

/** "'x' (U+0078)" — a character shown with its code point, readable even when invisible. */
function describeChar(ch: string): string {
  const cp = ch.codePointAt(0)!;
  const hex = cp.toString(16).toUpperCase().padStart(4, '0');
  return `${JSON.stringify(ch)} (U+${hex})`;
}

/** Line and column (1-based) of the UTF-16 offset `at` in `text`, for error messages. */
function lineAndColumn(text: string, at: number): string {
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < at; i++) {
    if (text.charCodeAt(i) === 10) {
      line++;
      lineStart = i + 1;
    }
  }
  return `line ${line}, column ${at - lineStart + 1}`;
}

/**
 * Character-level tokenizer over Unicode code points (as Python's `str` iterates), with ids
 * assigned in code point order: `CharTokenizer.fromText(corpus)`.
 */
export class CharTokenizer implements Tokenizer {
  readonly kind = 'char' as const;
  readonly vocabSize: number;
  /** The vocabulary: id -> character (one code point each). */
  readonly vocab: readonly string[];
  readonly fallback: string | undefined;
  private readonly fallbackId: number;
  /** id of each BMP code unit (-1: not in vocab); astral code points use `astralIds`. */
  private readonly bmpIds = new Int32Array(65536).fill(-1);
  private readonly astralIds = new Map<number, number>();
  private readonly codePoints: Int32Array;

  /** Build from an explicit vocabulary (unique single code points, in id order). */
  constructor(vocab: readonly string[], options: CharTokenizerOptions = {}) {
    if (vocab.length === 0) throw new Error('CharTokenizer: the vocabulary is empty (build it from a non-empty corpus)');
    this.vocab = [...vocab];
    this.vocabSize = vocab.length;
    this.codePoints = new Int32Array(vocab.length);
    vocab.forEach((ch, id) => {
      const cp = ch.codePointAt(0);
      if (cp === undefined || String.fromCodePoint(cp) !== ch) {
        throw new Error(`CharTokenizer: vocabulary entry ${id} is ${JSON.stringify(ch)}, not exactly one character`);
      }
      if (this.idOf(cp) >= 0) throw new Error(`CharTokenizer: vocabulary lists ${describeChar(ch)} twice`);
      this.codePoints[id] = cp;
      if (cp < 65536) this.bmpIds[cp] = id;
      else this.astralIds.set(cp, id);
    });
    this.fallback = options.fallback;
    this.fallbackId = -1;
    if (options.fallback !== undefined) {
      const cp = options.fallback.codePointAt(0);
      const id = cp === undefined ? -1 : this.idOf(cp);
      if (id < 0 || String.fromCodePoint(cp!) !== options.fallback) {
        throw new Error(`CharTokenizer: fallback ${JSON.stringify(options.fallback)} must be one character of the vocabulary`);
      }
      this.fallbackId = id;
    }
  }

  /** The vocabulary of `text`: its distinct code points sorted by code point (nanoGPT's `sorted(set(text))`). */
  static fromText(text: string, options: CharTokenizerOptions = {}): CharTokenizer {
    if (text.length === 0) throw new Error('CharTokenizer.fromText: the text is empty, so there is no vocabulary');
    const seen = new Set<number>();
    for (let i = 0; i < text.length; i++) {
      const cp = text.codePointAt(i)!;
      seen.add(cp);
      if (cp > 0xffff) i++;
    }
    const sorted = [...seen].sort((a, b) => a - b);
    return new CharTokenizer(sorted.map((cp) => String.fromCodePoint(cp)), options);
  }

  private idOf(cp: number): number {
    return cp < 65536 ? this.bmpIds[cp] : (this.astralIds.get(cp) ?? -1);
  }

  /** Whether the character `ch` is in the vocabulary. */
  canEncode(ch: string): boolean {
    const cp = ch.codePointAt(0);
    return cp !== undefined && this.idOf(cp) >= 0;
  }

  /**
   * Text to ids, one per code point. An unknown character throws (naming it, its index and its
   * line/column) unless a fallback was given here or at construction.
   */
  encode(text: string, options: { fallback?: string } = {}): Int32Array {
    let fallbackId = this.fallbackId;
    if (options.fallback !== undefined) {
      const cp = options.fallback.codePointAt(0);
      fallbackId = cp === undefined ? -1 : this.idOf(cp);
      if (fallbackId < 0) throw new Error(`CharTokenizer.encode: fallback ${JSON.stringify(options.fallback)} is not in the vocabulary`);
    }
    const out = new Int32Array(text.length); // upper bound; trimmed if there are surrogate pairs
    let n = 0;
    for (let i = 0; i < text.length; i++) {
      let cp = text.charCodeAt(i);
      let id = this.bmpIds[cp];
      if (cp >= 0xd800 && cp <= 0xdbff && i + 1 < text.length) {
        const full = text.codePointAt(i)!;
        if (full > 0xffff) {
          cp = full;
          id = this.astralIds.get(cp) ?? -1;
          i++;
        }
      }
      if (id < 0) {
        if (fallbackId < 0) {
          const at = cp > 0xffff ? i - 1 : i;
          throw new Error(
            `CharTokenizer.encode: character ${describeChar(String.fromCodePoint(cp))} at index ${n} ` +
              `(${lineAndColumn(text, at)}) is not in the vocabulary of ${this.vocabSize} characters; ` +
              'build the vocabulary from this text, or pass { fallback: "<a vocabulary character>" }',
          );
        }
        id = fallbackId;
      }
      out[n++] = id;
    }
    return n === out.length ? out : out.slice(0, n);
  }

  /** Ids to text; an id outside 0..vocabSize-1 throws naming it and its index. */
  decode(ids: ArrayLike<number>): string {
    const parts: string[] = [];
    const CHUNK = 8192; // String.fromCodePoint takes arguments; keep each call small
    const buf: number[] = [];
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (!(Number.isInteger(id) && id >= 0 && id < this.vocabSize)) {
        throw new Error(`CharTokenizer.decode: id ${id} at index ${i} is outside the vocabulary 0..${this.vocabSize - 1}`);
      }
      buf.push(this.codePoints[id]);
      if (buf.length === CHUNK) {
        parts.push(String.fromCodePoint(...buf));
        buf.length = 0;
      }
    }
    if (buf.length > 0) parts.push(String.fromCodePoint(...buf));
    return parts.join('');
  }

  toJSON(): TokenizerJSON {
    const json: TokenizerJSON = { kind: 'char', version: 1, vocab: [...this.vocab] };
    if (this.fallback !== undefined) json.fallback = this.fallback;
    return json;
  }
}

/** Byte-level tokenizer: the UTF-8 bytes of the text, vocabulary 256. Never fails to encode. */
export class ByteTokenizer implements Tokenizer {
  readonly kind = 'byte' as const;
  readonly vocabSize = 256;

  canEncode(): boolean {
    return true;
  }

  encode(text: string): Int32Array {
    return Int32Array.from(new TextEncoder().encode(text));
  }

  /** Ids to text; byte sequences that are not valid UTF-8 (a sampled model may emit them) become U+FFFD. */
  decode(ids: ArrayLike<number>): string {
    const bytes = new Uint8Array(ids.length);
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (!(Number.isInteger(id) && id >= 0 && id < 256)) {
        throw new Error(`ByteTokenizer.decode: id ${id} at index ${i} is not a byte (0..255)`);
      }
      bytes[i] = id;
    }
    return new TextDecoder().decode(bytes);
  }

  toJSON(): TokenizerJSON {
    return { kind: 'byte', version: 1 };
  }
}

/** Rebuild a tokenizer from its `toJSON()` form (e.g. from a checkpoint). */
export function tokenizerFromJSON(json: unknown): Tokenizer {
  const j = json as { kind?: unknown; version?: unknown; vocab?: unknown; fallback?: unknown } | null;
  if (j === null || typeof j !== 'object') throw new Error(`tokenizerFromJSON: expected an object, got ${JSON.stringify(json)}`);
  if (j.version !== 1) throw new Error(`tokenizerFromJSON: unsupported ${String(j.kind)} tokenizer version ${String(j.version)} (this build reads version 1)`);
  if (j.kind === 'byte') return new ByteTokenizer();
  if (j.kind === 'hf') return HfTokenizer.fromRecord(j);
  if (j.kind === 'char') {
    if (!Array.isArray(j.vocab) || !j.vocab.every((c) => typeof c === 'string')) {
      throw new Error('tokenizerFromJSON: a char tokenizer needs "vocab", an array of one-character strings');
    }
    if (j.fallback !== undefined && typeof j.fallback !== 'string') throw new Error('tokenizerFromJSON: "fallback" must be a string');
    return new CharTokenizer(j.vocab as string[], { fallback: j.fallback as string | undefined });
  }
  throw new Error(`tokenizerFromJSON: unknown tokenizer kind ${JSON.stringify(j.kind)} (this build knows "char", "byte" and "hf")`);
}

/** A tokenizer by kind: 'char' learns its vocabulary from `corpus`, 'byte' needs none. */
export function createTokenizer(kind: 'char' | 'byte', corpus: string): Tokenizer {
  if (kind === 'char') return CharTokenizer.fromText(corpus);
  if (kind === 'byte') return new ByteTokenizer();
  throw new Error(`createTokenizer: unknown tokenizer kind ${JSON.stringify(kind)} (use "char" or "byte")`);
}
