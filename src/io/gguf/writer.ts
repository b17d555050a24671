/**
 * Writing GGUF v3 files (layout in `format.ts`). The header (metadata and tensor infos) is
 * encoded first, with every tensor's offset computed from its type and dims; then the tensors
 * are appended one at a time, so a large model is never held twice in memory.
 */
import type { FileSystem } from '../../runtime/fs-types.js';
import { randomSuffix } from '../../runtime/fs-types.js';
import {
  GGML_TYPE_ID, GGUF_DEFAULT_ALIGNMENT, GGUF_MAGIC, GGUF_VERSION, GgufValueType, SCALAR_TYPE_ID,
  type GgmlTypeName, type GgufScalarKind, type GgufValue, ggmlTensorBytes,
} from './format.js';

/** One tensor of a GGUF file: `ne[0]` is the row length; `data` is its bytes in `type`'s layout. */
export interface GgufTensor {
  name: string;
  type: GgmlTypeName;
  ne: readonly number[];
  /** The bytes, or a function that makes them when the writer reaches this tensor. */
  data: Uint8Array | (() => Uint8Array);
}

/** What a GGUF file holds. Metadata keys are written in the order given. */
export interface GgufContent {
  metadata: ReadonlyArray<readonly [string, GgufValue]>;
  tensors: readonly GgufTensor[];
  /** Default 32 (written as `general.alignment` when different). */
  alignment?: number;
}

class ByteWriter {
  private buf = new Uint8Array(4096);
  private view = new DataView(this.buf.buffer);
  length = 0;

  private reserve(n: number): void {
    if (this.length + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.length + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }
  u8(v: number): void { this.reserve(1); this.view.setUint8(this.length, v); this.length += 1; }
  i8(v: number): void { this.reserve(1); this.view.setInt8(this.length, v); this.length += 1; }
  u16(v: number): void { this.reserve(2); this.view.setUint16(this.length, v, true); this.length += 2; }
  i16(v: number): void { this.reserve(2); this.view.setInt16(this.length, v, true); this.length += 2; }
  u32(v: number): void { this.reserve(4); this.view.setUint32(this.length, v, true); this.length += 4; }
  i32(v: number): void { this.reserve(4); this.view.setInt32(this.length, v, true); this.length += 4; }
  f32(v: number): void { this.reserve(4); this.view.setFloat32(this.length, v, true); this.length += 4; }
  f64(v: number): void { this.reserve(8); this.view.setFloat64(this.length, v, true); this.length += 8; }
  u64(v: number | bigint): void { this.reserve(8); this.view.setBigUint64(this.length, BigInt(v), true); this.length += 8; }
  i64(v: number | bigint): void { this.reserve(8); this.view.setBigInt64(this.length, BigInt(v), true); this.length += 8; }
  bytes(b: Uint8Array): void { this.reserve(b.length); this.buf.set(b, this.length); this.length += b.length; }
  string(s: string): void {
    const b = new TextEncoder().encode(s);
    this.u64(b.length);
    this.bytes(b);
  }
  pad(alignment: number): void {
    const n = (alignment - (this.length % alignment)) % alignment;
    this.reserve(n);
    this.buf.fill(0, this.length, this.length + n);
    this.length += n;
  }
  result(): Uint8Array { return this.buf.slice(0, this.length); }
}

function checkInteger(key: string, kind: GgufScalarKind, v: unknown, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw new Error(`GGUF metadata ${key}: ${String(v)} is not a ${kind} (${min}..${max})`);
  return v;
}

function writeScalar(w: ByteWriter, key: string, kind: GgufScalarKind, v: number | bigint | boolean | string): void {
  switch (kind) {
    case 'u8': return w.u8(checkInteger(key, kind, v, 0, 255));
    case 'i8': return w.i8(checkInteger(key, kind, v, -128, 127));
    case 'u16': return w.u16(checkInteger(key, kind, v, 0, 65535));
    case 'i16': return w.i16(checkInteger(key, kind, v, -32768, 32767));
    case 'u32': return w.u32(checkInteger(key, kind, v, 0, 4294967295));
    case 'i32': return w.i32(checkInteger(key, kind, v, -2147483648, 2147483647));
    case 'f32':
    case 'f64':
      if (typeof v !== 'number') throw new Error(`GGUF metadata ${key}: ${String(v)} is not a number`);
      return kind === 'f32' ? w.f32(v) : w.f64(v);
    case 'u64':
    case 'i64':
      if (typeof v !== 'number' && typeof v !== 'bigint') throw new Error(`GGUF metadata ${key}: ${String(v)} is not an integer`);
      return kind === 'u64' ? w.u64(v) : w.i64(v);
    case 'bool':
      if (typeof v !== 'boolean') throw new Error(`GGUF metadata ${key}: ${String(v)} is not a boolean`);
      return w.u8(v ? 1 : 0);
    case 'string':
      if (typeof v !== 'string') throw new Error(`GGUF metadata ${key}: ${String(v)} is not a string`);
      return w.string(v);
  }
}

/** Where each tensor's data starts (relative to the data section) and the data section's size. */
export function ggufTensorOffsets(tensors: readonly GgufTensor[], alignment = GGUF_DEFAULT_ALIGNMENT): { offsets: number[]; sizes: number[]; dataBytes: number } {
  const offsets: number[] = [];
  const sizes: number[] = [];
  let at = 0;
  for (const t of tensors) {
    offsets.push(at);
    const size = ggmlTensorBytes(t.type, t.ne);
    sizes.push(size);
    at += size;
    at += (alignment - (at % alignment)) % alignment;
  }
  return { offsets, sizes, dataBytes: at };
}

/** The header of a GGUF file (everything before the tensor data, padded to the alignment). */
export function encodeGgufHeader(content: GgufContent): Uint8Array {
  const alignment = content.alignment ?? GGUF_DEFAULT_ALIGNMENT;
  const metadata = [...content.metadata];
  if (alignment !== GGUF_DEFAULT_ALIGNMENT) metadata.push(['general.alignment', { type: 'u32', value: alignment }]);
  const seen = new Set<string>();
  for (const [k] of metadata) {
    if (seen.has(k)) throw new Error(`GGUF metadata: key ${k} given twice`);
    seen.add(k);
  }
  const names = new Set<string>();
  for (const t of content.tensors) {
    if (names.has(t.name)) throw new Error(`GGUF: tensor ${t.name} given twice`);
    names.add(t.name);
    if (t.ne.length < 1 || t.ne.length > 4 || t.ne.some((d) => !Number.isInteger(d) || d <= 0)) throw new Error(`GGUF: tensor ${t.name} has dims [${t.ne.join(', ')}]; expected 1 to 4 positive integers`);
  }
  const w = new ByteWriter();
  w.u32(GGUF_MAGIC);
  w.u32(GGUF_VERSION);
  w.u64(content.tensors.length);
  w.u64(metadata.length);
  for (const [key, value] of metadata) {
    w.string(key);
    if (value.type === 'array') {
      w.u32(GgufValueType.ARRAY);
      w.u32(SCALAR_TYPE_ID[value.itemType]);
      w.u64(value.values.length);
      for (const v of value.values) writeScalar(w, key, value.itemType, v);
    } else {
      w.u32(SCALAR_TYPE_ID[value.type]);
      writeScalar(w, key, value.type, value.value);
    }
  }
  const { offsets } = ggufTensorOffsets(content.tensors, alignment);
  content.tensors.forEach((t, i) => {
    w.string(t.name);
    w.u32(t.ne.length);
    for (const d of t.ne) w.u64(d);
    w.u32(GGML_TYPE_ID[t.type]);
    w.u64(offsets[i]!);
  });
  w.pad(alignment);
  return w.result();
}

function tensorBytes(t: GgufTensor, expected: number): Uint8Array {
  const data = typeof t.data === 'function' ? t.data() : t.data;
  if (data.length !== expected) throw new Error(`GGUF: tensor ${t.name} (${t.type}, ne [${t.ne.join(', ')}]) has ${data.length} bytes, its type and dims need ${expected}`);
  return data;
}

/** A whole GGUF file in memory (small models, tests). */
export function encodeGguf(content: GgufContent): Uint8Array {
  const alignment = content.alignment ?? GGUF_DEFAULT_ALIGNMENT;
  const header = encodeGgufHeader(content);
  const { offsets, sizes, dataBytes } = ggufTensorOffsets(content.tensors, alignment);
  const out = new Uint8Array(header.length + dataBytes);
  out.set(header, 0);
  content.tensors.forEach((t, i) => out.set(tensorBytes(t, sizes[i]!), header.length + offsets[i]!));
  return out;
}

/**
 * Write a GGUF file tensor by tensor to `path` (through a temporary name renamed at the end, so
 * a failure never leaves a partial file under `path`). Returns the file's size in bytes.
 */
export async function writeGguf(fs: FileSystem, path: string, content: GgufContent): Promise<number> {
  const alignment = content.alignment ?? GGUF_DEFAULT_ALIGNMENT;
  const header = encodeGgufHeader(content);
  const { sizes, dataBytes } = ggufTensorOffsets(content.tensors, alignment);
  const tmp = `${path}.tmp-${randomSuffix()}`;
  try {
    await fs.writeFile(tmp, header);
    for (let i = 0; i < content.tensors.length; i++) {
      const data = tensorBytes(content.tensors[i]!, sizes[i]!);
      const pad = (alignment - (data.length % alignment)) % alignment;
      if (pad === 0) await fs.appendFile(tmp, data);
      else {
        const padded = new Uint8Array(data.length + pad);
        padded.set(data);
        await fs.appendFile(tmp, padded);
      }
    }
    await fs.rename(tmp, path);
  } catch (err) {
    await fs.remove(tmp, { force: true }).catch(() => undefined);
    throw err;
  }
  return header.length + dataBytes;
}
