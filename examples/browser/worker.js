// The training side of the browser example: a module Web Worker that trains the default model
// (DEFAULT_RUN_CONFIG: a 4-layer BitNet b1.58 GPT, char-level tinyshakespeare) with the same
// Trainer, schedule and checkpoint format as the CLI, so a checkpoint saved here resumes with
// `bitnet-train train --resume` in Node after copying it out of the browser.
//
// Like the CLI it evaluates every evalEvery steps, runs the QAT error analysis every errorEvery
// steps and writes a TensorBoard event file (in memory; 'tensorboard' sends its bytes to the page).
//
// Messages in:  { type: 'init', options }, then 'start', 'pause', 'save', 'load', 'sample', 'tensorboard'
// Messages out: 'ready', 'step', 'eval', 'quant', 'sample', 'saved', 'loaded', 'paused', 'done',
//               'tensorboard', 'warning', 'error'

/** @type {typeof import('../../dist/index.js')} */
let lib;
let trainer, model, heap, dataset, cfg, fs, tb, tbFs;
let options;
let running = false;
let sampleCount = 0;

const CHECKPOINT_DIR = 'bitnet-browser';
const post = (message) => postMessage(message);

// Warnings from the library (no SIMD, no threads) reach the page's UI, not only the console.
const consoleWarn = console.warn.bind(console);
console.warn = (...args) => {
  consoleWarn(...args);
  post({ type: 'warning', message: args.map(String).join(' ') });
};

/** FNV-1a over the f32 bits of every parameter, in name order: "same weights" in one string. */
function weightsDigest() {
  let h = 0x811c9dc5;
  for (const values of model.params.exportValuesSync().values()) {
    const bytes = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
    for (let i = 0; i < bytes.length; i++) h = Math.imul(h ^ bytes[i], 0x01000193) >>> 0;
  }
  return h.toString(16).padStart(8, '0');
}

async function init(opts) {
  options = opts;
  if (!opts.simd) {
    // Simulate a browser without WebAssembly SIMD: the library's feature probe fails, so
    // createBackend('wasm') warns and falls back to the js backend (its real code path).
    WebAssembly.validate = () => false;
  }
  lib = await import('../../dist/index.js');
  // a worker has no import map: the TensorBoard writer's two libraries, by URL
  lib.useMonitorLibraries({
    hashWasm: await import('../../node_modules/hash-wasm/dist/index.esm.js'),
    protobufWire: await import('../../node_modules/@bufbuild/protobuf/dist/esm/wire/index.js'),
  });
  const corpusUrl = new URL('../data/tinyshakespeare.txt', import.meta.url);
  const text = await (await fetch(corpusUrl)).text();
  cfg = { ...lib.DEFAULT_RUN_CONFIG };
  for (const k of ['evalEvery', 'evalIters', 'errorEvery']) if (opts[k] !== null && opts[k] !== undefined) cfg[k] = opts[k];
  dataset = lib.TextDataset.fromText(text, { tokenizer: cfg.tokenizer, valFraction: cfg.valFraction, source: 'tinyshakespeare.txt', contextLength: cfg.context });
  const modelCfg = lib.modelConfigFromRun(cfg, dataset.tokenizer.vocabSize);
  model = lib.createModel(modelCfg);

  // threads need SharedArrayBuffer, i.e. a cross-origin isolated page; createBackend alone
  // gives the single-threaded SIMD kernels, or the js backend (with a warning) without SIMD
  const threads = lib.hasWasmSimd() && globalThis.crossOriginIsolated ? opts.threads : 1;
  const backend = opts.backend === 'webgpu' ? await lib.createBackend('webgpu') : await lib.createBackend('wasm', { threads });
  heap = new lib.Heap(backend);
  model.materialize(heap, new lib.Rng(cfg.seed));
  const optimizer = new lib.AdamW(model.params, { lr: cfg.lr, betas: [cfg.beta1, cfg.beta2], weightDecay: cfg.weightDecay, clipNorm: cfg.clip });
  fs = await lib.getDefaultFileSystem();
  tbFs = new lib.MemoryFileSystem();
  tb = await lib.TensorBoardWriter.create(tbFs, 'tensorboard');
  const qat = new lib.QatTraining(model, cfg, dataset, null, {
    onQuantError: async (e) => {
      post({ type: 'quant', step: e.step, layers: e.layers });
      await lib.writeQuantError(tb, e, model.params);
    },
  });
  const config = { run: { ...cfg, out: null, logFile: null, resume: null }, model: { ...modelCfg } };
  lib.writeRunConfig(tb, config);
  trainer = new lib.Trainer({
    model,
    dataset,
    optimizer,
    options: {
      iters: cfg.iters,
      batchSize: cfg.batch,
      contextLength: cfg.context,
      schedule: lib.scheduleFromRun(cfg),
      seed: cfg.seed,
      evalEvery: cfg.evalEvery,
      evalIters: cfg.evalIters,
      logEvery: cfg.logEvery,
      checkpoints: { fs, dir: CHECKPOINT_DIR, keep: 2 },
      config,
      extension: qat,
      tensorboard: tb,
      onStep: (info) => post({ type: 'step', step: info.step, loss: info.loss, lr: info.lr, tokens: info.tokens, seconds: info.seconds, skipped: info.skipped }),
      onEval: (i) => post({ type: 'eval', step: i.step, trainLoss: i.trainLoss, valLoss: i.valLoss, best: i.best }),
    },
  });
  qat.beforeEval(0); // as runTraining does for a fresh run: calibrate static clips (if any) on step 0's state
  await qat.initialCalibration();
  post({
    type: 'ready',
    backend: backend.name,
    threads: backend.threads ?? 1,
    crossOriginIsolated: globalThis.crossOriginIsolated === true,
    fileSystem: fs.kind,
    parameters: model.params.count,
    vocabSize: dataset.tokenizer.vocabSize,
    config: { layers: cfg.layers, heads: cfg.heads, dim: cfg.dim, context: cfg.context, batch: cfg.batch, iters: cfg.iters, bitlinear: modelCfg.bitlinear },
    stopAt: Math.min(opts.steps, cfg.iters),
  });
}

function sample() {
  if (lib.readsAreAsync(heap.backend)) return; // sampling reads logits synchronously (not on webgpu)
  const ids = lib.generate(model, heap, lib.promptIds(dataset.tokenizer, '\n'), {
    maxNewTokens: options.sampleTokens,
    temperature: cfg.temperature,
    topK: cfg.topK,
    rng: new lib.Rng(cfg.seed + 104729 + sampleCount++),
  });
  post({ type: 'sample', step: trainer.step, text: dataset.tokenizer.decode(ids) });
}

/** One training step through Trainer.train (its evaluation, error analysis and TensorBoard logging), then a sample every `sampleEvery`, the end. */
async function step() {
  await trainer.train({ untilStep: trainer.step + 1 });
  if (options.sampleEvery > 0 && trainer.step % options.sampleEvery === 0) sample();
  if (trainer.step >= Math.min(options.steps, cfg.iters)) {
    running = false;
    sample();
    post({ type: 'done', step: trainer.step });
  }
}

const commands = {
  init: (m) => init(m.options),
  start: () => { running = trainer.step < Math.min(options.steps, cfg.iters); },
  pause: () => { running = false; post({ type: 'paused', step: trainer.step }); },
  sample: () => sample(),
  tensorboard: async () => {
    await tb.flush();
    const bytes = await tbFs.readFile(tb.path);
    post({ type: 'tensorboard', name: tb.path.slice(tb.path.lastIndexOf('/') + 1), bytes });
  },
  save: async () => {
    const path = await trainer.save();
    post({ type: 'saved', step: trainer.step, path, digest: weightsDigest() });
  },
  load: async () => {
    const dir = await lib.latestCheckpoint(fs, CHECKPOINT_DIR);
    if (!dir) throw new Error(`no checkpoint in OPFS ${CHECKPOINT_DIR}/ yet: train a little and press Save first`);
    trainer.restore(await lib.loadCheckpoint(fs, dir));
    post({ type: 'loaded', step: trainer.step, path: dir, digest: weightsDigest() });
  },
};

// One consumer: commands run between steps, in order, so a save never sees half a step.
const pending = [];
let wake = () => {};
self.onmessage = ({ data }) => {
  pending.push(data);
  wake();
};

// (not top-level await: a module worker's messages wait until its evaluation has finished)
void (async function pump() {
  for (;;) {
    if (pending.length > 0) {
      const m = pending.shift();
      try {
        if (!commands[m.type]) throw new Error(`unknown command ${JSON.stringify(m.type)}`);
        await commands[m.type](m);
      } catch (err) {
        running = false;
        post({ type: 'error', message: `${m.type}: ${err?.message ?? err}` });
      }
    } else if (running) {
      try {
        await step();
      } catch (err) {
        running = false;
        post({ type: 'error', message: `training: ${err?.message ?? err}` });
      }
      await new Promise((r) => setTimeout(r, 0)); // let messages in
    } else {
      await new Promise((r) => { wake = r; });
    }
  }
})();
