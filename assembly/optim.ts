// AdamW step over flat arrays and the global-norm clipping factor. Byte-offset pointers.
// params, grads, m, v are (n); elements [i0, i1).
import { el } from './vec';

// m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; p -= lr (m_hat / (sqrt(v_hat) + eps) + wd p),
// with g = grads * gradScale[0] when grad_scale != 0 (clipping, fused), bias corrections from step.
export function adamw_step(params: usize, grads: usize, m: usize, v: usize, lr: f32, beta1: f32, beta2: f32, eps: f32, weight_decay: f32, step: i32, grad_scale: usize, i0: i32, i1: i32): void {
  const gs: f32 = grad_scale ? load<f32>(grad_scale) : 1;
  const bc1 = <f32>(1 - Math.pow(<f64>beta1, <f64>step));
  const bc2 = <f32>(1 - Math.pow(<f64>beta2, <f64>step));
  const vgs = f32x4.splat(gs);
  const vb1 = f32x4.splat(beta1);
  const vb2 = f32x4.splat(beta2);
  const v1b1 = f32x4.splat(1 - beta1);
  const v1b2 = f32x4.splat(1 - beta2);
  const vbc1 = f32x4.splat(bc1);
  const vbc2 = f32x4.splat(bc2);
  const veps = f32x4.splat(eps);
  const vwd = f32x4.splat(weight_decay);
  const vlr = f32x4.splat(lr);
  let i = i0;
  for (; i + 4 <= i1; i += 4) {
    const o = el(i);
    const g = f32x4.mul(v128.load(grads + o), vgs);
    const mi = f32x4.add(f32x4.mul(vb1, v128.load(m + o)), f32x4.mul(v1b1, g));
    const vi = f32x4.add(f32x4.mul(vb2, v128.load(v + o)), f32x4.mul(v1b2, f32x4.mul(g, g)));
    v128.store(m + o, mi);
    v128.store(v + o, vi);
    const p = v128.load(params + o);
    const upd = f32x4.add(f32x4.div(f32x4.div(mi, vbc1), f32x4.add(f32x4.sqrt(f32x4.div(vi, vbc2)), veps)), f32x4.mul(vwd, p));
    v128.store(params + o, f32x4.sub(p, f32x4.mul(vlr, upd)));
  }
  for (; i < i1; i++) {
    const o = el(i);
    const g = load<f32>(grads + o) * gs;
    const mi = beta1 * load<f32>(m + o) + (1 - beta1) * g;
    const vi = beta2 * load<f32>(v + o) + (1 - beta2) * (g * g);
    store<f32>(m + o, mi);
    store<f32>(v + o, vi);
    const p = load<f32>(params + o);
    store<f32>(params + o, p - lr * (mi / bc1 / (Mathf.sqrt(vi / bc2) + eps) + weight_decay * p));
  }
}

// out[0] = min(1, max_norm / (sqrt(sumsq[0]) + 1e-6)); a single value, range [0, 1)
export function clip_scale(out: usize, sumsq: usize, max_norm: f32, r0: i32, r1: i32): void {
  if (r0 < r1) store<f32>(out, min<f32>(1, max_norm / (Mathf.sqrt(load<f32>(sumsq)) + 1e-6)));
}
