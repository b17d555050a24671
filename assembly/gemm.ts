// f32 GEMM in the three layouts training needs; each call computes output rows [r0, r1).
//   gemm_nn: out (M,N) (+)= A (M,K) · B (K,N)     linear backward: dX = dY·W
//   gemm_nt: out (M,N) (+)= A (M,K) · B (N,K)ᵀ    linear forward:  Y = X·Wᵀ
//   gemm_tn: out (M,N) (+)= A (K,M)ᵀ · B (K,N)    linear backward: dW = dYᵀ·X
// Pointers are byte offsets, matrices row-major and dense (leading dimension = row length).
// accumulate = 0 overwrites out, 1 adds to it. No scratch memory, nothing allocated.
//
// Summation order (fixed by M, N, K alone, so any split into row ranges, any tile a row
// lands in and SIMD or scalar code give bit-identical results; products are never fused):
//   nn, tn: s = accumulate ? out[i,j] : 0;  s += A[i,k]*B[k,j] for k = 0, 1, ..., K-1
//   nt:     lane l (l = 0..3) sums A[i,k]*B[j,k] over k ≡ l (mod 4), k < K&~3, from 0;
//           d = (lane0 + lane2) + (lane1 + lane3);  t = 0; t += A[i,k]*B[j,k] for k ≥ K&~3;
//           out[i,j] = accumulate ? out[i,j] + (d + t) : d + t
//
// Performance (numbers and what was tried: bench/README.md): register tiles of 8 f32x4
// accumulators (V8's x64 backend has 15 usable xmm registers; tiles with 9 and more spilled
// and ran at half speed when measured); columns split into blocks whose B panel stays in L2;
// nn/tn also split K into blocks of DEPTH_BLOCK. nn/tn use a 2-row × 16-column tile, SIMD over
// N, A splatted from memory; nt keeps B in its (N,K) layout and uses a 2 × 4 tile of dot
// products, SIMD over K, reduced once per tile. B is never packed (no scratch argument).

/** Bytes of B a column block may span; blocks are multiples of the 16-column tile. */
const PANEL_BYTES: i32 = 256 * 1024;

/** Rows of B (depth) per pass of the nn/tn tiles: A's 2 × DEPTH_BLOCK strip stays in L1. */
const DEPTH_BLOCK: i32 = 256;

/** Columns of out per block so that K rows of the block's B panel fit in PANEL_BYTES. */
@inline function columnBlock(K: i32): i32 {
  const nb = (PANEL_BYTES / (max(K, 1) << 2)) & ~15;
  return max(nb, 16);
}

// ---- nn and tn: SIMD over N --------------------------------------------------------------
// A(r,k) of the tile lives at pa + r*ar + k*ak: nn has ar = 4K, ak = 4; tn has ar = 4, ak = 4M.
// B(k,j) at pb + k*ldb + 4j with ldb = 4N; out(r,j) at po + r*ldc + 4j.

@inline function rows2cols16(po: usize, ldc: usize, pa: usize, ar: usize, ak: usize, pb: usize, ldb: usize, K: i32, acc: i32): void {
  let c00 = f32x4.splat(0), c01 = f32x4.splat(0), c02 = f32x4.splat(0), c03 = f32x4.splat(0);
  let c10 = f32x4.splat(0), c11 = f32x4.splat(0), c12 = f32x4.splat(0), c13 = f32x4.splat(0);
  if (acc) {
    c00 = v128.load(po); c01 = v128.load(po, 16); c02 = v128.load(po, 32); c03 = v128.load(po, 48);
    const p1 = po + ldc;
    c10 = v128.load(p1); c11 = v128.load(p1, 16); c12 = v128.load(p1, 32); c13 = v128.load(p1, 48);
  }
  for (let k = 0; k < K; k++) {
    const b0 = v128.load(pb), b1 = v128.load(pb, 16), b2 = v128.load(pb, 32), b3 = v128.load(pb, 48);
    const a0 = v128.load32_splat(pa);
    c00 = f32x4.add(c00, f32x4.mul(a0, b0)); c01 = f32x4.add(c01, f32x4.mul(a0, b1));
    c02 = f32x4.add(c02, f32x4.mul(a0, b2)); c03 = f32x4.add(c03, f32x4.mul(a0, b3));
    const a1 = v128.load32_splat(pa + ar);
    c10 = f32x4.add(c10, f32x4.mul(a1, b0)); c11 = f32x4.add(c11, f32x4.mul(a1, b1));
    c12 = f32x4.add(c12, f32x4.mul(a1, b2)); c13 = f32x4.add(c13, f32x4.mul(a1, b3));
    pa += ak; pb += ldb;
  }
  v128.store(po, c00); v128.store(po, c01, 16); v128.store(po, c02, 32); v128.store(po, c03, 48);
  const p1 = po + ldc;
  v128.store(p1, c10); v128.store(p1, c11, 16); v128.store(p1, c12, 32); v128.store(p1, c13, 48);
}

@inline function row1cols16(po: usize, pa: usize, ak: usize, pb: usize, ldb: usize, K: i32, acc: i32): void {
  let c0 = f32x4.splat(0), c1 = f32x4.splat(0), c2 = f32x4.splat(0), c3 = f32x4.splat(0);
  if (acc) { c0 = v128.load(po); c1 = v128.load(po, 16); c2 = v128.load(po, 32); c3 = v128.load(po, 48); }
  for (let k = 0; k < K; k++) {
    const a0 = v128.load32_splat(pa);
    c0 = f32x4.add(c0, f32x4.mul(a0, v128.load(pb))); c1 = f32x4.add(c1, f32x4.mul(a0, v128.load(pb, 16)));
    c2 = f32x4.add(c2, f32x4.mul(a0, v128.load(pb, 32))); c3 = f32x4.add(c3, f32x4.mul(a0, v128.load(pb, 48)));
    pa += ak; pb += ldb;
  }
  v128.store(po, c0); v128.store(po, c1, 16); v128.store(po, c2, 32); v128.store(po, c3, 48);
}

@inline function rows2cols4(po: usize, ldc: usize, pa: usize, ar: usize, ak: usize, pb: usize, ldb: usize, K: i32, acc: i32): void {
  let c0 = f32x4.splat(0), c1 = f32x4.splat(0);
  if (acc) { c0 = v128.load(po); c1 = v128.load(po + ldc); }
  for (let k = 0; k < K; k++) {
    const b = v128.load(pb);
    c0 = f32x4.add(c0, f32x4.mul(v128.load32_splat(pa), b));
    c1 = f32x4.add(c1, f32x4.mul(v128.load32_splat(pa + ar), b));
    pa += ak; pb += ldb;
  }
  v128.store(po, c0); v128.store(po + ldc, c1);
}

@inline function row1cols4(po: usize, pa: usize, ak: usize, pb: usize, ldb: usize, K: i32, acc: i32): void {
  let c0 = acc ? v128.load(po) : f32x4.splat(0);
  for (let k = 0; k < K; k++) {
    c0 = f32x4.add(c0, f32x4.mul(v128.load32_splat(pa), v128.load(pb)));
    pa += ak; pb += ldb;
  }
  v128.store(po, c0);
}

/** One output element, scalar; same order as the SIMD tiles. */
@inline function row1col1(po: usize, pa: usize, ak: usize, pb: usize, ldb: usize, K: i32, acc: i32): void {
  let s: f32 = acc ? load<f32>(po) : 0;
  for (let k = 0; k < K; k++) {
    s += load<f32>(pa) * load<f32>(pb);
    pa += ak; pb += ldb;
  }
  store<f32>(po, s);
}

/** nn and tn driver: A(i,k) at a + i*ar + k*ak, B (K,N) row-major. */
function gemmSimdN(out: usize, a: usize, ar: usize, ak: usize, b: usize, N: i32, K: i32, acc: i32, r0: i32, r1: i32): void {
  const ldc = <usize>N << 2, ldb = ldc;
  const nb = columnBlock(min(K, DEPTH_BLOCK));
  for (let jb = 0; jb < N; jb += nb) {
    const je = min(jb + nb, N);
    // K in blocks of DEPTH_BLOCK: out holds the running sum between blocks, so the order of
    // the additions is the same as in one pass (and K = 0 still writes the rows once).
    let kb = 0;
    do {
      const kl = min(DEPTH_BLOCK, K - kb), accb = kb > 0 ? 1 : acc;
      const bk = b + <usize>kb * ldb, ak0 = <usize>kb * ak;
      let i = r0;
      for (; i + 2 <= r1; i += 2) {
        const po = out + <usize>i * ldc, pa = a + <usize>i * ar + ak0;
        let j = jb;
        for (; j + 16 <= je; j += 16) rows2cols16(po + (<usize>j << 2), ldc, pa, ar, ak, bk + (<usize>j << 2), ldb, kl, accb);
        for (; j + 4 <= je; j += 4) rows2cols4(po + (<usize>j << 2), ldc, pa, ar, ak, bk + (<usize>j << 2), ldb, kl, accb);
        for (; j < je; j++) {
          row1col1(po + (<usize>j << 2), pa, ak, bk + (<usize>j << 2), ldb, kl, accb);
          row1col1(po + ldc + (<usize>j << 2), pa + ar, ak, bk + (<usize>j << 2), ldb, kl, accb);
        }
      }
      if (i < r1) {
        const po = out + <usize>i * ldc, pa = a + <usize>i * ar + ak0;
        let j = jb;
        for (; j + 16 <= je; j += 16) row1cols16(po + (<usize>j << 2), pa, ak, bk + (<usize>j << 2), ldb, kl, accb);
        for (; j + 4 <= je; j += 4) row1cols4(po + (<usize>j << 2), pa, ak, bk + (<usize>j << 2), ldb, kl, accb);
        for (; j < je; j++) row1col1(po + (<usize>j << 2), pa, ak, bk + (<usize>j << 2), ldb, kl, accb);
      }
      kb += DEPTH_BLOCK;
    } while (kb < K);
  }
}

/** out (M,N) (+)= A (M,K) · B (K,N), rows [r0, r1) of out. */
export function gemm_nn(out: usize, a: usize, b: usize, M: i32, N: i32, K: i32, accumulate: i32, r0: i32, r1: i32): void {
  gemmSimdN(out, a, <usize>K << 2, 4, b, N, K, accumulate, r0, r1);
}

/** out (M,N) (+)= A (K,M)ᵀ · B (K,N), rows [r0, r1) of out. */
export function gemm_tn(out: usize, a: usize, b: usize, M: i32, N: i32, K: i32, accumulate: i32, r0: i32, r1: i32): void {
  gemmSimdN(out, a, 4, <usize>M << 2, b, N, K, accumulate, r0, r1);
}

// ---- nt: dot products, SIMD over K -------------------------------------------------------
// A row r of the tile at pa + r*lda, B row c at pb + c*lda (both (.,K), lda = 4K).

/** (lane0 + lane2) + (lane1 + lane3) of each of c0..c3, as one vector. */
@inline function reduce4(c0: v128, c1: v128, c2: v128, c3: v128): v128 {
  const u01 = f32x4.add(v128.shuffle<f32>(c0, c1, 0, 4, 1, 5), v128.shuffle<f32>(c0, c1, 2, 6, 3, 7));
  const u23 = f32x4.add(v128.shuffle<f32>(c2, c3, 0, 4, 1, 5), v128.shuffle<f32>(c2, c3, 2, 6, 3, 7));
  return f32x4.add(v128.shuffle<f32>(u01, u23, 0, 1, 4, 5), v128.shuffle<f32>(u01, u23, 2, 3, 6, 7));
}

/** (lane0 + lane2) + (lane1 + lane3): the scalar twin of reduce4. */
@inline function reduce1(c: v128): f32 {
  return (f32x4.extract_lane(c, 0) + f32x4.extract_lane(c, 2)) + (f32x4.extract_lane(c, 1) + f32x4.extract_lane(c, 3));
}

/** t = 0; t += A[k]*B[k] for k in [k0, K): the K tail of a dot product. */
@inline function dotTail(pa: usize, pb: usize, k0: i32, K: i32): f32 {
  let t: f32 = 0;
  for (let k = k0; k < K; k++) t += load<f32>(pa + (<usize>k << 2)) * load<f32>(pb + (<usize>k << 2));
  return t;
}

/** The K tail of four dot products (A row pa against B rows pb + c*lda), as one vector. */
@inline function dotTail4(pa: usize, pb: usize, lda: usize, k0: i32, K: i32): v128 {
  let t = f32x4.splat(dotTail(pa, pb, k0, K));
  t = f32x4.replace_lane(t, 1, dotTail(pa, pb + lda, k0, K));
  t = f32x4.replace_lane(t, 2, dotTail(pa, pb + 2 * lda, k0, K));
  return f32x4.replace_lane(t, 3, dotTail(pa, pb + 3 * lda, k0, K));
}

@inline function finish4(po: usize, d: v128, acc: i32): void {
  v128.store(po, acc ? f32x4.add(v128.load(po), d) : d);
}

@inline function finish1(po: usize, d: f32, acc: i32): void {
  store<f32>(po, acc ? load<f32>(po) + d : d);
}

@inline function dots2x4(po: usize, ldc: usize, pa: usize, pb: usize, lda: usize, K: i32, acc: i32): void {
  let c00 = f32x4.splat(0), c01 = f32x4.splat(0), c02 = f32x4.splat(0), c03 = f32x4.splat(0);
  let c10 = f32x4.splat(0), c11 = f32x4.splat(0), c12 = f32x4.splat(0), c13 = f32x4.splat(0);
  const K4 = K & ~3;
  const pa1 = pa + lda, pb1 = pb + lda, pb2 = pb + 2 * lda, pb3 = pb + 3 * lda;
  for (let o: usize = 0, e = <usize>K4 << 2; o < e; o += 16) {
    const a0 = v128.load(pa + o), a1 = v128.load(pa1 + o);
    let b = v128.load(pb + o);
    c00 = f32x4.add(c00, f32x4.mul(a0, b)); c10 = f32x4.add(c10, f32x4.mul(a1, b));
    b = v128.load(pb1 + o);
    c01 = f32x4.add(c01, f32x4.mul(a0, b)); c11 = f32x4.add(c11, f32x4.mul(a1, b));
    b = v128.load(pb2 + o);
    c02 = f32x4.add(c02, f32x4.mul(a0, b)); c12 = f32x4.add(c12, f32x4.mul(a1, b));
    b = v128.load(pb3 + o);
    c03 = f32x4.add(c03, f32x4.mul(a0, b)); c13 = f32x4.add(c13, f32x4.mul(a1, b));
  }
  let d0 = reduce4(c00, c01, c02, c03), d1 = reduce4(c10, c11, c12, c13);
  if (K4 < K) {
    d0 = f32x4.add(d0, dotTail4(pa, pb, lda, K4, K));
    d1 = f32x4.add(d1, dotTail4(pa1, pb, lda, K4, K));
  }
  finish4(po, d0, acc); finish4(po + ldc, d1, acc);
}

@inline function dots1x4(po: usize, pa: usize, pb: usize, lda: usize, K: i32, acc: i32): void {
  let c0 = f32x4.splat(0), c1 = f32x4.splat(0), c2 = f32x4.splat(0), c3 = f32x4.splat(0);
  const K4 = K & ~3;
  const pb1 = pb + lda, pb2 = pb + 2 * lda, pb3 = pb + 3 * lda;
  for (let o: usize = 0, e = <usize>K4 << 2; o < e; o += 16) {
    const a0 = v128.load(pa + o);
    c0 = f32x4.add(c0, f32x4.mul(a0, v128.load(pb + o))); c1 = f32x4.add(c1, f32x4.mul(a0, v128.load(pb1 + o)));
    c2 = f32x4.add(c2, f32x4.mul(a0, v128.load(pb2 + o))); c3 = f32x4.add(c3, f32x4.mul(a0, v128.load(pb3 + o)));
  }
  let d = reduce4(c0, c1, c2, c3);
  if (K4 < K) d = f32x4.add(d, dotTail4(pa, pb, lda, K4, K));
  finish4(po, d, acc);
}

/** One output element: the scalar twin of the tiles above. */
@inline function dot1x1(po: usize, pa: usize, pb: usize, K: i32, acc: i32): void {
  let c = f32x4.splat(0);
  const K4 = K & ~3;
  for (let o: usize = 0, e = <usize>K4 << 2; o < e; o += 16) c = f32x4.add(c, f32x4.mul(v128.load(pa + o), v128.load(pb + o)));
  finish1(po, reduce1(c) + dotTail(pa, pb, K4, K), acc);
}

/** out (M,N) (+)= A (M,K) · B (N,K)ᵀ, rows [r0, r1) of out. */
export function gemm_nt(out: usize, a: usize, b: usize, M: i32, N: i32, K: i32, accumulate: i32, r0: i32, r1: i32): void {
  const ldc = <usize>N << 2, lda = <usize>K << 2;
  const nb = columnBlock(K);
  for (let jb = 0; jb < N; jb += nb) {
    const je = min(jb + nb, N);
    let i = r0;
    for (; i + 2 <= r1; i += 2) {
      const po = out + <usize>i * ldc, pa = a + <usize>i * lda;
      let j = jb;
      for (; j + 4 <= je; j += 4) dots2x4(po + (<usize>j << 2), ldc, pa, b + <usize>j * lda, lda, K, accumulate);
      for (; j < je; j++) {
        dot1x1(po + (<usize>j << 2), pa, b + <usize>j * lda, K, accumulate);
        dot1x1(po + ldc + (<usize>j << 2), pa + lda, b + <usize>j * lda, K, accumulate);
      }
    }
    if (i < r1) {
      const po = out + <usize>i * ldc, pa = a + <usize>i * lda;
      let j = jb;
      for (; j + 4 <= je; j += 4) dots1x4(po + (<usize>j << 2), pa, b + <usize>j * lda, lda, K, accumulate);
      for (; j < je; j++) dot1x1(po + (<usize>j << 2), pa, b + <usize>j * lda, K, accumulate);
    }
  }
}
