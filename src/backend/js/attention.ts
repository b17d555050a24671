// Reference causal self-attention with grouped-query heads, forward and backward.
// q, dq: (B,T,·) rows of qs elements, NH query heads of hs at the start of each row;
// k, v, dk, dv: rows of kvs elements, NKV key/value heads (NH % NKV == 0); query head h reads
// kv head floor(h / (NH/NKV)) (Hugging Face's repeat_kv). out, dout (B,T,NH*hs);
// preatt, att, dpreatt, datt (B,NH,T,T); scores scaled by 1/sqrt(hs).
// The GPT's fused qkv (B,T,3C) is q = qkv, k = qkv + C, v = qkv + 2C, qs = kvs = 3C, NKV = NH.
import type { Floats, Ptr } from '../backend.js';

export function attentionForward(mem: Floats, out: Ptr, preatt: Ptr, att: Ptr, q: Ptr, k: Ptr, v: Ptr, B: number, T: number, NH: number, NKV: number, hs: number, qs: number, kvs: number): void {
  const C = NH * hs;
  const G = NH / NKV;
  const scale = 1 / Math.sqrt(hs);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      for (let h = 0; h < NH; h++) {
        const kvo = Math.floor(h / G) * hs;
        const qt = q + b * T * qs + t * qs + h * hs;
        const pre = preatt + b * NH * T * T + h * T * T + t * T;
        const a = att + b * NH * T * T + h * T * T + t * T;
        // pass 1: scores q.k for t2 <= t, and their max
        let max = -Infinity;
        for (let t2 = 0; t2 <= t; t2++) {
          const kt = k + b * T * kvs + t2 * kvs + kvo;
          let dot = 0;
          for (let i = 0; i < hs; i++) dot += mem[qt + i] * mem[kt + i];
          dot *= scale;
          mem[pre + t2] = dot;
          if (mem[pre + t2] > max) max = mem[pre + t2];
        }
        // pass 2: softmax over t2 <= t; entries above the diagonal are 0
        let expSum = 0;
        for (let t2 = 0; t2 <= t; t2++) {
          const e = Math.exp(mem[pre + t2] - max);
          expSum += e;
          mem[a + t2] = e;
        }
        for (let t2 = 0; t2 < T; t2++) mem[a + t2] = t2 <= t ? mem[a + t2] / expSum : 0;
        // pass 3: out = sum over t2 of att[t2] * v[t2]
        const o = out + b * T * C + t * C + h * hs;
        for (let i = 0; i < hs; i++) {
          let acc = 0;
          for (let t2 = 0; t2 <= t; t2++) acc += mem[a + t2] * mem[v + b * T * kvs + t2 * kvs + kvo + i];
          mem[o + i] = acc;
        }
      }
    }
  }
}

export function attentionBackward(mem: Floats, dq: Ptr, dk: Ptr, dv: Ptr, dpreatt: Ptr, datt: Ptr, dout: Ptr, q: Ptr, k: Ptr, v: Ptr, att: Ptr, B: number, T: number, NH: number, NKV: number, hs: number, qs: number, kvs: number): void {
  const C = NH * hs;
  const G = NH / NKV;
  const scale = 1 / Math.sqrt(hs);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      for (let h = 0; h < NH; h++) {
        const kvo = Math.floor(h / G) * hs;
        const row = b * NH * T * T + h * T * T + t * T;
        const a = att + row;
        const da = datt + row;
        const dpre = dpreatt + row;
        const qt = q + b * T * qs + t * qs + h * hs;
        const dqt = dq + b * T * qs + t * qs + h * hs;
        const dy = dout + b * T * C + t * C + h * hs;
        // in the forward pass: out[i] = sum_t2 att[t2] * v[t2][i]
        for (let t2 = 0; t2 <= t; t2++) {
          const vt = v + b * T * kvs + t2 * kvs + kvo;
          const dvt = dv + b * T * kvs + t2 * kvs + kvo;
          let d = 0;
          for (let i = 0; i < hs; i++) {
            d += mem[vt + i] * mem[dy + i];
            mem[dvt + i] += mem[a + t2] * mem[dy + i];
          }
          mem[da + t2] = d;
        }
        // in the forward pass: att = softmax(preatt); dpre[t3] = sum_t2 att[t2] (1{t2=t3} - att[t3]) datt[t2]
        for (let t3 = 0; t3 <= t; t3++) {
          let d = 0;
          for (let t2 = 0; t2 <= t; t2++) d += mem[a + t2] * ((t2 === t3 ? 1 : 0) - mem[a + t3]) * mem[da + t2];
          mem[dpre + t3] = d;
        }
        // in the forward pass: preatt[t2] = scale * q . k[t2]
        for (let t2 = 0; t2 <= t; t2++) {
          const kt = k + b * T * kvs + t2 * kvs + kvo;
          const dkt = dk + b * T * kvs + t2 * kvs + kvo;
          for (let i = 0; i < hs; i++) {
            mem[dqt + i] += mem[kt + i] * mem[dpre + t2] * scale;
            mem[dkt + i] += mem[qt + i] * mem[dpre + t2] * scale;
          }
        }
      }
    }
  }
}
