// The webgpu backend in a browser page (test/webgpu-browser.test.ts drives it in headless
// Chromium): the same short BitNet training as test/webgpu-training.test.ts, reported on
// window.__webgpu for the test to compare with the wasm backend in Node.
import { AdamW, GPT, Heap, Rng, createBackend, trainStep } from '../../dist/index.js';

const state = { done: false, error: null, adapter: '', losses: [], repeat: [] };
window.__webgpu = state;

function patternBatch(rng, B, T, V, period = 4) {
  const tokens = new Int32Array(B * T), targets = new Int32Array(B * T), pattern = new Int32Array(period);
  for (let b = 0; b < B; b++) {
    for (let i = 0; i < period; i++) pattern[i] = 1 + rng.int(V - 1);
    for (let t = 0; t < T; t++) {
      tokens[b * T + t] = pattern[t % period];
      targets[b * T + t] = t < period - 1 ? 0 : pattern[(t + 1) % period];
    }
  }
  return { tokens, targets, B, T };
}

const params = new URLSearchParams(location.search);
const config = JSON.parse(params.get('config'));
const run = JSON.parse(params.get('run'));

async function trainRun(be) {
  const heap = new Heap(be);
  const model = new GPT(config).materialize(heap, new Rng(42));
  const opt = new AdamW(model.params, { lr: 3e-2, betas: [0.9, 0.95], weightDecay: 0.01, clipNorm: 1 });
  const data = new Rng(7);
  const losses = [];
  for (let s = 0; s < run.steps; s++) losses.push(await trainStep(heap, model, opt, patternBatch(data, run.B, run.T, config.vocabSize)));
  return losses;
}

try {
  const be = await createBackend('webgpu');
  state.adapter = be.adapter;
  state.losses = await trainRun(be);
  state.repeat = await trainRun(be);
  be.dispose();
} catch (e) {
  state.error = String(e && e.stack || e);
}
state.done = true;
