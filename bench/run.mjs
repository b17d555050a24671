// Runs the benchmarks: every bench/<name>.bench.mjs, or only those named on the command line
// (`node bench/run.mjs gemm`). Each bench file exports `async function run(): Promise<object>`;
// this prints the object's scalars, its `rows` (an array of flat objects) as a table and its
// `notes` (strings), and writes the whole object with host details to bench/results/<name>.json.
// Build first (npm run bench does): the benches read build/kernels.wasm and dist/.
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const benchDir = dirname(fileURLToPath(import.meta.url));
const resultsDir = join(benchDir, 'results');
const SUFFIX = '.bench.mjs';

/** Formats an array of flat objects as an aligned text table. */
function table(rows) {
  const cols = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  const cell = (v) => (v === null || v === undefined ? '-' : typeof v === 'object' ? JSON.stringify(v) : String(v));
  const body = rows.map((r) => cols.map((c) => cell(r[c])));
  const width = cols.map((c, i) => Math.max(c.length, ...body.map((line) => line[i].length)));
  const line = (cells) => cells.map((s, i) => (typeof rows[0]?.[cols[i]] === 'number' ? s.padStart(width[i]) : s.padEnd(width[i]))).join('  ');
  return [line(cols), width.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n');
}

function report(name, result) {
  console.log(`\n== ${name} ==`);
  for (const [key, v] of Object.entries(result)) {
    if (v === null || ['string', 'number', 'boolean'].includes(typeof v)) console.log(`${key}: ${v}`);
  }
  if (Array.isArray(result.rows) && result.rows.length) console.log(`\n${table(result.rows)}`);
  if (Array.isArray(result.notes) && result.notes.length) console.log(`\nnotes:\n${result.notes.map((n) => `- ${n}`).join('\n')}`);
}

async function main() {
  const available = readdirSync(benchDir).filter((f) => f.endsWith(SUFFIX)).map((f) => f.slice(0, -SUFFIX.length)).sort();
  // bench names; `--flag value` pairs are left for the benches to read (e.g. `lora --layers 4`)
  const wanted = process.argv.slice(2).filter((a, i, all) => !a.startsWith('--') && !(i > 0 && all[i - 1].startsWith('--')));
  const unknown = wanted.filter((n) => !available.includes(n));
  if (unknown.length) {
    console.error(`bench/run.mjs: no bench named ${unknown.join(', ')}; available: ${available.join(', ') || '(none)'}`);
    process.exit(2);
  }
  const host = { node: process.version, platform: `${process.platform}-${process.arch}`, cpu: os.cpus()[0]?.model ?? 'unknown', cores: os.cpus().length };
  let failed = 0;
  for (const name of wanted.length ? wanted : available) {
    const started = performance.now();
    try {
      const mod = await import(pathToFileURL(join(benchDir, name + SUFFIX)).href);
      if (typeof mod.run !== 'function') throw new Error(`bench/${name}${SUFFIX} does not export async function run()`);
      const result = await mod.run();
      const seconds = Math.round((performance.now() - started) / 100) / 10;
      report(name, result);
      mkdirSync(resultsDir, { recursive: true });
      const file = join(resultsDir, `${name}.json`);
      writeFileSync(file, JSON.stringify({ name, date: new Date().toISOString(), host, seconds, ...result }, null, 2) + '\n');
      console.log(`\n${name}: ${seconds} s, results in ${file}`);
      if (typeof result.jsonLine === 'string') console.log(result.jsonLine); // a machine-readable summary, last
    } catch (err) {
      failed++;
      console.error(`\nbench ${name} failed: ${err?.stack ?? err}`);
    }
  }
  if (failed) process.exit(1);
}

await main();
