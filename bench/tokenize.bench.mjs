// Corpus tokenisation speed (issue 10 target: >= 1 MB/s here). The corpus is
// examples/data/tinyshakespeare.txt (1.1 MB), read from disk in 4 MiB pieces by loadCorpus, as
// `bitnet-train train` reads it. Tokenizers: char and byte (built in), and two Hugging Face
// tokenizer.json files trained here on the corpus's start with a plain BPE trainer (MERGES merges):
// byte-level BPE (GPT-2 / SmolLM2 form) and SentencePiece-style BPE with byte fallback (Llama 2
// form), run through @huggingface/tokenizers. Each row: median of ROUNDS loads, each with a new
// tokenizer instance (HfTokenizer remembers the ids of words it has seen: every round starts cold),
// MB/s = file bytes / seconds, and the ids per byte. `encode only` times HfTokenizer.encode on the
// string in memory (also cold).
// Needs dist/ (npm run build).
import { readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HfTokenizer, loadCorpus, createNodeFileSystem } from '../dist/index.js';

const ROUNDS = 3;
const MERGES = 1000;
/** Characters of the corpus the BPE merges are trained on (training is the slow part of this bench). */
const TRAIN_CHARS = 300_000;
const CORPUS = new URL('../examples/data/tinyshakespeare.txt', import.meta.url);

const median = (v) => v.slice().sort((a, b) => a - b)[v.length >> 1];
const round = (x, d = 2) => Math.round(x * 10 ** d) / 10 ** d;

/** GPT-2's byte -> printable character table. */
function byteToUnicode() {
  const bs = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  const cs = [...bs];
  let n = 0;
  for (let b = 0; b < 256; b++) if (!bs.includes(b)) { bs.push(b); cs.push(256 + n++); }
  const out = [];
  bs.forEach((b, i) => { out[b] = String.fromCharCode(cs[i]); });
  return out;
}

/** Plain BPE training on word counts: repeatedly merge the most frequent adjacent pair (ties: first seen). */
function trainMerges(wordCounts, merges) {
  const words = [...wordCounts].map(([w, c]) => ({ syms: Array.from(w), c }));
  const out = [];
  for (let m = 0; m < merges; m++) {
    const pairs = new Map();
    for (const { syms, c } of words) for (let i = 0; i + 1 < syms.length; i++) {
      const k = syms[i] + '\u0000' + syms[i + 1];
      pairs.set(k, (pairs.get(k) ?? 0) + c);
    }
    let best = null, bestN = 0;
    for (const [k, n] of pairs) if (n > bestN) { best = k; bestN = n; }
    if (!best || bestN < 2) break;
    const [a, b] = best.split('\u0000');
    out.push([a, b]);
    for (const w of words) {
      const s = w.syms;
      for (let i = 0; i + 1 < s.length; i++) if (s[i] === a && s[i + 1] === b) s.splice(i, 2, a + b);
    }
  }
  return out;
}

function byteLevelJson(text) {
  const b2u = byteToUnicode();
  const enc = new TextEncoder();
  const counts = new Map();
  for (const w of text.match(/'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu)) {
    const mapped = Array.from(enc.encode(w), (b) => b2u[b]).join('');
    counts.set(mapped, (counts.get(mapped) ?? 0) + 1);
  }
  const merges = trainMerges(counts, MERGES);
  const vocab = { '<|endoftext|>': 0 };
  b2u.forEach((ch, b) => { vocab[ch] = 1 + b; });
  let next = 257;
  for (const [a, b] of merges) if (!(a + b in vocab)) vocab[a + b] = next++;
  return {
    added_tokens: [{ id: 0, content: '<|endoftext|>', special: true, normalized: false }],
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { type: 'BPE', unk_token: null, byte_fallback: false, vocab, merges: merges.map(([a, b]) => `${a} ${b}`) },
  };
}

function sentencePieceJson(text) {
  const counts = new Map();
  for (const w of ('▁' + text.replaceAll(' ', '▁')).split(/(?=▁)/u)) counts.set(w, (counts.get(w) ?? 0) + 1);
  const merges = trainMerges(counts, MERGES);
  const vocab = { '<unk>': 0, '<s>': 1, '</s>': 2 };
  for (let b = 0; b < 256; b++) vocab[`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`] = 3 + b;
  let next = 259;
  for (const ch of new Set(['▁', ...text.replaceAll(' ', '')])) if (!(ch in vocab)) vocab[ch] = next++;
  for (const [a, b] of merges) if (!(a + b in vocab)) vocab[a + b] = next++;
  return {
    added_tokens: [{ id: 0, content: '<unk>', special: true }, { id: 1, content: '<s>', special: true }, { id: 2, content: '</s>', special: true }],
    normalizer: { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: '▁' }, { type: 'Replace', pattern: { String: ' ' }, content: '▁' }] },
    pre_tokenizer: null,
    post_processor: { type: 'TemplateProcessing', single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }], pair: [], special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } } },
    decoder: { type: 'Sequence', decoders: [{ type: 'Replace', pattern: { String: '▁' }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' }, { type: 'Strip', content: ' ', start: 1, stop: 0 }] },
    model: { type: 'BPE', unk_token: '<unk>', fuse_unk: true, byte_fallback: true, vocab, merges: merges.map(([a, b]) => `${a} ${b}`) },
  };
}

export async function run() {
  const text = readFileSync(CORPUS, 'utf8');
  const bytes = Buffer.byteLength(text);
  const dir = mkdtempSync(join(tmpdir(), 'bt-tokbench-'));
  const path = join(dir, 'corpus.txt');
  writeFileSync(path, text);
  const fs = await createNodeFileSystem();
  const t0 = performance.now();
  const byteLevelFile = byteLevelJson(text.slice(0, TRAIN_CHARS));
  const spFile = sentencePieceJson(text.slice(0, TRAIN_CHARS));
  const byteLevel = () => HfTokenizer.fromJSON(byteLevelFile);
  const sp = () => HfTokenizer.fromJSON(spFile, { bos_token: '<s>', add_bos_token: true });
  const trainSeconds = (performance.now() - t0) / 1000;
  const cases = [['char', () => 'char'], ['byte', () => 'byte'], ['byte-level BPE (GPT-2 form)', byteLevel], ['SentencePiece BPE (Llama 2 form)', sp]];
  const rows = [];
  try {
    for (const [name, make] of cases) {
      const secs = [];
      let n = 0;
      let tokenizer;
      for (let r = 0; r < ROUNDS; r++) {
        tokenizer = make();
        const s = performance.now();
        const ds = await loadCorpus(fs, path, { tokenizer });
        secs.push((performance.now() - s) / 1000);
        n = ds.tokens.length;
      }
      const row = { tokenizer: name, vocab: typeof tokenizer === 'string' ? (tokenizer === 'byte' ? 256 : 65) : tokenizer.vocabSize, 'loadCorpus MB/s': round(bytes / 1e6 / median(secs)), 'ids/byte': round(n / bytes, 3) };
      if (typeof tokenizer !== 'string') {
        const enc = [];
        for (let r = 0; r < ROUNDS; r++) {
          const fresh = make();
          const s = performance.now();
          fresh.encode(text);
          enc.push((performance.now() - s) / 1000);
        }
        row['encode only MB/s'] = round(bytes / 1e6 / median(enc));
      }
      rows.push(row);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return {
    unit: 'MB/s (10^6 bytes of corpus per second), median of 3',
    corpus_bytes: bytes,
    bpe_merges: MERGES,
    bpe_training_s: round(trainSeconds, 1),
    rows,
    notes: [
      'target (issue 10): tokenising a corpus >= 1 MB/s on this machine',
      'the BPE tokenizers are trained by this bench on the first 300 k characters of the corpus (no tokenizer files ship with the machine); real ones have 32k-128k merges, which changes the rank lookups, not their number per id',
      'the machine is shared: compare rows of one run, not runs',
    ],
  };
}
