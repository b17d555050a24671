// An event-file reader for the monitor tests, independent of src/monitor: TFRecord framing and
// masked CRC-32C checked by the code below (a table-driven CRC written here), protocol buffers
// decoded by protobufjs from test/fixtures/tensorboard/event.proto.
import { readFileSync } from 'node:fs';
import protobuf from 'protobufjs';

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32C (Castagnoli), bitwise-table implementation. */
export function crc32cReference(data: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of data) c = CRC_TABLE[(c ^ b) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

const masked = (crc: number): number => ((((crc >>> 15) | (crc << 17)) >>> 0) + 0xa282ead8) >>> 0;

/** Split TFRecord bytes into records, throwing on a bad length or data CRC or a torn tail. */
export function readRecords(bytes: Uint8Array): Uint8Array[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: Uint8Array[] = [];
  let at = 0;
  while (at < bytes.length) {
    if (at + 12 > bytes.length) throw new Error(`record at byte ${at}: truncated header`);
    const len = view.getUint32(at, true) + view.getUint32(at + 4, true) * 2 ** 32;
    if (view.getUint32(at + 8, true) !== masked(crc32cReference(bytes.subarray(at, at + 8)))) throw new Error(`record at byte ${at}: length CRC mismatch`);
    if (at + 16 + len > bytes.length) throw new Error(`record at byte ${at}: truncated data`);
    const data = bytes.subarray(at + 12, at + 12 + len);
    if (view.getUint32(at + 12 + len, true) !== masked(crc32cReference(data))) throw new Error(`record at byte ${at}: data CRC mismatch`);
    out.push(data);
    at += 16 + len;
  }
  return out;
}

const root = protobuf.parse(readFileSync(new URL('./fixtures/tensorboard/event.proto', import.meta.url), 'utf8')).root;
const EventType = root.lookupType('tensorboard.Event');

/** A decoded Event as a plain object (int64 as numbers, bytes as Uint8Array). */
export interface DecodedEvent {
  wallTime: number;
  step: number;
  fileVersion?: string;
  summary?: { value: { tag: string; simpleValue?: number; histo?: { min: number; max: number; num: number; sum: number; sumSquares: number; bucketLimit: number[]; bucket: number[] }; tensor?: { dtype: number; tensorShape?: { dim: { size: number }[] }; stringVal: Uint8Array[] }; metadata?: { pluginData?: { pluginName: string } } }[] };
}

/** Every event of an event file. */
export function readEvents(bytes: Uint8Array): DecodedEvent[] {
  return readRecords(bytes).map((r) => EventType.toObject(EventType.decode(r), { longs: Number, defaults: false, arrays: true }) as DecodedEvent);
}

/** `tag → [{ step, value }]` of the scalars in `events`. */
export function scalarSeries(events: DecodedEvent[]): Map<string, { step: number; value: number }[]> {
  const out = new Map<string, { step: number; value: number }[]>();
  for (const e of events) {
    for (const v of e.summary?.value ?? []) {
      if (v.simpleValue === undefined) continue;
      if (!out.has(v.tag)) out.set(v.tag, []);
      out.get(v.tag)!.push({ step: e.step ?? 0, value: v.simpleValue });
    }
  }
  return out;
}
