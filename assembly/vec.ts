// Inline f32x4 helpers shared by the kernel families (not exported from the module).
// Every helper combines SIMD lanes in one fixed order, so a value depends only on its inputs.

// byte offset of element i
// @ts-ignore: decorator
@inline export function el(i: i32): usize {
  return <usize>i << 2;
}

// @ts-ignore: decorator
@inline export function hsum(v: v128): f32 {
  return ((f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1)) + f32x4.extract_lane(v, 2)) + f32x4.extract_lane(v, 3);
}

// sum of a[i] * b[i], i < n
// @ts-ignore: decorator
@inline export function dot(a: usize, b: usize, n: i32): f32 {
  let acc = f32x4.splat(0);
  let i = 0;
  for (; i + 4 <= n; i += 4) acc = f32x4.add(acc, f32x4.mul(v128.load(a + el(i)), v128.load(b + el(i))));
  let s = hsum(acc);
  for (; i < n; i++) s += load<f32>(a + el(i)) * load<f32>(b + el(i));
  return s;
}

// sum of x[i], i < n
// @ts-ignore: decorator
@inline export function vsum(x: usize, n: i32): f32 {
  let acc = f32x4.splat(0);
  let i = 0;
  for (; i + 4 <= n; i += 4) acc = f32x4.add(acc, v128.load(x + el(i)));
  let s = hsum(acc);
  for (; i < n; i++) s += load<f32>(x + el(i));
  return s;
}

// y[i] += alpha * x[i], i < n
// @ts-ignore: decorator
@inline export function vaxpy(y: usize, alpha: f32, x: usize, n: i32): void {
  const va = f32x4.splat(alpha);
  let i = 0;
  for (; i + 4 <= n; i += 4) v128.store(y + el(i), f32x4.add(v128.load(y + el(i)), f32x4.mul(va, v128.load(x + el(i)))));
  for (; i < n; i++) store<f32>(y + el(i), load<f32>(y + el(i)) + alpha * load<f32>(x + el(i)));
}

// y[i] += x[i], i < n
// @ts-ignore: decorator
@inline export function vadd(y: usize, x: usize, n: i32): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) v128.store(y + el(i), f32x4.add(v128.load(y + el(i)), v128.load(x + el(i))));
  for (; i < n; i++) store<f32>(y + el(i), load<f32>(y + el(i)) + load<f32>(x + el(i)));
}

// ---- exp and tanh, f32x4 and scalar with the same operations (so a lane and a scalar agree bit
// for bit and a range split between SIMD body and scalar tail cannot change a result).
// exp: Cephes' expf (as in sse_mathfun): 2^n * p(r), r = x - n ln2, n = floor(x log2e + 0.5),
// ~1-2 ulp; exp(x) = 0 for x < EXP_LO, +inf for x > EXP_HI. Only IEEE-exact wasm operations
// (no imported Math), so every engine and CPU gives the same bits.

const EXP_HI: f32 = 88.3762626647949;
const EXP_LO: f32 = -87.3365447504;
const LOG2E: f32 = 1.44269504088896341;
const LN2_HI: f32 = 0.693359375;
const LN2_LO: f32 = -2.12194440e-4;
const P0: f32 = 1.9875691500e-4;
const P1: f32 = 1.3981999507e-3;
const P2: f32 = 8.3334519073e-3;
const P3: f32 = 4.1665795894e-2;
const P4: f32 = 1.6666665459e-1;
const P5: f32 = 5.0000001201e-1;

// @ts-ignore: decorator
@inline export function expv(x: v128): v128 {
  // pmin/pmax are single x86 instructions (min/max with NaN semantics are several); NaN is restored below
  const xc = f32x4.pmin(f32x4.pmax(x, f32x4.splat(EXP_LO)), f32x4.splat(EXP_HI));
  const fx = f32x4.floor(f32x4.add(f32x4.mul(xc, f32x4.splat(LOG2E)), f32x4.splat(0.5)));
  let r = f32x4.sub(xc, f32x4.mul(fx, f32x4.splat(LN2_HI)));
  r = f32x4.sub(r, f32x4.mul(fx, f32x4.splat(LN2_LO)));
  const z = f32x4.mul(r, r);
  let y = f32x4.splat(P0);
  y = f32x4.add(f32x4.mul(y, r), f32x4.splat(P1));
  y = f32x4.add(f32x4.mul(y, r), f32x4.splat(P2));
  y = f32x4.add(f32x4.mul(y, r), f32x4.splat(P3));
  y = f32x4.add(f32x4.mul(y, r), f32x4.splat(P4));
  y = f32x4.add(f32x4.mul(y, r), f32x4.splat(P5));
  y = f32x4.add(f32x4.add(f32x4.mul(y, z), r), f32x4.splat(1));
  // 2^n: fx + (2^23 + 127) is exact and holds n + 127 in its low mantissa bits; shift them into the exponent
  const pow2n = i32x4.shl(f32x4.add(fx, f32x4.splat(8388735)), 23);
  y = f32x4.mul(y, pow2n);
  y = v128.andnot(y, f32x4.lt(x, f32x4.splat(EXP_LO))); // underflow (and -inf) to 0
  y = v128.bitselect(f32x4.splat(Infinity), y, f32x4.gt(x, f32x4.splat(EXP_HI)));
  return v128.bitselect(x, y, f32x4.ne(x, x)); // NaN in, NaN out
}

// @ts-ignore: decorator
@inline export function exps(x: f32): f32 {
  if (x < EXP_LO) return 0;
  if (x > EXP_HI) return Infinity;
  if (x != x) return x;
  const fx = Mathf.floor(x * LOG2E + 0.5);
  let r = x - fx * LN2_HI;
  r = r - fx * LN2_LO;
  const z = r * r;
  let y = P0;
  y = y * r + P1;
  y = y * r + P2;
  y = y * r + P3;
  y = y * r + P4;
  y = y * r + P5;
  y = (y * z + r) + 1;
  return y * reinterpret<f32>((<i32>fx + 127) << 23);
}

// tanh(u) = sign(u) (1 - 2 / (exp(2|u|) + 1)); absolute error ~1e-7
// @ts-ignore: decorator
@inline export function tanhv(u: v128): v128 {
  const a = f32x4.abs(u);
  const t = f32x4.sub(f32x4.splat(1), f32x4.div(f32x4.splat(2), f32x4.add(expv(f32x4.add(a, a)), f32x4.splat(1))));
  return v128.or(t, v128.and(u, f32x4.splat(-0.0))); // copy the sign of u
}

// @ts-ignore: decorator
@inline export function tanhs(u: f32): f32 {
  const a = Mathf.abs(u);
  const t: f32 = 1 - 2 / (exps(a + a) + 1);
  return copysign<f32>(t, u);
}
