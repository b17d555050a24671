/**
 * Tokenising text that arrives in pieces (a corpus streamed from disk or a large buffer): the
 * char vocabulary collected piece by piece, unknown characters counted or cleaned, a Hugging
 * Face tokenizer's text cut only where its ids allow, BOS once in front.
 */
import { HfTokenizer } from './hf-tokenizer.js';
import { bytesPerToken, tokenArray } from './token-file.js';
import type { Tokenizer } from './tokenizer.js';
import { UnknownChars, type UnknownCharsPolicy } from './unknown-chars.js';
import { Utf8PieceDecoder } from './utf8.js';
import type { TokenArray } from './dataset.js';

/** Collects a char vocabulary (the distinct code points) from text pieces. */
export class CodePointSet {
  private readonly seen = new Uint8Array(0x110000);
  private count = 0;
  add(text: string): void {
    const seen = this.seen;
    for (let i = 0; i < text.length; i++) {
      let cp = text.charCodeAt(i);
      if (cp >= 0xd800 && cp <= 0xdbff && i + 1 < text.length) {
        const full = text.codePointAt(i)!;
        if (full > 0xffff) {
          cp = full;
          i++;
        }
      }
      if (seen[cp] === 0) {
        seen[cp] = 1;
        this.count++;
      }
    }
  }
  vocabulary(): string[] {
    const out: string[] = [];
    for (let cp = 0; cp < this.seen.length && out.length < this.count; cp++) if (this.seen[cp]) out.push(String.fromCodePoint(cp));
    return out;
  }
}

/** Text pieces -> ids for a text tokenizer: unknown characters handled, HF text cut only where its ids allow. */
export class TextEncoderPipeline {
  private readonly stream: { push(text: string): Int32Array; end(): Int32Array } | null;
  private first = true;

  constructor(private readonly tokenizer: Tokenizer, private readonly unknown: UnknownChars | null) {
    this.stream = tokenizer instanceof HfTokenizer ? tokenizer.streamEncoder() : null;
  }

  /** Ids of `text` (a BOS first when the tokenizer adds one); empty while only counting unknown characters for the error. */
  push(text: string): Int32Array {
    const clean = this.unknown ? this.unknown.filter(text) : text;
    if (this.unknown && this.unknown.policy.action === 'error' && this.unknown.counts.size > 0) return new Int32Array(0);
    const ids = this.stream ? this.stream.push(clean) : this.tokenizer.encode(clean);
    return this.withBos(ids);
  }

  end(): Int32Array {
    return this.withBos(this.stream ? this.stream.end() : new Int32Array(0));
  }

  private withBos(ids: Int32Array): Int32Array {
    if (!this.first || !this.tokenizer.addBos || this.tokenizer.bosId == null) return ids;
    if (ids.length === 0 && this.stream) return ids; // wait for the first ids
    this.first = false;
    const out = new Int32Array(ids.length + 1);
    out[0] = this.tokenizer.bosId;
    out.set(ids, 1);
    return out;
  }
}

/** `loadCorpus` over bytes already in memory (no file): the same pieces, checks and errors. */
export function tokenizeBytes(bytes: Uint8Array, tokenizer: Tokenizer, source: string, unknownChars?: UnknownCharsPolicy, pieceBytes = 4 << 20): TokenArray {
  if (tokenizer.kind === 'byte') return bytes.slice();
  const unknown = unknownChars ? new UnknownChars(tokenizer, unknownChars) : null;
  const pipeline = new TextEncoderPipeline(tokenizer, unknown);
  const utf8 = new Utf8PieceDecoder(source);
  const parts: Int32Array[] = [];
  for (let at = 0; at < bytes.length; at += pieceBytes) parts.push(pipeline.push(utf8.decode(bytes.subarray(at, Math.min(bytes.length, at + pieceBytes)), at)));
  parts.push(pipeline.push(utf8.finish()));
  const err = unknown?.error(source);
  if (err) throw err;
  parts.push(pipeline.end());
  const n = parts.reduce((s, p) => s + p.length, 0);
  const out = tokenArray(bytesPerToken(tokenizer.vocabSize), n);
  let k = 0;
  for (const p of parts) {
    out.set(p, k);
    k += p.length;
  }
  return out;
}

