// f32 GEMM GFLOP/s at the shapes a small GPT trains with, single-threaded:
//   wasm       build/kernels.wasm gemm_{nn,nt,tn} (assembly/gemm.ts), instantiated directly
//   tfjs-wasm  @tensorflow/tfjs-backend-wasm tf.matMul (XNNPACK, SIMD), setThreadsCount(1)
//   js         gemmReference (src/backend/js/gemm.ts, the js backend's GEMM) on a Float32Array,
//              imported from dist/ (npm run build:ts); skipped with a note when dist is missing
// Shapes are M×K×N: out (M,N), depth K. GFLOP/s = 2·M·N·K / median seconds per call / 1e9,
// all three measured in the same run. Layouts: nn = A·B, nt = A·Bᵀ, tn = Aᵀ·B (tfjs: matMul
// with transposeA / transposeB). BENCH_GEMM_LAYOUTS=nn,nt restricts the layouts.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import b from 'benny';
import { lcg, loadKernels } from './wasm-kernels.mjs';

const SHAPES = [[768, 128, 384], [768, 512, 128], [512, 512, 512]]; // M, K, N
const LAYOUTS = (process.env.BENCH_GEMM_LAYOUTS ?? 'nn,nt,tn').split(',');
const CASE_OPTIONS = { minSamples: 5, maxTime: 1 };
const JS_DIST = new URL('../dist/backend/js/gemm.js', import.meta.url);

async function loadTfjsWasm() {
  const tf = await import('@tensorflow/tfjs-core');
  const tfw = await import('@tensorflow/tfjs-backend-wasm');
  const require = createRequire(import.meta.url);
  tfw.setWasmPaths(dirname(require.resolve('@tensorflow/tfjs-backend-wasm')) + '/');
  tfw.setThreadsCount(1); // before setBackend: the backend reads it when it initialises
  if (!(await tf.setBackend('wasm'))) throw new Error('bench gemm: tf.setBackend("wasm") failed');
  await tf.ready();
  return { tf, threads: tfw.getThreadsCount(), version: tfw.version_wasm };
}

/** Calls `fn` for ~0.2 s (at least 3 times) so wasm tiers up to optimised code before timing. */
function warmUp(fn) {
  const t0 = performance.now();
  for (let i = 0; i < 3 || performance.now() - t0 < 200; i++) fn();
}

/** Throws unless the wasm result matches tfjs-wasm's (inputs in [-1, 1), so |error| << K·1e-4). */
function checkAgainstTfjs(layout, M, K, N, runWasm, wasmOut, tfjsOut) {
  runWasm();
  const got = wasmOut(), want = tfjsOut.dataSync();
  tfjsOut.dispose();
  let worst = 0;
  for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]));
  if (!(worst <= 1e-4 * K)) throw new Error(`bench gemm ${layout} ${M}×${K}×${N}: wasm and tfjs-wasm disagree, max |difference| ${worst} (kernel or benchmark bug)`);
}

/** Median GFLOP/s of a benny case result. */
const gflops = (flop, result) => (result ? flop / result.details.median / 1e9 : null);
const round = (x) => (x === null ? null : Math.round(x * 10) / 10);
const ratio = (x, y) => (x === null || y === null ? null : Math.round((x / y) * 100) / 100);

/** Runs the GEMM benchmark; returns `{ rows, cases, notes, ... }` for bench/run.mjs. */
export async function run() {
  const notes = [];
  const k = loadKernels();
  const { tf, threads, version } = await loadTfjsWasm();
  if (threads !== 1) notes.push(`tfjs-wasm reports ${threads} threads (wanted 1)`);
  let gemmReference = null;
  if (existsSync(JS_DIST)) ({ gemmReference } = await import(JS_DIST.href));
  else notes.push('js column skipped: dist/backend/js/gemm.js missing (run npm run build:ts)');
  notes.push('tfjs-wasm matMul with transposeA or transposeB (the nt and tn rows) runs far slower than without (about 2-4 GFLOP/s here, apparently outside XNNPACK); nn is the like-for-like kernel comparison.');
  notes.push('tfjs-wasm keeps its XNNPACK operator (B packed once) per B tensor, so its times exclude packing B (with a fresh B tensor per call, 512³ nn measured ~15% slower); the wasm kernels never pack.');

  const rows = [], cases = [];
  for (const [M, K, N] of SHAPES) {
    const flop = 2 * M * N * K;
    const rand = lcg(M * 31 + K * 7 + N);
    // wasm operands: A and B in the layout's storage order; sizes are the same for all layouts
    const pa = k.alloc(M * K, rand), pb = k.alloc(K * N, rand), pc = k.alloc(M * N);
    const f32 = k.f32();
    const aData = f32.slice(pa, pa + M * K), bData = f32.slice(pb, pb + K * N);
    const jsMem = gemmReference ? new Float32Array(M * K + K * N + M * N) : null;
    if (jsMem) { jsMem.set(aData, 0); jsMem.set(bData, M * K); }
    for (const layout of LAYOUTS) {
      const kernel = k.exports[`gemm_${layout}`];
      if (typeof kernel !== 'function') throw new Error(`bench gemm: kernels.wasm has no export gemm_${layout}`);
      const transA = layout === 'tn', transB = layout === 'nt';
      const ta = tf.tensor2d(aData, transA ? [K, M] : [M, K]);
      const tb = tf.tensor2d(bData, transB ? [N, K] : [K, N]);
      const impls = {
        wasm: () => { kernel(pc * 4, pa * 4, pb * 4, M, N, K, 0, 0, M); },
        'tfjs-wasm': () => { tf.matMul(ta, tb, transA, transB).dispose(); },
      };
      if (gemmReference) impls.js = () => { gemmReference(layout, jsMem, M * K + K * N, 0, M * K, M, N, K, false); };
      checkAgainstTfjs(layout, M, K, N, impls.wasm, () => k.f32().subarray(pc, pc + M * N), tf.matMul(ta, tb, transA, transB));
      const entries = Object.entries(impls).map(([name, fn]) => { warmUp(fn); return b.add(name, fn); });
      const summary = await b.suite(`gemm ${layout} ${M}x${K}x${N}`, ...entries, b.configure({ cases: CASE_OPTIONS }));
      ta.dispose(); tb.dispose();
      const byName = Object.fromEntries(summary.results.map((r) => [r.name, r]));
      const g = { wasm: gflops(flop, byName.wasm), tfjs: gflops(flop, byName['tfjs-wasm']), js: gflops(flop, byName.js) };
      rows.push({
        'shape M×K×N': `${M}×${K}×${N}`, layout,
        'wasm GFLOP/s': round(g.wasm), 'tfjs-wasm GFLOP/s': round(g.tfjs), 'js GFLOP/s': round(g.js),
        'wasm/tfjs': ratio(g.wasm, g.tfjs), 'wasm/js': ratio(g.wasm, g.js),
        // benny's relative margin of error, worst case of the row: large = a noisy neighbour
        'max ±%': Math.max(...summary.results.map((r) => r.margin)),
      });
      for (const r of summary.results) {
        cases.push({ shape: [M, K, N], layout, impl: r.name, medianSeconds: r.details.median, gflops: round(flop / r.details.median / 1e9), samples: r.samples, rmePercent: r.margin });
      }
    }
  }
  return { unit: 'GFLOP/s, median of benny samples, single thread', tfjsWasmVersion: version, rows, cases, notes };
}
