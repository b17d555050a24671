// Reference GELU (tanh approximation), SiLU and squared ReLU, forward and backward; all arrays are (n).
import type { Floats, Ptr } from '../backend.js';

const GELU_SCALE = Math.sqrt(2 / Math.PI);

export function geluForward(mem: Floats, out: Ptr, inp: Ptr, n: number): void {
  for (let i = 0; i < n; i++) {
    const x = mem[inp + i];
    mem[out + i] = 0.5 * x * (1 + Math.tanh(GELU_SCALE * (x + 0.044715 * x * x * x)));
  }
}

// in the forward pass: out = 0.5 x (1 + tanh(u)), u = s (x + 0.044715 x^3); tanh' = 1 - tanh^2
export function geluBackward(mem: Floats, dinp: Ptr, inp: Ptr, dout: Ptr, n: number): void {
  for (let i = 0; i < n; i++) {
    const x = mem[inp + i];
    const th = Math.tanh(GELU_SCALE * (x + 0.044715 * x * x * x));
    const grad = 0.5 * (1 + th) + 0.5 * x * (1 - th * th) * GELU_SCALE * (1 + 3 * 0.044715 * x * x);
    mem[dinp + i] += grad * mem[dout + i];
  }
}

export function siluForward(mem: Floats, out: Ptr, inp: Ptr, n: number): void {
  for (let i = 0; i < n; i++) {
    const x = mem[inp + i];
    mem[out + i] = x / (1 + Math.exp(-x));
  }
}

// in the forward pass: out = x * sig(x); sig' = sig (1 - sig)
export function siluBackward(mem: Floats, dinp: Ptr, inp: Ptr, dout: Ptr, n: number): void {
  for (let i = 0; i < n; i++) {
    const x = mem[inp + i];
    const sig = 1 / (1 + Math.exp(-x));
    mem[dinp + i] += sig * (1 + x * (1 - sig)) * mem[dout + i];
  }
}

// squared ReLU: out = max(x, 0)^2 (Math.max keeps NaN, as wasm's max does)
export function relu2Forward(mem: Floats, out: Ptr, inp: Ptr, n: number): void {
  for (let i = 0; i < n; i++) {
    const r = Math.max(mem[inp + i], 0);
    mem[out + i] = r * r;
  }
}

// in the forward pass: out = r^2, r = max(x, 0); so dinp += 2 r dout
export function relu2Backward(mem: Floats, dinp: Ptr, inp: Ptr, dout: Ptr, n: number): void {
  for (let i = 0; i < n; i++) {
    const r = Math.max(mem[inp + i], 0);
    mem[dinp + i] += 2 * r * mem[dout + i];
  }
}
