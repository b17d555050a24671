/**
 * Tokenizer metadata of a GGUF file for this project's char and byte tokenizers, as llama.cpp's
 * byte-level BPE (`tokenizer.ggml.model = "gpt2"`): every token is the GPT-2 byte-to-unicode
 * spelling of its UTF-8 bytes, and a character of several bytes gets the merges that join them.
 * llama.cpp then tokenizes text to the same ids as ours (and prints the same text).
 */
import { HfTokenizer } from '../../data/hf-tokenizer.js';
import type { TokenizerJSON } from '../../data/tokenizer.js';
import { type GgufValue, gguf } from '../gguf/format.js';

/** GPT-2's byte → printable character table (`bytes_to_unicode`). */
function byteToUnicode(): string[] {
  const table: string[] = new Array(256);
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    table[b] = String.fromCodePoint(printable ? b : 256 + extra++);
  }
  return table;
}

const BYTE_CHARS = byteToUnicode();

/** The byte-level spelling of a string's UTF-8 bytes. */
export function byteLevelSpelling(text: string): string[] {
  return Array.from(new TextEncoder().encode(text), (b) => BYTE_CHARS[b]!);
}

/**
 * GGUF tokenizer metadata for a char or byte tokenizer of `vocabSize` ids: tokens, token types
 * (all normal), merges, and no BOS/EOS (these tokenizers have none; llama.cpp's BPE default
 * would otherwise take id 11 as both).
 */
export function ggufTokenizerMetadata(tokenizer: TokenizerJSON, vocabSize: number): [string, GgufValue][] {
  const tokens: string[] = [];
  const merges: string[] = [];
  if (tokenizer.kind === 'hf') return ggufHfTokenizerMetadata(tokenizer, vocabSize);
  const pieces = tokenizer.kind === 'byte' ? Array.from({ length: 256 }, (_, b) => [BYTE_CHARS[b]!]) : tokenizer.vocab.map(byteLevelSpelling);
  if (pieces.length !== vocabSize) throw new Error(`tokenizer: ${pieces.length} tokens for a model of vocabulary ${vocabSize}`);
  const seen = new Set<string>();
  for (const p of pieces) {
    tokens.push(p.join(''));
    for (let i = 1; i < p.length; i++) {
      const merge = `${p.slice(0, i).join('')} ${p[i]}`;
      if (!seen.has(merge)) {
        seen.add(merge);
        merges.push(merge);
      }
    }
  }
  return [
    ['tokenizer.ggml.model', gguf.str('gpt2')],
    ['tokenizer.ggml.pre', gguf.str('default')],
    ['tokenizer.ggml.tokens', gguf.array('string', tokens)],
    ['tokenizer.ggml.token_type', gguf.array('i32', tokens.map(() => 1))],
    ['tokenizer.ggml.merges', gguf.array('string', merges)],
    ['tokenizer.ggml.add_bos_token', gguf.bool(false)],
    ['tokenizer.ggml.add_eos_token', gguf.bool(false)],
  ];
}

/** Metadata for a model without a tokenizer: llama.cpp's "none" vocabulary of `vocabSize` placeholder ids (feed token ids). */
export function ggufNoTokenizerMetadata(arch: string, vocabSize: number): [string, GgufValue][] {
  return [
    ['tokenizer.ggml.model', gguf.str('none')],
    [`${arch}.vocab_size`, gguf.u32(vocabSize)],
  ];
}

/** Llama 3's pre-tokenizer regex as its tokenizer.json writes it (llama.cpp: `llama-bpe`). */
const LLAMA3_REGEX = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/** llama.cpp's name of a byte-level BPE pre-tokenizer, or null when it has none. */
function llamaCppPreTokenizer(pre: unknown): string | null {
  const p = pre as { type?: string; use_regex?: boolean; pretokenizers?: { type?: string; use_regex?: boolean; individual_digits?: boolean; pattern?: { Regex?: string } }[] } | null;
  if (!p) return null;
  if (p.type === 'ByteLevel' && p.use_regex !== false) return 'gpt-2';
  const seq = p.type === 'Sequence' ? p.pretokenizers ?? [] : [];
  if (seq.length === 2 && seq[0]!.type === 'Digits' && seq[0]!.individual_digits === true && seq[1]!.type === 'ByteLevel' && seq[1]!.use_regex !== false) return 'smollm';
  if (seq.length === 2 && seq[0]!.type === 'Split' && seq[0]!.pattern?.Regex === LLAMA3_REGEX && seq[1]!.type === 'ByteLevel' && seq[1]!.use_regex === false) return 'llama-bpe';
  return null;
}

/**
 * A Hugging Face byte-level BPE tokenizer (GPT-2, SmolLM2, Llama 3) as llama.cpp's `gpt2`
 * tokenizer: vocabulary and added tokens by id (padded to the model's vocabulary with unused
 * `[PAD<i>]` tokens), merges, the pre-tokenizer by llama.cpp's name, BOS/EOS and whether BOS is
 * added. Other shapes (SentencePiece-style BPE, normalizers, pre-tokenizers llama.cpp has no
 * name for) are refused: llama.cpp would split text differently.
 */
function ggufHfTokenizerMetadata(record: Extract<TokenizerJSON, { kind: 'hf' }>, vocabSize: number): [string, GgufValue][] {
  const tj = record.tokenizer as { model?: { type?: string; vocab?: Record<string, number>; merges?: (string | [string, string])[]; byte_fallback?: boolean }; normalizer?: unknown; pre_tokenizer?: unknown; added_tokens?: { id: number; content: string; special?: boolean }[] };
  const model = tj.model ?? {};
  const refuse = (what: string): never => {
    throw new Error(`tokenizer.json: ${what}; the GGUF export writes byte-level BPE tokenizers (GPT-2, SmolLM2, Llama 3) only — llama.cpp would tokenize text differently`);
  };
  if (model.type !== 'BPE') refuse(`model type ${JSON.stringify(model.type)}`);
  if (model.byte_fallback) refuse('a SentencePiece-style BPE with byte fallback (Llama 2, TinyLlama)');
  if (tj.normalizer !== null && tj.normalizer !== undefined) refuse(`normalizer ${JSON.stringify(tj.normalizer).slice(0, 80)}`);
  const pre = llamaCppPreTokenizer(tj.pre_tokenizer);
  if (!pre) refuse(`pre-tokenizer ${JSON.stringify(tj.pre_tokenizer).slice(0, 120)} has no llama.cpp equivalent here`);
  const tokens = new Array<string | undefined>(vocabSize);
  const types = new Array<number>(vocabSize).fill(1);
  for (const [tok, id] of Object.entries(model.vocab ?? {})) {
    if (id >= vocabSize) throw new Error(`tokenizer.json: token ${JSON.stringify(tok)} has id ${id}, outside the model's vocabulary ${vocabSize}`);
    tokens[id] = tok;
  }
  for (const a of tj.added_tokens ?? []) {
    if (a.id >= vocabSize) throw new Error(`tokenizer.json: added token ${JSON.stringify(a.content)} has id ${a.id}, outside the model's vocabulary ${vocabSize}`);
    tokens[a.id] = a.content;
    types[a.id] = a.special ? 3 : 4; // CONTROL, USER_DEFINED
  }
  for (let i = 0; i < vocabSize; i++) {
    if (tokens[i] === undefined) {
      tokens[i] = `[PAD${i}]`;
      types[i] = 5; // UNUSED
    }
  }
  const merges = (model.merges ?? []).map((m) => (Array.isArray(m) ? `${m[0]} ${m[1]}` : m));
  const tok = HfTokenizer.fromJSON(record.tokenizer, record.config);
  const md: [string, GgufValue][] = [
    ['tokenizer.ggml.model', gguf.str('gpt2')],
    ['tokenizer.ggml.pre', gguf.str(pre as string)],
    ['tokenizer.ggml.tokens', gguf.array('string', tokens as string[])],
    ['tokenizer.ggml.token_type', gguf.array('i32', types)],
    ['tokenizer.ggml.merges', gguf.array('string', merges)],
    ['tokenizer.ggml.add_bos_token', gguf.bool(tok.addBos)],
    ['tokenizer.ggml.add_eos_token', gguf.bool(tok.addEos)],
  ];
  if (tok.bosId !== null) md.push(['tokenizer.ggml.bos_token_id', gguf.u32(tok.bosId)]);
  if (tok.eosId !== null) md.push(['tokenizer.ggml.eos_token_id', gguf.u32(tok.eosId)]);
  return md;
}
