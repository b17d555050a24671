// 8-bit blockwise AdamW (bitsandbytes' blockwise 8-bit Adam, with this library's AdamW formula;
// js twin: src/backend/js/adamw8bit.ts, which gives the same bits). m and v are stored as 8-bit
// codes into two 256-entry dynamic maps (signed for m, unsigned for v: src/quant/dynamic-map.ts)
// with one f32 absmax per block of 256 elements: m = qmap_signed[code] * m_absmax[block].
//
// params, grads (n) f32; m_codes, v_codes (n) bytes; m_absmax, v_absmax (ceil(n/256)) f32;
// qmap_signed, qmap_unsigned (256) f32, sorted ascending. Blocks [b0, b1); the last block of n may
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

// The index of the map entry nearest to x (ties to the lower index): a branch-free binary search
// for the last entry <= x (entry 0 when x is below it), then the nearer of it and the next.
@inline function nearestCode(map: usize, x: f32): i32 {
  let lo: i32 = 0;
  for (let s: i32 = 128; s > 0; s >>= 1) lo += select<i32>(s, 0, mapAt(map, lo + s) <= x);
  if (lo < 255 && Mathf.abs(mapAt(map, lo + 1) - x) < Mathf.abs(x - mapAt(map, lo))) lo++;
  return lo;
}

// Per block, as bitsandbytes' optimizer_update_8bit_blockwise:
//   m = qmap_signed[m_code] * m_absmax;  v = qmap_unsigned[v_code] * v_absmax      (dequantise)
//   g = grads * gradScale[0] (when grad_scale != 0);  m' = b1 m + (1-b1) g;  v' = b2 v + (1-b2) g^2
//   p -= lr (m'/bc1 / (sqrt(v'/bc2) + eps) + wd p)      (the f32 moments, before requantising)
//   m_absmax = max |m'|, v_absmax = max v' over the block;  codes = nearest(m'/m_absmax), nearest(v'/v_absmax)
// and a non-zero m' never gets a code of the other sign or zero (it moves one code towards its sign).
// The second pass recomputes m', v' from the old codes (the same operations, the same bits) instead
// of keeping 2x256 floats: kernels have no scratch of their own.
export function adamw8bit_step(params: usize, grads: usize, m_codes: usize, v_codes: usize, m_absmax: usize, v_absmax: usize,
                               qmap_signed: usize, qmap_unsigned: usize, lr: f32, beta1: f32, beta2: f32, eps: f32,
                               weight_decay: f32, step: i32, grad_scale: usize, n: i32, b0: i32, b1: i32): void {
  const gs: f32 = grad_scale ? load<f32>(grad_scale) : 1;
  const bc1 = <f32>(1 - powi(<f64>beta1, step));
  const bc2 = <f32>(1 - powi(<f64>beta2, step));
  const omb1: f32 = 1 - beta1;
  const omb2: f32 = 1 - beta2;
  for (let b = b0; b < b1; b++) {
    const i0 = b * BLOCK;
    const i1 = min(n, i0 + BLOCK);
    const am = load<f32>(m_absmax + (<usize>b << 2));
    const av = load<f32>(v_absmax + (<usize>b << 2));
    let newAm: f32 = 0;
    let newAv: f32 = 0;
    for (let i = i0; i < i1; i++) {
      const o = <usize>i << 2;
      const g = load<f32>(grads + o) * gs;
      const mi = beta1 * (mapAt(qmap_signed, <i32>load<u8>(m_codes + <usize>i)) * am) + omb1 * g;
      const vi = beta2 * (mapAt(qmap_unsigned, <i32>load<u8>(v_codes + <usize>i)) * av) + omb2 * (g * g);
      newAm = max<f32>(newAm, Mathf.abs(mi));
      newAv = max<f32>(newAv, vi);
      const p = load<f32>(params + o);
      store<f32>(params + o, p - lr * (mi / bc1 / (Mathf.sqrt(vi / bc2) + eps) + weight_decay * p));
    }
    for (let i = i0; i < i1; i++) {
      const g = load<f32>(grads + (<usize>i << 2)) * gs;
      const mi = beta1 * (mapAt(qmap_signed, <i32>load<u8>(m_codes + <usize>i)) * am) + omb1 * g;
      const vi = beta2 * (mapAt(qmap_unsigned, <i32>load<u8>(v_codes + <usize>i)) * av) + omb2 * (g * g);
      let cm = nearestCode(qmap_signed, newAm > 0 ? mi / newAm : 0);
      const qm = mapAt(qmap_signed, cm);
      if (mi > 0 && qm <= 0) cm++;
      else if (mi < 0 && qm >= 0) cm--;
      store<u8>(m_codes + <usize>i, <u8>cm);
      store<u8>(v_codes + <usize>i, <u8>nearestCode(qmap_unsigned, newAv > 0 ? vi / newAv : 0));
    }
    store<f32>(m_absmax + (<usize>b << 2), newAm);
    store<f32>(v_absmax + (<usize>b << 2), newAv);
  }
}
