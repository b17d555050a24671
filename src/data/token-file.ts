/**
 * Token files: the ids of a tokenised corpus on disk, for corpora whose tokens do not fit the
 * in-memory limit (and as a cache a later run reuses instead of tokenising again).
 *
 * Layout (little-endian): the ids as u8/u16/u32 (the narrowest the vocabulary fits), then a JSON
 * trailer `{ "format": "bitnet-train-tokens", "version": 1, "bytesPerToken", "count",
 * "vocabSize", "fingerprint" }`, its byte length as u32, and the 8 magic bytes `BTTOKEN1`. The
 * trailer comes last so the file is written in one streaming pass (appends) and renamed into
 * place when complete: a crash never leaves a file that looks whole.
 */
import { type FileReader, type FileSystem, randomSuffix } from '../runtime/fs-types.js';
import type { TokenArray, TokenWindowSource } from './dataset.js';

const MAGIC = 'BTTOKEN1';

/** What a token file's trailer records. */
export interface TokenFileInfo {
  bytesPerToken: 1 | 2 | 4;
  count: number;
  vocabSize: number;
  /** Identifies the corpus and tokenizer it was made from (a reader reuses the file only if it matches). */
  fingerprint: string;
}

/** Bytes per id for a vocabulary of `vocabSize` ids. */
export function bytesPerToken(vocabSize: number): 1 | 2 | 4 {
  return vocabSize <= 256 ? 1 : vocabSize <= 65536 ? 2 : 4;
}

/** A typed array of `n` ids of `bpt` bytes each. */
export function tokenArray(bpt: 1 | 2 | 4, n: number): TokenArray {
  return bpt === 1 ? new Uint8Array(n) : bpt === 2 ? new Uint16Array(n) : new Uint32Array(n);
}

/** Writes a token file by appending ids; `finish` adds the trailer and renames it into place. */
export class TokenFileWriter {
  private readonly tmp: string;
  private count = 0;
  private started = false;

  constructor(private readonly fs: FileSystem, readonly path: string, private readonly bpt: 1 | 2 | 4) {
    this.tmp = `${path}.tmp-${randomSuffix()}`;
  }

  /** Append ids (each must fit the file's width). */
  async append(ids: ArrayLike<number>): Promise<void> {
    if (ids.length === 0) return;
    const arr = tokenArray(this.bpt, ids.length);
    arr.set(ids as ArrayLike<number>);
    const bytes = new Uint8Array(arr.buffer, arr.byteOffset, arr.byteLength);
    if (!this.started) await this.fs.writeFile(this.tmp, bytes);
    else await this.fs.appendFile(this.tmp, bytes);
    this.started = true;
    this.count += ids.length;
  }

  /** Write the trailer and rename the file to `path`. */
  async finish(vocabSize: number, fingerprint: string): Promise<TokenFileInfo> {
    const info: TokenFileInfo = { bytesPerToken: this.bpt, count: this.count, vocabSize, fingerprint };
    const json = new TextEncoder().encode(JSON.stringify({ format: 'bitnet-train-tokens', version: 1, ...info }));
    const tail = new Uint8Array(json.length + 12);
    tail.set(json, 0);
    new DataView(tail.buffer).setUint32(json.length, json.length, true);
    tail.set(new TextEncoder().encode(MAGIC), json.length + 4);
    if (!this.started) await this.fs.writeFile(this.tmp, tail);
    else await this.fs.appendFile(this.tmp, tail);
    await this.fs.rename(this.tmp, this.path);
    return info;
  }

  /** Remove the temporary file (after a failure). */
  async abort(): Promise<void> {
    await this.fs.remove(this.tmp, { force: true }).catch(() => undefined);
  }
}

/** Read a token file's trailer; null if `reader` does not hold a complete token file. */
export async function readTokenFileInfo(reader: FileReader): Promise<TokenFileInfo | null> {
  if (reader.size < 12) return null;
  const end = new Uint8Array(12);
  if ((await reader.read(end, reader.size - 12)) !== 12) return null;
  if (new TextDecoder().decode(end.subarray(4)) !== MAGIC) return null;
  const len = new DataView(end.buffer).getUint32(0, true);
  if (len + 12 > reader.size) return null;
  const json = new Uint8Array(len);
  await reader.read(json, reader.size - 12 - len);
  try {
    const j = JSON.parse(new TextDecoder().decode(json)) as Partial<TokenFileInfo> & { format?: unknown; version?: unknown };
    if (j.format !== 'bitnet-train-tokens' || j.version !== 1) return null;
    const bpt = j.bytesPerToken;
    if ((bpt !== 1 && bpt !== 2 && bpt !== 4) || !Number.isInteger(j.count) || j.count! * bpt + len + 12 !== reader.size) return null;
    return { bytesPerToken: bpt, count: j.count!, vocabSize: j.vocabSize!, fingerprint: String(j.fingerprint) };
  } catch {
    return null;
  }
}

/** The ids of an open token file, read a window at a time with the host's synchronous read. */
export class FileTokens implements TokenWindowSource {
  readonly length: number;

  constructor(
    private readonly reader: FileReader & { readSync(buffer: Uint8Array, position: number): number },
    private readonly bpt: 1 | 2 | 4,
    private readonly first: number,
    length: number,
    private readonly path: string,
  ) {
    this.length = length;
  }

  subarray(start: number, end: number = this.length): FileTokens {
    const s = Math.max(0, Math.min(start, this.length));
    const e = Math.max(s, Math.min(end, this.length));
    return new FileTokens(this.reader, this.bpt, this.first + s, e - s, this.path);
  }

  async close(): Promise<void> {
    await this.reader.close();
  }

  read(start: number, end: number): TokenArray {
    if (!(start >= 0 && end <= this.length && start <= end)) throw new Error(`token file ${this.path}: window [${start}, ${end}) is outside its ${this.length} ids`);
    const out = tokenArray(this.bpt, end - start);
    const bytes = new Uint8Array(out.buffer);
    const got = this.reader.readSync(bytes, (this.first + start) * this.bpt);
    if (got !== bytes.length) throw new Error(`token file ${this.path}: read ${got} of ${bytes.length} bytes at id ${this.first + start} (file changed or truncated while training?)`);
    return out;
  }
}

/** FNV-1a (32 bit) of a string, as 8 hex digits: a cheap fingerprint, not a checksum against tampering. */
export function fnv1a(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h.toString(16).padStart(8, '0');
}
