// The fine-tuning side of the browser page (finetune.html): a module Web Worker that runs the
// library's own runFinetune — the same code as `bitnet-train finetune` in Node — over an
// in-memory file system holding the user's base checkpoint and corpus, so for the same seed and
// options it computes the same losses, bit for bit, as Node does.
//
// Messages in:  { type: 'start', base: { files: { name: Uint8Array } }, corpus: string, options }, 'sample'
// Messages out: 'ready', 'start' (the run header), 'step', 'eval', 'done' (+ the adapter files), 'sample', 'warning', 'error'

/** @type {typeof import('../../dist/index.js')} */
let lib;
let fs;
let options;
let tokenizerCache = null;
let hf = false;
const post = (message, transfer = []) => postMessage(message, transfer);

const consoleWarn = console.warn.bind(console);
console.warn = (...args) => {
  consoleWarn(...args);
  post({ type: 'warning', message: args.map(String).join(' ') });
};

const BASE = '/base';
const DATA = '/corpus.txt';
const OUT = '/run';

async function start(m) {
  if (!lib) {
    lib = await import('../../dist/index.js');
    // a worker has no import map: the tokenizer library of Hugging Face bases, by URL
    lib.useTokenizersLibrary(await import('../../node_modules/@huggingface/tokenizers/dist/tokenizers.mjs'));
  }
  options = m.options;
  fs = new lib.MemoryFileSystem();
  await fs.mkdirp(BASE);
  const names = Object.keys(m.base.files);
  // a Hugging Face model folder (config.json, model.safetensors, tokenizer.json), or a checkpoint of bitnet-train
  hf = names.includes('config.json') && !names.includes('trainer.json');
  const needs = hf ? ['config.json', 'tokenizer.json'] : ['trainer.json', 'model.safetensors', 'optimizer.safetensors'];
  for (const need of needs) {
    if (!names.includes(need)) {
      throw new Error(hf
        ? `the Hugging Face folder has no ${need}; it needs config.json, model.safetensors (or its shards) and tokenizer.json`
        : `the base folder has no ${need}; pick a whole checkpoint folder of bitnet-train (e.g. runs/<name>/best: trainer.json, model.safetensors, optimizer.safetensors) or a Hugging Face model folder`);
    }
  }
  for (const [name, bytes] of Object.entries(m.base.files)) await fs.writeFileAtomic(`${BASE}/${name}`, bytes);
  await fs.writeFileAtomic(DATA, new TextEncoder().encode(m.corpus));
  const threads = lib.hasWasmSimd() && globalThis.crossOriginIsolated ? options.threads : 1;
  const run = {
    ...lib.DEFAULT_FINETUNE_OPTIONS,
    from: hf ? null : BASE, fromHf: hf ? BASE : null, data: DATA, out: OUT, peft: 'lora', threads, seed: options.seed, iters: options.steps,
    lr: options.lr, warmup: Math.min(lib.DEFAULT_FINETUNE_OPTIONS.warmup, Math.floor(options.steps / 4)),
    evalEvery: options.evalEvery, evalIters: options.evalIters, logEvery: 1, unknownChars: options.unknownChars,
    lora: { r: options.r, lora_alpha: options.alpha, target_modules: options.targetModules },
  };
  const result = await lib.runFinetune(run, {
    onStart: (i) => post({ type: 'start', info: { base: m.base.name, baseKind: i.baseKind, trainable: i.trainable, total: i.total, targets: i.targets.length, threads: i.threads, memory: i.memory, trainTokens: i.trainTokens, valTokens: i.valTokens, unknownChars: i.unknownChars } }),
    onStep: (s) => post({ type: 'step', step: s.step, loss: s.loss, lr: s.lr, tokens: s.tokens, seconds: s.seconds }),
    onEval: (e) => post({ type: 'eval', step: e.step, trainLoss: e.trainLoss, valLoss: e.valLoss }),
    onWarning: (w) => post({ type: 'warning', message: w }),
  }, { fs });
  const files = {};
  for (const name of ['adapter_config.json', 'adapter_model.safetensors']) files[name] = await fs.readFile(`${result.adapterDir}/${name}`);
  const keys = [...lib.decodeSafetensors(files['adapter_model.safetensors'], { source: 'adapter' }).tensors.keys()];
  post({ type: 'done', step: result.step, valLoss: result.lastEval?.valLoss ?? null, tokensPerSecond: result.tokensPerSecond, files, keys }, Object.values(files).map((b) => b.buffer));
}

/** A sample from the base with the trained adapter (what `bitnet-train sample --ckpt BASE --adapter DIR` prints). */
async function sample(m) {
  const backend = await lib.createBackend('wasm', { threads: 1 });
  try {
    const heap = new lib.Heap(backend);
    const { model, tokenizer } = await lib.loadAdaptedModel(fs, heap, BASE, `${OUT}/adapter`, { hf });
    tokenizerCache = tokenizer;
    const ids = lib.generate(model, heap, lib.promptIds(tokenizer, m.prompt || '\n'), { maxNewTokens: m.tokens, temperature: 0.8, topK: 0, rng: new lib.Rng(options.seed + 7) });
    post({ type: 'sample', text: tokenizerCache.decode(ids) });
  } finally {
    backend.dispose();
  }
}

const commands = { start, sample };
let queue = Promise.resolve();
self.onmessage = ({ data }) => {
  queue = queue.then(async () => {
    try {
      if (!commands[data.type]) throw new Error(`unknown command ${JSON.stringify(data.type)}`);
      await commands[data.type](data);
    } catch (err) {
      post({ type: 'error', message: `${data.type}: ${err?.message ?? err}` });
    }
  });
};
post({ type: 'ready' });
