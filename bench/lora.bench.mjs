// LoRA on a SmolLM2-135M-shaped BitNet (issue 11's memory and speed targets): 30 layers, hidden
// 576, 9 heads, 3 kv heads, intermediate 1536, vocab 49152, tied embeddings, random weights;
// batch 4 × context 256. Each mode runs in a child process of its own (wasm memory only grows,
// so peak RSS is per process):
//   lora        LoRA r 16 on all projections, frozen packed ternary base
//   lora-gc     the same with gradient checkpointing (activations recomputed per block)
//   lora-gcN    the same with only the first N blocks checkpointed (N = --partial, default a third
//               of the layers)
//   full        full fine-tuning of the same BitNet (f32 latents, gradients, AdamW m and v)
//   full-gc     the same with gradient checkpointing
//   qlora       QLoRA r 16 on a full-precision model of the same shape, NF4 base (+ checkpointing)
//   fp-full-gc  full fine-tuning of that full-precision model (+ checkpointing): QLoRA's reference
// At 30 layers `full` needs more than the 4 GiB a wasm32 memory addresses (its row says so); the
// memory ratios are then taken like for like, checkpointed against checkpointed.
// `node bench/run.mjs lora [--layers N] [--steps S] [--threads T] [--partial N] [--torch]` prints, last, one JSON line
// {"bench":"lora-w2","tokens_per_s","peak_rss_mb","full_ft_peak_rss_mb","qlora_peak_rss_mb",...}.
// --torch also runs bench/lora-torch.py (the same step in PyTorch; needs python3 with torch:
// $PYTHON, default python3) with the same layers and threads, for a ratio measured in the same run.
// Measured: steps after one warm-up step, median step time; peak RSS = getrusage maxrss.
import { spawnSync } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';

const self = fileURLToPath(import.meta.url);
const flag = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1] : dflt;
};

const smol = (layers, bitnet) => ({
  family: bitnet ? 'bitnet' : 'llama', vocabSize: 49152, contextLength: 256, layers, heads: 9, kvHeads: 3, dim: 576, hidden: 1536, tiedHead: true,
  ...(bitnet ? {} : { act: 'silu' }),
});

async function child(mode, layers, steps, threads) {
  const lib = await import('../dist/index.js');
  const { createWasmBackend, Heap, Rng, AdamW, LlamaModel, PeftModel, resolveLoraConfig, nf4BaseFactory } = lib;
  // the whole 4 GiB a wasm32 memory can address (a shared memory reserves its maximum up front)
  const backend = await createWasmBackend({ threads, maxSharedBytes: 4 * 2 ** 30 - 65536 });
  const heap = new Heap(backend);
  const rng = new Rng(1);
  let model;
  let params;
  let counts;
  const lora = resolveLoraConfig({ r: 16, lora_alpha: 32, target_modules: 'all-linear' });
  if (mode === 'full' || mode === 'full-gc' || mode === 'fp-full-gc') {
    model = new LlamaModel(smol(layers, mode !== 'fp-full-gc')).materialize(heap, rng);
    if (mode !== 'full') model.gradientCheckpointing = true;
    params = model.params;
    counts = { trainable: params.count, total: params.count };
  } else {
    const qlora = mode === 'qlora';
    const peft = PeftModel.build({ model: { family: 'llama', config: smol(layers, !qlora) }, lora, ...(qlora ? { quantizedBase: { kind: 'nf4', create: nf4BaseFactory } } : {}) });
    peft.materialize(heap, rng);
    peft.initBaseRandom(new Rng(2));
    if (mode === 'lora-gc' || qlora) peft.base.gradientCheckpointing = true;
    const partial = /^lora-gc(\d+)$/.exec(mode);
    if (partial) peft.base.gradientCheckpointing = Number(partial[1]);
    model = peft;
    params = peft.params;
    counts = peft.parameterCounts();
  }
  const opt = new AdamW(params, { lr: 1e-4, weightDecay: 0 });
  const B = 4;
  const T = 256;
  const tokens = new Int32Array(B * T);
  const targets = new Int32Array(B * T);
  const times = [];
  for (let s = 0; s <= steps; s++) {
    for (let i = 0; i < B * T; i++) {
      tokens[i] = rng.int(49152);
      targets[i] = rng.int(49152);
    }
    const t0 = performance.now();
    opt.zeroGrad();
    const { loss } = model.forward(heap.indices(tokens, [B, T]), heap.indices(targets, [B, T]));
    loss.backward();
    opt.step();
    loss.itemSync();
    heap.resetArena();
    if (s > 0) times.push((performance.now() - t0) / 1000);
  }
  times.sort((a, b) => a - b);
  const median = times[times.length >> 1];
  const stats = heap.stats();
  const out = {
    mode, layers, threads, steps, step_s: median, tokens_per_s: (B * T) / median,
    peak_rss_mb: process.resourceUsage().maxRSS / 1024, arena_mb: (4 * stats.arenaHighWater) / 2 ** 20, static_mb: (4 * stats.staticElements) / 2 ** 20,
    trainable: counts.trainable, total: counts.total, trainable_pct: (100 * counts.trainable) / counts.total,
  };
  backend.dispose();
  console.log(JSON.stringify(out));
}

function runChild(mode, layers, steps, threads) {
  const r = spawnSync(process.execPath, [self, '--child', mode, '--layers', String(layers), '--steps', String(steps), '--threads', String(threads)], { encoding: 'utf8', maxBuffer: 1 << 24 });
  const line = r.stdout.trim().split('\n').filter((l) => l.startsWith('{')).pop();
  if (r.status !== 0 || !line) {
    const lines = (r.stderr || r.stdout).trim().split('\n');
    const message = lines.find((l) => /^\w*Error: /.test(l)) ?? lines.slice(-3).join(' | ');
    const need = /need (\d+) bytes, more than the 4 GiB/.exec(message);
    return { mode, layers, threads, error: need ? `does not fit: needs ${(Number(need[1]) / 2 ** 20).toFixed(0)} MB of wasm memory, more than wasm32's 4 GiB` : message.slice(0, 240) };
  }
  return JSON.parse(line);
}

function runTorch(layers, steps, threads) {
  const python = process.env.PYTHON ?? 'python3';
  const script = fileURLToPath(new URL('./lora-torch.py', import.meta.url));
  const r = spawnSync(python, [script, '--layers', String(layers), '--steps', String(steps), '--threads', String(threads)], { encoding: 'utf8', maxBuffer: 1 << 24 });
  const line = (r.stdout ?? '').trim().split('\n').filter((l) => l.startsWith('{')).pop();
  if (r.status !== 0 || !line) return { mode: 'torch', error: `${python} bench/lora-torch.py failed (needs torch; set PYTHON): ${(r.stderr || String(r.error ?? '')).trim().split('\n').slice(-1)[0]}` };
  return { mode: 'torch', ...JSON.parse(line) };
}

export async function run() {
  const layers = Number(flag('layers', 30));
  const steps = Number(flag('steps', 3));
  const threads = Number(flag('threads', 2));
  const partial = Number(flag('partial', Math.round(layers / 3)));
  const rows = ['lora', 'lora-gc', `lora-gc${partial}`, 'full', 'full-gc', 'qlora', 'fp-full-gc'].map((m) => runChild(m, layers, steps, threads));
  if (process.argv.includes('--torch')) rows.push(runTorch(layers, steps, threads));
  const by = Object.fromEntries(rows.map((r) => [r.mode, r]));
  const ok = (m) => (by[m] && !by[m].error ? by[m] : null);
  // like for like: without checkpointing where both fit, else both checkpointed
  const [loraRow, fullRow] = ok('lora') && ok('full') ? [ok('lora'), ok('full')] : [ok('lora-gc'), ok('full-gc')];
  const speedRow = ok('lora') ?? ok(`lora-gc${partial}`) ?? ok('lora-gc');
  const notes = [
    `SmolLM2-135M shape with ${layers} layers, batch 4 x 256, ${threads} threads, median of ${steps} steps after one warm-up`,
    'the issue\'s PyTorch reference (same LoRA step, frozen pre-quantised ternary base, fake-quantised activations, AdamW on the adapters): 89 tokens/s at 2 threads, 8.3 GB peak',
  ];
  for (const r of rows) if (r.error) notes.push(`${r.mode}: ${r.error}`);
  if (loraRow && fullRow) notes.push(`${loraRow.mode}: peak RSS ${(100 * loraRow.peak_rss_mb / fullRow.peak_rss_mb).toFixed(1)} % of ${fullRow.mode}'s; trainable ${loraRow.trainable_pct.toFixed(2)} %`);
  if (ok('qlora') && ok('fp-full-gc')) notes.push(`qlora: peak RSS ${(100 * ok('qlora').peak_rss_mb / ok('fp-full-gc').peak_rss_mb).toFixed(1)} % of fp-full-gc's`);
  if (speedRow) notes.push(`${speedRow.mode}: ${(speedRow.tokens_per_s / 89).toFixed(2)}x the issue's 89 tokens/s`);
  if (speedRow && ok('torch')) notes.push(`${speedRow.mode}: ${(speedRow.tokens_per_s / ok('torch').tokens_per_s).toFixed(2)}x PyTorch ${ok('torch').torch} measured in this run (${ok('torch').tokens_per_s.toFixed(1)} tokens/s, peak ${ok('torch').peak_rss_mb.toFixed(0)} MB)`);
  const json = {
    bench: 'lora-w2', tokens_per_s: speedRow?.tokens_per_s ?? null, peak_rss_mb: loraRow?.peak_rss_mb ?? null, full_ft_peak_rss_mb: fullRow?.peak_rss_mb ?? null,
    qlora_peak_rss_mb: ok('qlora')?.peak_rss_mb ?? null, lora_mode: loraRow?.mode ?? null, full_ft_mode: fullRow?.mode ?? null, speed_mode: speedRow?.mode ?? null,
    fp_full_ft_peak_rss_mb: ok('fp-full-gc')?.peak_rss_mb ?? null, torch_tokens_per_s: ok('torch')?.tokens_per_s ?? null, layers, threads,
  };
  return { layers, threads, rows, notes, jsonLine: JSON.stringify(json) };
}

if (process.argv[1] && pathToFileURL(process.argv[1]).href === import.meta.url && process.argv.includes('--child')) {
  await child(flag('child'), Number(flag('layers', 30)), Number(flag('steps', 3)), Number(flag('threads', 2)));
}
