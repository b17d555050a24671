/**
 * Ternary tensor types of GGUF files, from int8 codes in {-1, 0, 1} (row-major, rows of `cols`)
 * and their scales:
 *
 * - **TQ2_0** (ggml, 2.0625 bits a weight): blocks of QK_K = 256 values along a row, 66 bytes:
 *   `qs[64]`, then `d` (f16). Byte `qs[32c + m]` holds values `x[128c + m + 32n] + 1` in bits
 *   2n..2n+1 (c = 0, 1; m = 0..31; n = 0..3). A value is `(q − 1)·d`.
 * - **TQ1_0** (ggml, 1.6875 bits a weight): blocks of 256, 54 bytes: `qs[48]`, `qh[4]`, `d`
 *   (f16). Five trits a byte, first trit most significant, stored as `ceil(q·256/243)`:
 *   `qs[m]` (m < 32) holds `x[m + 32n]`, n = 0..4 (values 0..159); `qs[32 + m]` (m < 16) holds
 *   `x[160 + m + 16n]` (values 160..239); `qh[j]` holds `x[240 + j + 4n]`, n = 0..3, as the top
 *   four trits (the fifth is 0). Trit j decodes as `((byte·3^j) & 255)·3 >> 8`.
 * - **I2_S** (bitnet.cpp, x86 / AVX2 layout, QK_I2_S = 128): the whole tensor flattened, blocks
 *   of 128 values in 32 bytes: byte `32b + p` holds values `x[128b + 32g + p]` (g = 0..3) as
 *   `code << (6 − 2g)` with code 0 = −1, 1 = 0, 2 = +1; after the `n/4` code bytes one f32, the
 *   tensor's scale (a weight is `(code − 1)·scale`), padded to `n/4 + 32` bytes.
 *
 * The ggml types carry one f16 scale per block; an exporter that keeps the exact scale in a
 * separate f32 tensor (llama.cpp's `bitnet` architecture's `*.scale`) writes `d = 1`.
 */
import { QuantLayoutError } from '../../quant/layout.js';
import { f16BitsToF32, f32ToF16Bits } from './half.js';
import { QK_I2_S, QK_K } from './format.js';

function checkCodes(op: string, codes: ArrayLike<number>, rows: number, cols: number, block: number): void {
  if (!(Number.isInteger(rows) && rows > 0 && Number.isInteger(cols) && cols > 0)) throw new QuantLayoutError(`${op}: rows ${rows} and cols ${cols} must be positive integers`);
  if (cols % block !== 0) throw new QuantLayoutError(`${op}: rows of ${cols} values are not a multiple of the ${block}-value block; this type cannot hold the tensor`);
  if (codes.length !== rows * cols) throw new QuantLayoutError(`${op}: ${codes.length} codes for a (${rows}, ${cols}) tensor`);
}

function trit(op: string, codes: ArrayLike<number>, i: number): number {
  const v = codes[i]!;
  if (v !== -1 && v !== 0 && v !== 1) throw new QuantLayoutError(`${op}: code ${i} is ${v}, expected -1, 0 or 1`);
  return v + 1;
}

/** The f16 block scale `d` of every row: one number for all rows, or one per row. */
function rowScale(op: string, d: number | ArrayLike<number>, rows: number): (r: number) => number {
  if (typeof d === 'number') return () => f32ToF16Bits(d);
  if (d.length !== rows) throw new QuantLayoutError(`${op}: ${d.length} row scales for ${rows} rows`);
  return (r) => f32ToF16Bits(d[r]!);
}

/** Bytes of a (rows, cols) TQ2_0 tensor. */
export function tq2_0Bytes(rows: number, cols: number): number {
  return rows * (cols / QK_K) * 66;
}

/** Bytes of a (rows, cols) TQ1_0 tensor. */
export function tq1_0Bytes(rows: number, cols: number): number {
  return rows * (cols / QK_K) * 54;
}

/**
 * The block loop TQ2_0 and TQ1_0 share: every QK_K codes of a row become `blockBytes` bytes — the
 * packed trits (`packBlock(out, o, t)`, t(i) = the i-th trit of the block, 0..2) and the row's
 * f16 scale in the block's last two bytes.
 */
function packBlocks(op: string, codes: ArrayLike<number>, rows: number, cols: number, d: number | ArrayLike<number>, blockBytes: number,
  packBlock: (out: Uint8Array, o: number, t: (i: number) => number) => void): Uint8Array {
  checkCodes(op, codes, rows, cols, QK_K);
  const scaleOf = rowScale(op, d, rows);
  const out = new Uint8Array(rows * (cols / QK_K) * blockBytes);
  const view = new DataView(out.buffer);
  let o = 0;
  for (let r = 0; r < rows; r++) {
    const h = scaleOf(r);
    for (let b = 0; b < cols / QK_K; b++) {
      const x0 = r * cols + b * QK_K;
      packBlock(out, o, (i) => trit(op, codes, x0 + i));
      view.setUint16(o + blockBytes - 2, h, true);
      o += blockBytes;
    }
  }
  return out;
}

/** Pack ternary codes (rows, cols) as TQ2_0 with block scale `d` (per tensor or per row). */
export function packTq2_0(codes: ArrayLike<number>, rows: number, cols: number, d: number | ArrayLike<number>): Uint8Array {
  return packBlocks('packTq2_0', codes, rows, cols, d, 66, (out, o, t) => {
    for (let c = 0; c < 2; c++) {
      for (let m = 0; m < 32; m++) {
        let q = 0;
        for (let n = 0; n < 4; n++) q |= t(128 * c + m + 32 * n) << (2 * n);
        out[o + 32 * c + m] = q;
      }
    }
  });
}

/** TQ2_0 bytes → values (ggml's `dequantize_row_tq2_0`). */
export function dequantizeTq2_0(bytes: Uint8Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let y = 0;
  for (let blk = 0; blk < (rows * cols) / QK_K; blk++) {
    const o = blk * 66;
    const d = f16BitsToF32(view.getUint16(o + 64, true));
    for (let j = 0; j < 64; j += 32) {
      for (let l = 0; l < 4; l++) {
        for (let m = 0; m < 32; m++) out[y++] = (((bytes[o + j + m]! >> (2 * l)) & 3) - 1) * d;
      }
    }
  }
  return out;
}

/** Five (or, with the last 0, four) trits t_0..t_4 in 0..2 → one TQ1_0 byte, first trit most significant. */
function trits5Byte(t: readonly number[]): number {
  let q = 0;
  for (const v of t) q = q * 3 + v;
  return Math.floor((q * 256 + 242) / 243);
}

/** Pack ternary codes (rows, cols) as TQ1_0 with block scale `d` (per tensor or per row). */
export function packTq1_0(codes: ArrayLike<number>, rows: number, cols: number, d: number | ArrayLike<number>): Uint8Array {
  return packBlocks('packTq1_0', codes, rows, cols, d, 54, (out, o, t) => {
    for (let m = 0; m < 32; m++) out[o + m] = trits5Byte([0, 1, 2, 3, 4].map((n) => t(m + 32 * n)));
    for (let m = 0; m < 16; m++) out[o + 32 + m] = trits5Byte([0, 1, 2, 3, 4].map((n) => t(160 + m + 16 * n)));
    for (let j = 0; j < 4; j++) out[o + 48 + j] = trits5Byte([...[0, 1, 2, 3].map((n) => t(240 + j + 4 * n)), 0]);
  });
}

const POW3 = [1, 3, 9, 27, 81];

/** TQ1_0 bytes → values (ggml's `dequantize_row_tq1_0`). */
export function dequantizeTq1_0(bytes: Uint8Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const decode = (byte: number, n: number): number => ((((byte * POW3[n]!) & 255) * 3) >> 8) - 1;
  let y = 0;
  for (let blk = 0; blk < (rows * cols) / QK_K; blk++) {
    const o = blk * 54;
    const d = f16BitsToF32(view.getUint16(o + 52, true));
    for (let n = 0; n < 5; n++) for (let m = 0; m < 32; m++) out[y++] = decode(bytes[o + m]!, n) * d;
    for (let n = 0; n < 5; n++) for (let m = 0; m < 16; m++) out[y++] = decode(bytes[o + 32 + m]!, n) * d;
    for (let n = 0; n < 4; n++) for (let j = 0; j < 4; j++) out[y++] = decode(bytes[o + 48 + j]!, n) * d;
  }
  return out;
}

/** Pack ternary codes (rows, cols) as bitnet.cpp's I2_S with the tensor's f32 `scale`. */
export function packI2_S(codes: ArrayLike<number>, rows: number, cols: number, scale: number): Uint8Array {
  const op = 'packI2_S';
  checkCodes(op, codes, rows, cols, QK_I2_S);
  const n = rows * cols;
  const out = new Uint8Array(n / 4 + 32);
  for (let b = 0; b < n / QK_I2_S; b++) {
    for (let j = 0; j < QK_I2_S; j++) {
      const g = j >> 5, p = j & 31;
      out[32 * b + p]! |= trit(op, codes, b * QK_I2_S + j) << (6 - 2 * g);
    }
  }
  new DataView(out.buffer).setFloat32(n / 4, scale, true);
  return out;
}

/** I2_S bytes → values (code − 1)·scale. */
export function dequantizeI2_S(bytes: Uint8Array, rows: number, cols: number): Float32Array {
  const n = rows * cols;
  const scale = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getFloat32(n / 4, true);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const b = Math.floor(i / QK_I2_S), j = i % QK_I2_S;
    out[i] = (((bytes[32 * b + (j & 31)]! >> (6 - 2 * (j >> 5))) & 3) - 1) * scale;
  }
  return out;
}
