// LayerNorm and RMSNorm, forward and backward (llm.c layout). Pointers are byte offsets.
// inp, out, dinp, dout are (N,C); weight, bias, dweight, dbias are (C); mean, rstd are (N).
// Forward and the dinp backward compute rows [r0, r1); the parameter-gradient backward
// computes columns [c0, c1), summing over all N rows in order (a column split never races).
import { el, dot, hsum, vsum } from './vec';

export function layernorm_forward(out: usize, mean: usize, rstd: usize, inp: usize, weight: usize, bias: usize, N: i32, C: i32, eps: f32, r0: i32, r1: i32): void {
  for (let r = r0; r < r1; r++) {
    const x = inp + el(r * C);
    const y = out + el(r * C);
    const m = vsum(x, C) / <f32>C;
    const vm = f32x4.splat(m);
    let acc = f32x4.splat(0);
    let i = 0;
    for (; i + 4 <= C; i += 4) {
      const d = f32x4.sub(v128.load(x + el(i)), vm);
      acc = f32x4.add(acc, f32x4.mul(d, d));
    }
    let v = hsum(acc);
    for (; i < C; i++) {
      const d = load<f32>(x + el(i)) - m;
      v += d * d;
    }
    const s: f32 = 1 / Mathf.sqrt(v / <f32>C + eps);
    const vs = f32x4.splat(s);
    i = 0;
    if (bias) {
      for (; i + 4 <= C; i += 4) {
        const norm = f32x4.mul(f32x4.sub(v128.load(x + el(i)), vm), vs);
        v128.store(y + el(i), f32x4.add(f32x4.mul(norm, v128.load(weight + el(i))), v128.load(bias + el(i))));
      }
      for (; i < C; i++) store<f32>(y + el(i), (load<f32>(x + el(i)) - m) * s * load<f32>(weight + el(i)) + load<f32>(bias + el(i)));
    } else {
      for (; i + 4 <= C; i += 4) {
        const norm = f32x4.mul(f32x4.sub(v128.load(x + el(i)), vm), vs);
        v128.store(y + el(i), f32x4.mul(norm, v128.load(weight + el(i))));
      }
      for (; i < C; i++) store<f32>(y + el(i), (load<f32>(x + el(i)) - m) * s * load<f32>(weight + el(i)));
    }
    store<f32>(mean + el(r), m);
    store<f32>(rstd + el(r), s);
  }
}

// in the forward pass: out = norm * weight + bias, norm = (x - mean) * rstd, so
// dx = rstd * (dnorm - mean(dnorm) - norm * mean(dnorm * norm)), dnorm = weight * dout
export function layernorm_backward_dinp(dinp: usize, dout: usize, inp: usize, weight: usize, mean: usize, rstd: usize, N: i32, C: i32, r0: i32, r1: i32): void {
  for (let r = r0; r < r1; r++) {
    const x = inp + el(r * C);
    const dy = dout + el(r * C);
    const dx = dinp + el(r * C);
    const m = load<f32>(mean + el(r));
    const s = load<f32>(rstd + el(r));
    const vm = f32x4.splat(m);
    const vs = f32x4.splat(s);
    let accD = f32x4.splat(0);
    let accDN = f32x4.splat(0);
    let i = 0;
    for (; i + 4 <= C; i += 4) {
      const norm = f32x4.mul(f32x4.sub(v128.load(x + el(i)), vm), vs);
      const dnorm = f32x4.mul(v128.load(weight + el(i)), v128.load(dy + el(i)));
      accD = f32x4.add(accD, dnorm);
      accDN = f32x4.add(accDN, f32x4.mul(dnorm, norm));
    }
    let dMean = hsum(accD);
    let dnMean = hsum(accDN);
    for (let j = i; j < C; j++) {
      const norm = (load<f32>(x + el(j)) - m) * s;
      const dnorm = load<f32>(weight + el(j)) * load<f32>(dy + el(j));
      dMean += dnorm;
      dnMean += dnorm * norm;
    }
    dMean /= <f32>C;
    dnMean /= <f32>C;
    const vdMean = f32x4.splat(dMean);
    const vdnMean = f32x4.splat(dnMean);
    i = 0;
    for (; i + 4 <= C; i += 4) {
      const norm = f32x4.mul(f32x4.sub(v128.load(x + el(i)), vm), vs);
      const dnorm = f32x4.mul(v128.load(weight + el(i)), v128.load(dy + el(i)));
      const g = f32x4.mul(f32x4.sub(f32x4.sub(dnorm, vdMean), f32x4.mul(norm, vdnMean)), vs);
      v128.store(dx + el(i), f32x4.add(v128.load(dx + el(i)), g));
    }
    for (; i < C; i++) {
      const norm = (load<f32>(x + el(i)) - m) * s;
      const dnorm = load<f32>(weight + el(i)) * load<f32>(dy + el(i));
      store<f32>(dx + el(i), load<f32>(dx + el(i)) + (dnorm - dMean - norm * dnMean) * s);
    }
  }
}

// dweight[c] += sum_n norm[n,c] * dout[n,c]; dbias[c] += sum_n dout[n,c] (dbias may be 0)
export function layernorm_backward_dparams(dweight: usize, dbias: usize, dout: usize, inp: usize, mean: usize, rstd: usize, N: i32, C: i32, c0: i32, c1: i32): void {
  for (let n = 0; n < N; n++) {
    const x = inp + el(n * C);
    const dy = dout + el(n * C);
    const m = load<f32>(mean + el(n));
    const s = load<f32>(rstd + el(n));
    const vm = f32x4.splat(m);
    const vs = f32x4.splat(s);
    let c = c0;
    for (; c + 4 <= c1; c += 4) {
      const g = v128.load(dy + el(c));
      const norm = f32x4.mul(f32x4.sub(v128.load(x + el(c)), vm), vs);
      v128.store(dweight + el(c), f32x4.add(v128.load(dweight + el(c)), f32x4.mul(norm, g)));
      if (dbias) v128.store(dbias + el(c), f32x4.add(v128.load(dbias + el(c)), g));
    }
    for (; c < c1; c++) {
      const g = load<f32>(dy + el(c));
      store<f32>(dweight + el(c), load<f32>(dweight + el(c)) + (load<f32>(x + el(c)) - m) * s * g);
      if (dbias) store<f32>(dbias + el(c), load<f32>(dbias + el(c)) + g);
    }
  }
}

// out = inp * rstd * weight, rstd = 1/sqrt(mean(inp^2) + eps); weight 0 means no affine
export function rmsnorm_forward(out: usize, rstd: usize, inp: usize, weight: usize, N: i32, C: i32, eps: f32, r0: i32, r1: i32): void {
  for (let r = r0; r < r1; r++) {
    const x = inp + el(r * C);
    const y = out + el(r * C);
    const s: f32 = 1 / Mathf.sqrt(dot(x, x, C) / <f32>C + eps);
    const vs = f32x4.splat(s);
    let i = 0;
    if (weight) {
      for (; i + 4 <= C; i += 4) v128.store(y + el(i), f32x4.mul(f32x4.mul(v128.load(x + el(i)), vs), v128.load(weight + el(i))));
      for (; i < C; i++) store<f32>(y + el(i), load<f32>(x + el(i)) * s * load<f32>(weight + el(i)));
    } else {
      for (; i + 4 <= C; i += 4) v128.store(y + el(i), f32x4.mul(v128.load(x + el(i)), vs));
      for (; i < C; i++) store<f32>(y + el(i), load<f32>(x + el(i)) * s);
    }
    store<f32>(rstd + el(r), s);
  }
}

// in the forward pass: out = norm * weight, norm = x * rstd, so
// dx = rstd * (dnorm - norm * mean(dnorm * norm)), dnorm = weight * dout (dout without weight)
export function rmsnorm_backward_dinp(dinp: usize, dout: usize, inp: usize, weight: usize, rstd: usize, N: i32, C: i32, r0: i32, r1: i32): void {
  for (let r = r0; r < r1; r++) {
    const x = inp + el(r * C);
    const dy = dout + el(r * C);
    const dx = dinp + el(r * C);
    const s = load<f32>(rstd + el(r));
    const vs = f32x4.splat(s);
    let acc = f32x4.splat(0);
    let i = 0;
    for (; i + 4 <= C; i += 4) {
      const w = weight ? v128.load(weight + el(i)) : f32x4.splat(1);
      acc = f32x4.add(acc, f32x4.mul(f32x4.mul(w, v128.load(dy + el(i))), f32x4.mul(v128.load(x + el(i)), vs)));
    }
    let dnMean = hsum(acc);
    for (let j = i; j < C; j++) {
      const w: f32 = weight ? load<f32>(weight + el(j)) : 1;
      dnMean += w * load<f32>(dy + el(j)) * (load<f32>(x + el(j)) * s);
    }
    dnMean /= <f32>C;
    const vdn = f32x4.splat(dnMean);
    i = 0;
    for (; i + 4 <= C; i += 4) {
      const w = weight ? v128.load(weight + el(i)) : f32x4.splat(1);
      const dnorm = f32x4.mul(w, v128.load(dy + el(i)));
      const norm = f32x4.mul(v128.load(x + el(i)), vs);
      v128.store(dx + el(i), f32x4.add(v128.load(dx + el(i)), f32x4.mul(f32x4.sub(dnorm, f32x4.mul(norm, vdn)), vs)));
    }
    for (; i < C; i++) {
      const w: f32 = weight ? load<f32>(weight + el(i)) : 1;
      const dnorm = w * load<f32>(dy + el(i));
      const norm = load<f32>(x + el(i)) * s;
      store<f32>(dx + el(i), load<f32>(dx + el(i)) + (dnorm - norm * dnMean) * s);
    }
  }
}

// dweight[c] += sum_n norm[n,c] * dout[n,c], norm = inp * rstd; columns [c0, c1)
export function rmsnorm_backward_dweight(dweight: usize, dout: usize, inp: usize, rstd: usize, N: i32, C: i32, c0: i32, c1: i32): void {
  for (let n = 0; n < N; n++) {
    const x = inp + el(n * C);
    const dy = dout + el(n * C);
    const s = load<f32>(rstd + el(n));
    const vs = f32x4.splat(s);
    let c = c0;
    for (; c + 4 <= c1; c += 4) {
      const norm = f32x4.mul(v128.load(x + el(c)), vs);
      v128.store(dweight + el(c), f32x4.add(v128.load(dweight + el(c)), f32x4.mul(norm, v128.load(dy + el(c)))));
    }
    for (; c < c1; c++) store<f32>(dweight + el(c), load<f32>(dweight + el(c)) + load<f32>(x + el(c)) * s * load<f32>(dy + el(c)));
  }
}
