// The fine-tuning quality targets of issue 11, over paired seeds:
//   base: the CLI's default model trained 2,000 steps on tinyshakespeare (--from), and the FP
//   baseline (--from-fp, for QLoRA); fine-tune 800 steps on kjv-excerpt.txt (last 10 % held out).
//   arms: full fine-tuning (X0 → Xf), LoRA r 16 on all projections (standard and
//   quantisation-aware; merged val loss of both), QLoRA r 16 on the FP base vs its full fine-tuning.
// Val loss: the trainer's fixed evaluation batches (--eval-iters of them) of the held-out 10 %.
//
//   npx bitnet-train train --iters 2000 --out runs/base          (and --fp --out runs/base-fp)
//   node examples/finetune-targets.mjs --from runs/base --from-fp runs/base-fp --seeds 1,2,3 --threads 1
//
// Writes <out>/results.json after every arm and prints a summary. Characters of the corpus the
// Shakespeare vocabulary lacks ('(' and ')') are dropped (the --unknown-chars drop of the CLI).
import { mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';

const args = Object.fromEntries(process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith('--') ? [...acc, [a.slice(2), all[i + 1]?.startsWith('--') || all[i + 1] === undefined ? 'true' : all[i + 1]]] : acc), []));
const lib = await import(args.dist ?? '../dist/index.js');
const { runFinetune, runTraining, DEFAULT_FINETUNE_OPTIONS, loadSourceCheckpointForEval, mergeAdapter, loadAdapter, createModel, Heap, Rng, TextDataset, createBackend, noGrad, getDefaultFileSystem, cleanCorpus, loadCheckpoint, resolveCheckpointDir, tokenizerFromJSON, PeftModel, buildPeftModel } = lib;

const from = args.from ?? 'runs/base';
const fromFp = args['from-fp'] ?? null;
const data = args.data ?? '../shared/data/kjv-excerpt.txt';
const seeds = (args.seeds ?? '1,2,3').split(',').map(Number);
const iters = Number(args.iters ?? 800);
const out = args.out ?? 'runs/finetune-targets';
const threads = Number(args.threads ?? 1);
const evalIters = Number(args['eval-iters'] ?? 50);
const arms = (args.arms ?? 'full,lora,lora-qa,fp-full,qlora').split(',');
const lrFull = Number(args['lr-full'] ?? 1e-3);
const lrLora = Number(args['lr-lora'] ?? 3e-3);
const lrAdalora = Number(args['lr-adalora'] ?? lrLora);
const adaloraAlpha = Number(args['adalora-alpha'] ?? 32);
mkdirSync(out, { recursive: true });
const fs = await getDefaultFileSystem();

async function base(dir) {
  const ckpt = await loadCheckpoint(fs, await resolveCheckpointDir(fs, dir));
  const tokenizer = tokenizerFromJSON(ckpt.trainer.tokenizer);
  const model = ckpt.trainer.config.model;
  return { dir: ckpt.dir, ckpt, tokenizer, model, run: ckpt.trainer.config.run ?? {} };
}

// the corpus without the characters the base vocabulary lacks, written once per base
function cleaned(b, tag) {
  const path = join(out, `kjv-${tag}.txt`);
  if (!existsSync(path)) writeFileSync(path, cleanCorpus(b.tokenizer, readFileSync(data, 'utf8'), 'drop', data).text);
  return path;
}

// val loss of a plain model (the base, or a merged one) on the trainer's fixed evaluation batches
async function valLoss(b, tensors, path, seed) {
  const dataset = TextDataset.fromText(readFileSync(path, 'utf8'), { tokenizer: b.tokenizer, valFraction: 0.1 });
  const backend = await createBackend('wasm', { threads });
  try {
    const heap = new Heap(backend);
    const model = createModel(b.model).materialize(heap, new Rng(0));
    model.params.importValues(new Map([...tensors].map(([k, v]) => [k, v.data])));
    const B = b.run.batch ?? 12;
    const T = b.model.contextLength;
    const rng = new Rng(seed + 7919);
    const draw = (split) => Array.from({ length: evalIters }, () => dataset.sampleBatch(split, B, T, rng));
    draw('train');
    let sum = 0;
    for (const batch of draw('val')) {
      sum += noGrad(() => model.forward(heap.indices(batch.inputs, [B, T]), heap.indices(batch.targets, [B, T])).loss).itemSync();
      heap.resetArena();
    }
    return sum / evalIters;
  } finally {
    backend.dispose();
  }
}

const tensorsOf = (ckpt) => new Map([...ckpt.model].map(([k, t]) => [k, { shape: t.shape, data: t.data }]));
const resultsPath = join(out, 'results.json');
const results = existsSync(resultsPath) ? JSON.parse(readFileSync(resultsPath, 'utf8')) : [];
const save = () => writeFileSync(resultsPath, JSON.stringify(results, null, 1));
const done = (arm, seed) => results.some((r) => r.arm === arm && r.seed === seed);

const bases = { ternary: await base(from), ...(fromFp ? { fp: await base(fromFp) } : {}) };
for (const seed of seeds) {
  for (const arm of arms) {
    if (done(arm, seed)) continue;
    const b = arm.startsWith('fp') || arm === 'qlora' ? bases.fp : bases.ternary;
    if (!b) continue;
    const path = cleaned(b, b === bases.fp ? 'fp' : 'ternary');
    const dir = join(out, `${arm}-s${seed}`);
    const t0 = Date.now();
    const row = { arm, seed };
    if (arm === 'full' || arm === 'fp-full') {
      const r = await runTraining({ from: b.dir, data: path, iters, lr: lrFull, warmup: Math.min(50, iters), minLr: 1e-5, weightDecay: 0, seed, evalIters, evalEvery: iters,
        threads, out: dir, sampleTokens: 0, errorEvery: 0, saveEvery: 0, valFraction: 0.1 });
      row.val = r.lastEval.valLoss;
    } else {
      // AdaLoRA at LoRA r 16's final budget: 24 triplets a projection shrinking to 16 (PEFT's schedule; ~10 % warm-up, last 20 % fixed)
      const lora = arm === 'adalora'
        ? { init_r: 24, target_r: 16, lora_alpha: adaloraAlpha, target_modules: 'all-linear', tinit: Math.round(iters / 10), tfinal: Math.round(iters / 5), deltaT: 10 }
        : { r: 16, lora_alpha: 32, target_modules: 'all-linear', ...(arm === 'lora-qa' ? { quant_aware: true } : {}) };
      const peft = arm === 'qlora' ? 'qlora' : arm === 'adalora' ? 'adalora' : 'lora';
      const r = await runFinetune({ ...DEFAULT_FINETUNE_OPTIONS, from: b.dir, data: path, out: dir, peft, lora, iters, lr: arm === 'adalora' ? lrAdalora : lrLora, warmup: Math.min(50, iters), seed, evalIters, evalEvery: iters, threads });
      row.val = r.lastEval.valLoss;
      if (arm === 'lora' || arm === 'lora-qa') {
        const adapter = await loadAdapter(fs, r.adapterDir);
        const merged = mergeAdapter(tensorsOf(b.ckpt), adapter.tensors, adapter.config, true);
        row.mergedVal = await valLoss(b, merged.tensors, path, seed);
        row.meanFlipFraction = merged.projections.reduce((s, p) => s + p.flipFraction, 0) / merged.projections.length;
      }
    }
    if (!results.some((x) => x.arm === 'base' && x.seed === seed && x.base === (b === bases.fp ? 'fp' : 'ternary'))) {
      results.push({ arm: 'base', base: b === bases.fp ? 'fp' : 'ternary', seed, val: await valLoss(b, tensorsOf(b.ckpt), path, seed) });
    }
    row.seconds = (Date.now() - t0) / 1000;
    results.push(row);
    save();
    console.log(JSON.stringify(row));
  }
}

// summary: recovery of the full fine-tuning improvement, paired by seed
const val = (arm, seed, key = 'val') => results.find((r) => r.arm === arm && r.seed === seed)?.[key];
const x0 = (seed, baseKind) => results.find((r) => r.arm === 'base' && r.seed === seed && r.base === baseKind)?.val;
const stats = (xs) => {
  const m = xs.reduce((a, b) => a + b, 0) / xs.length;
  const sd = Math.sqrt(xs.reduce((a, b) => a + (b - m) ** 2, 0) / Math.max(1, xs.length - 1));
  return `${m.toFixed(4)} ± ${sd.toFixed(4)} (n=${xs.length})`;
};
for (const [arm, ref, baseKind, key] of [['adalora', 'full', 'ternary', 'val'], ['adalora', 'lora', 'ternary', 'val'], ['lora', 'full', 'ternary', 'val'], ['lora', 'full', 'ternary', 'mergedVal'], ['lora-qa', 'full', 'ternary', 'val'], ['lora-qa', 'full', 'ternary', 'mergedVal'], ['qlora', 'fp-full', 'fp', 'val']]) {
  const rec = [];
  const diff = [];
  for (const s of seeds) {
    const a = val(arm, s, key);
    const f = val(ref, s);
    const z = x0(s, baseKind);
    if (a === undefined || f === undefined || z === undefined) continue;
    rec.push((z - a) / (z - f));
    diff.push(a - f);
  }
  if (rec.length) console.log(`${arm} ${key} vs ${ref}: recovery ${stats(rec)}, val − ${ref} ${stats(diff)}`);
}
