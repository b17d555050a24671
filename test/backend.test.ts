// The CPU backends as a specification: memory semantics and bounds errors (js and wasm alike),
// backend selection, and every js backward kernel checked against central finite differences
// of its forward (f64, so tolerances are tight; the wasm kernels are checked against js in kernels.test.ts).
import { describe, expect, it, vi } from 'vitest';
import { BackendError, type Backend } from '../src/backend/backend.js';
import { createBackend, createWasmBackend, defaultMaxSharedBytes, hasWasmSimd, JsBackend, WasmBackend } from '../src/backend/index.js';
import { Rng } from '../src/util/rng.js';

/** Bump allocator over a backend (tests only). */
function arena(be: Backend) {
  let top = be.base;
  return (n: number) => {
    const p = top;
    top += n;
    be.reserve(top);
    return p;
  };
}

function randn(rng: Rng, n: number, std = 1): number[] {
  return Array.from({ length: n }, () => std * rng.normal());
}

const makers: [string, (cap?: number) => Backend][] = [
  ['js', (cap) => new JsBackend({ initialCapacity: cap })],
  ['wasm', (cap) => WasmBackend.createSync({ initialCapacity: cap })],
];

for (const [name, make] of makers) {
  describe(`${name} backend memory`, () => {
    it('reserves pointer 0 and a region below base, and holds f32', () => {
      const be = make();
      expect(be.name).toBe(name);
      expect(be.dtype).toBe('f32');
      expect(be.base).toBeGreaterThanOrEqual(16);
      expect(be.base % 16).toBe(0);
      expect(be.capacity).toBeGreaterThan(be.base);
    });

    it('keeps contents when memory grows', () => {
      const be = make(100);
      const p = be.base;
      be.write(p, [1.5, -2, 3]);
      be.reserve(be.base + 300000);
      expect(be.capacity).toBeGreaterThanOrEqual(be.base + 300000);
      expect(Array.from(be.readSync(p, 3))).toEqual([1.5, -2, 3]);
      be.write(be.base + 299999, [4]);
      expect(be.readSync(be.base + 299999, 1)[0]).toBe(4);
    });

    it('round-trips indices through writeIndices/readIndices exactly, up to 2^24', () => {
      const be = make();
      const ids = new Int32Array([0, 1, 255, 50257, 16777216]);
      be.writeIndices(be.base + 4, ids);
      expect(Array.from(be.readIndices(be.base + 4, ids.length))).toEqual(Array.from(ids));
      expect(() => be.writeIndices(be.base, new Int32Array([16777217]))).toThrow(/16777216/);
      expect(() => be.writeIndices(be.base, new Int32Array([-1]))).toThrow(BackendError);
    });

    it('fills, copies and reads asynchronously', async () => {
      const be = make();
      be.fill(be.base, 4, 7);
      be.copy(be.base + 16, be.base, 4);
      expect(Array.from(await be.read(be.base + 16, 4))).toEqual([7, 7, 7, 7]);
      await expect(be.read(be.capacity, 1)).rejects.toThrow(BackendError);
    });

    it('throws a BackendError naming kernel, argument, size and capacity for a pointer past the end', () => {
      const be = make(100);
      const cap = be.capacity;
      const call = () => be.add(be.base, be.base, cap - 10, 20);
      expect(call).toThrow(BackendError);
      expect(call).toThrow(new RegExp(`add: b = ${cap - 10} with 20 elements .*ends at ${cap + 10}, beyond capacity ${cap}`));
    });

    it('rejects pointers into the reserved region, absent required pointers and bad sizes', () => {
      const be = make(100);
      const p = be.base;
      expect(() => be.scale(3, p, 2, 4)).toThrow(/out = 3 .*reserved region/);
      expect(() => be.layerNormForward(p, p + 40, p + 44, p + 50, 0, 0, 2, 4, 1e-5)).toThrow(/weight = 0 .*required/);
      expect(() => be.fill(p, -1, 0)).toThrow(/fill/);
      expect(() => be.fill(p + 0.5, 1, 0)).toThrow(/not an integer/);
      expect(() => be.attentionForward(p, p, p, p, 1, 1, 6, 4)).toThrow(/not divisible by NH/);
      expect(() => be.gemm('nn', p, p, p, 0, 4, 4, false)).toThrow(/gemm: M = 0/);
    });

    it('rejects targets outside [0, V) and non-integer token ids', () => {
      const be = make();
      const p = be.base;
      be.writeIndices(p, new Int32Array([0, 5]));
      expect(() => be.crossEntropyForward(p + 20, p + 30, p + 40, p, 2, 5)).toThrow(/targets\[1\] = 5 is not an index in \[0, 5\)/);
      be.write(p, [0.5]);
      expect(() => be.embeddingForward(p + 100, p, p + 40, 0, 1, 1, 4)).toThrow(/tokens\[0\] = 0.5/);
    });

    it('refuses to work after dispose', () => {
      const be = make();
      be.dispose();
      expect(() => be.fill(be.base, 1, 0)).toThrow(/disposed/);
    });
  });
}

describe('createBackend', () => {
  it('returns the js backend for "js", in f64 when asked', async () => {
    const be = await createBackend('js', { dtype: 'f64' });
    expect(be).toBeInstanceOf(JsBackend);
    expect(be.dtype).toBe('f64');
  });

  it('returns the wasm backend by default', async () => {
    expect(await createBackend()).toBeInstanceOf(WasmBackend);
    expect(await createWasmBackend({ initialCapacity: 1000 })).toBeInstanceOf(WasmBackend);
  });

  it('a threaded wasm backend from createBackend may grow past 2 GiB in Node (the whole wasm32 memory)', async () => {
    expect(defaultMaxSharedBytes()).toBe(4 * 2 ** 30 - 65536);
    const be = await createBackend('wasm', { threads: 2 });
    try {
      be.reserve((2 ** 31 + 2 ** 28) / 4); // 2.25 GiB: address space, the pages stay untouched
      be.write((2 ** 31 + 2 ** 27) / 4, [1.5]);
      expect(be.readSync((2 ** 31 + 2 ** 27) / 4, 1)[0]).toBe(1.5);
    } finally {
      be.dispose();
    }
    const small = await createBackend('wasm', { threads: 2, maxSharedBytes: 2 ** 28 });
    try {
      expect(() => small.reserve(2 ** 27)).toThrow();
    } finally {
      small.dispose();
    }
  });

  it('falls back to the js backend, warning once, where WebAssembly SIMD is missing', async () => {
    const validate = vi.spyOn(WebAssembly, 'validate').mockReturnValue(false);
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    try {
      expect(hasWasmSimd()).toBe(false);
      expect(await createBackend('wasm')).toBeInstanceOf(JsBackend);
      expect(await createBackend('wasm')).toBeInstanceOf(JsBackend);
      expect(warn).toHaveBeenCalledTimes(1);
      expect(String(warn.mock.calls[0][0])).toMatch(/SIMD/);
    } finally {
      validate.mockRestore();
      warn.mockRestore();
    }
    expect(hasWasmSimd()).toBe(true);
  });
});

describe('JsBackend kernels', () => {
  it('sums in chunks and computes the clip factor', () => {
    const be = new JsBackend({ dtype: 'f64' });
    const alloc = arena(be);
    const x = alloc(10000), out = alloc(1), clip = alloc(1);
    be.write(x, Array.from({ length: 10000 }, (_, i) => i % 7));
    be.sum(out, x, 10000);
    const expected = Array.from({ length: 10000 }, (_, i) => i % 7).reduce((s, v) => s + v, 0);
    expect(be.readSync(out, 1)[0]).toBe(expected);
    be.write(x, [3, 4]);
    be.sumSquares(out, x, 2);
    expect(be.readSync(out, 1)[0]).toBe(25);
    be.clipScale(clip, out, 1);
    expect(be.readSync(clip, 1)[0]).toBeCloseTo(1 / (5 + 1e-6), 12);
    be.clipScale(clip, out, 10);
    expect(be.readSync(clip, 1)[0]).toBe(1);
  });

  it('computes causal softmax attention rows that sum to 1 and are 0 above the diagonal', () => {
    const be = new JsBackend({ dtype: 'f64' });
    const alloc = arena(be);
    const [B, T, C, NH] = [1, 3, 4, 2];
    const inp = alloc(B * T * 3 * C), out = alloc(B * T * C), pre = alloc(B * NH * T * T), att = alloc(B * NH * T * T);
    be.write(inp, randn(new Rng(1), B * T * 3 * C));
    be.attentionForward(out, pre, att, inp, B, T, C, NH);
    const a = be.readSync(att, B * NH * T * T);
    for (let r = 0; r < NH * T; r++) {
      const t = r % T;
      let s = 0;
      for (let t2 = 0; t2 < T; t2++) {
        if (t2 > t) expect(a[r * T + t2]).toBe(0);
        s += a[r * T + t2];
      }
      expect(s).toBeCloseTo(1, 12);
    }
    // row t = 0 attends only to itself: out = v[0]
    const v0 = be.readSync(inp + 2 * C, C);
    expect(Array.from(be.readSync(out, C))).toEqual(Array.from(v0));
  });

  it('takes one AdamW step as written in the paper (bias-corrected, decoupled decay, fused grad scale)', () => {
    const be = new JsBackend({ dtype: 'f64' });
    const alloc = arena(be);
    const p = alloc(1), g = alloc(1), m = alloc(1), v = alloc(1), gs = alloc(1);
    be.write(p, [2]); be.write(g, [4]); be.write(gs, [0.5]);
    be.adamwStep(p, g, m, v, 1, { lr: 0.1, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, step: 1 }, gs);
    // grad 2 after scaling: m = 0.2, v = 0.2, m_hat = 2, v_hat = 4 -> update 2/(2+1e-8) + 0.1*2
    expect(be.readSync(m, 1)[0]).toBeCloseTo(0.2, 14);
    expect(be.readSync(v, 1)[0]).toBeCloseTo(0.2, 14);
    expect(be.readSync(p, 1)[0]).toBeCloseTo(2 - 0.1 * (2 / (2 + 1e-8) + 0.2), 12);
  });
});

/**
 * Finite-difference check: loss = sum(out * w) for random w; backward(dout = w) must give
 * d loss / d input for every input element (central differences, h = 1e-6, f64).
 */
function gradCheck(be: JsBackend, inputs: { p: number; n: number; grad: number }[], out: { p: number; n: number }, dout: number, forward: () => void, backward: () => void, tol = 1e-6): void {
  const rng = new Rng(99);
  be.write(dout, randn(rng, out.n));
  const w = be.readSync(dout, out.n);
  const lossAt = () => {
    forward();
    const o = be.readSync(out.p, out.n);
    let s = 0;
    for (let i = 0; i < out.n; i++) s += o[i] * w[i];
    return s;
  };
  for (const inp of inputs) be.fill(inp.grad, inp.n, 0);
  forward();
  backward();
  const h = 1e-6;
  for (const inp of inputs) {
    const analytic = be.readSync(inp.grad, inp.n);
    for (let i = 0; i < inp.n; i++) {
      const x0 = be.readSync(inp.p + i, 1)[0];
      be.write(inp.p + i, [x0 + h]);
      const lp = lossAt();
      be.write(inp.p + i, [x0 - h]);
      const lm = lossAt();
      be.write(inp.p + i, [x0]);
      const numeric = (lp - lm) / (2 * h);
      expect(Math.abs(analytic[i] - numeric)).toBeLessThan(tol * Math.max(1, Math.abs(numeric)));
    }
  }
}

describe('JsBackend backward kernels match finite differences of their forwards', () => {
  const setup = () => {
    const be = new JsBackend({ dtype: 'f64' });
    return { be, alloc: arena(be), rng: new Rng(7) };
  };

  it('layerNormBackward', () => {
    const { be, alloc, rng } = setup();
    const [N, C] = [3, 5];
    const inp = alloc(N * C), w = alloc(C), b = alloc(C), out = alloc(N * C), mean = alloc(N), rstd = alloc(N);
    const dinp = alloc(N * C), dw = alloc(C), db = alloc(C), dout = alloc(N * C);
    be.write(inp, randn(rng, N * C)); be.write(w, randn(rng, C)); be.write(b, randn(rng, C));
    gradCheck(be, [{ p: inp, n: N * C, grad: dinp }, { p: w, n: C, grad: dw }, { p: b, n: C, grad: db }], { p: out, n: N * C }, dout,
      () => be.layerNormForward(out, mean, rstd, inp, w, b, N, C, 1e-5),
      () => be.layerNormBackward(dinp, dw, db, dout, inp, w, mean, rstd, N, C));
  });

  it('rmsNormBackward, with and without a weight', () => {
    const { be, alloc, rng } = setup();
    const [N, C] = [3, 6];
    const inp = alloc(N * C), w = alloc(C), out = alloc(N * C), rstd = alloc(N), dinp = alloc(N * C), dw = alloc(C), dout = alloc(N * C);
    be.write(inp, randn(rng, N * C)); be.write(w, randn(rng, C));
    gradCheck(be, [{ p: inp, n: N * C, grad: dinp }, { p: w, n: C, grad: dw }], { p: out, n: N * C }, dout,
      () => be.rmsNormForward(out, rstd, inp, w, N, C, 1e-5),
      () => be.rmsNormBackward(dinp, dw, dout, inp, w, rstd, N, C));
    gradCheck(be, [{ p: inp, n: N * C, grad: dinp }], { p: out, n: N * C }, dout,
      () => be.rmsNormForward(out, rstd, inp, 0, N, C, 1e-5),
      () => be.rmsNormBackward(dinp, 0, dout, inp, 0, rstd, N, C));
  });

  it('geluBackward and siluBackward', () => {
    const { be, alloc, rng } = setup();
    const n = 9;
    const inp = alloc(n), out = alloc(n), dinp = alloc(n), dout = alloc(n);
    be.write(inp, randn(rng, n, 2));
    gradCheck(be, [{ p: inp, n, grad: dinp }], { p: out, n }, dout, () => be.geluForward(out, inp, n), () => be.geluBackward(dinp, inp, dout, n));
    gradCheck(be, [{ p: inp, n, grad: dinp }], { p: out, n }, dout, () => be.siluForward(out, inp, n), () => be.siluBackward(dinp, inp, dout, n));
  });

  it('attentionBackward', () => {
    const { be, alloc, rng } = setup();
    const [B, T, C, NH] = [2, 3, 4, 2];
    const inp = alloc(B * T * 3 * C), out = alloc(B * T * C), pre = alloc(B * NH * T * T), att = alloc(B * NH * T * T);
    const dinp = alloc(B * T * 3 * C), dpre = alloc(B * NH * T * T), datt = alloc(B * NH * T * T), dout = alloc(B * T * C);
    be.write(inp, randn(rng, B * T * 3 * C));
    gradCheck(be, [{ p: inp, n: B * T * 3 * C, grad: dinp }], { p: out, n: B * T * C }, dout,
      () => be.attentionForward(out, pre, att, inp, B, T, C, NH),
      () => be.attentionBackward(dinp, dpre, datt, dout, inp, att, B, T, C, NH));
  });

  it('embeddingBackward, with a repeated token', () => {
    const { be, alloc, rng } = setup();
    const [B, T, C, V] = [2, 2, 3, 4];
    const tok = alloc(B * T), wte = alloc(V * C), wpe = alloc(T * C), out = alloc(B * T * C);
    const dwte = alloc(V * C), dwpe = alloc(T * C), dout = alloc(B * T * C);
    be.writeIndices(tok, new Int32Array([1, 3, 1, 0]));
    be.write(wte, randn(rng, V * C)); be.write(wpe, randn(rng, T * C));
    gradCheck(be, [{ p: wte, n: V * C, grad: dwte }, { p: wpe, n: T * C, grad: dwpe }], { p: out, n: B * T * C }, dout,
      () => be.embeddingForward(out, tok, wte, wpe, B, T, C),
      () => be.embeddingBackward(dwte, dwpe, dout, tok, B, T, C));
  });

  it('crossEntropyBackward', () => {
    const { be, alloc, rng } = setup();
    const [N, V] = [3, 7];
    const logits = alloc(N * V), probs = alloc(N * V), tgt = alloc(N), losses = alloc(N), dlogits = alloc(N * V), dlosses = alloc(N);
    be.write(logits, randn(rng, N * V, 3));
    be.writeIndices(tgt, new Int32Array([0, 6, 3]));
    gradCheck(be, [{ p: logits, n: N * V, grad: dlogits }], { p: losses, n: N }, dlosses,
      () => be.crossEntropyForward(losses, probs, logits, tgt, N, V),
      () => be.crossEntropyBackward(dlogits, probs, tgt, dlosses, N, V));
  });

  it('biasBackward and mulAccumulate (the backwards of addBias and mul)', () => {
    const { be, alloc, rng } = setup();
    const [N, C] = [3, 4];
    const x = alloc(N * C), bias = alloc(C), out = alloc(N * C), dbias = alloc(C), dout = alloc(N * C);
    const y = alloc(N * C), dx = alloc(N * C);
    be.write(x, randn(rng, N * C)); be.write(bias, randn(rng, C)); be.write(y, randn(rng, N * C));
    gradCheck(be, [{ p: bias, n: C, grad: dbias }], { p: out, n: N * C }, dout,
      () => { be.copy(out, x, N * C); be.addBias(out, bias, N, C); },
      () => be.biasBackward(dbias, dout, N, C));
    gradCheck(be, [{ p: x, n: N * C, grad: dx }], { p: out, n: N * C }, dout,
      () => be.mul(out, x, y, N * C),
      () => be.mulAccumulate(dx, y, dout, N * C));
  });
});
