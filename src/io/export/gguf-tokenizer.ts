/**
 * Tokenizer metadata of a GGUF file for this project's char and byte tokenizers, as llama.cpp's
 * byte-level BPE (`tokenizer.ggml.model = "gpt2"`): every token is the GPT-2 byte-to-unicode
 * spelling of its UTF-8 bytes, and a character of several bytes gets the merges that join them.
 * llama.cpp then tokenizes text to the same ids as ours (and prints the same text).
 */
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
  if (tokenizer.kind !== 'byte' && tokenizer.kind !== 'char') throw new Error(`tokenizer: a ${tokenizer.kind} tokenizer has no GGUF mapping here yet`);
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
