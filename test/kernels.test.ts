// Every wasm kernel against the js reference (JsBackend, f64) on the same f32 inputs, on shapes
// that are not multiples of 4 or 16; and the determinism contract of the thread pool: the same
// kernel with its range split into parts (WasmBackend `splits`) gives bit-identical results.
//
// Tolerances (|wasm - js| <= atol + rtol * |js|), stated per kernel below:
//   elementwise: rtol 1e-6 (one f32 rounding of an exact result)
//   reductions, norms, activations, attention, cross-entropy, AdamW: rtol 1e-4 with a small atol
//   (f32 accumulation in a different order than the f64 oracle; transcendentals in f32).
import { describe, expect, it } from 'vitest';
import type { Backend } from '../src/backend/backend.js';
import { JsBackend } from '../src/backend/js/index.js';
import { WasmBackend } from '../src/backend/wasm/index.js';
import { Rng } from '../src/util/rng.js';

const SPLITS = [2, 3, 7];

/** The js f64 oracle, a wasm backend, and wasm backends whose kernels run as 2, 3, 7 parts. */
class Trio {
  readonly js = new JsBackend({ dtype: 'f64' });
  readonly wasm = WasmBackend.createSync();
  readonly split = SPLITS.map((splits) => WasmBackend.createSync({ splits }));
  readonly all: Backend[] = [this.js, this.wasm, ...this.split];
  private readonly off: Record<string, number> = {};
  private readonly len: Record<string, number> = {};

  constructor(sizes: Record<string, number>) {
    let top = 0;
    for (const [name, n] of Object.entries(sizes)) {
      this.off[name] = top;
      this.len[name] = n;
      top += n + 3; // a gap, so an overrun would show in a neighbour
    }
    for (const be of this.all) be.reserve(be.base + top);
  }

  /** Pointers of every named buffer in `be`'s memory (0 for names not allocated). */
  p(be: Backend): Record<string, number> {
    return new Proxy({}, { get: (_, name: string) => (name in this.off ? be.base + this.off[name] : 0) });
  }

  /** Write the same f32-representable values to buffer `name` in every backend. */
  write(name: string, data: number[]): void {
    const f = data.map(Math.fround);
    for (const be of this.all) be.write(this.p(be)[name], f);
  }

  random(name: string, rng: Rng, std = 1): void {
    this.write(name, Array.from({ length: this.len[name] }, () => std * rng.normal()));
  }

  indices(name: string, data: number[]): void {
    for (const be of this.all) be.writeIndices(this.p(be)[name], new Int32Array(data));
  }

  run(op: (be: Backend, p: Record<string, number>) => void): void {
    for (const be of this.all) op(be, this.p(be));
  }

  /** wasm within tolerance of js; every split wasm bit-identical to the unsplit one. */
  check(name: string, rtol: number, atol: number, rows?: (i: number) => boolean): void {
    const n = this.len[name];
    const ref = this.js.readSync(this.p(this.js)[name], n);
    const got = this.wasm.readSync(this.p(this.wasm)[name], n);
    let worst = 0;
    let at = -1;
    for (let i = 0; i < n; i++) {
      if (rows && !rows(i)) continue;
      const excess = Math.abs(got[i] - ref[i]) - (atol + rtol * Math.abs(ref[i]));
      if (!(excess <= worst)) { worst = excess; at = i; }
    }
    expect(at, `${name}[${at}]: wasm ${got[at]} vs js ${ref[at]}`).toBe(-1);
    const bits = new Uint32Array(Float32Array.from(got).buffer);
    for (const [s, be] of this.split.entries()) {
      const other = new Uint32Array(Float32Array.from(be.readSync(this.p(be)[name], n)).buffer);
      const differs = other.findIndex((v, i) => v !== bits[i]);
      expect(differs, `${name}[${differs}] differs in its bits when the kernel range is split in ${SPLITS[s]}`).toBe(-1);
    }
  }
}

const rng = new Rng(2024);

describe('elementwise kernels match the js reference (rtol 1e-6) for any split', () => {
  for (const n of [1, 3, 5, 17, 33, 1000]) {
    it(`add, mul, fill, scale, axpy, mulAccumulate with n = ${n}`, () => {
      const t = new Trio({ a: n, b: n, add: n, mul: n, fill: n, scale: n, axpy: n, macc: n });
      for (const name of ['a', 'b', 'axpy', 'macc']) t.random(name, rng);
      t.run((be, p) => {
        be.add(p.add, p.a, p.b, n);
        be.mul(p.mul, p.a, p.b, n);
        be.fill(p.fill, n, Math.fround(-1.3));
        be.scale(p.scale, p.a, Math.fround(-0.75), n);
        be.axpy(p.axpy, Math.fround(0.3), p.a, n);
        be.mulAccumulate(p.macc, p.a, p.b, n);
      });
      for (const name of ['add', 'mul', 'fill', 'scale', 'axpy', 'macc']) t.check(name, 1e-6, 1e-7);
    });
  }
});

describe('chunked reductions match the js reference (rtol 1e-6, f64 partials) for any split', () => {
  for (const n of [1, 5, 4097, 100003, 4096 * 1024 + 3]) {
    it(`sum and sumSquares over n = ${n}`, () => {
      const t = new Trio({ x: n, sum: 1, sumsq: 1, clip: 1 });
      t.random('x', rng);
      t.run((be, p) => {
        be.sum(p.sum, p.x, n);
        be.sumSquares(p.sumsq, p.x, n);
        be.clipScale(p.clip, p.sumsq, 0.5);
      });
      t.check('sum', 1e-6, 1e-6);
      t.check('sumsq', 1e-6, 0);
      t.check('clip', 1e-6, 0);
    });
  }
});

describe('bias kernels match the js reference (rtol 1e-5) for any split', () => {
  for (const [N, C] of [[1, 1], [3, 5], [17, 33], [4, 64]]) {
    it(`addBias and biasBackward with N = ${N}, C = ${C}`, () => {
      const t = new Trio({ out: N * C, bias: C, dbias: C, dout: N * C });
      for (const name of ['out', 'bias', 'dbias', 'dout']) t.random(name, rng);
      t.run((be, p) => {
        be.addBias(p.out, p.bias, N, C);
        be.biasBackward(p.dbias, p.dout, N, C);
      });
      t.check('out', 1e-6, 1e-7);
      t.check('dbias', 1e-5, 1e-5);
    });
  }
});

describe('norm kernels match the js reference (rtol 1e-4) for any split', () => {
  for (const [N, C] of [[1, 1], [3, 5], [7, 17], [4, 64], [2, 33]]) {
    it(`layerNorm forward and backward with N = ${N}, C = ${C}, with and without bias`, () => {
      const t = new Trio({ inp: N * C, w: C, b: C, out: N * C, out2: N * C, mean: N, rstd: N, dinp: N * C, dw: C, db: C, dout: N * C });
      for (const name of ['inp', 'w', 'b', 'dinp', 'dw', 'db', 'dout']) t.random(name, rng);
      t.run((be, p) => {
        be.layerNormForward(p.out2, p.mean, p.rstd, p.inp, p.w, 0, N, C, 1e-5);
        be.layerNormForward(p.out, p.mean, p.rstd, p.inp, p.w, p.b, N, C, 1e-5);
        be.layerNormBackward(p.dinp, p.dw, p.db, p.dout, p.inp, p.w, p.mean, p.rstd, N, C);
      });
      for (const name of ['out', 'out2', 'mean', 'rstd', 'dinp', 'dw', 'db']) t.check(name, 1e-4, 1e-4);
    });

    it(`rmsNorm forward and backward with N = ${N}, C = ${C}, with and without weight`, () => {
      const t = new Trio({ inp: N * C, w: C, out: N * C, out2: N * C, rstd: N, dinp: N * C, dinp2: N * C, dw: C, dout: N * C });
      for (const name of ['inp', 'w', 'dinp', 'dinp2', 'dw', 'dout']) t.random(name, rng);
      t.run((be, p) => {
        be.rmsNormForward(p.out2, p.rstd, p.inp, 0, N, C, 1e-5);
        be.rmsNormBackward(p.dinp2, 0, p.dout, p.inp, 0, p.rstd, N, C);
        be.rmsNormForward(p.out, p.rstd, p.inp, p.w, N, C, 1e-5);
        be.rmsNormBackward(p.dinp, p.dw, p.dout, p.inp, p.w, p.rstd, N, C);
      });
      for (const name of ['out', 'out2', 'rstd', 'dinp', 'dinp2', 'dw']) t.check(name, 1e-4, 1e-4);
    });
  }
});

describe('activation kernels match the js reference (rtol 1e-5, atol 1e-6) for any split', () => {
  for (const n of [1, 3, 17, 1000]) {
    it(`gelu and silu forward and backward with n = ${n}`, () => {
      const t = new Trio({ inp: n, gelu: n, silu: n, dgelu: n, dsilu: n, dout: n });
      t.random('inp', rng, 3);
      for (const name of ['dgelu', 'dsilu', 'dout']) t.random(name, rng);
      t.run((be, p) => {
        be.geluForward(p.gelu, p.inp, n);
        be.siluForward(p.silu, p.inp, n);
        be.geluBackward(p.dgelu, p.inp, p.dout, n);
        be.siluBackward(p.dsilu, p.inp, p.dout, n);
      });
      for (const name of ['gelu', 'silu', 'dgelu', 'dsilu']) t.check(name, 1e-5, 1e-6);
    });
  }
});

describe('activation and softmax kernels stay finite and accurate at extreme inputs', () => {
  const extremes = [0, -0, 1e-30, -1e-30, 0.5, -0.5, 9, -9, 20, -20, 87, -87, 88.5, -88.5, 100, -100, 1e4, -1e4, 3e38, -3e38];
  it('gelu and silu, forward and backward, at 0, tiny, huge and overflow-range inputs', () => {
    const n = extremes.length;
    const t = new Trio({ inp: n, gelu: n, silu: n, dgelu: n, dsilu: n, dout: n });
    t.write('inp', extremes);
    t.write('dout', extremes.map(() => 1));
    t.run((be, p) => {
      be.geluForward(p.gelu, p.inp, n);
      be.siluForward(p.silu, p.inp, n);
      be.geluBackward(p.dgelu, p.inp, p.dout, n);
      be.siluBackward(p.dsilu, p.inp, p.dout, n);
    });
    for (const name of ['gelu', 'silu', 'dgelu', 'dsilu']) t.check(name, 1e-5, 1e-6);
  });

  it('propagates NaN through exp-based kernels instead of hiding it', () => {
    const t = new Trio({ inp: 5, silu: 5, gelu: 5 });
    t.write('inp', [1, NaN, 2, 3, NaN]);
    t.run((be, p) => {
      be.siluForward(p.silu, p.inp, 5);
      be.geluForward(p.gelu, p.inp, 5);
    });
    for (const name of ['silu', 'gelu']) {
      const out = Array.from(t.wasm.readSync(t.p(t.wasm)[name], 5), Number.isNaN);
      expect(out, name).toEqual([false, true, false, false, true]);
    }
  });

  it('cross-entropy with logits spread over 1e4 (probabilities that underflow to 0)', () => {
    const V = 7;
    const t = new Trio({ logits: 2 * V, probs: 2 * V, tgt: 2, losses: 2 });
    t.write('logits', [0, -1e4, 5e3, 3, -50, 1e4, 2, 100, 100, 100, -100, 0, 1e-3, 99]);
    t.indices('tgt', [1, 3]);
    t.run((be, p) => be.crossEntropyForward(p.losses, p.probs, p.logits, p.tgt, 2, V));
    t.check('losses', 1e-6, 1e-6);
    t.check('probs', 1e-5, 1e-7);
    expect(t.wasm.readSync(t.p(t.wasm).losses, 1)[0]).toBe(2e4);
  });
});

describe('attention kernels match the js reference (rtol 1e-4) for any split', () => {
  for (const [B, T, C, NH] of [[1, 1, 4, 1], [2, 5, 12, 3], [1, 7, 10, 2], [2, 17, 33, 3], [1, 33, 64, 4]]) {
    it(`attention forward and backward with B = ${B}, T = ${T}, C = ${C}, NH = ${NH}`, () => {
      const att = B * NH * T * T;
      const t = new Trio({ inp: B * T * 3 * C, out: B * T * C, preatt: att, att, dinp: B * T * 3 * C, dpreatt: att, datt: att, dout: B * T * C });
      for (const name of ['inp', 'dinp', 'dout']) t.random(name, rng);
      t.run((be, p) => {
        be.attentionForward(p.out, p.preatt, p.att, p.inp, B, T, C, NH);
        be.attentionBackward(p.dinp, p.dpreatt, p.datt, p.dout, p.inp, p.att, B, T, C, NH);
      });
      const causal = (i: number) => i % T <= Math.floor(i / T) % T; // entries above the diagonal are unspecified
      t.check('out', 1e-4, 1e-5);
      t.check('att', 1e-4, 1e-6);
      t.check('preatt', 1e-4, 1e-5, causal);
      t.check('datt', 1e-4, 1e-5, causal);
      t.check('dpreatt', 1e-4, 1e-5, causal);
      t.check('dinp', 1e-4, 1e-4);
    });
  }
});

describe('embedding kernels match the js reference (rtol 1e-6) for any split', () => {
  for (const [B, T, C, V] of [[1, 1, 1, 1], [2, 3, 5, 4], [1, 17, 33, 9], [3, 8, 16, 2]]) {
    it(`embedding forward and backward (repeated tokens) with B = ${B}, T = ${T}, C = ${C}, V = ${V}`, () => {
      const t = new Trio({ tok: B * T, wte: V * C, wpe: T * C, out: B * T * C, out2: B * T * C, dwte: V * C, dwpe: T * C, dwte2: V * C, dout: B * T * C });
      t.indices('tok', Array.from({ length: B * T }, () => rng.int(V)));
      for (const name of ['wte', 'wpe', 'dwte', 'dwpe', 'dwte2', 'dout']) t.random(name, rng);
      t.run((be, p) => {
        be.embeddingForward(p.out, p.tok, p.wte, p.wpe, B, T, C);
        be.embeddingForward(p.out2, p.tok, p.wte, 0, B, T, C);
        be.embeddingBackward(p.dwte, p.dwpe, p.dout, p.tok, B, T, C);
        be.embeddingBackward(p.dwte2, 0, p.dout, p.tok, B, T, C);
      });
      t.check('out', 1e-6, 1e-7);
      t.check('out2', 0, 0);
      for (const name of ['dwte', 'dwpe', 'dwte2']) t.check(name, 1e-5, 1e-5);
    });
  }
});

describe('cross-entropy kernels match the js reference (rtol 1e-4) for any split', () => {
  for (const [N, V] of [[1, 1], [3, 5], [4, 17], [2, 1000], [2, 50257]]) {
    it(`crossEntropy forward and backward with N = ${N}, V = ${V}`, () => {
      const t = new Trio({ logits: N * V, probs: N * V, tgt: N, losses: N, dlogits: N * V, dlosses: N });
      t.random('logits', rng, 5);
      t.random('dlogits', rng);
      t.random('dlosses', rng);
      t.indices('tgt', Array.from({ length: N }, () => rng.int(V)));
      t.run((be, p) => {
        be.crossEntropyForward(p.losses, p.probs, p.logits, p.tgt, N, V);
        be.crossEntropyBackward(p.dlogits, p.probs, p.tgt, p.dlosses, N, V);
      });
      t.check('losses', 1e-4, 1e-5);
      t.check('probs', 1e-4, 1e-7);
      t.check('dlogits', 1e-4, 1e-6);
    });
  }
});

describe('AdamW matches the js reference (rtol 1e-4) for any split', () => {
  for (const n of [1, 5, 33, 1003]) {
    it(`three AdamW steps over n = ${n}, with and without a fused grad scale`, () => {
      const t = new Trio({ p: n, g: n, m: n, v: n, p2: n, m2: n, v2: n, scale: 1 });
      for (const name of ['p', 'g']) t.random(name, rng);
      t.run((be, q) => be.copy(q.p2, q.p, n));
      t.write('scale', [0.25]);
      for (let step = 1; step <= 3; step++) {
        const hp = { lr: 1e-2, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, step };
        t.run((be, q) => {
          be.adamwStep(q.p, q.g, q.m, q.v, n, hp, q.scale);
          be.adamwStep(q.p2, q.g, q.m2, q.v2, n, hp, 0);
        });
      }
      for (const name of ['p', 'm', 'v', 'p2', 'm2', 'v2']) t.check(name, 1e-4, 1e-6);
    });
  }
});

describe('gemm dispatches to the GEMM kernels and matches the js reference (rtol 1e-4)', () => {
  for (const layout of ['nn', 'nt', 'tn'] as const) {
    it(`gemm ${layout} with M = 5, N = 17, K = 33, overwrite and accumulate`, () => {
      const [M, N, K] = [5, 17, 33];
      const t = new Trio({ a: M * K, b: K * N, c: M * N, c2: M * N });
      for (const name of ['a', 'b', 'c2']) t.random(name, rng);
      t.run((be, p) => {
        be.gemm(layout, p.c, p.a, p.b, M, N, K, false);
        be.gemm(layout, p.c2, p.a, p.b, M, N, K, true);
      });
      t.check('c', 1e-4, 1e-5);
      t.check('c2', 1e-4, 1e-5);
    });
  }
});

// ---- squared ReLU and rotary position embedding (mlp: 'relu2', pos: 'rope') ---------------------
// relu2: rtol 1e-6 (max is exact; one or two f32 roundings of the product).
// RoPE table: atol 1e-7 (cos/sin computed in f64 in both, rounded once to f32 in wasm).
// RoPE forward/backward: rtol 1e-6, atol 1e-6 (the f32 table rounding, plus two f32 products).

describe('squared ReLU kernels match the js reference (rtol 1e-6) for any split', () => {
  for (const n of [1, 3, 17, 1000]) {
    it(`relu2 forward and backward with n = ${n}`, () => {
      const t = new Trio({ inp: n, out: n, dinp: n, dout: n });
      t.random('inp', rng, 3);
      for (const name of ['dinp', 'dout']) t.random(name, rng);
      t.run((be, p) => {
        be.relu2Forward(p.out, p.inp, n);
        be.relu2Backward(p.dinp, p.inp, p.dout, n);
      });
      t.check('out', 1e-6, 0);
      t.check('dinp', 1e-6, 1e-7);
    });
  }

  it('relu2 is 0 with zero gradient for x <= 0 (and -0), x^2 above, and keeps NaN', () => {
    const xs = [-3, -0, 0, 1e-30, 0.5, 2, -1e30, 1e10, NaN];
    const n = xs.length;
    const t = new Trio({ inp: n, out: n, dinp: n, dout: n });
    t.write('inp', xs);
    t.write('dout', xs.map(() => 1));
    t.run((be, p) => {
      be.relu2Forward(p.out, p.inp, n);
      be.relu2Backward(p.dinp, p.inp, p.dout, n);
    });
    const out = Array.from(t.wasm.readSync(t.p(t.wasm).out, n));
    const dinp = Array.from(t.wasm.readSync(t.p(t.wasm).dinp, n));
    expect(out).toEqual([0, 0, 0, 0, 0.25, 4, 0, Math.fround(1e20), NaN]);
    expect(dinp).toEqual([0, 0, 0, Math.fround(2e-30), 1, 4, 0, 2e10, NaN]);
  });
});

describe('RoPE kernels match the js reference (table atol 1e-7, rotation rtol 1e-6) for any split', () => {
  // head sizes 2, 4, 6, 20, 16: half = 1, 2, 3 (scalar tail only), 10 (SIMD + tail), 8 (SIMD only)
  for (const [B, T, C, NH, maxT] of [[1, 1, 2, 1, 1], [2, 5, 12, 3, 7], [1, 7, 12, 2, 7], [2, 17, 40, 2, 20], [1, 33, 64, 4, 40]]) {
    it(`ropeTable, ropeForward (out of place and in place) and ropeBackward with B = ${B}, T = ${T}, C = ${C}, NH = ${NH}, ${maxT} table rows`, () => {
      const hs = C / NH;
      const n = B * T * 3 * C;
      const t = new Trio({ table: maxT * hs, inp: n, out: n, inplace: n, dinp: n, dout: n });
      for (const name of ['inp', 'dinp', 'dout']) t.random(name, rng);
      t.run((be, p) => {
        be.ropeTable(p.table, maxT, hs, 10000);
        be.ropeForward(p.out, p.inp, p.table, B, T, C, NH);
        be.copy(p.inplace, p.inp, n);
        be.ropeForward(p.inplace, p.inplace, p.table, B, T, C, NH);
        be.ropeBackward(p.dinp, p.dout, p.table, B, T, C, NH);
      });
      t.check('table', 0, 1e-7);
      for (const name of ['out', 'inplace', 'dinp']) t.check(name, 1e-6, 1e-6);
    });
  }
});
