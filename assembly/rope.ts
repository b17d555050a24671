// Rotary position embedding (RoPE), LLaMA convention (Hugging Face `rotate_half`): inside each
// head of size hs, element i pairs with element i + hs/2 (i < hs/2) and the pair turns by the
// angle t * theta_i, theta_i = theta^(-2i/hs), t the token's position. Byte-offset pointers.
// table (maxT, hs): row t holds cos(t theta_i) for i < hs/2, then sin(t theta_i) for i < hs/2.
// inp, out, dinp, dout: (B,T,·) rows of `stride` floats; the first `heads` heads of hs (even)
// floats of each row rotate, the rest of the row passes through. The GPT's fused qkv (B,T,3C)
// is stride 3C, heads 2*NH (q and k rotate, v passes); a separate q or k tensor (B,T,H*hs) is
// stride H*hs, heads H.
// Every lane and the scalar tail use the same f32 operations (no FMA), so any split gives the same bits.
import { el } from './vec';

// rows [r0, r1) of the table, row t = position t. The angles and their cos/sin are computed in
// f64 with AssemblyScript's Math (implemented in wasm: the same bits in every engine), then
// rounded to f32 once.
export function rope_table(table: usize, hs: i32, theta: f32, r0: i32, r1: i32): void {
  const half = hs >> 1;
  for (let t = r0; t < r1; t++) {
    const cs = table + el(t * hs);
    const sn = cs + el(half);
    for (let i = 0; i < half; i++) {
      const invFreq = Math.pow(<f64>theta, (-2.0 * <f64>i) / <f64>hs);
      const angle = <f64>t * invFreq;
      store<f32>(cs + el(i), <f32>Math.cos(angle));
      store<f32>(sn + el(i), <f32>Math.sin(angle));
    }
  }
}

// The table of a scaled RoPE (Hugging Face `rope_scaling`), same layout as rope_table: the
// inverse frequency inv_i = theta^(-2i/hs) is first rescaled, kind 1 "linear": inv_i / factor;
// kind 2 "llama3" (Llama 3.1+): with wavelength wl = 2 pi / inv_i, inv_i / factor where
// wl > oldContext / lowFreqFactor, inv_i where wl < oldContext / highFreqFactor, and between them
// (1 - s) inv_i / factor + s inv_i with s = (oldContext / wl - lowFreqFactor) / (highFreqFactor - lowFreqFactor).
// All in f64 with AssemblyScript's Math, rounded to f32 once.
export function rope_table_scaled(table: usize, hs: i32, theta: f32, kind: i32, factor: f64, lowFreqFactor: f64, highFreqFactor: f64, oldContext: f64, r0: i32, r1: i32): void {
  const half = hs >> 1;
  const lowWavelen = oldContext / lowFreqFactor;
  const highWavelen = oldContext / highFreqFactor;
  for (let t = r0; t < r1; t++) {
    const cs = table + el(t * hs);
    const sn = cs + el(half);
    for (let i = 0; i < half; i++) {
      let inv = Math.pow(<f64>theta, (-2.0 * <f64>i) / <f64>hs);
      if (kind == 1) inv = inv / factor;
      else if (kind == 2) {
        const wl = (2.0 * Math.PI) / inv;
        if (wl > lowWavelen) inv = inv / factor;
        else if (!(wl < highWavelen)) {
          const smooth = (oldContext / wl - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
          inv = (1.0 - smooth) * inv / factor + smooth * inv;
        }
      }
      const angle = <f64>t * inv;
      store<f32>(cs + el(i), <f32>Math.cos(angle));
      store<f32>(sn + el(i), <f32>Math.sin(angle));
    }
  }
}

// y1 = x1 c - x2 s, y2 = x2 c + x1 s for the `half` pairs (x1[i], x2[i] = x1[i + half]) of one
// head; with sign = -1 the inverse rotation (s -> -s). y may equal x: a pair is read before it
// is written and pairs never overlap.
// @ts-ignore: decorator
@inline function rotateHead(y: usize, x: usize, cs: usize, sn: usize, half: i32, negate: bool): void {
  const x2o = el(half);
  let i = 0;
  for (; i + 4 <= half; i += 4) {
    const c = v128.load(cs + el(i));
    const s0 = v128.load(sn + el(i));
    const s = negate ? f32x4.neg(s0) : s0;
    const x1 = v128.load(x + el(i));
    const x2 = v128.load(x + x2o + el(i));
    v128.store(y + el(i), f32x4.sub(f32x4.mul(x1, c), f32x4.mul(x2, s)));
    v128.store(y + x2o + el(i), f32x4.add(f32x4.mul(x2, c), f32x4.mul(x1, s)));
  }
  for (; i < half; i++) {
    const c = load<f32>(cs + el(i));
    const s0 = load<f32>(sn + el(i));
    const s: f32 = negate ? -s0 : s0;
    const x1 = load<f32>(x + el(i));
    const x2 = load<f32>(x + x2o + el(i));
    store<f32>(y + el(i), x1 * c - x2 * s);
    store<f32>(y + x2o + el(i), x2 * c + x1 * s);
  }
}

// out = rope(inp): the rotated heads of token (b, t) turned by row t of the table, the rest copied.
// rows [r0, r1) of the (B,T) tokens, row r = b*T + t writes only its own row of out.
// out may equal inp (in place); otherwise they must not overlap.
export function rope_forward(out: usize, inp: usize, table: usize, B: i32, T: i32, stride: i32, heads: i32, hs: i32, r0: i32, r1: i32): void {
  const half = hs >> 1;
  const rot = heads * hs;
  for (let r = r0; r < r1; r++) {
    const t = r % T;
    const cs = table + el(t * hs);
    const sn = cs + el(half);
    const x = inp + el(r * stride);
    const y = out + el(r * stride);
    for (let h = 0; h < heads; h++) rotateHead(y + el(h * hs), x + el(h * hs), cs, sn, half, false);
    if (y != x && rot < stride) memory.copy(y + el(rot), x + el(rot), <usize>(stride - rot) << 2);
  }
}

// in the forward pass: y1 = x1 c - x2 s, y2 = x2 c + x1 s (a rotation by +angle), the rest copied;
// so dx1 += dy1 c + dy2 s, dx2 += dy2 c - dy1 s (the transpose: a rotation by -angle), dx += dy elsewhere.
// rows [r0, r1) of the (B,T) tokens, row r writes only its own row of dinp.
// dinp must not overlap dout.
export function rope_backward(dinp: usize, dout: usize, table: usize, B: i32, T: i32, stride: i32, heads: i32, hs: i32, r0: i32, r1: i32): void {
  const half = hs >> 1;
  const rot = heads * hs;
  const x2o = el(half);
  for (let r = r0; r < r1; r++) {
    const t = r % T;
    const cs = table + el(t * hs);
    const sn = cs + el(half);
    const dy = dout + el(r * stride);
    const dx = dinp + el(r * stride);
    for (let h = 0; h < heads; h++) {
      const g = dy + el(h * hs);
      const d = dx + el(h * hs);
      let i = 0;
      for (; i + 4 <= half; i += 4) {
        const c = v128.load(cs + el(i));
        const s = v128.load(sn + el(i));
        const g1 = v128.load(g + el(i));
        const g2 = v128.load(g + x2o + el(i));
        v128.store(d + el(i), f32x4.add(v128.load(d + el(i)), f32x4.add(f32x4.mul(g1, c), f32x4.mul(g2, s))));
        v128.store(d + x2o + el(i), f32x4.add(v128.load(d + x2o + el(i)), f32x4.sub(f32x4.mul(g2, c), f32x4.mul(g1, s))));
      }
      for (; i < half; i++) {
        const c = load<f32>(cs + el(i));
        const s = load<f32>(sn + el(i));
        const g1 = load<f32>(g + el(i));
        const g2 = load<f32>(g + x2o + el(i));
        store<f32>(d + el(i), load<f32>(d + el(i)) + (g1 * c + g2 * s));
        store<f32>(d + x2o + el(i), load<f32>(d + x2o + el(i)) + (g2 * c - g1 * s));
      }
    }
    // the pass-through part: dinp += dout
    const n = stride - rot;
    const dp = dx + el(rot);
    const gp = dy + el(rot);
    let i = 0;
    for (; i + 4 <= n; i += 4) v128.store(dp + el(i), f32x4.add(v128.load(dp + el(i)), v128.load(gp + el(i))));
    for (; i < n; i++) store<f32>(dp + el(i), load<f32>(dp + el(i)) + load<f32>(gp + el(i)));
  }
}
