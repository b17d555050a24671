// NF4 matmuls of QLoRA (format: src/peft/nf4.ts; js twin: src/backend/js/nf4.ts). W (N,K) is
// stored as 4-bit codes (two a byte, the first in the high nibble), one double-quantised absmax
// per 64 values (u8 index into the 256-entry dynamic map `table`, times an f32 per 256 blocks,
// plus `offset`). Each kernel dequantises a panel of W into per-thread scratch and runs SIMD
// f32 dot products on it: W never exists in f32 as a whole. Pointers are byte offsets; K % 64 == 0.

// Rows of W in one forward panel (outputs computed together per activation row).
const FP: i32 = 4;

// The 16 NF4 levels (bitsandbytes' nf4 code book), as f32.
@inline function nf4Level(q: i32): f32 {
  switch (q) {
    case 0: return -1.0;
    case 1: return -0.6961928009986877;
    case 2: return -0.5250730514526367;
    case 3: return -0.39491748809814453;
    case 4: return -0.28444138169288635;
    case 5: return -0.18477343022823334;
    case 6: return -0.09105003625154495;
    case 7: return 0.0;
    case 8: return 0.07958029955625534;
    case 9: return 0.16093020141124725;
    case 10: return 0.24611230194568634;
    case 11: return 0.33791524171829224;
    case 12: return 0.44070982933044434;
    case 13: return 0.5626170039176941;
    case 14: return 0.7229568362236023;
    default: return 1.0;
  }
}

// The dequantised absmax of 64-block b.
@inline function blockScale(qabs: usize, abs2: usize, table: usize, offset: f32, b: i32): f32 {
  const q = <usize>load<u8>(qabs + <usize>b);
  return load<f32>(table + (q << 2)) * load<f32>(abs2 + (<usize>(b >> 8) << 2)) + offset;
}

// Dequantise W[n, k0 .. k0+len) (len a multiple of 64, k0 too) into dst (f32).
@inline function dequantRun(dst: usize, codes: usize, qabs: usize, abs2: usize, table: usize, offset: f32, n: i32, k0: i32, len: i32, K: i32): void {
  const base = <i64>n * <i64>K + <i64>k0;
  for (let j = 0; j < len; j += 64) {
    const s = blockScale(qabs, abs2, table, offset, <i32>((base + <i64>j) >> 6));
    const src = codes + <usize>((base + <i64>j) >> 1);
    const d = dst + (<usize>j << 2);
    for (let i = 0; i < 32; i++) {
      const byte = <i32>load<u8>(src + <usize>i);
      store<f32>(d + (<usize>(2 * i) << 2), nf4Level(byte >> 4) * s);
      store<f32>(d + (<usize>(2 * i + 1) << 2), nf4Level(byte & 15) * s);
    }
  }
}

// out (M,N) = x (M,K) . deq(W)^T, rows [r0, r1) of out. scratch: FP*K f32 per thread.
export function nf4_forward(out: usize, x: usize, codes: usize, qabs: usize, abs2: usize, table: usize, offset: f32,
                            scratch: usize, M: i32, N: i32, K: i32, r0: i32, r1: i32): void {
  for (let n0 = 0; n0 < N; n0 += FP) {
    const nv = min(FP, N - n0);
    for (let j = 0; j < FP; j++) {
      const row = scratch + (<usize>(j * K) << 2);
      if (j < nv) dequantRun(row, codes, qabs, abs2, table, offset, n0 + j, 0, K, K);
      else memory.fill(row, 0, <usize>K << 2);
    }
    const w0 = scratch, w1 = w0 + (<usize>K << 2), w2 = w1 + (<usize>K << 2), w3 = w2 + (<usize>K << 2);
    for (let m = r0; m < r1; m++) {
      const xr = x + (<usize>m * <usize>K << 2);
      let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
      for (let k = 0; k < K; k += 4) {
        const o = <usize>k << 2;
        const xv = v128.load(xr + o);
        a0 = f32x4.add(a0, f32x4.mul(xv, v128.load(w0 + o)));
        a1 = f32x4.add(a1, f32x4.mul(xv, v128.load(w1 + o)));
        a2 = f32x4.add(a2, f32x4.mul(xv, v128.load(w2 + o)));
        a3 = f32x4.add(a3, f32x4.mul(xv, v128.load(w3 + o)));
      }
      const orow = out + ((<usize>m * <usize>N + <usize>n0) << 2);
      const s0 = f32x4.extract_lane(a0, 0) + f32x4.extract_lane(a0, 1) + f32x4.extract_lane(a0, 2) + f32x4.extract_lane(a0, 3);
      store<f32>(orow, s0);
      if (nv > 1) store<f32>(orow + 4, f32x4.extract_lane(a1, 0) + f32x4.extract_lane(a1, 1) + f32x4.extract_lane(a1, 2) + f32x4.extract_lane(a1, 3));
      if (nv > 2) store<f32>(orow + 8, f32x4.extract_lane(a2, 0) + f32x4.extract_lane(a2, 1) + f32x4.extract_lane(a2, 2) + f32x4.extract_lane(a2, 3));
      if (nv > 3) store<f32>(orow + 12, f32x4.extract_lane(a3, 0) + f32x4.extract_lane(a3, 1) + f32x4.extract_lane(a3, 2) + f32x4.extract_lane(a3, 3));
    }
  }
}

// dx (M,K) += dy (M,N) . deq(W), rows [r0, r1) of dx. scratch: N*64 f32 per thread (one 64-column
// block of W for all N rows, dequantised once per thread and block).
export function nf4_backward_dx(dx: usize, dy: usize, codes: usize, qabs: usize, abs2: usize, table: usize, offset: f32,
                                scratch: usize, M: i32, N: i32, K: i32, r0: i32, r1: i32): void {
  for (let k0 = 0; k0 < K; k0 += 64) {
    for (let n = 0; n < N; n++) dequantRun(scratch + (<usize>(n * 64) << 2), codes, qabs, abs2, table, offset, n, k0, 64, K);
    for (let m = r0; m < r1; m++) {
      const d = dx + ((<usize>m * <usize>K + <usize>k0) << 2);
      const g = dy + (<usize>m * <usize>N << 2);
      for (let c = 0; c < 64; c += 16) {
        let a0 = v128.load(d + (<usize>c << 2)), a1 = v128.load(d + (<usize>c << 2), 16);
        let a2 = v128.load(d + (<usize>c << 2), 32), a3 = v128.load(d + (<usize>c << 2), 48);
        let w = scratch + (<usize>c << 2);
        for (let n = 0; n < N; n++) {
          const gv = f32x4.splat(load<f32>(g + (<usize>n << 2)));
          a0 = f32x4.add(a0, f32x4.mul(gv, v128.load(w)));
          a1 = f32x4.add(a1, f32x4.mul(gv, v128.load(w, 16)));
          a2 = f32x4.add(a2, f32x4.mul(gv, v128.load(w, 32)));
          a3 = f32x4.add(a3, f32x4.mul(gv, v128.load(w, 48)));
          w += 256;
        }
        v128.store(d + (<usize>c << 2), a0);
        v128.store(d + (<usize>c << 2), a1, 16);
        v128.store(d + (<usize>c << 2), a2, 32);
        v128.store(d + (<usize>c << 2), a3, 48);
      }
    }
  }
}
