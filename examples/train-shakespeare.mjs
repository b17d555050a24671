// Train a small character-level BitNet b1.58 model on the bundled Shakespeare corpus, from code.
// The same as `npm start` (bitnet-train train), with the pieces assembled by hand.
//
//   npm run build && node examples/train-shakespeare.mjs [iters]
//
// Inside this repository `bitnet-training` resolves to the package itself (its "exports" map).
import {
  AdamW, GPT, Heap, Rng, TextDataset, Trainer, createBackend, generate, getDefaultFileSystem,
} from 'bitnet-training';

const iters = Number(process.argv[2] ?? 300);
const fs = await getDefaultFileSystem();
const text = await fs.readText(new URL('./data/tinyshakespeare.txt', import.meta.url).pathname);

// data: characters as tokens, the last 10% held out for validation
const dataset = TextDataset.fromText(text, { tokenizer: 'char', contextLength: 64 });

// model: parameters live in one flat block of the backend's memory
const backend = await createBackend('wasm');
const heap = new Heap(backend);
const model = new GPT({ vocabSize: dataset.tokenizer.vocabSize, contextLength: 64, layers: 4, heads: 4, dim: 128, bitlinear: true });
model.materialize(heap, new Rng(1337));
const optimizer = new AdamW(model.params, { lr: 1.5e-3, betas: [0.9, 0.99], weightDecay: 0.1, clipNorm: 1 });

const trainer = new Trainer({
  model,
  dataset,
  optimizer,
  options: {
    iters,
    batchSize: 12,
    contextLength: 64,
    // the BitNet recipe: warmup, then the LR drops halfway and weight decay goes to 0
    schedule: { kind: 'two-stage', peakLr: 1.5e-3, warmup: Math.min(50, iters), totalSteps: iters, weightDecay: 0.1 },
    evalEvery: 100,
    evalIters: 20,
    logEvery: 25,
    checkpoints: { fs, dir: 'runs/example', keep: 2 },
    onLog: (s) => console.log(`step ${s.step}: loss ${s.loss.toFixed(4)}, lr ${s.lr.toExponential(2)}, ${Math.round(s.tokensPerSecond)} tok/s`),
    onEval: (e) => console.log(`eval ${e.step}: train ${e.trainLoss.toFixed(4)}, val ${e.valLoss.toFixed(4)}`),
  },
});
const result = await trainer.train();
console.log(`val loss ${result.lastEval.valLoss.toFixed(4)} after ${result.step} steps; checkpoint ${result.checkpoint}`);

const ids = generate(model, heap, dataset.tokenizer.encode('ROMEO:'), { maxNewTokens: 300, temperature: 0.8, rng: new Rng(7) });
console.log('ROMEO:' + dataset.tokenizer.decode(ids));
backend.dispose();
