/**
 * Strict UTF-8 for corpora read in pieces: a multi-byte sequence may straddle two pieces, and
 * an invalid byte is reported with its absolute offset in the file (not "offset -1").
 */

/** Length of the incomplete UTF-8 sequence at the end of `b` (0..3 bytes), which the next piece completes. */
function incompleteTail(b: Uint8Array): number {
  for (let k = 1; k <= Math.min(3, b.length); k++) {
    const c = b[b.length - k]!;
    if ((c & 0xc0) === 0x80) continue; // a continuation byte: look further back
    const need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
    return need > k ? k : 0;
  }
  return 0;
}

/** Byte offset of the first invalid UTF-8 sequence in `bytes`, or -1 if all of it is valid (a truncated end counts as invalid). */
export function findInvalidUtf8(bytes: Uint8Array): number {
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i]!;
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
      const c = bytes[i + k]!;
      if ((c & 0xc0) !== 0x80) return i;
      cp = (cp << 6) | (c & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
    i += need + 1;
  }
  return -1;
}

/**
 * Strict UTF-8 decoding of a byte stream piece by piece (a sequence may straddle two pieces);
 * invalid bytes are an error that gives the absolute byte offset and the byte.
 */
export class Utf8PieceDecoder {
  private readonly decoder = new TextDecoder('utf-8', { fatal: true });
  private prevTail = new Uint8Array(0);
  private end = 0;

  constructor(private readonly source: string) {}

  /** The text of `piece` (starting at byte `offset` of the stream), up to its last complete character. */
  decode(piece: Uint8Array, offset: number): string {
    try {
      const text = this.decoder.decode(piece, { stream: true });
      // the unfinished sequence may have begun in an earlier piece: look at the last bytes of both
      const last = piece.subarray(Math.max(0, piece.length - 3));
      const end = new Uint8Array(this.prevTail.length + last.length);
      end.set(this.prevTail, 0);
      end.set(last, this.prevTail.length);
      const t = incompleteTail(end);
      this.prevTail = end.slice(end.length - t);
      this.end = offset + piece.length;
      return text;
    } catch {
      const joined = new Uint8Array(this.prevTail.length + piece.length);
      joined.set(this.prevTail, 0);
      joined.set(piece, this.prevTail.length);
      const at = findInvalidUtf8(joined);
      throw this.invalid(joined, Math.max(0, at), offset - this.prevTail.length);
    }
  }

  /** Flush: a sequence cut off by the end of the stream is an error. */
  finish(): string {
    try {
      return this.decoder.decode();
    } catch {
      throw this.invalid(this.prevTail, 0, this.end - this.prevTail.length, true);
    }
  }

  private invalid(bytes: Uint8Array, at: number, base: number, cutOff = false): Error {
    const b = bytes[at];
    return new Error(
      `${this.source}: not valid UTF-8 (first invalid byte 0x${(b ?? 0).toString(16).padStart(2, '0')} at offset ${base + at}` +
        `${cutOff ? ', a sequence cut off by the end of the file' : ''}); ` +
        'text corpora must be UTF-8 — convert the file (e.g. iconv -t UTF-8), or train on its bytes with --tokenizer byte',
    );
  }
}

