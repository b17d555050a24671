/**
 * Reading GGUF v3 headers (layout in `format.ts`): metadata, tensor infos and where each
 * tensor's bytes are. Used to check an export (tests, `export` itself) — an independent check of
 * the bytes is llama.cpp loading the file.
 */
import {
  GGML_TYPE_OF_ID, GGUF_DEFAULT_ALIGNMENT, GGUF_MAGIC, GgufValueType, SCALAR_KIND_OF_ID,
  type GgmlTypeName, type GgufScalarKind, type GgufValue, ggmlTensorBytes,
} from './format.js';

/** A tensor info of a parsed file; `start` is its first byte in the file. */
export interface GgufTensorInfo {
  name: string;
  ne: number[];
  type: GgmlTypeName;
  /** Offset relative to the data section. */
  offset: number;
  /** Absolute position in the file. */
  start: number;
  bytes: number;
}

export interface ParsedGguf {
  version: number;
  metadata: Map<string, GgufValue>;
  tensors: GgufTensorInfo[];
  alignment: number;
  dataStart: number;
}

/** Parse a GGUF file's header; throws naming the problem (`source` names the file). */
export function parseGguf(bytes: Uint8Array, source = 'GGUF file'): ParsedGguf {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = 0;
  const need = (n: number): void => {
    if (at + n > bytes.length) throw new Error(`${source}: truncated at byte ${at} (needs ${n} more, file has ${bytes.length})`);
  };
  const u32 = (): number => { need(4); const v = view.getUint32(at, true); at += 4; return v; };
  const u64 = (): number => { need(8); const v = Number(view.getBigUint64(at, true)); at += 8; return v; };
  const str = (): string => { const n = u64(); need(n); const s = new TextDecoder().decode(bytes.subarray(at, at + n)); at += n; return s; };
  const scalar = (kind: GgufScalarKind): number | bigint | boolean | string => {
    switch (kind) {
      case 'u8': need(1); return view.getUint8(at++);
      case 'i8': need(1); return view.getInt8(at++);
      case 'u16': { need(2); const v = view.getUint16(at, true); at += 2; return v; }
      case 'i16': { need(2); const v = view.getInt16(at, true); at += 2; return v; }
      case 'u32': return u32();
      case 'i32': { need(4); const v = view.getInt32(at, true); at += 4; return v; }
      case 'f32': { need(4); const v = view.getFloat32(at, true); at += 4; return v; }
      case 'f64': { need(8); const v = view.getFloat64(at, true); at += 8; return v; }
      case 'u64': { need(8); const v = view.getBigUint64(at, true); at += 8; return v; }
      case 'i64': { need(8); const v = view.getBigInt64(at, true); at += 8; return v; }
      case 'bool': need(1); return view.getUint8(at++) !== 0;
      case 'string': return str();
    }
  };
  if (u32() !== GGUF_MAGIC) throw new Error(`${source}: not a GGUF file (magic is not "GGUF")`);
  const version = u32();
  if (version !== 3) throw new Error(`${source}: GGUF version ${version}; this reader knows version 3`);
  const nTensors = u64();
  const nKv = u64();
  const metadata = new Map<string, GgufValue>();
  for (let i = 0; i < nKv; i++) {
    const key = str();
    const t = u32();
    if (t === GgufValueType.ARRAY) {
      const itemId = u32();
      const itemType = SCALAR_KIND_OF_ID[itemId];
      if (!itemType) throw new Error(`${source}: metadata ${key}: unknown array item type ${itemId}`);
      const n = u64();
      const values: (number | bigint | boolean | string)[] = [];
      for (let j = 0; j < n; j++) values.push(scalar(itemType));
      metadata.set(key, { type: 'array', itemType, values });
    } else {
      const kind = SCALAR_KIND_OF_ID[t];
      if (!kind) throw new Error(`${source}: metadata ${key}: unknown value type ${t}`);
      metadata.set(key, { type: kind, value: scalar(kind) } as GgufValue);
    }
  }
  const infos: Omit<GgufTensorInfo, 'start'>[] = [];
  for (let i = 0; i < nTensors; i++) {
    const name = str();
    const nd = u32();
    const ne: number[] = [];
    for (let d = 0; d < nd; d++) ne.push(u64());
    const typeId = u32();
    const type = GGML_TYPE_OF_ID[typeId];
    if (!type) throw new Error(`${source}: tensor ${name}: ggml type ${typeId} is not one this reader knows`);
    const offset = u64();
    infos.push({ name, ne, type, offset, bytes: ggmlTensorBytes(type, ne) });
  }
  const al = metadata.get('general.alignment');
  const alignment = al && al.type === 'u32' ? al.value : GGUF_DEFAULT_ALIGNMENT;
  const dataStart = at + ((alignment - (at % alignment)) % alignment);
  const tensors = infos.map((t) => {
    const start = dataStart + t.offset;
    if (start + t.bytes > bytes.length) throw new Error(`${source}: tensor ${t.name} ends at byte ${start + t.bytes}, past the end of the file (${bytes.length})`);
    return { ...t, start };
  });
  return { version, metadata, tensors, alignment, dataStart };
}

/** The bytes of tensor `name` of a parsed file. */
export function ggufTensorData(bytes: Uint8Array, parsed: ParsedGguf, name: string): Uint8Array {
  const t = parsed.tensors.find((x) => x.name === name);
  if (!t) throw new Error(`GGUF: no tensor ${name} (has ${parsed.tensors.slice(0, 5).map((x) => x.name).join(', ')}${parsed.tensors.length > 5 ? ', ...' : ''})`);
  return bytes.subarray(t.start, t.start + t.bytes);
}
