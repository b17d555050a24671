// The portable suite inside a browser's module Worker (where a real training page runs it too).
import * as lib from '../../dist/index.js';
import { runPortableSuite } from './suite.mjs';

try {
  const corpus = await (await fetch(new URL('../../examples/data/tinyshakespeare.txt', import.meta.url))).text();
  const ua = navigator.userAgent.match(/(HeadlessChrome|Chrome|Chromium|Firefox|Safari)\/[\d.]+/)?.[0] ?? navigator.userAgent;
  const runtime = `${ua}${globalThis.crossOriginIsolated ? '' : ' (not cross-origin isolated)'}`;
  const result = await runPortableSuite(lib, { corpus, log: (m) => postMessage({ log: `[${runtime}] ${m}` }) });
  postMessage({ result: { runtime, crossOriginIsolated: globalThis.crossOriginIsolated === true, ...result } });
} catch (err) {
  postMessage({ error: `${err?.message ?? err}\n${err?.stack ?? ''}` });
}
