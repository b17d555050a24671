/**
 * TFRecord framing, the container of TensorBoard event files. Each record is
 *
 *   uint64 length (little-endian) | uint32 masked_crc32c(length bytes) | data[length] | uint32 masked_crc32c(data)
 *
 * (tensorflow/core/lib/io/record_writer.cc describes the same layout.)
 */
import { type Crc32c, maskCrc } from './crc32c.js';

/** Bytes a record of `n` data bytes takes in the file. */
export const recordSize = (n: number): number => 8 + 4 + n + 4;

/** Write one framed record of `data` into `out` at `offset`; returns the offset after it. */
export function writeRecord(out: Uint8Array, offset: number, data: Uint8Array, crc32c: Crc32c): number {
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  view.setUint32(offset, data.length >>> 0, true);
  view.setUint32(offset + 4, Math.floor(data.length / 2 ** 32), true);
  view.setUint32(offset + 8, maskCrc(crc32c(out.subarray(offset, offset + 8))), true);
  out.set(data, offset + 12);
  view.setUint32(offset + 12 + data.length, maskCrc(crc32c(data)), true);
  return offset + recordSize(data.length);
}

/** `records` framed one after another. */
export function frameRecords(records: readonly Uint8Array[], crc32c: Crc32c): Uint8Array {
  let size = 0;
  for (const r of records) size += recordSize(r.length);
  const out = new Uint8Array(size);
  let at = 0;
  for (const r of records) at = writeRecord(out, at, r, crc32c);
  return out;
}
