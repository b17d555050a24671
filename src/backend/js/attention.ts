// Reference causal multi-head self-attention, forward and backward (llm.c layout).
// inp, dinp (B,T,3C) hold q,k,v side by side per token; out, dout (B,T,C);
// preatt, att, dpreatt, datt (B,NH,T,T); head size hs = C/NH; scores scaled by 1/sqrt(hs).
import type { Floats, Ptr } from '../backend.js';

export function attentionForward(mem: Floats, out: Ptr, preatt: Ptr, att: Ptr, inp: Ptr, B: number, T: number, C: number, NH: number): void {
  const C3 = 3 * C;
  const hs = C / NH;
  const scale = 1 / Math.sqrt(hs);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      for (let h = 0; h < NH; h++) {
        const q = inp + b * T * C3 + t * C3 + h * hs;
        const pre = preatt + b * NH * T * T + h * T * T + t * T;
        const a = att + b * NH * T * T + h * T * T + t * T;
        // pass 1: scores q.k for t2 <= t, and their max
        let max = -Infinity;
        for (let t2 = 0; t2 <= t; t2++) {
          const k = inp + b * T * C3 + t2 * C3 + h * hs + C;
          let dot = 0;
          for (let i = 0; i < hs; i++) dot += mem[q + i] * mem[k + i];
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
          for (let t2 = 0; t2 <= t; t2++) acc += mem[a + t2] * mem[inp + b * T * C3 + t2 * C3 + h * hs + 2 * C + i];
          mem[o + i] = acc;
        }
      }
    }
  }
}

export function attentionBackward(mem: Floats, dinp: Ptr, dpreatt: Ptr, datt: Ptr, dout: Ptr, inp: Ptr, att: Ptr, B: number, T: number, C: number, NH: number): void {
  const C3 = 3 * C;
  const hs = C / NH;
  const scale = 1 / Math.sqrt(hs);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      for (let h = 0; h < NH; h++) {
        const row = b * NH * T * T + h * T * T + t * T;
        const a = att + row;
        const da = datt + row;
        const dpre = dpreatt + row;
        const q = inp + b * T * C3 + t * C3 + h * hs;
        const dq = dinp + b * T * C3 + t * C3 + h * hs;
        const dy = dout + b * T * C + t * C + h * hs;
        // in the forward pass: out[i] = sum_t2 att[t2] * v[t2][i]
        for (let t2 = 0; t2 <= t; t2++) {
          const v = inp + b * T * C3 + t2 * C3 + h * hs + 2 * C;
          const dv = dinp + b * T * C3 + t2 * C3 + h * hs + 2 * C;
          let d = 0;
          for (let i = 0; i < hs; i++) {
            d += mem[v + i] * mem[dy + i];
            mem[dv + i] += mem[a + t2] * mem[dy + i];
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
          const k = inp + b * T * C3 + t2 * C3 + h * hs + C;
          const dk = dinp + b * T * C3 + t2 * C3 + h * hs + C;
          for (let i = 0; i < hs; i++) {
            mem[dq + i] += mem[k + i] * mem[dpre + t2] * scale;
            mem[dk + i] += mem[q + i] * mem[dpre + t2] * scale;
          }
        }
      }
    }
  }
}
