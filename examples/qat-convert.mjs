// Convert a full-precision model to BitNet b1.58 with the QAT API, from code: pretrain a small FP
// model on the bundled Shakespeare corpus, then fine-tune ternary copies of it three ways for the
// same number of steps and compare their val loss:
//
//   direct        quantise at once (λ = 1 from step 0)
//   progressive   λ warmup: weights and activations ramp linearly to fully quantised over the first quarter
//   distill       progressive + knowledge distillation from the FP model (α = 0.5, T = 2)
//
//   npm run build && node examples/qat-convert.mjs [fpSteps=800] [convertSteps=300]
//
// Then a sensitivity analysis of the converted model and one error-analysis report.
import {
  AdamW, GPT, Heap, QatController, QuantErrorAnalyzer, Rng, TextDataset, createBackend, distillationLoss, evaluateLoss,
  formatSensitivityTable, getDefaultFileSystem, sensitivityAnalysis, teacherLogits, trainStep,
} from 'bitnet-training';

const fpSteps = Number(process.argv[2] ?? 800);
const steps = Number(process.argv[3] ?? 300);
const [B, T] = [12, 64];
const fs = await getDefaultFileSystem();
const text = await fs.readText(new URL('./data/tinyshakespeare.txt', import.meta.url).pathname);
const dataset = TextDataset.fromText(text, { tokenizer: 'char', contextLength: T });
const shape = { vocabSize: dataset.tokenizer.vocabSize, contextLength: T, layers: 4, heads: 4, dim: 128 };
const toBatch = ({ inputs, targets }) => ({ tokens: inputs, targets, B, T });
const valRng = new Rng(99);
const val = Array.from({ length: 20 }, () => toBatch(dataset.sampleBatch('val', B, T, valRng)));

const backend = await createBackend('wasm');
const heap = new Heap(backend);

// 1. the FP model
const fp = new GPT(shape).materialize(heap, new Rng(1337));
const fpOpt = new AdamW(fp.params, { lr: 1e-3, betas: [0.9, 0.99], weightDecay: 0.1, clipNorm: 1 });
let rng = new Rng(1);
for (let s = 0; s < fpSteps; s++) await trainStep(heap, fp, fpOpt, toBatch(dataset.sampleBatch('train', B, T, rng)));
const fpValues = fp.params.exportValuesSync();
console.log(`FP model: val loss ${(await evaluateLoss(fp, val)).toFixed(4)} after ${fpSteps} steps`);

// 2. ternary copies of it, fine-tuned for `steps` steps each
async function convert(kind) {
  // without BitLinear's built-in RMSNorm, so that at λ = 0 the ternary model computes the FP model
  const model = new GPT({ ...shape, bitlinear: true, bitlinearOptions: { norm: false } }).materialize(heap, new Rng(1337));
  model.params.importValues(fpValues); // same parameter names: an FP checkpoint loads as is
  const opt = new AdamW(model.params, { lr: 5e-4, betas: [0.9, 0.99], weightDecay: 0.05, clipNorm: 1 });
  const qat = kind === 'direct' ? null : new QatController(model, { weights: { steps: steps / 4 }, activations: { steps: steps / 4 } });
  const before = await evaluateLoss(model, val);
  rng = new Rng(2); // the same batches for every arm
  for (let s = 0; s < steps; s++) {
    qat?.beginStep(s);
    const b = toBatch(dataset.sampleBatch('train', B, T, rng));
    if (kind !== 'distill') {
      await trainStep(heap, model, opt, b);
      continue;
    }
    opt.zeroGrad();
    const tokens = heap.indices(b.tokens, [B, T]), targets = heap.indices(b.targets, [B, T]);
    distillationLoss(model.forward(tokens).logits, teacherLogits(fp, tokens), targets, { alpha: 0.5, temperature: 2 }).backward();
    opt.step();
    heap.resetArena();
  }
  qat?.beginStep(steps); // λ = 1: evaluate the fully ternary model
  const after = await evaluateLoss(model, val);
  console.log(`${kind.padEnd(12)} val loss: at conversion ${before.toFixed(4)}, after ${steps} steps ${after.toFixed(4)}`);
  return model;
}

await convert('direct');
await convert('progressive');
const student = await convert('distill');

// 3. which projections suffer most from ternary weights, and one error-analysis report
const report = await sensitivityAnalysis(student, val.slice(0, 4));
console.log(formatSensitivityTable(report).split('\n').slice(0, 8).join('\n'));
const analyzer = new QuantErrorAnalyzer(student, { every: 1 });
analyzer.beginStep(steps);
await evaluateLoss(student, val.slice(0, 1)); // one forward, for the activation SQNR
const q = await analyzer.report(steps);
console.log(JSON.stringify(q.layers[0]));
backend.dispose();
