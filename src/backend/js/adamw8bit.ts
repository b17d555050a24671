// Reference 8-bit blockwise AdamW step (the wasm kernel: assembly/adam8bit.ts) and the nearest-code
// search of the dynamic maps. Every operation is rounded to f32 (Math.fround), as the wasm kernel
// computes, so codes, absmax and weights are its bits on either dtype of the js backend.
// params, grads (n); mCodes, vCodes (n) one code a slot; mAbsmax, vAbsmax (ceil(n/256)); maps (256).
import type { AdamW8bitBuffers, AdamWParams, Floats, Ptr } from '../backend.js';

const f = Math.fround;

/** Elements per absmax block of the 8-bit state (bitsandbytes' blockwise optimizers: 256). */
export const ADAMW8BIT_BLOCK = 256;

/** `beta^step` by squaring in f64: only multiplications, so the same bits as the wasm kernel's. */
export function powi(beta: number, step: number): number {
  let r = 1;
  let x = beta;
  for (let k = step; k > 0; k >>= 1) {
    if (k & 1) r *= x;
    x *= x;
  }
  return r;
}

/**
 * Index of the entry of a sorted 256-entry map nearest to x (ties to the lower index): the last
 * entry <= x by binary search (entry 0 below the map), then the nearer of it and the next.
 * `at(i)` reads entry i.
 */
export function nearestCode(at: (i: number) => number, x: number): number {
  let lo = 0;
  for (let s = 128; s > 0; s >>= 1) if (at(lo + s) <= x) lo += s;
  if (lo < 255 && Math.abs(f(at(lo + 1) - x)) < Math.abs(f(x - at(lo)))) lo++;
  return lo;
}

/** A non-zero first moment keeps its sign: a code of the other sign or zero moves one step towards it. */
export function keepSign(at: (i: number) => number, code: number, m: number): number {
  const q = at(code);
  if (m > 0 && q <= 0) return code + 1;
  if (m < 0 && q >= 0) return code - 1;
  return code;
}

export function adamw8bitStep(mem: Floats, params: Ptr, grads: Ptr, s: AdamW8bitBuffers, n: number, hp: AdamWParams, gradScale: Ptr): void {
  const lr = f(hp.lr), beta1 = f(hp.beta1), beta2 = f(hp.beta2), eps = f(hp.eps), wd = f(hp.weightDecay);
  const gs = gradScale ? f(mem[gradScale]!) : 1;
  const bc1 = f(1 - powi(beta1, hp.step));
  const bc2 = f(1 - powi(beta2, hp.step));
  const omb1 = f(1 - beta1), omb2 = f(1 - beta2);
  const sm = (i: number) => f(mem[s.signedMap + i]!);
  const um = (i: number) => f(mem[s.unsignedMap + i]!);
  const blocks = Math.ceil(n / ADAMW8BIT_BLOCK);
  for (let b = 0; b < blocks; b++) {
    const i0 = b * ADAMW8BIT_BLOCK;
    const i1 = Math.min(n, i0 + ADAMW8BIT_BLOCK);
    const am = f(mem[s.mAbsmax + b]!);
    const av = f(mem[s.vAbsmax + b]!);
    // the fresh f32 moments of element i, from the old codes
    const moments = (i: number): [number, number] => {
      const g = f(f(mem[grads + i]!) * gs);
      const m = f(f(beta1 * f(sm(mem[s.mCodes + i]!) * am)) + f(omb1 * g));
      const v = f(f(beta2 * f(um(mem[s.vCodes + i]!) * av)) + f(omb2 * f(g * g)));
      return [m, v];
    };
    let newAm = 0, newAv = 0;
    for (let i = i0; i < i1; i++) {
      const [m, v] = moments(i);
      newAm = Math.max(newAm, Math.abs(m));
      newAv = Math.max(newAv, v);
      const p = f(mem[params + i]!);
      // p - lr * (m/bc1 / (sqrt(v/bc2) + eps) + wd * p), each operation in f32
      const ratio = f(f(m / bc1) / f(f(Math.sqrt(f(v / bc2))) + eps));
      mem[params + i] = f(p - f(lr * f(ratio + f(wd * p))));
    }
    for (let i = i0; i < i1; i++) {
      const [m, v] = moments(i);
      mem[s.mCodes + i] = keepSign(sm, nearestCode(sm, newAm > 0 ? f(m / newAm) : 0), m);
      mem[s.vCodes + i] = nearestCode(um, newAv > 0 ? f(v / newAv) : 0);
    }
    mem[s.mAbsmax + b] = newAm;
    mem[s.vAbsmax + b] = newAv;
  }
}
