// What the optimizer's non-finite guard (src/optim/update-guard.ts) costs per training step at the
// reference configuration (4 layers, dim 128, 4 heads, context 64, batch 12, BitLinear): the
// guard's two extra sums of squares (weights, first moment) and its 4-float readSync, timed alone,
// against a whole training step and AdamW's step (which includes them). Medians, same run.
//
//   node bench/run.mjs update-guard        (or: node bench/update-guard.bench.mjs [--threads 1])
import { pathToFileURL } from 'node:url';
import { AdamW, GPT, Heap, Rng, createBackend } from '../dist/index.js';

const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const now = () => performance.now();

export async function run() {
  const threads = arg('threads', 1);
  const reps = arg('reps', 30);
  const backend = await createBackend('wasm', { threads });
  try {
    const heap = new Heap(backend);
    const [B, T] = [12, 64];
    const model = new GPT({ vocabSize: 65, contextLength: T, layers: 4, heads: 4, dim: 128, bitlinear: true }).materialize(heap, new Rng(1));
    const opt = new AdamW(model.params, { lr: 1e-3, clipNorm: 1 });
    const ids = Int32Array.from({ length: B * T }, (_, i) => (i * 31) % 65);
    const p = model.params;
    const scratch = heap.allocStatic(4, 'bench.scratch');
    const stepMs = [];
    const optMs = [];
    const guardMs = [];
    for (let r = 0; r < reps + 3; r++) {
      const t0 = now();
      opt.zeroGrad();
      const { loss } = model.forward(heap.indices(ids, [B, T]), heap.indices(ids, [B, T]));
      loss.itemSync();
      loss.backward();
      const t1 = now();
      opt.step();
      const t2 = now();
      heap.resetArena();
      // the guard's own work, once more: the two sums it adds to AdamW's and the read-back
      const t3 = now();
      backend.sumSquares(scratch, p.paramOffset, p.blockSize);
      backend.sumSquares(scratch + 1, p.gradOffset, p.blockSize);
      backend.readSync(scratch, 4);
      const t4 = now();
      if (r >= 3) {
        stepMs.push(t2 - t0);
        optMs.push(t2 - t1);
        guardMs.push(t4 - t3);
      }
    }
    const step = median(stepMs);
    const guard = median(guardMs);
    return {
      threads,
      parameters: p.count,
      step_ms: +step.toFixed(2),
      adamw_step_ms: +median(optMs).toFixed(3),
      guard_ms: +guard.toFixed(3),
      guard_share_of_step: +(guard / step).toFixed(4),
      notes: ['medians over the repetitions; the guard share is from the same run'],
    };
  } finally {
    backend.dispose();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) console.log(JSON.stringify(await run(), null, 2));
