// Reference elementwise kernels, reductions and bias over a flat memory `mem` addressed by
// element offsets. Plain loops: this is the test oracle, written to be obviously correct.
import type { Floats, Ptr } from '../backend.js';

/** Reductions sum fixed chunks of this many elements, then the chunk sums in order. */
export const SUM_CHUNK = 4096;

// out, a, b are (n)
export function add(mem: Floats, out: Ptr, a: Ptr, b: Ptr, n: number): void {
  for (let i = 0; i < n; i++) mem[out + i] = mem[a + i] + mem[b + i];
}

export function mul(mem: Floats, out: Ptr, a: Ptr, b: Ptr, n: number): void {
  for (let i = 0; i < n; i++) mem[out + i] = mem[a + i] * mem[b + i];
}

export function scale(mem: Floats, out: Ptr, a: Ptr, s: number, n: number): void {
  for (let i = 0; i < n; i++) mem[out + i] = s * mem[a + i];
}

// the backward of `out = alpha * x` (and of residual adds, alpha = 1): y += alpha * x
export function axpy(mem: Floats, y: Ptr, alpha: number, x: Ptr, n: number): void {
  for (let i = 0; i < n; i++) mem[y + i] += alpha * mem[x + i];
}

// the backward of `out = a * b`: da += b * dout, db += a * dout
export function mulAccumulate(mem: Floats, y: Ptr, a: Ptr, b: Ptr, n: number): void {
  for (let i = 0; i < n; i++) mem[y + i] += mem[a + i] * mem[b + i];
}

// out[0] = sum of x (n), chunk by chunk in order
export function sum(mem: Floats, out: Ptr, x: Ptr, n: number): void {
  let total = 0;
  for (let c0 = 0; c0 < n; c0 += SUM_CHUNK) {
    let chunk = 0;
    for (let i = c0; i < Math.min(n, c0 + SUM_CHUNK); i++) chunk += mem[x + i];
    total += chunk;
  }
  mem[out] = total;
}

export function sumSquares(mem: Floats, out: Ptr, x: Ptr, n: number): void {
  let total = 0;
  for (let c0 = 0; c0 < n; c0 += SUM_CHUNK) {
    let chunk = 0;
    for (let i = c0; i < Math.min(n, c0 + SUM_CHUNK); i++) chunk += mem[x + i] * mem[x + i];
    total += chunk;
  }
  mem[out] = total;
}

// out (N,C) += bias (C)
export function addBias(mem: Floats, out: Ptr, bias: Ptr, N: number, C: number): void {
  for (let n = 0; n < N; n++) {
    for (let c = 0; c < C; c++) mem[out + n * C + c] += mem[bias + c];
  }
}

// in the forward pass this was: out[n,c] += bias[c]; so dbias[c] += sum over n of dout[n,c]
export function biasBackward(mem: Floats, dbias: Ptr, dout: Ptr, N: number, C: number): void {
  for (let n = 0; n < N; n++) {
    for (let c = 0; c < C; c++) mem[dbias + c] += mem[dout + n * C + c];
  }
}
