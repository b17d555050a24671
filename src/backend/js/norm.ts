// Reference LayerNorm and RMSNorm, forward and backward (llm.c layout).
// inp, out, dinp, dout are (N,C); weight, bias, dweight, dbias are (C); mean, rstd are (N).
import type { Floats, Ptr } from '../backend.js';

export function layerNormForward(mem: Floats, out: Ptr, mean: Ptr, rstd: Ptr, inp: Ptr, weight: Ptr, bias: Ptr, N: number, C: number, eps: number): void {
  for (let n = 0; n < N; n++) {
    const x = inp + n * C;
    let m = 0;
    for (let i = 0; i < C; i++) m += mem[x + i];
    m /= C;
    let v = 0;
    for (let i = 0; i < C; i++) v += (mem[x + i] - m) * (mem[x + i] - m);
    v /= C;
    const s = 1 / Math.sqrt(v + eps);
    for (let i = 0; i < C; i++) {
      const norm = (mem[x + i] - m) * s;
      mem[out + n * C + i] = norm * mem[weight + i] + (bias ? mem[bias + i] : 0);
    }
    mem[mean + n] = m;
    mem[rstd + n] = s;
  }
}

export function layerNormBackward(mem: Floats, dinp: Ptr, dweight: Ptr, dbias: Ptr, dout: Ptr, inp: Ptr, weight: Ptr, mean: Ptr, rstd: Ptr, N: number, C: number): void {
  for (let n = 0; n < N; n++) {
    const x = inp + n * C;
    const dy = dout + n * C;
    const m = mem[mean + n];
    const s = mem[rstd + n];
    // in the forward pass: out = norm * weight + bias, norm = (x - mean) * rstd
    let dnormMean = 0;
    let dnormNormMean = 0;
    for (let i = 0; i < C; i++) {
      const norm = (mem[x + i] - m) * s;
      const dnorm = mem[weight + i] * mem[dy + i];
      dnormMean += dnorm;
      dnormNormMean += dnorm * norm;
    }
    dnormMean /= C;
    dnormNormMean /= C;
    for (let i = 0; i < C; i++) {
      const norm = (mem[x + i] - m) * s;
      const dnorm = mem[weight + i] * mem[dy + i];
      if (dbias) mem[dbias + i] += mem[dy + i];
      mem[dweight + i] += norm * mem[dy + i];
      mem[dinp + n * C + i] += (dnorm - dnormMean - norm * dnormNormMean) * s;
    }
  }
}

// out = inp * rstd * weight, rstd = 1/sqrt(mean(inp^2) + eps); weight 0 means no affine
export function rmsNormForward(mem: Floats, out: Ptr, rstd: Ptr, inp: Ptr, weight: Ptr, N: number, C: number, eps: number): void {
  for (let n = 0; n < N; n++) {
    const x = inp + n * C;
    let ms = 0;
    for (let i = 0; i < C; i++) ms += mem[x + i] * mem[x + i];
    ms /= C;
    const s = 1 / Math.sqrt(ms + eps);
    for (let i = 0; i < C; i++) mem[out + n * C + i] = mem[x + i] * s * (weight ? mem[weight + i] : 1);
    mem[rstd + n] = s;
  }
}

export function rmsNormBackward(mem: Floats, dinp: Ptr, dweight: Ptr, dout: Ptr, inp: Ptr, weight: Ptr, rstd: Ptr, N: number, C: number): void {
  for (let n = 0; n < N; n++) {
    const x = inp + n * C;
    const dy = dout + n * C;
    const s = mem[rstd + n];
    // in the forward pass: out = norm * weight, norm = x * rstd, and rstd depends on every x:
    // dx_i = rstd * (dnorm_i - norm_i * mean_j(dnorm_j * norm_j))
    let dnormNormMean = 0;
    for (let i = 0; i < C; i++) {
      const dnorm = (weight ? mem[weight + i] : 1) * mem[dy + i];
      dnormNormMean += dnorm * mem[x + i] * s;
    }
    dnormNormMean /= C;
    for (let i = 0; i < C; i++) {
      const norm = mem[x + i] * s;
      const dnorm = (weight ? mem[weight + i] : 1) * mem[dy + i];
      if (dweight) mem[dweight + i] += norm * mem[dy + i];
      mem[dinp + n * C + i] += (dnorm - norm * dnormNormMean) * s;
    }
  }
}
