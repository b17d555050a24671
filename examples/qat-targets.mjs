// Measure the two conversion targets of the QAT suite on the reference configuration
// (4 layers, 4 heads, dim 128, context 64, batch 12, char-level tinyshakespeare):
//
//   1. progressive quantisation (λ warmup) of an FP checkpoint reaches a lower val loss than direct
//      ternary quantisation followed by the same number of fine-tuning steps;
//   2. distillation from the FP model gives a ternary student with a lower val loss than the same
//      student trained without a teacher for the same steps.
//
// Every arm starts from the same FP weights (or, for the scratch arms, the same random init), sees
// the same training batches (one data seed per repetition), runs the same number of steps with the
// same LR schedule, and is evaluated fully ternary (λ = 1) on the same 100 val batches of 12×64 —
// the batches the trainer itself evaluates on (Rng(seed + 7919), 100 train draws, then 100 val
// draws), so the FP row reproduces the checkpoint's recorded val loss.
//
//   npm run build
//   node examples/qat-targets.mjs [--from DIR (default runs/fp)] [--steps N] [--threads 2] [--seeds 2,3,4]
//        [--arms LIST] [--lr 5e-4] [--warmup 20] [--out runs/qat-targets.json]
//
// Measured (FP checkpoint at 2000 steps, val 1.8760; N = 400; seeds 2, 3, 4; ~9 min at 2 threads):
// direct 1.9157, progressive linear over N/4 1.9101, exponential over N/2 1.9086 (paired: lower
// than direct on every seed, also on seeds 5..10; linear over N/2 is not), distillation 1.8992,
// exponential progressive + distillation 1.8922; scratch 2.3807, scratch + distillation 2.3113.
// The train column of KD arms is the distillation objective, not the cross-entropy.
//
// An FP checkpoint of the reference model: `bitnet-train train --fp --layers 4 --heads 4 --dim 128
// --context 64 --batch 12 --iters 2000 --lr 1e-3 --min-lr 1e-4 --warmup 100 --beta2 0.99
// --weight-decay 0.1 --clip 1 --eval-iters 100 --out runs/fp` (then --from runs/fp/ckpt-2000).
//
// An arm is a preset name with optional `/key=value` overrides, arms separated by commas, e.g.
//   --arms direct,prog/ramp=0.25/shape=exponential,kd/alpha=0.3/T=2
// presets: direct, prog, kd, prog+kd, scratch, scratch+kd.
// keys:    init=fp|scratch   start from the FP weights or from a fresh random init
//          ramp=R            λ warmup length: a fraction of N when R ≤ 1, else steps (0 = direct)
//          shape=linear|exponential|sigmoid  k=…  sharp=…   the ramp's shape
//          target=both|w|a   which λ ramps (the other is 1 from step 0)
//          layerwise=f2l|l2f quantise block after block over the ramp
//          alpha=… T=…       distillation from the FP model (alpha = 1: no teacher)
//          lr=… warmup=… minlr=… wd=…   the AdamW schedule (warmup then cosine to minlr)
//          norm=0|1          BitLinear's built-in RMSNorm (0: the FP model's own inputs)
import {
  AdamW, GPT, Heap, QatController, Rng, TextDataset, createBackend, createSchedule, distillationLoss, evaluateLoss,
  getDefaultFileSystem, importModelTensors, loadCheckpoint, resolveCheckpointDir, setQuantLambda, teacherLogits,
  tokenizerFromJSON,
} from 'bitnet-training';

// ---- command line ------------------------------------------------------------------------------
// The default arms: the λ ramps are the best linear and exponential settings of a sweep on data
// seed 1 (ramp 0.1/0.25/0.5/0.75 of N, linear/exponential/sigmoid, weights or activations only,
// layer by layer); the default seeds 2, 3, 4 leave that seed out.
const DEFAULT_ARMS = [
  'direct', 'prog', 'prog/shape=exponential/ramp=0.5', 'kd', 'prog+kd/shape=exponential/ramp=0.5', 'scratch', 'scratch+kd',
].join(',');
const argv = process.argv.slice(2);
const flags = {};
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  if (!a.startsWith('--') || i + 1 >= argv.length) throw new Error(`qat-targets: expected --flag value pairs, got '${a}' (see the header of examples/qat-targets.mjs)`);
  flags[a.slice(2)] = argv[++i];
}
const KNOWN_FLAGS = ['from', 'steps', 'threads', 'seeds', 'arms', 'lr', 'warmup', 'minlr', 'wd', 'norm', 'alpha', 'T', 'ramp', 'eval-iters', 'out'];
for (const k of Object.keys(flags)) if (!KNOWN_FLAGS.includes(k)) throw new Error(`qat-targets: unknown flag --${k} (known: ${KNOWN_FLAGS.map((f) => `--${f}`).join(', ')})`);
const num = (name, fallback) => {
  const v = flags[name] === undefined ? fallback : Number(flags[name]);
  if (!Number.isFinite(v)) throw new Error(`qat-targets: --${name} must be a number, got '${flags[name]}'`);
  return v;
};
const from = flags.from ?? 'runs/fp'; // the run directory the command in the header writes
const N = num('steps', 400);
const threads = num('threads', 2);
const evalIters = num('eval-iters', 100);
const seeds = (flags.seeds ?? '2,3,4').split(',').map(Number);
if (!(Number.isInteger(N) && N > 0) || seeds.some((s) => !Number.isInteger(s))) throw new Error(`qat-targets: --steps must be a positive integer and --seeds integers, got ${N} and ${flags.seeds}`);
const out = flags.out ?? `runs/qat-targets-${N}.json`;

// Defaults every arm starts from (the fine-tuning recipe; scratch arms get the from-scratch LR).
const BASE = {
  init: 'fp', ramp: 0, shape: 'linear', k: 3, sharp: 10, target: 'both', layerwise: false,
  alpha: 1, T: 2, lr: num('lr', 5e-4), warmup: num('warmup', 20), minlr: flags.minlr === undefined ? NaN : num('minlr', 0), wd: num('wd', 0.1), norm: num('norm', 0),
};
const KD = { alpha: num('alpha', 0.5), T: num('T', 2) };
const RAMP = num('ramp', 0.25);
const PRESETS = {
  direct: {},
  prog: { ramp: RAMP },
  kd: { ...KD },
  'prog+kd': { ramp: RAMP, ...KD },
  scratch: { init: 'scratch', lr: 1.5e-3 },
  'scratch+kd': { init: 'scratch', lr: 1.5e-3, ...KD },
};

/** Parse `preset/key=value/...` into a resolved arm. */
function parseArm(spec) {
  const [preset, ...overrides] = spec.split('/');
  if (!(preset in PRESETS)) throw new Error(`qat-targets: unknown arm preset '${preset}' in '${spec}' (known: ${Object.keys(PRESETS).join(', ')})`);
  const arm = { ...BASE, ...PRESETS[preset] };
  for (const o of overrides) {
    const [k, v] = o.split('=');
    if (!(k in BASE) || v === undefined) throw new Error(`qat-targets: bad override '${o}' in arm '${spec}' (keys: ${Object.keys(BASE).join(', ')})`);
    arm[k] = ['init', 'shape', 'target', 'layerwise'].includes(k) ? (v === 'false' ? false : v) : Number(v);
  }
  if (!['fp', 'scratch'].includes(arm.init)) throw new Error(`qat-targets: init must be fp or scratch in '${spec}'`);
  if (!['both', 'w', 'a'].includes(arm.target)) throw new Error(`qat-targets: target must be both, w or a in '${spec}'`);
  if (arm.layerwise && !['f2l', 'l2f'].includes(arm.layerwise)) throw new Error(`qat-targets: layerwise must be f2l or l2f in '${spec}'`);
  arm.rampSteps = arm.ramp <= 1 ? Math.round(arm.ramp * N) : Math.round(arm.ramp);
  if (!Number.isFinite(arm.minlr)) arm.minlr = arm.lr / 10;
  if (!(arm.rampSteps >= 0 && arm.rampSteps <= N)) throw new Error(`qat-targets: the λ ramp of '${spec}' is ${arm.rampSteps} steps; it must fit in the ${N} steps (fully ternary at the end)`);
  return { spec, ...arm };
}
const arms = (flags.arms ?? DEFAULT_ARMS).split(',').map(parseArm);

// ---- data, FP checkpoint, fixed val batches ----------------------------------------------------
const fs = await getDefaultFileSystem();
if (!(await fs.exists(from))) throw new Error(`qat-targets: no FP checkpoint at ${from}; train one with the command in the header of examples/qat-targets.mjs, or pass --from DIR`);
const ckpt = await loadCheckpoint(fs, await resolveCheckpointDir(fs, from));
const { model: savedModel, run: savedRun } = ckpt.trainer.config;
if (!savedModel || savedModel.bitlinear) throw new Error(`qat-targets: ${ckpt.dir} must be a full-precision checkpoint written by bitnet-train (config.model.bitlinear false)`);
const tokenizer = tokenizerFromJSON(ckpt.trainer.tokenizer);
const dataPath = savedRun?.data ?? 'examples/data/tinyshakespeare.txt';
const dataset = TextDataset.fromBytes(await fs.readFile(dataPath), { tokenizer, valFraction: savedRun?.valFraction ?? 0.1, contextLength: savedModel.contextLength });
const [B, T] = [savedRun?.batch ?? 12, savedModel.contextLength];
const toBatch = ({ inputs, targets }) => ({ tokens: inputs.slice(), targets: targets.slice(), B, T });
const evalRng = new Rng((ckpt.trainer.extra?.seed ?? savedRun?.seed ?? 1337) + 7919); // the trainer's eval stream
Array.from({ length: evalIters }, () => dataset.sampleBatch('train', B, T, evalRng));  // drawn first by the trainer
const val = Array.from({ length: evalIters }, () => toBatch(dataset.sampleBatch('val', B, T, evalRng)));
const shape = { vocabSize: savedModel.vocabSize, contextLength: T, layers: savedModel.layers, heads: savedModel.heads, dim: savedModel.dim,
  norm: savedModel.norm, mlp: savedModel.mlp, pos: savedModel.pos, bias: savedModel.bias, tiedHead: savedModel.tiedHead, initStd: savedModel.initStd };
const source = `checkpoint ${ckpt.dir}/model.safetensors`;
/** The GPT of the checkpoint's shape, FP or BitLinear (with or without the built-in norm), on `heap`. */
function buildModel(heap, { bitlinear, norm = false, init = 'fp' }) {
  const model = new GPT({ ...shape, bitlinear, bitlinearOptions: { norm: Boolean(norm) } }).materialize(heap, new Rng(1337));
  if (init === 'fp') importModelTensors(model.params, ckpt.model, source);
  return model;
}
/** Run `fn(heap)` on a fresh backend (threads as asked), disposed afterwards. */
async function withHeap(fn) {
  const backend = await createBackend('wasm', { threads });
  try {
    return await fn(new Heap(backend));
  } finally {
    backend.dispose();
  }
}

// ---- one arm, one data seed --------------------------------------------------------------------
async function runArm(arm, seed) {
  return withHeap(async (heap) => {
    const t0 = performance.now();
    const model = buildModel(heap, { bitlinear: true, norm: arm.norm, init: arm.init });
    const teacher = arm.alpha < 1 ? buildModel(heap, { bitlinear: false }) : null;
    const opt = new AdamW(model.params, { lr: arm.lr, betas: [0.9, 0.99], weightDecay: arm.wd, clipNorm: 1 });
    const schedule = createSchedule({ kind: 'cosine', peakLr: arm.lr, warmup: arm.warmup, totalSteps: N, minLr: arm.minlr, weightDecay: arm.wd });
    const ramp = arm.rampSteps > 0 ? { shape: arm.shape, steps: arm.rampSteps, k: arm.k, sharpness: arm.sharp } : null;
    const qat = ramp ? new QatController(model, {
      weights: arm.target === 'a' ? null : ramp,
      activations: arm.target === 'w' ? null : ramp,
      layerwise: arm.layerwise === 'f2l' ? 'first-to-last' : arm.layerwise === 'l2f' ? 'last-to-first' : false,
    }) : null;
    const rng = new Rng(seed);
    let tail = 0, tailN = 0;
    for (let step = 0; step < N; step++) {
      qat?.beginStep(step);
      const { lr, weightDecay } = schedule(step);
      opt.lr = lr;
      opt.weightDecay = weightDecay;
      const b = dataset.sampleBatch('train', B, T, rng);
      opt.zeroGrad();
      const tokens = heap.indices(b.inputs, [B, T]), targets = heap.indices(b.targets, [B, T]);
      const loss = teacher
        ? distillationLoss(model.forward(tokens).logits, teacherLogits(teacher, tokens), targets, { alpha: arm.alpha, temperature: arm.T })
        : model.forward(tokens, targets).loss;
      loss.backward();
      opt.step();
      if (step >= N - 50) { tail += loss.itemSync(); tailN++; }
      heap.resetArena();
    }
    setQuantLambda(model, { weights: 1, activations: 1 }); // evaluate the fully ternary model
    const valLoss = await evaluateLoss(model, val);
    return { valLoss, trainLossLast50: tail / tailN, seconds: (performance.now() - t0) / 1000 };
  });
}

// ---- reference points: the FP model, and its ternary copy before any fine-tuning ---------------
const t0 = performance.now();
const fpVal = await withHeap((heap) => evaluateLoss(buildModel(heap, { bitlinear: false }), val));
const atConversion = {};
for (const norm of [...new Set(arms.filter((a) => a.init === 'fp').map((a) => a.norm))]) {
  atConversion[`norm=${norm}`] = await withHeap((heap) => evaluateLoss(buildModel(heap, { bitlinear: true, norm }), val));
}
console.log(`FP checkpoint ${ckpt.dir} (step ${ckpt.trainer.step}): val loss ${fpVal.toFixed(4)} on ${evalIters} batches of ${B}×${T}`);
for (const [k, v] of Object.entries(atConversion)) console.log(`ternary at conversion (${k}, no fine-tuning): ${v.toFixed(4)}`);
console.log(`${N} steps per arm, data seeds ${seeds.join(', ')}, ${threads} thread(s)\n`);

const results = [];
const stats = (xs) => {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const sd = xs.length > 1 ? Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (xs.length - 1)) : 0;
  return { mean, sd, min: Math.min(...xs), max: Math.max(...xs) };
};
const describe = (a) => [
  a.init === 'scratch' ? 'scratch' : 'from FP',
  a.rampSteps > 0 ? `λ ${a.shape}${a.shape === 'exponential' ? ` k${a.k}` : a.shape === 'sigmoid' ? ` a${a.sharp}` : ''} over ${a.rampSteps} (${a.target}${a.layerwise ? `, ${a.layerwise}` : ''})` : 'λ=1',
  a.alpha < 1 ? `KD α${a.alpha} T${a.T}` : 'no teacher',
  `lr ${+a.lr.toPrecision(3)}→${+a.minlr.toPrecision(3)} wu ${a.warmup} wd ${a.wd}`, `norm ${a.norm ? 'on' : 'off'}`,
].join('; ');
for (const arm of arms) {
  const perSeed = [];
  for (const seed of seeds) {
    const r = await runArm(arm, seed);
    perSeed.push({ seed, ...r });
    console.log(`  ${arm.spec.padEnd(34)} seed ${seed}: val ${r.valLoss.toFixed(4)}  (train objective, last 50 steps: ${r.trainLossLast50.toFixed(4)}, ${r.seconds.toFixed(0)} s)`);
  }
  results.push({ spec: arm.spec, settings: describe(arm), arm, perSeed, val: stats(perSeed.map((r) => r.valLoss)) });
}

// ---- the table and the targets -----------------------------------------------------------------
console.log(`\n${'arm'.padEnd(34)} ${'val mean'.padStart(8)} ${'sd'.padStart(6)} ${'min'.padStart(7)} ${'max'.padStart(7)}  settings`);
console.log(`${'FP teacher (no fine-tuning)'.padEnd(34)} ${fpVal.toFixed(4).padStart(8)}`);
for (const [k, v] of Object.entries(atConversion)) console.log(`${`ternary at conversion (${k})`.padEnd(34)} ${v.toFixed(4).padStart(8)}`);
for (const r of results) {
  const { mean, sd, min, max } = r.val;
  console.log(`${r.spec.padEnd(34)} ${mean.toFixed(4).padStart(8)} ${sd.toFixed(4).padStart(6)} ${min.toFixed(4).padStart(7)} ${max.toFixed(4).padStart(7)}  ${r.settings}`);
}

/** Paired comparison (same seeds) of arm `a` against arm `b`: mean of the per-seed differences a − b. */
function compare(a, b) {
  const ra = results.find((r) => r.spec === a), rb = results.find((r) => r.spec === b);
  if (!ra || !rb) return null;
  const diffs = ra.perSeed.map((x, i) => x.valLoss - rb.perSeed[i].valLoss);
  const d = stats(diffs);
  const wins = diffs.filter((x) => x < 0).length;
  // "holds": lower on average and on every seed (with one seed: just lower)
  return { a, b, meanDiff: d.mean, sdDiff: d.sd, wins, seeds: diffs.length, holds: wins === diffs.length };
}
const progArms = results.filter((r) => r.arm.init === 'fp' && r.arm.rampSteps > 0 && r.arm.alpha === 1).map((r) => r.spec);
const kdPairs = results.filter((r) => r.arm.alpha < 1).map((r) => {
  // the same arm without the teacher: the same spec with the KD preset removed
  const twin = results.find((s) => s.arm.alpha === 1 && s.arm.init === r.arm.init && s.arm.rampSteps === r.arm.rampSteps && s.arm.shape === r.arm.shape
    && s.arm.target === r.arm.target && s.arm.layerwise === r.arm.layerwise && s.arm.lr === r.arm.lr && s.arm.norm === r.arm.norm && s.arm.warmup === r.arm.warmup && s.arm.wd === r.arm.wd);
  return twin ? compare(r.spec, twin.spec) : null;
}).filter(Boolean);
const targets = {
  progressiveBeatsDirect: progArms.map((p) => compare(p, 'direct')).filter(Boolean),
  distillationBeatsNoTeacher: kdPairs,
};
console.log('\nTarget 1 (progressive < direct, same steps), paired over seeds:');
for (const c of targets.progressiveBeatsDirect) console.log(`  ${c.a.padEnd(34)} − direct: ${c.meanDiff >= 0 ? '+' : ''}${c.meanDiff.toFixed(4)} ± ${c.sdDiff.toFixed(4)} (lower on ${c.wins}/${c.seeds} seeds) → ${c.holds ? 'holds' : 'does not hold'}`);
console.log('Target 2 (distilled student < the same student without a teacher), paired over seeds:');
for (const c of targets.distillationBeatsNoTeacher) console.log(`  ${c.a.padEnd(34)} − ${c.b}: ${c.meanDiff >= 0 ? '+' : ''}${c.meanDiff.toFixed(4)} ± ${c.sdDiff.toFixed(4)} (lower on ${c.wins}/${c.seeds} seeds) → ${c.holds ? 'holds' : 'does not hold'}`);

const report = {
  command: `node examples/qat-targets.mjs ${argv.join(' ')}`.trim(),
  checkpoint: ckpt.dir, checkpointStep: ckpt.trainer.step, model: savedModel, batch: B, context: T,
  steps: N, seeds, threads, evalBatches: evalIters, fpValLoss: fpVal, ternaryAtConversion: atConversion,
  arms: results, targets, totalSeconds: (performance.now() - t0) / 1000,
};
const dir = out.includes('/') ? out.slice(0, out.lastIndexOf('/')) : '.';
await fs.mkdirp(dir);
await fs.writeFileAtomic(out, `${JSON.stringify(report, null, 2)}\n`);
console.log(`\nwrote ${out} (${report.totalSeconds.toFixed(0)} s in all)`);
