// Runs the portable suite in a server runtime: `node test/portable/cli.mjs`,
// `deno run -A test/portable/cli.mjs`, `bun test/portable/cli.mjs` (from the repository root,
// after `npm run build`). Prints progress to stderr and one line `PORTABLE_RESULT {json}` to
// stdout; exits 1 when a check fails. The same code runs in each runtime: only the library's
// own host adapter (getDefaultFileSystem) knows where it runs. The library is imported by its
// package name, so each runtime resolves it through package.json's `exports` map (a package
// may import itself by name), as a user's code would.
import * as lib from 'bitnet-training';
import { runPortableSuite } from './suite.mjs';

function runtimeName() {
  const g = globalThis;
  if (g.Deno) return `deno ${g.Deno.version.deno}`;
  if (g.Bun) return `bun ${g.Bun.version}`;
  return `node ${g.process.versions.node}`;
}

const fs = await lib.getDefaultFileSystem();
const corpus = await fs.readText('examples/data/tinyshakespeare.txt');
const result = await runPortableSuite(lib, { corpus, log: (m) => console.error(`[${runtimeName()}] ${m}`) });
console.log(`PORTABLE_RESULT ${JSON.stringify({ runtime: runtimeName(), fileSystem: fs.kind, ...result })}`);
if (!result.ok) {
  for (const c of result.checks.filter((c) => !c.ok)) console.error(`FAILED: ${c.name}: ${c.detail}`);
  globalThis.process?.exit?.(1);
  globalThis.Deno?.exit?.(1);
}
