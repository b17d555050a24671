// Causal multi-head self-attention, forward and backward (llm.c layout). Byte-offset pointers.
// inp, dinp (B,T,3C) hold q,k,v side by side per token; out, dout (B,T,C);
// preatt, att, dpreatt, datt (B,NH,T,T); head size hs = C/NH; scores scaled by 1/sqrt(hs).
import { el, dot, exps, expv, hsum, vaxpy } from './vec';

// rows [r0, r1) of the (B,NH,T) query rows, row r = (b*NH + h)*T + t; rows never share outputs
export function attention_forward(out: usize, preatt: usize, att: usize, inp: usize, B: i32, T: i32, C: i32, NH: i32, r0: i32, r1: i32): void {
  const C3 = 3 * C;
  const hs = C / NH;
  const scale: f32 = 1 / Mathf.sqrt(<f32>hs);
  for (let r = r0; r < r1; r++) {
    const t = r % T;
    const bh = r / T;
    const h = bh % NH;
    const b = bh / NH;
    const q = inp + el(b * T * C3 + t * C3 + h * hs);
    const pre = preatt + el(r * T);
    const a = att + el(r * T);
    // pass 1: scores q.k for t2 <= t, and their max
    let max: f32 = -Infinity;
    for (let t2 = 0; t2 <= t; t2++) {
      const k = inp + el(b * T * C3 + t2 * C3 + h * hs + C);
      const score = dot(q, k, hs) * scale;
      store<f32>(pre + el(t2), score);
      if (score > max) max = score;
    }
    // pass 2: softmax over t2 <= t (sum in f32 lanes, fixed order); entries above the diagonal are 0
    const n = t + 1;
    const vmax = f32x4.splat(max);
    let acc = f32x4.splat(0);
    let t2 = 0;
    for (; t2 + 4 <= n; t2 += 4) {
      const e = expv(f32x4.sub(v128.load(pre + el(t2)), vmax));
      v128.store(a + el(t2), e);
      acc = f32x4.add(acc, e);
    }
    let sum = hsum(acc);
    for (; t2 < n; t2++) {
      const e = exps(load<f32>(pre + el(t2)) - max);
      store<f32>(a + el(t2), e);
      sum += e;
    }
    const inv: f32 = 1 / sum;
    const vinv = f32x4.splat(inv);
    t2 = 0;
    for (; t2 + 4 <= n; t2 += 4) v128.store(a + el(t2), f32x4.mul(v128.load(a + el(t2)), vinv));
    for (; t2 < n; t2++) store<f32>(a + el(t2), load<f32>(a + el(t2)) * inv);
    for (t2 = n; t2 < T; t2++) store<f32>(a + el(t2), 0);
    // pass 3: out = sum over t2 of att[t2] * v[t2]
    const o = out + el(b * T * C + t * C + h * hs);
    memory.fill(o, 0, <usize>hs << 2);
    for (let t2 = 0; t2 <= t; t2++) {
      vaxpy(o, load<f32>(a + el(t2)), inp + el(b * T * C3 + t2 * C3 + h * hs + 2 * C), hs);
    }
  }
}

// rows [r0, r1) of the (B,NH) heads, row r = b*NH + h: a head's gradients (its slices of dq,
// dk, dv) are written by that head alone, so a split over heads never races.
export function attention_backward(dinp: usize, dpreatt: usize, datt: usize, dout: usize, inp: usize, att: usize, B: i32, T: i32, C: i32, NH: i32, r0: i32, r1: i32): void {
  const C3 = 3 * C;
  const hs = C / NH;
  const scale: f32 = 1 / Mathf.sqrt(<f32>hs);
  for (let r = r0; r < r1; r++) {
    const h = r % NH;
    const b = r / NH;
    for (let t = 0; t < T; t++) {
      const row = (r * T + t) * T;
      const a = att + el(row);
      const da = datt + el(row);
      const dpre = dpreatt + el(row);
      const q = inp + el(b * T * C3 + t * C3 + h * hs);
      const dq = dinp + el(b * T * C3 + t * C3 + h * hs);
      const dy = dout + el(b * T * C + t * C + h * hs);
      // in the forward pass: out = sum_t2 att[t2] * v[t2]; so datt[t2] = v[t2].dout, dv[t2] += att[t2] dout
      let attDotDatt: f32 = 0;
      for (let t2 = 0; t2 <= t; t2++) {
        const v = inp + el(b * T * C3 + t2 * C3 + h * hs + 2 * C);
        const dv = dinp + el(b * T * C3 + t2 * C3 + h * hs + 2 * C);
        const at = load<f32>(a + el(t2));
        const d = dot(v, dy, hs);
        store<f32>(da + el(t2), d);
        attDotDatt += at * d;
        vaxpy(dv, at, dy, hs);
      }
      // in the forward pass: att = softmax(preatt); so dpreatt[t2] = att[t2] (datt[t2] - sum_t3 att[t3] datt[t3])
      // in the forward pass: preatt[t2] = scale q.k[t2]; so dq += scale dpreatt[t2] k[t2], dk[t2] += scale dpreatt[t2] q
      for (let t2 = 0; t2 <= t; t2++) {
        const dp = load<f32>(a + el(t2)) * (load<f32>(da + el(t2)) - attDotDatt);
        store<f32>(dpre + el(t2), dp);
        const k = inp + el(b * T * C3 + t2 * C3 + h * hs + C);
        const dk = dinp + el(b * T * C3 + t2 * C3 + h * hs + C);
        vaxpy(dq, scale * dp, k, hs);
        vaxpy(dk, scale * dp, q, hs);
      }
    }
  }
}
