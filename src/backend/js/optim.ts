// Reference AdamW step and global-norm clipping factor.
// params, grads, m, v are (n) flat arrays of the same layout.
import type { AdamWParams, Floats, Ptr } from '../backend.js';

export function adamwStep(mem: Floats, params: Ptr, grads: Ptr, m: Ptr, v: Ptr, n: number, hp: AdamWParams, gradScale: Ptr): void {
  const { lr, beta1, beta2, eps, weightDecay, step } = hp;
  const gs = gradScale ? mem[gradScale] : 1;
  const bc1 = 1 - Math.pow(beta1, step);
  const bc2 = 1 - Math.pow(beta2, step);
  for (let i = 0; i < n; i++) {
    const g = mem[grads + i] * gs;
    const mi = beta1 * mem[m + i] + (1 - beta1) * g;
    const vi = beta2 * mem[v + i] + (1 - beta2) * g * g;
    mem[m + i] = mi;
    mem[v + i] = vi;
    const mHat = mi / bc1;
    const vHat = vi / bc2;
    // decoupled weight decay: the decay term does not pass through the moments
    mem[params + i] -= lr * (mHat / (Math.sqrt(vHat) + eps) + weightDecay * mem[params + i]);
  }
}

// out[0] = min(1, maxNorm / (sqrt(sumsq[0]) + 1e-6))
export function clipScale(mem: Floats, out: Ptr, sumsq: Ptr, maxNorm: number): void {
  mem[out] = Math.min(1, maxNorm / (Math.sqrt(mem[sumsq]) + 1e-6));
}
