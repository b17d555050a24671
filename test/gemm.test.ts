// The f32 GEMM kernels of build/kernels.wasm (assembly/gemm.ts) against gemmReference
// (src/backend/js/gemm.ts) run in f64 on the same f32 inputs. The module is instantiated
// directly (no backend in between), so these tests pin down the kernel ABI itself:
// byte-offset pointers, rows [r0, r1) of the output, accumulate 0/1.
//
// Tolerance, per output element (i,j):
//   |wasm - ref| <= (K + 2) * 2^-24 * (sum_k |A(i,k)| |B(k,j)| + |out_old(i,j)|)
// the classic error bound of a float32 sum of K rounded products (Higham's gamma_{K+2}); one
// wrong or missing term is orders of magnitude larger. Small-integer inputs must match exactly.
//
// Build first: npx asc --config asconfig.json --target release
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { GemmLayout } from '../src/backend/backend.js';
import { gemmReference } from '../src/backend/js/gemm.js';
import { Rng } from '../src/util/rng.js';

type GemmKernel = (out: number, a: number, b: number, M: number, N: number, K: number, accumulate: number, r0: number, r1: number) => void;

const LAYOUTS: GemmLayout[] = ['nn', 'nt', 'tn'];
const WASM_URL = new URL('../build/kernels.wasm', import.meta.url);
/** First byte our buffers use: well above any static data of the module. */
const BASE_BYTES = 1 << 20;
/** Floats after `out` that no kernel may write. */
const GUARD = 16;
const SENTINEL = -12345.5;

function loadKernels(): { kernel: Record<GemmLayout, GemmKernel>; memory: WebAssembly.Memory } {
  if (!fs.existsSync(WASM_URL)) throw new Error(`${WASM_URL.pathname} is missing: run npx asc --config asconfig.json --target release`);
  const module = new WebAssembly.Module(fs.readFileSync(WASM_URL));
  const memory = new WebAssembly.Memory({ initial: 64 });
  const env: Record<string, unknown> = {};
  for (const imp of WebAssembly.Module.imports(module)) {
    if (imp.module !== 'env') throw new Error(`kernels.wasm imports ${imp.module}.${imp.name}; only env.* is provided`);
    if (imp.kind === 'memory') env[imp.name] = memory;
    else if (imp.kind === 'function') env[imp.name] = () => { throw new Error(`kernels.wasm called env.${imp.name} (abort)`); };
  }
  const { exports } = new WebAssembly.Instance(module, { env: env as WebAssembly.ModuleImports });
  const kernel = {} as Record<GemmLayout, GemmKernel>;
  for (const layout of LAYOUTS) kernel[layout] = exports[`gemm_${layout}`] as GemmKernel;
  return { kernel, memory };
}

const { kernel, memory } = loadKernels();

/** Element offsets of A, B, out (+ guard) in wasm memory for an M×N×K problem. */
function place(M: number, N: number, K: number): { a: number; b: number; out: number; end: number } {
  const a = BASE_BYTES / 4, b = a + M * K + 4, out = b + K * N + 4;
  const end = out + M * N + GUARD;
  const need = Math.ceil((end * 4) / 65536) - memory.buffer.byteLength / 65536;
  if (need > 0) memory.grow(need);
  return { a, b, out, end };
}

interface Problem {
  layout: GemmLayout; M: number; N: number; K: number; accumulate: boolean;
  A: Float32Array; B: Float32Array; C0: Float32Array;
}

function problem(layout: GemmLayout, M: number, N: number, K: number, accumulate: boolean, value: () => number): Problem {
  const fill = (n: number) => Float32Array.from({ length: n }, value);
  // accumulate = false starts from NaN: the kernel must overwrite out without reading it.
  const C0 = accumulate ? fill(M * N) : new Float32Array(M * N).fill(NaN);
  return { layout, M, N, K, accumulate, A: fill(M * K), B: fill(K * N), C0 };
}

/** Runs the wasm kernel over row ranges `splits` (default one call over [0, M)); returns out. */
function runWasm(p: Problem, splits: [number, number][] = [[0, p.M]]): Float32Array {
  const { a, b, out, end } = place(p.M, p.N, p.K);
  const f32 = new Float32Array(memory.buffer);
  f32.set(p.A, a); f32.set(p.B, b); f32.set(p.C0, out);
  f32.fill(SENTINEL, out + p.M * p.N, end);
  for (const [r0, r1] of splits) kernel[p.layout](out * 4, a * 4, b * 4, p.M, p.N, p.K, p.accumulate ? 1 : 0, r0, r1);
  const guard = Array.from(f32.subarray(out + p.M * p.N, end));
  expect(guard, `gemm_${p.layout} wrote past the end of out`).toEqual(new Array(GUARD).fill(SENTINEL));
  return f32.slice(out, out + p.M * p.N);
}

/** gemmReference in f64 over `map`ped inputs (identity for the value, Math.abs for the bound). */
function runReference(p: Problem, map: (x: number) => number): Float64Array {
  const { M, N, K } = p;
  const mem = new Float64Array(2 + M * K + K * N + M * N);
  const a = 1, b = a + M * K, out = b + K * N;
  p.A.forEach((x, i) => (mem[a + i] = map(x)));
  p.B.forEach((x, i) => (mem[b + i] = map(x)));
  if (p.accumulate) p.C0.forEach((x, i) => (mem[out + i] = map(x)));
  gemmReference(p.layout, mem, out, a, b, M, N, K, p.accumulate);
  return mem.slice(out, out + M * N);
}

/** Largest |wasm - ref| / bound over all elements (<= 1 passes), with the worst element named. */
function worstError(p: Problem, got: Float32Array): { ratio: number; where: string } {
  const ref = runReference(p, (x) => x), mag = runReference(p, Math.abs);
  let ratio = 0, where = 'none';
  for (let e = 0; e < got.length; e++) {
    const err = Math.abs(got[e] - ref[e]);
    const bound = (p.K + 2) * 2 ** -24 * mag[e];
    const r = err === 0 ? 0 : Number.isNaN(err) ? Infinity : err / bound;
    if (r > ratio) { ratio = r; where = `(${Math.floor(e / p.N)},${e % p.N}): wasm ${got[e]} ref ${ref[e]} bound ${bound}`; }
  }
  return { ratio, where };
}

/**
 * The summation order documented in assembly/gemm.ts, emulated with Math.fround after every
 * product and sum, so the kernels can be checked bit for bit (and products must not be fused).
 */
function documentedOrder(p: Problem): Float32Array {
  const { layout, M, N, K, A, B, C0, accumulate } = p;
  const f = Math.fround;
  const at = (i: number, k: number) => (layout === 'tn' ? A[k * M + i] : A[i * K + k]);
  const bt = (k: number, j: number) => (layout === 'nt' ? B[j * K + k] : B[k * N + j]);
  const out = new Float32Array(M * N);
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let s: number;
      if (layout !== 'nt') {
        s = accumulate ? C0[i * N + j] : 0;
        for (let k = 0; k < K; k++) s = f(s + f(at(i, k) * bt(k, j)));
      } else {
        const K4 = K & ~3, lane = [0, 0, 0, 0];
        for (let k = 0; k < K4; k++) lane[k & 3] = f(lane[k & 3] + f(at(i, k) * bt(k, j)));
        let t = 0;
        for (let k = K4; k < K; k++) t = f(t + f(at(i, k) * bt(k, j)));
        s = f(f(f(lane[0] + lane[2]) + f(lane[1] + lane[3])) + t);
        if (accumulate) s = f(C0[i * N + j] + s);
      }
      out[i * N + j] = s;
    }
  }
  return out;
}

const bits = (x: Float32Array) => Array.from(new Uint32Array(x.buffer, x.byteOffset, x.length));

// Shapes [M, N, K]: ones, odd sizes, every tile tail (16/4/1 columns, 2/1 rows, K mod 4),
// K beyond the 256-deep blocks of nn/tn, N across several column blocks.
const rng = new Rng(20240611);
const SHAPES: [number, number, number][] = [
  [1, 1, 1], [1, 1, 7], [1, 16, 1], [3, 1, 5], [2, 3, 4], [5, 17, 3], [6, 37, 5], [17, 33, 19],
  [4, 20, 129], [33, 70, 9], [64, 64, 64], [7, 300, 300], [5, 129, 513],
  ...Array.from({ length: 8 }, () => [1 + rng.int(40), 1 + rng.int(40), 1 + rng.int(40)] as [number, number, number]),
];

describe('gemm kernels (assembly/gemm.ts) vs gemmReference', () => {
  for (const layout of LAYOUTS) {
    for (const accumulate of [false, true]) {
      it(`gemm_${layout} ${accumulate ? 'adds to' : 'overwrites'} out within (K+2)·2^-24·Σ|a||b| on ${SHAPES.length} shapes with odd sizes and 1s`, () => {
        const r = new Rng(layout.charCodeAt(0) * 7 + layout.charCodeAt(1) + (accumulate ? 1 : 0));
        for (const [M, N, K] of SHAPES) {
          const p = problem(layout, M, N, K, accumulate, () => Math.fround(r.normal()));
          const { ratio, where } = worstError(p, runWasm(p));
          expect(ratio, `gemm_${layout} M=${M} N=${N} K=${K} accumulate=${accumulate}, worst element ${where}`).toBeLessThanOrEqual(1);
        }
      });
    }

    it(`gemm_${layout} is exact on small-integer matrices (every sum representable in f32)`, () => {
      const r = new Rng(7);
      for (const [M, N, K] of [[33, 70, 129], [9, 300, 300], [5, 19, 513], [1, 1, 3]]) {
        for (const accumulate of [false, true]) {
          const p = problem(layout, M, N, K, accumulate, () => r.int(5) - 2);
          const ref = runReference(p, (x) => x);
          expect(Array.from(runWasm(p)), `gemm_${layout} M=${M} N=${N} K=${K}`).toEqual(Array.from(ref));
        }
      }
    });

    it(`gemm_${layout} sums in the documented order, bit for bit (no fused multiply-add)`, () => {
      const r = new Rng(17);
      for (const [M, N, K] of [[5, 37, 23], [3, 19, 300], [2, 4, 3], [1, 1, 1]]) {
        for (const accumulate of [false, true]) {
          const p = problem(layout, M, N, K, accumulate, () => Math.fround(r.normal()));
          expect(bits(runWasm(p)), `gemm_${layout} M=${M} N=${N} K=${K} accumulate=${accumulate}`).toEqual(bits(documentedOrder(p)));
        }
      }
    });

    it(`gemm_${layout} gives bit-identical rows whatever the split into row ranges`, () => {
      const r = new Rng(11);
      for (const [M, N, K] of [[17, 33, 19], [6, 37, 5], [9, 300, 300], [13, 129, 513]]) {
        for (const accumulate of [false, true]) {
          const p = problem(layout, M, N, K, accumulate, () => Math.fround(r.normal()));
          const whole = bits(runWasm(p));
          const cuts = [1, 2, 3, Math.floor(M / 2), M - 1].filter((k) => k > 0 && k < M);
          for (const k of cuts) {
            expect(bits(runWasm(p, [[0, k], [k, M]])), `gemm_${layout} M=${M} N=${N} K=${K} split at ${k}`).toEqual(whole);
            expect(bits(runWasm(p, [[k, M], [0, k]])), `gemm_${layout} reversed split at ${k}`).toEqual(whole);
          }
          const thirds: [number, number][] = [[0, 1], [1, Math.ceil(M / 2)], [Math.ceil(M / 2), M]];
          expect(bits(runWasm(p, thirds)), `gemm_${layout} M=${M} split in three`).toEqual(whole);
        }
      }
    });

    it(`gemm_${layout} writes only the rows [r0, r1) it is given`, () => {
      const r = new Rng(13);
      const [M, N, K] = [11, 21, 9];
      const p = problem(layout, M, N, K, false, () => Math.fround(r.normal()));
      p.C0.fill(SENTINEL);
      const got = runWasm(p, [[3, 8]]);
      const full = runWasm(p);
      for (let i = 0; i < M; i++) {
        const row = Array.from(got.subarray(i * N, (i + 1) * N));
        const want = i >= 3 && i < 8 ? Array.from(full.subarray(i * N, (i + 1) * N)) : new Array(N).fill(SENTINEL);
        expect(row, `gemm_${layout} row ${i}`).toEqual(want);
      }
    });

    it(`gemm_${layout} with K = 0 writes zeros, or leaves out unchanged when accumulating`, () => {
      const p = problem(layout, 3, 5, 0, false, () => 1.5);
      expect(Array.from(runWasm(p))).toEqual(new Array(15).fill(0));
      const q = problem(layout, 3, 5, 0, true, () => 1.5);
      expect(Array.from(runWasm(q))).toEqual(new Array(15).fill(1.5));
    });
  }
});

describe('gemmReference', () => {
  it('multiplies 2x2 matrices in all three layouts', () => {
    // A = [[1,2],[3,4]], B = [[5,6],[7,8]]: A·B = [[19,22],[43,50]], A·Bᵀ = [[17,23],[39,53]], Aᵀ·B = [[26,30],[38,44]]
    const want: Record<GemmLayout, number[]> = { nn: [19, 22, 43, 50], nt: [17, 23, 39, 53], tn: [26, 30, 38, 44] };
    for (const layout of LAYOUTS) {
      const mem = new Float32Array(16);
      mem.set([1, 2, 3, 4], 4); mem.set([5, 6, 7, 8], 8); mem.set([1, 1, 1, 1], 12);
      gemmReference(layout, mem, 12, 4, 8, 2, 2, 2, false);
      expect(Array.from(mem.subarray(12)), layout).toEqual(want[layout]);
      gemmReference(layout, mem, 12, 4, 8, 2, 2, 2, true);
      expect(Array.from(mem.subarray(12)), `${layout} accumulate`).toEqual(want[layout].map((x) => 2 * x));
    }
  });
});
