// The webgpu backend (gpu/) next to the wasm backend, in the same run: an f32 GEMM (GFLOP/s, each
// layout), the packed int8 x ternary forward (GOP/s, 2 ops per weight), and training tokens/s of
// the reference configuration (4 layers, 4 heads, dim 128, context 64, batch 12, vocab 65,
// BitLinear). Prints the adapter. On a CPU adapter (SwiftShader, lavapipe) these figures say the
// backend works, not that it is fast: the same CPU runs the wasm kernels much faster.
// Needs dist/ (npm run build) and an adapter (Node: the `webgpu` package and a Vulkan driver;
// VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json is used when unset and present).
//   node bench/run.mjs webgpu          (WEBGPU_BENCH_ROUNDS=N, WEBGPU_BENCH_STEP_ROUNDS=N, WEBGPU_BENCH_GEMM=n)
import { existsSync } from 'node:fs';
import { AdamW, GPT, Heap, Rng, createBackend, trainStep } from '../dist/index.js';

const SWIFTSHADER = '/usr/lib/chromium/vk_swiftshader_icd.json';
if (!process.env.VK_ICD_FILENAMES && existsSync(SWIFTSHADER)) process.env.VK_ICD_FILENAMES = SWIFTSHADER;

const ROUNDS = Number(process.env.WEBGPU_BENCH_ROUNDS ?? 5);
/** Training steps are slow on CPU adapters (minutes on SwiftShader): fewer rounds. */
const STEP_ROUNDS = Number(process.env.WEBGPU_BENCH_STEP_ROUNDS ?? 2);
const GEMM_N = Number(process.env.WEBGPU_BENCH_GEMM ?? 256);
const TERNARY = { M: 768, N: 384, K: 128 }; // a (B*T, 3C) x (3C, C) projection of the reference model
const SHAPE = { vocabSize: 65, contextLength: 64, layers: 4, heads: 4, dim: 128, norm: 'layer', mlp: 'gelu', bias: false, tiedHead: false, bitlinear: true };
const B = 12, T = 64;

const median = (v) => v.slice().sort((a, b) => a - b)[v.length >> 1];
const round = (x, d = 2) => Math.round(x * 10 ** d) / 10 ** d;

/** Median seconds of `fn` (awaited; `sync` waits for the device) over ROUNDS after one warm-up. */
async function time(fn, sync, rounds = ROUNDS) {
  await fn();
  await sync();
  const s = [];
  for (let r = 0; r < rounds; r++) {
    const t0 = performance.now();
    await fn();
    await sync();
    s.push((performance.now() - t0) / 1000);
  }
  return median(s);
}

const syncOf = (be) => () => (typeof be.finish === 'function' ? be.finish() : undefined);

function gemmCase(be, n, layout) {
  const a = be.base, b = a + n * n, c = b + n * n;
  be.reserve(c + n * n);
  const data = new Float32Array(n * n);
  new Rng(3).fillNormal(data);
  be.write(a, data);
  be.write(b, data);
  return () => be.gemm(layout, c, a, b, n, n, n, false);
}

function ternaryCase(be) {
  const { M, N, K } = TERNARY;
  const w = be.base, s = w + N * K, packed = s + 1, x = packed + be.byteSlots(Math.ceil(N / 4) * K);
  const xq = x + M * K, sx = xq + be.byteSlots(M * K), out = sx + M;
  const scratch = out + M * N;
  be.reserve(scratch + be.ternaryScratchSlots('forward', N, K));
  const rng = new Rng(5);
  const wd = new Float32Array(N * K); rng.fillNormal(wd);
  const xd = new Float32Array(M * K); rng.fillNormal(xd);
  be.write(w, wd);
  be.write(x, xd);
  be.absmeanScales(s, w, N * K, N * K);
  be.ternaryPack(packed, w, s, N, K, N * K);
  be.quantizeActivations(xq, sx, x, M, K);
  return () => be.ternaryForward(out, xq, sx, packed, s, scratch, M, N, K, N * K);
}

async function stepCase(be) {
  const heap = new Heap(be);
  const model = new GPT(SHAPE).materialize(heap, new Rng(1));
  const opt = new AdamW(model.params, { lr: 3e-3, betas: [0.9, 0.95], weightDecay: 0.1, clipNorm: 1 });
  const rng = new Rng(2);
  const tokens = new Int32Array(B * T), targets = new Int32Array(B * T);
  return async () => {
    for (let i = 0; i < B * T; i++) { tokens[i] = rng.int(65); targets[i] = rng.int(65); }
    await trainStep(heap, model, opt, { tokens, targets, B, T });
  };
}

export async function run() {
  const wasm = await createBackend('wasm', { threads: 1 });
  let gpu;
  try {
    gpu = await createBackend('webgpu');
  } catch (e) {
    return { adapter: 'none', rows: [], notes: [`no webgpu adapter: ${e.message}`] };
  }
  const rows = [];
  const pair = async (name, work, unit, make, rounds = ROUNDS) => {
    const w = await time(await make(wasm), syncOf(wasm), rounds);
    const g = await time(await make(gpu), syncOf(gpu), rounds);
    rows.push({ case: name, [`wasm ${unit}`]: round(work / w, 2), [`webgpu ${unit}`]: round(work / g, 2), 'webgpu / wasm': round(w / g, 3), 'webgpu ms': round(g * 1000, 1) });
  };
  for (const layout of ['nn', 'nt', 'tn']) await pair(`gemm ${layout} ${GEMM_N}^3`, (2 * GEMM_N ** 3) / 1e9, 'GFLOP/s', (be) => gemmCase(be, GEMM_N, layout));
  const { M, N, K } = TERNARY;
  await pair(`ternary forward ${M}x${N}x${K}`, (2 * M * N * K) / 1e9, 'GOP/s', ternaryCase);
  await pair('train step, reference config (BitLinear)', B * T, 'tok/s', stepCase, STEP_ROUNDS);
  const adapter = gpu.adapter;
  const packedDot = gpu.packedDot;
  gpu.dispose();
  wasm.dispose();
  return {
    adapter,
    packedDot,
    unit: `median of ${ROUNDS} rounds (training: ${STEP_ROUNDS}) after a warm-up, each backend in the same process; wasm at 1 thread`,
    rows,
    notes: [
      'on a CPU adapter (SwiftShader) these numbers show the webgpu backend is functional, not fast',
      'targets on a real GPU: training tokens/s >= 5x the 2-thread wasm figure, GEMM >= 50% of the adapter f32 peak',
    ],
  };
}
