// The relaxed-SIMD kernel build (i32x4.relaxed_dot_i8x16_i7x16_add_s in the int8 × ternary forward)
// gives the same bits as the plain SIMD build: it multiplies by the codes w + 1 (top bit clear, where
// the relaxed dot is exact on every CPU) and subtracts Σ x. Node 20 has relaxed SIMD only behind
// --experimental-wasm-relaxed-simd, and that older draft computes this instruction differently, so
// the comparison runs in a child Deno (V8 with relaxed SIMD shipped) on the two binaries of build/,
// and a child `node --experimental-wasm-relaxed-simd` checks that the start-up check refuses it.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { WasmBackend } from '../src/backend/wasm/index.js';
import { relaxedKernelsBytes } from '../src/backend/wasm/host.js';

const CHILD = `
import { readFileSync } from 'node:fs';
const load = (file) => {
  const memory = new WebAssembly.Memory({ initial: 64 });
  const module = new WebAssembly.Module(readFileSync(file));
  const imports = {};
  for (const imp of WebAssembly.Module.imports(module)) (imports[imp.module] ??= {})[imp.name] = imp.kind === 'memory' ? memory : () => { throw new Error('abort'); };
  return { memory, e: new WebAssembly.Instance(module, imports).exports };
};
const plain = load('build/kernels.wasm');
const relaxed = load('build/kernels-relaxed.wasm');
let seed = 12345;
const rnd = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 8) / 16777216;
const cases = [[1, 1, 8, 0], [3, 5, 24, 0], [7, 13, 100, 0], [4, 9, 128, 0], [5, 6, 48, 16], [2, 4, 40, 40]];
const results = [];
for (const [M, N, K, g] of cases) {
  const K8 = (K + 7) & ~7;
  const group = g || N * K;
  const outs = [];
  for (const { memory, e } of [plain, relaxed]) {
    const base = Math.ceil(e.heap_base() / 64) * 64 + 65536;
    const u8 = new Uint8Array(memory.buffer);
    const f32 = new Float32Array(memory.buffer);
    const xq = base, sx = xq + 4096, w = sx + 4096, sw = w + 8192, scratch = sw + 4096, out = scratch + 16384;
    u8.fill(0, base, out + 4096);
    seed = M * 1000 + N * 10 + K;
    for (let m = 0; m < M; m++) for (let k = 0; k < K; k++) u8[xq + m * K8 + k] = (Math.floor(rnd() * 256) - 128) & 255;
    for (let m = 0; m < M; m++) f32[(sx >> 2) + m] = 1 + rnd();
    const R = (N + 3) >> 2;
    for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) u8[w + (n % R) * K + k] |= Math.floor(rnd() * 3) << (2 * Math.floor(n / R));
    for (let i = 0; i < (N * K) / group; i++) f32[(sw >> 2) + i] = 0.5 + rnd();
    e.ternary_forward(out, xq, sx, w, sw, scratch, M, N, K, group, 0, M);
    outs.push(Array.from(new Uint32Array(memory.buffer, out, M * N)));
  }
  results.push({ M, N, K, group, equal: outs[0].every((v, i) => v === outs[1][i]), nonzero: outs[0].some((v) => v !== 0) });
}
console.log(JSON.stringify({ validates: WebAssembly.validate(readFileSync('build/kernels-relaxed.wasm')), results }));
`;

describe('relaxed SIMD (i32x4.relaxed_dot_i8x16_i7x16_add_s) in the int8 × ternary forward', () => {
  it('gives bit-identical outputs to the plain SIMD kernel on odd shapes and per-group scales (child Deno)', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'relaxed-')), 'child.mjs');
    writeFileSync(file, CHILD);
    const r = spawnSync('node_modules/.bin/deno', ['run', `--allow-read=${process.cwd()}`, file], { encoding: 'utf8', cwd: process.cwd() });
    expect(r.status, r.stderr).toBe(0);
    const res = JSON.parse(r.stdout.trim().split('\n').pop()!);
    expect(res.validates).toBe(true);
    expect(res.results).toHaveLength(6);
    for (const c of res.results) expect(c, JSON.stringify(c)).toMatchObject({ equal: true, nonzero: true });
  });

  it('is detected at start-up: the backend runs the relaxed build exactly where the runtime validates it, the plain kernels elsewhere', () => {
    const validates = WebAssembly.validate(readFileSync('build/kernels-relaxed.wasm'));
    expect(relaxedKernelsBytes(false) !== null).toBe(validates);
    const be = WasmBackend.createSync();
    expect(be.relaxedSimd).toBe(validates);
    expect(WasmBackend.createSync({ relaxedSimd: false }).relaxedSimd).toBe(false);
  });

  it("refuses a runtime whose relaxed dot differs: Node 20's --experimental-wasm-relaxed-simd validates the build but fails the start-up check", () => {
    const code = `import('${join(process.cwd(), 'dist/backend/wasm/host.js')}').then((h) => console.log(JSON.stringify({ validates: WebAssembly.validate(require('node:fs').readFileSync('build/kernels-relaxed.wasm')), chosen: h.relaxedKernelsBytes(false) !== null })))`;
    const r = spawnSync(process.execPath, ['--experimental-wasm-relaxed-simd', '-e', code], { encoding: 'utf8', cwd: process.cwd() });
    expect(r.status, r.stderr).toBe(0);
    const res = JSON.parse(r.stdout.trim());
    if (res.validates && process.versions.node.startsWith('20.')) expect(res.chosen).toBe(false);
  });
});
