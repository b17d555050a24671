// Elementwise kernels, chunked reductions and bias. Pointers are byte offsets; elementwise
// kernels compute elements [i0, i1), so any split of that range gives the same bits.
import { el, vadd } from './vec';

/** Byte offset where free memory begins (after the module's static data). */
export function heap_base(): usize {
  return __heap_base;
}

// out, a, b are (n); out = a + b
export function add_f32(out: usize, a: usize, b: usize, i0: i32, i1: i32): void {
  let i = i0;
  for (; i + 4 <= i1; i += 4) v128.store(out + el(i), f32x4.add(v128.load(a + el(i)), v128.load(b + el(i))));
  for (; i < i1; i++) store<f32>(out + el(i), load<f32>(a + el(i)) + load<f32>(b + el(i)));
}

// out = a * b
export function mul_f32(out: usize, a: usize, b: usize, i0: i32, i1: i32): void {
  let i = i0;
  for (; i + 4 <= i1; i += 4) v128.store(out + el(i), f32x4.mul(v128.load(a + el(i)), v128.load(b + el(i))));
  for (; i < i1; i++) store<f32>(out + el(i), load<f32>(a + el(i)) * load<f32>(b + el(i)));
}

// out = value (a fill; a typed array's fill over shared memory is ~5x slower than this in V8)
export function fill_f32(out: usize, value: f32, i0: i32, i1: i32): void {
  const v = f32x4.splat(value);
  let i = i0;
  for (; i + 4 <= i1; i += 4) v128.store(out + el(i), v);
  for (; i < i1; i++) store<f32>(out + el(i), value);
}

// out = s * a
export function scale_f32(out: usize, a: usize, s: f32, i0: i32, i1: i32): void {
  const vs = f32x4.splat(s);
  let i = i0;
  for (; i + 4 <= i1; i += 4) v128.store(out + el(i), f32x4.mul(vs, v128.load(a + el(i))));
  for (; i < i1; i++) store<f32>(out + el(i), s * load<f32>(a + el(i)));
}

// the backward of `out = alpha * x`: y += alpha * x
export function axpy_f32(y: usize, alpha: f32, x: usize, i0: i32, i1: i32): void {
  const va = f32x4.splat(alpha);
  let i = i0;
  for (; i + 4 <= i1; i += 4) v128.store(y + el(i), f32x4.add(v128.load(y + el(i)), f32x4.mul(va, v128.load(x + el(i)))));
  for (; i < i1; i++) store<f32>(y + el(i), load<f32>(y + el(i)) + alpha * load<f32>(x + el(i)));
}

// the backward of `out = a * b`: y += a * b
export function mul_accumulate_f32(y: usize, a: usize, b: usize, i0: i32, i1: i32): void {
  let i = i0;
  for (; i + 4 <= i1; i += 4) v128.store(y + el(i), f32x4.add(v128.load(y + el(i)), f32x4.mul(v128.load(a + el(i)), v128.load(b + el(i)))));
  for (; i < i1; i++) store<f32>(y + el(i), load<f32>(y + el(i)) + load<f32>(a + el(i)) * load<f32>(b + el(i)));
}

/** Elements per reduction chunk; chunk c covers x[c*SUM_CHUNK, min(n, (c+1)*SUM_CHUNK)). */
export const SUM_CHUNK: i32 = 4096;

// partials (chunks) f64; x (n). partials[c] = sum of chunk c, in f64, for chunks [c0, c1).
// The caller adds the partials in chunk order, so the total is the same for any split.
export function sum_chunks(partials: usize, x: usize, n: i32, c0: i32, c1: i32): void {
  for (let c = c0; c < c1; c++) {
    const start = c * SUM_CHUNK;
    const end = min(n, start + SUM_CHUNK);
    let lo = f64x2.splat(0);
    let hi = f64x2.splat(0);
    let i = start;
    for (; i + 4 <= end; i += 4) {
      const v = v128.load(x + el(i));
      lo = f64x2.add(lo, f64x2.promote_low_f32x4(v));
      hi = f64x2.add(hi, f64x2.promote_low_f32x4(v128.shuffle<f32>(v, v, 2, 3, 2, 3)));
    }
    let s = (f64x2.extract_lane(lo, 0) + f64x2.extract_lane(lo, 1)) + (f64x2.extract_lane(hi, 0) + f64x2.extract_lane(hi, 1));
    for (; i < end; i++) s += <f64>load<f32>(x + el(i));
    store<f64>(partials + (<usize>c << 3), s);
  }
}

// same as sum_chunks, of x[i]^2 (each square is exact in f64)
export function sum_squares_chunks(partials: usize, x: usize, n: i32, c0: i32, c1: i32): void {
  for (let c = c0; c < c1; c++) {
    const start = c * SUM_CHUNK;
    const end = min(n, start + SUM_CHUNK);
    let lo = f64x2.splat(0);
    let hi = f64x2.splat(0);
    let i = start;
    for (; i + 4 <= end; i += 4) {
      const v = v128.load(x + el(i));
      const a = f64x2.promote_low_f32x4(v);
      const b = f64x2.promote_low_f32x4(v128.shuffle<f32>(v, v, 2, 3, 2, 3));
      lo = f64x2.add(lo, f64x2.mul(a, a));
      hi = f64x2.add(hi, f64x2.mul(b, b));
    }
    let s = (f64x2.extract_lane(lo, 0) + f64x2.extract_lane(lo, 1)) + (f64x2.extract_lane(hi, 0) + f64x2.extract_lane(hi, 1));
    for (; i < end; i++) {
      const v = <f64>load<f32>(x + el(i));
      s += v * v;
    }
    store<f64>(partials + (<usize>c << 3), s);
  }
}

// out (N,C) += bias (C), rows [r0, r1)
export function add_bias(out: usize, bias: usize, N: i32, C: i32, r0: i32, r1: i32): void {
  for (let r = r0; r < r1; r++) vadd(out + el(r * C), bias, C);
}

// in the forward pass: out[n,c] += bias[c]; so dbias[c] += sum over n of dout[n,c].
// dbias (C), dout (N,C); columns [c0, c1), rows summed in order (no races across column splits).
export function bias_backward(dbias: usize, dout: usize, N: i32, C: i32, c0: i32, c1: i32): void {
  for (let n = 0; n < N; n++) vadd(dbias + el(c0), dout + el(n * C + c0), c1 - c0);
}
