// The page side of the browser fine-tuning page (finetune.html): the base checkpoint folder and
// the user's text (file pickers or drag and drop, or ?base=/?data= URLs), the worker that runs
// runFinetune (finetune-worker.js), a live loss chart (uPlot), samples, and the adapter's two PEFT
// files for download. `window.__finetune` holds the state for tests (test/browser-finetune.test.ts).

const params = new URLSearchParams(location.search);
const num = (name, fallback) => {
  const v = Number(params.get(name) ?? fallback);
  return Number.isFinite(v) && v >= 0 ? v : fallback;
};
const $ = (id) => document.getElementById(id);
for (const id of ['r', 'alpha', 'steps', 'seed', 'lr']) if (params.has(id)) $(id).value = params.get(id);

const state = (window.__finetune = {
  ready: false, started: false, done: false, header: null, losses: [], evals: [], tokensPerSecond: 0, warnings: [], errors: [],
  adapter: null, sample: null, base: null, corpus: null,
});

const notes = [];
const note = (text) => {
  notes.push(text);
  $('notes').textContent = notes.join(' ');
};
const fail = (text) => {
  state.errors.push(text);
  $('errors').textContent = state.errors.join('\n');
};
if (globalThis.crossOriginIsolated !== true) note('This page is not cross-origin isolated (no COOP/COEP headers): fine-tuning runs single-threaded. Serve it with npm run serve:example for threads.');

// ---- inputs: the base folder and the text ------------------------------------------------------

/** name → bytes of the base checkpoint's files (the folder's top level). */
async function readBaseFiles(fileList) {
  const files = {};
  for (const f of fileList) {
    const name = f.name;
    if (name === 'trainer.json' || name.endsWith('.safetensors') || name.endsWith('.json')) files[name] = new Uint8Array(await f.arrayBuffer());
  }
  return files;
}

function setBase(name, files) {
  state.base = { name, files };
  $('baseName').textContent = `${name}: ${Object.keys(files).join(', ')}`;
  enableStart();
}

function setCorpus(name, text) {
  state.corpus = { name, text };
  $('dataName').textContent = `${name}: ${text.length.toLocaleString('en-US')} characters`;
  enableStart();
}

function enableStart() {
  $('start').disabled = !(state.ready && state.base && state.corpus) || state.started;
}

$('baseInput').addEventListener('change', async (e) => {
  const list = [...e.target.files];
  const folder = list[0]?.webkitRelativePath?.split('/')[0] || 'base';
  setBase(folder, await readBaseFiles(list));
});
$('dataInput').addEventListener('change', async (e) => {
  const f = e.target.files[0];
  if (f) setCorpus(f.name, await f.text());
});
for (const [id, onDrop] of [
  ['baseDrop', async (files) => setBase(files.length === 1 ? files[0].name : 'dropped files', await readBaseFiles(files))],
  ['dataDrop', async (files) => setCorpus(files[0].name, await files[0].text())],
]) {
  const el = $(id);
  el.addEventListener('dragover', (e) => {
    e.preventDefault();
    el.classList.add('over');
  });
  el.addEventListener('dragleave', () => el.classList.remove('over'));
  el.addEventListener('drop', (e) => {
    e.preventDefault();
    el.classList.remove('over');
    const files = [...(e.dataTransfer?.files ?? [])];
    if (files.length > 0) void onDrop(files);
  });
}

// ?base=URL/ and ?data=URL (the test, and links to a published base)
async function fromUrls() {
  if (params.has('base')) {
    const url = params.get('base').replace(/\/?$/, '/');
    const files = {};
    // ?hf=1: a Hugging Face model folder (tokenizer_config.json optional)
    const hf = params.get('hf') === '1';
    const names = hf ? ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json'] : ['trainer.json', 'model.safetensors', 'optimizer.safetensors'];
    for (const name of names) {
      const res = await fetch(url + name);
      if (!res.ok && name === 'tokenizer_config.json') continue;
      if (!res.ok) throw new Error(`base ${url}${name}: HTTP ${res.status}`);
      files[name] = new Uint8Array(await res.arrayBuffer());
    }
    setBase(url, files);
  }
  if (params.has('data')) {
    const res = await fetch(params.get('data'));
    if (!res.ok) throw new Error(`data ${params.get('data')}: HTTP ${res.status}`);
    setCorpus(params.get('data').split('/').pop(), await res.text());
  }
}

// ---- the chart ----------------------------------------------------------------------------------

const cols = { step: [], loss: [], val: [] };
let chart = null;
function draw() {
  const data = [cols.step, cols.loss, cols.val];
  if (!chart) {
    chart = new uPlot({
      width: Math.min(840, $('chart').clientWidth || 840), height: 240, title: 'loss',
      series: [{ label: 'step' }, { label: 'train loss', stroke: '#1f6feb', width: 1.5 }, { label: 'val loss', stroke: '#d9480f', width: 0, points: { show: true, size: 7, fill: '#d9480f' } }],
      axes: [{}, { size: 50 }],
      scales: { x: { time: false } },
    }, data, $('chart'));
  } else chart.setData(data);
}

// ---- the worker ---------------------------------------------------------------------------------

const worker = new Worker(new URL('./finetune-worker.js', import.meta.url), { type: 'module' });
const MB = (b) => `${(b / 1048576).toFixed(b < 10485760 ? 2 : 0)} MB`;
worker.onmessage = ({ data: m }) => {
  switch (m.type) {
    case 'ready':
      state.ready = true;
      enableStart();
      break;
    case 'start': {
      const i = m.info;
      state.header = i;
      $('header').textContent = `base ${i.base} (frozen as ${i.baseKind === 'ternary' ? 'packed 2-bit ternary codes' : i.baseKind}) | LoRA on ${i.targets} projections | ` +
        `trainable ${i.trainable.toLocaleString('en-US')} of ${i.total.toLocaleString('en-US')} (${((100 * i.trainable) / i.total).toFixed(2)} %) | ${i.threads} thread${i.threads > 1 ? 's' : ''}\n` +
        `memory: base ${MB(i.memory.base)} | adapters + grads ${MB(i.memory.adapters)} | optimizer ${MB(i.memory.optimizer)} | activations ${MB(i.memory.activations)} | ${i.trainTokens.toLocaleString('en-US')} train / ${i.valTokens.toLocaleString('en-US')} val tokens`;
      if (i.unknownChars.length) note(`Characters the base's tokenizer cannot encode were dropped: ${i.unknownChars.map((c) => `${JSON.stringify(c.char)} ×${c.count}`).join(', ')}.`);
      break;
    }
    case 'step':
      state.losses.push(m.loss);
      state.tokensPerSecond = m.seconds > 0 ? m.tokens / m.seconds : 0;
      cols.step.push(m.step);
      cols.loss.push(m.loss);
      cols.val.push(null);
      $('step').textContent = String(m.step);
      $('loss').textContent = m.loss.toFixed(4);
      $('tps').textContent = Math.round(state.tokensPerSecond).toLocaleString('en-US');
      draw();
      break;
    case 'eval':
      state.evals.push({ step: m.step, valLoss: m.valLoss });
      $('val').textContent = m.valLoss.toFixed(4);
      if (cols.step.at(-1) === m.step) cols.val[cols.val.length - 1] = m.valLoss;
      draw();
      break;
    case 'done': {
      state.adapter = { files: m.files, keys: m.keys, config: JSON.parse(new TextDecoder().decode(m.files['adapter_config.json'])) };
      state.done = true;
      $('download').disabled = false;
      $('sampleBtn').disabled = false;
      if (params.get('autostart') === '1') worker.postMessage({ type: 'sample', prompt: '\n', tokens: Number(params.get('sampleTokens') ?? 160) });
      break;
    }
    case 'sample':
      state.sample = m.text;
      $('sample').textContent = `--- sample (base + adapter) ---\n${m.text}`;
      break;
    case 'warning':
      state.warnings.push(m.message);
      note(m.message);
      break;
    case 'error':
      fail(m.message);
      state.started = false;
      enableStart();
      break;
  }
};

function start() {
  state.started = true;
  enableStart();
  const options = {
    r: Number($('r').value), alpha: Number($('alpha').value), steps: Number($('steps').value), lr: Number($('lr').value), seed: Number($('seed').value),
    threads: Math.max(1, num('threads', Math.min(4, navigator.hardwareConcurrency || 1))), targetModules: 'all-linear',
    evalEvery: 0, evalIters: Math.max(1, num('evalIters', 20)), unknownChars: 'drop',
  };
  state.options = options;
  const copy = Object.fromEntries(Object.entries(state.base.files).map(([k, v]) => [k, v.slice()]));
  worker.postMessage({ type: 'start', base: { name: state.base.name, files: copy }, corpus: state.corpus.text, options });
}

$('start').addEventListener('click', start);
$('sampleBtn').addEventListener('click', () => worker.postMessage({ type: 'sample', prompt: '\n', tokens: 200 }));
$('download').addEventListener('click', () => {
  for (const [name, bytes] of Object.entries(state.adapter.files)) {
    const a = document.createElement('a');
    a.href = URL.createObjectURL(new Blob([bytes], { type: name.endsWith('.json') ? 'application/json' : 'application/octet-stream' }));
    a.download = name;
    a.click();
    setTimeout(() => URL.revokeObjectURL(a.href), 1000);
  }
});

fromUrls().then(() => {
  if (params.get('autostart') === '1') {
    const go = () => (state.ready && state.base && state.corpus ? start() : setTimeout(go, 50));
    go();
  }
}).catch((err) => fail(err.message));
