/**
 * The one seeded PRNG: xoshiro128** (32-bit state words, integer ops only), so the same
 * seed draws the same numbers in every JavaScript engine. Normals use Marsaglia's polar
 * method with `detLog`, a logarithm built from IEEE-exact + - * / only, because `Math.log`
 * may differ in the last bit between V8 and JavaScriptCore (DESIGN.md decision 6).
 */

export type RngState = [number, number, number, number];

const LN2 = 0.6931471805599453;

/** Natural log of x > 0 using only correctly rounded arithmetic (bit-identical across engines). */
export function detLog(x: number): number {
  if (!(x > 0)) return x === 0 ? -Infinity : NaN;
  if (x === Infinity) return Infinity;
  let k = 0;
  // scale into [sqrt(1/2), sqrt(2)) by exact powers of two
  while (x >= 1.4142135623730951) { x *= 0.5; k++; }
  while (x < 0.7071067811865476) { x *= 2; k--; }
  // log(x) = 2 atanh(s), s = (x-1)/(x+1), |s| <= 0.1716
  const s = (x - 1) / (x + 1);
  const s2 = s * s;
  let term = s;
  let sum = 0;
  for (let i = 1; i <= 27; i += 2) {
    sum += term / i;
    term *= s2;
  }
  return 2 * sum + k * LN2;
}

function splitmix32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x9e3779b9) >>> 0;
    let z = a;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
}

/** xoshiro128** generator. Its whole state is four u32 words (`state()` / `Rng.fromState`). */
export class Rng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  /** Seed from a (safe) integer; different seeds give independent streams. */
  constructor(seed = 0) {
    if (!Number.isSafeInteger(seed)) throw new Error(`Rng: seed must be an integer, got ${seed}`);
    const sm = splitmix32((seed >>> 0) ^ Math.floor(seed / 4294967296));
    this.s0 = sm(); this.s1 = sm(); this.s2 = sm(); this.s3 = sm();
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  static fromState(state: RngState): Rng {
    const r = new Rng(0);
    [r.s0, r.s1, r.s2, r.s3] = state.map((v) => v >>> 0) as RngState;
    if ((r.s0 | r.s1 | r.s2 | r.s3) === 0) throw new Error('Rng.fromState: the all-zero state is invalid');
    return r;
  }

  /** The current state, to save in a checkpoint. */
  state(): RngState {
    return [this.s0, this.s1, this.s2, this.s3];
  }

  /** Next uniform u32. */
  nextU32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    this.s0 >>>= 0; this.s1 >>>= 0; this.s2 >>>= 0; this.s3 >>>= 0;
    return result;
  }

  /** Uniform in [0, 1) with 53 random bits. */
  uniform(): number {
    const hi = this.nextU32() >>> 5; // 27 bits
    const lo = this.nextU32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** Uniform integer in [0, n), without modulo bias. */
  int(n: number): number {
    if (!(Number.isInteger(n) && n > 0 && n <= 4294967296)) throw new Error(`Rng.int: n must be an integer in [1, 2^32], got ${n}`);
    const limit = 4294967296 - (4294967296 % n);
    for (;;) {
      const x = this.nextU32();
      if (x < limit) return x % n;
    }
  }

  /** Standard normal (Marsaglia polar method, deterministic log). */
  normal(): number {
    for (;;) {
      const u = 2 * this.uniform() - 1;
      const v = 2 * this.uniform() - 1;
      const s = u * u + v * v;
      if (s > 0 && s < 1) return u * Math.sqrt((-2 * detLog(s)) / s);
    }
  }

  /** Fill `out` with N(mean, std^2) samples. */
  fillNormal(out: Float32Array | Float64Array | number[], mean = 0, std = 1): void {
    for (let i = 0; i < out.length; i++) out[i] = mean + std * this.normal();
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
