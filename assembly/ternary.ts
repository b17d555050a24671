// Packed ternary matmuls for BitLinear (DESIGN.md "BitNet b1.58 numerics"); js twin:
// src/backend/js/ternary.ts. Layouts and the scale `group` are described in quant.ts:
// xq (M,K8) i8 with K8 = (K+7)&~7; packed W (ceil(N/4), K) u8, byte (r,k) holds Wq[i*R+r, k]+1
// in bits 2i..2i+1; scales[(n*K+k)/group] f32 multipliers. All pointers are byte offsets.
//
// The weights travel as 2 bits. Each kernel decodes a small panel of them into caller-provided
// scratch (L1-sized, reused across every activation row of its range), so the inner loops see
// plain vectors: int8 x int16 dot products (i32x4.dot_i16x8_s, 8 multiply-adds an instruction)
// in the forward, and sign-selected adds of f32 gradients in the backward.

// Panel width of the forward kernel: output columns computed together (one f32x4 store).
const NR: i32 = 4;
// Rows of a backward m-block (dY rows kept in cache while all K panels are swept).
const DX_MB: i32 = 256;

// [sum(a), sum(b), sum(c), sum(d)] of four i32x4 vectors.
@inline function hsum4(a: v128, b: v128, c: v128, d: v128): v128 {
  const ab = i32x4.add(v128.shuffle<i32>(a, b, 0, 4, 1, 5), v128.shuffle<i32>(a, b, 2, 6, 3, 7));
  const cd = i32x4.add(v128.shuffle<i32>(c, d, 0, 4, 1, 5), v128.shuffle<i32>(c, d, 2, 6, 3, 7));
  return i32x4.add(v128.shuffle<i32>(ab, cd, 0, 1, 4, 5), v128.shuffle<i32>(ab, cd, 2, 3, 6, 7));
}

@inline function scaleIndex(n: i32, k: i32, K: i32, group: i32): i32 {
  return <i32>((<i64>n * <i64>K) / <i64>group) + (group >= K ? 0 : k / group);
}

// Decode rows n0..n0+NR-1 of packed W into scratch as i16 (NR, K8), zero padded (k >= K, n >= N).
@inline function decodePanelI16(scratch: usize, w: usize, n0: i32, N: i32, K: i32, K8: i32): void {
  const R = (N + 3) >> 2;
  for (let j = 0; j < NR; j++) {
    const n = n0 + j;
    const dst = scratch + (<usize>(j * K8) << 1);
    let k = 0;
    if (n < N) {
      const src = w + <usize>(n % R) * <usize>K;
      const sh = (n / R) << 1;
      for (; k + 16 <= K; k += 16) {
        const q = i8x16.sub(v128.and(i16x8.shr_u(v128.load(src + <usize>k), sh), i8x16.splat(3)), i8x16.splat(1));
        v128.store(dst + (<usize>k << 1), i16x8.extend_low_i8x16_s(q));
        v128.store(dst + (<usize>k << 1), i16x8.extend_high_i8x16_s(q), 16);
      }
      for (; k < K; k++) store<i16>(dst + (<usize>k << 1), <i16>(((<i32>load<u8>(src + <usize>k) >> sh) & 3) - 1));
    }
    for (; k < K8; k++) store<i16>(dst + (<usize>k << 1), 0);
  }
}

// Relaxed SIMD build (ASC_FEATURE_RELAXED_SIMD): decode rows n0..n0+NR-1 as their 2-bit codes
// w + 1 in {0, 1, 2} (NR, K16) bytes, zero padded, for i32x4.relaxed_dot_i8x16_i7x16_add_s (16
// multiply-adds an instruction). Its second operand must have the top bit clear (x86 lowers it to
// pmaddubsw, which reads it unsigned), so the kernel multiplies by w + 1 and subtracts Σ x:
// Σ x·(w+1) − Σ x = Σ x·w, exact in int32 on every CPU, the same sums as the i16 path.
@inline function decodePanelI8(scratch: usize, w: usize, n0: i32, N: i32, K: i32, K16: i32): void {
  const R = (N + 3) >> 2;
  for (let j = 0; j < NR; j++) {
    const n = n0 + j;
    const dst = scratch + <usize>(j * K16);
    let k = 0;
    if (n < N) {
      const src = w + <usize>(n % R) * <usize>K;
      const sh = (n / R) << 1;
      for (; k + 16 <= K; k += 16) {
        v128.store(dst + <usize>k, v128.and(i16x8.shr_u(v128.load(src + <usize>k), sh), i8x16.splat(3)));
      }
      for (; k < K; k++) store<i8>(dst + <usize>k, <i8>((<i32>load<u8>(src + <usize>k) >> sh) & 3));
    }
    for (; k < K16; k++) store<i8>(dst + <usize>k, 0);
  }
}

// Shared body of the forward kernels. raw: store the int32 sums (M,N) instead of the rescaled f32.
@inline function forwardBody(out: usize, xq: usize, sx: usize, w: usize, sw: usize, scratch: usize,
                             M: i32, N: i32, K: i32, group: i32, r0: i32, r1: i32, raw: bool): void {
  const K8 = (K + 7) & ~7;
  const seg = raw || group >= K ? K8 : group; // k-segments under one weight scale
  const nseg = seg > 0 ? K8 / seg : 0; // K = 0: out = 0
  const swv = scratch + (<usize>(NR * K8) << 1); // nseg f32x4: the panel's scales per segment
  const p0 = scratch;
  const K16 = (K8 + 15) & ~15;
  for (let n0 = 0; n0 < N; n0 += NR) {
    if (ASC_FEATURE_RELAXED_SIMD) decodePanelI8(scratch, w, n0, N, K, K16);
    else decodePanelI16(scratch, w, n0, N, K, K8);
    const nv = min(NR, N - n0);
    if (!raw) {
      for (let g = 0; g < nseg; g++) {
        const v = swv + (<usize>g << 4);
        for (let j = 0; j < NR; j++) {
          store<f32>(v + (<usize>j << 2), j < nv ? load<f32>(sw + (<usize>scaleIndex(n0 + j, g * seg, K, group) << 2)) : <f32>1);
        }
      }
    }
    for (let m = r0; m < r1; m += 2) {
      const two = m + 1 < r1;
      const x0 = xq + <usize>m * <usize>K8;
      const x1 = two ? x0 + <usize>K8 : x0;
      let y0 = f32x4.splat(0);
      let y1 = f32x4.splat(0);
      let t0 = i32x4.splat(0);
      let t1 = i32x4.splat(0);
      for (let g = 0; g < nseg; g++) {
        let a00 = i32x4.splat(0), a01 = i32x4.splat(0), a02 = i32x4.splat(0), a03 = i32x4.splat(0);
        let a10 = i32x4.splat(0), a11 = i32x4.splat(0), a12 = i32x4.splat(0), a13 = i32x4.splat(0);
        const k1 = (g + 1) * seg;
        if (ASC_FEATURE_RELAXED_SIMD) {
          // 16 k a step; a segment ending 8 past a multiple of 16 takes its last 8 activations
          // with load64_zero (never reading past the row)
          let r0p = p0 + <usize>(g * seg), r1p = r0p + <usize>K16, r2p = r1p + <usize>K16, r3p = r2p + <usize>K16;
          let xa1 = x0 + <usize>(g * seg), xb1 = x1 + <usize>(g * seg);
          const ones = i8x16.splat(1);
          let sa = i32x4.splat(0), sb = i32x4.splat(0);
          for (let k = g * seg; k < k1; k += 16) {
            const w0 = v128.load(r0p);
            const w1 = v128.load(r1p);
            const w2 = v128.load(r2p);
            const w3 = v128.load(r3p);
            const tail = k + 16 > k1;
            const xa = tail ? v128.load64_zero(xa1) : v128.load(xa1);
            a00 = i32x4.relaxed_dot_i8x16_i7x16_add_s(xa, w0, a00);
            a01 = i32x4.relaxed_dot_i8x16_i7x16_add_s(xa, w1, a01);
            a02 = i32x4.relaxed_dot_i8x16_i7x16_add_s(xa, w2, a02);
            a03 = i32x4.relaxed_dot_i8x16_i7x16_add_s(xa, w3, a03);
            sa = i32x4.relaxed_dot_i8x16_i7x16_add_s(xa, ones, sa);
            const xb = tail ? v128.load64_zero(xb1) : v128.load(xb1);
            a10 = i32x4.relaxed_dot_i8x16_i7x16_add_s(xb, w0, a10);
            a11 = i32x4.relaxed_dot_i8x16_i7x16_add_s(xb, w1, a11);
            a12 = i32x4.relaxed_dot_i8x16_i7x16_add_s(xb, w2, a12);
            a13 = i32x4.relaxed_dot_i8x16_i7x16_add_s(xb, w3, a13);
            sb = i32x4.relaxed_dot_i8x16_i7x16_add_s(xb, ones, sb);
            r0p += 16; r1p += 16; r2p += 16; r3p += 16; xa1 += 16; xb1 += 16;
          }
          // Σ x·(w+1) − Σ x: every output's lanes lose the lanes of Σ x
          a00 = i32x4.sub(a00, sa); a01 = i32x4.sub(a01, sa); a02 = i32x4.sub(a02, sa); a03 = i32x4.sub(a03, sa);
          a10 = i32x4.sub(a10, sb); a11 = i32x4.sub(a11, sb); a12 = i32x4.sub(a12, sb); a13 = i32x4.sub(a13, sb);
        } else {
        let q0 = p0 + (<usize>(g * seg) << 1), q1 = q0 + (<usize>K8 << 1), q2 = q1 + (<usize>K8 << 1), q3 = q2 + (<usize>K8 << 1);
        let xa0 = x0 + <usize>(g * seg), xb0 = x1 + <usize>(g * seg);
        for (let k = g * seg; k < k1; k += 8) {
          const w0 = v128.load(q0);
          const w1 = v128.load(q1);
          const w2 = v128.load(q2);
          const w3 = v128.load(q3);
          const xa = v128.load8x8_s(xa0);
          a00 = i32x4.add(a00, i32x4.dot_i16x8_s(xa, w0));
          a01 = i32x4.add(a01, i32x4.dot_i16x8_s(xa, w1));
          a02 = i32x4.add(a02, i32x4.dot_i16x8_s(xa, w2));
          a03 = i32x4.add(a03, i32x4.dot_i16x8_s(xa, w3));
          const xb = v128.load8x8_s(xb0);
          a10 = i32x4.add(a10, i32x4.dot_i16x8_s(xb, w0));
          a11 = i32x4.add(a11, i32x4.dot_i16x8_s(xb, w1));
          a12 = i32x4.add(a12, i32x4.dot_i16x8_s(xb, w2));
          a13 = i32x4.add(a13, i32x4.dot_i16x8_s(xb, w3));
          q0 += 16; q1 += 16; q2 += 16; q3 += 16; xa0 += 8; xb0 += 8;
        }
        }
        t0 = hsum4(a00, a01, a02, a03);
        t1 = hsum4(a10, a11, a12, a13);
        if (!raw) {
          // y += f32(acc) / f32(sx[m] * sw[n, g]): one rescale per weight-scale segment
          const s = v128.load(swv + (<usize>g << 4));
          y0 = f32x4.add(y0, f32x4.div(f32x4.convert_i32x4_s(t0), f32x4.mul(f32x4.splat(load<f32>(sx + (<usize>m << 2))), s)));
          if (two) y1 = f32x4.add(y1, f32x4.div(f32x4.convert_i32x4_s(t1), f32x4.mul(f32x4.splat(load<f32>(sx + (<usize>(m + 1) << 2))), s)));
        }
      }
      const r0v = raw ? t0 : y0;
      const r1v = raw ? t1 : y1;
      const o0 = out + ((<usize>m * <usize>N + <usize>n0) << 2);
      if (nv == NR) {
        v128.store(o0, r0v);
        if (two) v128.store(o0 + (<usize>N << 2), r1v);
      } else {
        for (let j = 0; j < nv; j++) {
          store<i32>(o0 + (<usize>j << 2), laneI32(r0v, j));
          if (two) store<i32>(o0 + ((<usize>N + <usize>j) << 2), laneI32(r1v, j));
        }
      }
    }
  }
}

@inline function laneI32(v: v128, j: i32): i32 {
  return j == 0 ? i32x4.extract_lane(v, 0) : j == 1 ? i32x4.extract_lane(v, 1) : j == 2 ? i32x4.extract_lane(v, 2) : i32x4.extract_lane(v, 3);
}

// ---- forward --------------------------------------------------------------------------------
// out (M,N) f32; xq (M,K8) i8 and sx (M) f32 from quantize_activations; w packed (ceil(N/4), K);
// sw weight scales (`group`: N*K per tensor, K per channel, G per group with G % 16 == 0, K % G == 0);
// scratch: 10*K8 bytes (16-byte aligned), private to the caller (one per thread). Rows m in [r0, r1).
//   out[m,n] = sum over weight-scale segments g of f32(acc[m,n,g]) / f32(sx[m] * sw[n,g]),
//   acc = sum_k xq[m,k] * Wq[n,k] exactly in int32 (|acc| <= 128*K); a single segment when the
//   scale is per tensor or per channel: out = f32(acc) / f32(sx*sw), accumulated from 0 in f32.
export function ternary_forward(out: usize, xq: usize, sx: usize, w: usize, sw: usize, scratch: usize,
                                M: i32, N: i32, K: i32, group: i32, r0: i32, r1: i32): void {
  forwardBody(out, xq, sx, w, sw, scratch, M, N, K, group, r0, r1, false);
}

// out (M,N) i32 = xq (M,K8) . Wq (N,K)^T, the exact integer accumulations (tests, diagnostics).
// scratch: 10*K8 bytes. Rows [r0, r1).
export function ternary_forward_i32(out: usize, xq: usize, w: usize, scratch: usize, M: i32, N: i32, K: i32, r0: i32, r1: i32): void {
  forwardBody(out, xq, 0, w, 0, scratch, M, N, K, N * K, r0, r1, true);
}

// ---- backward: dX ----------------------------------------------------------------------------
// Decode columns [k0, k0+16) of Wq / s for all N rows into scratch (N, 16) f32: +-f32(1/s) or 0
// (the values ternary_dequantize writes), zero for k >= K.
@inline function decodePanelF32(scratch: usize, w: usize, sw: usize, k0: i32, N: i32, K: i32, group: i32): void {
  const R = (N + 3) >> 2;
  const full = k0 + 16 <= K;
  let last = -1;
  let inv = f32x4.splat(0);
  for (let n = 0; n < N; n++) {
    const src = w + <usize>(n % R) * <usize>K + <usize>k0;
    const sh = (n / R) << 1;
    const idx = scaleIndex(n, k0, K, group);
    if (idx != last) {
      inv = f32x4.splat(<f32>1 / load<f32>(sw + (<usize>idx << 2)));
      last = idx;
    }
    const dst = scratch + (<usize>n << 6);
    if (!full) {
      const s = f32x4.extract_lane(inv, 0);
      for (let k = 0; k < 16; k++) {
        const q = k < K - k0 ? <f32>((((<i32>load<u8>(src + <usize>k)) >> sh) & 3) - 1) : <f32>0;
        store<f32>(dst + (<usize>k << 2), q * s);
      }
      continue;
    }
    const q = i8x16.sub(v128.and(i16x8.shr_u(v128.load(src), sh), i8x16.splat(3)), i8x16.splat(1));
    const lo = i16x8.extend_low_i8x16_s(q);
    const hi = i16x8.extend_high_i8x16_s(q);
    v128.store(dst, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(lo)), inv));
    v128.store(dst, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(lo)), inv), 16);
    v128.store(dst, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(hi)), inv), 32);
    v128.store(dst, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(hi)), inv), 48);
  }
}

// dx (M,K) f32 += dy (M,N) f32 . (Wq / sw), Wq (N,K) ternary from packed w (ceil(N/4), K);
// sw scales (`group`: per tensor, per channel, or G with G % 16 == 0, K % G == 0);
// scratch: 64*N bytes (16-byte aligned), one per thread. Rows m in [r0, r1).
// In the forward pass this was: y[m,n] = sum_k x[m,k] * Wq[n,k] / sw[n,k]; so now we have
//   dx[m,k] += acc, acc = sum_n (dy[m,n] * f32(1/sw[n,g(k)])) * Wq[n,k], summed from 0 in n order in f32.
// Wq in {-1,0,1}, so every term is +-(dy*inv) or 0: an add, a subtract or nothing. The kernel
// applies the sign as a multiply by the decoded +-inv (bit-identical, fewer instructions).
export function ternary_backward_dx(dx: usize, dy: usize, w: usize, sw: usize, scratch: usize,
                                    M: i32, N: i32, K: i32, group: i32, r0: i32, r1: i32): void {
  const rowN = <usize>N << 2;
  for (let mb = r0; mb < r1; mb += DX_MB) {
    const mb1 = min(mb + DX_MB, r1);
    for (let k0 = 0; k0 < K; k0 += 16) {
      decodePanelF32(scratch, w, sw, k0, N, K, group);
      const kv = min(16, K - k0);
      for (let m = mb; m < mb1; m += 2) {
        const two = m + 1 < mb1;
        const d0p = dy + <usize>m * rowN;
        const d1p = two ? d0p + rowN : d0p;
        let a00 = f32x4.splat(0), a01 = f32x4.splat(0), a02 = f32x4.splat(0), a03 = f32x4.splat(0);
        let a10 = f32x4.splat(0), a11 = f32x4.splat(0), a12 = f32x4.splat(0), a13 = f32x4.splat(0);
        let wp = scratch, e0 = d0p, e1 = d1p;
        for (let n = 0; n < N; n++) {
          const w0 = v128.load(wp);
          const w1 = v128.load(wp, 16);
          const w2 = v128.load(wp, 32);
          const w3 = v128.load(wp, 48);
          const d0 = v128.load32_splat(e0);
          a00 = f32x4.add(a00, f32x4.mul(d0, w0));
          a01 = f32x4.add(a01, f32x4.mul(d0, w1));
          a02 = f32x4.add(a02, f32x4.mul(d0, w2));
          a03 = f32x4.add(a03, f32x4.mul(d0, w3));
          const d1 = v128.load32_splat(e1);
          a10 = f32x4.add(a10, f32x4.mul(d1, w0));
          a11 = f32x4.add(a11, f32x4.mul(d1, w1));
          a12 = f32x4.add(a12, f32x4.mul(d1, w2));
          a13 = f32x4.add(a13, f32x4.mul(d1, w3));
          wp += 64; e0 += 4; e1 += 4;
        }
        addRow16(dx + ((<usize>m * <usize>K + <usize>k0) << 2), kv, a00, a01, a02, a03);
        if (two) addRow16(dx + ((<usize>(m + 1) * <usize>K + <usize>k0) << 2), kv, a10, a11, a12, a13);
      }
    }
  }
}

// dst[0..kv) += [a | b | c | d][0..kv), kv <= 16.
@inline function addRow16(dst: usize, kv: i32, a: v128, b: v128, c: v128, d: v128): void {
  if (kv == 16) {
    v128.store(dst, f32x4.add(v128.load(dst), a));
    v128.store(dst, f32x4.add(v128.load(dst, 16), b), 16);
    v128.store(dst, f32x4.add(v128.load(dst, 32), c), 32);
    v128.store(dst, f32x4.add(v128.load(dst, 48), d), 48);
    return;
  }
  for (let k = 0; k < kv; k++) {
    const v = k < 4 ? a : k < 8 ? b : k < 12 ? c : d;
    const j = k & 3;
    const x = j == 0 ? f32x4.extract_lane(v, 0) : j == 1 ? f32x4.extract_lane(v, 1) : j == 2 ? f32x4.extract_lane(v, 2) : f32x4.extract_lane(v, 3);
    store<f32>(dst + (<usize>k << 2), load<f32>(dst + (<usize>k << 2)) + x);
  }
}
