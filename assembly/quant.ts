// BitNet b1.58 quantizers (DESIGN.md "BitNet b1.58 numerics"); js twin: src/backend/js/quant.ts.
//
//   weights, absmean ternary:   s = 1 / max(mean|W|, 1e-5),  Wq = clamp(round(W*s), -1, 1)
//   activations, absmax int8:   s = 127 / max(max|x|, 1e-5), xq = clamp(round(x*s), -128, 127)
//
// round is round-half-to-even everywhere (f32.nearest, as torch.round). Products W*s and x*s are
// f32 multiplies. Scales are f32 multipliers `s` (dequantised value = q / s).
//
// Weight scale granularity is one integer `group`: the number of consecutive row-major elements
// of W (N,K) sharing a scale. group = N*K: per tensor (1 scale); group = K: per output channel
// (N scales); group = G with K % G == 0: per group of G input elements (N*K/G scales). Scale of
// element (n,k) is scales[(n*K + k) / group]. Kernels walk a row in segments of
// seg = min(group, K) elements, all under one scale. The quantizers take any such G; the packed
// matmuls (ternary.ts) need G % 16 == 0 for per-group scales.
//
// Inputs must be finite: NaN or Inf give unspecified codes (and may differ from the js twin).
//
// Layouts (byte offsets, all pointers): W, x, gradients are dense f32 row-major. xq (M, K8) int8
// with K8 = (K+7) & ~7, padding bytes written as 0. Packed ternary W: R = ceil(N/4) rows of K
// bytes; byte (r,k) holds code(W[i*R + r, k]) in bits 2i..2i+1 for i = 0..3, code = Wq + 1 in
// {0,1,2} (Hugging Face BitNet `pack_weights` layout); rows n >= N are padded with code 1 (0).

// ---- weights: absmean scales --------------------------------------------------------------

/** Elements per partial sum: a group's |W| sum is a sum of chunk sums in chunk order. */
const ABSMEAN_CHUNK: i32 = 4096;

// Sum of |w[0..len)| in f64 with a fixed order: four running sums S_j over elements i = j mod 4
// (increasing i), then (S0 + S2) + (S1 + S3). The js reference repeats this order exactly.
@inline function sumAbsChunk(w: usize, len: i32): f64 {
  let a01 = f64x2.splat(0);
  let a23 = f64x2.splat(0);
  let i = 0;
  for (; i + 4 <= len; i += 4) {
    const v = f32x4.abs(v128.load(w + (<usize>i << 2)));
    a01 = f64x2.add(a01, f64x2.promote_low_f32x4(v));
    a23 = f64x2.add(a23, f64x2.promote_low_f32x4(v128.shuffle<f32>(v, v, 2, 3, 0, 1)));
  }
  let s0 = f64x2.extract_lane(a01, 0);
  let s1 = f64x2.extract_lane(a01, 1);
  let s2 = f64x2.extract_lane(a23, 0);
  // tail (only the last chunk of a group whose size is not a multiple of 4): element i joins S_(i mod 4)
  if (i < len) s0 += <f64>Mathf.abs(load<f32>(w + (<usize>i << 2)));
  if (i + 1 < len) s1 += <f64>Mathf.abs(load<f32>(w + (<usize>(i + 1) << 2)));
  if (i + 2 < len) s2 += <f64>Mathf.abs(load<f32>(w + (<usize>(i + 2) << 2)));
  return (s0 + s2) + (s1 + f64x2.extract_lane(a23, 1));
}

// scales (count/group) f32; w (count) f32 latent weights.
// scales[g] = f32(1 / max(sum|w[g*group .. (g+1)*group)| / group, 1e-5)), the sum in f64:
// 4096-element chunks (each summed as in sumAbsChunk) added in chunk order. Groups [r0, r1).
export function absmean_scales(scales: usize, w: usize, count: i32, group: i32, r0: i32, r1: i32): void {
  for (let g = r0; g < r1; g++) {
    const start = <usize>g * <usize>group;
    let sum: f64 = 0;
    for (let c = 0; c < group; c += ABSMEAN_CHUNK) {
      sum += sumAbsChunk(w + ((start + <usize>c) << 2), min(ABSMEAN_CHUNK, group - c));
    }
    const mean = sum / <f64>group;
    store<f32>(scales + (<usize>g << 2), <f32>(1.0 / Math.max(mean, 1e-5)));
  }
}

// Scale index of the segment starting at (n, k) (see the header: seg = min(group, K)).
@inline function scaleIndex(n: i32, k: i32, K: i32, group: i32): i32 {
  return <i32>((<i64>n * <i64>K) / <i64>group) + (group >= K ? 0 : k / group);
}

// ---- weights: quantise + pack, unpack, dequantise --------------------------------------------

// Round half to even by the f32 adder: for |v| < 2^22, v + 1.5*2^23 rounds v to an integer n
// (ties to even, as the sum's parity is n's) and the sum's bit pattern is bits(1.5*2^23) + n.
// Cheaper than f32x4.nearest + i32x4.trunc_sat on x64 and identical to f32.nearest there.
const RNE_MAGIC: f32 = 12582912.0;
const RNE_MAGIC_BITS: i32 = 0x4b400000;

// clamp(round(v), -1, 1) + 1 for v = w*s: rounding after clamping to [-1, 1] is the same function.
@inline function codes4(w: v128, s: v128): v128 {
  const v = f32x4.pmax(f32x4.pmin(f32x4.mul(w, s), f32x4.splat(1)), f32x4.splat(-1));
  return i32x4.sub(f32x4.add(v, f32x4.splat(RNE_MAGIC)), i32x4.splat(RNE_MAGIC_BITS - 1));
}

// Codes Wq+1 in {0,1,2} of 16 consecutive weights w[0..16) under scale s, as 16 bytes.
@inline function codes16(w: usize, s: v128): v128 {
  const q0 = codes4(v128.load(w), s);
  const q1 = codes4(v128.load(w, 16), s);
  const q2 = codes4(v128.load(w, 32), s);
  const q3 = codes4(v128.load(w, 48), s);
  return i8x16.narrow_i16x8_u(i16x8.narrow_i32x4_s(q0, q1), i16x8.narrow_i32x4_s(q2, q3));
}

@inline function code1(w: f32, s: f32): u32 {
  return <u32>(<i32>nearest<f32>(Mathf.max(-1, Mathf.min(1, w * s))) + 1);
}

// packed (ceil(N/4), K) u8; w (N,K) f32 latent; scales as in the header.
// Quantise and pack in one pass: packed[r,k] = sum_i code(w[i*R + r, k]) << 2i. Packed rows [r0, r1).
export function ternary_pack(packed: usize, w: usize, scales: usize, N: i32, K: i32, group: i32, r0: i32, r1: i32): void {
  if (K > 0 && group <= 0) unreachable(); // a zero group would never finish a row
  const R = (N + 3) >> 2;
  const seg = min(group, K);
  for (let r = r0; r < r1; r++) {
    const dst = packed + <usize>r * <usize>K;
    for (let k0 = 0; k0 < K; k0 += seg) {
      const k1 = min(k0 + seg, K);
      let k = k0;
      for (; k + 16 <= k1; k += 16) {
        let b = i8x16.splat(0x55); // code 1 (weight 0) in all four slots: padding rows
        for (let i = 0; i < 4; i++) {
          const n = i * R + r;
          if (n >= N) break;
          const s = f32x4.splat(load<f32>(scales + (<usize>scaleIndex(n, k0, K, group) << 2)));
          const c = codes16(w + ((<usize>n * <usize>K + <usize>k) << 2), s);
          b = v128.andnot(b, i16x8.shl(i8x16.splat(3), 2 * i)); // clear slot i
          b = v128.or(b, i16x8.shl(c, 2 * i));
        }
        v128.store(dst + <usize>k, b);
      }
      for (; k < k1; k++) {
        let byte: u32 = 0x55;
        for (let i = 0; i < 4; i++) {
          const n = i * R + r;
          if (n >= N) break;
          const s = load<f32>(scales + (<usize>scaleIndex(n, k0, K, group) << 2));
          byte = (byte & ~(3 << (2 * i))) | (code1(load<f32>(w + ((<usize>n * <usize>K + <usize>k) << 2)), s) << (2 * i));
        }
        store<u8>(dst + <usize>k, <u8>byte);
      }
    }
  }
}

// wq (N,K) i8 = ternary weights of packed (ceil(N/4), K). Rows n in [r0, r1).
export function ternary_unpack(wq: usize, packed: usize, N: i32, K: i32, r0: i32, r1: i32): void {
  const R = (N + 3) >> 2;
  for (let n = r0; n < r1; n++) {
    const src = packed + <usize>(n % R) * <usize>K;
    const sh = (n / R) << 1;
    const dst = wq + <usize>n * <usize>K;
    let k = 0;
    for (; k + 16 <= K; k += 16) {
      const c = v128.and(i16x8.shr_u(v128.load(src + <usize>k), sh), i8x16.splat(3));
      v128.store(dst + <usize>k, i8x16.sub(c, i8x16.splat(1)));
    }
    for (; k < K; k++) store<i8>(dst + <usize>k, <i8>(((<i32>load<u8>(src + <usize>k) >> sh) & 3) - 1));
  }
}

// out (N,K) f32 = Wq / s (f32 division: +-f32(1/s) or 0) from packed (ceil(N/4), K). Rows [r0, r1).
export function ternary_dequantize(out: usize, packed: usize, scales: usize, N: i32, K: i32, group: i32, r0: i32, r1: i32): void {
  if (K > 0 && group <= 0) unreachable(); // a zero group would never finish a row
  const R = (N + 3) >> 2;
  const seg = min(group, K);
  for (let n = r0; n < r1; n++) {
    const src = packed + <usize>(n % R) * <usize>K;
    const sh = (n / R) << 1;
    const dst = out + ((<usize>n * <usize>K) << 2);
    for (let k0 = 0; k0 < K; k0 += seg) {
      const k1 = min(k0 + seg, K);
      const s = load<f32>(scales + (<usize>scaleIndex(n, k0, K, group) << 2));
      const sv = f32x4.splat(s);
      let k = k0;
      for (; k + 16 <= k1; k += 16) {
        const q = i8x16.sub(v128.and(i16x8.shr_u(v128.load(src + <usize>k), sh), i8x16.splat(3)), i8x16.splat(1));
        const lo = i16x8.extend_low_i8x16_s(q);
        const hi = i16x8.extend_high_i8x16_s(q);
        const p = dst + (<usize>k << 2);
        v128.store(p, f32x4.div(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(lo)), sv));
        v128.store(p, f32x4.div(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(lo)), sv), 16);
        v128.store(p, f32x4.div(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(hi)), sv), 32);
        v128.store(p, f32x4.div(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(hi)), sv), 48);
      }
      for (; k < k1; k++) {
        const q = <f32>((((<i32>load<u8>(src + <usize>k)) >> sh) & 3) - 1);
        store<f32>(dst + (<usize>k << 2), q / s);
      }
    }
  }
}

// ---- activations: absmax int8 per token ---------------------------------------------------

// max as f32x4.pmax computes it (a < b ? b : a): no NaN propagation, one instruction.
@inline function fmax(a: f32, b: f32): f32 {
  return a < b ? b : a;
}

// round(clamp(x*s, -128, 127)) as i32 lanes (rounding after the clamp: same function).
@inline function int8Round4(x: v128, s: v128): v128 {
  const v = f32x4.pmax(f32x4.pmin(f32x4.mul(x, s), f32x4.splat(127)), f32x4.splat(-128));
  return i32x4.sub(f32x4.add(v, f32x4.splat(RNE_MAGIC)), i32x4.splat(RNE_MAGIC_BITS));
}

// xq (M,K8) i8, K8 = (K+7)&~7, padding zeroed; sx (M) f32; x (M,K) f32. Rows [r0, r1).
// sx[m] = f32(127 / max(max|x[m,:]|, 1e-5)); xq = clamp(nearest(x*sx), -128, 127).
export function quantize_activations(xq: usize, sx: usize, x: usize, M: i32, K: i32, r0: i32, r1: i32): void {
  const K8 = (K + 7) & ~7;
  for (let m = r0; m < r1; m++) {
    const src = x + ((<usize>m * <usize>K) << 2);
    const dst = xq + <usize>m * <usize>K8;
    let vmax = f32x4.splat(0);
    let k = 0;
    for (; k + 4 <= K; k += 4) vmax = f32x4.pmax(vmax, f32x4.abs(v128.load(src + (<usize>k << 2))));
    let amax = f32x4.extract_lane(vmax, 0);
    amax = fmax(amax, f32x4.extract_lane(vmax, 1));
    amax = fmax(amax, f32x4.extract_lane(vmax, 2));
    amax = fmax(amax, f32x4.extract_lane(vmax, 3));
    for (; k < K; k++) amax = fmax(amax, Mathf.abs(load<f32>(src + (<usize>k << 2))));
    const s: f32 = <f32>127 / Mathf.max(amax, <f32>1e-5);
    store<f32>(sx + (<usize>m << 2), s);
    const sv = f32x4.splat(s);
    k = 0;
    for (; k + 16 <= K; k += 16) {
      const p = src + (<usize>k << 2);
      const q0 = int8Round4(v128.load(p), sv);
      const q1 = int8Round4(v128.load(p, 16), sv);
      const q2 = int8Round4(v128.load(p, 32), sv);
      const q3 = int8Round4(v128.load(p, 48), sv);
      // saturating narrows clamp to [-128, 127]
      v128.store(dst + <usize>k, i8x16.narrow_i16x8_s(i16x8.narrow_i32x4_s(q0, q1), i16x8.narrow_i32x4_s(q2, q3)));
    }
    for (; k < K; k++) {
      const q = nearest<f32>(Mathf.max(-128, Mathf.min(127, load<f32>(src + (<usize>k << 2)) * s)));
      store<i8>(dst + <usize>k, <i8><i32>q);
    }
    for (; k < K8; k++) store<i8>(dst + <usize>k, 0);
  }
}

// out (M,K) f32 = xq / sx[m] (f32 division); xq (M,K8) i8; sx (M). Rows [r0, r1).
// Gives the dequantised activations for dW = dY^T . (xq/sx) with gemm_tn.
export function dequantize_activations(out: usize, xq: usize, sx: usize, M: i32, K: i32, r0: i32, r1: i32): void {
  const K8 = (K + 7) & ~7;
  for (let m = r0; m < r1; m++) {
    const src = xq + <usize>m * <usize>K8;
    const dst = out + ((<usize>m * <usize>K) << 2);
    const s = load<f32>(sx + (<usize>m << 2));
    const sv = f32x4.splat(s);
    let k = 0;
    for (; k + 4 <= K; k += 4) {
      const q = i32x4.extend_low_i16x8_s(i16x8.extend_low_i8x16_s(v128.load32_zero(src + <usize>k)));
      v128.store(dst + (<usize>k << 2), f32x4.div(f32x4.convert_i32x4_s(q), sv));
    }
    for (; k < K; k++) store<f32>(dst + (<usize>k << 2), <f32>load<i8>(src + <usize>k) / s);
  }
}

// ---- straight-through estimator, clipped variant --------------------------------------------
// The identity STE needs no kernel (the gradient of the quantised tensor is the latent gradient).
// The clipped STE passes the gradient only where the scaled value lies inside the clamp range,
// i.e. where clamp() is the identity: |W*s| <= 1 for weights, -128 <= x*s <= 127 for activations
// (W*s, x*s as the f32 products the quantizers compute; round() is taken as the identity).

// dw (N,K) += dwq where |w*s| <= 1, else += +0 (a -0 becomes +0, in both backends);
// w (N,K) latent f32; scales per `group`. Rows [r0, r1).
export function ste_clipped_weights(dw: usize, dwq: usize, w: usize, scales: usize, N: i32, K: i32, group: i32, r0: i32, r1: i32): void {
  if (K > 0 && group <= 0) unreachable(); // a zero group would never finish a row
  const seg = min(group, K);
  const one = f32x4.splat(1);
  for (let n = r0; n < r1; n++) {
    const base = (<usize>n * <usize>K) << 2;
    for (let k0 = 0; k0 < K; k0 += seg) {
      const k1 = min(k0 + seg, K);
      const s = load<f32>(scales + (<usize>scaleIndex(n, k0, K, group) << 2));
      const sv = f32x4.splat(s);
      let k = k0;
      for (; k + 4 <= k1; k += 4) {
        const o = base + (<usize>k << 2);
        const keep = f32x4.le(f32x4.abs(f32x4.mul(v128.load(w + o), sv)), one);
        v128.store(dw + o, f32x4.add(v128.load(dw + o), v128.and(v128.load(dwq + o), keep)));
      }
      for (; k < k1; k++) {
        const o = base + (<usize>k << 2);
        store<f32>(dw + o, load<f32>(dw + o) + (Mathf.abs(load<f32>(w + o) * s) <= 1 ? load<f32>(dwq + o) : <f32>0));
      }
    }
  }
}

// dx (M,K) += dxq where -128 <= x*sx[m] <= 127, else += +0; x (M,K) f32; sx (M). Rows [r0, r1).
// (With per-token absmax scales |x*s| <= 127 always holds: this mask only bites for foreign scales.)
export function ste_clipped_activations(dx: usize, dxq: usize, x: usize, sx: usize, M: i32, K: i32, r0: i32, r1: i32): void {
  const lo = f32x4.splat(-128);
  const hi = f32x4.splat(127);
  for (let m = r0; m < r1; m++) {
    const base = (<usize>m * <usize>K) << 2;
    const s = load<f32>(sx + (<usize>m << 2));
    const sv = f32x4.splat(s);
    let k = 0;
    for (; k + 4 <= K; k += 4) {
      const o = base + (<usize>k << 2);
      const v = f32x4.mul(v128.load(x + o), sv);
      const keep = v128.and(f32x4.ge(v, lo), f32x4.le(v, hi));
      v128.store(dx + o, f32x4.add(v128.load(dx + o), v128.and(v128.load(dxq + o), keep)));
    }
    for (; k < K; k++) {
      const o = base + (<usize>k << 2);
      const v = load<f32>(x + o) * s;
      store<f32>(dx + o, load<f32>(dx + o) + (v >= -128 && v <= 127 ? load<f32>(dxq + o) : <f32>0));
    }
  }
}
