#!/usr/bin/env node
// A tiny static file server for the browser example and the browser tests.
//
//   npm run serve:example              # http://127.0.0.1:8080/examples/browser/
//   node scripts/serve-example.mjs --port 9000 --no-isolation
//
// It serves the repository root (so pages can import dist/ and fetch examples/data/) on
// localhost only, with `Cross-Origin-Opener-Policy: same-origin` and
// `Cross-Origin-Embedder-Policy: require-corp`, which make the page cross-origin isolated:
// SharedArrayBuffer exists and the wasm backend can run threads. `--no-isolation` leaves the
// headers out (the page then runs single-threaded and says so).
import { createServer } from 'node:http';
import { readFile, stat } from 'node:fs/promises';
import { extname, join, normalize, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.wasm': 'application/wasm',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
};

/** The repository root (this file is scripts/serve-example.mjs). */
export const REPO_ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)));

/**
 * Start serving `root` on `host:port` (port 0 picks a free one). Resolves to
 * `{ url, port, close() }` once listening.
 * @param {{ root?: string, host?: string, port?: number, isolate?: boolean }} [options]
 */
export function serveStatic({ root = REPO_ROOT, host = '127.0.0.1', port = 0, isolate = true } = {}) {
  const base = resolve(root);
  const server = createServer(async (req, res) => {
    const headers = { 'Cache-Control': 'no-store', 'Cross-Origin-Resource-Policy': 'same-origin' };
    if (isolate) {
      headers['Cross-Origin-Opener-Policy'] = 'same-origin';
      headers['Cross-Origin-Embedder-Policy'] = 'require-corp';
    }
    try {
      const url = new URL(req.url ?? '/', 'http://localhost');
      let path = normalize(join(base, decodeURIComponent(url.pathname)));
      if (path !== base && !path.startsWith(base + sep)) {
        res.writeHead(403, headers).end('outside the served directory');
        return;
      }
      if ((await stat(path)).isDirectory()) path = join(path, 'index.html');
      const body = await readFile(path);
      res.writeHead(200, { ...headers, 'Content-Type': TYPES[extname(path)] ?? 'application/octet-stream' });
      res.end(req.method === 'HEAD' ? undefined : body);
    } catch {
      res.writeHead(404, { ...headers, 'Content-Type': 'text/plain' }).end('not found');
    }
  });
  return new Promise((resolvePromise, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      const actual = server.address().port;
      resolvePromise({
        url: `http://${host}:${actual}`,
        port: actual,
        close: () => new Promise((done) => { server.closeAllConnections?.(); server.close(() => done()); }),
      });
    });
  });
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const portArg = args.indexOf('--port');
  const port = portArg >= 0 ? Number(args[portArg + 1]) : 8080;
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`serve-example: --port must be an integer from 0 to 65535, got ${args[portArg + 1]}`);
    process.exit(2);
  }
  const isolate = !args.includes('--no-isolation');
  const { url } = await serveStatic({ port, isolate });
  console.log(`serving ${REPO_ROOT} at ${url} (${isolate ? 'cross-origin isolated: threads on' : 'not isolated: single-threaded'})`);
  console.log(`open ${url}/examples/browser/ (run npm run build first)`);
}
