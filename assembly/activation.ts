// GELU (tanh approximation), SiLU and squared ReLU, forward and backward; elements [i0, i1).
// inp, out, dinp, dout are (n). exp/tanh are vec.ts's f32x4 versions, whose scalar twins give
// the same bits, so the SIMD body and the scalar tail agree for any split.
import { el, expv, exps, tanhs, tanhv } from './vec';

const GELU_SCALE: f32 = 0.7978845608028654; // sqrt(2/pi)
const GELU_CUBIC: f32 = 0.044715;
const GELU_CLAMP: f32 = 10;

// out = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
export function gelu_forward(out: usize, inp: usize, i0: i32, i1: i32): void {
  const s = f32x4.splat(GELU_SCALE);
  const c = f32x4.splat(GELU_CUBIC);
  const half = f32x4.splat(0.5);
  const one = f32x4.splat(1);
  let i = i0;
  for (; i + 4 <= i1; i += 4) {
    const x = v128.load(inp + el(i));
    const th = tanhv(f32x4.mul(s, f32x4.add(x, f32x4.mul(f32x4.mul(f32x4.mul(c, x), x), x))));
    v128.store(out + el(i), f32x4.mul(f32x4.mul(half, x), f32x4.add(one, th)));
  }
  for (; i < i1; i++) {
    const x = load<f32>(inp + el(i));
    const th = tanhs(GELU_SCALE * (x + GELU_CUBIC * x * x * x));
    store<f32>(out + el(i), 0.5 * x * (1 + th));
  }
}

// in the forward pass: out = 0.5 x (1 + tanh(u)), u = s (x + 0.044715 x^3); tanh' = 1 - tanh^2, so
// dinp += (0.5 (1 + th) + 0.5 x (1 - th^2) s (1 + 3 0.044715 x^2)) dout.
// x is clamped to [-10, 10] first: beyond it tanh is +-1 in f32 and the gradient exactly 0 or 1
// either way, and the clamp keeps x^2 from overflowing into 0 * inf = NaN.
export function gelu_backward(dinp: usize, inp: usize, dout: usize, i0: i32, i1: i32): void {
  const lim = f32x4.splat(GELU_CLAMP);
  const nlim = f32x4.splat(-GELU_CLAMP);
  const s = f32x4.splat(GELU_SCALE);
  const c = f32x4.splat(GELU_CUBIC);
  const c3 = f32x4.splat(3 * GELU_CUBIC);
  const half = f32x4.splat(0.5);
  const one = f32x4.splat(1);
  let i = i0;
  for (; i + 4 <= i1; i += 4) {
    const x = f32x4.min(f32x4.max(v128.load(inp + el(i)), nlim), lim);
    const th = tanhv(f32x4.mul(s, f32x4.add(x, f32x4.mul(f32x4.mul(f32x4.mul(c, x), x), x))));
    const left = f32x4.mul(half, f32x4.add(one, th));
    const sech2 = f32x4.sub(one, f32x4.mul(th, th));
    const right = f32x4.mul(f32x4.mul(f32x4.mul(f32x4.mul(half, x), sech2), s), f32x4.add(one, f32x4.mul(f32x4.mul(c3, x), x)));
    v128.store(dinp + el(i), f32x4.add(v128.load(dinp + el(i)), f32x4.mul(f32x4.add(left, right), v128.load(dout + el(i)))));
  }
  for (; i < i1; i++) {
    const x = min(max(load<f32>(inp + el(i)), -GELU_CLAMP), GELU_CLAMP);
    const th = tanhs(GELU_SCALE * (x + GELU_CUBIC * x * x * x));
    const left: f32 = 0.5 * (1 + th);
    const sech2: f32 = 1 - th * th;
    const right: f32 = 0.5 * x * sech2 * GELU_SCALE * (1 + 3 * GELU_CUBIC * x * x);
    store<f32>(dinp + el(i), load<f32>(dinp + el(i)) + (left + right) * load<f32>(dout + el(i)));
  }
}

// out = x * sigmoid(x) = x / (1 + exp(-x))
export function silu_forward(out: usize, inp: usize, i0: i32, i1: i32): void {
  const one = f32x4.splat(1);
  let i = i0;
  for (; i + 4 <= i1; i += 4) {
    const x = v128.load(inp + el(i));
    v128.store(out + el(i), f32x4.div(x, f32x4.add(one, expv(f32x4.neg(x)))));
  }
  for (; i < i1; i++) {
    const x = load<f32>(inp + el(i));
    store<f32>(out + el(i), x / (1 + exps(-x)));
  }
}

// in the forward pass: out = x * sig(x); sig' = sig (1 - sig), so dinp += sig (1 + x (1 - sig)) dout
export function silu_backward(dinp: usize, inp: usize, dout: usize, i0: i32, i1: i32): void {
  const one = f32x4.splat(1);
  let i = i0;
  for (; i + 4 <= i1; i += 4) {
    const x = v128.load(inp + el(i));
    const sig = f32x4.div(one, f32x4.add(one, expv(f32x4.neg(x))));
    const g = f32x4.mul(sig, f32x4.add(one, f32x4.mul(x, f32x4.sub(one, sig))));
    v128.store(dinp + el(i), f32x4.add(v128.load(dinp + el(i)), f32x4.mul(g, v128.load(dout + el(i)))));
  }
  for (; i < i1; i++) {
    const x = load<f32>(inp + el(i));
    const sig: f32 = 1 / (1 + exps(-x));
    store<f32>(dinp + el(i), load<f32>(dinp + el(i)) + sig * (1 + x * (1 - sig)) * load<f32>(dout + el(i)));
  }
}

// ---- squared ReLU (BitNet b1.58 2B4T's MLP activation) ----------------------------------------
// f32x4.max and the scalar max are both wasm's NaN-propagating max, so body and tail agree.

// out = relu(x)^2 = max(x, 0)^2
export function relu2_forward(out: usize, inp: usize, i0: i32, i1: i32): void {
  const zero = f32x4.splat(0);
  let i = i0;
  for (; i + 4 <= i1; i += 4) {
    const r = f32x4.max(v128.load(inp + el(i)), zero);
    v128.store(out + el(i), f32x4.mul(r, r));
  }
  for (; i < i1; i++) {
    const r = max<f32>(load<f32>(inp + el(i)), 0);
    store<f32>(out + el(i), r * r);
  }
}

// in the forward pass: out = r^2, r = max(x, 0); so dinp += 2 r dout (0 for x <= 0)
export function relu2_backward(dinp: usize, inp: usize, dout: usize, i0: i32, i1: i32): void {
  const zero = f32x4.splat(0);
  let i = i0;
  for (; i + 4 <= i1; i += 4) {
    const r = f32x4.max(v128.load(inp + el(i)), zero);
    const g = f32x4.mul(f32x4.add(r, r), v128.load(dout + el(i)));
    v128.store(dinp + el(i), f32x4.add(v128.load(dinp + el(i)), g));
  }
  for (; i < i1; i++) {
    const r = max<f32>(load<f32>(inp + el(i)), 0);
    store<f32>(dinp + el(i), load<f32>(dinp + el(i)) + (r + r) * load<f32>(dout + el(i)));
  }
}
