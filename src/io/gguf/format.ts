/**
 * GGUF v3, llama.cpp's model file (ggml `docs/gguf.md`, `gguf-py`), as far as an exporter needs it:
 *
 *   "GGUF" | u32 version 3 | u64 tensor count | u64 metadata count
 *   metadata: string key, u32 value type, value                (strings: u64 length + UTF-8)
 *   tensor infos: string name, u32 n_dims, u64 ne[n_dims], u32 ggml type, u64 offset
 *   padding to `general.alignment` (default 32), then the tensor data, each tensor at its
 *   offset (relative to the start of the data, a multiple of the alignment)
 *
 * All numbers little-endian. `ne[0]` is the innermost (contiguous) dimension: a row-major
 * matrix W (N rows, K columns) has ne = [K, N].
 */

/** "GGUF" read as a little-endian u32. */
export const GGUF_MAGIC = 0x46554747;
export const GGUF_VERSION = 3;
export const GGUF_DEFAULT_ALIGNMENT = 32;

/** Metadata value types (`gguf_type`). */
export const GgufValueType = {
  UINT8: 0, INT8: 1, UINT16: 2, INT16: 3, UINT32: 4, INT32: 5, FLOAT32: 6, BOOL: 7, STRING: 8, ARRAY: 9, UINT64: 10, INT64: 11, FLOAT64: 12,
} as const;
export type GgufScalarKind = 'u8' | 'i8' | 'u16' | 'i16' | 'u32' | 'i32' | 'f32' | 'bool' | 'string' | 'u64' | 'i64' | 'f64';

/** A typed metadata value: llama.cpp checks the type of every key it reads (a u32 is not an i32). */
export type GgufValue =
  | { type: Exclude<GgufScalarKind, 'string' | 'bool' | 'u64' | 'i64'>; value: number }
  | { type: 'u64' | 'i64'; value: bigint | number }
  | { type: 'bool'; value: boolean }
  | { type: 'string'; value: string }
  | { type: 'array'; itemType: GgufScalarKind; values: readonly (number | bigint | boolean | string)[] };

export const SCALAR_TYPE_ID: Record<GgufScalarKind, number> = {
  u8: 0, i8: 1, u16: 2, i16: 3, u32: 4, i32: 5, f32: 6, bool: 7, string: 8, u64: 10, i64: 11, f64: 12,
};
export const SCALAR_KIND_OF_ID: Record<number, GgufScalarKind> = Object.fromEntries(
  Object.entries(SCALAR_TYPE_ID).map(([k, v]) => [v, k as GgufScalarKind]),
);

/** Constructors for typed metadata values. */
export const gguf = {
  u32: (value: number): GgufValue => ({ type: 'u32', value }),
  i32: (value: number): GgufValue => ({ type: 'i32', value }),
  f32: (value: number): GgufValue => ({ type: 'f32', value }),
  bool: (value: boolean): GgufValue => ({ type: 'bool', value }),
  str: (value: string): GgufValue => ({ type: 'string', value }),
  array: (itemType: GgufScalarKind, values: readonly (number | bigint | boolean | string)[]): GgufValue => ({ type: 'array', itemType, values }),
};

/** The ggml tensor types an export writes. */
export type GgmlTypeName = 'F32' | 'F16' | 'BF16' | 'TQ1_0' | 'TQ2_0' | 'I2_S';

/** ggml type ids (`enum ggml_type`); I2_S is bitnet.cpp's (36), not defined by upstream ggml. */
export const GGML_TYPE_ID: Record<GgmlTypeName, number> = { F32: 0, F16: 1, BF16: 30, TQ1_0: 34, TQ2_0: 35, I2_S: 36 };
export const GGML_TYPE_OF_ID: Record<number, GgmlTypeName> = Object.fromEntries(
  Object.entries(GGML_TYPE_ID).map(([k, v]) => [v, k as GgmlTypeName]),
);

/** Elements per block and bytes per block of the block types (QK_K = 256 for the ternary ones). */
export const GGML_BLOCK: Record<Exclude<GgmlTypeName, 'I2_S'>, { elements: number; bytes: number }> = {
  F32: { elements: 1, bytes: 4 },
  F16: { elements: 1, bytes: 2 },
  BF16: { elements: 1, bytes: 2 },
  // block_tq1_0: qs[48] (5 trits a byte), qh[4] (4 trits a byte), ggml_half d
  TQ1_0: { elements: 256, bytes: 54 },
  // block_tq2_0: qs[64] (4 values a byte), ggml_half d
  TQ2_0: { elements: 256, bytes: 66 },
};

/** QK_K: the super-block of ggml's k-quants and of TQ1_0 / TQ2_0. */
export const QK_K = 256;
/** bitnet.cpp's I2_S block on x86 (AVX2): 128 weights in 32 bytes. */
export const QK_I2_S = 128;

/**
 * Bytes of a tensor of `type` with dims `ne` (ne[0] the row length). Block types need
 * ne[0] % block == 0. I2_S (bitnet.cpp) is 2 bits a weight for the whole tensor plus 32 bytes
 * holding its one f32 scale (`quantize_i2_s` returns `n/4 + 32`).
 */
export function ggmlTensorBytes(type: GgmlTypeName, ne: readonly number[]): number {
  const n = ne.reduce((a, b) => a * b, 1);
  if (type === 'I2_S') {
    if (n % QK_I2_S !== 0) throw new Error(`I2_S: ${n} elements is not a multiple of ${QK_I2_S}`);
    return n / 4 + 32;
  }
  const { elements, bytes } = GGML_BLOCK[type];
  if (ne[0]! % elements !== 0) throw new Error(`${type}: rows of ${ne[0]} elements are not a multiple of its block of ${elements}`);
  return (n / elements) * bytes;
}
