// Compiles gpu/*.ts into dist/gpu/ (type-checked separately: `tsc -p gpu/tsconfig.json`).
// gpu/ sits next to src/, so its imports of '../src/...' become '../...' in dist, where the
// compiled src/ lives: dist/gpu/x.js imports dist/backend/backend.js, the same module the
// library loads (one BackendError class).
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const root = dirname(fileURLToPath(import.meta.url));
const out = join(root, '..', 'dist', 'gpu');

function* sources(dir) {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) yield* sources(p);
    else if (name.endsWith('.ts') && !name.endsWith('.d.ts')) yield p;
  }
}

let n = 0;
for (const file of sources(root)) {
  const rel = relative(root, file);
  const depth = rel.split('/').length - 1; // gpu/kernels/x.ts imports '../../src/...'
  const up = '../'.repeat(depth + 1);
  const { outputText } = ts.transpileModule(readFileSync(file, 'utf8'), {
    compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ES2022, sourceMap: false },
    fileName: file,
  });
  const js = outputText.replaceAll(`'${up}src/`, `'${up}`).replaceAll(`"${up}src/`, `"${up}`);
  const dest = join(out, rel.replace(/\.ts$/, '.js'));
  mkdirSync(dirname(dest), { recursive: true });
  writeFileSync(dest, js);
  n++;
}
console.log(`gpu/build.mjs: ${n} modules -> dist/gpu`);
