// Reference rotary position embedding (RoPE), LLaMA convention (Hugging Face `rotate_half`):
// inside each head of size hs, element i pairs with i + hs/2 and the pair turns by t·θ_i,
// θ_i = theta^(-2i/hs). table (maxT, hs): row t = cos(t θ_i) for i < hs/2, then sin(t θ_i).
// inp, out, dinp, dout (B,T,3C): q, k, v per token; q and k (2·NH heads) rotate, v passes.
import type { Floats, Ptr } from '../backend.js';

export function ropeTable(mem: Floats, table: Ptr, T: number, hs: number, theta: number): void {
  const half = hs / 2;
  for (let t = 0; t < T; t++) {
    const cs = table + t * hs;
    for (let i = 0; i < half; i++) {
      const angle = t * Math.pow(theta, (-2 * i) / hs);
      mem[cs + i] = Math.cos(angle);
      mem[cs + half + i] = Math.sin(angle);
    }
  }
}

// out may equal inp (in place): each pair is read before it is written
export function ropeForward(mem: Floats, out: Ptr, inp: Ptr, table: Ptr, B: number, T: number, C: number, NH: number): void {
  const C3 = 3 * C;
  const hs = C / NH;
  const half = hs / 2;
  for (let r = 0; r < B * T; r++) {
    const cs = table + (r % T) * hs;
    for (let h = 0; h < 2 * NH; h++) {
      const x = inp + r * C3 + h * hs;
      const y = out + r * C3 + h * hs;
      for (let i = 0; i < half; i++) {
        const c = mem[cs + i];
        const s = mem[cs + half + i];
        const x1 = mem[x + i];
        const x2 = mem[x + half + i];
        mem[y + i] = x1 * c - x2 * s;
        mem[y + half + i] = x2 * c + x1 * s;
      }
    }
    for (let i = 2 * C; i < C3; i++) mem[out + r * C3 + i] = mem[inp + r * C3 + i];
  }
}

// in the forward pass: y1 = x1 c - x2 s, y2 = x2 c + x1 s, v copied;
// so dx1 += dy1 c + dy2 s, dx2 += dy2 c - dy1 s (rotation by -angle), dv += dy_v
export function ropeBackward(mem: Floats, dinp: Ptr, dout: Ptr, table: Ptr, B: number, T: number, C: number, NH: number): void {
  const C3 = 3 * C;
  const hs = C / NH;
  const half = hs / 2;
  for (let r = 0; r < B * T; r++) {
    const cs = table + (r % T) * hs;
    for (let h = 0; h < 2 * NH; h++) {
      const g = dout + r * C3 + h * hs;
      const d = dinp + r * C3 + h * hs;
      for (let i = 0; i < half; i++) {
        const c = mem[cs + i];
        const s = mem[cs + half + i];
        const g1 = mem[g + i];
        const g2 = mem[g + half + i];
        mem[d + i] += g1 * c + g2 * s;
        mem[d + half + i] += g2 * c - g1 * s;
      }
    }
    for (let i = 2 * C; i < C3; i++) mem[dinp + r * C3 + i] += mem[dout + r * C3 + i];
  }
}
