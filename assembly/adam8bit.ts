// 8-bit blockwise AdamW (bitsandbytes' blockwise 8-bit Adam, with this library's AdamW formula;
// js twin: src/backend/js/adamw8bit.ts, which gives the same bits). m and v are stored as 8-bit
// codes into two 256-entry dynamic maps (signed for m, unsigned for v: src/quant/dynamic-map.ts)
// with one f32 absmax per block of 256 elements: m = qmap_signed[code] * m_absmax[block].
//
// params, grads (n) f32; m_codes, v_codes (n) bytes; m_absmax, v_absmax (ceil(n/256)) f32;
// qmap_signed, qmap_unsigned (256) f32, sorted ascending; search_tables (2 x 8196 bytes) where each
// map's nearest-code search starts. Blocks [b0, b1); the last block of n may
// be partial. Every block is independent, so any split over threads gives the same bits.
// Byte-offset pointers.

const BLOCK: i32 = 256;

// beta^step by squaring in f64 (only multiplications: the same bits in wasm and in JavaScript)
@inline function powi(beta: f64, step: i32): f64 {
  let r: f64 = 1;
  let x = beta;
  let k = step;
  while (k > 0) {
    if (k & 1) r *= x;
    x *= x;
    k >>= 1;
  }
  return r;
}

@inline function mapAt(map: usize, code: i32): f32 {
  return load<f32>(map + (<usize>code << 2));
}

// The index of the map entry nearest to x (ties to the lower index): the last entry <= x (entry 0
// when x is below it), then the nearer of it and the next. The last entry <= x starts from x's
// bucket in `table` (src/quant/dynamic-map.ts codeSearchTable: per sign, |x| < 2^-63, then 64
// binades x 6 mantissa bits, then |x| >= 2) and steps forward; NaN and Inf take a binary search.
// Both give the js reference's code (a plain binary search).
@inline function nearestCode(map: usize, table: usize, x: f32): i32 {
  const bits = reinterpret<u32>(x);
  const e = <i32>((bits >> 23) & 0xff);
  let lo: i32 = 0;
  if (e == 255) {
    for (let s: i32 = 128; s > 0; s >>= 1) lo += select<i32>(s, 0, mapAt(map, lo + s) <= x);
  } else {
    const k = select<i32>(0, select<i32>(4097, 1 + ((e - 64) << 6) + <i32>((bits >> 17) & 63), e > 127), e < 64);
    lo = <i32>load<u8>(table + <usize>(<i32>(bits >> 31) * 4098 + k));
    // two steps without branches (most buckets need 0-2), then any rest
    lo += select<i32>(1, 0, lo < 255 && mapAt(map, lo + 1) <= x);
    lo += select<i32>(1, 0, lo < 255 && mapAt(map, lo + 1) <= x);
    while (lo < 255 && mapAt(map, lo + 1) <= x) lo++;
  }
  const up = min(lo + 1, 255);
  return lo + select<i32>(1, 0, lo < 255 && Mathf.abs(mapAt(map, up) - x) < Mathf.abs(x - mapAt(map, lo)));
}

// Per block, as bitsandbytes' optimizer_update_8bit_blockwise:
//   m = qmap_signed[m_code] * m_absmax;  v = qmap_unsigned[v_code] * v_absmax      (dequantise)
//   g = grads * gradScale[0] (when grad_scale != 0);  m' = b1 m + (1-b1) g;  v' = b2 v + (1-b2) g^2
//   p -= lr (m'/bc1 / (sqrt(v'/bc2) + eps) + wd p)      (the f32 moments, before requantising)
//   m_absmax = max |m'|, v_absmax = max v' over the block;  codes = nearest(m'/m_absmax), nearest(v'/v_absmax)
// and a non-zero m' never gets a code of the other sign or zero (it moves one code towards its sign).
// The second pass recomputes m', v' from the old codes (the same operations, the same bits) instead
// of keeping 2x256 floats: kernels have no scratch of their own.
// The dequantised moments of elements i..i+3 (codes 4 bytes from c): map[code] * absmax, per lane.
@inline function dequant4(map: usize, c: usize, absmax: v128): v128 {
  const w = load<u32>(c);
  let q = f32x4.splat(mapAt(map, <i32>(w & 0xff)));
  q = f32x4.replace_lane(q, 1, mapAt(map, <i32>((w >> 8) & 0xff)));
  q = f32x4.replace_lane(q, 2, mapAt(map, <i32>((w >> 16) & 0xff)));
  q = f32x4.replace_lane(q, 3, mapAt(map, <i32>(w >> 24)));
  return f32x4.mul(q, absmax);
}

// The m code of one value against the block's absmax: nearest, and a non-zero m keeps its sign.
@inline function mCode(map: usize, table: usize, mi: f32, x: f32): u8 {
  let cm = nearestCode(map, table, x);
  const qm = mapAt(map, cm);
  if (mi > 0 && qm <= 0) cm++;
  else if (mi < 0 && qm >= 0) cm--;
  return <u8>cm;
}

export function adamw8bit_step(params: usize, grads: usize, m_codes: usize, v_codes: usize, m_absmax: usize, v_absmax: usize,
                               qmap_signed: usize, qmap_unsigned: usize, search_tables: usize, lr: f32, beta1: f32, beta2: f32, eps: f32,
                               weight_decay: f32, step: i32, grad_scale: usize, n: i32, b0: i32, b1: i32): void {
  const gs: f32 = grad_scale ? load<f32>(grad_scale) : 1;
  const bc1 = <f32>(1 - powi(<f64>beta1, step));
  const bc2 = <f32>(1 - powi(<f64>beta2, step));
  const omb1: f32 = 1 - beta1;
  const omb2: f32 = 1 - beta2;
  const ut = search_tables + 8196;
  // the same operations in f32x4 lanes (IEEE per lane: the scalar tail's bits)
  const vgs = f32x4.splat(gs), vb1 = f32x4.splat(beta1), vb2 = f32x4.splat(beta2), v1b1 = f32x4.splat(omb1), v1b2 = f32x4.splat(omb2);
  const vbc1 = f32x4.splat(bc1), vbc2 = f32x4.splat(bc2), veps = f32x4.splat(eps), vwd = f32x4.splat(weight_decay), vlr = f32x4.splat(lr);
  for (let b = b0; b < b1; b++) {
    const i0 = b * BLOCK;
    const i1 = min(n, i0 + BLOCK);
    const am = load<f32>(m_absmax + (<usize>b << 2));
    const av = load<f32>(v_absmax + (<usize>b << 2));
    const vam = f32x4.splat(am), vav = f32x4.splat(av);
    // pass 1: the update from the fresh f32 moments (as bitsandbytes), and the block's new absmax
    let vmaxm = f32x4.splat(0), vmaxv = f32x4.splat(0);
    let i = i0;
    for (; i + 4 <= i1; i += 4) {
      const o = <usize>i << 2;
      const g = f32x4.mul(v128.load(grads + o), vgs);
      const mi = f32x4.add(f32x4.mul(vb1, dequant4(qmap_signed, m_codes + <usize>i, vam)), f32x4.mul(v1b1, g));
      const vi = f32x4.add(f32x4.mul(vb2, dequant4(qmap_unsigned, v_codes + <usize>i, vav)), f32x4.mul(v1b2, f32x4.mul(g, g)));
      vmaxm = f32x4.max(vmaxm, f32x4.abs(mi));
      vmaxv = f32x4.max(vmaxv, vi);
      const p = v128.load(params + o);
      const upd = f32x4.add(f32x4.div(f32x4.div(mi, vbc1), f32x4.add(f32x4.sqrt(f32x4.div(vi, vbc2)), veps)), f32x4.mul(vwd, p));
      v128.store(params + o, f32x4.sub(p, f32x4.mul(vlr, upd)));
    }
    let newAm = max<f32>(max<f32>(f32x4.extract_lane(vmaxm, 0), f32x4.extract_lane(vmaxm, 1)), max<f32>(f32x4.extract_lane(vmaxm, 2), f32x4.extract_lane(vmaxm, 3)));
    let newAv = max<f32>(max<f32>(f32x4.extract_lane(vmaxv, 0), f32x4.extract_lane(vmaxv, 1)), max<f32>(f32x4.extract_lane(vmaxv, 2), f32x4.extract_lane(vmaxv, 3)));
    for (; i < i1; i++) {
      const o = <usize>i << 2;
      const g = load<f32>(grads + o) * gs;
      const mi = beta1 * (mapAt(qmap_signed, <i32>load<u8>(m_codes + <usize>i)) * am) + omb1 * g;
      const vi = beta2 * (mapAt(qmap_unsigned, <i32>load<u8>(v_codes + <usize>i)) * av) + omb2 * (g * g);
      newAm = max<f32>(newAm, Mathf.abs(mi));
      newAv = max<f32>(newAv, vi);
      const p = load<f32>(params + o);
      store<f32>(params + o, p - lr * (mi / bc1 / (Mathf.sqrt(vi / bc2) + eps) + weight_decay * p));
    }
    // pass 2: the same moments again (same operations, same bits), requantised against the new absmax
    const vnm = f32x4.splat(newAm), vnv = f32x4.splat(newAv);
    const zm = newAm > 0, zv = newAv > 0;
    i = i0;
    for (; i + 4 <= i1; i += 4) {
      const g = f32x4.mul(v128.load(grads + (<usize>i << 2)), vgs);
      const mi = f32x4.add(f32x4.mul(vb1, dequant4(qmap_signed, m_codes + <usize>i, vam)), f32x4.mul(v1b1, g));
      const vi = f32x4.add(f32x4.mul(vb2, dequant4(qmap_unsigned, v_codes + <usize>i, vav)), f32x4.mul(v1b2, f32x4.mul(g, g)));
      const xm = zm ? f32x4.div(mi, vnm) : f32x4.splat(0);
      const xv = zv ? f32x4.div(vi, vnv) : f32x4.splat(0);
      const cm = <u32>mCode(qmap_signed, search_tables, f32x4.extract_lane(mi, 0), f32x4.extract_lane(xm, 0))
        | (<u32>mCode(qmap_signed, search_tables, f32x4.extract_lane(mi, 1), f32x4.extract_lane(xm, 1)) << 8)
        | (<u32>mCode(qmap_signed, search_tables, f32x4.extract_lane(mi, 2), f32x4.extract_lane(xm, 2)) << 16)
        | (<u32>mCode(qmap_signed, search_tables, f32x4.extract_lane(mi, 3), f32x4.extract_lane(xm, 3)) << 24);
      const cv = <u32>nearestCode(qmap_unsigned, ut, f32x4.extract_lane(xv, 0))
        | (<u32>nearestCode(qmap_unsigned, ut, f32x4.extract_lane(xv, 1)) << 8)
        | (<u32>nearestCode(qmap_unsigned, ut, f32x4.extract_lane(xv, 2)) << 16)
        | (<u32>nearestCode(qmap_unsigned, ut, f32x4.extract_lane(xv, 3)) << 24);
      store<u32>(m_codes + <usize>i, cm);
      store<u32>(v_codes + <usize>i, cv);
    }
    for (; i < i1; i++) {
      const g = load<f32>(grads + (<usize>i << 2)) * gs;
      const mi = beta1 * (mapAt(qmap_signed, <i32>load<u8>(m_codes + <usize>i)) * am) + omb1 * g;
      const vi = beta2 * (mapAt(qmap_unsigned, <i32>load<u8>(v_codes + <usize>i)) * av) + omb2 * (g * g);
      store<u8>(m_codes + <usize>i, mCode(qmap_signed, search_tables, mi, zm ? mi / newAm : 0));
      store<u8>(v_codes + <usize>i, <u8>nearestCode(qmap_unsigned, ut, zv ? vi / newAv : 0));
    }
    store<f32>(m_absmax + (<usize>b << 2), newAm);
    store<f32>(v_absmax + (<usize>b << 2), newAv);
  }
}
