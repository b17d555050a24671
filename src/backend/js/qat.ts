/**
 * Quantisation-aware training kernels of the `js` backend, the twins of `assembly/qat.ts`
 * (numerics: src/qat/README.md). Over a flat memory `mem` addressed by element offsets. With f32
 * memory every intermediate is rounded to f32 as the wasm kernel rounds it (`fround`), so the
 * elementwise kernels give the same bits; with f64 memory the arithmetic is plain f64 (the oracle).
 * Kernels with `exp`, `log` or `tanh` (soft STE, distillation) agree with wasm to a few ulps only.
 */
import type { Floats, Ptr } from '../backend.js';
import { activationRowBytes } from '../../quant/layout.js';
import { roundHalfEven, scaleIndex } from './quant.js';

type Round = (v: number) => number;
const identity: Round = (v) => v;
const roundOf = (mem: Floats): Round => (mem instanceof Float32Array ? Math.fround : identity);

/** The noise mask's hash of element `i` (murmur3 finaliser of `seed ^ i·0x9e3779b1`), a u32. */
export function noiseHash(seed: number, i: number): number {
  let h = (seed ^ Math.imul(i, 0x9e3779b1)) >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b) >>> 0;
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35) >>> 0;
  h ^= h >>> 16;
  return h >>> 0;
}

/** `floor(f32(p)·2^24)` clamped to [0, 2^24]: element i is on when `noiseHash(seed, i) >>> 8 < threshold`. */
export function noiseThreshold(p: number): number {
  const pf = Math.fround(p);
  if (pf >= 1) return 1 << 24;
  if (!(pf > 0)) return 0;
  return Math.floor(pf * 16777216);
}

function elementLambda(lambda: number, thr: number, seed: number, i: number): number {
  if (thr >= 1 << 24) return lambda;
  return noiseHash(seed, i) >>> 8 < thr ? lambda : 0;
}

function ternaryCode(u: number): number {
  return Math.max(-1, Math.min(1, roundHalfEven(u)));
}

// out, a, b (n): out = a + lambda_i (b - a); lambda_i = 0 copies a, 1 copies b
export function qatLerp(mem: Floats, out: Ptr, a: Ptr, b: Ptr, n: number, lambda: number, p: number, seed: number): void {
  const r = roundOf(mem);
  const lf = r(lambda);
  const thr = noiseThreshold(p);
  for (let i = 0; i < n; i++) {
    const l = elementLambda(lf, thr, seed, i);
    const va = mem[a + i];
    mem[out + i] = l === 0 ? va : l === 1 ? mem[b + i] : r(va + r(l * r(mem[b + i] - va)));
  }
}

/** Slope of tanh soft rounding at u (temperature 1/alpha), see assembly/qat.ts. */
export function softRoundSlope(u: number, alpha: number, r: Round = identity): number {
  const inv2th = r(1 / r(2 * r(Math.tanh(r(alpha * 0.5)))));
  const t = r(Math.tanh(r(alpha * r(r(u - Math.floor(u)) - 0.5))));
  return r(r(alpha * r(1 - r(t * t))) * inv2th);
}

// dw (N,K) += dwq * ((1 - lambda_i) + lambda_i g(u)), u = w*s; mode 0 identity, 1 clipped, 2 soft
export function qatSteWeights(mem: Floats, dw: Ptr, dwq: Ptr, w: Ptr, scales: Ptr, N: number, K: number, group: number,
  mode: number, alpha: number, lambda: number, p: number, seed: number): void {
  const r = roundOf(mem);
  const af = r(alpha), lf = r(lambda);
  const thr = noiseThreshold(p);
  for (let n = 0; n < N; n++) {
    for (let k = 0; k < K; k++) {
      const i = n * K + k;
      const u = Math.fround(mem[w + i] * mem[scales + scaleIndex(n, k, K, group)]);
      let g = 1;
      if (mode >= 1) g = Math.abs(u) <= 1 ? (mode === 2 ? softRoundSlope(u, af, r) : 1) : 0;
      const l = elementLambda(lf, thr, seed, i);
      const factor = r(r(1 - l) + r(l * g));
      mem[dw + i] = r(mem[dw + i] + r(mem[dwq + i] * factor));
    }
  }
}

// sw, step, absmean (count): delta > 0 -> sw = 1/max(delta, 1e-5); else delta = 1/absmean, sw = absmean
export function qatLsqScales(mem: Floats, sw: Ptr, step: Ptr, absmean: Ptr, count: number): void {
  // scales are f32 quantities in every backend (as absmeanScales' are): the codes depend on them
  const fr = Math.fround;
  for (let g = 0; g < count; g++) {
    const d = mem[step + g];
    if (d > 0) {
      mem[sw + g] = fr(1 / Math.max(fr(d), fr(1e-5)));
    } else {
      mem[step + g] = fr(1 / mem[absmean + g]);
      mem[sw + g] = mem[absmean + g];
    }
  }
}

// dstep[g] += gradScale * sum_{i in g} lambda_i dwq_i dWhat_i/ddelta (f64, element order)
export function qatLsqStepGrad(mem: Floats, dstep: Ptr, dwq: Ptr, w: Ptr, sw: Ptr, count: number, group: number,
  lambda: number, p: number, seed: number, gradScale: number): void {
  const r = roundOf(mem);
  const lf = r(lambda);
  const thr = noiseThreshold(p);
  for (let g = 0; g < count / group; g++) {
    const s = mem[sw + g];
    let acc = 0;
    for (let i = g * group; i < (g + 1) * group; i++) {
      const u = Math.fround(mem[w + i] * s);
      const d = u >= 1 ? 1 : u <= -1 ? -1 : r(roundHalfEven(u) - u);
      acc += r(r(elementLambda(lf, thr, seed, i) * mem[dwq + i]) * d);
    }
    mem[dstep + g] = r(mem[dstep + g] + r(r(gradScale) * acc));
  }
}

// xq (M,K8) bytes, sx (M), x (M,K), clip (1): static scale 127/max(c, 1e-5), or per row when c <= 0
export function qatQuantizeActivationsStatic(mem: Floats, xq: Ptr, sx: Ptr, x: Ptr, clip: Ptr, M: number, K: number): void {
  const K8 = activationRowBytes(K);
  const c = mem[clip];
  for (let m = 0; m < M; m++) {
    let amax = c;
    if (!(c > 0)) {
      amax = 0;
      for (let k = 0; k < K; k++) {
        const a = Math.abs(mem[x + m * K + k]);
        amax = amax < a ? a : amax;
      }
    }
    const s = Math.fround(127 / Math.max(Math.fround(amax), Math.fround(1e-5)));
    mem[sx + m] = s;
    for (let k = 0; k < K; k++) mem[xq + m * K8 + k] = roundHalfEven(Math.max(-128, Math.min(127, Math.fround(mem[x + m * K + k] * s))));
    for (let k = K; k < K8; k++) mem[xq + m * K8 + k] = 0;
  }
}

// dst (M,dstCols)[:, dstCol0..+n) (+)= src (M,srcCols)[:, srcCol0..+n)
export function qatCopyColumns(mem: Floats, dst: Ptr, dstCols: number, dstCol0: number, src: Ptr, srcCols: number, srcCol0: number,
  M: number, n: number, accumulate: boolean): void {
  for (let m = 0; m < M; m++) {
    const d = dst + m * dstCols + dstCol0, s = src + m * srcCols + srcCol0;
    for (let j = 0; j < n; j++) mem[d + j] = accumulate ? mem[d + j] + mem[s + j] : mem[s + j];
  }
}

/** softmax(z/T) of row z (V) into p; returns lse with log p_i = z_i/T - lse. */
function softmaxT(mem: Floats, p: Ptr, z: Ptr, V: number, invT: number): number {
  let mx = -Infinity;
  for (let i = 0; i < V; i++) mx = Math.max(mx, mem[z + i] * invT);
  let sum = 0;
  for (let i = 0; i < V; i++) sum += Math.exp(mem[z + i] * invT - mx);
  for (let i = 0; i < V; i++) mem[p + i] = Math.exp(mem[z + i] * invT - mx) / sum;
  return mx + Math.log(sum);
}

// losses (N); probs, probsT, teacherT, logits, teacher (N,V); targets (N)
export function kdForward(mem: Floats, losses: Ptr, probs: Ptr, probsT: Ptr, teacherT: Ptr, logits: Ptr, teacher: Ptr, targets: Ptr,
  N: number, V: number, temperature: number, alpha: number): void {
  const r = roundOf(mem);
  const T = r(temperature), a = r(alpha);
  const invT = 1 / T;
  for (let row = 0; row < N; row++) {
    const off = row * V;
    const lse = softmaxT(mem, probs + off, logits + off, V, 1);
    const lseS = softmaxT(mem, probsT + off, logits + off, V, invT);
    const lseT = softmaxT(mem, teacherT + off, teacher + off, V, invT);
    let kl = 0;
    for (let i = 0; i < V; i++) {
      const pt = mem[teacherT + off + i];
      if (pt > 0) kl += pt * ((mem[teacher + off + i] * invT - lseT) - (mem[logits + off + i] * invT - lseS));
    }
    const ce = lse - mem[logits + off + mem[targets + row]];
    mem[losses + row] = a * ce + (1 - a) * T * T * kl;
  }
}

// dlogits += dl [alpha (p - onehot) + (1 - alpha) T (psT - ptT)]
export function kdBackward(mem: Floats, dlogits: Ptr, probs: Ptr, probsT: Ptr, teacherT: Ptr, targets: Ptr, dlosses: Ptr,
  N: number, V: number, temperature: number, alpha: number): void {
  const r = roundOf(mem);
  const a = r(alpha), b = r(r(1 - a) * r(temperature));
  for (let row = 0; row < N; row++) {
    const dl = mem[dlosses + row];
    const target = mem[targets + row];
    for (let i = 0; i < V; i++) {
      const o = row * V + i;
      const g = r(r(a * r(mem[probs + o] - (i === target ? 1 : 0))) + r(b * r(mem[probsT + o] - mem[teacherT + o])));
      mem[dlogits + o] = r(mem[dlogits + o] + r(dl * g));
    }
  }
}

// rowsum (N) = sum_k (u - q(u))^2, u = w*s
export function qatGridPenalty(mem: Floats, rowsum: Ptr, w: Ptr, scales: Ptr, N: number, K: number, group: number): void {
  const r = roundOf(mem);
  for (let n = 0; n < N; n++) {
    let acc = 0;
    for (let k = 0; k < K; k++) {
      const u = Math.fround(mem[w + n * K + k] * mem[scales + scaleIndex(n, k, K, group)]);
      const e = r(u - ternaryCode(u));
      acc += e * e;
    }
    mem[rowsum + n] = acc;
  }
}

// dw += (dout[0] * coef) (u - q(u)) s
export function qatGridPenaltyBackward(mem: Floats, dw: Ptr, w: Ptr, scales: Ptr, dout: Ptr, coef: number, N: number, K: number, group: number): void {
  const r = roundOf(mem);
  const c = r(mem[dout] * r(coef));
  for (let n = 0; n < N; n++) {
    for (let k = 0; k < K; k++) {
      const i = n * K + k;
      const s = mem[scales + scaleIndex(n, k, K, group)];
      const u = Math.fround(mem[w + i] * s);
      mem[dw + i] = r(mem[dw + i] + r(r(c * r(u - ternaryCode(u))) * s));
    }
  }
}

// w (N,K) = clamp(w, -bound/s, bound/s)
export function qatClampWeights(mem: Floats, w: Ptr, scales: Ptr, N: number, K: number, group: number, bound: number): void {
  // the bound is an f32 quantity in every backend: b = f32(f32(bound) / s)
  const bf = Math.fround(bound);
  for (let n = 0; n < N; n++) {
    for (let k = 0; k < K; k++) {
      const i = n * K + k;
      const b = Math.fround(bf / mem[scales + scaleIndex(n, k, K, group)]);
      mem[w + i] = Math.max(-b, Math.min(b, mem[w + i]));
    }
  }
}
