// The webgpu backend in headless Chromium (--enable-unsafe-webgpu: SwiftShader's WebGPU adapter):
// the page test/portable/webgpu-page.mjs trains the same short BitNet run as
// test/webgpu-training.test.ts from dist/; its losses must track the wasm backend's in Node and
// repeat bit for bit. Skipped (reason printed) only without Chromium or dist/, never under CI=true.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createWasmBackend } from '../src/backend/wasm/index.js';
import { GPT, type GPTConfig } from '../src/nn/gpt.js';
import { AdamW } from '../src/optim/adamw.js';
import { trainStep } from '../src/optim/train-step.js';
import { repeatPatternBatch } from './pattern-task.js';
import { Heap } from '../src/tensor/heap.js';
import { Rng } from '../src/util/rng.js';
import { REPO_ROOT, chromiumPath } from './portable/chromium.js';

const CONFIG: GPTConfig = { vocabSize: 11, contextLength: 12, layers: 1, heads: 2, dim: 16, bitlinear: true, norm: 'rms', mlp: 'relu2', pos: 'rope', tiedHead: false };
const RUN = { B: 8, T: 12, steps: 6 };
const ready = chromiumPath() !== undefined && existsSync(join(REPO_ROOT, 'dist/gpu/index.js'));
if (!ready && !process.env.CI) console.warn('webgpu: SKIPPING the webgpu browser test: Chromium or dist/ (npm run build) is missing');

describe.skipIf(!ready && !process.env.CI)('the webgpu backend in headless Chromium', () => {
  it(`trains ${RUN.steps} BitNet steps from dist/ on the browser's adapter: within 1e-3 of wasm, bit-identical on repeat`, async () => {
    const heap = new Heap(await createWasmBackend());
    const model = new GPT(CONFIG).materialize(heap, new Rng(42));
    const opt = new AdamW(model.params, { lr: 3e-2, betas: [0.9, 0.95], weightDecay: 0.01, clipNorm: 1 });
    const data = new Rng(7);
    const wasm: number[] = [];
    for (let s = 0; s < RUN.steps; s++) wasm.push(await trainStep(heap, model, opt, repeatPatternBatch(data, RUN.B, RUN.T, CONFIG.vocabSize)));

    const { serveStatic } = await import('../scripts/serve-example.mjs');
    const server = await serveStatic({ isolate: true });
    const { chromium } = await import('playwright-core');
    const browser = await chromium.launch({
      executablePath: chromiumPath(), headless: true,
      args: ['--no-sandbox', '--enable-unsafe-webgpu', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-dev-shm-usage'],
    });
    try {
      const page = await browser.newPage();
      const lines: string[] = [];
      page.on('console', (m) => lines.push(`${m.type()}: ${m.text()}`));
      page.on('pageerror', (e) => lines.push(`pageerror: ${e.message}`));
      const q = new URLSearchParams({ config: JSON.stringify(CONFIG), run: JSON.stringify(RUN) });
      await page.goto(`${server.url}/test/portable/webgpu-page.html?${q}`);
      await page.waitForFunction('window.__webgpu && window.__webgpu.done', undefined, { timeout: 90_000, polling: 200 });
      const s = await page.evaluate(() => (window as unknown as { __webgpu: { error: string | null; adapter: string; losses: number[]; repeat: number[] } }).__webgpu);
      expect(s.error, lines.join('\n')).toBeNull();
      console.log(`Chromium webgpu adapter: ${s.adapter}; losses ${s.losses.map((l) => l.toFixed(5)).join(' ')} (wasm ${wasm.map((l) => l.toFixed(5)).join(' ')})`);
      expect(s.repeat).toEqual(s.losses);
      for (let i = 0; i < RUN.steps; i++) expect(Math.abs(s.losses[i]! - wasm[i]!), `step ${i}`).toBeLessThan(1e-3 * wasm[i]!);
    } finally {
      await browser.close();
      await server.close();
    }
  });
});
