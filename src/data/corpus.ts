/**
 * Streaming a corpus from a file into a `TextDataset`: read in pieces (never the whole file as
 * one buffer or one JS string, so any size the disk holds works), UTF-8 checked piece by piece
 * (an error names the byte offset), tokenised piece by piece with progress, ids kept in the
 * narrowest integer type (u8/u16/u32) and — past an in-memory limit — written to a token file
 * that batches read a window at a time. `--tokenizer byte` reads the bytes as they are (binary
 * data is fine); devices and FIFOs are refused unless asked.
 *
 * ```ts
 * const ds = await loadCorpus(fs, 'data/corpus.txt', { tokenizer: 'char', contextLength: 256, onProgress: console.log });
 * ```
 */
import { type FileReader, type FileStat, type FileSystem, FileSystemError, FS_CODE_TEXT } from '../runtime/fs-types.js';
import { type TokenArray, type TokenSequence, TextDataset } from './dataset.js';
import { HfTokenizer } from './hf-tokenizer.js';
import { FileTokens, TokenFileWriter, bytesPerToken, fnv1a, readTokenFileInfo, tokenArray } from './token-file.js';
import { ByteTokenizer, CharTokenizer, type Tokenizer } from './tokenizer.js';
import { CodePointSet, TextEncoderPipeline } from './encode-pieces.js';
import { UnknownChars, type UnknownCharsPolicy } from './unknown-chars.js';
import { Utf8PieceDecoder } from './utf8.js';

/** Progress of `loadCorpus`: `vocabulary` is the char tokenizer's first pass, `tokenize` the encoding pass. */
export interface CorpusProgress {
  phase: 'vocabulary' | 'tokenize';
  bytesDone: number;
  /** The file's size (0 for a device or FIFO, whose size is unknown). */
  bytesTotal: number;
  tokens: number;
}

/** Options of `loadCorpus`. */
export interface LoadCorpusOptions {
  /** A tokenizer (a checkpoint's, a Hugging Face one), or a kind to build: 'char' (vocabulary from the corpus, default) or 'byte'. */
  tokenizer?: Tokenizer | 'char' | 'byte';
  valFraction?: number;
  /** Check that both splits hold a window of this length + 1. */
  contextLength?: number;
  /** Characters a given tokenizer cannot encode: an error listing them (default), or drop / replace them. */
  unknownChars?: UnknownCharsPolicy;
  /** Read a device or FIFO too (at most `maxSpecialBytes`); otherwise only regular files. */
  allowSpecialFile?: boolean;
  /** Bytes read from a device or FIFO at most (default 1 GiB). */
  maxSpecialBytes?: number;
  /** Bytes read at a time (default 4 MiB). */
  pieceBytes?: number;
  /**
   * A token file: reused when it holds this corpus tokenised by this tokenizer, else written
   * while tokenising. Ids past `maxInMemoryTokenBytes` need one (they are read from it).
   */
  tokenFile?: string;
  /** Also write `tokenFile` for a corpus whose ids stay in memory (a cache for later runs; default true). */
  cacheInMemoryCorpus?: boolean;
  /** Largest token array held in memory, in bytes (default 1 GiB); past it ids go to `tokenFile`. */
  maxInMemoryTokenBytes?: number;
  /** Called after each piece. */
  onProgress?: (p: CorpusProgress) => void;
}

const MiB = 1 << 20;

/** "data file PATH: no such file or directory" for the common file errors. */
function fileError(path: string, err: unknown): Error {
  if (err instanceof FileSystemError) return new Error(`data file ${path}: ${FS_CODE_TEXT[err.code] ?? err.code}`);
  return err as Error;
}

const TYPE_TEXT: Record<string, string> = {
  fifo: 'a FIFO (named pipe)', 'character-device': 'a character device', 'block-device': 'a block device', socket: 'a socket', other: 'not a regular file',
};

/** Refuse what is not a regular file (unless `allow`), before reading a byte. */
function checkRegular(path: string, st: FileStat, allow: boolean, max: number): void {
  if (st.isDirectory) throw new Error(`data file ${path}: is a directory; give a text file`);
  const type = st.type ?? (st.isFile ? 'file' : 'other');
  if (type === 'file' || allow) return;
  throw new Error(
    `data file ${path} is ${TYPE_TEXT[type] ?? 'not a regular file'}, not a regular file: it may never end (/dev/zero) or be readable only once; ` +
      `pass --data-any-file to read it anyway (at most ${Math.round(max / MiB)} MiB)`,
  );
}

/** The pieces of a file in order, with their byte offsets; an in-memory buffer if the host cannot read ranges. */
async function* filePieces(fs: FileSystem, path: string, st: FileStat, pieceBytes: number, maxSpecial: number): AsyncGenerator<[Uint8Array, number]> {
  if (!fs.openRead) {
    let all: Uint8Array;
    try {
      all = await fs.readFile(path);
    } catch (err) {
      throw fileError(path, err);
    }
    for (let at = 0; at < all.length; at += pieceBytes) yield [all.subarray(at, Math.min(all.length, at + pieceBytes)), at];
    return;
  }
  let reader: FileReader;
  try {
    reader = await fs.openRead(path);
  } catch (err) {
    throw fileError(path, err);
  }
  try {
    const regular = (st.type ?? (st.isFile ? 'file' : 'other')) === 'file';
    let at = 0;
    for (;;) {
      const want = regular ? Math.min(pieceBytes, reader.size - at) : Math.min(pieceBytes, maxSpecial - at);
      if (want <= 0) break;
      const buf = new Uint8Array(want);
      let n = 0;
      while (n < want) {
        const got = await reader.read(n === 0 ? buf : buf.subarray(n), regular ? at + n : null);
        if (got === 0) break;
        n += got;
      }
      if (n === 0) break;
      yield [n === want ? buf : buf.subarray(0, n), at];
      at += n;
      if (n < want && !regular) break;
    }
  } finally {
    await reader.close().catch(() => undefined);
  }
}

/**
 * Where ids go: a growing typed array of the vocabulary's width, which moves into a token file
 * once it would exceed the in-memory limit.
 */
class TokenSink {
  private arr: TokenArray;
  private n = 0;
  private writer: TokenFileWriter | null = null;
  readonly bpt: 1 | 2 | 4;

  constructor(
    private readonly fs: FileSystem,
    vocabSize: number,
    capacityHint: number,
    private readonly maxBytes: number,
    private readonly tokenFile: string | undefined,
    private readonly source: string,
  ) {
    this.bpt = bytesPerToken(vocabSize);
    this.arr = tokenArray(this.bpt, Math.max(16, Math.min(capacityHint, Math.floor(maxBytes / this.bpt))));
  }

  get length(): number {
    return this.n;
  }

  async push(ids: ArrayLike<number>): Promise<void> {
    if (ids.length === 0) return;
    if (this.writer) {
      await this.writer.append(ids);
      this.n += ids.length;
      return;
    }
    const need = this.n + ids.length;
    if (need * this.bpt > this.maxBytes) {
      if (this.tokenFile === undefined) {
        throw new Error(
          `${this.source}: more than ${Math.round(this.maxBytes / MiB)} MiB of token ids (${this.bpt} bytes each); ` +
            'give a token file to hold them on disk (--token-cache PATH) or raise --data-max-memory-mb',
        );
      }
      this.writer = new TokenFileWriter(this.fs, this.tokenFile, this.bpt);
      await this.writer.append(this.arr.subarray(0, this.n));
      this.arr = tokenArray(this.bpt, 0);
      await this.writer.append(ids);
      this.n = need;
      return;
    }
    if (need > this.arr.length) {
      const grown = tokenArray(this.bpt, Math.min(Math.floor(this.maxBytes / this.bpt), Math.max(need, Math.ceil(this.arr.length * 1.5))));
      grown.set(this.arr.subarray(0, this.n));
      this.arr = grown;
    }
    this.arr.set(ids, this.n);
    this.n = need;
  }

  /** The ids in memory (trimmed), or null when they went to the token file. */
  inMemory(): TokenArray | null {
    if (this.writer) return null;
    return this.arr.length - this.n > this.arr.length / 8 ? this.arr.slice(0, this.n) : this.arr.subarray(0, this.n);
  }

  /** Finish the token file, if there is one being written. */
  async finishFile(vocabSize: number, fingerprint: string): Promise<void> {
    await this.writer?.finish(vocabSize, fingerprint);
  }

  async abort(): Promise<void> {
    await this.writer?.abort();
  }

  /** Also write the in-memory ids to the token file (a cache for later runs). */
  async writeCache(vocabSize: number, fingerprint: string): Promise<void> {
    if (this.writer || this.tokenFile === undefined) return;
    const w = new TokenFileWriter(this.fs, this.tokenFile, this.bpt);
    try {
      for (let at = 0; at < this.n; at += 16 * MiB) await w.append(this.arr.subarray(at, Math.min(this.n, at + 16 * MiB)));
      await w.finish(vocabSize, fingerprint);
    } catch (err) {
      await w.abort();
      throw err;
    }
  }
}

/** Open a token file for window reads; null if it is missing or not a finished token file with this fingerprint. */
async function openTokenFile(fs: FileSystem, path: string, fingerprint: string, vocabSize: number): Promise<FileTokens | null> {
  if (!fs.openRead || !(await fs.exists(path))) return null;
  const reader = await fs.openRead(path);
  const info = await readTokenFileInfo(reader);
  if (!info || info.fingerprint !== fingerprint || info.vocabSize !== vocabSize || !reader.readSync) {
    await reader.close();
    return null;
  }
  return new FileTokens(reader as FileReader & { readSync: NonNullable<FileReader['readSync']> }, info.bytesPerToken, 0, info.count, path);
}

/** What `loadCorpus` needs of a tokenizer kind or instance, resolved before the encoding pass. */
async function resolveTokenizer(t: Tokenizer | 'char' | 'byte', pieces: () => AsyncGenerator<[Uint8Array, number]>, source: string, size: number, onProgress?: (p: CorpusProgress) => void): Promise<Tokenizer> {
  if (typeof t !== 'string') return t;
  if (t === 'byte') return new ByteTokenizer();
  if (t !== 'char') throw new Error(`${source}: unknown tokenizer kind ${JSON.stringify(t)} (use "char" or "byte")`);
  const set = new CodePointSet();
  const utf8 = new Utf8PieceDecoder(source);
  let any = false;
  for await (const [piece, at] of pieces()) {
    const text = utf8.decode(piece, at);
    if (text.length > 0) any = true;
    set.add(text);
    onProgress?.({ phase: 'vocabulary', bytesDone: at + piece.length, bytesTotal: size, tokens: 0 });
  }
  set.add(utf8.finish());
  if (!any) throw new Error(`${source}: the corpus is empty (0 characters); give it some UTF-8 text`);
  return new CharTokenizer(set.vocabulary());
}

/**
 * Read, tokenise and split the corpus at `path` (see the module comment). Throws one clear
 * error naming the file for: a missing file, a directory, a device/FIFO (unless
 * `allowSpecialFile`), invalid UTF-8 (with the byte offset), characters the given tokenizer
 * cannot encode (listed with counts), a corpus too short for the context.
 */
export async function loadCorpus(fs: FileSystem, path: string, options: LoadCorpusOptions = {}): Promise<TextDataset> {
  const source = path;
  const pieceBytes = options.pieceBytes ?? 4 * MiB;
  const maxSpecial = options.maxSpecialBytes ?? 1024 * MiB;
  let st: FileStat;
  try {
    st = await fs.stat(path);
  } catch (err) {
    throw fileError(path, err);
  }
  checkRegular(path, st, options.allowSpecialFile ?? false, maxSpecial);
  const size = st.isFile ? st.size : 0;
  if (st.isFile && size === 0) throw new Error(`${source}: the corpus is empty (0 bytes); give it some UTF-8 text`);
  const pieces = () => filePieces(fs, path, st, pieceBytes, maxSpecial);
  const given = options.tokenizer ?? 'char';
  const tokenizer = await resolveTokenizer(given, pieces, source, size, options.onProgress);
  const dsOptions = { valFraction: options.valFraction, source, contextLength: options.contextLength };

  const policy = options.unknownChars ?? { action: 'error' };
  const fingerprint = `${size}:${st.mtimeMs ?? 0}:${fnv1a(JSON.stringify(tokenizer.toJSON()))}:${JSON.stringify(policy)}`;
  if (options.tokenFile !== undefined && st.isFile) {
    const cached = await openTokenFile(fs, options.tokenFile, fingerprint, tokenizer.vocabSize);
    if (cached) return TextDataset.fromTokens(cached, tokenizer, dsOptions);
  }

  const maxMem = options.maxInMemoryTokenBytes ?? 1024 * MiB;
  // ids <= bytes for char and byte tokenizers (each character is >= 1 byte); BPE ids are fewer
  const hint = tokenizer instanceof HfTokenizer ? Math.ceil(size / 3) + 1024 : size + 16;
  const sink = new TokenSink(fs, tokenizer.vocabSize, size > 0 ? hint : 1 << 20, maxMem, st.isFile ? options.tokenFile : undefined, source);
  try {
    if (tokenizer.kind === 'byte') {
      for await (const [piece, at] of pieces()) {
        await sink.push(piece);
        options.onProgress?.({ phase: 'tokenize', bytesDone: at + piece.length, bytesTotal: size, tokens: sink.length });
      }
    } else {
      // a tokenizer built from this corpus knows every character; a given one may not
      const unknown = typeof given === 'string' ? null : new UnknownChars(tokenizer, policy);
      const pipeline = new TextEncoderPipeline(tokenizer, unknown);
      const utf8 = new Utf8PieceDecoder(source);
      for await (const [piece, at] of pieces()) {
        await sink.push(pipeline.push(utf8.decode(piece, at)));
        options.onProgress?.({ phase: 'tokenize', bytesDone: at + piece.length, bytesTotal: size, tokens: sink.length });
      }
      await sink.push(pipeline.push(utf8.finish()));
      const err = unknown?.error(source);
      if (err) throw err;
      await sink.push(pipeline.end());
    }
    if (sink.length === 0) throw new Error(`${source}: the corpus is empty (0 tokens); give it some UTF-8 text`);
    const tokens = sink.inMemory();
    if (tokens) {
      const ds = TextDataset.fromTokens(tokens, tokenizer, dsOptions);
      if (options.tokenFile !== undefined && st.isFile && (options.cacheInMemoryCorpus ?? true)) await sink.writeCache(tokenizer.vocabSize, fingerprint);
      return ds;
    }
    await sink.finishFile(tokenizer.vocabSize, fingerprint);
  } catch (err) {
    await sink.abort();
    throw err;
  }
  const onDisk = await openTokenFile(fs, options.tokenFile!, fingerprint, tokenizer.vocabSize);
  if (!onDisk) throw new Error(`${source}: token file ${options.tokenFile} cannot be read back a window at a time on this host (no synchronous reads); use a smaller corpus or raise --data-max-memory-mb`);
  return TextDataset.fromTokens(onDisk, tokenizer, dsOptions);
}

/** The tokens of `seq` are on disk (a token file) rather than in memory. */
export function isOnDisk(seq: TokenSequence): boolean {
  return 'read' in seq;
}
