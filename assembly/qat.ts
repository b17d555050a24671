// Quantisation-aware training kernels (src/qat/README.md); js twin: src/backend/js/qat.ts.
// Byte offsets, sizes, f32 hyperparameters, then the range [r0, r1) (elements, rows or groups).
// Every kernel is elementwise or per row / per group in a fixed order, so any split of the range
// gives the same bits.
//
// Shared notation: W (N,K) latent f32 weights, scales per `group` as in quant.ts (multipliers s,
// dequantised weight = Wq / s), u = f32(W*s) the scaled weight, q(u) = clamp(nearest(u), -1, 1).
//
// Quantisation noise: element i (flat index inside the tensor) is "on" when
// hash(seed, i) >> 8 < floor(p * 2^24) (all on for p >= 1); lambda_i = on ? lambda : 0.

import { tanhs, tanhv } from './vec';

// ---- helpers ---------------------------------------------------------------------------------

// murmur3's finaliser over seed ^ (i * golden ratio): a counter-based hash, no state.
// @ts-ignore: decorator
@inline function noiseHash(seed: u32, i: u32): u32 {
  let h = seed ^ (i * 0x9e3779b1);
  h ^= h >>> 16;
  h *= 0x85ebca6b;
  h ^= h >>> 13;
  h *= 0xc2b2ae35;
  h ^= h >>> 16;
  return h;
}

// floor(p * 2^24), clamped to [0, 2^24]: the mask threshold of fraction p.
// @ts-ignore: decorator
@inline function noiseThreshold(p: f32): u32 {
  if (p >= 1) return 1 << 24;
  if (!(p > 0)) return 0;
  return <u32>(p * 16777216.0);
}

// lambda_i of element i: lambda where the noise mask is on, 0 elsewhere.
// @ts-ignore: decorator
@inline function elementLambda(lambda: f32, thr: u32, seed: u32, i: i32): f32 {
  if (thr >= (1 << 24)) return lambda;
  return (noiseHash(seed, <u32>i) >>> 8) < thr ? lambda : 0;
}

// Scale index of the segment starting at (n, k) (quant.ts scaleIndex).
// @ts-ignore: decorator
@inline function scaleAt(n: i32, k: i32, K: i32, group: i32): i32 {
  return <i32>((<i64>n * <i64>K) / <i64>group) + (group >= K ? 0 : k / group);
}

// q(u) = clamp(nearest(u), -1, 1)
// @ts-ignore: decorator
@inline function ternaryCode(u: f32): f32 {
  return Mathf.max(-1, Mathf.min(1, nearest<f32>(u)));
}

// ---- progressive quantisation and noise: out = a + lambda_i (b - a) ------------------------------

// out, a, b (n) f32. lambda_i = 0 copies a, lambda_i = 1 copies b (exactly). Elements [r0, r1).
export function qat_lerp(out: usize, a: usize, b: usize, n: i32, lambda: f32, p: f32, seed: u32, r0: i32, r1: i32): void {
  const thr = noiseThreshold(p);
  let i = r0;
  if (thr >= (1 << 24) && lambda != 0 && lambda != 1) {
    const lv = f32x4.splat(lambda);
    for (; i + 4 <= r1; i += 4) {
      const o = <usize>i << 2;
      const va = v128.load(a + o);
      v128.store(out + o, f32x4.add(va, f32x4.mul(lv, f32x4.sub(v128.load(b + o), va))));
    }
  }
  for (; i < r1; i++) {
    const o = <usize>i << 2;
    const l = elementLambda(lambda, thr, seed, i);
    const va = load<f32>(a + o);
    store<f32>(out + o, l == 0 ? va : l == 1 ? load<f32>(b + o) : va + l * (load<f32>(b + o) - va));
  }
}

// ---- straight-through estimators for weights (progressive and noisy) -----------------------------

// Slope of tanh soft rounding (temperature 1/alpha) at u:
//   s(u) = floor(u) + 1/2 + tanh(alpha r) / (2 tanh(alpha/2)),  r = u - floor(u) - 1/2
//   s'(u) = alpha (1 - tanh^2(alpha r)) / (2 tanh(alpha/2))
// tanh(alpha r) by vec.ts's tanhv/tanhs (the same bits in a lane and a scalar; absolute error ~1e-7).
// @ts-ignore: decorator
@inline function softSlope(u: f32, alpha: f32, inv2th: f32): f32 {
  const t = tanhs(alpha * (u - Mathf.floor(u) - 0.5));
  return alpha * (1 - t * t) * inv2th;
}

// @ts-ignore: decorator
@inline function softSlope4(u: v128, alpha: v128, inv2th: v128): v128 {
  const r = f32x4.sub(f32x4.sub(u, f32x4.floor(u)), f32x4.splat(0.5));
  const t = tanhv(f32x4.mul(alpha, r));
  return f32x4.mul(f32x4.mul(alpha, f32x4.sub(f32x4.splat(1), f32x4.mul(t, t))), inv2th);
}

// dw (N,K) += dwq * ((1 - lambda_i) + lambda_i g(u)), u = f32(w*s);
// mode 0: g = 1 (identity); 1: g = [|u| <= 1] (clipped); 2: g = [|u| <= 1] s'(u) (soft, alpha = 1/T).
// Rows of W [r0, r1). Without noise, 4 elements at a time (the same operations as the scalar loop).
export function qat_ste_weights(dw: usize, dwq: usize, w: usize, scales: usize, N: i32, K: i32, group: i32,
  mode: i32, alpha: f32, lambda: f32, p: f32, seed: u32, r0: i32, r1: i32): void {
  if (K > 0 && group <= 0) unreachable();
  const thr = noiseThreshold(p);
  const inv2th: f32 = mode == 2 ? <f32>1 / (2 * Mathf.tanh(alpha * 0.5)) : 0;
  const seg = min(group, K);
  const one = f32x4.splat(1);
  const av = f32x4.splat(alpha);
  const iv = f32x4.splat(inv2th);
  const lv = f32x4.splat(lambda);
  const keepAll = thr >= (1 << 24);
  for (let n = r0; n < r1; n++) {
    for (let k0 = 0; k0 < K; k0 += seg) {
      const k1 = min(k0 + seg, K);
      const s = load<f32>(scales + (<usize>scaleAt(n, k0, K, group) << 2));
      const sv = f32x4.splat(s);
      let k = k0;
      if (keepAll) {
        for (; k + 4 <= k1; k += 4) {
          const o = (<usize>(n * K + k)) << 2;
          const u = f32x4.mul(v128.load(w + o), sv);
          let g = one;
          if (mode >= 1) {
            const inside = f32x4.le(f32x4.abs(u), one);
            g = v128.and(mode == 2 ? softSlope4(u, av, iv) : one, inside);
          }
          const factor = f32x4.add(f32x4.sub(one, lv), f32x4.mul(lv, g));
          v128.store(dw + o, f32x4.add(v128.load(dw + o), f32x4.mul(v128.load(dwq + o), factor)));
        }
      }
      for (; k < k1; k++) {
        const i = n * K + k;
        const o = <usize>i << 2;
        const u = load<f32>(w + o) * s;
        let g: f32 = 1;
        if (mode >= 1) g = Mathf.abs(u) <= 1 ? (mode == 2 ? softSlope(u, alpha, inv2th) : 1) : 0;
        const l = elementLambda(lambda, thr, seed, i);
        const factor: f32 = (1 - l) + l * g;
        store<f32>(dw + o, load<f32>(dw + o) + load<f32>(dwq + o) * factor);
      }
    }
  }
}

// ---- learnable step size (LSQ) ------------------------------------------------------------------

// sw, step, absmean (groups) f32. A step size delta > 0 gives the multiplier sw = 1/max(delta, 1e-5);
// delta <= 0 means "not initialised": delta = f32(1/absmean), sw = absmean (the absmean scale).
// Groups [r0, r1).
export function qat_lsq_scales(sw: usize, step: usize, absmean: usize, count: i32, r0: i32, r1: i32): void {
  for (let g = r0; g < r1; g++) {
    const o = <usize>g << 2;
    const d = load<f32>(step + o);
    if (d > 0) {
      store<f32>(sw + o, <f32>1 / Mathf.max(d, <f32>1e-5));
    } else {
      const a = load<f32>(absmean + o);
      store<f32>(step + o, <f32>1 / a);
      store<f32>(sw + o, a);
    }
  }
}

// LSQ gradient of the step size (Esser et al. 2019) with ternary bounds Q_N = Q_P = 1:
//   d What / d delta = -1 (u <= -1), +1 (u >= 1), nearest(u) - u otherwise;  u = f32(w * sw)
// dstep[g] += f32(gradScale * sum_{i in g} lambda_i dwq_i dWhat_i/ddelta), summed in f64 in element
// order. w, dwq (count) f32 flat; sw (count/group). Groups [r0, r1).
export function qat_lsq_step_grad(dstep: usize, dwq: usize, w: usize, sw: usize, count: i32, group: i32,
  lambda: f32, p: f32, seed: u32, gradScale: f32, r0: i32, r1: i32): void {
  const thr = noiseThreshold(p);
  for (let g = r0; g < r1; g++) {
    const s = load<f32>(sw + (<usize>g << 2));
    let acc: f64 = 0;
    const i0 = g * group;
    for (let i = i0; i < i0 + group; i++) {
      const o = <usize>i << 2;
      const u = load<f32>(w + o) * s;
      const d: f32 = u >= 1 ? 1 : u <= -1 ? -1 : nearest<f32>(u) - u;
      acc += <f64>(elementLambda(lambda, thr, seed, i) * load<f32>(dwq + o) * d);
    }
    const o = <usize>g << 2;
    store<f32>(dstep + o, load<f32>(dstep + o) + <f32>(<f64>gradScale * acc));
  }
}

// ---- static (calibrated) activation scales ----------------------------------------------------------

// xq (M,K8) i8, sx (M), x (M,K), clip (1) f32. With c = clip[0] > 0 every row gets
// sx = f32(127 / max(c, 1e-5)); with c <= 0 (not calibrated) the per-row absmax scale of
// quantize_activations. xq = clamp(nearest(x*sx), -128, 127), padding zeroed. Rows [r0, r1).
export function qat_quantize_activations_static(xq: usize, sx: usize, x: usize, clip: usize, M: i32, K: i32, r0: i32, r1: i32): void {
  const K8 = (K + 7) & ~7;
  const c = load<f32>(clip);
  for (let m = r0; m < r1; m++) {
    const src = x + ((<usize>m * <usize>K) << 2);
    const dst = xq + <usize>m * <usize>K8;
    let amax: f32 = c;
    if (!(c > 0)) {
      amax = 0;
      for (let k = 0; k < K; k++) {
        const a = Mathf.abs(load<f32>(src + (<usize>k << 2)));
        amax = amax < a ? a : amax;
      }
    }
    const s: f32 = <f32>127 / Mathf.max(amax, <f32>1e-5);
    store<f32>(sx + (<usize>m << 2), s);
    let k = 0;
    for (; k < K; k++) {
      const q = nearest<f32>(Mathf.max(-128, Mathf.min(127, load<f32>(src + (<usize>k << 2)) * s)));
      store<i8>(dst + <usize>k, <i8><i32>q);
    }
    for (; k < K8; k++) store<i8>(dst + <usize>k, 0);
  }
}

// ---- column blocks of a matrix (stacked projections with per-part precision) -------------------------

// dst (M,dstCols)[:, dstCol0 .. +n) (+)= src (M,srcCols)[:, srcCol0 .. +n). Rows [r0, r1).
export function qat_copy_columns(dst: usize, dstCols: i32, dstCol0: i32, src: usize, srcCols: i32, srcCol0: i32,
  M: i32, n: i32, accumulate: i32, r0: i32, r1: i32): void {
  for (let m = r0; m < r1; m++) {
    const d = dst + ((<usize>m * <usize>dstCols + <usize>dstCol0) << 2);
    const s = src + ((<usize>m * <usize>srcCols + <usize>srcCol0) << 2);
    let j = 0;
    if (accumulate) {
      for (; j + 4 <= n; j += 4) v128.store(d + (<usize>j << 2), f32x4.add(v128.load(d + (<usize>j << 2)), v128.load(s + (<usize>j << 2))));
      for (; j < n; j++) store<f32>(d + (<usize>j << 2), load<f32>(d + (<usize>j << 2)) + load<f32>(s + (<usize>j << 2)));
    } else {
      memory.copy(d, s, <usize>n << 2);
    }
  }
}

// ---- knowledge distillation: alpha CE + (1 - alpha) T^2 KL(teacher_T || student_T) --------------------

// Softmax of z (V) / T into p (f32), returns log of the partition sum plus the max, so that
// log p_i = z_i / T - lse. f64 sums in element order.
// @ts-ignore: decorator
@inline function softmaxT(p: usize, z: usize, V: i32, invT: f64): f64 {
  let mx: f64 = -Infinity;
  for (let i = 0; i < V; i++) mx = Math.max(mx, <f64>load<f32>(z + (<usize>i << 2)) * invT);
  let sum: f64 = 0;
  for (let i = 0; i < V; i++) sum += Math.exp(<f64>load<f32>(z + (<usize>i << 2)) * invT - mx);
  for (let i = 0; i < V; i++) store<f32>(p + (<usize>i << 2), <f32>(Math.exp(<f64>load<f32>(z + (<usize>i << 2)) * invT - mx) / sum));
  return mx + Math.log(sum);
}

// losses (N); probs, probsT, teacherT, logits, teacher (N,V); targets (N) indices as f32.
// probs = softmax(z), probsT = softmax(z/T), teacherT = softmax(t/T) (saved for backward);
// losses[r] = alpha (lse(z) - z[target]) + (1-alpha) T^2 sum_i pt_i (log pt_i - log ps_i). Rows [r0, r1).
export function kd_forward(losses: usize, probs: usize, probsT: usize, teacherT: usize, logits: usize, teacher: usize, targets: usize,
  N: i32, V: i32, temperature: f32, alpha: f32, r0: i32, r1: i32): void {
  const T = <f64>temperature;
  const invT = 1 / T;
  for (let r = r0; r < r1; r++) {
    const off = (<usize>r * <usize>V) << 2;
    const z = logits + off;
    const lse = softmaxT(probs + off, z, V, 1);
    const lseS = softmaxT(probsT + off, z, V, invT);
    const lseT = softmaxT(teacherT + off, teacher + off, V, invT);
    let kl: f64 = 0;
    for (let i = 0; i < V; i++) {
      const pt = <f64>load<f32>(teacherT + off + (<usize>i << 2));
      if (pt > 0) kl += pt * ((<f64>load<f32>(teacher + off + (<usize>i << 2)) * invT - lseT) - (<f64>load<f32>(z + (<usize>i << 2)) * invT - lseS));
    }
    const target = <i32>load<f32>(targets + (<usize>r << 2));
    const ce = lse - <f64>load<f32>(z + (<usize>target << 2));
    store<f32>(losses + (<usize>r << 2), <f32>(<f64>alpha * ce + (1 - <f64>alpha) * T * T * kl));
  }
}

// in the forward pass: loss = alpha CE(z) + (1-alpha) T^2 KL(pt || softmax(z/T)); d/dz of CE is
// p - onehot, of T^2 KL is T (ps_T - pt_T); so dlogits += dl [alpha (p - onehot) + (1-alpha) T (psT - ptT)].
export function kd_backward(dlogits: usize, probs: usize, probsT: usize, teacherT: usize, targets: usize, dlosses: usize,
  N: i32, V: i32, temperature: f32, alpha: f32, r0: i32, r1: i32): void {
  const a = alpha;
  const b: f32 = (1 - alpha) * temperature;
  for (let r = r0; r < r1; r++) {
    const off = (<usize>r * <usize>V) << 2;
    const dl = load<f32>(dlosses + (<usize>r << 2));
    const target = <i32>load<f32>(targets + (<usize>r << 2));
    for (let i = 0; i < V; i++) {
      const o = off + (<usize>i << 2);
      const oneHot: f32 = i == target ? 1 : 0;
      const g = a * (load<f32>(probs + o) - oneHot) + b * (load<f32>(probsT + o) - load<f32>(teacherT + o));
      store<f32>(dlogits + o, load<f32>(dlogits + o) + dl * g);
    }
  }
}

// ---- ternary-grid regulariser and latent-weight clamp ----------------------------------------------

// rowsum (N) = sum_k (u - q(u))^2 (f64 in k order, stored f32), u = f32(w*s). Rows [r0, r1).
export function qat_grid_penalty(rowsum: usize, w: usize, scales: usize, N: i32, K: i32, group: i32, r0: i32, r1: i32): void {
  if (K > 0 && group <= 0) unreachable();
  const seg = min(group, K);
  for (let n = r0; n < r1; n++) {
    let acc: f64 = 0;
    for (let k0 = 0; k0 < K; k0 += seg) {
      const s = load<f32>(scales + (<usize>scaleAt(n, k0, K, group) << 2));
      for (let k = k0; k < min(k0 + seg, K); k++) {
        const u = load<f32>(w + ((<usize>(n * K + k)) << 2)) * s;
        const e = <f64>(u - ternaryCode(u));
        acc += e * e;
      }
    }
    store<f32>(rowsum + (<usize>n << 2), <f32>acc);
  }
}

// in the forward pass: R = coef' sum (u - q(u))^2 with u = w s (s and q(u) held constant), so
// dw += (dout[0] * coef) (u - q(u)) s, coef = 2 coef'. Rows [r0, r1).
export function qat_grid_penalty_backward(dw: usize, w: usize, scales: usize, dout: usize, coef: f32, N: i32, K: i32, group: i32, r0: i32, r1: i32): void {
  if (K > 0 && group <= 0) unreachable();
  const c = load<f32>(dout) * coef;
  const seg = min(group, K);
  for (let n = r0; n < r1; n++) {
    for (let k0 = 0; k0 < K; k0 += seg) {
      const s = load<f32>(scales + (<usize>scaleAt(n, k0, K, group) << 2));
      for (let k = k0; k < min(k0 + seg, K); k++) {
        const o = (<usize>(n * K + k)) << 2;
        const u = load<f32>(w + o) * s;
        store<f32>(dw + o, load<f32>(dw + o) + c * (u - ternaryCode(u)) * s);
      }
    }
  }
}

// w (N,K) = clamp(w, -b, b) with b = f32(bound / s): latent weights kept within `bound` grid steps.
// Rows [r0, r1).
export function qat_clamp_weights(w: usize, scales: usize, N: i32, K: i32, group: i32, bound: f32, r0: i32, r1: i32): void {
  if (K > 0 && group <= 0) unreachable();
  const seg = min(group, K);
  for (let n = r0; n < r1; n++) {
    for (let k0 = 0; k0 < K; k0 += seg) {
      const b = bound / load<f32>(scales + (<usize>scaleAt(n, k0, K, group) << 2));
      for (let k = k0; k < min(k0 + seg, K); k++) {
        const o = (<usize>(n * K + k)) << 2;
        store<f32>(w + o, Mathf.max(-b, Mathf.min(b, load<f32>(w + o))));
      }
    }
  }
}
