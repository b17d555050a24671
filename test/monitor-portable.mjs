// Writes a TensorBoard event file with the built package (dist/) in whichever runtime runs this
// file (node, deno run -A, bun): test/monitor-runtimes.test.ts reads it back with its own reader.
//   <runtime> test/monitor-portable.mjs OUT_DIR
import { TensorBoardWriter, createNodeFileSystem } from '../dist/index.js';

const dir = (globalThis.Deno?.args ?? globalThis.process.argv.slice(2))[0];
const fs = await createNodeFileSystem();
const tb = await TensorBoardWriter.create(fs, dir);
for (let step = 1; step <= 5; step++) tb.scalars(step, { 'train/loss': 4 - step / 2, 'train/lr': step * 1e-4 });
tb.histogram('weights/w', [-2, -1, 0, 0.5, 1, 3], 5);
tb.text('config', 'runtime check', 0);
await tb.close();
const runtime = globalThis.Deno ? `deno ${globalThis.Deno.version.deno}` : globalThis.Bun ? `bun ${globalThis.Bun.version}` : `node ${globalThis.process.version}`;
console.log(JSON.stringify({ runtime, path: tb.path }));
