// Bring your own model: load a Hugging Face directory, fine-tune it a few steps, export it for
// llama.cpp (GGUF) and transformers (hf), and run the GGUF in llama.cpp.
//
//   npm run build && node examples/hf-finetune-export.mjs [HF_DIR] [--iters 30] [--out runs/hf-example]
//
// HF_DIR defaults to the tiny LLaMA fixture (../shared/fixtures/hf/tiny-llama-gqa: GQA, untied
// head, F32, no tokenizer). A directory with tokenizer.json is fine-tuned on tinyshakespeare in
// its own tokens; one without gets a character vocabulary the size of the model's (the corpus's
// characters first), so that the example runs on the fixtures. llama.cpp runs through the
// node-llama-cpp dev dependency (its prebuilt CPU binary; nothing is downloaded).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  AdamW, CharTokenizer, Rng, TextDataset, Trainer, exportCheckpoint, generate, getDefaultFileSystem, loadPretrained,
} from '../dist/index.js';

const args = process.argv.slice(2);
const flag = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const dir = args[0] && !args[0].startsWith('--') ? args[0] : new URL('../../shared/fixtures/hf/tiny-llama-gqa', import.meta.url).pathname;
const iters = Number(flag('iters', '30'));
const out = flag('out', 'runs/hf-example');
if (existsSync(out)) throw new Error(`${out} exists; remove it or pass --out`);

// 1. load: config.json mapped and checked, weights streamed into the heap
const { model, heap, spec, tokenizer: hfTokenizer } = await loadPretrained(dir, { contextLength: 64 });
console.log(`loaded ${dir}: ${spec.architecture}, ${model.params.count} parameters, vocabulary ${model.config.vocabSize}`);
const text = readFileSync(new URL('./data/tinyshakespeare.txt', import.meta.url), 'utf8');
let tokenizer = hfTokenizer;
if (!tokenizer) {
  const chars = [...new Set(text)].sort();
  for (let cp = 0x100; chars.length < model.config.vocabSize; cp++) chars.push(String.fromCodePoint(cp));
  if (chars.length > model.config.vocabSize) throw new Error(`the corpus has ${chars.length} characters, more than the model's vocabulary ${model.config.vocabSize}`);
  tokenizer = new CharTokenizer(chars);
  console.log(`no tokenizer.json: a character vocabulary of ${chars.length} ids stands in`);
}
const dataset = TextDataset.fromTokens(tokenizer.encode(text.slice(0, 200_000)), tokenizer, { contextLength: 64 });

// 2. fine-tune a few steps (checkpoints record the family, so export knows the model)
const optimizer = new AdamW(model.params, { lr: 1e-3, betas: [0.9, 0.99], weightDecay: 0.0, clipNorm: 1 });
const fs = await getDefaultFileSystem();
const losses = [];
const trainer = new Trainer({
  model, dataset, optimizer, options: {
    iters, batchSize: 8, contextLength: 64, schedule: { kind: 'constant', peakLr: 1e-3, warmup: 0, weightDecay: 0 },
    logEvery: 1, onLog: (i) => losses.push(i.loss), checkpoints: { fs, dir: join(out, 'train'), keep: 1 },
    config: { tokenizerNote: hfTokenizer ? 'tokenizer.json' : 'stand-in character vocabulary' },
  },
});
await trainer.train();
console.log(`fine-tuned ${iters} steps: loss ${losses[0].toFixed(3)} → ${losses.at(-1).toFixed(3)}`);

// 3. export: GGUF for llama.cpp, a Hugging Face directory for transformers
const ckpt = join(out, 'train');
const gguf = await exportCheckpoint({ ckpt, format: 'gguf', out: join(out, 'model.gguf') }, fs);
console.log(`GGUF: ${gguf.out} (llama.cpp ${gguf.arch}, ${(gguf.bytes / 1e6).toFixed(2)} MB)`);
const hf = await exportCheckpoint({ ckpt, format: 'hf', out: join(out, 'hf') }, fs);
console.log(`Hugging Face: ${hf.out}${hf.notes.length ? ` (${hf.notes.join('; ')})` : ''}`);

// 4. llama.cpp: greedy continuation of a prompt, next to ours
const prompt = Array.from(tokenizer.encode('ROMEO:\n'));
const ours = Array.from(generate(model, heap, prompt, { maxNewTokens: 24, temperature: 0, rng: new Rng(1) }));
const { getLlama, LlamaLogLevel } = await import('node-llama-cpp');
const llama = await getLlama({ gpu: false, build: 'never', usePrebuiltBinaries: true, skipDownload: true, progressLogs: false, logLevel: LlamaLogLevel.error });
const lm = await llama.loadModel({ modelPath: gguf.out, gpuLayers: 0 });
const ctx = await lm.createContext({ contextSize: 256, threads: 1, sequences: 1 });
const seq = ctx.getSequence();
const theirs = [];
let input = [...prompt.slice(0, -1), [prompt.at(-1), { generateNext: { token: true, options: { temperature: 0 } } }]];
for (let i = 0; i < 24; i++) {
  const res = await seq.controlledEvaluate(input);
  const t = res.at(-1).next.token;
  theirs.push(t);
  input = [[t, { generateNext: { token: true, options: { temperature: 0 } } }]];
}
let same = 0;
while (same < 24 && ours[same] === theirs[same]) same++;
console.log(`ours:      ${JSON.stringify(tokenizer.decode(Int32Array.from(ours)))}`);
console.log(`llama.cpp: ${JSON.stringify(tokenizer.decode(Int32Array.from(theirs)))}`);
console.log(`greedy continuations agree for ${same}/24 tokens`);
await ctx.dispose();
await lm.dispose();
await llama.dispose();
heap.backend.dispose();
