// BitLinear's packed kernels against the f32 GEMM they replace, single-threaded, same run:
//   forward  ternary_forward: int8 activations (M,K) x 2-bit packed ternary W (N,K), int32
//            accumulation, one rescale  vs  gemm_nt: out (M,N) = X (M,K) · W (N,K)ᵀ in f32
//   +quant   quantize_activations + ternary_forward (what a BitLinear forward runs per call)
//   dX       ternary_backward_dx: dX (M,K) += dY (M,N) · (Wq/sw) from the packed W
//            vs  gemm_nn: dX (M,K) += dY (M,N) · W (N,K) in f32
//   pack     absmean_scales + ternary_pack of W (once per optimizer step per weight)
// Shapes: the reference config (M = 768 = batch 12 x context 64; (K -> N) = 128 -> 384 (qkv),
// 128 -> 128 (attention proj), 128 -> 512 (MLP up), 512 -> 128 (MLP down)). GOP/s = 2·M·N·K /
// median seconds / 1e9, counting a multiply-add as two operations for both kernels.
import { lcg, loadKernels } from './wasm-kernels.mjs';

const M = 768;
const SHAPES = [[128, 384], [128, 128], [128, 512], [512, 128]]; // K, N
const ROUNDS = 31;

/** Calls `fn` for ~0.2 s (at least 3 times) so wasm tiers up to optimised code before timing. */
function warmUp(fn) {
  const t0 = performance.now();
  for (let i = 0; i < 3 || performance.now() - t0 < 200; i++) fn();
}

const round = (x, d = 1) => Math.round(x * 10 ** d) / 10 ** d;

/**
 * Median seconds per call of each named function. The functions are timed interleaved
 * (round r times every function once, as a batch of calls lasting ~2 ms), so that load from
 * other jobs on this shared machine hits all of them alike instead of whichever ran in a busy
 * second (benny runs its cases one after another: its ratios moved by up to 40% here).
 */
function medians(impls) {
  const names = Object.keys(impls);
  const batch = {};
  for (const name of names) {
    warmUp(impls[name]);
    const t0 = performance.now();
    impls[name]();
    batch[name] = Math.max(1, Math.ceil(2 / Math.max(performance.now() - t0, 1e-3)));
  }
  const samples = Object.fromEntries(names.map((n) => [n, []]));
  for (let r = 0; r < ROUNDS; r++) {
    for (const name of names) {
      const fn = impls[name], n = batch[name];
      const t0 = performance.now();
      for (let i = 0; i < n; i++) fn();
      samples[name].push((performance.now() - t0) / 1e3 / n);
    }
  }
  return Object.fromEntries(names.map((name) => {
    const v = samples[name].slice().sort((a, c) => a - c);
    return [name, { median: v[v.length >> 1], min: v[0], max: v[v.length - 1], samples: v.length, callsPerSample: batch[name] }];
  }));
}

/** Runs the ternary benchmark; returns `{ rows, cases, notes, ... }` for bench/run.mjs. */
export async function run() {
  const k = loadKernels();
  const E = k.exports;
  for (const name of ['ternary_forward', 'ternary_backward_dx', 'quantize_activations', 'ternary_pack', 'absmean_scales', 'ternary_dequantize', 'gemm_nt', 'gemm_nn']) {
    if (typeof E[name] !== 'function') throw new Error(`bench ternary: kernels.wasm has no export ${name} (rebuild: npx asc --config asconfig.json --target release)`);
  }
  const bytes = (n) => 4 * k.alloc(Math.ceil(n / 4)); // byte offset of n fresh bytes
  const rows = [], cases = [];
  for (const [K, N] of SHAPES) {
    const rand = lcg(K * 131 + N);
    const ops = 2 * M * N * K, K8 = (K + 7) & ~7, R = (N + 3) >> 2;
    const x = 4 * k.alloc(M * K, rand), w = 4 * k.alloc(N * K, () => 0.02 * rand()), dy = 4 * k.alloc(M * N, rand);
    const out = 4 * k.alloc(M * N), dx = 4 * k.alloc(M * K), wdq = 4 * k.alloc(N * K);
    const xq = bytes(M * K8), sx = bytes(4 * M), packed = bytes(R * K), sw = bytes(4);
    const scratch = bytes(Math.max(10 * K8, 64 * N));
    E.absmean_scales(sw, w, N * K, N * K, 0, 1);
    E.ternary_pack(packed, w, sw, N, K, N * K, 0, R);
    E.quantize_activations(xq, sx, x, M, K, 0, M);
    E.ternary_dequantize(wdq, packed, sw, N, K, N * K, 0, N);

    const t = medians({
      ternary_forward: () => E.ternary_forward(out, xq, sx, packed, sw, scratch, M, N, K, N * K, 0, M),
      gemm_nt: () => E.gemm_nt(out, x, w, M, N, K, 0, 0, M),
      quantize_activations: () => E.quantize_activations(xq, sx, x, M, K, 0, M),
      ternary_backward_dx: () => E.ternary_backward_dx(dx, dy, packed, sw, scratch, M, N, K, N * K, 0, M),
      gemm_nn: () => E.gemm_nn(dx, dy, wdq, M, K, N, 1, 0, M),
      pack: () => { E.absmean_scales(sw, w, N * K, N * K, 0, 1); E.ternary_pack(packed, w, sw, N, K, N * K, 0, R); },
    });
    const ms = (name) => t[name].median * 1e3;
    const gops = (name) => round(ops / t[name].median / 1e9);
    const fwdQ = t.ternary_forward.median + t.quantize_activations.median;
    rows.push({
      'shape M×K→N': `${M}×${K}→${N}`,
      'fwd ms': round(ms('ternary_forward'), 3), 'fwd GOP/s': gops('ternary_forward'),
      'gemm_nt ms': round(ms('gemm_nt'), 3), 'gemm_nt GFLOP/s': gops('gemm_nt'),
      'nt/fwd': round(t.gemm_nt.median / t.ternary_forward.median, 2),
      'nt/(fwd+quant)': round(t.gemm_nt.median / fwdQ, 2),
      'dX ms': round(ms('ternary_backward_dx'), 3), 'dX GFLOP/s': gops('ternary_backward_dx'),
      'gemm_nn ms': round(ms('gemm_nn'), 3), 'gemm_nn GFLOP/s': gops('gemm_nn'),
      'nn/dX': round(t.gemm_nn.median / t.ternary_backward_dx.median, 2),
      'pack ms': round(ms('pack'), 3),
    });
    for (const [impl, r] of Object.entries(t)) cases.push({ shape: [M, K, N], impl, ...r });
  }
  const notes = [
    'ratios > 1 mean the packed kernel is faster than the f32 GEMM; nt/(fwd+quant) charges the forward with quantising its activations too.',
    'ternary_forward decodes 4 rows of 2-bit weights at a time into an L1 scratch as int16 and runs a 2x4 tile of i32x4.dot_i16x8_s (int8 activations loaded with v128.load8x8_s); weights move as 2 bits from memory.',
    'the dX kernel is f32 arithmetic (dY is not quantised): every term is +-dY*inv or 0, so it is bound by the same f32 add/mul throughput as gemm_nn; it reads the packed weights and decodes a 16-column panel at a time.',
  ];
  return { unit: `median of ${ROUNDS} interleaved samples, single thread; GOP/s counts a multiply-add as 2`, M, rows, cases, notes };
}
