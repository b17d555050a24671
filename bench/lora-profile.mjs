// Where a LoRA step of bench/lora.bench.mjs goes: wall time per Backend method (GEMMs by layout and
// shape), summed over 2 steps after a warm-up, on the SmolLM2-135M shape (random weights, batch 4 x 256).
//   node bench/lora-profile.mjs [layers=4] [threads=1] [checkpointed blocks: 0 | N | all]   (RELAXED=0: plain SIMD kernels)
// Not part of `bench/run.mjs` (no .bench suffix): a diagnostic, its timings include the wrapper.
const lib = await import('../dist/index.js');
const { createWasmBackend, Heap, Rng, AdamW, PeftModel, resolveLoraConfig } = lib;
const layers = Number(process.argv[2] ?? 4), threads = Number(process.argv[3] ?? 1);
const gc = process.argv[4] === 'all' ? true : Number(process.argv[4] ?? 0);
const relaxedSimd = (globalThis.process?.env?.RELAXED ?? '1') !== '0'; // RELAXED=0: the plain SIMD kernels where relaxed SIMD exists
const backend = await createWasmBackend({ threads, maxSharedBytes: 4 * 2 ** 30 - 65536, relaxedSimd });
const times = new Map();
const proto = Object.getPrototypeOf(backend);
for (const name of Object.getOwnPropertyNames(proto)) {
  const f = backend[name];
  if (typeof f !== 'function' || name === 'constructor' || ['readSync','read','write','alloc','reserve'].includes(name)) continue;
  backend[name] = function (...a) {
    const t0 = performance.now(); const r = f.apply(this, a); const dt = performance.now() - t0;
    const key = name === 'gemm' ? `gemm ${a[0]} ${a[4]}x${a[5]}x${a[6]}` : name;
    const e = times.get(key) ?? { ms: 0, calls: 0 }; e.ms += dt; e.calls++; times.set(key, e); return r;
  };
}
const heap = new Heap(backend);
const rng = new Rng(1);
const lora = resolveLoraConfig({ r: 16, lora_alpha: 32, target_modules: 'all-linear' });
const cfg = { family: 'bitnet', vocabSize: 49152, contextLength: 256, layers, heads: 9, kvHeads: 3, dim: 576, hidden: 1536, tiedHead: true };
const peft = PeftModel.build({ model: { family: 'llama', config: cfg }, lora });
peft.materialize(heap, rng); peft.initBaseRandom(new Rng(2));
peft.base.gradientCheckpointing = gc;
const opt = new AdamW(peft.params, { lr: 1e-4, weightDecay: 0 });
const B = 4, T = 256;
const tokens = new Int32Array(B * T), targets = new Int32Array(B * T);
let stepMs = [];
for (let s = 0; s < 3; s++) {
  for (let i = 0; i < B * T; i++) { tokens[i] = rng.int(49152); targets[i] = rng.int(49152); }
  if (s === 1) times.clear();
  const t0 = performance.now();
  opt.zeroGrad();
  const { loss } = peft.forward(heap.indices(tokens, [B, T]), heap.indices(targets, [B, T]));
  loss.backward(); opt.step(); loss.itemSync(); heap.resetArena();
  if (s > 0) stepMs.push(performance.now() - t0);
}
const total = stepMs.reduce((a, b) => a + b, 0);
console.log(`relaxed SIMD ${backend.relaxedSimd} layers ${layers} threads ${threads} gc ${gc} step ms ${stepMs.map(x=>x.toFixed(0)).join(' ')} tok/s ${(B*T*stepMs.length/total*1000).toFixed(1)} rss ${(process.resourceUsage().maxRSS/1024).toFixed(0)} MB arena ${(4*heap.stats().arenaHighWater/2**20).toFixed(0)} MB static ${(4*heap.stats().staticElements/2**20).toFixed(0)} MB`);
const rows = [...times.entries()].sort((a, b) => b[1].ms - a[1].ms);
let acc = 0; for (const [, e] of rows) acc += e.ms;
console.log(`backend total ${(acc/2).toFixed(0)} ms/step`);
for (const [k, e] of rows.slice(0, 28)) console.log(`${(e.ms/2).toFixed(1).padStart(9)} ms ${(100*e.ms/acc).toFixed(1).padStart(5)}% ${String(e.calls/2).padStart(5)}  ${k}`);
backend.dispose();
