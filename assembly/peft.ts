// Kernels of the parameter-efficient fine-tuning methods (src/peft/): tanh, the activation of
// the prefix-tuning reparameterisation MLP (PEFT's `prefix_projection`). Arrays are (n);
// [i0, i1) is the element range of this thread.
import { el, tanhs, tanhv } from './vec';

// out = tanh(inp)
export function tanh_forward(out: usize, inp: usize, i0: i32, i1: i32): void {
  let i = i0;
  for (; i + 4 <= i1; i += 4) v128.store(out + el(i), tanhv(v128.load(inp + el(i))));
  for (; i < i1; i++) store<f32>(out + el(i), tanhs(load<f32>(inp + el(i))));
}

// in the forward pass: out = tanh(inp); tanh' = 1 - tanh^2, so dinp += (1 - out^2) dout
export function tanh_backward(dinp: usize, out: usize, dout: usize, i0: i32, i1: i32): void {
  const one = f32x4.splat(1);
  let i = i0;
  for (; i + 4 <= i1; i += 4) {
    const y = v128.load(out + el(i));
    const g = f32x4.mul(f32x4.sub(one, f32x4.mul(y, y)), v128.load(dout + el(i)));
    v128.store(dinp + el(i), f32x4.add(v128.load(dinp + el(i)), g));
  }
  for (; i < i1; i++) {
    const y = load<f32>(out + el(i));
    store<f32>(dinp + el(i), load<f32>(dinp + el(i)) + (1 - y * y) * load<f32>(dout + el(i)));
  }
}
