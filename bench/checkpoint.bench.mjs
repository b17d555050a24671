// Gradient checkpointing: the arena high-water mark and the step time with and without it, on
// the reference configuration (4 layers, dim 128, 4 heads, context 64, batch 12, the CLI's
// default BitLinear model) and on deeper models of the same width (16 and 32 layers), wasm
// backend. Steps of both arms alternate, so load from other jobs hits them alike; times are
// medians. Needs dist/ (npm run build).  node bench/run.mjs checkpoint [--threads N] [--rounds N]
// (or node bench/checkpoint.bench.mjs [--threads N] [--rounds N]: one JSON line per model)
import { pathToFileURL } from 'node:url';
import { AdamW, GPT, Heap, Rng, createWasmBackend, trainStep } from '../dist/index.js';

const arg = (name, d) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : d;
};
const B = 12, T = 64;
const base = { vocabSize: 65, contextLength: 64, heads: 4, dim: 128, bitlinear: true, bitlinearOptions: { norm: false } };

async function setup(layers, checkpointing, threads) {
  const backend = await createWasmBackend({ threads });
  const heap = new Heap(backend);
  const model = new GPT({ ...base, layers }).materialize(heap, new Rng(1337));
  model.gradientCheckpointing = checkpointing;
  const opt = new AdamW(model.params, { lr: 3e-3, clipNorm: 1 });
  const rng = new Rng(1);
  const step = async () => {
    const tokens = Int32Array.from({ length: B * T }, () => rng.int(65));
    const t0 = performance.now();
    const loss = await trainStep(heap, model, opt, { tokens, targets: tokens.map((x) => (x + 1) % 65), B, T });
    return { ms: performance.now() - t0, loss };
  };
  return { heap, step, backend };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

/** Runs the benchmark for bench/run.mjs; `onRow` sees each model's row as soon as it is measured. */
export async function run(onRow = () => {}) {
  const threads = arg('--threads', 1);
  const rounds = arg('--rounds', 7);
  const results = [];
  for (const layers of [4, 16, 32]) {
    const arms = [await setup(layers, false, threads), await setup(layers, true, threads)];
    const times = [[], []];
    const losses = [[], []];
    for (let r = 0; r < rounds + 1; r++) {
      for (let a = 0; a < 2; a++) {
        const { ms, loss } = await arms[a].step();
        losses[a].push(loss);
        if (r > 0) times[a].push(ms);
      }
    }
    const hw = arms.map((a) => a.heap.stats().arenaHighWater * 4 / 2 ** 20);
    const row = {
      bench: 'gradient-checkpointing', layers, threads,
      arena_mb: +hw[0].toFixed(2), arena_checkpointed_mb: +hw[1].toFixed(2), arena_ratio: +(hw[1] / hw[0]).toFixed(3),
      step_ms: +median(times[0]).toFixed(1), step_checkpointed_ms: +median(times[1]).toFixed(1),
      time_ratio: +(median(times[1]) / median(times[0])).toFixed(3),
      same_losses: losses[0].every((l, i) => l === losses[1][i]),
    };
    results.push(row);
    onRow(row);
    for (const a of arms) a.backend.dispose();
  }
  const notes = [`batch ${B} x ${T}, ${threads} thread(s); step times are medians of ${rounds} round(s) after one warm-up, the two arms alternating`];
  return { rows: results, notes };
}

// run as a script: print each row as a JSON line, as it is measured
if (process.argv[1] && pathToFileURL(process.argv[1]).href === import.meta.url) {
  await run((row) => console.log(JSON.stringify(row)));
}
