// Quantisation-aware training at the reference configuration (4 layers, 4 heads, dim 128,
// context 64, batch 12 = 768 tokens, vocab 65; BitLinear with the built-in RMSNorm), wasm,
// single thread: the cost of a training step in each QAT mode against the default packed path,
// and the cost of the error analysis (QuantErrorAnalyzer) at its default interval of 100 steps:
//
//   overhead = (armed step − plain step + report) / (interval · plain step)     target < 5 %
//
// Steps of all variants are interleaved (round r runs one step of each), medians. Needs dist/.
import { AdamW, GPT, Heap, Rng, createWasmBackend, trainStep } from '../dist/index.js';
import { QatController, QuantErrorAnalyzer, distillationLoss, teacherLogits } from '../dist/qat/index.js';

const SHAPE = { vocabSize: 65, contextLength: 64, layers: 4, heads: 4, dim: 128, norm: 'layer', mlp: 'gelu', bias: false, tiedHead: false };
const B = 12, T = 64;
const INTERVAL = 100;
const WARMUP = 3;
const ROUNDS = Number(process.env.QAT_BENCH_ROUNDS ?? 9);

function batch(rng) {
  const tokens = new Int32Array(B * T), targets = new Int32Array(B * T);
  for (let i = 0; i < B * T; i++) { tokens[i] = rng.int(SHAPE.vocabSize); targets[i] = rng.int(SHAPE.vocabSize); }
  return { tokens, targets, B, T };
}

/** Variants: model options and a per-step hook run before the step. */
const VARIANTS = {
  packed: {},
  'analysis (armed step)': { analyzer: true },
  'progressive λw=λa=0.5': { controller: { weights: { steps: 1000 }, activations: { steps: 1000 } }, step: 500 },
  'noise p=0.5': { controller: { noise: { start: 0.5, schedule: { steps: 1000 }, seed: 1 } }, step: 0 },
  'soft STE': { options: { ste: 'soft', softTemperature: 0.5 } },
  'lsq STE': { options: { ste: 'lsq' } },
  'static scales + clipped STE': { options: { activationScale: 'static', activationSte: 'clipped' } },
  'distillation (FP teacher)': { distill: true },
};

async function setup(v) {
  const backend = await createWasmBackend({ threads: 1 });
  const heap = new Heap(backend);
  const model = new GPT({ ...SHAPE, bitlinear: true, bitlinearOptions: v.options ?? {} }).materialize(heap, new Rng(1337));
  const teacher = v.distill ? new GPT(SHAPE).materialize(heap, new Rng(1)) : null;
  const opt = new AdamW(model.params, { lr: 1e-3, betas: [0.9, 0.99], weightDecay: 0.1, clipNorm: 1 });
  const analyzer = v.analyzer ? new QuantErrorAnalyzer(model, { every: INTERVAL }) : null;
  const controller = v.controller ? new QatController(model, v.controller) : null;
  const data = new Rng(7);
  const step = async () => {
    controller?.beginStep(v.step ?? 0);
    analyzer?.beginStep(0); // every measured step is a report step
    const b = batch(data);
    if (!teacher) return trainStep(heap, model, opt, b);
    opt.zeroGrad();
    const shape = [B, T];
    const tokens = heap.indices(b.tokens, shape), targets = heap.indices(b.targets, shape);
    const loss = distillationLoss(model.forward(tokens).logits, teacherLogits(teacher, tokens), targets, { alpha: 0.5, temperature: 2 });
    loss.backward();
    opt.step();
    const value = loss.itemSync();
    heap.resetArena();
    return value;
  };
  for (let i = 0; i < WARMUP; i++) await step();
  return { backend, step, analyzer };
}

const median = (v) => v.slice().sort((a, b) => a - b)[v.length >> 1];
const round = (x, d = 1) => Math.round(x * 10 ** d) / 10 ** d;

/** Runs the QAT benchmark; returns `{ rows, notes, ... }` for bench/run.mjs. */
export async function run() {
  const names = Object.keys(VARIANTS);
  const runs = {};
  for (const n of names) runs[n] = await setup(VARIANTS[n]);
  const secs = Object.fromEntries(names.map((n) => [n, []]));
  const reportMs = [];
  for (let r = 0; r < ROUNDS; r++) {
    for (const n of names) {
      const t0 = performance.now();
      await runs[n].step();
      secs[n].push(performance.now() - t0);
      if (runs[n].analyzer) {
        const t1 = performance.now();
        await runs[n].analyzer.report(r);
        reportMs.push(performance.now() - t1);
      }
    }
  }
  for (const n of names) runs[n].backend.dispose();
  const base = median(secs.packed);
  const rows = names.map((n) => ({ variant: n, 'ms/step': round(median(secs[n])), 'tokens/s': Math.round((B * T) / (median(secs[n]) / 1000)), 'vs packed': round(median(secs[n]) / base, 3) }));
  const armedExtra = median(secs['analysis (armed step)']) - base;
  const report = median(reportMs);
  const overhead = (Math.max(0, armedExtra) + report) / (INTERVAL * base);
  return {
    unit: 'ms per training step (768 tokens), median of interleaved steps, wasm, 1 thread',
    config: '4 layers, 4 heads, dim 128, context 64, batch 12, vocab 65, BitLinear with built-in RMSNorm',
    analysisReportMs: round(report, 2),
    analysisArmedStepExtraMs: round(armedExtra, 2),
    analysisOverheadAtInterval100: `${round(overhead * 100, 2)} % (target < 5 %)`,
    rows,
    notes: [
      'analysis overhead = (armed step - plain step + report) / (100 * plain step); armed: two sumSquares per layer input in the forward',
      'progressive (λ < 1) and noise steps run one f32 GEMM per projection instead of the packed kernel, plus the blends',
      'the machine is shared: compare rows of one run only',
    ],
  };
}
