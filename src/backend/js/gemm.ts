/**
 * Reference GEMM of the `js` backend: plain loops, the oracle the wasm kernels are tested
 * against. out is (M,N) in every layout (see `GemmLayout`):
 * - `nn`: out (+)= A·B,   A (M,K), B (K,N)
 * - `nt`: out (+)= A·Bᵀ,  A (M,K), B (N,K)
 * - `tn`: out (+)= Aᵀ·B,  A (K,M), B (K,N)
 *
 * nn and tn run in i-k-j order (rows of B streamed contiguously) and sum into `out` in the
 * memory's own precision; nt runs in i-j-k order (two contiguous rows per dot product) and
 * sums in a JS double. Arguments are not checked here: the backend checks them.
 */
import type { GemmLayout } from '../backend.js';

/**
 * `out (M,N) = op(A)·op(B)`, or `+=` when `accumulate`. `out`, `a`, `b` are element offsets
 * into `mem`; `out` must not overlap `a` or `b`.
 *
 * @example
 * const mem = new Float64Array(16);
 * mem.set([1, 2, 3, 4], 4); mem.set([5, 6, 7, 8], 8);    // A, B: 2x2 each
 * gemmReference('nn', mem, 12, 4, 8, 2, 2, 2, false);     // mem[12..16) = [19, 22, 43, 50]
 */
export function gemmReference(
  layout: GemmLayout,
  mem: Float32Array | Float64Array,
  out: number, a: number, b: number,
  M: number, N: number, K: number,
  accumulate: boolean,
): void {
  if (layout === 'nt') {
    for (let i = 0; i < M; i++) {
      const ai = a + i * K, oi = out + i * N;
      for (let j = 0; j < N; j++) {
        const bj = b + j * K;
        let s = 0;
        for (let k = 0; k < K; k++) s += mem[ai + k] * mem[bj + k];
        mem[oi + j] = accumulate ? mem[oi + j] + s : s;
      }
    }
    return;
  }
  // nn: A(i,k) = a[i*K + k]; tn: A(i,k) = a[k*M + i].
  const rowStride = layout === 'nn' ? K : 1, depthStride = layout === 'nn' ? 1 : M;
  for (let i = 0; i < M; i++) {
    const oi = out + i * N;
    if (!accumulate) mem.fill(0, oi, oi + N);
    for (let k = 0; k < K; k++) {
      const aik = mem[a + i * rowStride + k * depthStride];
      const bk = b + k * N;
      for (let j = 0; j < N; j++) mem[oi + j] += aik * mem[bk + j];
    }
  }
}
