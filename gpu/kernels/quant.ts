/**
 * WGSL of the BitNet b1.58 quantisers, the packed int8 x ternary matmuls and the QAT kernels.
 * Numerics as src/quant/README.md and src/qat/README.md; byte buffers pack 4 bytes a slot
 * (see prelude.ts). `round` is WGSL's round-half-to-even, as the reference's.
 */
import { WG, elementwise, perRow } from './prelude.js';

/** The noise mask of the QAT kernels (murmur3 finaliser of seed ^ i*0x9e3779b1), exact u32 arithmetic. */
const QAT_LAMBDA = /* wgsl */ `
fn noise_hash(seed: u32, i: u32) -> u32 {
  var h = seed ^ (i * 0x9e3779b1u);
  h = h ^ (h >> 16u);
  h = h * 0x85ebca6bu;
  h = h ^ (h >> 13u);
  h = h * 0xc2b2ae35u;
  h = h ^ (h >> 16u);
  return h;
}
// lambda_i: lambda where the mask is on (threshold >= 2^24: every element), 0 elsewhere
fn element_lambda(lambda: f32, thr: u32, seed: u32, i: u32) -> f32 {
  if (thr >= 16777216u) { return lambda; }
  return select(0.0, lambda, (noise_hash(seed, i) >> 8u) < thr);
}
fn ternary_code(u: f32) -> f32 { return clamp(round(u), -1.0, 1.0); }
`;

/** NF4 dequantisation of element i of W: NF4[code] * (table[absmaxCode] * absmaxScales[block/256] + offset). */
const NF4 = /* wgsl */ `
const NF4_LEVELS = array<f32, 16>(-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
  -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
  0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0);
fn nf4_weight(i: u32) -> f32 {
  let b = i / 64u;
  let s = ld(P[6] + byte_at(P[4] * 4u + b)) * ld(P[5] + (b >> 8u)) + pf(0);
  let byte = byte_at(P[3] * 4u + (i >> 1u));
  let code = select(byte & 15u, byte >> 4u, (i & 1u) == 0u);
  return NF4_LEVELS[code] * s;
}
`;

/**
 * The packed int8 x ternary forward, a lane per (m, packed row r): the four weight rows
 * r, r+R, r+2R, r+3R share each packed byte, so one 4-byte load serves 4 outputs. Codes c = w+1 in
 * {0,1,2}: sum_k x*w = dot(x, c) - dot(x, 1), exact in i32. `dot4I8Packed` where the adapter has
 * packed_4x8_integer_dot_product, else the same sums byte by byte.
 * P: 0 M*R, 1 out, 2 xq, 3 sx, 4 packed, 5 sw, 6 N, 7 K, 8 group, 9 R
 */
export function ternaryForwardWgsl(packedDot: boolean): string {
  const dot = packedDot
    ? 'fn dot4(a: u32, b: u32) -> i32 { return dot4I8Packed(a, b); }'
    : 'fn dot4(a: u32, b: u32) -> i32 { return sbyte(a, 0u) * sbyte(b, 0u) + sbyte(a, 1u) * sbyte(b, 1u) + sbyte(a, 2u) * sbyte(b, 2u) + sbyte(a, 3u) * sbyte(b, 3u); }';
  return elementwise(`
  let N = P[6]; let K = P[7]; let group = P[8]; let R = P[9];
  let r = i % R; let m = i / R;
  let K8 = (K + 7u) & ~7u;
  let seg = select(group, K, group >= K);
  let xrow = P[2] + m * (K8 / 4u);
  let wrow = P[4] * 4u + r * K;
  let sxm = ld(P[3] + m);
  var y = vec4<f32>(0.0);
  for (var k0 = 0u; k0 < K; k0 += seg) {
    var acc = vec4<i32>(0);
    var xs = 0;
    let k1 = min(k0 + seg, K);
    for (var k = k0; k < k1; k += 4u) {
      let xw = mem[xrow + k / 4u];
      let q = quad_at(wrow + k);
      xs += dot4(xw, 0x01010101u);
      acc += vec4<i32>(dot4(xw, q & 0x03030303u), dot4(xw, (q >> 2u) & 0x03030303u),
                       dot4(xw, (q >> 4u) & 0x03030303u), dot4(xw, (q >> 6u) & 0x03030303u));
    }
    acc -= vec4<i32>(xs);
    for (var j = 0u; j < 4u; j++) {
      let n = j * R + r;
      if (n < N) { y[j] = y[j] + f32(acc[j]) / (sxm * ld(P[5] + scale_index(n, k0, K, group))); }
    }
  }
  for (var j = 0u; j < 4u; j++) {
    let n = j * R + r;
    if (n < N) { st(P[1] + m * N + n, y[j]); }
  }`, dot);
}

export const QUANT: Record<string, string> = {
  // scales[g] = 1 / max(mean|w| over group g, 1e-5), a workgroup per group. P: 0 groups, 1 scales, 2 w, 3 group
  absmean_scales: perRow(`
  let G = P[3]; let w = P[2] + row * G;
  var s = 0.0;
  for (var i = li; i < G; i += ${WG}u) { s = s + abs(ld(w + i)); }
  let total = wg_sum(li, s);
  if (li == 0u) { st(P[1] + row, div_rn(1.0, max(div_rn(total, f32(G)), 1e-5))); }`),
  // packed (R,K) bytes, byte (r,k) holds Wq[i*R + r, k] + 1 in bits 2i..2i+1 (rows >= N: code 1).
  // A lane per slot of the packed buffer (4 bytes); bytes past the buffer's end keep their value.
  // P: 0 slots, 1 packed, 2 w, 3 scales, 4 N, 5 K, 6 group, 7 R
  ternary_pack: elementwise(`
  let N = P[4]; let K = P[5]; let group = P[6]; let R = P[7];
  let nbytes = R * K;
  var word = 0u; var keep = 0u;
  for (var j = 0u; j < 4u; j++) {
    let bi = i * 4u + j;
    if (bi >= nbytes) { keep = keep | (0xffu << (8u * j)); continue; }
    let r = bi / K; let k = bi % K;
    var byte = 0u;
    for (var q = 0u; q < 4u; q++) {
      let n = q * R + r;
      var c = 1u;
      if (n < N) { c = u32(round(clamp(ld(P[2] + n * K + k) * ld(P[3] + scale_index(n, k, K, group)), -1.0, 1.0)) + 1.0); }
      byte = byte | (c << (2u * q));
    }
    word = word | (byte << (8u * j));
  }
  mem[P[1] + i] = (mem[P[1] + i] & keep) | word;`),
  // out (N,K) = Wq / s. P: 0 N*K, 1 out, 2 packed, 3 scales, 4 N, 5 K, 6 group, 7 R
  ternary_dequantize: elementwise(`
  let K = P[5]; let R = P[7];
  let n = i / K; let k = i % K;
  let c = (byte_at(P[2] * 4u + (n % R) * K + k) >> (2u * (n / R))) & 3u;
  st(P[1] + i, (f32(c) - 1.0) / ld(P[3] + scale_index(n, k, K, P[6])));`),
  // sx[m] = 127 / max(max|x[m,:]|, 1e-5) (or the static clip, P[5] = 1), xq = clamp(round(x*sx), -128, 127),
  // a workgroup per row, a lane per 4 bytes of xq (M,K8). P: 0 M, 1 xq, 2 sx, 3 x, 4 K, 5 static, 6 clip
  quantize_activations: perRow(`
  let K = P[4]; let K8 = (K + 7u) & ~7u; let x = P[3] + row * K;
  var a = 0.0;
  for (var i = li; i < K; i += ${WG}u) { a = max(a, abs(ld(x + i))); }
  var amax = wg_max(li, a);
  if (P[5] == 1u) { let c = ld(P[6]); if (c > 0.0) { amax = c; } }
  let s = div_rn(127.0, max(amax, 1e-5));
  for (var w = li; w < K8 / 4u; w += ${WG}u) {
    var word = 0u;
    for (var j = 0u; j < 4u; j++) {
      let k = w * 4u + j;
      if (k < K) {
        let q = i32(round(clamp(ld(x + k) * s, -128.0, 127.0)));
        word = word | ((bitcast<u32>(q) & 0xffu) << (8u * j));
      }
    }
    mem[P[1] + row * (K8 / 4u) + w] = word;
  }
  if (li == 0u) { st(P[2] + row, s); }`),
  // out (M,K) = xq / sx[m]. P: 0 M*K, 1 out, 2 xq, 3 sx, 4 K
  dequantize_activations: elementwise(`
  let K = P[4]; let m = i / K; let k = i % K;
  let b = P[2] * 4u + m * ((K + 7u) & ~7u) + k;
  let q = sbyte(mem[b >> 2u], b & 3u);
  st(P[1] + i, f32(q) / ld(P[3] + m));`),
  // dx (M,K) += dy (M,N) * (Wq / sw): a lane per (m, 4 consecutive k), n in order (n = q*R + r:
  // q outer, packed row r inner), each term f32(dy * f32(1/sw)) * Wq. One 4-byte load of packed
  // codes and one dy serve 4 outputs; the scale index advances with n without an integer
  // division, and 1/sw is recomputed only when it changes (per-group scales: G % 16 == 0, so the
  // 4 k of a lane share their scale).
  // P: 0 M*ceil(K/4), 1 dx, 2 dy, 3 packed, 4 sw, 5 N, 6 K, 7 group, 8 R
  ternary_backward_dx: elementwise(`
  let N = P[5]; let K = P[6]; let group = P[7]; let R = P[8];
  let K4 = (K + 3u) / 4u;
  let m = i / K4; let k = (i % K4) * 4u;
  let wcol = P[3] * 4u + k;
  let dyrow = P[2] + m * N;
  let perRows = group >= K;
  let rowsPerScale = select(1u, group / K, perRows);
  let scalesPerRow = select(K / group, 1u, perRows);
  let kOffset = select(k / group, 0u, perRows);
  var sidx = kOffset;
  var left = rowsPerScale;
  var inv = 1.0 / ld(P[4] + sidx);
  var acc = vec4<f32>(0.0);
  var n = 0u;
  for (var q = 0u; q < 4u; q++) {
    for (var r = 0u; r < R; r++) {
      if (n >= N) { break; }
      let codes = (quad_at(wcol + r * K) >> (2u * q)) & 0x03030303u;
      let w = vec4<f32>(f32(codes & 3u), f32((codes >> 8u) & 3u), f32((codes >> 16u) & 3u), f32(codes >> 24u)) - vec4<f32>(1.0);
      acc = acc + w * (ld(dyrow + n) * inv);
      n++;
      if (perRows) {
        left--;
        if (left == 0u) { left = rowsPerScale; sidx++; if (n < N) { inv = 1.0 / ld(P[4] + sidx); } }
      } else if (n < N) {
        sidx = n * scalesPerRow + kOffset;
        inv = 1.0 / ld(P[4] + sidx);
      }
    }
  }
  for (var j = 0u; j < 4u; j++) {
    if (k + j < K) { let o = P[1] + m * K + k + j; st(o, ld(o) + acc[j]); }
  }`),
  // dw (N,K) += dwq where |w*s| <= 1. P: 0 N*K, 1 dw, 2 dwq, 3 w, 4 scales, 5 K, 6 group
  ste_clipped_weights: elementwise(`
  let K = P[5]; let n = i / K; let k = i % K;
  let u = ld(P[3] + i) * ld(P[4] + scale_index(n, k, K, P[6]));
  st(P[1] + i, ld(P[1] + i) + select(0.0, ld(P[2] + i), abs(u) <= 1.0));`),
  // dx (M,K) += dxq where -128 <= x*sx[m] <= 127. P: 0 M*K, 1 dx, 2 dxq, 3 x, 4 sx, 5 K
  ste_clipped_activations: elementwise(`
  let v = ld(P[3] + i) * ld(P[4] + i / P[5]);
  st(P[1] + i, ld(P[1] + i) + select(0.0, ld(P[2] + i), v >= -128.0 && v <= 127.0));`),

  // ---- QLoRA: NF4 (layout src/peft/nf4.ts) ----
  // out (M,N) = x (M,K) . deq(W)^T, a lane per (m, n), k in order.
  // P: 0 M*N, 1 out, 2 x, 3 codes, 4 absmaxCodes, 5 absmaxScales, 6 table, 7 N, 8 K; pf(0) offset
  nf4_forward: elementwise(`
  let N = P[7]; let K = P[8]; let m = i / N; let n = i % N;
  var acc = 0.0;
  for (var k = 0u; k < K; k++) { acc = acc + ld(P[2] + m * K + k) * nf4_weight(n * K + k); }
  st(P[1] + i, acc);`, NF4),
  // dx (M,K) += dy (M,N) . deq(W), a lane per (m, k), n in order. P as nf4_forward, P[0] = M*K
  nf4_backward_dx: elementwise(`
  let N = P[7]; let K = P[8]; let m = i / K; let k = i % K;
  var acc = 0.0;
  for (var n = 0u; n < N; n++) { acc = acc + ld(P[2] + m * N + n) * nf4_weight(n * K + k); }
  st(P[1] + i, ld(P[1] + i) + acc);`, NF4),

  // ---- QAT ----
  // out = a + lambda_i (b - a). P: 0 n, 1 out, 2 a, 3 b, 4 threshold, 5 seed; pf(0) lambda
  qat_lerp: elementwise(`
  let l = element_lambda(pf(0), P[4], P[5], i);
  let a = ld(P[2] + i);
  var y = a;
  if (l == 1.0) { y = ld(P[3] + i); } else if (l != 0.0) { y = a + l * (ld(P[3] + i) - a); }
  st(P[1] + i, y);`, QAT_LAMBDA),
  // dw += dwq ((1 - l) + l g(u)), u = w*s; g: 0 identity, 1 clipped, 2 soft (slope of tanh soft rounding).
  // P: 0 N*K, 1 dw, 2 dwq, 3 w, 4 scales, 5 K, 6 group, 7 mode, 8 threshold, 9 seed; pf: 0 alpha (1/T), 1 lambda
  qat_ste_weights: elementwise(`
  let K = P[5]; let n = i / K; let k = i % K;
  let u = ld(P[3] + i) * ld(P[4] + scale_index(n, k, K, P[6]));
  var g = 1.0;
  if (P[7] >= 1u) {
    if (abs(u) <= 1.0) {
      if (P[7] == 2u) {
        let al = pf(0);
        let inv2th = 1.0 / (2.0 * tanh_safe(al * 0.5));
        let t = tanh_safe(al * ((u - floor(u)) - 0.5));
        g = (al * (1.0 - t * t)) * inv2th;
      }
    } else { g = 0.0; }
  }
  let l = element_lambda(pf(1), P[8], P[9], i);
  st(P[1] + i, ld(P[1] + i) + ld(P[2] + i) * ((1.0 - l) + l * g));`, QAT_LAMBDA),
  // LSQ steps to multipliers. P: 0 count, 1 sw, 2 step, 3 absmean
  qat_lsq_scales: elementwise(`
  let d = ld(P[2] + i);
  if (d > 0.0) { st(P[1] + i, 1.0 / max(d, 1e-5)); }
  else { st(P[2] + i, 1.0 / ld(P[3] + i)); st(P[1] + i, ld(P[3] + i)); }`),
  // dstep[g] += gradScale sum_{i in g} l_i dwq_i dWhat/ddelta, a workgroup per group.
  // P: 0 groups, 1 dstep, 2 dwq, 3 w, 4 sw, 5 group, 6 threshold, 7 seed; pf: 0 lambda, 1 gradScale
  qat_lsq_step_grad: perRow(`
  let G = P[5]; let s = ld(P[4] + row);
  var acc = 0.0;
  for (var j = li; j < G; j += ${WG}u) {
    let i = row * G + j;
    let u = ld(P[3] + i) * s;
    var d = round(u) - u;
    if (u >= 1.0) { d = 1.0; } else if (u <= -1.0) { d = -1.0; }
    acc = acc + element_lambda(pf(0), P[6], P[7], i) * ld(P[2] + i) * d;
  }
  let total = wg_sum(li, acc);
  if (li == 0u) { st(P[1] + row, ld(P[1] + row) + pf(1) * total); }`, QAT_LAMBDA),
  // dst[:, dstCol0..+n) (+)= src[:, srcCol0..+n). P: 0 M*n, 1 dst, 2 dstCols, 3 dstCol0, 4 src, 5 srcCols, 6 srcCol0, 7 n, 8 accumulate
  qat_copy_columns: elementwise(`
  let m = i / P[7]; let j = i % P[7];
  let d = P[1] + m * P[2] + P[3] + j;
  let x = ld(P[4] + m * P[5] + P[6] + j);
  st(d, select(x, ld(d) + x, P[8] == 1u));`),
  // distillation loss, a workgroup per row: probs = softmax(z), probsT = softmax(z/T), teacherT = softmax(t/T).
  // P: 0 N, 1 losses, 2 probs, 3 probsT, 4 teacherT, 5 logits, 6 teacher, 7 targets, 8 V; pf: 0 T, 1 alpha
  kd_forward: perRow(`
  let V = P[8]; let o = row * V;
  let lse = softmax_row(li, P[2] + o, P[5] + o, V, 1.0);
  let invT = 1.0 / pf(0);
  let lseS = softmax_row(li, P[3] + o, P[5] + o, V, invT);
  let lseT = softmax_row(li, P[4] + o, P[6] + o, V, invT);
  var kl = 0.0;
  for (var i = li; i < V; i += ${WG}u) {
    let pt = ld(P[4] + o + i);
    if (pt > 0.0) { kl = kl + pt * ((ld(P[6] + o + i) * invT - lseT) - (ld(P[5] + o + i) * invT - lseS)); }
  }
  let KL = wg_sum(li, kl);
  if (li == 0u) {
    let ce = lse - ld(P[5] + o + ldi(P[7] + row));
    let a = pf(1); let T = pf(0);
    st(P[1] + row, a * ce + (1.0 - a) * T * T * KL);
  }`, /* wgsl */ `
// softmax(z * invT) of a row into p; returns lse with log p_i = z_i invT - lse
fn softmax_row(li: u32, p: u32, z: u32, V: u32, invT: f32) -> f32 {
  var m = -3.4028234e38;
  for (var i = li; i < V; i += ${WG}u) { m = max(m, ld(z + i) * invT); }
  let mx = wg_max(li, m);
  var s = 0.0;
  for (var i = li; i < V; i += ${WG}u) { s = s + exp(ld(z + i) * invT - mx); }
  let sum = wg_sum(li, s);
  for (var i = li; i < V; i += ${WG}u) { st(p + i, exp(ld(z + i) * invT - mx) / sum); }
  return mx + log(sum);
}`),
  // dlogits += dl (alpha (p - onehot) + (1 - alpha) T (psT - ptT)).
  // P: 0 N*V, 1 dlogits, 2 probs, 3 probsT, 4 teacherT, 5 targets, 6 dlosses, 7 V; pf: 0 alpha, 1 (1-alpha)*T
  kd_backward: elementwise(`
  let n = i / P[7]; let v = i % P[7];
  let oh = select(0.0, 1.0, v == ldi(P[5] + n));
  let g = pf(0) * (ld(P[2] + i) - oh) + pf(1) * (ld(P[3] + i) - ld(P[4] + i));
  st(P[1] + i, ld(P[1] + i) + ld(P[6] + n) * g);`),
  // rowsum (N) = sum_k (u - q(u))^2, a workgroup per row. P: 0 N, 1 rowsum, 2 w, 3 scales, 4 K, 5 group
  qat_grid_penalty: perRow(`
  let K = P[4];
  var acc = 0.0;
  for (var k = li; k < K; k += ${WG}u) {
    let u = ld(P[2] + row * K + k) * ld(P[3] + scale_index(row, k, K, P[5]));
    let e = u - ternary_code(u);
    acc = acc + e * e;
  }
  let total = wg_sum(li, acc);
  if (li == 0u) { st(P[1] + row, total); }`, QAT_LAMBDA),
  // dw += dout[0] coef (u - q(u)) s. P: 0 N*K, 1 dw, 2 w, 3 scales, 4 dout, 5 K, 6 group; pf(0) coef
  qat_grid_penalty_backward: elementwise(`
  let K = P[5]; let n = i / K; let k = i % K;
  let s = ld(P[3] + scale_index(n, k, K, P[6]));
  let u = ld(P[2] + i) * s;
  let c = ld(P[4]) * pf(0);
  st(P[1] + i, ld(P[1] + i) + (c * (u - ternary_code(u))) * s);`, QAT_LAMBDA),
  // w = clamp(w, -bound/s, bound/s). P: 0 N*K, 1 w, 2 scales, 3 K, 4 group; pf(0) bound
  qat_clamp_weights: elementwise(`
  let K = P[3]; let n = i / K; let k = i % K;
  let b = pf(0) / ld(P[2] + scale_index(n, k, K, P[4]));
  st(P[1] + i, max(-b, min(b, ld(P[1] + i))));`),
};
