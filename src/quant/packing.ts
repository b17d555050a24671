/**
 * Storage formats of ternary weights, from and to int8 values in {-1, 0, 1}.
 *
 * - I2 (2 bits a weight, the kernels' format; Hugging Face BitNet `pack_weights`): W (N,K) as
 *   ceil(N/4) rows of K bytes; byte (r,k) holds `W[i*R + r, k] + 1` in bits 2i..2i+1
 *   (R = ceil(N/4), i = 0..3, bits 0-1 hold the first quarter of the rows). Rows n >= N: code 1.
 * - Trits5 (5 weights a byte, 1.6 bits; the byte code of llama.cpp's TQ1_0): consecutive trits
 *   t_0..t_4 = w+1 of the flat row-major tensor form q = 81 t_0 + 27 t_1 + 9 t_2 + 3 t_3 + t_4
 *   (first trit most significant), stored as ceil(q * 256 / 243) so that trit j decodes with a
 *   multiply and a shift: `((byte * 3^j) & 255) * 3 >> 8`. The last byte pads with weight 0.
 *   Unlike TQ1_0 there is no 256-element block interleave and no per-block scale: scales are
 *   kept separately (f32, by `group`), as for I2.
 */
import { packedTernaryBytes, packedTernaryRows, QuantLayoutError, trits5Bytes } from './layout.js';

function checkTernary(op: string, v: number, i: number): void {
  if (v !== -1 && v !== 0 && v !== 1) throw new QuantLayoutError(`${op}: element ${i} is ${v}, expected -1, 0 or 1 (quantise the weights first)`);
}

function checkLength(op: string, what: string, got: number, need: number, shape: string): void {
  if (got < need) throw new QuantLayoutError(`${op}: ${what} has ${got} elements, ${shape} needs ${need}`);
}

/**
 * Pack ternary weights wq (N,K) 2 bits a weight (I2 layout above).
 *
 * @example
 * packTernaryI2([1, 0, -1, 1], 4, 1); // Uint8Array [0b10_00_01_10] (rows 0..3 in bits 0-1 .. 6-7)
 */
export function packTernaryI2(wq: ArrayLike<number>, N: number, K: number, out = new Uint8Array(packedTernaryBytes(N, K))): Uint8Array {
  checkLength('packTernaryI2', 'wq', wq.length, N * K, `W (${N}, ${K})`);
  checkLength('packTernaryI2', 'out', out.length, packedTernaryBytes(N, K), `packed (${packedTernaryRows(N)}, ${K})`);
  const R = packedTernaryRows(N);
  out.fill(0x55, 0, R * K);
  for (let n = 0; n < N; n++) {
    const r = n % R, sh = 2 * Math.floor(n / R);
    for (let k = 0; k < K; k++) {
      const v = wq[n * K + k];
      checkTernary('packTernaryI2', v, n * K + k);
      out[r * K + k] = (out[r * K + k] & ~(3 << sh)) | ((v + 1) << sh);
    }
  }
  return out;
}

/** Unpack 2-bit packed (ceil(N/4), K) into ternary int8 wq (N,K). */
export function unpackTernaryI2(packed: ArrayLike<number>, N: number, K: number, out = new Int8Array(N * K)): Int8Array {
  checkLength('unpackTernaryI2', 'packed', packed.length, packedTernaryBytes(N, K), `packed (${packedTernaryRows(N)}, ${K})`);
  checkLength('unpackTernaryI2', 'out', out.length, N * K, `W (${N}, ${K})`);
  const R = packedTernaryRows(N);
  for (let n = 0; n < N; n++) {
    const r = n % R, sh = 2 * Math.floor(n / R);
    for (let k = 0; k < K; k++) out[n * K + k] = ((packed[r * K + k] >> sh) & 3) - 1;
  }
  return out;
}

/**
 * Pack n = wq.length ternary weights 5 a byte, base 3 (Trits5 format above): ceil(n/5) bytes.
 *
 * @example
 * packTrits5([1, 1, 1, 1, 1]); // Uint8Array [255]: q = 242 -> ceil(242*256/243) = 255
 */
export function packTrits5(wq: ArrayLike<number>, out = new Uint8Array(trits5Bytes(wq.length))): Uint8Array {
  const n = wq.length;
  checkLength('packTrits5', 'out', out.length, trits5Bytes(n), `${n} trits`);
  for (let b = 0; b * 5 < n; b++) {
    let q = 0;
    for (let j = 0; j < 5; j++) {
      const i = b * 5 + j;
      let t = 1;
      if (i < n) {
        checkTernary('packTrits5', wq[i], i);
        t = wq[i] + 1;
      }
      q = q * 3 + t;
    }
    out[b] = Math.floor((q * 256 + 242) / 243);
  }
  return out;
}

/** Unpack n ternary weights packed 5 a byte (Trits5 format above) into int8. */
export function unpackTrits5(bytes: ArrayLike<number>, n: number, out = new Int8Array(n)): Int8Array {
  checkLength('unpackTrits5', 'bytes', bytes.length, trits5Bytes(n), `${n} trits`);
  checkLength('unpackTrits5', 'out', out.length, n, `${n} trits`);
  for (let i = 0; i < n; i++) {
    const b = bytes[Math.floor(i / 5)];
    const shifted = (b * POW3[i % 5]) & 255;
    out[i] = ((shifted * 3) >> 8) - 1;
  }
  return out;
}

const POW3 = [1, 3, 9, 27, 81];
