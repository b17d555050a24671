/**
 * The WGSL every kernel of the webgpu backend starts with: the bindings and the helpers that
 * address the backend's one flat memory.
 *
 * - binding 0 `mem`: the arena, one `array<u32>`; element `p` (a `Ptr`) is the f32 whose bits are
 *   `mem[p]`, integers stored by `writeIndices` are f32 values (as in the wasm backend), and byte
 *   buffers (int8 activations, 2-bit packed weights) pack 4 bytes a slot, little-endian, so byte
 *   `b` of a buffer at `p` is byte `(4p + b) & 3` of `mem[(4p + b) >> 2]`;
 * - binding 1 `P`: this dispatch's parameters, 64 u32 read at a dynamic offset of a pooled
 *   storage ring: `P[0..32)` integers (sizes, pointers), `P[32..64)` f32 bits (`pf(j)`);
 * - binding 2 `part`: the backend's own f32 scratch for two-pass reductions (partial sums).
 *
 * 1-D kernels run `@workgroup_size(64)` over a grid that may be 2-D (more than 65535
 * workgroups): `flat_id` folds it back. No kernel uses float atomics: every sum has one fixed
 * order, so a run repeats bit for bit on one adapter.
 */
export const WG = 64;

export const PRELUDE = /* wgsl */ `
@group(0) @binding(0) var<storage, read_write> mem: array<u32>;
@group(0) @binding(1) var<storage, read> P: array<u32, 64>;
@group(0) @binding(2) var<storage, read_write> part: array<f32>;

fn pf(j: u32) -> f32 { return bitcast<f32>(P[32u + j]); }
fn ld(i: u32) -> f32 { return bitcast<f32>(mem[i]); }
fn st(i: u32, x: f32) { mem[i] = bitcast<u32>(x); }
// an index slot written by writeIndices (an integer-valued f32)
fn ldi(i: u32) -> u32 { return u32(ld(i)); }
// byte b (absolute byte address), zero-extended
fn byte_at(b: u32) -> u32 { return (mem[b >> 2u] >> ((b & 3u) * 8u)) & 0xffu; }
// 4 consecutive bytes from absolute byte address b (any alignment), byte j in bits 8j..8j+7
fn quad_at(b: u32) -> u32 {
  let w0 = mem[b >> 2u];
  let sh = (b & 3u) * 8u;
  if (sh == 0u) { return w0; }
  let w1 = mem[(b >> 2u) + 1u];
  return (w0 >> sh) | (w1 << (32u - sh));
}
// signed int8 in byte j of word w
fn sbyte(w: u32, j: u32) -> i32 { return (bitcast<i32>(w << (24u - 8u * j))) >> 24u; }
fn flat_id(wid: vec3<u32>, nwg: vec3<u32>, li: u32) -> u32 { return (wid.y * nwg.x + wid.x) * ${WG}u + li; }
fn flat_group(wid: vec3<u32>, nwg: vec3<u32>) -> u32 { return wid.y * nwg.x + wid.x; }
// tanh without overflow (WGSL's tanh may be computed as sinh/cosh)
fn tanh_safe(x: f32) -> f32 {
  let a = abs(x);
  if (a < 0.0005) { return x * (1.0 - x * x / 3.0); }
  let e = exp(-2.0 * a);
  let t = (1.0 - e) / (1.0 + e);
  return select(-t, t, x >= 0.0);
}
// a / b correctly rounded (WGSL's f32 division may be 2.5 ulp off, and quantisation codes
// depend on the scale's last bit): one Newton correction with the exact residual a - q*b
// (Dekker's product in plain f32, Veltkamp split by 4097)
fn split_hi(a: f32) -> f32 { let c = 4097.0 * a; return c - (c - a); }
fn div_rn(a: f32, b: f32) -> f32 {
  let q = a / b;
  let p = q * b;
  let qh = split_hi(q); let ql = q - qh;
  let bh = split_hi(b); let bl = b - bh;
  let e = ((qh * bh - p) + qh * bl + ql * bh) + ql * bl;
  let r = (a - p) - e;
  return q + r / b;
}
// the scale of weight element (n, k) of W (N,K) under \`group\` (see src/quant/layout.ts)
fn scale_index(n: u32, k: u32, K: u32, group: u32) -> u32 {
  return (n * K) / group + select(k / group, 0u, group >= K);
}
`;

/** Workgroup reductions over 64 lanes in one fixed tree order (deterministic). */
export const WG_REDUCE = /* wgsl */ `
var<workgroup> red: array<f32, ${WG}>;
fn wg_sum(li: u32, x: f32) -> f32 {
  red[li] = x;
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s = s >> 1u) {
    if (li < s) { red[li] = red[li] + red[li + s]; }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}
fn wg_max(li: u32, x: f32) -> f32 {
  red[li] = x;
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s = s >> 1u) {
    if (li < s) { red[li] = max(red[li], red[li + s]); }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}
`;

/** A 1-D kernel: `body` runs for `i` in [0, P[0]). */
export function elementwise(body: string, extra = ''): string {
  return `${PRELUDE}
${extra}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let i = flat_id(wid, nwg, li);
  if (i >= P[0]) { return; }
${body}
}`;
}

/** A kernel with one workgroup of 64 lanes per row: `body` sees `row` in [0, P[0]) and `li`. */
export function perRow(body: string, extra = ''): string {
  return `${PRELUDE}
${WG_REDUCE}
${extra}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let row = flat_group(wid, nwg);
  if (row >= P[0]) { return; }
${body}
}`;
}
