// The browser: the training page (examples/browser/) in headless Chromium, checkpoints in the
// Origin Private File System, and the two kinds of bad input a browser brings (no WebAssembly
// SIMD; a page that is not cross-origin isolated). Chromium is Debian's /usr/bin/chromium driven
// by playwright-core; pages come from scripts/serve-example.mjs on 127.0.0.1. Skipped (with the
// reason printed) only where Chromium is not installed, and never under CI=true.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, chromiumPath, launchChromium, openPage } from './portable/chromium.js';

const ARTIFACTS = join(REPO_ROOT, 'test/artifacts');
const STEPS = 40;
const hasChromium = chromiumPath() !== undefined;
if (!hasChromium && !process.env.CI) console.warn('browser: SKIPPING the browser tests: Chromium is not installed (apt-get install chromium)');

interface PageState {
  ready: boolean; backend: string; threads: number; crossOriginIsolated: boolean; fileSystem: string; step: number;
  losses: number[]; tokensPerSecond: number; samples: { step: number; text: string }[]; warnings: string[]; errors: string[];
  saved: { step: number; path: string; digest: string } | null; loaded: { step: number; path: string; digest: string } | null; done: boolean;
}

type Server = { url: string; close: () => Promise<void> };

async function pageState(page: Page): Promise<PageState> {
  return page.evaluate(() => (window as unknown as { __bitnet: PageState }).__bitnet);
}

/** Wait until `pred(state)` holds (or an error shows up on the page). */
async function waitForState(page: Page, pred: string, timeout = 90_000): Promise<PageState> {
  await page.waitForFunction(`(() => { const s = window.__bitnet; return s && (s.errors.length > 0 || (${pred})); })()`, undefined, { timeout, polling: 100 });
  const s = await pageState(page);
  expect(s.errors, 'errors on the page').toEqual([]);
  return s;
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

describe.skipIf(!hasChromium && !process.env.CI)('the browser training page (examples/browser) in headless Chromium', () => {
  let browser: Browser;
  let isolatedServer: Server;
  let plainServer: Server;

  beforeAll(async () => {
    if (!chromiumPath()) throw new Error('Chromium is not installed (apt-get install chromium); CI=true requires it');
    const { serveStatic } = await import('../scripts/serve-example.mjs');
    isolatedServer = await serveStatic({ isolate: true });
    plainServer = await serveStatic({ isolate: false });
    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close();
    await isolatedServer?.close();
    await plainServer?.close();
  });

  it(`trains the default BitNet model in a Web Worker on 2 threads: after ${STEPS} steps the loss fell, tokens/s and a text sample show (screenshot in test/artifacts/)`, async () => {
    const context = await browser.newContext({ viewport: { width: 960, height: 1100 } });
    const { page, consoleLines } = await openPage(context);
    try {
      await page.goto(`${isolatedServer.url}/examples/browser/?autostart=1&threads=2&steps=${STEPS}&sampleEvery=0&sampleTokens=120`);
      const s = await waitForState(page, 's.done', 120_000);
      expect(s.crossOriginIsolated).toBe(true);
      expect([s.backend, s.threads, s.fileSystem]).toEqual(['wasm', 2, 'opfs']);
      expect(s.losses).toHaveLength(STEPS);
      const first = mean(s.losses.slice(0, 3));
      const last = mean(s.losses.slice(-5));
      console.log(`browser page: loss ${first.toFixed(3)} -> ${last.toFixed(3)} in ${STEPS} steps, ${Math.round(s.tokensPerSecond)} tokens/s (2 threads)`);
      expect(first).toBeGreaterThan(3.9); // ln 65 = 4.17 at the start
      expect(last).toBeLessThan(first - 0.5);
      expect(s.tokensPerSecond).toBeGreaterThan(0);
      expect(s.samples.at(-1)!.text.length).toBeGreaterThan(50);
      expect(await page.textContent('#tps')).toMatch(/^[\d,]+$/);
      expect(await page.textContent('#sample')).toContain(`sample at step ${STEPS}`);
      mkdirSync(ARTIFACTS, { recursive: true });
      await page.screenshot({ path: join(ARTIFACTS, 'browser-training.png'), fullPage: true });
    } catch (err) {
      console.log(consoleLines.join('\n'));
      throw err;
    } finally {
      await context.close();
    }
  });

  it('saves a checkpoint to OPFS from the page and, after a reload, loads it back with the same weights and step', async () => {
    const context = await browser.newContext();
    const { page, consoleLines } = await openPage(context);
    try {
      await page.goto(`${isolatedServer.url}/examples/browser/?autostart=1&threads=1&steps=3&sampleEvery=0&sampleTokens=8`);
      await waitForState(page, 's.done');
      await page.click('#save');
      const saved = (await waitForState(page, 's.saved !== null')).saved!;
      expect(saved.step).toBe(3);
      expect(saved.path).toMatch(/bitnet-browser\/ckpt-3$/);
      await page.goto(`${isolatedServer.url}/examples/browser/?autoload=1&threads=1&steps=4&sampleEvery=0&sampleTokens=8`);
      const loaded = (await waitForState(page, 's.loaded !== null')).loaded!;
      expect({ step: loaded.step, digest: loaded.digest }).toEqual({ step: 3, digest: saved.digest });
      await page.click('#start'); // and it trains on from there
      const s = await waitForState(page, 's.done');
      expect(s.step).toBe(4);
    } catch (err) {
      console.log(consoleLines.join('\n'));
      throw err;
    } finally {
      await context.close();
    }
  });

  it('keeps the FileSystem contract on OPFS, and a checkpoint written with saveCheckpoint loads back after a reload', async () => {
    const context = await browser.newContext();
    const { page, consoleLines } = await openPage(context);
    try {
      const run = async (phase: string) => {
        await page.goto(`${isolatedServer.url}/test/portable/opfs.html?phase=${phase}`);
        await page.waitForFunction(() => (window as unknown as { __opfsResult?: unknown }).__opfsResult !== undefined, undefined, { timeout: 30_000 });
        return page.evaluate(() => (window as unknown as { __opfsResult: { kind?: string; error?: string; checks: { name: string; ok: boolean; detail: string }[] } }).__opfsResult);
      };
      const saved = await run('save');
      expect(saved.error).toBeUndefined();
      expect(saved.kind).toBe('opfs');
      const loaded = await run('load');
      expect(loaded.error).toBeUndefined();
      const all = [...saved.checks, ...loaded.checks];
      expect(all.length).toBeGreaterThanOrEqual(20);
      expect(all.filter((c) => !c.ok).map((c) => `${c.name}: ${c.detail}`)).toEqual([]);
    } catch (err) {
      console.log(consoleLines.join('\n'));
      throw err;
    } finally {
      await context.close();
    }
  });

  it('without WebAssembly SIMD (?simd=0) trains on the js backend and warns, in the console and on the page', async () => {
    const context = await browser.newContext();
    const { page, consoleLines } = await openPage(context);
    try {
      await page.goto(`${isolatedServer.url}/examples/browser/?simd=0&autostart=1&steps=2&sampleEvery=0&sampleTokens=4`);
      const s = await waitForState(page, 's.done', 120_000);
      expect([s.backend, s.threads, s.step]).toEqual(['js', 1, 2]);
      expect(s.losses.every(Number.isFinite)).toBe(true);
      const warning = 'WebAssembly SIMD is not available in this runtime; using the (slower) js backend';
      expect(s.warnings.join('\n')).toContain(warning);
      expect(consoleLines.some((l) => l.startsWith('warning:') && l.includes(warning)), consoleLines.join('\n')).toBe(true);
      expect(await page.textContent('#notes')).toContain(warning);
    } catch (err) {
      console.log(consoleLines.join('\n'));
      throw err;
    } finally {
      await context.close();
    }
  });

  it('on a page that is not cross-origin isolated runs single-threaded and says so', async () => {
    const context = await browser.newContext();
    const { page, consoleLines } = await openPage(context);
    try {
      await page.goto(`${plainServer.url}/examples/browser/?autostart=1&threads=2&steps=2&sampleEvery=0&sampleTokens=4`);
      const s = await waitForState(page, 's.done');
      expect([s.crossOriginIsolated, s.backend, s.threads, s.step]).toEqual([false, 'wasm', 1, 2]);
      expect(await page.textContent('#notes')).toContain('not cross-origin isolated');
      expect(await page.textContent('#status')).toContain('single-threaded');
    } catch (err) {
      console.log(consoleLines.join('\n'));
      throw err;
    } finally {
      await context.close();
    }
  });
});
