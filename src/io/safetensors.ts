/**
 * The safetensors format (Hugging Face), byte-compatible with the reference writer:
 *
 *   [8 bytes]  N, unsigned little-endian u64: the header's byte length
 *   [N bytes]  UTF-8 JSON object starting with '{', padded with spaces to a multiple of 8:
 *              {"__metadata__": {str: str}, "<name>": {"dtype": "F32", "shape": [..],
 *               "data_offsets": [begin, end]}, ...}   (offsets relative to the data buffer)
 *   [rest]     the data buffer: every tensor's bytes, little-endian, row-major, no holes
 *
 * The writer orders tensors as the reference does (by descending dtype alignment, then by name
 * in byte order), puts `__metadata__` first and writes compact JSON, so equal inputs give the
 * same bytes as `safetensors.torch.save_file`. The reader checks everything the reference checks
 * (and says which tensor and what is wrong): header length vs file size and the 100 MB cap, UTF-8,
 * the leading '{', JSON, dtypes, shapes, offsets that tile the buffer exactly. Little-endian on
 * any host. Duplicate JSON keys cannot be seen through JSON.parse (the last wins); the coverage
 * check still rejects a file whose shadowed tensor leaves a hole.
 */

/** Element dtypes: byte size and rank in the reference's alignment order (for sorting). */
const DTYPES = {
  BOOL: { size: 1, rank: 0 },
  U8: { size: 1, rank: 1 },
  I8: { size: 1, rank: 2 },
  F8_E5M2: { size: 1, rank: 3 },
  F8_E4M3: { size: 1, rank: 4 },
  I16: { size: 2, rank: 5 },
  U16: { size: 2, rank: 6 },
  F16: { size: 2, rank: 7 },
  BF16: { size: 2, rank: 8 },
  I32: { size: 4, rank: 9 },
  U32: { size: 4, rank: 10 },
  F32: { size: 4, rank: 11 },
  F64: { size: 8, rank: 12 },
  I64: { size: 8, rank: 13 },
  U64: { size: 8, rank: 14 },
} as const;

/** A safetensors dtype name. F16, BF16 and F8 values travel as their raw bit patterns. */
export type SafetensorsDtype = keyof typeof DTYPES;

/** The typed array that holds each dtype (raw bits for F16/BF16/F8, 0/1 bytes for BOOL). */
export type TensorData =
  | Float32Array | Float64Array | Int32Array | Uint32Array | Int16Array | Uint16Array
  | Int8Array | Uint8Array | BigInt64Array | BigUint64Array;

type TypedArrayCtor = { new (buffer: ArrayBuffer): TensorData; readonly name: string };

const ARRAY_OF: Record<SafetensorsDtype, TypedArrayCtor> = {
  BOOL: Uint8Array, U8: Uint8Array, I8: Int8Array, F8_E5M2: Uint8Array, F8_E4M3: Uint8Array,
  I16: Int16Array, U16: Uint16Array, F16: Uint16Array, BF16: Uint16Array,
  I32: Int32Array, U32: Uint32Array, F32: Float32Array, F64: Float64Array,
  I64: BigInt64Array, U64: BigUint64Array,
};

/** One tensor: dtype, row-major shape and its elements. */
export interface SafetensorsTensor {
  dtype: SafetensorsDtype;
  shape: number[];
  data: TensorData;
}

/** Where a tensor lives in the data buffer (the header's view of it). */
export interface SafetensorsEntry {
  dtype: SafetensorsDtype;
  shape: number[];
  /** [begin, end) byte offsets relative to the data buffer. */
  dataOffsets: [number, number];
}

/** A parsed, validated header. */
export interface SafetensorsHeader {
  /** N, the JSON header's byte length (padding included). */
  headerLength: number;
  /** Absolute offset of the data buffer in the file (8 + N). */
  dataStart: number;
  /** Tensors in data-offset order. */
  entries: Map<string, SafetensorsEntry>;
  metadata?: Record<string, string>;
}

/** Reference reader's cap on the header size. */
export const MAX_HEADER_BYTES = 100_000_000;

/** A malformed safetensors file or input: the message starts with the file (`source`). */
export class SafetensorsError extends Error {
  override readonly name = 'SafetensorsError';
  constructor(readonly source: string, readonly problem: string) {
    super(`${source}: ${problem}`);
  }
}

const HOST_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

export function isSafetensorsDtype(name: unknown): name is SafetensorsDtype {
  return typeof name === 'string' && Object.prototype.hasOwnProperty.call(DTYPES, name);
}

/** Bytes per element of a dtype. */
export function dtypeSize(dtype: SafetensorsDtype): number {
  return DTYPES[dtype].size;
}

/** "9.22e18" for huge numbers (a garbage u64), plain digits otherwise. */
function formatCount(n: number): string {
  return n >= 1e15 ? Number(n.toPrecision(3)).toExponential().replace('e+', 'e') : String(n);
}

/** Compare by UTF-8 bytes (= code point order), as Rust's String ordering does. */
function compareUtf8(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const ca = a.codePointAt(i)!;
    const cb = b.codePointAt(i)!;
    if (ca !== cb) return ca - cb;
    if (ca > 0xffff) i++;
  }
  return a.length - b.length;
}

function elementCount(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/**
 * Copy little-endian bytes into a fresh typed array of `dtype` (aligned, owning its buffer).
 * `hostLittleEndian` is a parameter so the big-endian path can be tested on any machine.
 */
export function tensorDataFromBytes(dtype: SafetensorsDtype, bytes: Uint8Array, hostLittleEndian = HOST_LITTLE_ENDIAN): TensorData {
  // not bytes.slice(): on a Node Buffer (a Uint8Array subclass) slice returns a view of the whole file
  const copy = new Uint8Array(bytes.length);
  copy.set(bytes);
  const size = DTYPES[dtype].size;
  if (hostLittleEndian || size === 1) return new ARRAY_OF[dtype](copy.buffer);
  for (let i = 0; i < copy.length; i += size) copy.subarray(i, i + size).reverse();
  return new ARRAY_OF[dtype](copy.buffer);
}

/** The little-endian bytes of `data` (a view when the host is little-endian, else a swapped copy). */
export function tensorDataToBytes(data: TensorData, elementSize: number, hostLittleEndian = HOST_LITTLE_ENDIAN): Uint8Array {
  const view = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (hostLittleEndian || elementSize === 1 || data instanceof Uint8Array) return view;
  const copy = view.slice();
  for (let i = 0; i < copy.length; i += elementSize) copy.subarray(i, i + elementSize).reverse();
  return copy;
}

/**
 * Serialise tensors (and optional string metadata) to safetensors bytes. `data` must be the
 * dtype's typed array (Float32Array for F32, ...) or a Uint8Array of its little-endian bytes.
 */
export function encodeSafetensors(
  tensors: Map<string, SafetensorsTensor> | Record<string, SafetensorsTensor>,
  metadata?: Record<string, string>,
): Uint8Array {
  const source = 'encodeSafetensors';
  const list = [...(tensors instanceof Map ? tensors.entries() : Object.entries(tensors))];
  const prepared = list.map(([name, t]) => {
    const where = `tensor ${JSON.stringify(name)}`;
    if (name.length === 0 || name === '__metadata__') throw new SafetensorsError(source, `${where}: invalid tensor name`);
    if (!isSafetensorsDtype(t.dtype)) throw new SafetensorsError(source, `${where}: unknown dtype ${JSON.stringify(t.dtype)} (known: ${Object.keys(DTYPES).join(', ')})`);
    if (!Array.isArray(t.shape) || !t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new SafetensorsError(source, `${where}: shape ${JSON.stringify(t.shape)} must be a list of non-negative integers`);
    }
    const ctor = ARRAY_OF[t.dtype];
    if (!(t.data instanceof ctor) && !(t.data instanceof Uint8Array)) {
      throw new SafetensorsError(source, `${where}: dtype ${t.dtype} needs a ${ctor.name} (or raw Uint8Array bytes), got ${t.data?.constructor?.name ?? typeof t.data}`);
    }
    const size = DTYPES[t.dtype].size;
    const nbytes = elementCount(t.shape) * size;
    if (t.data.byteLength !== nbytes) {
      throw new SafetensorsError(source, `${where}: shape [${t.shape.join(', ')}] of ${t.dtype} needs ${nbytes} bytes, data has ${t.data.byteLength}`);
    }
    return { name, tensor: t, size, nbytes };
  });
  // Reference order: descending dtype alignment rank, then name.
  prepared.sort((a, b) => DTYPES[b.tensor.dtype].rank - DTYPES[a.tensor.dtype].rank || compareUtf8(a.name, b.name));

  const parts: string[] = [];
  if (metadata !== undefined) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') throw new SafetensorsError(source, `metadata ${JSON.stringify(k)} must be a string, got ${typeof v}`);
    }
    parts.push(`"__metadata__":${JSON.stringify(metadata)}`);
  }
  let offset = 0;
  for (const p of prepared) {
    const info = `{"dtype":"${p.tensor.dtype}","shape":[${p.tensor.shape.join(',')}],"data_offsets":[${offset},${offset + p.nbytes}]}`;
    parts.push(`${JSON.stringify(p.name)}:${info}`);
    offset += p.nbytes;
  }
  const json = new TextEncoder().encode(`{${parts.join(',')}}`);
  const headerLength = json.length + ((8 - (json.length % 8)) % 8);

  const out = new Uint8Array(8 + headerLength + offset);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, headerLength % 4294967296, true);
  dv.setUint32(4, Math.floor(headerLength / 4294967296), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + headerLength);
  let pos = 8 + headerLength;
  for (const p of prepared) {
    out.set(tensorDataToBytes(p.tensor.data, p.size), pos);
    pos += p.nbytes;
  }
  return out;
}

/**
 * The header's JSON object from its bytes (after the 8-byte length): strict UTF-8, starting with
 * `{`, an object. `fail` throws with the problem (the caller names the file). Shared by the
 * in-memory reader below and the streaming one (src/io/hf/safetensors-stream.ts).
 */
export function parseSafetensorsHeaderJson(headerBytes: Uint8Array, fail: (problem: string) => never): Record<string, unknown> {
  let text = '';
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(headerBytes);
  } catch {
    fail('header is not valid UTF-8 (not a safetensors file)');
  }
  if (text[0] !== '{') fail(`header must start with '{', found ${JSON.stringify(text.slice(0, 16))} (not a safetensors file)`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    fail(`header is not valid JSON (${(err as Error).message})`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) fail('header JSON must be an object');
  return parsed as Record<string, unknown>;
}

/** Parse and validate the header of safetensors `bytes` (`source` names the file in errors). */
export function readSafetensorsHeader(bytes: Uint8Array, options: { source: string }): SafetensorsHeader {
  function fail(problem: string): never {
    throw new SafetensorsError(options.source, problem);
  }
  if (bytes.length < 8) fail(`file is ${bytes.length} bytes, shorter than the 8-byte header length (file truncated or not safetensors)`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = dv.getUint32(0, true) + dv.getUint32(4, true) * 4294967296;
  if (n > bytes.length - 8) {
    fail(`header length ${formatCount(n)} exceeds file size ${bytes.length} (file truncated or not safetensors)`);
  }
  if (n > MAX_HEADER_BYTES) fail(`header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit (not a safetensors file)`);
  const parsed = parseSafetensorsHeaderJson(bytes.subarray(8, 8 + n), fail);

  let metadata: Record<string, string> | undefined;
  const raw: [string, SafetensorsEntry][] = [];
  for (const [name, value] of Object.entries(parsed)) {
    if (name === '__metadata__') {
      if (value === null || typeof value !== 'object' || Array.isArray(value)) fail('__metadata__ must be an object of strings');
      for (const [k, v] of Object.entries(value as object)) {
        if (typeof v !== 'string') fail(`__metadata__ ${JSON.stringify(k)} must be a string, got ${JSON.stringify(v)}`);
      }
      metadata = { ...(value as Record<string, string>) };
      continue;
    }
    const where = `tensor ${JSON.stringify(name)}`;
    const info = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown } | null;
    if (info === null || typeof info !== 'object' || Array.isArray(info)) fail(`${where}: entry must be an object with dtype, shape and data_offsets`);
    if (!isSafetensorsDtype(info.dtype)) fail(`${where}: unknown dtype ${JSON.stringify(info.dtype)} (known: ${Object.keys(DTYPES).join(', ')})`);
    const shape = info.shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      fail(`${where}: shape ${JSON.stringify(shape)} must be a list of non-negative integers`);
    }
    const off = info.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !off.every((d) => Number.isSafeInteger(d) && d >= 0) || off[1] < off[0]) {
      fail(`${where}: data_offsets ${JSON.stringify(off)} must be [begin, end] with 0 <= begin <= end`);
    }
    const [begin, end] = off as number[];
    raw.push([name, { dtype: info.dtype as SafetensorsDtype, shape: [...(shape as number[])], dataOffsets: [begin, end] }]);
  }

  raw.sort((a, b) => a[1].dataOffsets[0] - b[1].dataOffsets[0] || a[1].dataOffsets[1] - b[1].dataOffsets[1]);
  const bufferLength = bytes.length - 8 - n;
  let covered = 0;
  let prevName = '';
  for (const [name, e] of raw) {
    const [begin, end] = e.dataOffsets;
    const where = `tensor ${JSON.stringify(name)}`;
    if (begin < covered) fail(`${where} data_offsets [${begin}, ${end}] overlap tensor ${JSON.stringify(prevName)} (which ends at ${covered})`);
    if (begin > covered) fail(`data buffer bytes [${covered}, ${begin}) belong to no tensor (a hole before ${where}); offsets must tile the buffer`);
    const count = elementCount(e.shape);
    const nbytes = count * DTYPES[e.dtype].size;
    if (!Number.isSafeInteger(nbytes)) fail(`${where}: shape [${e.shape.join(', ')}] is too large`);
    if (end - begin !== nbytes) {
      fail(`${where}: shape [${e.shape.join(', ')}] of ${e.dtype} needs ${nbytes} bytes but data_offsets [${begin}, ${end}] hold ${end - begin}`);
    }
    if (end > bufferLength) {
      fail(`${where} data_offsets [${begin}, ${end}] run past the end of the data buffer (${bufferLength} bytes; file truncated)`);
    }
    covered = end;
    prevName = name;
  }
  if (covered !== bufferLength) {
    fail(`data buffer has ${bufferLength} bytes but the tensors cover ${covered} (trailing bytes belong to no tensor)`);
  }
  const header: SafetensorsHeader = { headerLength: n, dataStart: 8 + n, entries: new Map(raw) };
  if (metadata !== undefined) header.metadata = metadata;
  return header;
}

/**
 * Parse safetensors `bytes` into tensors (each copied into its own aligned typed array) and
 * metadata. Throws a `SafetensorsError` starting with `source` on any malformed input.
 */
export function decodeSafetensors(
  bytes: Uint8Array,
  options: { source: string },
): { tensors: Map<string, SafetensorsTensor>; metadata?: Record<string, string> } {
  const header = readSafetensorsHeader(bytes, options);
  const tensors = new Map<string, SafetensorsTensor>();
  for (const [name, e] of header.entries) {
    const [begin, end] = e.dataOffsets;
    const data = tensorDataFromBytes(e.dtype, bytes.subarray(header.dataStart + begin, header.dataStart + end));
    tensors.set(name, { dtype: e.dtype, shape: e.shape, data });
  }
  return header.metadata !== undefined ? { tensors, metadata: header.metadata } : { tensors };
}
