// Reference token + position embedding, forward and backward.
// tokens (B,T) indices; wte, dwte (V,C); wpe, dwpe (maxT,C) or 0 (absent); out, dout (B,T,C).
import type { Floats, Ptr } from '../backend.js';

export function embeddingForward(mem: Floats, out: Ptr, tokens: Ptr, wte: Ptr, wpe: Ptr, B: number, T: number, C: number): void {
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      const ix = mem[tokens + b * T + t];
      const o = out + (b * T + t) * C;
      for (let i = 0; i < C; i++) mem[o + i] = mem[wte + ix * C + i] + (wpe ? mem[wpe + t * C + i] : 0);
    }
  }
}

// in the forward pass: out[b,t] = wte[ix] + wpe[t]; so the gradient scatters back to both rows
export function embeddingBackward(mem: Floats, dwte: Ptr, dwpe: Ptr, dout: Ptr, tokens: Ptr, B: number, T: number, C: number): void {
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      const ix = mem[tokens + b * T + t];
      const dy = dout + (b * T + t) * C;
      for (let i = 0; i < C; i++) {
        mem[dwte + ix * C + i] += mem[dy + i];
        if (dwpe) mem[dwpe + t * C + i] += mem[dy + i];
      }
    }
  }
}
