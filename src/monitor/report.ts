/**
 * `bitnet-train report`: a run's log as one self-contained HTML file (no network needed to open
 * it): loss curves with the best step marked, lr, tokens/s, per-projection SQNR heat maps, the
 * −1/0/+1 fractions, flip rate, sensitivity ranking and mixed-precision picks, profile, run config
 * and samples. Charts are drawn by uPlot (bundled into the file: ~50 kB, canvas-based, fast on
 * 10k-point series); the heat maps by a small canvas routine (./report-client.ts).
 */
import type { FileSystem } from '../runtime/fs-types.js';
import { FileSystemError, FS_CODE_TEXT, basename, dirname, joinPath } from '../runtime/fs-types.js';
import { REPORT_CLIENT_JS } from './report-client.js';
import { type RunSeries, parseRunLog } from './run-log.js';

/** uPlot's script (IIFE build, defines `uPlot`) and stylesheet, inlined into the report. */
export interface ReportAssets {
  uplotJs: string;
  uplotCss: string;
}

const UPLOT_FILES = { js: 'node_modules/uplot/dist/uPlot.iife.min.js', css: 'node_modules/uplot/dist/uPlot.min.css' };

/**
 * Read uPlot's files from the nearest `node_modules/uplot` above this module (Node's lookup,
 * which Deno and Bun follow for npm packages), else above the working directory.
 */
export async function loadUplotAssets(fs: FileSystem): Promise<ReportAssets> {
  const starts: string[] = [];
  const here = new URL('.', import.meta.url);
  if (here.protocol === 'file:') starts.push(decodeURIComponent(here.pathname).replace(/^\/([A-Za-z]:\/)/, '$1'));
  starts.push('.');
  for (const start of starts) {
    for (let dir = start.replace(/\/$/, ''); ; dir = dirname(dir)) {
      const js = joinPath(dir, UPLOT_FILES.js);
      if (await fs.exists(js)) return { uplotJs: await fs.readText(js), uplotCss: await fs.readText(joinPath(dir, UPLOT_FILES.css)) };
      if (dir === '.' || dir === '/' || dirname(dir) === dir) break;
    }
  }
  throw new Error(`report: cannot find ${UPLOT_FILES.js} above ${starts.join(' or ')} (install the package's dependencies: npm install)`);
}

const escapeHtml = (s: string): string => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
/** JSON safe inside a <script> element ('<' escaped, so no '</script>' can end it). */
const scriptJson = (v: unknown): string => JSON.stringify(v).replace(/</g, '\\u003c').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');

/** The report page for `series` (`title`: shown in the header, usually the run directory). */
export function renderReport(series: RunSeries, assets: ReportAssets, title: string): string {
  const best = series.best ? `best val loss ${series.best.valLoss.toFixed(4)} at step ${series.best.step}` : 'no evaluation yet';
  const last = series.train.step.at(-1);
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:">
<title>${escapeHtml(title)} — bitnet-train report</title>
<style>${assets.uplotCss}</style>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 0 auto; max-width: 1140px; padding: 16px 20px; color: #222; }
h1 { font-size: 20px; margin: 0 0 4px; } h2 { font-size: 16px; margin: 24px 0 6px; } h3 { font-size: 13px; margin: 10px 0 4px; }
.summary { color: #555; margin: 0 0 8px; } .note { color: #777; margin: 0 0 4px; font-size: 12px; }
pre { background: #f6f6f6; padding: 8px; overflow-x: auto; white-space: pre-wrap; font-size: 12px; }
table { border-collapse: collapse; font-size: 12px; margin: 6px 0; } th, td { border: 1px solid #ddd; padding: 2px 8px; text-align: left; }
</style>
</head>
<body>
<h1>${escapeHtml(title)}</h1>
<p class="summary">${last !== undefined ? `${series.train.step.length} logged steps, last ${last}` : 'no steps logged'} | ${escapeHtml(best)}${series.quant.step.length ? ` | ${series.quant.step.length} error-analysis reports over ${series.quant.layers.length} projections` : ''}</p>
<main id="charts"></main>
<div id="info"></div>
<script id="report-data" type="application/json">${scriptJson(series)}</script>
<script>${assets.uplotJs.replace(/<\/script/gi, '<\\/script')}</script>
<script>${REPORT_CLIENT_JS}</script>
</body>
</html>
`;
}

/** The log of a run: `path` itself when it is a file, else `<path>/log.jsonl`. */
export async function resolveRunLog(fs: FileSystem, path: string): Promise<string> {
  let isDir: boolean;
  try {
    isDir = (await fs.stat(path)).isDirectory;
  } catch (err) {
    if (err instanceof FileSystemError) throw new Error(`report: ${path}: ${FS_CODE_TEXT[err.code] ?? err.code} (give a run directory or its log.jsonl)`);
    throw err;
  }
  if (!isDir) return path;
  const log = joinPath(path, 'log.jsonl');
  if (!(await fs.exists(log))) throw new Error(`report: ${path} has no log.jsonl (is it a bitnet-train run directory? --log-file runs write their log elsewhere: pass that file)`);
  return log;
}

/**
 * Read a run's log (a run directory or the log file) and write its report to `out` (default
 * `report.html` next to the log). Returns the path written.
 */
export async function writeRunReport(fs: FileSystem, runOrLog: string, out?: string, assets?: ReportAssets): Promise<string> {
  const logPath = await resolveRunLog(fs, runOrLog);
  const series = parseRunLog(await fs.readText(logPath), logPath);
  const html = renderReport(series, assets ?? (await loadUplotAssets(fs)), basename(dirname(logPath)) === '.' ? logPath : dirname(logPath));
  const target = out ?? joinPath(dirname(logPath), 'report.html');
  await fs.mkdirp(dirname(target));
  await fs.writeFileAtomic(target, html);
  return target;
}
