/**
 * Hugging Face tokenizers (`tokenizer.json` + `tokenizer_config.json`) through the maintained
 * `@huggingface/tokenizers` library: byte-level BPE (GPT-2, SmolLM2, Llama 3) and
 * SentencePiece-style BPE with a `▁` metaspace and byte fallback (Llama 2, TinyLlama).
 *
 * `encode` turns text into ids *without* special tokens, so the ids of a corpus tokenised in
 * chunks equal those of the whole text; `bosId` / `addBos` say whether a sequence starts with
 * the BOS token (datasets put it once in front of the corpus, `sample` in front of the prompt).
 *
 * ```ts
 * const tok = HfTokenizer.fromJSON(JSON.parse(tokenizerJsonText), JSON.parse(tokenizerConfigText));
 * tok.encode('Hello world'); // Int32Array of ids, no BOS
 * tok.decode(tok.encode('Hello world')); // 'Hello world'
 * ```
 */
import type { Tokenizer as HfLibTokenizer } from '@huggingface/tokenizers';
import type { Tokenizer, TokenizerJSON } from './tokenizer.js';

/** The `@huggingface/tokenizers` module, as `import()` returns it. */
export type HfTokenizersLibrary = typeof import('@huggingface/tokenizers');

/**
 * The library, imported when this module loads. The import is dynamic (and may fail) because the
 * package entry must load where bare module names do not resolve — a browser page or worker
 * without a bundler or import map; such a host imports the library's ESM build by URL and hands
 * it over with {@link useTokenizersLibrary}.
 */
let tokenizersLibrary: HfTokenizersLibrary | null = await import('@huggingface/tokenizers').catch(() => null);

/**
 * Use this module instead of importing `@huggingface/tokenizers` by name (a page without a bundler):
 * `lib.useTokenizersLibrary(await import('/node_modules/@huggingface/tokenizers/dist/tokenizers.mjs'))`.
 */
export function useTokenizersLibrary(lib: HfTokenizersLibrary): void {
  tokenizersLibrary = lib;
}

/** The `hf` record of a checkpoint's trainer.json: both files as parsed JSON. */
export interface HfTokenizerRecord {
  kind: 'hf';
  version: 1;
  /** The parsed `tokenizer.json`. */
  tokenizer: Record<string, unknown>;
  /** The parsed `tokenizer_config.json` (`{}` when there was none). */
  config: Record<string, unknown>;
}

/** Progress of a long `encode`: characters done out of the total. */
export type EncodeProgress = (doneChars: number, totalChars: number) => void;

/** How a text may be cut into separately encoded chunks with the same ids as the whole text. */
type ChunkMode = 'keep-space' | 'drop-space' | 'none';

/** Characters per encoded chunk: small enough to show progress and keep the library's arrays short. */
const CHUNK_CHARS = 1 << 16;
/** Words longer than this are encoded without remembering their ids. */
const MEMO_MAX_CHARS = 64;
/** Words remembered at most (the memory is forgotten when full). */
const MEMO_MAX_WORDS = 1 << 20;

/** The parts of the library's Tokenizer that `encodeDirect` calls (public fields of its class). */
interface LibInternals {
  normalizer: ((text: string) => string) | null;
  pre_tokenizer: ((text: string, options: { section_index: number }) => string[]) | null;
  model: ((pieces: string[]) => string[]) & { tokens_to_ids: Map<string, number>; unk_token_id?: number };
}

/** A growing array of ids. */
class IdBuffer {
  private arr: Int32Array;
  private n = 0;
  constructor(capacity: number) {
    this.arr = new Int32Array(Math.max(16, capacity));
  }
  push(ids: Int32Array): void {
    if (this.n + ids.length > this.arr.length) {
      const grown = new Int32Array(Math.max(this.n + ids.length, this.arr.length * 2));
      grown.set(this.arr.subarray(0, this.n));
      this.arr = grown;
    }
    this.arr.set(ids, this.n);
    this.n += ids.length;
  }
  result(): Int32Array {
    return this.arr.slice(0, this.n);
  }
}

interface SpecialTokenItem { SpecialToken?: { id?: unknown } }

/** A token given in tokenizer_config.json as a string or as an AddedToken object `{content}`. */
function tokenContent(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string') return (v as { content: string }).content;
  return null;
}

/** The `single` templates of a post-processor (a TemplateProcessing, or those inside a Sequence). */
function singleTemplates(pp: unknown): SpecialTokenItem[][] {
  if (!pp || typeof pp !== 'object') return [];
  const p = pp as { type?: unknown; single?: unknown; processors?: unknown };
  if (p.type === 'TemplateProcessing' && Array.isArray(p.single)) return [p.single as SpecialTokenItem[]];
  if (p.type === 'Sequence' && Array.isArray(p.processors)) return p.processors.flatMap(singleTemplates);
  return [];
}

/** The special token a template puts first (`at: 0`) or last (`at: -1`), if it puts one there. */
function templateSpecial(pp: unknown, at: 0 | -1): string | null {
  for (const t of singleTemplates(pp)) {
    const item = at === 0 ? t[0] : t[t.length - 1];
    const id = item?.SpecialToken?.id;
    if (typeof id === 'string') return id;
  }
  return null;
}

/** Does the normalizer or pre-tokenizer put a `▁` (or other string) in front of every encoded text? */
function prependsToText(json: Record<string, unknown>): boolean {
  const has = (node: unknown, test: (n: Record<string, unknown>) => boolean): boolean => {
    if (!node || typeof node !== 'object') return false;
    const n = node as Record<string, unknown>;
    if (test(n)) return true;
    for (const key of ['normalizers', 'pretokenizers']) {
      const list = n[key];
      if (Array.isArray(list) && list.some((c) => has(c, test))) return true;
    }
    return false;
  };
  return has(json.normalizer, (n) => n.type === 'Prepend')
    || has(json.pre_tokenizer, (n) => n.type === 'Metaspace' && n.prepend_scheme !== 'never' && n.add_prefix_space !== false);
}

/** Is `c` (a UTF-16 code unit) a letter that may start a chunk? ASCII and Latin-1/Latin Extended letters. */
function isLetter(c: number): boolean {
  return (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || (c >= 0xc0 && c <= 0x24f && c !== 0xd7 && c !== 0xf7);
}

/** Is `c` whitespace (as the pre-tokenizers' `\s` sees it, for the ASCII and Latin-1 range)? */
function isSpace(c: number): boolean {
  return c === 32 || (c >= 9 && c <= 13) || c === 0xa0 || c === 0x85;
}

/** Can `text` be cut at `k` (before a space that follows a non-space and precedes a letter)? */
function isCut(text: string, k: number): boolean {
  return k > 0 && k + 1 < text.length && text.charCodeAt(k) === 32 && !isSpace(text.charCodeAt(k - 1)) && isLetter(text.charCodeAt(k + 1));
}

/** The first cut at or after `from`, or -1. */
function nextCut(text: string, from: number): number {
  for (let k = Math.max(from, 1); k + 1 < text.length; k++) if (isCut(text, k)) return k;
  return -1;
}

/** The last cut of `text`, or -1. */
function lastCut(text: string): number {
  for (let k = text.length - 2; k > 0; k--) if (isCut(text, k)) return k;
  return -1;
}

/**
 * A Hugging Face `tokenizer.json` tokenizer. Build it with {@link HfTokenizer.fromJSON}; it
 * serialises into a checkpoint's trainer.json (`toJSON`) and comes back through
 * `tokenizerFromJSON`.
 */
export class HfTokenizer implements Tokenizer {
  readonly kind = 'hf' as const;
  /** Number of ids: one more than the largest id of the vocabulary and the added tokens. */
  readonly vocabSize: number;
  /** The BOS token and its id (tokenizer_config.json `bos_token`, else the post-processor's first special token); null if none. */
  readonly bosToken: string | null;
  readonly bosId: number | null;
  /** The EOS token and its id (tokenizer_config.json `eos_token`, else the post-processor's last special token); null if none. */
  readonly eosToken: string | null;
  readonly eosId: number | null;
  /** Whether a sequence starts with BOS: `add_bos_token` of tokenizer_config.json, else whether the post-processor adds it. */
  readonly addBos: boolean;
  /** Whether a sequence ends with EOS: `add_eos_token`, else whether the post-processor adds it. */
  readonly addEos: boolean;
  /** `byte-level` (GPT-2 style: every byte is a symbol), `byte-fallback` (SentencePiece `<0xXX>` tokens) or `none` (unknown text becomes `unkId`). */
  readonly byteCoverage: 'byte-level' | 'byte-fallback' | 'none';
  /** The unknown token's id, if the model has one. */
  readonly unkId: number | null;
  /** The parsed files, as given (kept for checkpoints and exporters). */
  readonly tokenizerJson: Readonly<Record<string, unknown>>;
  readonly tokenizerConfig: Readonly<Record<string, unknown>>;

  private readonly lib: HfLibTokenizer;
  /** Ids of words already encoded (see `encodeWords`). */
  private readonly memo = new Map<string, Int32Array>();
  /** Whether a word may go straight to the normalizer, pre-tokenizer and model (see the constructor). */
  private readonly direct: boolean;
  /** Contents of the added tokens (raw and normalized): a word holding one takes the full path. */
  private readonly addedContents: string[] = [];
  private readonly chunkMode: ChunkMode;
  private readonly cleanUpSpaces: boolean;

  private constructor(tokenizerJson: Record<string, unknown>, tokenizerConfig: Record<string, unknown>) {
    this.tokenizerJson = tokenizerJson;
    this.tokenizerConfig = tokenizerConfig;
    const model = tokenizerJson.model as Record<string, unknown> | undefined;
    if (!model || typeof model !== 'object') throw new Error('tokenizer.json: no "model" object; is this a Hugging Face tokenizers file?');
    const type = model.type ?? (model.merges !== undefined ? 'BPE' : undefined);
    if (type !== 'BPE') {
      throw new Error(`tokenizer.json: model.type ${JSON.stringify(model.type)} is not supported; this build reads BPE tokenizers (byte-level as GPT-2/SmolLM2/Llama 3, SentencePiece-style as Llama 2/TinyLlama)`);
    }
    if (!model.vocab || typeof model.vocab !== 'object' || Array.isArray(model.vocab)) throw new Error('tokenizer.json: model.vocab must be an object of token -> id');
    if (!Array.isArray(model.merges)) throw new Error('tokenizer.json: model.merges must be an array (of "a b" strings or [a, b] pairs)');
    // the library reads these keys directly: give the optional ones their null defaults
    const normalized: Record<string, unknown> = { normalizer: null, pre_tokenizer: null, post_processor: null, decoder: null, added_tokens: [], ...tokenizerJson };
    if (!Array.isArray(normalized.added_tokens)) throw new Error('tokenizer.json: "added_tokens" must be an array');
    if (!tokenizersLibrary) {
      throw new Error("tokenizer.json: the @huggingface/tokenizers library could not be imported here (a page without a bundler resolves no bare module names); import its ESM build by URL and pass it to useTokenizersLibrary(), e.g. useTokenizersLibrary(await import('/node_modules/@huggingface/tokenizers/dist/tokenizers.mjs'))");
    }
    try {
      this.lib = new tokenizersLibrary.Tokenizer(normalized, tokenizerConfig);
    } catch (err) {
      throw new Error(`tokenizer.json: @huggingface/tokenizers cannot build it: ${(err as Error).message}`);
    }
    // The BPE model's word cache is an LRU that deletes and re-inserts a Map entry on every hit,
    // which cost half of a cold corpus's time here (91 -> 45 us a distinct word); a plain bounded
    // Map gives the same ids (the cache only memoises a pure function of the word).
    const model0 = this.lib.model as unknown as { cache?: { get?: unknown; put?: unknown } } | null;
    if (model0?.cache && typeof model0.cache.get === 'function' && typeof model0.cache.put === 'function') {
      const words = new Map<string, unknown>();
      model0.cache = {
        get: (k: string) => words.get(k),
        put: (k: string, v: unknown) => {
          if (words.size >= MEMO_MAX_WORDS) words.clear();
          words.set(k, v);
        },
        clear: () => words.clear(),
      } as typeof model0.cache;
    }
    let maxId = -1;
    for (const id of Object.values(model.vocab as Record<string, unknown>)) {
      if (!(Number.isInteger(id) && (id as number) >= 0)) throw new Error(`tokenizer.json: model.vocab holds id ${JSON.stringify(id)}, not a non-negative integer`);
      if ((id as number) > maxId) maxId = id as number;
    }
    for (const t of normalized.added_tokens as { id?: unknown; content?: unknown }[]) {
      if (!(Number.isInteger(t.id) && (t.id as number) >= 0) || typeof t.content !== 'string') throw new Error(`tokenizer.json: added token ${JSON.stringify(t)} needs an integer "id" and a string "content"`);
      if ((t.id as number) > maxId) maxId = t.id as number;
    }
    this.vocabSize = maxId + 1;

    const idOf = (token: string | null, what: string): number | null => {
      if (token === null) return null;
      const id = this.lib.token_to_id(token);
      if (id === undefined) throw new Error(`tokenizer_config.json: ${what} ${JSON.stringify(token)} is not a token of tokenizer.json`);
      return id;
    };
    const pp = tokenizerJson.post_processor;
    this.bosToken = 'bos_token' in tokenizerConfig ? tokenContent(tokenizerConfig.bos_token) : templateSpecial(pp, 0);
    this.eosToken = 'eos_token' in tokenizerConfig ? tokenContent(tokenizerConfig.eos_token) : templateSpecial(pp, -1);
    this.bosId = idOf(this.bosToken, 'bos_token');
    this.eosId = idOf(this.eosToken, 'eos_token');
    const addBos = tokenizerConfig.add_bos_token;
    const addEos = tokenizerConfig.add_eos_token;
    this.addBos = this.bosId !== null && (typeof addBos === 'boolean' ? addBos : templateSpecial(pp, 0) === this.bosToken);
    this.addEos = this.eosId !== null && (typeof addEos === 'boolean' ? addEos : templateSpecial(pp, -1) === this.eosToken && templateSpecial(pp, 0) !== templateSpecial(pp, -1));
    this.cleanUpSpaces = tokenizerConfig.clean_up_tokenization_spaces === true;

    const unk = this.lib.model?.unk_token_id;
    this.unkId = typeof unk === 'number' ? unk : null;
    const hasByteLevel = JSON.stringify(tokenizerJson.pre_tokenizer ?? null).includes('"ByteLevel"');
    const byteFallback = model.byte_fallback === true && this.lib.token_to_id('<0x00>') !== undefined && this.lib.token_to_id('<0xFF>') !== undefined;
    this.byteCoverage = hasByteLevel ? 'byte-level' : byteFallback ? 'byte-fallback' : 'none';
    // a word without added tokens can skip the library's added-token splitter and post-processor
    // (which, without special tokens, changes nothing for these post-processors): the same ids
    const ppTypes = JSON.stringify(tokenizerJson.post_processor ?? null).match(/"type":"[A-Za-z]+"/g) ?? [];
    this.direct = tokenizerConfig.remove_space !== true && tokenizerConfig.do_lowercase_and_remove_accent !== true
      && ppTypes.every((t) => ['"type":"TemplateProcessing"', '"type":"ByteLevel"', '"type":"Sequence"'].includes(t));
    const lib = this.lib as unknown as LibInternals;
    for (const t of normalized.added_tokens as { content: string; normalized?: boolean; special?: boolean }[]) {
      this.addedContents.push(t.content);
      if ((t.normalized ?? !t.special) && lib.normalizer) this.addedContents.push(lib.normalizer(t.content));
    }
    this.chunkMode = this.probeChunkMode(prependsToText(tokenizerJson) ? 'drop-space' : 'keep-space');
  }

  /**
   * Build from the parsed `tokenizer.json` and, optionally, `tokenizer_config.json` (BOS/EOS
   * tokens, `add_bos_token`, `clean_up_tokenization_spaces`). Throws naming the file and key
   * for a file this build cannot read.
   */
  static fromJSON(tokenizerJson: object, tokenizerConfig: object = {}): HfTokenizer {
    if (!tokenizerJson || typeof tokenizerJson !== 'object' || Array.isArray(tokenizerJson)) throw new Error('tokenizer.json: expected a JSON object');
    if (!tokenizerConfig || typeof tokenizerConfig !== 'object' || Array.isArray(tokenizerConfig)) throw new Error('tokenizer_config.json: expected a JSON object');
    return new HfTokenizer(tokenizerJson as Record<string, unknown>, tokenizerConfig as Record<string, unknown>);
  }

  /** Rebuild from the record `toJSON()` wrote into a checkpoint. */
  static fromRecord(record: unknown): HfTokenizer {
    const r = record as Partial<HfTokenizerRecord> | null;
    if (!r || typeof r.tokenizer !== 'object' || r.tokenizer === null) throw new Error('tokenizerFromJSON: an "hf" tokenizer needs "tokenizer", the parsed tokenizer.json');
    return HfTokenizer.fromJSON(r.tokenizer, r.config ?? {});
  }

  /**
   * Text to ids, without special tokens (no BOS/EOS). Long texts are encoded in chunks of about
   * 64 K characters, cut only where the whole text's tokens break too (before a space that
   * follows a non-space and precedes a letter), so the ids equal those of one call.
   * `onProgress` reports the characters done after each chunk.
   */
  encode(text: string, options: { onProgress?: EncodeProgress } = {}): Int32Array {
    return this.encodeSegment(text, false, options.onProgress);
  }

  /**
   * An encoder for a text that arrives in pieces (a corpus read from disk): `push` returns the
   * ids of everything up to the last place a cut keeps the whole text's ids, `end` the rest.
   * The concatenated ids equal `encode(wholeText)`.
   */
  streamEncoder(): { push(text: string): Int32Array; end(): Int32Array } {
    let carry = '';
    let continuation = false;
    return {
      push: (text: string) => {
        const buf = carry + text;
        const cut = this.chunkMode === 'none' ? -1 : lastCut(buf);
        if (cut <= 0) {
          carry = buf;
          return new Int32Array(0);
        }
        const ids = this.encodeSegment(buf.slice(0, cut), continuation);
        carry = buf.slice(cut);
        continuation = true;
        return ids;
      },
      end: () => {
        const ids = this.encodeSegment(carry, continuation);
        carry = '';
        return ids;
      },
    };
  }

  /** Encode `text` in chunks; `continuation`: it starts at a cut of a longer text (drop the space where the mode says so). */
  private encodeSegment(text: string, continuation: boolean, onProgress?: EncodeProgress): Int32Array {
    if (this.chunkMode === 'none') {
      const ids = this.encodeRaw(text, 0);
      onProgress?.(text.length, text.length);
      return ids;
    }
    const out = new IdBuffer(Math.ceil(text.length / 3) + 16);
    for (const [start, end, afterCut] of this.chunks(text)) {
      this.encodeWords(text, start, end, afterCut || (continuation && start === 0), out);
      onProgress?.(end, text.length);
    }
    return out.result();
  }

  /**
   * Encode text[start, end) word by word: it is cut at every place a cut keeps the whole text's
   * ids (the chunk rule), and each word's ids are remembered, so a corpus costs one library call
   * per distinct word (natural text repeats its words: tinyshakespeare has 169 k words, 42 k distinct).
   */
  private encodeWords(text: string, start: number, end: number, firstAfterCut: boolean, out: IdBuffer): void {
    let from = start;
    let afterCut = firstAfterCut;
    for (let k = start + 1; k + 1 < end; k++) {
      if (isCut(text, k)) {
        out.push(this.encodeWord(text.slice(from, k), afterCut, from));
        from = k;
        afterCut = true;
      }
    }
    out.push(this.encodeWord(text.slice(from, end), afterCut, from));
  }

  /** The ids of one word (remembered); `afterCut`: it follows a cut (its leading space is dropped in drop-space mode). */
  private encodeWord(word: string, afterCut: boolean, offset: number): Int32Array {
    const drop = afterCut && this.chunkMode === 'drop-space';
    if (word.length > MEMO_MAX_CHARS) return this.encodeRaw(drop ? word.slice(1) : word, offset);
    const key = afterCut ? word : `\u0001${word}`;
    let ids = this.memo.get(key);
    if (ids === undefined) {
      ids = this.encodeDirect(drop ? word.slice(1) : word, offset);
      if (this.memo.size >= MEMO_MAX_WORDS) this.memo.clear();
      this.memo.set(key, ids);
    }
    return ids;
  }

  /** `text` as the model sees a sequence: BOS first when `addBos`, EOS last when `addEos`. */
  encodeSequence(text: string): Int32Array {
    const body = this.encode(text);
    const pre = this.addBos ? 1 : 0;
    const out = new Int32Array(pre + body.length + (this.addEos ? 1 : 0));
    if (this.addBos) out[0] = this.bosId!;
    out.set(body, pre);
    if (this.addEos) out[out.length - 1] = this.eosId!;
    return out;
  }

  /** Ids to text (special tokens kept unless `skipSpecialTokens`); an id outside 0..vocabSize-1 throws. */
  decode(ids: ArrayLike<number>, options: { skipSpecialTokens?: boolean } = {}): string {
    if (ids.length === 0) return '';
    const list: number[] = new Array(ids.length);
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      if (!(Number.isInteger(id) && id >= 0 && id < this.vocabSize) || this.lib.id_to_token(id) === undefined) {
        throw new Error(`HfTokenizer.decode: id ${id} at index ${i} is not a token of this tokenizer (ids 0..${this.vocabSize - 1})`);
      }
      list[i] = id;
    }
    return this.lib.decode(list, { skip_special_tokens: options.skipSpecialTokens ?? false, clean_up_tokenization_spaces: this.cleanUpSpaces });
  }

  /** The id of a token string (as in tokenizer.json), or undefined. */
  tokenToId(token: string): number | undefined {
    return this.lib.token_to_id(token);
  }

  /** The token string of an id, or undefined. */
  idToToken(id: number): string | undefined {
    return this.lib.id_to_token(id);
  }

  /**
   * Whether `ch` (one character) encodes without the unknown token: always for byte-level and
   * byte-fallback tokenizers, else when the vocabulary covers it.
   */
  canEncode(ch: string): boolean {
    if (this.byteCoverage !== 'none') return true;
    const ids = this.lib.encode(ch, { add_special_tokens: false }).ids as (number | undefined)[];
    return ids.every((id) => id !== undefined && id !== this.unkId);
  }

  /** The checkpoint record: both files as JSON (`tokenizerFromJSON` reads it back). */
  toJSON(): TokenizerJSON {
    return { kind: 'hf', version: 1, tokenizer: this.tokenizerJson as Record<string, unknown>, config: this.tokenizerConfig as Record<string, unknown> };
  }

  /** One library call, no special tokens; an unknown piece without an unk token is an error naming where it is. */
  /** A word through the library's normalizer, pre-tokenizer and model directly, when that gives `encodeRaw`'s ids. */
  private encodeDirect(word: string, offset: number): Int32Array {
    if (!this.direct || word.length === 0 || this.addedContents.some((c) => word.includes(c))) return this.encodeRaw(word, offset);
    const lib = this.lib as unknown as LibInternals;
    const text = lib.normalizer ? lib.normalizer(word) : word;
    if (text.length === 0) return new Int32Array(0);
    if (this.addedContents.some((c) => text.includes(c))) return this.encodeRaw(word, offset);
    const tokens = lib.model(lib.pre_tokenizer ? lib.pre_tokenizer(text, { section_index: 0 }) : [text]);
    const out = new Int32Array(tokens.length);
    const vocab = lib.model.tokens_to_ids;
    for (let i = 0; i < tokens.length; i++) {
      const id = vocab.get(tokens[i]!) ?? lib.model.unk_token_id;
      if (id === undefined) return this.encodeRaw(word, offset); // the full path says where
      out[i] = id;
    }
    return out;
  }

  private encodeRaw(text: string, offset: number): Int32Array {
    if (text.length === 0) return new Int32Array(0);
    const ids = this.lib.encode(text, { add_special_tokens: false }).ids as (number | undefined)[];
    const out = new Int32Array(ids.length);
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (id === undefined) {
        throw new Error(`HfTokenizer.encode: the text near character ${offset} has a piece that is not in the vocabulary and tokenizer.json has no unk_token (and no byte fallback); remove or replace the characters it lacks`);
      }
      out[i] = id;
    }
    return out;
  }

  /** [start, end, startsAtCut] of each chunk of `text`. */
  private *chunks(text: string): Generator<[number, number, boolean]> {
    if (this.chunkMode === 'none' || text.length <= CHUNK_CHARS) {
      yield [0, text.length, false];
      return;
    }
    let start = 0;
    let atCut = false;
    while (start < text.length) {
      const cut = nextCut(text, Math.min(start + CHUNK_CHARS, text.length));
      if (cut < 0) {
        yield [start, text.length, atCut];
        return;
      }
      yield [start, cut, atCut];
      start = cut;
      atCut = true;
    }
  }

  /**
   * Check on probe texts that cutting before a space gives the whole text's ids (`keep-space`:
   * the next chunk starts with the space; `drop-space`: without it, for tokenizers that prepend
   * `▁` to every text); fall back to one call per text (`none`) if neither holds.
   */
  private probeChunkMode(preferred: Exclude<ChunkMode, 'none'>): ChunkMode {
    const probes = [['Hello', ' world, and more'], ['ab', ' cd'], ['9.', ' Zebra'], ['caf\u00e9', ' \u00e9t\u00e9']];
    const same = (a: ArrayLike<number>, b: ArrayLike<number>) => a.length === b.length && Array.prototype.every.call(a, (v: number, i: number) => v === b[i]);
    const holds = (mode: Exclude<ChunkMode, 'none'>) => {
      try {
        return probes.every(([a, b]) => {
          const whole = this.encodeRaw(a! + b!, 0);
          const left = this.encodeRaw(a!, 0);
          const right = this.encodeRaw(mode === 'drop-space' ? b!.slice(1) : b!, 0);
          return same(whole, [...left, ...right]);
        });
      } catch {
        return false;
      }
    };
    if (holds(preferred)) return preferred;
    const other = preferred === 'keep-space' ? 'drop-space' : 'keep-space';
    return holds(other) ? other : 'none';
  }
}
