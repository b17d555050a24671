/**
 * Small but real `tokenizer.json` files for the tokenizer tests, in the two shapes Hugging Face
 * models ship: byte-level BPE (GPT-2 / SmolLM2, and Llama 3's Split + ByteLevel form) and
 * SentencePiece-style BPE with `▁` and byte fallback (Llama 2's Prepend/Replace normalizer form
 * and TinyLlama's newer Metaspace pre-tokenizer form). The merges are few and chosen so that the
 * expected ids can be derived by hand in the tests.
 */

/** GPT-2's bytes_to_unicode: byte -> the printable character byte-level BPE uses for it. */
export function byteToUnicode(): string[] {
  const bs: number[] = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  const cs = [...bs];
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n++);
    }
  }
  const out = new Array<string>(256);
  bs.forEach((b, i) => { out[b] = String.fromCharCode(cs[i]!); });
  return out;
}

const added = (id: number, content: string) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });

/** Merges of the byte-level tokenizer, in rank order (Ġ is the space byte). */
export const BYTE_LEVEL_MERGES = ['h e', 'l l', 'he ll', 'Ġ t', 'Ġt he', 'o r', 'Ġ w'];

/**
 * Byte-level BPE. Ids: 0 `<|endoftext|>`, 1 + b for byte b (so unmerged text has id 1 + byte),
 * then one id per merge result in merge order (257 `he`, 258 `ll`, 259 `hell`, 260 `Ġt`,
 * 261 `Ġthe`, 262 `or`, 263 `Ġw`), then 264 `<|begin_of_text|>` (added, special).
 * `style`: 'gpt2' (ByteLevel pre-tokenizer with its regex, no BOS) or 'llama3' (a Split with
 * Llama 3's regex then ByteLevel without regex; a TemplateProcessing that adds `<|begin_of_text|>`).
 */
export function byteLevelTokenizer(style: 'gpt2' | 'llama3' = 'gpt2'): Record<string, unknown> {
  const b2u = byteToUnicode();
  const vocab: Record<string, number> = { '<|endoftext|>': 0 };
  b2u.forEach((ch, b) => { vocab[ch] = 1 + b; });
  let next = 257;
  for (const m of BYTE_LEVEL_MERGES) vocab[m.replace(' ', '')] = next++;
  const bot = next; // 264
  const llama3Regex = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: style === 'llama3' ? [added(0, '<|endoftext|>'), added(bot, '<|begin_of_text|>')] : [added(0, '<|endoftext|>')],
    normalizer: null,
    pre_tokenizer: style === 'gpt2'
      ? { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true }
      : { type: 'Sequence', pretokenizers: [
        { type: 'Split', pattern: { Regex: llama3Regex }, behavior: 'Isolated', invert: false },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
      ] },
    post_processor: style === 'gpt2'
      ? { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true }
      : {
        type: 'TemplateProcessing',
        single: [{ SpecialToken: { id: '<|begin_of_text|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
        pair: [{ SpecialToken: { id: '<|begin_of_text|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '<|begin_of_text|>', type_id: 1 } }, { Sequence: { id: 'B', type_id: 1 } }],
        special_tokens: { '<|begin_of_text|>': { id: '<|begin_of_text|>', ids: [bot], tokens: ['<|begin_of_text|>'] } },
      },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '', end_of_word_suffix: '', fuse_unk: false, byte_fallback: false, ignore_merges: style === 'llama3',
      vocab, merges: BYTE_LEVEL_MERGES,
    },
  };
}

/** Merges of the SentencePiece-style tokenizer, in rank order. */
export const SP_MERGES = ['▁ t', 'h e', '▁t he', 'l o', '▁ h', '▁h e', '▁he l', '▁hel lo'];

/** Letters of the SentencePiece-style vocabulary (everything else falls back to bytes). */
export const SP_LETTERS = [...'▁abcdefghijklmnopqrstuvwxyzT,.'];

/**
 * SentencePiece-style BPE with byte fallback, as Llama 2 / TinyLlama ship it. Ids: 0 `<unk>`,
 * 1 `<s>`, 2 `</s>`, 3 + b for `<0xXX>` (byte b), then `SP_LETTERS` from 259 (`▁` 259, `a` 260,
 * …, `z` 285, `T` 286, `,` 287, `.` 288), then the merge results in merge order (289 `▁t`,
 * 290 `he`, 291 `▁the`, 292 `lo`, 293 `▁h`, 294 `▁he`, 295 `▁hel`, 296 `▁hello`).
 * `style`: 'llama2' (Prepend + Replace normalizer) or 'tinyllama' (Metaspace pre-tokenizer,
 * prepend_scheme first). Both add `<s>` through a TemplateProcessing.
 */
export function sentencePieceTokenizer(style: 'llama2' | 'tinyllama' = 'llama2'): Record<string, unknown> {
  const vocab: Record<string, number> = { '<unk>': 0, '<s>': 1, '</s>': 2 };
  for (let b = 0; b < 256; b++) vocab[`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`] = 3 + b;
  let next = 259;
  for (const ch of SP_LETTERS) vocab[ch] = next++;
  for (const m of SP_MERGES) vocab[m.replace(' ', '')] = next++;
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [
      { ...added(0, '<unk>') }, { ...added(1, '<s>') }, { ...added(2, '</s>') },
    ],
    normalizer: style === 'llama2'
      ? { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: '▁' }, { type: 'Replace', pattern: { String: ' ' }, content: '▁' }] }
      : null,
    pre_tokenizer: style === 'tinyllama' ? { type: 'Metaspace', replacement: '▁', prepend_scheme: 'first', split: false } : null,
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '<s>', type_id: 1 } }, { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
    },
    decoder: style === 'llama2'
      ? { type: 'Sequence', decoders: [{ type: 'Replace', pattern: { String: '▁' }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' }, { type: 'Strip', content: ' ', start: 1, stop: 0 }] }
      : { type: 'Sequence', decoders: [{ type: 'Replace', pattern: { String: '▁' }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' }, { type: 'Strip', content: ' ', start: 1, stop: 0 }] },
    model: {
      type: 'BPE', dropout: null, unk_token: '<unk>', continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: true, byte_fallback: true, ignore_merges: false,
      vocab, merges: SP_MERGES,
    },
  };
}

/** Llama 2's tokenizer_config.json fields that matter here. */
export const LLAMA2_CONFIG = { add_bos_token: true, add_eos_token: false, bos_token: { content: '<s>', lstrip: false, normalized: false, rstrip: false, single_word: false, __type: 'AddedToken' }, eos_token: '</s>', unk_token: '<unk>', clean_up_tokenization_spaces: false, legacy: false };
