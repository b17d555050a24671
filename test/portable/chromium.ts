// Node-side helpers of the cross-runtime tests (not part of the portable suite itself): find
// the runtime binaries, and drive Debian's Chromium headless with playwright-core.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Browser, BrowserContext, ConsoleMessage, Page } from 'playwright-core';

export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** Where Chromium is: $CHROMIUM_PATH, else Debian's package. */
export function chromiumPath(): string | undefined {
  for (const p of [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser']) {
    if (p && existsSync(p)) return p;
  }
  return undefined;
}

/** A runtime binary from node_modules/.bin (the deno and bun npm packages), if installed. */
export function binPath(name: 'deno' | 'bun'): string | undefined {
  const p = fileURLToPath(new URL(`../../node_modules/.bin/${name}`, import.meta.url));
  return existsSync(p) ? p : undefined;
}

/**
 * Headless Chromium, quiet: no network beyond what pages load, no component updates.
 * `--enable-unsafe-webgpu` is not needed (the CPU backends only).
 */
export async function launchChromium(): Promise<Browser> {
  const { chromium } = await import('playwright-core');
  return chromium.launch({
    executablePath: chromiumPath(),
    headless: true,
    args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-dev-shm-usage'],
  });
}

/** A page whose console lines and errors are collected (printed when a test fails). */
export async function openPage(context: BrowserContext): Promise<{ page: Page; consoleLines: string[] }> {
  const page = await context.newPage();
  const consoleLines: string[] = [];
  page.on('console', (m: ConsoleMessage) => consoleLines.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => consoleLines.push(`pageerror: ${e.message}`));
  return { page, consoleLines };
}
