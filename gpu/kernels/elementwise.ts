/**
 * WGSL of the elementwise kernels, bias, fill/copy and the two-pass reductions.
 * Parameters: P[0] = n (threads), then pointers in the order of each `Backend` method; f32
 * parameters at pf(0..). Shapes as in src/backend/backend.ts.
 */
import { PRELUDE, WG, WG_REDUCE, elementwise } from './prelude.js';

/** Elements each workgroup of the first reduction pass sums (then the partials in order). */
export const SUM_CHUNK = 4096;

export const ELEMENTWISE: Record<string, string> = {
  // out, a, b (n)
  add: elementwise(`  st(P[1] + i, ld(P[2] + i) + ld(P[3] + i));`),
  mul: elementwise(`  st(P[1] + i, ld(P[2] + i) * ld(P[3] + i));`),
  // out = s * a
  scale: elementwise(`  st(P[1] + i, pf(0) * ld(P[2] + i));`),
  // y += alpha * x
  axpy: elementwise(`  st(P[1] + i, ld(P[1] + i) + pf(0) * ld(P[2] + i));`),
  // y += a * b
  mul_accumulate: elementwise(`  st(P[1] + i, ld(P[1] + i) + ld(P[2] + i) * ld(P[3] + i));`),
  // p[i] = value (bits, so any f32 including -0)
  fill: elementwise(`  mem[P[1] + i] = P[32];`),
  // dst[i] = src[i], bit copies (floats, index slots and packed bytes alike)
  copy: elementwise(`  mem[P[1] + i] = mem[P[2] + i];`),
  // out (N,C) += bias (C); P[0] = N*C, P[3] = C
  add_bias: elementwise(`  st(P[1] + i, ld(P[1] + i) + ld(P[2] + i % P[3]));`),
  // dbias (C) += sum over rows of dout (N,C): one lane per column, rows in order; P[0] = C, P[3] = N
  bias_backward: elementwise(`
  var acc = ld(P[1] + i);
  for (var n = 0u; n < P[3]; n++) { acc = acc + ld(P[2] + n * P[0] + i); }
  st(P[1] + i, acc);`),
  // GELU, tanh approximation; out, inp (n)
  gelu_forward: elementwise(`
  let x = ld(P[2] + i);
  st(P[1] + i, 0.5 * x * (1.0 + tanh_safe(0.7978845608028654 * (x + 0.044715 * x * x * x))));`),
  // in the forward pass: out = 0.5 x (1 + tanh(u)), u = s (x + 0.044715 x^3); dinp += gelu'(x) dout
  gelu_backward: elementwise(`
  let x = ld(P[2] + i);
  let s = 0.7978845608028654;
  let th = tanh_safe(s * (x + 0.044715 * x * x * x));
  let g = 0.5 * (1.0 + th) + 0.5 * x * (1.0 - th * th) * s * (1.0 + 3.0 * 0.044715 * x * x);
  st(P[1] + i, ld(P[1] + i) + g * ld(P[3] + i));`),
  silu_forward: elementwise(`
  let x = ld(P[2] + i);
  st(P[1] + i, x / (1.0 + exp(-x)));`),
  // in the forward pass: out = x sig(x); dinp += sig (1 + x (1 - sig)) dout
  silu_backward: elementwise(`
  let x = ld(P[2] + i);
  let sg = 1.0 / (1.0 + exp(-x));
  st(P[1] + i, ld(P[1] + i) + sg * (1.0 + x * (1.0 - sg)) * ld(P[3] + i));`),
  // squared ReLU: out = max(x, 0)^2
  relu2_forward: elementwise(`
  let r = max(ld(P[2] + i), 0.0);
  st(P[1] + i, r * r);`),
  // in the forward pass: out = r^2, r = max(x, 0); dinp += 2 r dout
  relu2_backward: elementwise(`
  st(P[1] + i, ld(P[1] + i) + 2.0 * max(ld(P[2] + i), 0.0) * ld(P[3] + i));`),
  tanh_forward: elementwise(`  st(P[1] + i, tanh_safe(ld(P[2] + i)));`),
  // in the forward pass: out = tanh(inp); dinp += (1 - out^2) dout
  tanh_backward: elementwise(`
  let y = ld(P[2] + i);
  st(P[1] + i, ld(P[1] + i) + (1.0 - y * y) * ld(P[3] + i));`),
  // out[0] = min(1, maxNorm / (sqrt(sumsq[0]) + 1e-6)); P[1] = out, P[2] = sumsq
  clip_scale: elementwise(`  st(P[1], min(1.0, pf(0) / (sqrt(ld(P[2])) + 1e-6)));`),
};

/**
 * Reduction pass 1: workgroup g sums x[g*SUM_CHUNK .. +SUM_CHUNK) (or its squares, P[3] = 1)
 * into part[g], lanes strided then a fixed tree. P[0] = chunks, P[1] = x, P[2] = n.
 */
export const SUM_PARTIALS = `${PRELUDE}
${WG_REDUCE}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let g = flat_group(wid, nwg);
  if (g >= P[0]) { return; }
  let start = g * ${SUM_CHUNK}u;
  let end = min(P[2], start + ${SUM_CHUNK}u);
  var acc = 0.0;
  for (var i = start + li; i < end; i += ${WG}u) {
    let v = ld(P[1] + i);
    acc = acc + select(v, v * v, P[3] == 1u);
  }
  let total = wg_sum(li, acc);
  if (li == 0u) { part[g] = total; }
}`;

/** Reduction pass 2: one workgroup sums part[0 .. P[0]) in a fixed order into mem[P[1]]. */
export const SUM_FINAL = `${PRELUDE}
${WG_REDUCE}
@compute @workgroup_size(${WG})
fn main(@builtin(local_invocation_index) li: u32) {
  var acc = 0.0;
  for (var i = li; i < P[0]; i += ${WG}u) { acc = acc + part[i]; }
  let total = wg_sum(li, acc);
  if (li == 0u) { st(P[1], total); }
}`;
