// Knowledge distillation: the fused loss α·CE + (1−α)·T²·KL(teacher_T ‖ student_T) against a
// reference computed here, its gradient against finite differences in f64 (the teacher logits
// are constants), α = 1 reducing to cross-entropy, and the bad-input errors (α outside [0, 1],
// T ≤ 0, a teacher with another vocabulary).
import { describe, expect, it } from 'vitest';
import { JsBackend } from '../src/backend/js/index.js';
import { WasmBackend } from '../src/backend/wasm/index.js';
import { crossEntropy } from '../src/autograd/index.js';
import { GPT } from '../src/nn/gpt.js';
import { checkTeacher, distillationLoss, teacherLogits } from '../src/qat/index.js';
import { Heap } from '../src/tensor/heap.js';
import { Rng } from '../src/util/rng.js';

const f = Math.fround;

function randomF32(rng: Rng, n: number, std = 1): Float64Array {
  const v = new Float64Array(n);
  rng.fillNormal(v, 0, std);
  return v.map(f);
}

/** α·CE + (1−α)T²·KL(softmax(t/T) ‖ softmax(z/T)), mean over rows, in f64. */
function reference(z: ArrayLike<number>, t: ArrayLike<number>, y: ArrayLike<number>, N: number, V: number, alpha: number, T: number): number {
  const logSoftmax = (v: number[], tau: number): number[] => {
    const s = v.map((x) => x / tau);
    const m = Math.max(...s);
    const lse = m + Math.log(s.reduce((a, x) => a + Math.exp(x - m), 0));
    return s.map((x) => x - lse);
  };
  let total = 0;
  for (let r = 0; r < N; r++) {
    const zr = Array.from({ length: V }, (_, i) => z[r * V + i]!), tr = Array.from({ length: V }, (_, i) => t[r * V + i]!);
    const ce = -logSoftmax(zr, 1)[y[r]!]!;
    const ls = logSoftmax(zr, T), lt = logSoftmax(tr, T);
    const kl = lt.reduce((a, l, i) => a + Math.exp(l) * (l - ls[i]!), 0);
    total += alpha * ce + (1 - alpha) * T * T * kl;
  }
  return total / N;
}

const [B, Tn, V] = [2, 3, 7];
const N = B * Tn;
const rng = new Rng(1);
const Z = randomF32(rng, N * V, 2), TZ = randomF32(rng, N * V, 2);
const Y = Int32Array.from({ length: N }, (_, i) => (i * 3) % V);

describe('distillationLoss', () => {
  for (const [alpha, T] of [[0.5, 2], [0, 1], [0.9, 4]] as const) {
    it(`equals α·CE + (1−α)·T²·KL and its gradient matches finite differences (f64, α = ${alpha}, T = ${T})`, () => {
      const heap = new Heap(new JsBackend({ dtype: 'f64' }));
      const z = heap.fromArray(Z, [B, Tn, V], { requiresGrad: true });
      const teacher = heap.fromArray(TZ, [B, Tn, V]);
      const loss = distillationLoss(z, teacher, heap.indices(Y, [B, Tn]), { alpha, temperature: T });
      expect(loss.itemSync()).toBeCloseTo(reference(Z, TZ, Y, N, V, alpha, T), 12);
      loss.backward();
      const g = z.grad!.dataSync();
      const h = 1e-6;
      for (let i = 0; i < N * V; i++) {
        const p = Float64Array.from(Z), q = Float64Array.from(Z);
        p[i]! += h; q[i]! -= h;
        const fd = (reference(p, TZ, Y, N, V, alpha, T) - reference(q, TZ, Y, N, V, alpha, T)) / (2 * h);
        expect(Math.abs(g[i]! - fd)).toBeLessThan(1e-8);
      }
      expect(teacher.grad).toBeNull(); // the teacher's logits are constants
    });
  }

  it('reduces to the cross-entropy at α = 1', () => {
    const heap = new Heap(WasmBackend.createSync());
    const z = heap.fromArray(Z, [B, Tn, V]), t = heap.fromArray(TZ, [B, Tn, V]), y = heap.indices(Y, [B, Tn]);
    expect(distillationLoss(z, t, y, { alpha: 1, temperature: 3 }).itemSync()).toBeCloseTo(crossEntropy(z, y).itemSync(), 5);
  });

  it('agrees on wasm and js within 1e-5 relative, loss and gradient', () => {
    const out = [WasmBackend.createSync(), new JsBackend({ dtype: 'f32' })].map((be) => {
      const heap = new Heap(be);
      const z = heap.fromArray(Z, [B, Tn, V], { requiresGrad: true });
      const loss = distillationLoss(z, heap.fromArray(TZ, [B, Tn, V]), heap.indices(Y, [B, Tn]), { alpha: 0.3, temperature: 2 });
      const l = loss.itemSync();
      loss.backward();
      return { l, g: Array.from(z.grad!.dataSync()) };
    });
    expect(Math.abs(out[0]!.l - out[1]!.l)).toBeLessThan(1e-5 * Math.abs(out[1]!.l));
    const scale = Math.max(...out[1]!.g.map(Math.abs));
    out[0]!.g.forEach((v, i) => expect(Math.abs(v - out[1]!.g[i]!)).toBeLessThan(1e-5 * scale));
  });

  it('rejects α outside [0, 1], T ≤ 0 and a teacher with another vocabulary, naming the value', () => {
    const heap = new Heap(new JsBackend());
    const z = heap.fromArray(Z, [B, Tn, V]), y = heap.indices(Y, [B, Tn]);
    const t = heap.fromArray(TZ, [B, Tn, V]);
    expect(() => distillationLoss(z, t, y, { alpha: 1.5, temperature: 2 })).toThrow(/alpha must be a number in \[0, 1\] .* got 1.5/);
    expect(() => distillationLoss(z, t, y, { alpha: -0.1, temperature: 2 })).toThrow(/got -0.1/);
    expect(() => distillationLoss(z, t, y, { alpha: 0.5, temperature: 0 })).toThrow(/temperature must be a finite number > 0, got 0/);
    expect(() => distillationLoss(z, t, y, { alpha: 0.5, temperature: -2 })).toThrow(/got -2/);
    const other = heap.zeros([B, Tn, V + 3]);
    expect(() => distillationLoss(z, other, y, { alpha: 0.5, temperature: 2 })).toThrow(/teacher logits \(2,3,10\) have a vocabulary of 10 but the student's \(2,3,7\) has 7; teacher and student need the same tokenizer/);
    const shape = { contextLength: 8, layers: 1, heads: 1, dim: 16 };
    expect(() => checkTeacher(new GPT({ ...shape, vocabSize: 65 }), new GPT({ ...shape, vocabSize: 256, bitlinear: true }))).toThrow(/teacher's vocabulary has 65 tokens but the student's has 256/);
  });

  it('trains a ternary student from an FP teacher on one heap (teacher logits without gradient)', () => {
    const heap = new Heap(new JsBackend());
    const shape = { vocabSize: 11, contextLength: 8, layers: 1, heads: 2, dim: 16 };
    const teacher = new GPT(shape).materialize(heap, new Rng(1));
    const student = new GPT({ ...shape, bitlinear: true }).materialize(heap, new Rng(2));
    checkTeacher(teacher, student);
    const tokens = heap.indices(Int32Array.from({ length: 16 }, (_, i) => i % 11), [2, 8]);
    const t = teacherLogits(teacher, tokens);
    expect(t.requiresGrad).toBe(false);
    const loss = distillationLoss(student.forward(tokens).logits, t, tokens, { alpha: 0.5, temperature: 2 });
    loss.backward();
    expect(student.params.getParam('lm_head.weight').grad!.dataSync().some((v) => v !== 0)).toBe(true);
    expect(teacher.params.getParam('lm_head.weight').grad!.dataSync().every((v) => v === 0)).toBe(true);
  });
});
