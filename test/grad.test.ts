// Every op's gradient, w.r.t. every input, against central finite differences in f64 on the
// js backend; then a whole tiny GPT's parameter gradients on sampled coordinates.
//
// Tolerance: max |analytic - numeric| <= 1e-6 * max(1, max |numeric|) per tensor, with h = 1e-5.
// (Central differences in f64 have truncation error O(h^2) ~ 1e-10 and rounding error
// ~ 1e-16 / h ~ 1e-11 here, so 1e-6 catches any wrong term while never flaking.)
import { describe, expect, it } from 'vitest';
import { JsBackend } from '../src/backend/js/index.js';
import {
  add, attention, crossEntropy, linearCrossEntropy, embedding, gelu, layerNorm, linear, matmul, mean, mul, noGrad, rmsNorm, scale, silu, sum,
  relu2, rope, gatedActivation,
} from '../src/autograd/index.js';
import { Heap } from '../src/tensor/heap.js';
import type { Tensor } from '../src/tensor/tensor.js';
import { GPT, type GPTConfig } from '../src/nn/gpt.js';
import { Rng } from '../src/util/rng.js';

const H = 1e-5;
const TOL = 1e-6;

/** A float input given as values, or an index input (token ids) that gets no gradient. */
type Input = { shape: number[]; data: Float64Array } | { shape: number[]; index: Int32Array };

function randn(rng: Rng, shape: number[], std = 1): { shape: number[]; data: Float64Array } {
  const data = new Float64Array(shape.reduce((a, b) => a * b, 1));
  rng.fillNormal(data, 0, std);
  return { shape, data };
}

function f64Heap(): Heap {
  return new Heap(new JsBackend({ dtype: 'f64' }));
}

/** Weighted sum `Σ out * R` so each output element gets a different upstream gradient. */
function project(out: Tensor, rng: Rng): Tensor {
  if (out.size === 1) return scale(out, 1.7);
  const R = new Float64Array(out.size);
  rng.fillNormal(R);
  return sum(mul(out, out.heap.fromArray(R, out.shape)));
}

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
}

/** Max error relative to the gradient's scale, as in the tolerance statement above. */
function gradError(analytic: ArrayLike<number>, numeric: ArrayLike<number>): number {
  let err = 0;
  for (let i = 0; i < numeric.length; i++) err = Math.max(err, Math.abs(analytic[i]! - numeric[i]!));
  return err / Math.max(1, maxAbs(numeric));
}

/**
 * Check d(Σ op(inputs) * R)/d(input) for every float input and every coordinate.
 * Returns the worst relative error over all inputs.
 */
function checkOp(op: (...t: Tensor[]) => Tensor, inputs: Input[], seed = 7): number {
  const heap = f64Heap();
  const build = (grad: boolean): Tensor[] =>
    inputs.map((inp) => ('index' in inp ? heap.indices(inp.index, inp.shape) : heap.fromArray(inp.data, inp.shape, { requiresGrad: grad })));
  const lossOf = (ts: Tensor[]): Tensor => project(op(...ts), new Rng(seed));

  const ts = build(true);
  lossOf(ts).backward();
  const analytic = ts.map((t) => (t.dtype === 'index' ? null : t.grad!.dataSync()));
  heap.resetArena();

  const evalLoss = (): number => {
    const v = noGrad(() => lossOf(build(false)).itemSync());
    heap.resetArena();
    return v;
  };
  let worst = 0;
  inputs.forEach((inp, k) => {
    if ('index' in inp) return;
    const numeric = new Float64Array(inp.data.length);
    for (let j = 0; j < inp.data.length; j++) {
      const x0 = inp.data[j]!;
      inp.data[j] = x0 + H;
      const lp = evalLoss();
      inp.data[j] = x0 - H;
      const lm = evalLoss();
      inp.data[j] = x0;
      numeric[j] = (lp - lm) / (2 * H);
    }
    expect(maxAbs(numeric), `input ${k} has a non-trivial gradient`).toBeGreaterThan(1e-4);
    worst = Math.max(worst, gradError(analytic[k]!, numeric));
  });
  return worst;
}

describe('op gradients match central finite differences (f64, js backend)', () => {
  const rng = new Rng(2024);

  it('linear with bias, 3-D input (x, W, b)', () => {
    expect(checkOp((x, w, b) => linear(x, w, b), [randn(rng, [2, 3, 5]), randn(rng, [4, 5]), randn(rng, [4])])).toBeLessThan(TOL);
  });
  it('linear without bias, odd sizes (x, W)', () => {
    expect(checkOp((x, w) => linear(x, w), [randn(rng, [7, 9]), randn(rng, [3, 9])])).toBeLessThan(TOL);
  });
  it('matmul (a, b)', () => {
    expect(checkOp((a, b) => matmul(a, b), [randn(rng, [3, 5]), randn(rng, [5, 2])])).toBeLessThan(TOL);
  });
  it('layerNorm with bias (x, weight, bias)', () => {
    expect(checkOp((x, w, b) => layerNorm(x, w, b), [randn(rng, [2, 3, 7]), randn(rng, [7]), randn(rng, [7])])).toBeLessThan(TOL);
  });
  it('layerNorm without bias (x, weight)', () => {
    expect(checkOp((x, w) => layerNorm(x, w), [randn(rng, [5, 6]), randn(rng, [6])])).toBeLessThan(TOL);
  });
  it('rmsNorm with weight (x, weight)', () => {
    expect(checkOp((x, w) => rmsNorm(x, w), [randn(rng, [3, 9]), randn(rng, [9])])).toBeLessThan(TOL);
  });
  it('rmsNorm without affine weight (x)', () => {
    expect(checkOp((x) => rmsNorm(x, null), [randn(rng, [4, 5])])).toBeLessThan(TOL);
  });
  it('gelu', () => {
    expect(checkOp((x) => gelu(x), [randn(rng, [3, 11], 2)])).toBeLessThan(TOL);
  });
  it('silu', () => {
    expect(checkOp((x) => silu(x), [randn(rng, [3, 11], 2)])).toBeLessThan(TOL);
  });
  it('add (a, b)', () => {
    expect(checkOp((a, b) => add(a, b), [randn(rng, [2, 7]), randn(rng, [2, 7])])).toBeLessThan(TOL);
  });
  it('mul (a, b)', () => {
    expect(checkOp((a, b) => mul(a, b), [randn(rng, [13]), randn(rng, [13])])).toBeLessThan(TOL);
  });
  it('scale', () => {
    expect(checkOp((a) => scale(a, -0.37), [randn(rng, [3, 3])])).toBeLessThan(TOL);
  });
  it('sum and mean', () => {
    expect(checkOp((a) => sum(a), [randn(rng, [17])])).toBeLessThan(TOL);
    expect(checkOp((a) => mean(a), [randn(rng, [2, 9])])).toBeLessThan(TOL);
  });
  it('attention, causal, 2 heads (qkv)', () => {
    // B=2, T=5, C=6, NH=2 (head size 3)
    expect(checkOp((qkv) => attention(qkv, 2), [randn(rng, [2, 5, 18])])).toBeLessThan(TOL);
  });
  it('attention, 1 head, T=1 and T=7 (qkv)', () => {
    expect(checkOp((qkv) => attention(qkv, 1), [randn(rng, [1, 1, 12])])).toBeLessThan(TOL);
    expect(checkOp((qkv) => attention(qkv, 3), [randn(rng, [1, 7, 9])])).toBeLessThan(TOL);
  });
  it('embedding with positions, repeated tokens (wte, wpe)', () => {
    const tokens = { shape: [2, 3], index: Int32Array.from([1, 4, 1, 0, 1, 4]) };
    expect(checkOp((t, wte, wpe) => embedding(t, wte, wpe), [tokens, randn(rng, [5, 4]), randn(rng, [4, 4])])).toBeLessThan(TOL);
  });
  it('embedding without positions (wte)', () => {
    const tokens = { shape: [1, 4], index: Int32Array.from([2, 2, 0, 3]) };
    expect(checkOp((t, wte) => embedding(t, wte), [tokens, randn(rng, [4, 3])])).toBeLessThan(TOL);
  });
  it('crossEntropy, mean over rows, upstream gradient 1.7 (logits)', () => {
    const targets = { shape: [2, 3], index: Int32Array.from([0, 6, 3, 3, 1, 5]) };
    expect(checkOp((l, t) => crossEntropy(l, t), [randn(rng, [2, 3, 7], 2), targets])).toBeLessThan(TOL);
  });
  it('linearCrossEntropy, chunks of 2 rows over 7 and one chunk, upstream gradient 1.7 (x, W)', () => {
    const targets = { shape: [7], index: Int32Array.from([0, 10, 3, 3, 1, 5, 10]) };
    for (const chunk of [2, 0]) {
      expect(checkOp((x, w, t) => linearCrossEntropy(x, w, t, chunk), [randn(rng, [7, 5]), randn(rng, [11, 5]), targets])).toBeLessThan(TOL);
    }
  });
});

/** FD on `samples` coordinates of every parameter of a tiny GPT, vs the gradient block. */
function checkGPT(config: GPTConfig, samples: number): number {
  const heap = f64Heap();
  const model = new GPT(config).materialize(heap, new Rng(5));
  const be = heap.backend;
  const B = 2;
  const T = config.contextLength;
  const rng = new Rng(11);
  const tok = Int32Array.from({ length: B * T }, () => rng.int(config.vocabSize));
  const tgt = Int32Array.from({ length: B * T }, () => rng.int(config.vocabSize));
  const lossValue = (grad: boolean): number => {
    const run = () => {
      const { loss } = model.forward(heap.indices(tok, [B, T]), heap.indices(tgt, [B, T]));
      if (grad) loss!.backward();
      return loss!.itemSync();
    };
    const v = grad ? run() : noGrad(run);
    heap.resetArena();
    return v;
  };
  model.params.zeroGrad();
  lossValue(true);
  let worst = 0;
  for (const [name, p] of model.params) {
    const grad = be.readSync(p.gradPtr, p.size);
    const analytic: number[] = [];
    const numeric: number[] = [];
    for (let s = 0; s < samples; s++) {
      const j = rng.int(p.size);
      const x0 = be.readSync(p.offset + j, 1)[0]!;
      be.write(p.offset + j, [x0 + H]);
      const lp = lossValue(false);
      be.write(p.offset + j, [x0 - H]);
      const lm = lossValue(false);
      be.write(p.offset + j, [x0]);
      numeric.push((lp - lm) / (2 * H));
      analytic.push(grad[j]!);
    }
    const e = gradError(analytic, numeric);
    expect(e, `${name}: analytic ${analytic} vs numeric ${numeric}`).toBeLessThan(TOL);
    worst = Math.max(worst, e);
  }
  return worst;
}

describe('whole-model gradients match finite differences (f64, js backend)', () => {
  it('a 2-layer LayerNorm/GELU GPT with biases and an untied head', () => {
    const cfg: GPTConfig = { vocabSize: 7, contextLength: 5, layers: 2, heads: 2, dim: 8, norm: 'layer', mlp: 'gelu', bias: true, initStd: 0.3 };
    expect(checkGPT(cfg, 3)).toBeLessThan(TOL);
  });
  it('a 2-layer RMSNorm/SwiGLU GPT with a tied head and no biases', () => {
    const cfg: GPTConfig = { vocabSize: 9, contextLength: 4, layers: 2, heads: 2, dim: 6, norm: 'rms', mlp: 'swiglu', hidden: 10, tiedHead: true, initStd: 0.3 };
    expect(checkGPT(cfg, 3)).toBeLessThan(TOL);
  });
});

// ---- squared ReLU and rotary position embedding (mlp: 'relu2', pos: 'rope') ---------------------

describe('relu2 and rope gradients match central finite differences (f64, js backend)', () => {
  const rng = new Rng(77);

  it('relu2 (x away from the kink at 0, where relu2 is only once differentiable)', () => {
    const x = randn(rng, [3, 11], 2);
    for (let i = 0; i < x.data.length; i++) if (Math.abs(x.data[i]!) < 1e-3) x.data[i] = 0.5;
    expect(checkOp((t) => relu2(t), [x])).toBeLessThan(TOL);
  });

  it('gatedActivation, silu and relu2 (gate away from relu2\'s kink), into both gate and up', () => {
    for (const act of ['silu', 'relu2'] as const) {
      const g = randn(rng, [2, 3, 7], 2);
      for (let i = 0; i < g.data.length; i++) if (Math.abs(g.data[i]!) < 1e-3) g.data[i] = 0.5;
      expect(checkOp((gate, up) => gatedActivation(gate, up, act), [g, randn(rng, [2, 3, 7])])).toBeLessThan(TOL);
    }
  });

  it('gatedActivation is mul(act(gate), up) bit for bit (f32, wasm) and keeps neither act(gate) nor its scratch', async () => {
    const { createWasmBackend } = await import('../src/backend/wasm/index.js');
    const heap = new Heap(await createWasmBackend());
    const r = new Rng(5);
    const gs = new Float32Array(5 * 33), us = new Float32Array(5 * 33), ws = new Float32Array(5 * 33);
    r.fillNormal(gs); r.fillNormal(us); r.fillNormal(ws);
    for (const act of ['silu', 'relu2'] as const) {
      const run = (fused: boolean) => {
        const gate = heap.fromArray(gs, [5, 33], { requiresGrad: true });
        const up = heap.fromArray(us, [5, 33], { requiresGrad: true });
        const w = heap.fromArray(ws, [5, 33]);
        const held = heap.stats().arenaElements;
        const h = fused ? gatedActivation(gate, up, act) : mul(act === 'silu' ? silu(gate) : relu2(gate), up);
        const kept = heap.stats().arenaElements - held;
        sum(mul(h, w)).backward();
        const out = { h: Array.from(h.dataSync()), dg: Array.from(gate.grad!.dataSync()), du: Array.from(up.grad!.dataSync()), kept };
        heap.resetArena();
        return out;
      };
      const [plain, fused] = [run(false), run(true)];
      expect(fused.h).toEqual(plain.h);
      expect(fused.dg).toEqual(plain.dg);
      expect(fused.du).toEqual(plain.du);
      expect(plain.kept - fused.kept).toBeGreaterThanOrEqual(5 * 33);
    }
    const heap64 = f64Heap();
    expect(() => gatedActivation(heap64.zeros([2, 3]), heap64.zeros([3, 2]), 'silu')).toThrow(/gatedActivation/);
  });

  /** rope on qkv (B, T, 3C) with a (maxT, C/heads) table built on the op's heap. */
  const ropeOp = (heads: number, maxT: number, theta: number) => (qkv: Tensor): Tensor => {
    const hs = qkv.shape[2]! / 3 / heads;
    const table = qkv.heap.empty([maxT, hs]);
    qkv.heap.backend.ropeTable(table.offset, maxT, hs, theta);
    return rope(qkv, heads, table);
  };

  it('rope, 2 heads of size 4, T = 5 (qkv)', () => {
    expect(checkOp(ropeOp(2, 5, 10000), [randn(rng, [2, 5, 24])])).toBeLessThan(TOL);
  });
  it('rope, 1 head of size 2, T = 3 of a 6-row table, theta 100 (qkv)', () => {
    expect(checkOp(ropeOp(1, 6, 100), [randn(rng, [1, 3, 6])])).toBeLessThan(TOL);
  });
  it('rope then attention, 3 heads of size 6 (qkv)', () => {
    expect(checkOp((qkv) => attention(ropeOp(3, 4, 10000)(qkv), 3), [randn(rng, [2, 4, 54])])).toBeLessThan(TOL);
  });
});

describe('whole-model gradients with relu2 and RoPE match finite differences (f64, js backend)', () => {
  it('a 2-layer LayerNorm/relu2 GPT with RoPE, biases and an untied head', () => {
    const cfg: GPTConfig = { vocabSize: 7, contextLength: 5, layers: 2, heads: 2, dim: 8, norm: 'layer', mlp: 'relu2', pos: 'rope', bias: true, initStd: 0.3 };
    expect(checkGPT(cfg, 3)).toBeLessThan(TOL);
  });
  it('a 2-layer RMSNorm/SwiGLU GPT with RoPE (theta 500), a tied head and no biases', () => {
    const cfg: GPTConfig = { vocabSize: 9, contextLength: 4, layers: 2, heads: 2, dim: 8, norm: 'rms', mlp: 'swiglu', pos: 'rope', ropeTheta: 500, hidden: 10, tiedHead: true, initStd: 0.3 };
    expect(checkGPT(cfg, 3)).toBeLessThan(TOL);
  });
});
