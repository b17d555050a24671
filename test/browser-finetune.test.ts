// The browser fine-tuning page (examples/browser/finetune.html) in headless Chromium: a base
// checkpoint and a text file in, LoRA fine-tuning in a Web Worker with the live chart, a sample
// from base + adapter, and the adapter in PEFT's format — with the same losses, bit for bit, as
// runFinetune in Node for the same seed and options (screenshot in test/artifacts/). Bad input:
// a base folder without model.safetensors is refused on the page. Skipped (with the reason
// printed) only where Chromium is not installed, and never under CI=true.
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, chromiumPath, launchChromium, openPage } from './portable/chromium.js';
import { runTraining } from '../src/train/run.js';
import { DEFAULT_FINETUNE_OPTIONS, runFinetune } from '../src/peft/finetune.js';
import { getDefaultFileSystem } from '../src/runtime/fs.js';
import { latestCheckpoint } from '../src/io/checkpoint-manager.js';

const ARTIFACTS = join(REPO_ROOT, 'test/artifacts');
const WORK = join(ARTIFACTS, 'finetune-page');
const STEPS = 12;
const hasChromium = chromiumPath() !== undefined;
if (!hasChromium && !process.env.CI) console.warn('browser-finetune: SKIPPING: Chromium is not installed (apt-get install chromium)');

type Server = { url: string; close: () => Promise<void> };
interface FinetuneState {
  ready: boolean; done: boolean; losses: number[]; errors: string[]; warnings: string[]; sample: string | null;
  header: { trainable: number; total: number; baseKind: string; targets: number } | null;
  adapter: { keys: string[]; config: Record<string, unknown> } | null;
}

describe.skipIf(!hasChromium && !process.env.CI)('the browser fine-tuning page (examples/browser/finetune.html) in headless Chromium', () => {
  let browser: Browser;
  let server: Server;
  let baseUrl = '';
  let dataUrl = '';
  let nodeLosses: number[] = [];
  let hfUrl = '';
  let nodeHfLosses: number[] = [];

  beforeAll(async () => {
    if (!chromiumPath()) throw new Error('Chromium is not installed (apt-get install chromium); CI=true requires it');
    rmSync(WORK, { recursive: true, force: true });
    mkdirSync(WORK, { recursive: true });
    // a small base (2 layers, dim 32) trained briefly on tinyshakespeare, and an excerpt of the KJV as "the user's text"
    const fs = await getDefaultFileSystem();
    await runTraining({ data: join(REPO_ROOT, 'examples/data/tinyshakespeare.txt'), layers: 2, heads: 2, dim: 32, context: 32, batch: 4, iters: 30, evalIters: 2, evalEvery: 0,
      sampleTokens: 0, errorEvery: 0, threads: 1, out: join(WORK, 'base'), saveEvery: 0 }, {}, { fs });
    const ckpt = (await latestCheckpoint(fs, join(WORK, 'base')))!;
    const kjv = join(REPO_ROOT, '../shared/data/kjv-excerpt.txt');
    const text = existsSync(kjv) ? readFileSync(kjv, 'utf8').slice(0, 40_000) : readFileSync(join(REPO_ROOT, 'examples/data/tinyshakespeare.txt'), 'utf8').slice(-40_000);
    const data = join(WORK, 'text.txt');
    writeFileSync(data, text);
    baseUrl = `/${relative(REPO_ROOT, ckpt)}/`;
    dataUrl = `/${relative(REPO_ROOT, data)}`;
    // Node: the run the page makes (finetune.js's options), for the same seed
    const losses: number[] = [];
    await runFinetune({
      ...DEFAULT_FINETUNE_OPTIONS, from: ckpt, data, out: join(WORK, 'node-run'), peft: 'lora', threads: 1, seed: 1337, iters: STEPS, lr: 3e-3,
      warmup: Math.min(DEFAULT_FINETUNE_OPTIONS.warmup, Math.floor(STEPS / 4)), evalEvery: 0, evalIters: 2, logEvery: 1, unknownChars: 'drop',
      lora: { r: 4, lora_alpha: 8, target_modules: 'all-linear' },
    }, { onStep: (s) => void losses.push(s.loss) }, { fs });
    nodeLosses = losses;
    // a Hugging Face LLaMA folder (the GQA fixture) with a character-level tokenizer.json over the text
    const hfDir = join(WORK, 'hf');
    mkdirSync(hfDir, { recursive: true });
    for (const f of ['config.json', 'model.safetensors']) writeFileSync(join(hfDir, f), readFileSync(join(REPO_ROOT, '../shared/fixtures/hf/tiny-llama-gqa', f)));
    const chars = [...new Set(text)].sort();
    while (chars.length < 97) chars.push(`<unused${chars.length}>`);
    writeFileSync(join(hfDir, 'tokenizer.json'), JSON.stringify({
      version: '1.0', truncation: null, padding: null, added_tokens: [], normalizer: null, pre_tokenizer: null, post_processor: null, decoder: { type: 'Fuse' },
      model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, vocab: Object.fromEntries(chars.map((c, i) => [c, i])), merges: [] },
    }));
    hfUrl = `/${relative(REPO_ROOT, hfDir)}/`;
    const hfLosses: number[] = [];
    await runFinetune({
      ...DEFAULT_FINETUNE_OPTIONS, from: null, fromHf: hfDir, data, out: join(WORK, 'node-hf-run'), peft: 'lora', threads: 1, seed: 1337, iters: 6, lr: 3e-3,
      warmup: Math.min(DEFAULT_FINETUNE_OPTIONS.warmup, Math.floor(6 / 4)), evalEvery: 0, evalIters: 2, logEvery: 1, unknownChars: 'drop',
      lora: { r: 4, lora_alpha: 8, target_modules: 'all-linear' },
    }, { onStep: (s) => void hfLosses.push(s.loss) }, { fs });
    nodeHfLosses = hfLosses;
    const { serveStatic } = await import('../scripts/serve-example.mjs');
    server = await serveStatic({ isolate: true });
    browser = await launchChromium();
  }, 240_000);

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  it(`LoRA-fine-tunes a picked base on a text in a Web Worker (2 threads): the same ${STEPS} losses as Node, a sample, the adapter in PEFT's format`, async () => {
    const context = await browser.newContext({ viewport: { width: 960, height: 1000 } });
    const { page, consoleLines } = await openPage(context);
    try {
      await page.goto(`${server.url}/examples/browser/finetune.html?base=${baseUrl}&data=${dataUrl}&autostart=1&steps=${STEPS}&r=4&alpha=8&threads=2&evalIters=2&sampleTokens=80`);
      await page.waitForFunction('(() => { const s = window.__finetune; return s && (s.errors.length > 0 || (s.done && s.sample !== null)); })()', undefined, { timeout: 180_000, polling: 100 });
      const s = await page.evaluate(() => (window as unknown as { __finetune: FinetuneState }).__finetune);
      expect(s.errors).toEqual([]);
      expect(s.losses).toEqual(nodeLosses); // same bits as Node (2 threads here, 1 there)
      expect(s.header!.baseKind).toBe('ternary');
      expect(s.header!.targets).toBe(2 * 6);
      expect(s.header!.trainable).toBeLessThan(s.header!.total / 4);
      expect(s.adapter!.config).toMatchObject({ peft_type: 'LORA', r: 4, lora_alpha: 8 });
      expect(s.adapter!.keys).toContain('base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight');
      expect(s.adapter!.keys).toContain('base_model.model.model.layers.1.mlp.down_proj.lora_B.weight');
      expect(s.sample!.length).toBeGreaterThan(20);
      expect(await page.textContent('#sample')).toContain('sample (base + adapter)');
      expect(await page.isEnabled('#download')).toBe(true);
      mkdirSync(ARTIFACTS, { recursive: true });
      await page.screenshot({ path: join(ARTIFACTS, 'browser-finetune.png'), fullPage: true });
    } catch (err) {
      console.log(consoleLines.join('\n'));
      throw err;
    } finally {
      await context.close();
    }
  }, 240_000);

  it('takes a Hugging Face LLaMA folder (grouped-query attention, tokenizer.json) as the base: the same losses as Node', async () => {
    const context = await browser.newContext();
    const { page, consoleLines } = await openPage(context);
    try {
      await page.goto(`${server.url}/examples/browser/finetune.html?base=${hfUrl}&hf=1&data=${dataUrl}&autostart=1&steps=6&r=4&alpha=8&threads=2&evalIters=2&sampleTokens=20`);
      await page.waitForFunction('(() => { const s = window.__finetune; return s && (s.errors.length > 0 || (s.done && s.sample !== null)); })()', undefined, { timeout: 180_000, polling: 100 });
      const s = await page.evaluate(() => (window as unknown as { __finetune: FinetuneState }).__finetune);
      expect(s.errors).toEqual([]);
      expect(s.losses).toEqual(nodeHfLosses);
      expect(s.header!.baseKind).toBe('dense');
      expect(s.adapter!.keys).toContain('base_model.model.model.layers.0.self_attn.k_proj.lora_A.weight');
    } catch (err) {
      console.log(consoleLines.join('\n'));
      throw err;
    } finally {
      await context.close();
    }
  }, 240_000);

  it('refuses a base folder without model.safetensors, naming the file', async () => {
    const context = await browser.newContext();
    const { page } = await openPage(context);
    try {
      await page.goto(`${server.url}/examples/browser/finetune.html?base=/test/artifacts/finetune-page/&data=${dataUrl}&autostart=1&steps=2`);
      await page.waitForFunction('window.__finetune && window.__finetune.errors.length > 0', undefined, { timeout: 60_000 });
      expect(await page.textContent('#errors')).toMatch(/trainer\.json: HTTP 404|model\.safetensors: HTTP 404/);
    } finally {
      await context.close();
    }
  }, 120_000);
});
