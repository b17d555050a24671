/**
 * bitsandbytes' 8-bit dynamic quantisation ("dynamic tree" data type, Dettmers 2016; bitsandbytes'
 * `create_dynamic_map(signed, max_exponent_bits=7, total_bits=8)`) and its blockwise use for
 * optimizer state (`quantize_blockwise` / `dequantize_blockwise`, blocks of 256 as bitsandbytes'
 * blockwise optimizers): a value x of a block is stored as the code of the map entry nearest to
 * x / absmax, with the block's absmax kept in f32.
 *
 * The map: for exponents i = 0..6 the midpoints of `linspace(0.1, 1, k + 1)` scaled by 10^(i−6),
 * k = 2^i per sign (signed) or 2^(i+1) (unsigned, the sign bit becomes one more fraction bit),
 * plus 0 and 1; sorted, 256 entries. It is dense near 0 (relative steps of ~7 % at 10^-6) and
 * linear with steps of ~1.4 % in [0.1, 1]: the shape of Adam's moments, whose magnitudes span decades.
 * Signed: 127 negatives down to −0.99297 (there is no −1), 0 at code 127, 127 positives, 1 at 255.
 * Unsigned: 0 at code 0, 254 positives from 3.25e-7, 1 at code 255.
 */
import { ADAMW8BIT_BLOCK, keepSign, nearestCode } from '../backend/js/adamw8bit.js';

/** Elements per absmax block (bitsandbytes' blockwise optimizers use 256). */
export const BLOCKWISE8_BLOCK = ADAMW8BIT_BLOCK;

/** bitsandbytes' 256-entry dynamic map, signed (Adam's m) or unsigned (Adam's v), sorted ascending. */
export function dynamicMap(signed: boolean): Float32Array {
  const data: number[] = [];
  for (let i = 0; i < 7; i++) {
    const k = signed ? 2 ** i : 2 ** (i + 1);
    const bounds = Array.from({ length: k + 1 }, (_, j) => Math.fround(0.1 + (0.9 * j) / k));
    for (let j = 0; j < k; j++) {
      const v = Math.fround(10 ** (i - 6) * Math.fround((bounds[j]! + bounds[j + 1]!) / 2));
      data.push(v);
      if (signed) data.push(-v);
    }
  }
  data.push(0, 1);
  return Float32Array.from(data.sort((a, b) => a - b));
}

/**
 * Buckets of a search table, per sign: 0 for |x| < 2^-63 (zero and subnormals included), then 64
 * binades (f32 exponent 64..127) × 64 (the 6 mantissa bits after the exponent), then |x| >= 2.
 */
export const SEARCH_TABLE_BUCKETS = 2 * (2 + 64 * 64);
/** Bytes of the two maps' search tables (`AdamW8bitBuffers.searchTables`). */
export const SEARCH_TABLES_BYTES = 2 * SEARCH_TABLE_BUCKETS;

/** The last index with map[index] <= y, or 0 when there is none. */
function lastAtMost(map: Float32Array, y: number): number {
  let lo = 0;
  for (let i = 0; i < map.length; i++) if (map[i]! <= y) lo = i;
  return lo;
}

/**
 * Where the wasm kernel starts its search for x's code (`AdamW8bitBuffers.searchTables`): x's
 * bucket is its sign and, for 2^-63 <= |x| < 2, its binade and the next 6 bits of its mantissa
 * (one bucket below, one above); entry = the last index whose map value is <= every x of the bucket
 * (0 if none). The kernel steps forward from there while map[lo + 1] <= x: a bucket is 1/64 of a
 * binade, narrower than the dynamic maps' steps, so 0-2 steps (tested) — and the same code as a
 * binary search for any sorted map. Only NaN and ±Inf take the binary search.
 */
export function codeSearchTable(map: Float32Array): Uint8Array {
  const per = SEARCH_TABLE_BUCKETS / 2;
  const table = new Uint8Array(SEARCH_TABLE_BUCKETS);
  const bits = new Uint32Array(1);
  const value = new Float32Array(bits.buffer);
  const at = (b: number) => { bits[0] = b >>> 0; return value[0]!; };
  for (let sign = 0; sign < 2; sign++) {
    const base = sign * per;
    // positives: a bucket holds [lower, upper); negatives: (-upper, -lower]
    table[base] = lastAtMost(map, sign ? -at(64 << 23) : 0);
    for (let e = 64; e <= 127; e++) {
      for (let m = 0; m < 64; m++) {
        const lower = at((e << 23) | (m << 17));
        const upper = at((e << 23) + ((m + 1) << 17));
        table[base + 1 + (e - 64) * 64 + m] = lastAtMost(map, sign ? -upper : lower);
      }
    }
    table[base + per - 1] = lastAtMost(map, sign ? -Infinity : 2);
  }
  return table;
}

/** Codes (n bytes) and per-block absmax (ceil(n/256) f32) of n values. */
export interface Blockwise8 {
  codes: Uint8Array;
  absmax: Float32Array;
}

/**
 * Quantise `values` blockwise with `map` (what `adamw8bitStep` writes, the same bits): absmax =
 * max |x| of each block of 256, code = nearest(f32(x / absmax)) (ties to the lower code); with
 * `keepSigns` (m) a non-zero value never gets a code of the other sign or zero.
 */
export function quantizeBlockwise8(values: ArrayLike<number>, map: Float32Array, keepSigns: boolean): Blockwise8 {
  const n = values.length;
  const blocks = Math.ceil(n / BLOCKWISE8_BLOCK);
  const codes = new Uint8Array(n);
  const absmax = new Float32Array(blocks);
  const at = (i: number) => map[i]!;
  for (let b = 0; b < blocks; b++) {
    const i0 = b * BLOCKWISE8_BLOCK;
    const i1 = Math.min(n, i0 + BLOCKWISE8_BLOCK);
    let a = 0;
    for (let i = i0; i < i1; i++) a = Math.max(a, Math.abs(Math.fround(values[i]!)));
    absmax[b] = a;
    for (let i = i0; i < i1; i++) {
      const x = Math.fround(values[i]!);
      const code = nearestCode(at, a > 0 ? Math.fround(x / a) : 0);
      codes[i] = keepSigns ? keepSign(at, code, x) : code;
    }
  }
  return { codes, absmax };
}

/** The f32 values of blockwise codes: `map[code] * absmax[block]`. */
export function dequantizeBlockwise8(q: Blockwise8, map: Float32Array): Float32Array {
  const out = new Float32Array(q.codes.length);
  for (let i = 0; i < out.length; i++) out[i] = Math.fround(map[q.codes[i]!]! * q.absmax[Math.floor(i / BLOCKWISE8_BLOCK)]!);
  return out;
}
