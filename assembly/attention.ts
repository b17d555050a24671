// Causal self-attention with grouped-query heads, forward and backward. Byte-offset pointers.
// q, dq: (B,T,·) rows of qs floats, NH query heads of hs side by side at the start of each row;
// k, v, dk, dv: rows of kvs floats, NKV key/value heads of hs (NH % NKV == 0). Query head h
// reads kv head h / (NH/NKV) (Hugging Face's repeat_kv). out, dout (B,T,NH*hs);
// preatt, att, dpreatt, datt (B,NH,T,T); scores scaled by 1/sqrt(hs).
// The GPT's fused qkv (B,T,3C) is the case q = qkv, k = qkv + C, v = qkv + 2C, qs = kvs = 3C,
// NKV = NH (llm.c layout); separate q (B,T,NH*hs), k, v (B,T,NKV*hs) tensors have qs = NH*hs,
// kvs = NKV*hs.
import { el, dot, exps, expv, hsum, vaxpy } from './vec';

// rows [r0, r1) of the (B,NH,T) query rows, row r = (b*NH + h)*T + t; rows never share outputs
export function attention_forward(out: usize, preatt: usize, att: usize, q: usize, k: usize, v: usize, B: i32, T: i32, NH: i32, NKV: i32, hs: i32, qs: i32, kvs: i32, r0: i32, r1: i32): void {
  const C = NH * hs;
  const G = NH / NKV;
  const scale: f32 = 1 / Mathf.sqrt(<f32>hs);
  for (let r = r0; r < r1; r++) {
    const t = r % T;
    const bh = r / T;
    const h = bh % NH;
    const b = bh / NH;
    const kvo = (h / G) * hs;
    const qt = q + el(b * T * qs + t * qs + h * hs);
    const pre = preatt + el(r * T);
    const a = att + el(r * T);
    // pass 1: scores q.k for t2 <= t, and their max
    let max: f32 = -Infinity;
    for (let t2 = 0; t2 <= t; t2++) {
      const kt = k + el(b * T * kvs + t2 * kvs + kvo);
      const score = dot(qt, kt, hs) * scale;
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
      vaxpy(o, load<f32>(a + el(t2)), v + el(b * T * kvs + t2 * kvs + kvo), hs);
    }
  }
}

// rows [r0, r1) of the (B,NKV) kv groups, row r = b*NKV + g: the group's query heads
// h = g*G .. g*G + G-1 run one after another, so dk, dv of kv head g (which all of them feed)
// and dq of those heads are written by this row alone, in a fixed order: a split over groups
// never races and gives the same bits. With NKV = NH a group is one head (llm.c's split).
export function attention_backward(dq: usize, dk: usize, dv: usize, dpreatt: usize, datt: usize, dout: usize, q: usize, k: usize, v: usize, att: usize, B: i32, T: i32, NH: i32, NKV: i32, hs: i32, qs: i32, kvs: i32, r0: i32, r1: i32): void {
  const C = NH * hs;
  const G = NH / NKV;
  const scale: f32 = 1 / Mathf.sqrt(<f32>hs);
  for (let r = r0; r < r1; r++) {
    const g = r % NKV;
    const b = r / NKV;
    const kvo = g * hs;
    for (let h = g * G; h < g * G + G; h++) {
      for (let t = 0; t < T; t++) {
        const row = ((b * NH + h) * T + t) * T;
        const a = att + el(row);
        const da = datt + el(row);
        const dpre = dpreatt + el(row);
        const qt = q + el(b * T * qs + t * qs + h * hs);
        const dqt = dq + el(b * T * qs + t * qs + h * hs);
        const dy = dout + el(b * T * C + t * C + h * hs);
        // in the forward pass: out = sum_t2 att[t2] * v[t2]; so datt[t2] = v[t2].dout, dv[t2] += att[t2] dout
        let attDotDatt: f32 = 0;
        for (let t2 = 0; t2 <= t; t2++) {
          const vt = v + el(b * T * kvs + t2 * kvs + kvo);
          const dvt = dv + el(b * T * kvs + t2 * kvs + kvo);
          const at = load<f32>(a + el(t2));
          const d = dot(vt, dy, hs);
          store<f32>(da + el(t2), d);
          attDotDatt += at * d;
          vaxpy(dvt, at, dy, hs);
        }
        // in the forward pass: att = softmax(preatt); so dpreatt[t2] = att[t2] (datt[t2] - sum_t3 att[t3] datt[t3])
        // in the forward pass: preatt[t2] = scale q.k[t2]; so dq += scale dpreatt[t2] k[t2], dk[t2] += scale dpreatt[t2] q
        for (let t2 = 0; t2 <= t; t2++) {
          const dp = load<f32>(a + el(t2)) * (load<f32>(da + el(t2)) - attDotDatt);
          store<f32>(dpre + el(t2), dp);
          const kt = k + el(b * T * kvs + t2 * kvs + kvo);
          const dkt = dk + el(b * T * kvs + t2 * kvs + kvo);
          vaxpy(dqt, scale * dp, kt, hs);
          vaxpy(dkt, scale * dp, qt, hs);
        }
      }
    }
  }
}
