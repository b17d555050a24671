// Reference rotary position embedding (RoPE), LLaMA convention (Hugging Face `rotate_half`):
// inside each head of size hs, element i pairs with i + hs/2 and the pair turns by t·θ_i,
// θ_i = theta^(-2i/hs). table (maxT, hs): row t = cos(t θ_i) for i < hs/2, then sin(t θ_i).
// inp, out, dinp, dout: (B,T,·) rows of `stride` elements; the first `heads` heads of hs rotate,
// the rest of the row passes (the GPT's fused qkv: stride 3C, heads 2·NH; a q or k tensor: stride H·hs).
import type { Floats, Ptr, RopeScaling } from '../backend.js';

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

// the scaled table (see Backend.ropeTableScaled): inverse frequencies rescaled, then as ropeTable
export function ropeTableScaled(mem: Floats, table: Ptr, T: number, hs: number, theta: number, scaling: RopeScaling): void {
  const half = hs / 2;
  const inv = Array.from({ length: half }, (_, i) => {
    const f = Math.pow(theta, (-2 * i) / hs);
    if (scaling.kind === 'linear') return f / scaling.factor;
    const { factor, lowFreqFactor: lo, highFreqFactor: hi, originalMaxPositions: old } = scaling;
    const wl = (2 * Math.PI) / f;
    if (wl > old / lo) return f / factor;
    if (wl < old / hi) return f;
    const smooth = (old / wl - lo) / (hi - lo);
    return ((1 - smooth) * f) / factor + smooth * f;
  });
  for (let t = 0; t < T; t++) {
    const cs = table + t * hs;
    for (let i = 0; i < half; i++) {
      mem[cs + i] = Math.cos(t * inv[i]!);
      mem[cs + half + i] = Math.sin(t * inv[i]!);
    }
  }
}

// out may equal inp (in place): each pair is read before it is written
export function ropeForward(mem: Floats, out: Ptr, inp: Ptr, table: Ptr, B: number, T: number, stride: number, heads: number, hs: number): void {
  const half = hs / 2;
  for (let r = 0; r < B * T; r++) {
    const cs = table + (r % T) * hs;
    for (let h = 0; h < heads; h++) {
      const x = inp + r * stride + h * hs;
      const y = out + r * stride + h * hs;
      for (let i = 0; i < half; i++) {
        const c = mem[cs + i];
        const s = mem[cs + half + i];
        const x1 = mem[x + i];
        const x2 = mem[x + half + i];
        mem[y + i] = x1 * c - x2 * s;
        mem[y + half + i] = x2 * c + x1 * s;
      }
    }
    for (let i = heads * hs; i < stride; i++) mem[out + r * stride + i] = mem[inp + r * stride + i];
  }
}

// in the forward pass: y1 = x1 c - x2 s, y2 = x2 c + x1 s, the rest copied;
// so dx1 += dy1 c + dy2 s, dx2 += dy2 c - dy1 s (rotation by -angle), dx += dy elsewhere
export function ropeBackward(mem: Floats, dinp: Ptr, dout: Ptr, table: Ptr, B: number, T: number, stride: number, heads: number, hs: number): void {
  const half = hs / 2;
  for (let r = 0; r < B * T; r++) {
    const cs = table + (r % T) * hs;
    for (let h = 0; h < heads; h++) {
      const g = dout + r * stride + h * hs;
      const d = dinp + r * stride + h * hs;
      for (let i = 0; i < half; i++) {
        const c = mem[cs + i];
        const s = mem[cs + half + i];
        const g1 = mem[g + i];
        const g2 = mem[g + half + i];
        mem[d + i] += g1 * c + g2 * s;
        mem[d + half + i] += g2 * c - g1 * s;
      }
    }
    for (let i = heads * hs; i < stride; i++) mem[dinp + r * stride + i] += mem[dout + r * stride + i];
  }
}
