// The page side of the browser example: starts worker.js, draws the loss chart (a plain
// canvas), shows tokens/s and text samples, and forwards the buttons. `window.__bitnet` holds
// the state for tests (test/browser.test.ts).

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
  simd: params.get('simd') !== '0',
};

const state = (window.__bitnet = {
  ready: false, backend: null, threads: 0, crossOriginIsolated: isolated, step: 0, losses: [], tokensPerSecond: 0,
  samples: [], warnings: [], errors: [], saved: null, loaded: null, done: false, running: false,
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

// ---- the loss chart ---------------------------------------------------------------------------

const chart = $('chart');
const ctx = chart.getContext('2d');
let drawPending = false;

function drawChart() {
  drawPending = false;
  const dpr = window.devicePixelRatio || 1;
  const w = chart.clientWidth;
  const h = chart.clientHeight;
  if (chart.width !== Math.round(w * dpr)) { chart.width = Math.round(w * dpr); chart.height = Math.round(h * dpr); }
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  const pad = { l: 44, r: 12, t: 10, b: 24 };
  const losses = state.losses;
  const n = Math.max(losses.length, 10);
  const finite = losses.filter(Number.isFinite);
  const hi = Math.max(4.5, ...finite);
  const lo = Math.min(1, ...finite);
  const x = (i) => pad.l + ((w - pad.l - pad.r) * i) / Math.max(1, n - 1);
  const y = (v) => pad.t + ((h - pad.t - pad.b) * (hi - v)) / (hi - lo);
  ctx.font = '11px system-ui, sans-serif';
  ctx.fillStyle = '#5a6472';
  ctx.strokeStyle = '#e6e9ed';
  ctx.lineWidth = 1;
  for (let v = Math.ceil(lo * 2) / 2; v <= hi; v += 0.5) {
    ctx.beginPath(); ctx.moveTo(pad.l, y(v)); ctx.lineTo(w - pad.r, y(v)); ctx.stroke();
    ctx.fillText(v.toFixed(1), 8, y(v) + 4);
  }
  ctx.fillText('step', w - pad.r - 26, h - 6);
  ctx.fillText(String(n), w - pad.r - 60, h - 6);
  ctx.fillText('0', pad.l, h - 6);
  // raw losses, light; their running average (EMA 0.9), dark
  const line = (values, color, width) => {
    ctx.strokeStyle = color; ctx.lineWidth = width; ctx.beginPath();
    values.forEach((v, i) => (i === 0 ? ctx.moveTo(x(i), y(v)) : ctx.lineTo(x(i), y(v))));
    ctx.stroke();
  };
  let ema = finite[0] ?? 0;
  const smooth = losses.map((v) => (ema = Number.isFinite(v) ? 0.9 * ema + 0.1 * v : ema));
  line(losses.map((v) => (Number.isFinite(v) ? v : hi)), '#9dc1f5', 1);
  line(smooth, '#1f4fa3', 2);
}

function scheduleDraw() {
  if (!drawPending) { drawPending = true; requestAnimationFrame(drawChart); }
}
window.addEventListener('resize', scheduleDraw);
drawChart();

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
      ['kernels', m.backend === 'wasm' ? 'WebAssembly SIMD' : 'plain JavaScript (no WebAssembly SIMD)'],
      ['threads', `${m.threads}${m.crossOriginIsolated ? '' : ' (not cross-origin isolated: single-threaded)'}`],
      ['checkpoints', m.fileSystem === 'opfs' ? 'Origin Private File System' : 'memory only (no OPFS)'],
    ]) {
      const span = document.createElement('span');
      span.innerHTML = `<b>${k}:</b> `;
      span.append(v);
      $('status').append(span);
    }
    for (const id of ['start', 'sampleBtn', 'save', 'load']) $(id).disabled = false;
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
    scheduleDraw();
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

send('init', { options });
