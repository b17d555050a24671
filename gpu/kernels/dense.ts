/**
 * WGSL of the dense layers: GEMM (4x4 outputs per invocation), LayerNorm / RMSNorm, attention
 * (grouped-query form; multi-head is NKV = NH), RoPE, embedding, softmax + cross-entropy, AdamW.
 * Shapes and semantics as in src/backend/backend.ts; parameters documented per kernel.
 */
import { PRELUDE, WG, elementwise, perRow } from './prelude.js';

/**
 * out (M,N) (+)= A·B with A(i,k) = a[i*sai + k*sak], B(k,j) = b[k*sbk + j*sbj] (this covers
 * nn, nt and tn). Workgroup 8x8 invocations, each a 4x4 block of outputs (a 32x32 tile): on
 * CPU adapters this beat a shared-memory tile; k runs in order, one fixed sum per output.
 * P: 0 M, 1 N, 2 K, 3 out, 4 a, 5 b, 6 sai, 7 sak, 8 sbk, 9 sbj, 10 accumulate.
 */
export const GEMM = `${PRELUDE}
@compute @workgroup_size(8, 8)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let M = P[0]; let N = P[1]; let K = P[2];
  let i0 = (wid.y * 8u + lid.y) * 4u;
  let j0 = (wid.x * 8u + lid.x) * 4u;
  if (i0 >= M || j0 >= N) { return; }
  let sai = P[6]; let sak = P[7]; let sbk = P[8]; let sbj = P[9];
  let a0 = P[4] + i0 * sai;
  let a1 = P[4] + min(i0 + 1u, M - 1u) * sai;
  let a2 = P[4] + min(i0 + 2u, M - 1u) * sai;
  let a3 = P[4] + min(i0 + 3u, M - 1u) * sai;
  let b0 = P[5] + j0 * sbj;
  let b1 = P[5] + min(j0 + 1u, N - 1u) * sbj;
  let b2 = P[5] + min(j0 + 2u, N - 1u) * sbj;
  let b3 = P[5] + min(j0 + 3u, N - 1u) * sbj;
  var c0 = vec4<f32>(0.0); var c1 = vec4<f32>(0.0); var c2 = vec4<f32>(0.0); var c3 = vec4<f32>(0.0);
  for (var k = 0u; k < K; k++) {
    let ka = k * sak; let kb = k * sbk;
    let bv = vec4<f32>(ld(b0 + kb), ld(b1 + kb), ld(b2 + kb), ld(b3 + kb));
    c0 = c0 + ld(a0 + ka) * bv;
    c1 = c1 + ld(a1 + ka) * bv;
    c2 = c2 + ld(a2 + ka) * bv;
    c3 = c3 + ld(a3 + ka) * bv;
  }
  let rows = array<vec4<f32>, 4>(c0, c1, c2, c3);
  for (var r = 0u; r < 4u; r++) {
    if (i0 + r >= M) { break; }
    for (var c = 0u; c < 4u; c++) {
      if (j0 + c >= N) { break; }
      let o = P[3] + (i0 + r) * N + j0 + c;
      var v = rows[r][c];
      if (P[10] == 1u) { v = ld(o) + v; }
      st(o, v);
    }
  }
}`;

export const DENSE: Record<string, string> = {
  // LayerNorm, a workgroup per row. P: 0 N, 1 out, 2 mean, 3 rstd, 4 inp, 5 weight, 6 bias (0: none), 7 C; pf(0) eps
  layernorm_forward: perRow(`
  let C = P[7]; let x = P[4] + row * C;
  var s = 0.0;
  for (var i = li; i < C; i += ${WG}u) { s = s + ld(x + i); }
  let m = wg_sum(li, s) / f32(C);
  var v = 0.0;
  for (var i = li; i < C; i += ${WG}u) { let d = ld(x + i) - m; v = v + d * d; }
  let rs = 1.0 / sqrt(wg_sum(li, v) / f32(C) + pf(0));
  for (var i = li; i < C; i += ${WG}u) {
    var y = (ld(x + i) - m) * rs * ld(P[5] + i);
    if (P[6] != 0u) { y = y + ld(P[6] + i); }
    st(P[1] + row * C + i, y);
  }
  if (li == 0u) { st(P[2] + row, m); st(P[3] + row, rs); }`),
  // in the forward pass: out = norm * weight + bias, norm = (x - mean) * rstd
  // P: 0 N, 1 dinp, 2 dout, 3 inp, 4 weight, 5 mean, 6 rstd, 7 C
  layernorm_backward_dinp: perRow(`
  let C = P[7]; let x = P[3] + row * C; let dy = P[2] + row * C;
  let m = ld(P[5] + row); let rs = ld(P[6] + row);
  var a = 0.0; var b = 0.0;
  for (var i = li; i < C; i += ${WG}u) {
    let nrm = (ld(x + i) - m) * rs;
    let dn = ld(P[4] + i) * ld(dy + i);
    a = a + dn; b = b + dn * nrm;
  }
  let dm = wg_sum(li, a) / f32(C);
  let dnm = wg_sum(li, b) / f32(C);
  for (var i = li; i < C; i += ${WG}u) {
    let nrm = (ld(x + i) - m) * rs;
    let dn = ld(P[4] + i) * ld(dy + i);
    let o = P[1] + row * C + i;
    st(o, ld(o) + (dn - dm - nrm * dnm) * rs);
  }`),
  // dweight (C) += sum_n norm*dout, dbias (C) += sum_n dout: a lane per column, rows in order.
  // P: 0 C, 1 dweight, 2 dbias (0: none), 3 dout, 4 inp, 5 mean, 6 rstd, 7 N
  layernorm_backward_dparams: elementwise(`
  let C = P[0];
  var dw = ld(P[1] + i);
  var db = 0.0;
  if (P[2] != 0u) { db = ld(P[2] + i); }
  for (var n = 0u; n < P[7]; n++) {
    let dy = ld(P[3] + n * C + i);
    dw = dw + (ld(P[4] + n * C + i) - ld(P[5] + n)) * ld(P[6] + n) * dy;
    db = db + dy;
  }
  st(P[1] + i, dw);
  if (P[2] != 0u) { st(P[2] + i, db); }`),
  // RMSNorm. P: 0 N, 1 out, 2 rstd, 3 inp, 4 weight (0: none), 5 C; pf(0) eps
  rmsnorm_forward: perRow(`
  let C = P[5]; let x = P[3] + row * C;
  var s = 0.0;
  for (var i = li; i < C; i += ${WG}u) { let v = ld(x + i); s = s + v * v; }
  let rs = 1.0 / sqrt(wg_sum(li, s) / f32(C) + pf(0));
  for (var i = li; i < C; i += ${WG}u) {
    var y = ld(x + i) * rs;
    if (P[4] != 0u) { y = y * ld(P[4] + i); }
    st(P[1] + row * C + i, y);
  }
  if (li == 0u) { st(P[2] + row, rs); }`),
  // in the forward pass: out = norm * weight, norm = x * rstd; dx = rstd (dnorm - norm mean(dnorm norm))
  // P: 0 N, 1 dinp, 2 dout, 3 inp, 4 weight (0: none), 5 rstd, 6 C
  rmsnorm_backward_dinp: perRow(`
  let C = P[6]; let x = P[3] + row * C; let dy = P[2] + row * C; let rs = ld(P[5] + row);
  var b = 0.0;
  for (var i = li; i < C; i += ${WG}u) {
    var dn = ld(dy + i);
    if (P[4] != 0u) { dn = dn * ld(P[4] + i); }
    b = b + dn * ld(x + i) * rs;
  }
  let dnm = wg_sum(li, b) / f32(C);
  for (var i = li; i < C; i += ${WG}u) {
    var dn = ld(dy + i);
    if (P[4] != 0u) { dn = dn * ld(P[4] + i); }
    let o = P[1] + row * C + i;
    st(o, ld(o) + (dn - ld(x + i) * rs * dnm) * rs);
  }`),
  // dweight (C) += sum_n x*rstd*dout. P: 0 C, 1 dweight, 2 dout, 3 inp, 4 rstd, 5 N
  rmsnorm_backward_dweight: elementwise(`
  let C = P[0];
  var dw = ld(P[1] + i);
  for (var n = 0u; n < P[5]; n++) { dw = dw + ld(P[3] + n * C + i) * ld(P[4] + n) * ld(P[2] + n * C + i); }
  st(P[1] + i, dw);`),

  // Causal grouped-query attention forward, a lane per (b, h, t).
  // P: 0 B*NH*T, 1 out, 2 preatt, 3 att, 4 q, 5 k, 6 v, 7 T, 8 NH, 9 NKV, 10 hs, 11 qs, 12 kvs; pf(0) 1/sqrt(hs)
  attention_forward: elementwise(`
  let T = P[7]; let NH = P[8]; let hs = P[10]; let qs = P[11]; let kvs = P[12];
  let t = i % T; let h = (i / T) % NH; let b = i / (T * NH);
  let kvo = (h / (NH / P[9])) * hs;
  let qt = P[4] + (b * T + t) * qs + h * hs;
  let rowo = ((b * NH + h) * T + t) * T;
  let pre = P[2] + rowo; let a = P[3] + rowo;
  var mx = -3.4028234e38;
  for (var t2 = 0u; t2 <= t; t2++) {
    let kt = P[5] + (b * T + t2) * kvs + kvo;
    var d = 0.0;
    for (var e = 0u; e < hs; e++) { d = d + ld(qt + e) * ld(kt + e); }
    d = d * pf(0);
    st(pre + t2, d);
    mx = max(mx, d);
  }
  var es = 0.0;
  for (var t2 = 0u; t2 <= t; t2++) { let ex = exp(ld(pre + t2) - mx); es = es + ex; st(a + t2, ex); }
  let inv = 1.0 / es;
  for (var t2 = 0u; t2 < T; t2++) { st(a + t2, select(0.0, ld(a + t2) * inv, t2 <= t)); }
  let o = P[1] + (b * T + t) * (NH * hs) + h * hs;
  for (var e = 0u; e < hs; e++) {
    var acc = 0.0;
    for (var t2 = 0u; t2 <= t; t2++) { acc = acc + ld(a + t2) * ld(P[6] + (b * T + t2) * kvs + kvo + e); }
    st(o + e, acc);
  }`),
  // Backward, pass 1, a lane per query (b, h, t): datt, dpreatt of its row and dq.
  // in the forward pass: out = sum_t2 att[t2] v[t2], att = softmax(preatt), preatt[t2] = scale q.k[t2]
  // P: 0 B*NH*T, 1 dq, 2 dpreatt, 3 datt, 4 dout, 5 q, 6 k, 7 v, 8 att, 9 T, 10 NH, 11 NKV, 12 hs, 13 qs, 14 kvs; pf(0) scale
  attention_backward_query: elementwise(`
  let T = P[9]; let NH = P[10]; let hs = P[12]; let qs = P[13]; let kvs = P[14];
  let t = i % T; let h = (i / T) % NH; let b = i / (T * NH);
  let kvo = (h / (NH / P[11])) * hs;
  let rowo = ((b * NH + h) * T + t) * T;
  let a = P[8] + rowo; let da = P[3] + rowo; let dpre = P[2] + rowo;
  let dy = P[4] + (b * T + t) * (NH * hs) + h * hs;
  var s = 0.0;
  for (var t2 = 0u; t2 <= t; t2++) {
    let vt = P[7] + (b * T + t2) * kvs + kvo;
    var d = 0.0;
    for (var e = 0u; e < hs; e++) { d = d + ld(vt + e) * ld(dy + e); }
    st(da + t2, d);
    s = s + ld(a + t2) * d;
  }
  for (var t2 = 0u; t2 <= t; t2++) { st(dpre + t2, ld(a + t2) * (ld(da + t2) - s)); }
  let dqt = P[1] + (b * T + t) * qs + h * hs;
  for (var e = 0u; e < hs; e++) {
    var acc = 0.0;
    for (var t2 = 0u; t2 <= t; t2++) { acc = acc + ld(dpre + t2) * ld(P[6] + (b * T + t2) * kvs + kvo + e); }
    st(dqt + e, ld(dqt + e) + acc * pf(0));
  }`),
  // Backward, pass 2, a lane per key/value position (b, kv head g, t2, element e): dk, dv summed over
  // the query heads of the group and the queries t >= t2, in order.
  // P: 0 B*NKV*T*hs, 1 dk, 2 dv, 3 dpreatt, 4 dout, 5 q, 6 att, 7 T, 8 NH, 9 NKV, 10 hs, 11 qs, 12 kvs; pf(0) scale
  attention_backward_kv: elementwise(`
  let T = P[7]; let NH = P[8]; let NKV = P[9]; let hs = P[10]; let qs = P[11]; let kvs = P[12];
  let e = i % hs; let t2 = (i / hs) % T; let g = (i / (hs * T)) % NKV; let b = i / (hs * T * NKV);
  let G = NH / NKV;
  var dkacc = 0.0; var dvacc = 0.0;
  for (var h = g * G; h < (g + 1u) * G; h++) {
    for (var t = t2; t < T; t++) {
      let rowo = ((b * NH + h) * T + t) * T + t2;
      dkacc = dkacc + ld(P[3] + rowo) * ld(P[5] + (b * T + t) * qs + h * hs + e);
      dvacc = dvacc + ld(P[6] + rowo) * ld(P[4] + (b * T + t) * (NH * hs) + h * hs + e);
    }
  }
  let o = (b * T + t2) * kvs + g * hs + e;
  st(P[1] + o, ld(P[1] + o) + dkacc * pf(0));
  st(P[2] + o, ld(P[2] + o) + dvacc);`),

  // RoPE on the first \`heads\` heads of each row, a lane per pair (row r, head, i < hs/2).
  // P: 0 B*T*heads*half, 1 out, 2 inp, 3 table, 4 T, 5 stride, 6 heads, 7 hs, 8 backward (accumulate, rotate by -angle)
  rope_pairs: elementwise(`
  let hs = P[7]; let half = hs / 2u; let heads = P[6];
  let e = i % half; let hd = (i / half) % heads; let r = i / (half * heads);
  let cs = P[3] + (r % P[4]) * hs;
  let c = ld(cs + e); let sn = ld(cs + half + e);
  let xo = P[2] + r * P[5] + hd * hs + e;
  let yo = P[1] + r * P[5] + hd * hs + e;
  let x1 = ld(xo); let x2 = ld(xo + half);
  if (P[8] == 0u) {
    st(yo, x1 * c - x2 * sn);
    st(yo + half, x2 * c + x1 * sn);
  } else {
    st(yo, ld(yo) + x1 * c + x2 * sn);
    st(yo + half, ld(yo + half) + x2 * c - x1 * sn);
  }`),
  // the rest of each row (after heads*hs): copied (forward) or accumulated (backward).
  // P: 0 B*T*rest, 1 out, 2 inp, 3 rest, 4 stride, 5 heads*hs, 6 backward
  rope_rest: elementwise(`
  let r = i / P[3]; let j = P[5] + i % P[3];
  let o = P[1] + r * P[4] + j;
  let x = ld(P[2] + r * P[4] + j);
  st(o, select(x, ld(o) + x, P[6] == 1u));`),

  // out (B,T,C) = wte[tokens] + wpe[t]. P: 0 B*T*C, 1 out, 2 tokens, 3 wte, 4 wpe (0: none), 5 T, 6 C
  embedding_forward: elementwise(`
  let C = P[6]; let bt = i / C; let c = i % C;
  var y = ld(P[3] + ldi(P[2] + bt) * C + c);
  if (P[4] != 0u) { y = y + ld(P[4] + (bt % P[5]) * C + c); }
  st(P[1] + i, y);`),
  // in the forward pass: out[b,t] = wte[ix] + wpe[t]. A lane per column c scatters every
  // position in order (no two lanes touch one element: no atomics). P: 0 C, 1 dwte, 2 dout, 3 tokens, 4 B*T
  embedding_backward_wte: elementwise(`
  let C = P[0];
  for (var bt = 0u; bt < P[4]; bt++) {
    let o = P[1] + ldi(P[3] + bt) * C + i;
    st(o, ld(o) + ld(P[2] + bt * C + i));
  }`),
  // dwpe[t] += sum_b dout[b,t]; a lane per (t, c). P: 0 T*C, 1 dwpe, 2 dout, 3 B, 4 T*C
  embedding_backward_wpe: elementwise(`
  var acc = ld(P[1] + i);
  for (var b = 0u; b < P[3]; b++) { acc = acc + ld(P[2] + b * P[4] + i); }
  st(P[1] + i, acc);`),

  // Fused softmax + cross-entropy, a workgroup per row. P: 0 N, 1 losses, 2 probs, 3 logits, 4 targets, 5 V
  cross_entropy_forward: perRow(`
  let V = P[5]; let x = P[3] + row * V; let p = P[2] + row * V;
  var m = -3.4028234e38;
  for (var i = li; i < V; i += ${WG}u) { m = max(m, ld(x + i)); }
  let mx = wg_max(li, m);
  var s = 0.0;
  for (var i = li; i < V; i += ${WG}u) { s = s + exp(ld(x + i) - mx); }
  let sum = wg_sum(li, s);
  let inv = 1.0 / sum;
  for (var i = li; i < V; i += ${WG}u) { st(p + i, exp(ld(x + i) - mx) * inv); }
  // -log softmax[target] = log(sum) - (logit[target] - max)
  if (li == 0u) { st(P[1] + row, log(sum) - (ld(x + ldi(P[4] + row)) - mx)); }`),
  // in the forward pass: loss = -log p[target]; dlogits += (p - onehot) dloss. P: 0 N*V, 1 dlogits, 2 probs, 3 targets, 4 dlosses, 5 V
  cross_entropy_backward: elementwise(`
  let n = i / P[5]; let v = i % P[5];
  let oh = select(0.0, 1.0, v == ldi(P[3] + n));
  st(P[1] + i, ld(P[1] + i) + (ld(P[2] + i) - oh) * ld(P[4] + n));`),

  // AdamW, decoupled decay. P: 0 n, 1 params, 2 grads, 3 m, 4 v, 5 gradScale (0: none);
  // pf: 0 lr, 1 beta1, 2 beta2, 3 eps, 4 weightDecay, 5 1-beta1^step, 6 1-beta2^step
  adamw: elementwise(`
  var gs = 1.0;
  if (P[5] != 0u) { gs = ld(P[5]); }
  let g = ld(P[2] + i) * gs;
  let b1 = pf(1); let b2 = pf(2);
  let mi = b1 * ld(P[3] + i) + (1.0 - b1) * g;
  let vi = b2 * ld(P[4] + i) + (1.0 - b2) * g * g;
  st(P[3] + i, mi);
  st(P[4] + i, vi);
  let p = ld(P[1] + i);
  st(P[1] + i, p - pf(0) * ((mi / pf(5)) / (sqrt(vi / pf(6)) + pf(3)) + pf(4) * p));`),
};

