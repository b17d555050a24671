// Token + position embedding, forward and backward. Byte-offset pointers.
// tokens (B,T) indices stored as f32 values; wte, dwte (V,C); wpe, dwpe (maxT,C) or 0; out, dout (B,T,C).
import { el, vadd } from './vec';

// out[b,t] = wte[tokens[b,t]] + wpe[t]; rows [r0, r1) of the B*T positions
export function embedding_forward(out: usize, tokens: usize, wte: usize, wpe: usize, B: i32, T: i32, C: i32, r0: i32, r1: i32): void {
  for (let r = r0; r < r1; r++) {
    const ix = <i32>load<f32>(tokens + el(r));
    const o = out + el(r * C);
    const e = wte + el(ix * C);
    if (wpe) {
      const p = wpe + el((r % T) * C);
      let i = 0;
      for (; i + 4 <= C; i += 4) v128.store(o + el(i), f32x4.add(v128.load(e + el(i)), v128.load(p + el(i))));
      for (; i < C; i++) store<f32>(o + el(i), load<f32>(e + el(i)) + load<f32>(p + el(i)));
    } else {
      memory.copy(o, e, <usize>C << 2);
    }
  }
}

// in the forward pass: out[b,t] = wte[ix] + wpe[t]; so dwte[ix] += dout[b,t], dwpe[t] += dout[b,t].
// Columns [c0, c1): positions are visited in order, so repeated tokens add up deterministically
// and a column split never races.
export function embedding_backward(dwte: usize, dwpe: usize, dout: usize, tokens: usize, B: i32, T: i32, C: i32, c0: i32, c1: i32): void {
  const n = c1 - c0;
  for (let r = 0; r < B * T; r++) {
    const ix = <i32>load<f32>(tokens + el(r));
    const dy = dout + el(r * C + c0);
    vadd(dwte + el(ix * C + c0), dy, n);
    if (dwpe) vadd(dwpe + el((r % T) * C + c0), dy, n);
  }
}
