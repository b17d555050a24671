// The default CLI model family (GPT: LayerNorm, GELU, learned positions, BitLinear without its
// built-in norm) against BitNet b1.58 2B4T's family (LlamaModel family 'bitnet': RMSNorm, RoPE,
// squared-ReLU gated MLP, attn/ffn sub-norms, tied embeddings) on the README's reference
// configuration: tinyshakespeare, char level, 4 layers, dim 128, 4 heads, context 64, batch 12,
// 2,000 steps, AdamW lr 3e-3 cosine (warmup 100, min 1e-4), beta2 0.99, weight decay 0.1, clip 1,
// val loss over 100 batches. Both arms see the same batches; the bitnet MLP width is 352 so that
// both models have about the same number of parameters (3·128·352 ≈ 2·128·512).
//
//   npm run build && node examples/hf-family-reference.mjs [--iters 2000] [--threads 1] [--only gpt|bitnet|bitnet-silu]
import { readFileSync } from 'node:fs';
import { AdamW, GPT, Heap, LlamaModel, Rng, TextDataset, Trainer, createBackend } from '../dist/index.js';

const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : dflt;
};
const iters = Number(arg('iters', '2000'));
const threads = Number(arg('threads', '1'));
const only = arg('only', '');
const text = readFileSync(new URL('./data/tinyshakespeare.txt', import.meta.url), 'utf8');
const dataset = TextDataset.fromText(text, { tokenizer: 'char', contextLength: 64 });
const V = dataset.tokenizer.vocabSize;

const families = {
  gpt: () => new GPT({ vocabSize: V, contextLength: 64, layers: 4, heads: 4, dim: 128, bitlinear: true, bitlinearOptions: { norm: false } }),
  bitnet: () => new LlamaModel({ family: 'bitnet', vocabSize: V, contextLength: 64, layers: 4, heads: 4, dim: 128, hidden: 352 }),
  // the same with SwiGLU: the BitNet llama.cpp's `bitnet` graph computes (exportable to llama.cpp)
  'bitnet-silu': () => new LlamaModel({ family: 'bitnet', vocabSize: V, contextLength: 64, layers: 4, heads: 4, dim: 128, hidden: 352, act: 'silu' }),
};

for (const [name, make] of Object.entries(families)) {
  if (only && only !== name) continue;
  const backend = await createBackend('wasm', { threads });
  const heap = new Heap(backend);
  const model = make().materialize(heap, new Rng(1337));
  const optimizer = new AdamW(model.params, { lr: 3e-3, betas: [0.9, 0.99], weightDecay: 0.1, clipNorm: 1 });
  const t0 = Date.now();
  let last;
  const trainer = new Trainer({
    model, dataset, optimizer, options: {
      iters, batchSize: 12, contextLength: 64, seed: 1337,
      schedule: { kind: 'cosine', peakLr: 3e-3, warmup: Math.min(100, iters), totalSteps: iters, minLr: 1e-4, weightDecay: 0.1 },
      evalEvery: iters, evalIters: 100, logEvery: 100,
      config: { model: { family: name } },
      onLog: (i) => console.error(`${name} step ${i.step} loss ${i.loss.toFixed(4)}`),
      onEval: (i) => { last = i; },
    },
  });
  await trainer.train();
  console.log(JSON.stringify({ family: name, parameters: model.params.count, iters, val_loss: last?.valLoss, train_loss: last?.trainLoss, seconds: (Date.now() - t0) / 1000 }));
  backend.dispose();
}
