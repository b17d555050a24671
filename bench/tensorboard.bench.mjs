// What logging TensorBoard scalars every step costs at the reference configuration (4 layers,
// 4 heads, dim 128, context 64, batch 12, BitLinear, the bundled corpus), on the wasm backend.
// Target (issue 14): < 1 % of step time.
//
// Two measurements in the same run:
//   direct  the writer's work per step, timed alone: the trainer callbacks that TensorBoard adds
//           (encode 4 scalars, read the grad norm, 1/10 of a flush to a real file every 10 steps),
//           replayed over the StepInfos of real steps; median of rounds, as a share of the median step
//   A/B     10-step rounds of two trainers over the same model, one with --tensorboard and one
//           without, alternating round by round and who goes first (load from other jobs hits both alike); the
//           difference of medians (noisy on a shared machine: a sanity check of the direct number)
// Needs dist/ (npm run build).  [ROUNDS=N] [THREADS=N] node bench/run.mjs tensorboard
// (or node bench/tensorboard.bench.mjs: prints the result as one JSON line and a sentence)
import { mkdtempSync, readdirSync, rmSync, statSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { createBackend } from '../dist/backend/index.js';
import { TextDataset } from '../dist/data/dataset.js';
import { TensorBoardWriter, tensorBoardCallbacks } from '../dist/monitor/index.js';
import { GPT } from '../dist/nn/gpt.js';
import { AdamW } from '../dist/optim/adamw.js';
import { createNodeFileSystem } from '../dist/runtime/fs.js';
import { Heap } from '../dist/tensor/heap.js';
import { Trainer } from '../dist/train/trainer.js';
import { Rng } from '../dist/util/rng.js';

const ROUNDS = Number(process.env.ROUNDS ?? 12);
const STEPS_PER_ROUND = 10;
const threads = Number(process.env.THREADS ?? 1);
const median = (v) => v.slice().sort((a, b) => a - b)[v.length >> 1];

/** Runs both measurements; returns the result object. */
async function measure() {
  const dir = mkdtempSync(join(tmpdir(), 'bitnet-tb-bench-'));
  const fs = await createNodeFileSystem();
  const backend = await createBackend('wasm', { threads });
  try {
    const heap = new Heap(backend);
    const text = readFileSync(new URL('../examples/data/tinyshakespeare.txt', import.meta.url), 'utf8');
    const dataset = TextDataset.fromText(text, { tokenizer: 'char' });
    const model = new GPT({ vocabSize: dataset.tokenizer.vocabSize, contextLength: 64, layers: 4, heads: 4, dim: 128, norm: 'layer', mlp: 'gelu', bias: false, tiedHead: false, bitlinear: true });
    model.materialize(heap, new Rng(1337));
    const optimizer = new AdamW(model.params, { lr: 3e-3, betas: [0.9, 0.99], weightDecay: 0.1, clipNorm: 1 });
    const tb = await TensorBoardWriter.create(fs, join(dir, 'tb'));
    const infos = [];
    const options = (extra) => ({
      iters: 1_000_000, batchSize: 12, contextLength: 64, schedule: { kind: 'cosine', peakLr: 3e-3, warmup: 100, totalSteps: 1200 }, logEvery: STEPS_PER_ROUND, ...extra,
    });
    const plain = new Trainer({ model, dataset, optimizer, options: options({ onStep: (i) => infos.push(i) }) });
    const logged = new Trainer({ model, dataset, optimizer, options: options({ tensorboard: tb }) });

    await plain.train({ untilStep: 3 }); // warm up
    await logged.train({ untilStep: 3 });
    const perStep = { plain: [], logged: [] };
    for (let r = 0; r < ROUNDS; r++) {
      const order = [['plain', plain], ['logged', logged]];
      for (const [name, t] of r % 2 === 0 ? order : order.reverse()) { // alternate who goes first
        const t0 = performance.now();
        await t.train({ untilStep: t.step + STEPS_PER_ROUND });
        perStep[name].push((performance.now() - t0) / STEPS_PER_ROUND);
      }
    }

    // direct: the callbacks TensorBoard adds, replayed over the recorded steps (same writer, same file)
    const cb = tensorBoardCallbacks(tb, {}, optimizer);
    const direct = [];
    for (let r = 0; r < ROUNDS * 4; r++) {
      const t0 = performance.now();
      for (let k = 0; k < STEPS_PER_ROUND; k++) cb.onStep(infos[(r * STEPS_PER_ROUND + k) % infos.length]);
      await cb.onLog({ step: 1, loss: 1, lr: 1e-3, tokensPerSecond: 5000, etaSeconds: 1 });
      direct.push((performance.now() - t0) / STEPS_PER_ROUND);
    }
    await tb.close();
    const file = join(dir, 'tb', readdirSync(join(dir, 'tb'))[0]);
    const stepMs = median(perStep.plain);
    const directMs = median(direct);
    return {
      bench: 'tensorboard',
      config: { layers: 4, heads: 4, dim: 128, context: 64, batch: 12, bitlinear: true, threads },
      rounds: ROUNDS,
      step_ms_median: Math.round(stepMs * 100) / 100,
      tensorboard_ms_per_step_direct: Math.round(directMs * 1000) / 1000,
      direct_share_of_step_pct: Number(((100 * directMs) / stepMs).toPrecision(2)),
      step_ms_with_tensorboard_median: Math.round(median(perStep.logged) * 100) / 100,
      ab_ratio: Math.round((1000 * median(perStep.logged)) / stepMs) / 1000,
      event_file_bytes: statSync(file).size,
      target_pct: 1,
    };
  } finally {
    backend.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
}

const sentence = (result) => `TensorBoard scalars every step: ${result.tensorboard_ms_per_step_direct} ms of a ${result.step_ms_median} ms step = ${result.direct_share_of_step_pct} % (target < 1 %); A/B with/without: ${result.ab_ratio}x`;

/** For bench/run.mjs: the result as the one row and as the JSON line, the sentence as a note. */
export async function run() {
  const result = await measure();
  return { rows: [result], notes: [sentence(result)], jsonLine: JSON.stringify(result) };
}

// run as a script: the JSON line, then the sentence
if (process.argv[1] && pathToFileURL(process.argv[1]).href === import.meta.url) {
  const result = await measure();
  console.log(JSON.stringify(result));
  console.log(sentence(result));
}
