/**
 * Safetensors read a range at a time: the header from the first 8 + N bytes (validated against
 * the file's size, as `readSafetensorsHeader` validates a whole buffer), then each tensor's
 * bytes where the header puts them, decoded to f32 in chunks. Nothing holds the whole file.
 */
import { type SafetensorsDtype, type SafetensorsEntry, MAX_HEADER_BYTES, SafetensorsError, dtypeSize, isSafetensorsDtype, parseSafetensorsHeaderJson } from '../safetensors.js';
import type { RangeReader } from './source.js';

/** An opened safetensors file: its validated header and the reader for its data. */
export interface SafetensorsFile {
  /** The file's name, for messages (`dir/model-00001-of-00002.safetensors`). */
  source: string;
  reader: RangeReader;
  /** Absolute offset of the data buffer. */
  dataStart: number;
  /** Tensors by name, in data order. */
  entries: Map<string, SafetensorsEntry>;
}

async function readExactly(reader: RangeReader, buffer: Uint8Array, position: number, source: string, what: string): Promise<void> {
  let done = 0;
  while (done < buffer.length) {
    const n = await reader.read(buffer.subarray(done), position + done);
    if (n <= 0) throw new SafetensorsError(source, `${what}: the file ends at byte ${position + done}, ${buffer.length - done} bytes short (file truncated)`);
    done += n;
  }
}

/** Open a safetensors file through `reader` and validate its header; throws a `SafetensorsError` naming `source`. */
export async function openSafetensors(reader: RangeReader, source: string): Promise<SafetensorsFile> {
  const fail = (problem: string): never => {
    throw new SafetensorsError(source, problem);
  };
  const size = reader.size;
  if (size < 8) fail(`file is ${size} bytes, shorter than the 8-byte header length (file truncated or not safetensors)`);
  const len = new Uint8Array(8);
  await readExactly(reader, len, 0, source, 'header length');
  const dv = new DataView(len.buffer);
  const n = dv.getUint32(0, true) + dv.getUint32(4, true) * 4294967296;
  if (n > size - 8) fail(`header length ${n} exceeds file size ${size} (file truncated or not safetensors)`);
  if (n > MAX_HEADER_BYTES) fail(`header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit (not a safetensors file)`);
  const headerBytes = new Uint8Array(n);
  await readExactly(reader, headerBytes, 8, source, 'header');
  const parsed = parseSafetensorsHeaderJson(headerBytes, fail);
  const raw: [string, SafetensorsEntry][] = [];
  for (const [name, value] of Object.entries(parsed)) {
    if (name === '__metadata__') continue;
    const where = `tensor ${JSON.stringify(name)}`;
    const info = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown } | null;
    if (info === null || typeof info !== 'object' || Array.isArray(info)) fail(`${where}: entry must be an object with dtype, shape and data_offsets`);
    if (!isSafetensorsDtype(info!.dtype)) fail(`${where}: unknown dtype ${JSON.stringify(info!.dtype)}; this loader reads F32, F16, BF16 and U8 (packed BitNet weights)`);
    const shape = info!.shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) fail(`${where}: shape ${JSON.stringify(shape)} must be a list of non-negative integers`);
    const off = info!.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !off.every((d) => Number.isSafeInteger(d) && d >= 0) || off[1] < off[0]) {
      fail(`${where}: data_offsets ${JSON.stringify(off)} must be [begin, end] with 0 <= begin <= end`);
    }
    raw.push([name, { dtype: info!.dtype as SafetensorsDtype, shape: [...(shape as number[])], dataOffsets: [(off as number[])[0]!, (off as number[])[1]!] }]);
  }
  raw.sort((a, b) => a[1].dataOffsets[0] - b[1].dataOffsets[0] || a[1].dataOffsets[1] - b[1].dataOffsets[1]);
  const bufferLength = size - 8 - n;
  let covered = 0;
  for (const [name, e] of raw) {
    const [begin, end] = e.dataOffsets;
    const where = `tensor ${JSON.stringify(name)}`;
    if (begin !== covered) fail(`${where} data_offsets [${begin}, ${end}] do not start where the previous tensor ends (${covered}); offsets must tile the buffer`);
    const nbytes = e.shape.reduce((a, d) => a * d, 1) * dtypeSize(e.dtype);
    if (end - begin !== nbytes) fail(`${where}: shape [${e.shape.join(', ')}] of ${e.dtype} needs ${nbytes} bytes but data_offsets [${begin}, ${end}] hold ${end - begin}`);
    if (end > bufferLength) fail(`${where} data_offsets [${begin}, ${end}] run past the end of the data buffer (${bufferLength} bytes; file truncated)`);
    covered = end;
  }
  if (covered !== bufferLength) fail(`data buffer has ${bufferLength} bytes but the tensors cover ${covered} (trailing bytes belong to no tensor)`);
  return { source, reader, dataStart: 8 + n, entries: new Map(raw) };
}

/** The dtypes `decodeF32` turns into f32. */
export const FLOAT_DTYPES: readonly SafetensorsDtype[] = ['F32', 'F16', 'BF16', 'F64'];

/** f32 from IEEE half bits. */
function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/**
 * Decode `bytes` (little-endian elements of `dtype`, a whole number of them) into `out` from
 * element `at`: F32 copied, BF16 widened exactly (bits << 16), F16 exactly, F64 rounded to f32.
 */
export function decodeF32(dtype: SafetensorsDtype, bytes: Uint8Array, out: Float32Array, at = 0): void {
  const aligned = (bytes.byteOffset % 8) === 0;
  switch (dtype) {
    case 'F32': {
      const n = bytes.length >> 2;
      if (LITTLE_ENDIAN && aligned) out.set(new Float32Array(bytes.buffer, bytes.byteOffset, n), at);
      else for (let i = 0, dv = view(bytes); i < n; i++) out[at + i] = dv.getFloat32(i << 2, true);
      return;
    }
    case 'BF16': {
      const n = bytes.length >> 1;
      const u = new Uint32Array(out.buffer, out.byteOffset + at * 4, n);
      if (LITTLE_ENDIAN && aligned) {
        const h = new Uint16Array(bytes.buffer, bytes.byteOffset, n);
        for (let i = 0; i < n; i++) u[i] = h[i]! << 16;
      } else for (let i = 0, dv = view(bytes); i < n; i++) u[i] = dv.getUint16(i << 1, true) << 16;
      return;
    }
    case 'F16': {
      const n = bytes.length >> 1;
      const dv = view(bytes);
      for (let i = 0; i < n; i++) out[at + i] = halfToFloat(dv.getUint16(i << 1, true));
      return;
    }
    case 'F64': {
      const n = bytes.length >> 3;
      const dv = view(bytes);
      for (let i = 0; i < n; i++) out[at + i] = dv.getFloat64(i << 3, true);
      return;
    }
    default:
      throw new Error(`decodeF32: dtype ${dtype} is not a float dtype (${FLOAT_DTYPES.join(', ')})`);
  }
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const view = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);

/** Bytes per chunk when a tensor is streamed (bounded memory whatever the tensor's size). */
export const STREAM_CHUNK_BYTES = 8 << 20;

/**
 * Stream the float tensor `name` of `file` as f32 chunks: `sink(values, start)` receives
 * consecutive pieces (element `start` onwards) of at most `STREAM_CHUNK_BYTES` of input.
 * `onBytes` reports the bytes read. The chunk arrays are reused: copy out before the next call.
 */
export async function streamTensorF32(file: SafetensorsFile, name: string, sink: (values: Float32Array, start: number) => void, onBytes?: (n: number) => void): Promise<void> {
  const e = file.entries.get(name);
  if (!e) throw new SafetensorsError(file.source, `no tensor ${JSON.stringify(name)}`);
  const size = dtypeSize(e.dtype);
  const [begin, end] = e.dataOffsets;
  const total = end - begin;
  const step = Math.max(size, Math.floor(STREAM_CHUNK_BYTES / size) * size);
  const bytes = new Uint8Array(Math.min(step, total));
  const values = new Float32Array(bytes.length / size);
  for (let pos = 0; pos < total; pos += step) {
    const n = Math.min(step, total - pos);
    const view = bytes.subarray(0, n);
    await readExactly(file.reader, view, file.dataStart + begin + pos, file.source, `tensor ${JSON.stringify(name)}`);
    decodeF32(e.dtype, view, values, 0);
    sink(values.subarray(0, n / size), pos / size);
    onBytes?.(n);
  }
}

/** Read the raw bytes of tensor `name` (for U8 packed weights and one-element scales). */
export async function readTensorBytes(file: SafetensorsFile, name: string): Promise<Uint8Array> {
  const e = file.entries.get(name);
  if (!e) throw new SafetensorsError(file.source, `no tensor ${JSON.stringify(name)}`);
  const out = new Uint8Array(e.dataOffsets[1] - e.dataOffsets[0]);
  await readExactly(file.reader, out, file.dataStart + e.dataOffsets[0], file.source, `tensor ${JSON.stringify(name)}`);
  return out;
}
