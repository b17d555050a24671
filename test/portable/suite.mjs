// The portable suite: one plain ES module that runs unmodified in Node, Deno, Bun and a browser.
// It touches no host API (no fs, no process, no DOM); the host passes in the library (the module
// namespace of dist/index.js) and the corpus text, and gets back one JSON-safe result:
//
//   checks     [{ name, ok, detail }]   kernels (wasm vs the js reference), finite-difference
//                                       gradients, ternary quantisation, 1 vs 2 threads
//   digests    { name: hex }            FNV-1a of the f32 bits of every wasm output and gradient,
//                                       to compare across runtimes bit for bit
//   training   { threads: { losses, seconds, stepsPerSecond } }
//                                       50 AdamW steps of a small char-level GPT from a fixed
//                                       seed; `losses` are the hex of each loss's f32 bits
//
// Everything numeric that feeds the losses comes from the integer PRNG and the wasm kernels, so
// the losses must agree to the bit in every runtime and at every thread count (DESIGN.md #6).

/** The training run: a 2-layer char-level BitNet GPT (BitLinear projections) on the bundled corpus (V = 65). */
export const TRAINING = Object.freeze({
  steps: 50,
  batch: 8,
  context: 64,
  model: { layers: 2, heads: 4, dim: 64, bitlinear: true },
  seed: 1337,
  dataSeed: 7,
  lr: 3e-3,
  warmup: 10,
});

/** `x` rounded to f32, as 8 hex digits of its bits ('3f800000' for 1). */
export function f32Hex(x) {
  const view = new DataView(new ArrayBuffer(4));
  view.setFloat32(0, x);
  return view.getUint32(0).toString(16).padStart(8, '0');
}

/** FNV-1a over the f32 bits of `values` (rounded to f32 first), as 8 hex digits. */
export function f32Digest(values) {
  const bytes = new Uint8Array(Float32Array.from(values).buffer);
  let h = 0x811c9dc5;
  for (let i = 0; i < bytes.length; i++) h = Math.imul(h ^ bytes[i], 0x01000193) >>> 0;
  return h.toString(16).padStart(8, '0');
}

/** Largest |a - b| over the largest |b| (at least 1): one relative error per tensor. */
function relError(a, b) {
  let err = 0;
  let scale = 1;
  for (let i = 0; i < b.length; i++) {
    err = Math.max(err, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return err / scale;
}

function normals(rng, n, std = 1) {
  const out = new Float64Array(n);
  rng.fillNormal(out, 0, std);
  return out;
}

/**
 * Each case builds an op's inputs (values, or `index` for token ids) and applies the op; the
 * suite runs it forward and backward on the wasm backend (f32) and the js reference (f64).
 */
function kernelCases(lib) {
  const { Rng, linear, layerNorm, gelu, attention, crossEntropy, embedding, bitLinear } = lib;
  const rng = new Rng(2024);
  const normWeight = normals(rng, 40);
  return [
    // the quantisers round the same on both backends in f32 (src/quant/README.md), so BitLinear
    // is compared with the f32 js reference; only the f32 GEMM's summation order differs
    { name: 'bitLinear (RMSNorm, int8 x ternary), x (2,7,40) W (24,40)', tol: 1e-5, reference: 'f32',
      inputs: [{ shape: [2, 7, 40], data: normals(rng, 2 * 7 * 40) }, { shape: [24, 40], data: normals(rng, 24 * 40, 0.05) }],
      op: (x, w) => bitLinear(x, w, null, { norm: true, normWeight: x.heap.fromArray(normWeight, [40]) }) },
    // odd sizes so the SIMD bodies and their scalar tails both run
    { name: 'linear (gemm nt + bias), x (3,13,45) W (29,45) b (29)', tol: 1e-5,
      inputs: [{ shape: [3, 13, 45], data: normals(rng, 3 * 13 * 45) }, { shape: [29, 45], data: normals(rng, 29 * 45, 0.2) }, { shape: [29], data: normals(rng, 29) }],
      op: (x, w, b) => linear(x, w, b) },
    { name: 'layerNorm, x (37,67) weight (67) bias (67)', tol: 1e-5,
      inputs: [{ shape: [37, 67], data: normals(rng, 37 * 67, 3) }, { shape: [67], data: normals(rng, 67) }, { shape: [67], data: normals(rng, 67) }],
      op: (x, w, b) => layerNorm(x, w, b) },
    { name: 'gelu, x (1031)', tol: 1e-5,
      inputs: [{ shape: [1031], data: normals(rng, 1031, 2) }],
      op: (x) => gelu(x) },
    { name: 'causal attention, qkv (2,11,3*24), 3 heads', tol: 1e-5,
      inputs: [{ shape: [2, 11, 72], data: normals(rng, 2 * 11 * 72) }],
      op: (qkv) => attention(qkv, 3) },
    { name: 'embedding, tokens (2,9) wte (17,12) wpe (9,12)', tol: 1e-6,
      inputs: [{ shape: [2, 9], index: Int32Array.from({ length: 18 }, (_, i) => (i * 7) % 17) }, { shape: [17, 12], data: normals(rng, 17 * 12) }, { shape: [9, 12], data: normals(rng, 9 * 12) }],
      op: (tok, wte, wpe) => embedding(tok, wte, wpe) },
    { name: 'crossEntropy, logits (23,65) targets (23)', tol: 1e-5,
      inputs: [{ shape: [23, 65], data: normals(rng, 23 * 65, 2) }, { shape: [23], index: Int32Array.from({ length: 23 }, (_, i) => (i * 11) % 65) }],
      op: (logits, targets) => crossEntropy(logits, targets) },
  ];
}

/** Forward and backward of `op` on `heap`, with `Σ out·R` as the loss: the output and each input's gradient. */
function runOp(lib, heap, c) {
  const { mul, sum, scale, Rng } = lib;
  const ts = c.inputs.map((inp) => ('index' in inp ? heap.indices(inp.index, inp.shape) : heap.fromArray(inp.data, inp.shape, { requiresGrad: true })));
  const out = c.op(...ts);
  const R = normals(new Rng(99), out.size);
  const loss = out.size === 1 ? scale(out, 1.7) : sum(mul(out, heap.fromArray(R, out.shape)));
  loss.backward();
  const result = { out: Float64Array.from(out.dataSync()), grads: ts.map((t) => (t.dtype === 'index' ? null : Float64Array.from(t.grad.dataSync()))) };
  heap.resetArena();
  return result;
}

/** The wasm kernels against the js reference (f64), each op forward and backward. */
function checkKernels(lib, wasm, checks, digests) {
  const js64 = new lib.Heap(new lib.JsBackend({ dtype: 'f64' }));
  const js32 = new lib.Heap(new lib.JsBackend({ dtype: 'f32' }));
  for (const c of kernelCases(lib)) {
    const got = runOp(lib, wasm, c);
    const want = runOp(lib, c.reference === 'f32' ? js32 : js64, c);
    const errors = [relError(got.out, want.out)];
    digests[`${c.name}: out`] = f32Digest(got.out);
    got.grads.forEach((g, k) => {
      if (!g) return;
      errors.push(relError(g, want.grads[k]));
      digests[`${c.name}: grad ${k}`] = f32Digest(g);
    });
    const worst = Math.max(...errors);
    checks.push({ name: `kernel ${c.name} matches the js reference`, ok: worst <= c.tol, detail: `max relative error ${worst.toExponential(2)} (tolerance ${c.tol})` });
  }
}

/**
 * Central finite differences (f64, js backend) of a scalar function of one input, on every
 * coordinate, against the tape's gradient. Returns the relative error.
 */
function finiteDifferenceError(lib, shape, data, lossOf) {
  const { Heap, JsBackend, noGrad } = lib;
  const heap = new Heap(new JsBackend({ dtype: 'f64' }));
  const x = heap.fromArray(data, shape, { requiresGrad: true });
  lossOf(heap, x).backward();
  const analytic = Float64Array.from(x.grad.dataSync());
  heap.resetArena();
  const h = 1e-5;
  const at = (values) => {
    const v = noGrad(() => lossOf(heap, heap.fromArray(values, shape)).itemSync());
    heap.resetArena();
    return v;
  };
  const numeric = new Float64Array(data.length);
  for (let j = 0; j < data.length; j++) {
    const plus = Float64Array.from(data);
    const minus = Float64Array.from(data);
    plus[j] += h;
    minus[j] -= h;
    numeric[j] = (at(plus) - at(minus)) / (2 * h);
  }
  return relError(analytic, numeric);
}

function checkGradients(lib, checks) {
  const { Rng, layerNorm, gelu, linear, crossEntropy, attention, mul, sum } = lib;
  const rng = new Rng(5);
  // a block's MLP path into a loss: x (4,6) → layerNorm → gelu → linear W (7,6) → crossEntropy
  const w = normals(rng, 6), b = normals(rng, 6), W = normals(rng, 42, 0.5);
  const targets = Int32Array.from([1, 6, 0, 3]);
  const mlpErr = finiteDifferenceError(lib, [4, 6], normals(rng, 24), (heap, x) =>
    crossEntropy(linear(gelu(layerNorm(x, heap.fromArray(w, [6]), heap.fromArray(b, [6]))), heap.fromArray(W, [7, 6])), heap.indices(targets, [4])));
  checks.push({ name: 'gradient of crossEntropy(linear(gelu(layerNorm(x)))) matches finite differences', ok: mlpErr < 1e-6, detail: `relative error ${mlpErr.toExponential(2)} (tolerance 1e-6)` });
  // causal attention, 2 heads: qkv (1,5,12)
  const R = normals(rng, 20);
  const attErr = finiteDifferenceError(lib, [1, 5, 12], normals(rng, 60), (heap, qkv) => sum(mul(attention(qkv, 2), heap.fromArray(R, [1, 5, 4]))));
  checks.push({ name: 'gradient of causal attention (2 heads) matches finite differences', ok: attErr < 1e-6, detail: `relative error ${attErr.toExponential(2)} (tolerance 1e-6)` });
}

/** Ternary quantisation of BitLinear weights (absmean, round half to even, I2 packing). */
function checkTernary(lib, checks, digests) {
  const { Rng, quantizeTernaryWeights, unpackTernaryI2 } = lib;
  const N = 24, K = 40;
  const w = new Float32Array(N * K);
  new Rng(11).fillNormal(w, 0, 0.05);
  const { packed, scales } = quantizeTernaryWeights(w, N, K);
  let absSum = 0;
  for (const v of w) absSum += Math.abs(v);
  const scale = Math.fround(1 / (absSum / w.length));
  const codes = unpackTernaryI2(packed, N, K);
  let mismatches = 0;
  for (let i = 0; i < w.length; i++) {
    const x = Math.fround(w[i] * scales[0]);
    // round half to even, then clamp to [-1, 1]
    let r = Math.round(x);
    if (Math.abs(x % 1) === 0.5 && r % 2 !== 0) r -= 1;
    if (codes[i] !== Math.max(-1, Math.min(1, r))) mismatches++;
  }
  const scaleErr = Math.abs(scales[0] - scale) / scale;
  digests['ternary: scales'] = f32Digest(scales);
  digests['ternary: codes'] = f32Digest(codes);
  checks.push({
    name: 'ternary weights: absmean scale, codes in {-1,0,1} by round-half-even, 2-bit packing round-trips',
    ok: scaleErr < 1e-6 && mismatches === 0,
    detail: `scale ${scales[0]} vs ${scale}, ${mismatches} code mismatches of ${w.length}`,
  });
}

/** 50 training steps on the wasm backend with `threads` threads; losses as f32 hex. */
async function trainRun(lib, corpus, threads) {
  const { createWasmBackend, Heap, GPT, AdamW, Rng, TextDataset, trainStep } = lib;
  const T = TRAINING;
  const dataset = TextDataset.fromText(corpus, { tokenizer: 'char', valFraction: 0.1 });
  const backend = await createWasmBackend({ threads });
  try {
    const heap = new Heap(backend);
    const model = new GPT({ vocabSize: dataset.tokenizer.vocabSize, contextLength: T.context, ...T.model }).materialize(heap, new Rng(T.seed));
    const opt = new AdamW(model.params, { lr: T.lr, betas: [0.9, 0.95], weightDecay: 0.1, clipNorm: 1 });
    const data = new Rng(T.dataSeed);
    const losses = [];
    const t0 = performance.now();
    for (let step = 0; step < T.steps; step++) {
      opt.lr = T.lr * Math.min(1, (step + 1) / T.warmup);
      const { inputs, targets } = dataset.sampleBatch('train', T.batch, T.context, data);
      losses.push(await trainStep(heap, model, opt, { tokens: inputs, targets, B: T.batch, T: T.context }));
    }
    const seconds = (performance.now() - t0) / 1000;
    const params = await model.params.exportValues();
    const weights = [];
    for (const v of params.values()) weights.push(...v);
    return {
      threads: backend.threads,
      vocabSize: dataset.tokenizer.vocabSize,
      losses: losses.map(f32Hex),
      first: losses[0],
      last: losses[losses.length - 1],
      weightsDigest: f32Digest(weights),
      seconds,
      stepsPerSecond: T.steps / seconds,
    };
  } finally {
    backend.dispose();
  }
}

/**
 * Run everything. `lib` is `await import('.../dist/index.js')`; `corpus` the text of
 * examples/data/tinyshakespeare.txt; `threadCounts` the wasm thread counts to train at.
 * @param {any} lib
 * @param {{ corpus: string, threadCounts?: number[], log?: (message: string) => void }} options
 */
export async function runPortableSuite(lib, { corpus, threadCounts = [1, 2], log = () => {} }) {
  const checks = [];
  const digests = {};
  const wasmBackend = await lib.createWasmBackend({ threads: 1 });
  try {
    checkKernels(lib, new lib.Heap(wasmBackend), checks, digests);
  } finally {
    wasmBackend.dispose();
  }
  log(`kernels: ${checks.filter((c) => c.ok).length}/${checks.length} ok`);
  checkGradients(lib, checks);
  checkTernary(lib, checks, digests);
  const training = {};
  for (const threads of threadCounts) {
    const run = await trainRun(lib, corpus, threads);
    training[threads] = run;
    log(`training, ${threads} thread(s): loss ${run.first.toFixed(4)} -> ${run.last.toFixed(4)}, ${run.stepsPerSecond.toFixed(1)} steps/s`);
    checks.push({ name: `training at ${threads} thread(s) runs on ${threads} thread(s)`, ok: run.threads === threads, detail: `backend reports ${run.threads}` });
    checks.push({ name: `training at ${threads} thread(s): the loss falls from ln 65 over ${TRAINING.steps} steps`, ok: run.first > 3.9 && run.last < run.first - 0.8, detail: `${run.first} -> ${run.last}` });
  }
  const [a, ...rest] = threadCounts;
  for (const b of rest) {
    const same = training[a].losses.join() === training[b].losses.join() && training[a].weightsDigest === training[b].weightsDigest;
    checks.push({ name: `training: losses and weights are bit-identical at ${a} and ${b} threads`, ok: same, detail: same ? 'identical' : `${training[a].losses.join(' ')} vs ${training[b].losses.join(' ')}` });
  }
  return { ok: checks.every((c) => c.ok), checks, digests, training };
}
