// Rotary position embedding (pos: 'rope') and the squared-ReLU MLP (mlp: 'relu2'): RoPE's
// defining properties on both backends, its agreement with Hugging Face's apply_rotary_pos_emb,
// the GPT options, and models with them that train (wasm, js and 2 threads agreeing).
// (Kernel-level wasm == js checks with splits are in kernels.test.ts; gradients vs finite
// differences in grad.test.ts.)
//
// Tolerances: js f64 results are exact up to f64 rounding (1e-12); wasm is f32 (1e-5 relative
// to the vectors' scale, a few f32 roundings of O(1) values).
import { afterAll, describe, expect, it } from 'vitest';
import type { Backend } from '../src/backend/backend.js';
import { JsBackend } from '../src/backend/js/index.js';
import { WasmBackend, createWasmBackend } from '../src/backend/wasm/index.js';
import { rope } from '../src/autograd/index.js';
import { Heap } from '../src/tensor/heap.js';
import { GPT, type GPTConfig } from '../src/nn/gpt.js';
import { RotaryEmbedding } from '../src/nn/rope.js';
import { AdamW } from '../src/optim/adamw.js';
import { trainStep } from '../src/optim/train-step.js';
import { repeatPatternBatch } from './pattern-task.js';
import { Rng } from '../src/util/rng.js';

const backends: Backend[] = [];
afterAll(() => backends.forEach((b) => b.dispose()));
const jsF64 = () => new JsBackend({ dtype: 'f64' });
const wasm = () => {
  const be = WasmBackend.createSync();
  backends.push(be);
  return be;
};

/** Buffers at consecutive pointers of `be` (with gaps), returned by name. */
function layout(be: Backend, sizes: Record<string, number>): Record<string, number> {
  const p: Record<string, number> = {};
  let top = be.base;
  for (const [name, n] of Object.entries(sizes)) {
    p[name] = top;
    top += n + 16;
  }
  be.reserve(top);
  return p;
}

function randomValues(rng: Rng, n: number): number[] {
  return Array.from({ length: n }, () => Math.fround(rng.normal()));
}

/**
 * Hugging Face's LLaMA RoPE for one head vector x (hs) at position t, in f64, written from its
 * definition: inv_freq = 1 / theta^(arange(0, hs, 2) / hs); emb = cat(freqs, freqs);
 * x * cos(emb) + rotate_half(x) * sin(emb), rotate_half(x) = cat(-x[hs/2:], x[:hs/2]).
 */
function hfRotary(x: ArrayLike<number>, t: number, theta: number): number[] {
  const hs = x.length;
  const half = hs / 2;
  const freqs = Array.from({ length: half }, (_, j) => t * (1 / theta ** ((2 * j) / hs)));
  const emb = [...freqs, ...freqs];
  const rotated = [...Array.from({ length: half }, (_, i) => -x[half + i]!), ...Array.from({ length: half }, (_, i) => x[i]!)];
  return Array.from({ length: hs }, (_, i) => x[i]! * Math.cos(emb[i]!) + rotated[i]! * Math.sin(emb[i]!));
}

const dot = (a: ArrayLike<number>, b: ArrayLike<number>) => Array.from(a).reduce((s, v, i) => s + v * b[i]!, 0);
const norm = (a: ArrayLike<number>) => Math.sqrt(dot(a, a));

describe('the RoPE cos/sin table', () => {
  it('holds cos(t·θ_i) then sin(t·θ_i), θ_i = 10000^(-2i/hs), rounded once to f32, up to position 4095 (wasm)', () => {
    const [T, hs, theta] = [4096, 64, 10000];
    const be = wasm();
    const p = layout(be, { table: T * hs });
    be.ropeTable(p.table, T, hs, theta);
    const table = be.readSync(p.table, T * hs);
    let worst = 0;
    let worstF32Angles = 0; // what a table computed with f32 angles would be off by
    for (let t = 0; t < T; t++) {
      for (let i = 0; i < hs / 2; i++) {
        const angle = t * theta ** ((-2 * i) / hs);
        worst = Math.max(worst, Math.abs(table[t * hs + i]! - Math.cos(angle)), Math.abs(table[t * hs + hs / 2 + i]! - Math.sin(angle)));
        const f32Angle = Math.fround(Math.fround(t) * Math.fround(theta ** ((-2 * i) / hs)));
        worstF32Angles = Math.max(worstF32Angles, Math.abs(Math.fround(Math.cos(f32Angle)) - Math.cos(angle)));
      }
    }
    // one f32 rounding of a value in [-1, 1] is at most 2^-25; allow one f32 ulp (2^-24)
    expect(worst).toBeLessThanOrEqual(2 ** -24);
    expect(worstF32Angles, 'f32 angles would be visibly worse, so this bound tests the f64 computation').toBeGreaterThan(1e-5);
    expect(Array.from(table.subarray(0, hs))).toEqual([...new Array(hs / 2).fill(1), ...new Array(hs / 2).fill(0)]);
  });

  it('uses the configured base theta', () => {
    const be = jsF64();
    const p = layout(be, { a: 3 * 4, b: 3 * 4 });
    be.ropeTable(p.a, 3, 4, 10000);
    be.ropeTable(p.b, 3, 4, 500);
    // row 2, pair 1: cos(2 · theta^(-1/2))
    expect(be.readSync(p.a + 2 * 4 + 1, 1)[0]).toBeCloseTo(Math.cos(2 / 100), 15);
    expect(be.readSync(p.b + 2 * 4 + 1, 1)[0]).toBeCloseTo(Math.cos(2 / Math.sqrt(500)), 15);
  });
});

describe('rope on a fused qkv (B, T, 3C)', () => {
  const [B, T, C, NH, theta] = [2, 9, 24, 2, 10000];
  const hs = C / NH;
  const n = B * T * 3 * C;
  const rng = new Rng(31);
  const input = randomValues(rng, n);

  /** Run ropeForward on `be` and return the input and output rows. */
  function rotate(be: Backend): { out: ArrayLike<number> } {
    const p = layout(be, { table: T * hs, inp: n, out: n });
    be.ropeTable(p.table, T, hs, theta);
    be.write(p.inp, input);
    be.ropeForward(p.out, p.inp, p.table, B, T, C, NH);
    return { out: be.readSync(p.out, n) };
  }

  /** The head vector (q: part 0, k: part 1) of head h at token (b, t). */
  const head = (a: ArrayLike<number>, b: number, t: number, part: number, h: number) => {
    const start = (b * T + t) * 3 * C + part * C + h * hs;
    return Array.from({ length: hs }, (_, i) => a[start + i]!);
  };

  for (const [name, make, tol] of [['js f64', jsF64, 1e-12], ['wasm', wasm, 1e-5]] as const) {
    it(`rotates q and k like Hugging Face's apply_rotary_pos_emb (rotate_half layout) and copies v bit for bit (${name})`, () => {
      const { out } = rotate(make());
      let worst = 0;
      for (let b = 0; b < B; b++) {
        for (let t = 0; t < T; t++) {
          for (const part of [0, 1]) {
            for (let h = 0; h < NH; h++) {
              const want = hfRotary(head(input, b, t, part, h), t, theta);
              head(out, b, t, part, h).forEach((v, i) => (worst = Math.max(worst, Math.abs(v - want[i]!))));
            }
          }
          const v0 = (b * T + t) * 3 * C + 2 * C;
          expect(Array.from(out).slice(v0, v0 + C)).toEqual(input.slice(v0, v0 + C));
        }
      }
      expect(worst).toBeLessThan(tol);
    });

    it(`preserves the length of every q and k head vector, and leaves position 0 unchanged (${name})`, () => {
      const { out } = rotate(make());
      for (let b = 0; b < B; b++) {
        for (let t = 0; t < T; t++) {
          for (const part of [0, 1]) {
            for (let h = 0; h < NH; h++) {
              const before = norm(head(input, b, t, part, h));
              expect(Math.abs(norm(head(out, b, t, part, h)) - before)).toBeLessThan(tol * before);
              if (t === 0) expect(head(out, b, t, part, h)).toEqual(head(input, b, t, part, h));
            }
          }
        }
      }
    });

    it(`makes q·k depend only on the position difference, and on it non-trivially (${name})`, () => {
      // the same q and the same k vector at every position; score(m, n) = rope(q, m) · rope(k, n)
      const be = make();
      const T2 = 16;
      const p = layout(be, { table: T2 * C, inp: T2 * 3 * C, out: T2 * 3 * C });
      be.ropeTable(p.table, T2, C, theta); // one head of size C
      const q = randomValues(rng, C);
      const k = randomValues(rng, C);
      const row = [...q, ...k, ...new Array(C).fill(0)];
      be.write(p.inp, Array.from({ length: T2 }, () => row).flat());
      be.ropeForward(p.out, p.inp, p.table, 1, T2, C, 1);
      const out = be.readSync(p.out, T2 * 3 * C);
      const qAt = (m: number) => out.subarray(m * 3 * C, m * 3 * C + C);
      const kAt = (m: number) => out.subarray(m * 3 * C + C, m * 3 * C + 2 * C);
      const scale = norm(q) * norm(k);
      const byOffset = new Map<number, number[]>();
      for (let m = 0; m < T2; m++) {
        for (let j = 0; j < T2; j++) {
          const list = byOffset.get(m - j) ?? [];
          list.push(dot(qAt(m), kAt(j)));
          byOffset.set(m - j, list);
        }
      }
      const firsts: number[] = [];
      for (const scores of byOffset.values()) {
        firsts.push(scores[0]!);
        for (const s of scores) expect(Math.abs(s - scores[0]!)).toBeLessThan(tol * scale);
      }
      expect(Math.max(...firsts) - Math.min(...firsts)).toBeGreaterThan(0.1 * scale);
    });

    it(`has the inverse rotation as its backward: ropeBackward(rope(x)) = x, and <rope(x), y> = <x, ropeBackward(y)> (${name})`, () => {
      const be = make();
      const p = layout(be, { table: T * hs, inp: n, out: n, back: n, y: n, dy: n });
      be.ropeTable(p.table, T, hs, theta);
      be.write(p.inp, input);
      const y = randomValues(rng, n);
      be.write(p.y, y);
      be.fill(p.back, n, 0);
      be.fill(p.dy, n, 0);
      be.ropeForward(p.out, p.inp, p.table, B, T, C, NH);
      be.ropeBackward(p.back, p.out, p.table, B, T, C, NH);
      be.ropeBackward(p.dy, p.y, p.table, B, T, C, NH);
      const back = be.readSync(p.back, n);
      let worst = 0;
      back.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - input[i]!))));
      expect(worst).toBeLessThan(tol * 10);
      const lhs = dot(be.readSync(p.out, n), y);
      const rhs = dot(input, be.readSync(p.dy, n));
      expect(Math.abs(lhs - rhs)).toBeLessThan(tol * norm(input) * norm(y));
    });
  }

  it('gives the same bits in place as out of place (wasm)', () => {
    const be = wasm();
    const p = layout(be, { table: T * hs, inp: n, out: n });
    be.ropeTable(p.table, T, hs, theta);
    be.write(p.inp, input);
    be.ropeForward(p.out, p.inp, p.table, B, T, C, NH);
    be.ropeForward(p.inp, p.inp, p.table, B, T, C, NH);
    expect(be.readSync(p.inp, n)).toEqual(be.readSync(p.out, n));
  });

  it('rejects an odd head size, a short table, a gradient table and overlapping buffers, naming the fix', () => {
    const heap = new Heap(jsF64());
    const table = heap.empty([4, 4]);
    heap.backend.ropeTable(table.offset, 4, 4, theta);
    expect(() => rope(heap.zeros([1, 4, 18]), 2, table)).toThrow('rope: qkv (1,4,18) with 2 heads has head size 3, which is odd');
    expect(() => rope(heap.zeros([1, 5, 24]), 2, table)).toThrow('T = 5 positions but table (4,4) holds only 4; shorten the sequence or build a longer table');
    expect(() => rope(heap.zeros([1, 4, 24]), 1, table)).toThrow('table (4,4) must be (maxT, 8) for head size 8');
    const trained = heap.fromArray(new Float64Array(16), [4, 4], { requiresGrad: true });
    expect(() => rope(heap.zeros([1, 4, 24]), 2, trained)).toThrow('the cos/sin table is a constant and gets no gradient');
    const be = heap.backend;
    const x = heap.zeros([1, 4, 24]);
    expect(() => be.ropeBackward(x.offset, x.offset + 3, table.offset, 1, 4, 8, 2)).toThrow('js backend ropeBackward: dinp = ');
    expect(() => be.ropeForward(x.offset + 1, x.offset, table.offset, 1, 4, 8, 2)).toThrow('partly overlap; pass out = inp (in place) or disjoint buffers');
    expect(() => be.ropeTable(table.offset, 4, 5, theta)).toThrow('head size hs = 5 is odd');
    expect(() => be.ropeTable(table.offset, 4, 4, 0)).toThrow('theta = 0 must be a finite number > 0');
  });
});

describe('GPT options pos: rope and mlp: relu2', () => {
  const base = { vocabSize: 11, contextLength: 8, layers: 2, heads: 2, dim: 16 };

  it('has no position embedding parameter with RoPE; its cos/sin table is a static region, not a parameter', () => {
    const learned = new GPT(base);
    const heap = new Heap(jsF64());
    const roped = new GPT({ ...base, pos: 'rope' }).materialize(heap, new Rng(1));
    expect(learned.params.has('model.embed_positions.weight')).toBe(true);
    expect(roped.params.has('model.embed_positions.weight')).toBe(false);
    expect(roped.positionEmbedding).toBeNull();
    expect(learned.params.count - roped.params.count).toBe(base.contextLength * base.dim);
    const region = heap.stats().regions.find((r) => r.label === 'rope cos/sin table');
    expect(region?.size).toBe(base.contextLength * (base.dim / base.heads));
    expect(roped.rotary!.table.dataSync().subarray(0, 8)).toEqual(Float64Array.from([1, 1, 1, 1, 0, 0, 0, 0]));
    expect(roped.config.pos).toBe('rope');
    expect(roped.config.ropeTheta).toBe(10000);
  });

  it('rotates q and k in every layer: one rope op before each attention on the tape', () => {
    const heap = new Heap(jsF64());
    const model = new GPT({ ...base, pos: 'rope' }).materialize(heap, new Rng(1));
    const tok = heap.indices(Int32Array.from([1, 2, 3, 4]), [1, 4]);
    model.forward(tok, tok);
    const names = heap.tape.names();
    expect(names.filter((x) => x === 'rope')).toHaveLength(base.layers);
    expect(names.indexOf('rope')).toBe(names.indexOf('attention') - 1);
  });

  it('builds an up_proj → relu2 → down_proj MLP of hidden width 4·dim (no gate) for mlp: relu2', () => {
    const heap = new Heap(jsF64());
    const model = new GPT({ ...base, mlp: 'relu2' }).materialize(heap, new Rng(1));
    expect(model.config.hidden).toBe(4 * base.dim);
    expect(model.params.getParam('model.layers.0.mlp.up_proj.weight').shape).toEqual([4 * base.dim, base.dim]);
    expect(model.params.getParam('model.layers.0.mlp.down_proj.weight').shape).toEqual([base.dim, 4 * base.dim]);
    expect(model.params.has('model.layers.0.mlp.gate_proj.weight')).toBe(false);
    const tok = heap.indices(Int32Array.from([1, 2, 3]), [1, 3]);
    model.forward(tok, tok);
    expect(heap.tape.names().filter((x) => x === 'relu2')).toHaveLength(base.layers);
    expect(heap.tape.names()).not.toContain('gelu');
  });

  it('rejects an odd head size with RoPE, an unknown pos or mlp, and a bad ropeTheta', () => {
    expect(() => new GPT({ ...base, dim: 15, heads: 3, pos: 'rope' })).toThrow("GPT config: pos 'rope' needs an even head size, but dim 15 / heads 3 = 5; change dim or heads");
    expect(() => new GPT({ ...base, dim: 15, heads: 3, pos: 'learned' })).not.toThrow();
    expect(() => new GPT({ ...base, pos: 'alibi' as 'rope' })).toThrow("GPT config: pos must be 'learned' or 'rope', got alibi");
    expect(() => new GPT({ ...base, mlp: 'relu' as 'relu2' })).toThrow("GPT config: mlp must be 'gelu', 'swiglu' or 'relu2', got relu");
    expect(() => new GPT({ ...base, pos: 'rope', ropeTheta: -1 })).toThrow('GPT config: ropeTheta must be a finite number > 0, got -1');
  });

  it('says how to fix a forward before materialize, and a table allocated after the arena was used', () => {
    const heap = new Heap(jsF64());
    const rotary = new RotaryEmbedding(8, 4);
    expect(() => rotary.table).toThrow('the cos/sin table is not materialized; call model.materialize(heap, rng)');
    heap.zeros([3]);
    expect(() => rotary.materialize(heap)).toThrow('allocStatic(rope cos/sin table): the arena holds');
    expect(() => new RotaryEmbedding(8, 5)).toThrow('head size must be a positive even integer');
  });
});

async function trainLosses(backend: Backend, config: GPTConfig, steps: number, B: number): Promise<number[]> {
  backends.push(backend);
  const heap = new Heap(backend);
  const model = new GPT(config).materialize(heap, new Rng(42));
  const opt = new AdamW(model.params, { lr: 1e-2, betas: [0.9, 0.95], weightDecay: 0.01, clipNorm: 1 });
  const data = new Rng(7);
  const losses: number[] = [];
  for (let step = 0; step < steps; step++) {
    opt.lr = 1e-2 * Math.min(1, (step + 1) / 20);
    losses.push(await trainStep(heap, model, opt, repeatPatternBatch(data, B, config.contextLength, config.vocabSize, 4)));
  }
  return losses;
}

const tail = (losses: number[], n = 10) => losses.slice(-n).reduce((a, b) => a + b, 0) / n;

describe('GPTs with relu2 and RoPE train on the repeat-the-pattern task (V = 8, T = 16, B = 16)', () => {
  // RoPE carries relative positions only, so the first 3 (blank) targets, which depend on the
  // absolute position, are learned more slowly than with learned positions. Measured after
  // 200 steps (mean of the last 10): 0.11 for both; learned positions reach ~1e-4.
  const small = { vocabSize: 8, contextLength: 16, layers: 2, heads: 4, dim: 32 };
  for (const [name, extra] of [
    ['LayerNorm, relu2 MLP, RoPE', { mlp: 'relu2', pos: 'rope' }],
    ['RMSNorm, SwiGLU MLP, RoPE', { norm: 'rms', mlp: 'swiglu', pos: 'rope' }],
  ] as const) {
    it(`${name}: the loss falls from ln 8 = 2.08 to < 0.3 in 200 steps (wasm)`, async () => {
      const losses = await trainLosses(await createWasmBackend(), { ...small, ...extra }, 200, 16);
      console.log(`${name}: loss ${losses[0]!.toFixed(3)} -> ${tail(losses).toFixed(4)}`);
      expect(losses[0]).toBeGreaterThan(1.9);
      expect(tail(losses)).toBeLessThan(0.3);
    });
  }

  it('gives the same loss curve on js (f32) and wasm for 10 steps (within 1e-5), relu2 + RoPE', async () => {
    const config = { ...small, mlp: 'relu2', pos: 'rope' } as const;
    const js = await trainLosses(new JsBackend({ dtype: 'f32' }), config, 10, 16);
    const wa = await trainLosses(await createWasmBackend(), config, 10, 16);
    const diff = Math.max(...js.map((l, i) => Math.abs(l - wa[i]!)));
    expect(diff).toBeLessThan(1e-5);
  });

  it('gives bit-identical losses on 1 and 2 threads, relu2 + RoPE (kernels large enough to split)', async () => {
    // dim 64, B 8, T 32: rope 49k and relu2 65k operations per call, above the pool's split threshold
    const config: GPTConfig = { vocabSize: 8, contextLength: 32, layers: 1, heads: 2, dim: 64, mlp: 'relu2', pos: 'rope' };
    const threaded = await createWasmBackend({ threads: 2 });
    expect(threaded.threads).toBe(2);
    const one = await trainLosses(await createWasmBackend({ threads: 1 }), config, 3, 8);
    const two = await trainLosses(threaded, config, 3, 8);
    expect(two).toEqual(one);
  });
});
