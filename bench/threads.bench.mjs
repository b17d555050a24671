// Thread scaling of the wasm backend: an f32 GEMM 512x512x512 (each layout) and a whole training
// step of the reference configuration (4 layers, 4 heads, dim 128, context 64, batch 12, vocab 65;
// fp and BitLinear), at 1 and 2 threads. The 1- and 2-thread runs alternate call by call, so load
// from other jobs on a shared machine hits both alike; speedup = median(1 thread) / median(2).
// Targets (issue: multi-core training): GEMM 512^3 >= 1.8x, training step >= 1.7x on 2 cores.
// Needs dist/ (npm run build).
import { AdamW, GPT, Heap, Rng, createWasmBackend, trainStep } from '../dist/index.js';

const GEMM_ROUNDS = 30;
const STEP_ROUNDS = 15;
const STEP_WARMUP = 4;
const SHAPE = { vocabSize: 65, contextLength: 64, layers: 4, heads: 4, dim: 128, norm: 'layer', mlp: 'gelu', bias: false, tiedHead: false };
const B = 12, T = 64;

const median = (v) => v.slice().sort((a, b) => a - b)[v.length >> 1];
const round = (x, d = 2) => Math.round(x * 10 ** d) / 10 ** d;

/** Seconds per call of `fns[i]`, alternating between them each round. */
async function alternate(fns, rounds) {
  const secs = fns.map(() => []);
  for (let r = 0; r < rounds; r++) {
    for (let i = 0; i < fns.length; i++) {
      const t0 = performance.now();
      await fns[i]();
      secs[i].push((performance.now() - t0) / 1000);
    }
  }
  return secs.map(median);
}

async function gemmRows() {
  const n = 512;
  const backends = [await createWasmBackend({ threads: 1 }), await createWasmBackend({ threads: 2 })];
  const ptrs = backends.map((be) => {
    const a = be.base, b = a + n * n, c = b + n * n;
    be.reserve(c + n * n);
    const rng = new Rng(3);
    const data = new Float32Array(n * n);
    rng.fillNormal(data);
    be.write(a, data);
    be.write(b, data);
    return { a, b, c };
  });
  const rows = [];
  for (const layout of ['nn', 'nt', 'tn']) {
    const calls = backends.map((be, i) => () => be.gemm(layout, ptrs[i].c, ptrs[i].a, ptrs[i].b, n, n, n, false));
    calls.forEach((f) => f()); // warm up
    const [one, two] = await alternate(calls, GEMM_ROUNDS);
    const gflops = (s) => round((2 * n * n * n) / s / 1e9, 1);
    rows.push({ case: `gemm ${layout} 512^3`, '1 thread': `${gflops(one)} GFLOP/s`, '2 threads': `${gflops(two)} GFLOP/s`, speedup: round(one / two) });
  }
  backends.forEach((be) => be.dispose());
  return rows;
}

async function stepper(threads, bitlinear) {
  const backend = await createWasmBackend({ threads });
  const heap = new Heap(backend);
  const model = new GPT({ ...SHAPE, bitlinear }).materialize(heap, new Rng(1337));
  const opt = new AdamW(model.params, { lr: 1e-3, betas: [0.9, 0.99], weightDecay: 0.1, clipNorm: 1 });
  const rng = new Rng(7);
  const step = () => {
    const tokens = new Int32Array(B * T), targets = new Int32Array(B * T);
    for (let i = 0; i < B * T; i++) { tokens[i] = rng.int(65); targets[i] = rng.int(65); }
    return trainStep(heap, model, opt, { tokens, targets, B, T });
  };
  for (let i = 0; i < STEP_WARMUP; i++) await step();
  return { backend, step };
}

async function stepRows() {
  const rows = [];
  for (const bitlinear of [false, true]) {
    const runs = [await stepper(1, bitlinear), await stepper(2, bitlinear)];
    const [one, two] = await alternate(runs.map((r) => r.step), STEP_ROUNDS);
    runs.forEach((r) => r.backend.dispose());
    const tps = (s) => `${Math.round((B * T) / s)} tok/s (${round(s * 1000, 1)} ms)`;
    rows.push({ case: `train step ${bitlinear ? 'BitLinear' : 'fp'}`, '1 thread': tps(one), '2 threads': tps(two), speedup: round(one / two) });
  }
  return rows;
}

export async function run() {
  const rows = [...(await gemmRows()), ...(await stepRows())];
  return {
    unit: 'median of alternating 1- and 2-thread calls; speedup = t(1 thread) / t(2 threads)',
    rows,
    notes: ['targets on a 2-core machine: GEMM 512^3 >= 1.8x, training step >= 1.7x', 'results are bit-identical at every thread count (test/threads.test.ts)'],
  };
}
