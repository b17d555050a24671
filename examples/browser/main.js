// The page side of the browser example: starts worker.js, draws the live charts (uPlot: loss with
// val loss and the best point, lr, tokens/s, and from the error analysis the ternary fractions, flip
// rate and weight SQNR), shows text samples, forwards the buttons and offers the run's TensorBoard
// event file for download. `window.__bitnet` holds the state for tests (test/browser.test.ts,
// test/monitor-browser.test.ts).

const params = new URLSearchParams(location.search);
const intParam = (name, fallback) => {
  const v = Number(params.get(name) ?? fallback);
  return Number.isInteger(v) && v >= 0 ? v : fallback;
};
const isolated = globalThis.crossOriginIsolated === true;
const options = {
  steps: intParam('steps', Number.MAX_SAFE_INTEGER),
  threads: Math.max(1, intParam('threads', Math.min(4, navigator.hardwareConcurrency || 1))),
  sampleEvery: intParam('sampleEvery', 100),
  sampleTokens: intParam('sampleTokens', 160),
  evalEvery: params.has('evalEvery') ? intParam('evalEvery', 0) : null,
  evalIters: params.has('evalIters') ? Math.max(1, intParam('evalIters', 1)) : null,
  errorEvery: params.has('errorEvery') ? intParam('errorEvery', 0) : null,
  simd: params.get('simd') !== '0',
  backend: params.get('backend') === 'webgpu' ? 'webgpu' : 'wasm', // ?backend=webgpu: the WGSL kernels (gpu/)
};

const state = (window.__bitnet = {
  ready: false, backend: null, threads: 0, crossOriginIsolated: isolated, step: 0, losses: [], tokensPerSecond: 0,
  samples: [], warnings: [], errors: [], saved: null, loaded: null, done: false, running: false,
  evals: [], quant: [], bestValLoss: null, charts: [], tensorboard: null,
});

const $ = (id) => document.getElementById(id);
const log = (text) => {
  $('log').textContent += `${new Date().toLocaleTimeString()}  ${text}\n`;
  $('log').scrollTop = $('log').scrollHeight;
};
const notes = [];
const note = (text) => {
  notes.push(text);
  $('notes').textContent = notes.join(' ');
};

if (!isolated) {
  note('This page is not cross-origin isolated (no COOP/COEP headers), so SharedArrayBuffer is unavailable: training runs single-threaded. Serve it with npm run serve:example for threads.');
}

// ---- the live charts (uPlot, the library the HTML report bundles; the same series) ---------------

// columns by step: train loss, val loss (at evaluations), the best val loss (one point), lr, tokens/s;
// by error-analysis report: the -1/0/+1 fractions, flip rate, weight SQNR (mean and worst projection)
const cols = { step: [], loss: [], val: [], best: [], lr: [], tps: [] };
const qcols = { step: [], neg: [], zero: [], pos: [], flip: [], sqnrMean: [], sqnrMin: [] };
const charts = {};
let drawPending = false;

function makeChart(id, title, series, data, yRange, yValues) {
  const el = document.createElement('section');
  el.dataset.chart = id;
  const h = document.createElement('h2');
  h.textContent = title;
  el.append(h);
  $('charts').append(el);
  const colors = ['#1f6feb', '#d62728', '#000', '#2ca02c'];
  charts[id] = new uPlot({
    width: Math.max(320, $('charts').clientWidth - 24), height: 200,
    scales: { x: { time: false }, y: yRange ? { range: yRange } : {} },
    axes: [{ label: 'step' }, { size: 60, ...(yValues ? { values: yValues } : {}) }],
    series: [{ label: 'step' }, ...series.map((s, i) => ({ stroke: colors[i % colors.length], width: 1.5, spanGaps: true, ...s }))],
  }, data, el);
}

function drawCharts() {
  drawPending = false;
  if (!charts.loss) {
    makeChart('loss', 'Loss', [{ label: 'train loss' }, { label: 'val loss', points: { show: true, size: 6 } }, { label: 'best val', width: 0, points: { show: true, size: 11, fill: '#ffd700' } }], [[], [], [], []]);
    makeChart('lr', 'Learning rate', [{ label: 'lr' }], [[], []], null, (u, vals) => vals.map((v) => v.toExponential(1)));
    makeChart('tokens', 'Tokens/s', [{ label: 'tokens/s' }], [[], []]);
  }
  charts.loss.setData([cols.step, cols.loss, cols.val, cols.best]);
  charts.lr.setData([cols.step, cols.lr]);
  charts.tokens.setData([cols.step, cols.tps]);
  if (qcols.step.length > 0) {
    if (!charts.ternary) {
      makeChart('ternary', 'Ternary codes (mean over projections)', [{ label: '-1' }, { label: '0' }, { label: '+1' }], [[], [], [], []], [0, 1]);
      makeChart('flip', 'Flip rate (codes changed since the previous report)', [{ label: 'mean' }], [[], []]);
      makeChart('sqnr', 'Weight SQNR (dB)', [{ label: 'mean' }, { label: 'worst projection' }], [[], [], []]);
    }
    charts.ternary.setData([qcols.step, qcols.neg, qcols.zero, qcols.pos]);
    charts.flip.setData([qcols.step, qcols.flip]);
    charts.sqnr.setData([qcols.step, qcols.sqnrMean, qcols.sqnrMin]);
    drawHeatmap();
  }
  state.charts = [...Object.keys(charts), ...(heat ? ['sqnr-heatmap'] : [])];
}

// weight SQNR per projection (rows) and report (columns), viridis colours, as in the HTML report
let heat = null;
function viridis(x) {
  const stops = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
  const p = Math.max(0, Math.min(1, x)) * (stops.length - 1), i = Math.min(stops.length - 2, Math.floor(p)), f = p - i;
  return `rgb(${stops[i].map((a, k) => Math.round(a + f * (stops[i + 1][k] - a))).join(',')})`;
}
function drawHeatmap() {
  const layers = state.quant[0].layers.map((l) => l.name);
  if (!heat) {
    const el = document.createElement('section');
    el.dataset.chart = 'sqnr-heatmap';
    el.innerHTML = '<h2>Weight SQNR per projection (dB; rows: projections, columns: reports)</h2>';
    heat = document.createElement('canvas');
    el.append(heat);
    $('charts').append(el);
  }
  const dpr = window.devicePixelRatio || 1, w = Math.max(320, $('charts').clientWidth - 40), labelW = 230, rowH = 9;
  const h = layers.length * rowH + 22;
  heat.width = w * dpr; heat.height = h * dpr; heat.style.width = `${w}px`; heat.style.height = `${h}px`;
  const ctx = heat.getContext('2d');
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  const values = state.quant.map((q) => layers.map((n) => q.layers.find((l) => l.name === n)?.weight_sqnr_db ?? null));
  const all = values.flat().filter((v) => v !== null);
  const lo = Math.min(...all), hi = Math.max(lo + 1e-6, ...all);
  const cellW = (w - labelW) / values.length;
  ctx.font = '9px system-ui, sans-serif';
  ctx.textBaseline = 'middle';
  layers.forEach((name, i) => {
    ctx.fillStyle = '#5a6472';
    ctx.fillText(name.replace(/^model\./, ''), 2, i * rowH + rowH / 2);
    values.forEach((col, j) => {
      ctx.fillStyle = col[i] === null ? '#ddd' : viridis((col[i] - lo) / (hi - lo));
      ctx.fillRect(labelW + j * cellW, i * rowH, Math.ceil(cellW), rowH - 1);
    });
  });
  ctx.fillStyle = '#5a6472';
  ctx.font = '11px system-ui, sans-serif';
  ctx.fillText(`${lo.toFixed(1)}–${hi.toFixed(1)} dB, steps ${qcols.step[0]}–${qcols.step[qcols.step.length - 1]}`, labelW, layers.length * rowH + 11);
}

function scheduleDraw() {
  if (!drawPending) { drawPending = true; requestAnimationFrame(drawCharts); }
}
window.addEventListener('resize', () => {
  for (const c of Object.values(charts)) c.setSize({ width: Math.max(320, $('charts').clientWidth - 24), height: 200 });
});
drawCharts();

const mean = (xs) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null);

// ---- the worker -------------------------------------------------------------------------------

const worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
const send = (type, extra = {}) => worker.postMessage({ type, ...extra });
let tokensEma = 0;

const setRunning = (running) => {
  state.running = running;
  $('start').textContent = running ? 'Pause' : state.done ? 'Done' : 'Start';
  $('start').disabled = state.done;
};

const on = {
  ready(m) {
    Object.assign(state, { ready: true, backend: m.backend, threads: m.threads, fileSystem: m.fileSystem, parameters: m.parameters, stopAt: m.stopAt });
    const c = m.config;
    $('status').innerHTML = '';
    for (const [k, v] of [
      ['model', `${c.layers} layers × ${c.dim} wide, ${c.heads} heads, ${c.bitlinear ? 'BitLinear (ternary)' : 'fp32'} · ${(m.parameters / 1e6).toFixed(2)} M parameters`],
      ['data', `tinyshakespeare, ${m.vocabSize} characters, batch ${c.batch} × ${c.context}`],
      ['kernels', m.backend === 'wasm' ? 'WebAssembly SIMD' : m.backend === 'webgpu' ? 'WebGPU (WGSL)' : 'plain JavaScript (no WebAssembly SIMD)'],
      ['threads', `${m.threads}${m.crossOriginIsolated ? '' : ' (not cross-origin isolated: single-threaded)'}`],
      ['checkpoints', m.fileSystem === 'opfs' ? 'Origin Private File System' : 'memory only (no OPFS)'],
    ]) {
      const span = document.createElement('span');
      span.innerHTML = `<b>${k}:</b> `;
      span.append(v);
      $('status').append(span);
    }
    for (const id of ['start', 'sampleBtn', 'save', 'load', 'tbBtn']) $(id).disabled = false;
    log(`ready: ${m.backend} backend, ${m.threads} thread(s), training to step ${m.stopAt === Number.MAX_SAFE_INTEGER ? c.iters : m.stopAt}`);
    if (params.get('autoload') === '1') send('load');
    if (params.get('autostart') === '1') { send('start'); setRunning(true); }
  },
  step(m) {
    state.step = m.step;
    state.losses.push(m.loss);
    const tps = m.tokens / m.seconds;
    tokensEma = tokensEma === 0 ? tps : 0.8 * tokensEma + 0.2 * tps;
    state.tokensPerSecond = tokensEma;
    $('step').textContent = String(m.step);
    $('loss').textContent = Number.isFinite(m.loss) ? m.loss.toFixed(3) : 'NaN (skipped)';
    $('tps').textContent = Math.round(tokensEma).toLocaleString('en-US');
    $('lr').textContent = m.lr.toExponential(2);
    cols.step.push(m.step);
    cols.loss.push(Number.isFinite(m.loss) ? m.loss : null);
    cols.val.push(null);
    cols.best.push(null);
    cols.lr.push(m.lr);
    cols.tps.push(tokensEma);
    scheduleDraw();
  },
  eval(m) {
    state.evals.push(m);
    const i = cols.step.lastIndexOf(m.step);
    if (i >= 0) cols.val[i] = m.valLoss;
    if (state.bestValLoss === null || m.valLoss < state.bestValLoss) {
      state.bestValLoss = m.valLoss;
      cols.best.fill(null);
      if (i >= 0) cols.best[i] = m.valLoss;
    }
    log(`eval step ${m.step}: val loss ${m.valLoss.toFixed(4)}${m.best ? ' (best so far)' : ''}`);
    scheduleDraw();
  },
  quant(m) {
    state.quant.push(m);
    const tern = m.layers.filter((l) => l.precision === 'ternary');
    qcols.step.push(m.step);
    for (const k of ['neg', 'zero', 'pos']) qcols[k].push(mean(tern.map((l) => l.ternary[k])));
    qcols.flip.push(mean(m.layers.map((l) => l.flip_rate).filter((v) => v !== null)));
    const sq = m.layers.map((l) => l.weight_sqnr_db).filter((v) => v !== null);
    qcols.sqnrMean.push(mean(sq));
    qcols.sqnrMin.push(sq.length ? Math.min(...sq) : null);
    scheduleDraw();
  },
  tensorboard(m) {
    // hand the event file to the browser as a download (put it in a directory; tensorboard --logdir DIR)
    const url = URL.createObjectURL(new Blob([m.bytes], { type: 'application/octet-stream' }));
    const a = document.createElement('a');
    a.href = url;
    a.download = m.name;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
    state.tensorboard = { name: m.name, bytes: m.bytes.byteLength };
    log(`TensorBoard events: ${m.name} (${m.bytes.byteLength} bytes)`);
  },
  sample(m) {
    state.samples.push(m);
    $('sample').textContent = `— sample at step ${m.step} —\n${m.text}`;
  },
  saved(m) {
    state.saved = m;
    log(`saved ${m.path} (OPFS) at step ${m.step}, weights ${m.digest}`);
  },
  loaded(m) {
    state.loaded = m;
    state.step = m.step;
    $('step').textContent = String(m.step);
    log(`loaded ${m.path} at step ${m.step}, weights ${m.digest}`);
  },
  paused(m) { log(`paused at step ${m.step}`); },
  done(m) {
    state.done = true;
    setRunning(false);
    log(`done at step ${m.step}`);
  },
  warning(m) {
    state.warnings.push(m.message);
    note(m.message);
    log(`warning: ${m.message}`);
  },
  error(m) {
    state.errors.push(m.message);
    setRunning(false);
    log(`error: ${m.message}`);
  },
};

worker.onmessage = ({ data }) => on[data.type]?.(data);
worker.onerror = (e) => on.error({ message: `worker failed: ${e.message}` });

$('start').onclick = () => {
  send(state.running ? 'pause' : 'start');
  setRunning(!state.running);
};
$('sampleBtn').onclick = () => send('sample');
$('save').onclick = () => send('save');
$('load').onclick = () => send('load');
$('tbBtn').onclick = () => send('tensorboard');

send('init', { options });
