// Fused softmax + cross-entropy, forward and backward. Byte-offset pointers; rows [r0, r1).
// logits, probs, dlogits (N,V); targets (N) indices stored as f32 values; losses, dlosses (N).
import { el, exps, expv } from './vec';

export function crossentropy_forward(losses: usize, probs: usize, logits: usize, targets: usize, N: i32, V: i32, r0: i32, r1: i32): void {
  for (let r = r0; r < r1; r++) {
    const x = logits + el(r * V);
    const p = probs + el(r * V);
    // max, for a stable softmax
    let vmax = f32x4.splat(-Infinity);
    let i = 0;
    for (; i + 4 <= V; i += 4) vmax = f32x4.max(vmax, v128.load(x + el(i)));
    let mx = max(max(f32x4.extract_lane(vmax, 0), f32x4.extract_lane(vmax, 1)), max(f32x4.extract_lane(vmax, 2), f32x4.extract_lane(vmax, 3)));
    for (; i < V; i++) mx = max(mx, load<f32>(x + el(i)));
    // exp and their sum (f64 lanes, combined in a fixed order)
    const vm = f32x4.splat(mx);
    let lo = f64x2.splat(0);
    let hi = f64x2.splat(0);
    for (i = 0; i + 4 <= V; i += 4) {
      const e = expv(f32x4.sub(v128.load(x + el(i)), vm));
      v128.store(p + el(i), e);
      lo = f64x2.add(lo, f64x2.promote_low_f32x4(e));
      hi = f64x2.add(hi, f64x2.promote_low_f32x4(v128.shuffle<f32>(e, e, 2, 3, 2, 3)));
    }
    let sum = (f64x2.extract_lane(lo, 0) + f64x2.extract_lane(lo, 1)) + (f64x2.extract_lane(hi, 0) + f64x2.extract_lane(hi, 1));
    for (; i < V; i++) {
      const e = exps(load<f32>(x + el(i)) - mx);
      sum += <f64>e;
      store<f32>(p + el(i), e);
    }
    const inv = f32x4.splat(<f32>(1 / sum));
    i = 0;
    for (; i + 4 <= V; i += 4) v128.store(p + el(i), f32x4.mul(v128.load(p + el(i)), inv));
    for (; i < V; i++) store<f32>(p + el(i), load<f32>(p + el(i)) * f32x4.extract_lane(inv, 0));
    // -log softmax[target] = log(sum) - (logit[target] - max), stable even when p underflows
    const target = <i32>load<f32>(targets + el(r));
    store<f32>(losses + el(r), <f32>(Math.log(sum) - <f64>(load<f32>(x + el(target)) - mx)));
  }
}

// in the forward pass: loss = -log p[target], p = softmax(logits); so dlogits += (p - onehot) dloss
export function crossentropy_backward(dlogits: usize, probs: usize, targets: usize, dlosses: usize, N: i32, V: i32, r0: i32, r1: i32): void {
  for (let r = r0; r < r1; r++) {
    const dl = load<f32>(dlosses + el(r));
    const target = <i32>load<f32>(targets + el(r));
    const d = dlogits + el(r * V);
    const p = probs + el(r * V);
    const vdl = f32x4.splat(dl);
    let i = 0;
    for (; i + 4 <= V; i += 4) v128.store(d + el(i), f32x4.add(v128.load(d + el(i)), f32x4.mul(v128.load(p + el(i)), vdl)));
    for (; i < V; i++) store<f32>(d + el(i), load<f32>(d + el(i)) + load<f32>(p + el(i)) * dl);
    store<f32>(d + el(target), load<f32>(d + el(target)) - dl);
  }
}
