// The bitLinear op: its forward on the packed int8 × ternary path against an f64 fake-quant
// reference computed here, its straight-through backward against the analytic formulas in f64,
// the built-in RMSNorm against finite differences, and wasm against js.
//
// Tolerances, u = 2^-24 (f32 unit roundoff):
//   forward: the int32 sums are exact, so the only errors are the rescale's roundings:
//     |y - ref| <= (S+3) u sum_g |term_g|, S = number of weight-scale segments of a row
//     (1 per tensor / per channel, K/G per group): 2^-22 |ref| for per-tensor and per-channel;
//   dX = dY·(Wq/sw) in f32 over N: |dx - ref| <= (N+2) u sum_n |dy Wq/sw|;
//   dW = dYᵀ·f32(xq/sx) in f32 over M: |dw - ref| <= (M+2) u sum_m |dy xq/sx|;
//   the built-in norm's gradient against central differences (h = 1e-5, f64): 1e-5 relative
//     to the largest gradient (the ternary dX kernel rounds to f32 before the f64 norm backward).
import { beforeAll, describe, expect, it } from 'vitest';
import type { Backend } from '../src/backend/backend.js';
import { JsBackend } from '../src/backend/js/index.js';
import { createWasmBackend } from '../src/backend/wasm/index.js';
import { bitLinear, mul, rmsNorm, sum, type BitLinearOpOptions } from '../src/autograd/index.js';
import { weightScaleGroup } from '../src/quant/layout.js';
import { Heap } from '../src/tensor/heap.js';
import type { Tensor } from '../src/tensor/tensor.js';
import { Rng } from '../src/util/rng.js';

const U = 2 ** -24;
const f = Math.fround;

/** Round half to even, written independently of the library's helper. */
function rne(v: number): number {
  const r = Math.floor(v + 0.5);
  return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

function randomF32(rng: Rng, n: number, std = 1): Float64Array {
  const v = new Float64Array(n);
  rng.fillNormal(v, 0, std);
  return v.map(f); // f32-representable, so every backend sees the same inputs
}

/** The f64 fake-quant reference of one layer: codes and scales as DESIGN.md defines them. */
interface Reference {
  wq: Int8Array; sw: Float64Array; // (N,K) codes, per-element weight scale
  xq: Int8Array; sx: Float64Array; // (M,K) codes, per-row activation scale
}

function quantizeReference(x: Float64Array, w: Float64Array, M: number, N: number, K: number, group: number): Reference {
  const wq = new Int8Array(N * K), sw = new Float64Array(N * K);
  for (let g = 0; g < (N * K) / group; g++) {
    let s = 0;
    for (let i = g * group; i < (g + 1) * group; i++) s += Math.abs(w[i]!);
    const scale = f(1 / Math.max(s / group, 1e-5));
    for (let i = g * group; i < (g + 1) * group; i++) {
      sw[i] = scale;
      wq[i] = Math.max(-1, Math.min(1, rne(f(w[i]! * scale))));
    }
  }
  const xq = new Int8Array(M * K), sx = new Float64Array(M);
  for (let m = 0; m < M; m++) {
    let amax = 0;
    for (let k = 0; k < K; k++) amax = Math.max(amax, Math.abs(x[m * K + k]!));
    sx[m] = f(127 / Math.max(amax, f(1e-5)));
    for (let k = 0; k < K; k++) xq[m * K + k] = Math.max(-128, Math.min(127, rne(f(x[m * K + k]! * sx[m]!))));
  }
  return { wq, sw, xq, sx };
}

/** y (M,N) = Σ_k (xq/sx)(Wq/sw) in f64, and the bound of the header (per weight-scale segment). */
function forwardReference(r: Reference, M: number, N: number, K: number, group: number): { y: Float64Array; tol: Float64Array } {
  const seg = group >= K ? K : group;
  const y = new Float64Array(M * N), tol = new Float64Array(M * N);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let total = 0, abs = 0;
      for (let k0 = 0; k0 < K; k0 += seg) {
        let acc = 0;
        for (let k = k0; k < k0 + seg; k++) acc += r.xq[m * K + k]! * r.wq[n * K + k]!;
        const term = acc / (r.sx[m]! * r.sw[n * K + k0]!);
        total += term;
        abs += Math.abs(term);
      }
      y[m * N + n] = total;
      tol[m * N + n] = (K / seg + 3) * U * abs;
    }
  }
  return { y, tol };
}

function expectWithin(got: ArrayLike<number>, want: ArrayLike<number>, tol: ArrayLike<number>, what: string): void {
  expect(got.length).toBe(want.length);
  let worst = 0;
  for (let i = 0; i < want.length; i++) {
    const err = Math.abs(got[i]! - want[i]!);
    if (err > tol[i]!) throw new Error(`${what}[${i}]: got ${got[i]}, want ${want[i]} ± ${tol[i]} (error ${err})`);
    worst = Math.max(worst, err);
  }
  expect(worst).toBeLessThanOrEqual(Math.max(...Array.from(tol)));
}

const bits = (a: ArrayLike<number>): Uint32Array => new Uint32Array(Float32Array.from(a).buffer);

interface Run { y: Float64Array; dx?: Float64Array; dw?: Float64Array; db?: Float64Array; dg?: Float64Array; R: Float64Array }

/** One bitLinear forward (and, with `backward`, the gradients of Σ y ⊙ R, R ~ N(0,1)). */
function runOp(be: Backend, x: Float64Array, w: Float64Array, M: number, N: number, K: number,
  opts: BitLinearOpOptions & { bias?: Float64Array; g?: Float64Array }, backward = true): Run {
  const heap = new Heap(be);
  const xt = heap.fromArray(x, [M, K], { requiresGrad: true });
  const wt = heap.fromArray(w, [N, K], { requiresGrad: true });
  const bt = opts.bias ? heap.fromArray(opts.bias, [N], { requiresGrad: true }) : null;
  const gt = opts.g ? heap.fromArray(opts.g, [K], { requiresGrad: true }) : null;
  const y = bitLinear(xt, wt, bt, { ...opts, normWeight: gt });
  const R = randomF32(new Rng(99), M * N);
  const out: Run = { y: Float64Array.from(y.dataSync()), R };
  if (!backward) return out;
  sum(mul(y, heap.fromArray(R, [M, N]))).backward();
  const read = (t: Tensor | null) => (t ? Float64Array.from(t.grad!.dataSync()) : undefined);
  return { ...out, dx: read(xt), dw: read(wt), db: read(bt), dg: read(gt) };
}

let wasm: Backend;
beforeAll(async () => { wasm = await createWasmBackend(); });
const backends: [string, () => Backend][] = [
  ['js f64', () => new JsBackend({ dtype: 'f64' })],
  ['js f32', () => new JsBackend({ dtype: 'f32' })],
  ['wasm', () => wasm],
];

const scales: [string, number, number, number, (N: number, K: number) => number][] = [
  ['per tensor', 13, 11, 37, (N, K) => weightScaleGroup(N, K, 'tensor')],
  ['per channel', 13, 11, 37, (N, K) => weightScaleGroup(N, K, 'channel')],
  ['per group of 16', 7, 9, 48, (N, K) => weightScaleGroup(N, K, 'group', 16)],
];

describe('bitLinear forward on the packed int8 × ternary path', () => {
  for (const [bname, make] of backends) {
    for (const [sname, M, N, K, groupOf] of scales) {
      it(`equals the f64 fake-quant product (xq/sx)·(Wq/sw)ᵀ within the rescale's roundings (${bname}, ${sname}, M=${M} N=${N} K=${K})`, () => {
        const rng = new Rng(5);
        const x = randomF32(rng, M * K, 2), w = randomF32(rng, N * K, 0.05);
        const group = groupOf(N, K);
        const { y } = runOp(make(), x, w, M, N, K, { group }, false);
        const ref = forwardReference(quantizeReference(x, w, M, N, K, group), M, N, K, group);
        expectWithin(y, ref.y, ref.tol, 'y');
      });
    }
  }

  it('adds the bias after the rescale (one more f32 rounding)', () => {
    const [M, N, K] = [6, 5, 20];
    const rng = new Rng(8);
    const x = randomF32(rng, M * K), w = randomF32(rng, N * K, 0.1), bias = randomF32(rng, N);
    const { y } = runOp(wasm, x, w, M, N, K, { bias }, false);
    const ref = forwardReference(quantizeReference(x, w, M, N, K, N * K), M, N, K, N * K);
    const want = ref.y.map((v, i) => v + bias[i % N]!);
    expectWithin(y, want, ref.tol.map((t, i) => t + U * Math.abs(want[i]!)), 'y');
  });

  it('with the built-in RMSNorm equals rmsNorm followed by the plain op, bit for bit', () => {
    const [M, N, K] = [9, 10, 40];
    for (const [, make] of backends) {
      const rng = new Rng(3);
      const x = randomF32(rng, M * K, 3), w = randomF32(rng, N * K, 0.02), g = randomF32(rng, K).map((v) => f(1 + 0.1 * v));
      const be = make();
      const fused = runOp(be, x, w, M, N, K, { norm: true, g }, false).y;
      const heap = new Heap(be);
      const xn = rmsNorm(heap.fromArray(x, [M, K]), heap.fromArray(g, [K]), 1e-5);
      const plain = bitLinear(xn, heap.fromArray(w, [N, K])).dataSync();
      expect(bits(fused)).toEqual(bits(plain));
    }
  });

  it('with quantizeActivations: false multiplies f32 x by the dequantised ternary weights (weight-only)', () => {
    const [M, N, K] = [7, 6, 33];
    const rng = new Rng(11);
    const x = randomF32(rng, M * K), w = randomF32(rng, N * K, 0.1);
    const r = quantizeReference(x, w, M, N, K, N * K);
    const { y, dw } = runOp(wasm, x, w, M, N, K, { quantizeActivations: false });
    const want = new Float64Array(M * N), tol = new Float64Array(M * N);
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++) {
        let s = 0, a = 0;
        for (let k = 0; k < K; k++) { const t = x[m * K + k]! * r.wq[n * K + k]! / r.sw[n * K + k]!; s += t; a += Math.abs(t); }
        want[m * N + n] = s;
        tol[m * N + n] = (K + 2) * U * a;
      }
    }
    expectWithin(y, want, tol, 'y');
    // and dW = dYᵀ·x, the unquantised activations
    const R = runOp(wasm, x, w, M, N, K, {}, false).R;
    const dwRef = new Float64Array(N * K), dwTol = new Float64Array(N * K);
    for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) {
      let s = 0, a = 0;
      for (let m = 0; m < M; m++) { const t = R[m * N + n]! * x[m * K + k]!; s += t; a += Math.abs(t); }
      dwRef[n * K + k] = s; dwTol[n * K + k] = (M + 2) * U * a;
    }
    expectWithin(dw!, dwRef, dwTol, 'dW');
  });

  it('stores byte buffers by the byte-slot rule of each backend and checks kernel buffers against it', () => {
    expect(wasm.byteSlots(10)).toBe(3); // f32 slots, 4 bytes each
    expect(new JsBackend().byteSlots(10)).toBe(10); // one byte per slot
    const [M, N, K] = [4, 8, 32];
    const heap = new Heap(wasm);
    const p = (n: number) => heap.alloc(n);
    const args = [p(M * N), p(wasm.byteSlots(M * K)), p(M), p(wasm.byteSlots((N / 4) * K)), p(1)] as const;
    const scratch = p(wasm.ternaryScratchSlots('forward', N, K));
    expect(() => wasm.ternaryForward(...args, scratch, M, N, K, N * K)).not.toThrow();
    expect(() => wasm.ternaryForward(...args, wasm.capacity - 4, M, N, K, N * K)).toThrow(/scratch = .* beyond capacity/);
    expect(() => wasm.ternaryForward(...args, scratch, M, N, K, 8)).toThrow(/multiple of 16/);
    expect(() => wasm.quantizeActivations(args[1], args[2], 0, M, K)).toThrow(/quantizeActivations: x = 0 .* required/);
  });

  it('rejects a per-group scale the packed kernels cannot take, naming the fix', () => {
    const heap = new Heap(wasm);
    const x = heap.zeros([2, 24]), w = heap.zeros([4, 24]);
    expect(() => bitLinear(x, w, null, { group: 8 })).toThrow(/multiple of 16/);
    expect(() => bitLinear(x, heap.zeros([4, 20]))).toThrow(/last dim 24 must equal weight's in-features 20/);
    expect(() => bitLinear(x, w, null, { normWeight: heap.zeros([24]) })).toThrow(/pass norm: true/);
  });
});

/** The analytic STE gradients of Σ y ⊙ R in f64, with the bounds of the header. */
function backwardReference(r: Reference, R: Float64Array, w: Float64Array, M: number, N: number, K: number, ste: 'identity' | 'clipped') {
  const dx = new Float64Array(M * K), dxTol = new Float64Array(M * K);
  for (let m = 0; m < M; m++) for (let k = 0; k < K; k++) {
    let s = 0, a = 0;
    for (let n = 0; n < N; n++) { const t = R[m * N + n]! * r.wq[n * K + k]! / r.sw[n * K + k]!; s += t; a += Math.abs(t); }
    dx[m * K + k] = s; dxTol[m * K + k] = (N + 2) * U * a;
  }
  const dw = new Float64Array(N * K), dwTol = new Float64Array(N * K);
  let clipped = 0;
  for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) {
    const i = n * K + k;
    if (ste === 'clipped' && Math.abs(f(w[i]! * r.sw[i]!)) > 1) { clipped++; continue; } // clamp active: no gradient
    let s = 0, a = 0;
    for (let m = 0; m < M; m++) { const t = R[m * N + n]! * r.xq[m * K + k]! / r.sx[m]!; s += t; a += Math.abs(t); }
    dw[i] = s; dwTol[i] = (M + 2) * U * a;
  }
  const db = new Float64Array(N);
  for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) db[n] += R[m * N + n]!;
  return { dx, dxTol, dw, dwTol, db, clipped };
}

describe('bitLinear backward (straight-through estimator)', () => {
  const [M, N, K] = [11, 13, 35];
  for (const [bname, make] of backends) {
    for (const ste of ['identity', 'clipped'] as const) {
      it(`gives dX = dY·(Wq/sw), dW = ${ste === 'clipped' ? 'mask ⊙ ' : ''}dYᵀ·(xq/sx) and db = Σ dY (${bname}, ${ste} STE)`, () => {
        const rng = new Rng(21);
        const x = randomF32(rng, M * K, 1.5), w = randomF32(rng, N * K, 0.03), bias = randomF32(rng, N);
        const run = runOp(make(), x, w, M, N, K, { ste, bias });
        const ref = backwardReference(quantizeReference(x, w, M, N, K, N * K), run.R, w, M, N, K, ste);
        expectWithin(run.dx!, ref.dx, ref.dxTol, 'dX');
        expectWithin(run.dw!, ref.dw, ref.dwTol, 'dW');
        expectWithin(run.db!, ref.db, ref.db.map((v) => (M + 2) * U * Math.abs(v) + 1e-6), 'db');
        if (ste === 'clipped') {
          // Gaussian latent weights: |W| > mean|W| for ~40% of them
          expect(ref.clipped).toBeGreaterThan(0.2 * N * K);
          expect(run.dw!.filter((v) => v === 0).length).toBeGreaterThanOrEqual(ref.clipped);
        }
      });
    }
  }

  it('passes the gradient through the built-in RMSNorm and its affine scale as finite differences say (f64)', () => {
    // The STE surrogate with the weights fixed at Wdq = Wq/sw and the activation quantiser as the
    // identity: L(x, g) = Σ R ⊙ (RMSNorm(x)·g · Wdqᵀ). Its gradient is what bitLinear's backward computes.
    const [m, n, k] = [5, 7, 24];
    const rng = new Rng(31);
    const x = randomF32(rng, m * k, 2), w = randomF32(rng, n * k, 0.1), g = randomF32(rng, k).map((v) => f(1 + 0.2 * v));
    const run = runOp(new JsBackend({ dtype: 'f64' }), x, w, m, n, k, { norm: true, g });
    const r = quantizeReference(x, w, m, n, k, n * k);
    const loss = (xv: Float64Array, gv: Float64Array): number => {
      let L = 0;
      for (let row = 0; row < m; row++) {
        let ss = 0;
        for (let c = 0; c < k; c++) ss += xv[row * k + c]! ** 2;
        const rstd = 1 / Math.sqrt(ss / k + 1e-5);
        for (let o = 0; o < n; o++) {
          let y = 0;
          for (let c = 0; c < k; c++) y += xv[row * k + c]! * rstd * gv[c]! * (r.wq[o * k + c]! / r.sw[o * k + c]!);
          L += y * run.R[row * n + o]!;
        }
      }
      return L;
    };
    const h = 1e-5;
    const fd = (v: Float64Array, at: (p: Float64Array) => number): Float64Array => v.map((_, i) => {
      const p = Float64Array.from(v), q = Float64Array.from(v);
      p[i]! += h; q[i]! -= h;
      return (at(p) - at(q)) / (2 * h);
    });
    const dxNum = fd(x, (p) => loss(p, g));
    const dgNum = fd(g, (p) => loss(x, p));
    for (const [got, num, what] of [[run.dx!, dxNum, 'dx'], [run.dg!, dgNum, 'dg']] as const) {
      const scale = Math.max(...num.map(Math.abs));
      const err = Math.max(...num.map((v, i) => Math.abs(v - got[i]!)));
      expect(err / scale, what).toBeLessThan(1e-5);
    }
  });
});

describe('bitLinear on wasm and js', () => {
  it('gives bit-identical y and dX without the norm, and dW within the GEMM rounding bound', () => {
    const [M, N, K] = [21, 19, 45];
    const rng = new Rng(41);
    const x = randomF32(rng, M * K), w = randomF32(rng, N * K, 0.05);
    for (const group of [N * K, K]) {
      const a = runOp(wasm, x, w, M, N, K, { group });
      const b = runOp(new JsBackend({ dtype: 'f32' }), x, w, M, N, K, { group });
      expect(bits(a.y)).toEqual(bits(b.y));
      expect(bits(a.dx!)).toEqual(bits(b.dx!));
      const ref = backwardReference(quantizeReference(x, w, M, N, K, group), a.R, w, M, N, K, 'identity');
      expectWithin(a.dw!, b.dw!, ref.dwTol.map((t) => 2 * t), 'dW wasm vs js');
    }
  });

  it('agree within 1e-5 relative with the built-in norm, its scale and a bias', () => {
    const [M, N, K] = [10, 12, 64];
    const rng = new Rng(43);
    const x = randomF32(rng, M * K, 4), w = randomF32(rng, N * K, 0.05), g = randomF32(rng, K), bias = randomF32(rng, N);
    const opts = { norm: true, g, bias, ste: 'clipped' as const };
    const a = runOp(wasm, x, w, M, N, K, opts);
    const b = runOp(new JsBackend({ dtype: 'f32' }), x, w, M, N, K, opts);
    for (const key of ['y', 'dx', 'dw', 'db', 'dg'] as const) {
      const p = a[key]!, q = b[key]!;
      const scale = Math.max(1e-30, ...q.map(Math.abs));
      expect(Math.max(...p.map((v, i) => Math.abs(v - q[i]!))) / scale, key).toBeLessThan(1e-5);
    }
  });
});
