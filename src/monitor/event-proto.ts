/**
 * The protocol buffers of a TensorBoard event file, encoded with @bufbuild/protobuf's wire
 * writer. Field numbers are those of tensorboard/compat/proto (event.proto, summary.proto,
 * histogram.proto, tensor.proto, tensor_shape.proto); only the fields written here are listed
 * (the library is loaded by `monitorLibraries()`, which `TensorBoardWriter.create` awaits):
 *
 *   Event     { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5; }
 *   Summary   { repeated Value value = 1; }
 *   Value     { string tag = 1; float simple_value = 2; HistogramProto histo = 5; TensorProto tensor = 8; SummaryMetadata metadata = 9; }
 *   SummaryMetadata { PluginData plugin_data = 1 { string plugin_name = 1; bytes content = 2; } }
 *   HistogramProto  { double min = 1, max = 2, num = 3, sum = 4, sum_squares = 5; repeated double bucket_limit = 6 [packed], bucket = 7 [packed]; }
 *   TensorProto     { DataType dtype = 1 (DT_STRING = 7); TensorShapeProto tensor_shape = 2 { repeated Dim dim = 2 { int64 size = 1; } }; repeated bytes string_val = 8; }
 */
import type { BinaryWriter } from '@bufbuild/protobuf/wire';
import { loadedMonitorLibraries } from './libraries.js';

/** A histogram as TensorBoard stores it: bucket `i` counts values in (bucketLimit[i-1], bucketLimit[i]]. */
export interface Histogram {
  min: number;
  max: number;
  num: number;
  sum: number;
  sumSquares: number;
  bucketLimit: number[];
  bucket: number[];
}

/** One summary value: a scalar, a histogram, or markdown text (the text plugin). */
export type SummaryValue =
  | { tag: string; scalar: number }
  | { tag: string; histogram: Histogram }
  | { tag: string; text: string };

/** The first record of every event file. */
export const FILE_VERSION = 'brain.Event:2';

const DT_STRING = 7;
const utf8 = new TextEncoder();

/** `Event { wall_time, file_version }`. */
export function encodeFileVersionEvent(wallTime: number): Uint8Array {
  const { BinaryWriter, WireType } = loadedMonitorLibraries().protobufWire;
  return new BinaryWriter().tag(1, WireType.Bit64).double(wallTime).tag(3, WireType.LengthDelimited).string(FILE_VERSION).finish();
}

/** `Event { wall_time, step, summary { value... } }`. */
export function encodeSummaryEvent(wallTime: number, step: number, values: readonly SummaryValue[]): Uint8Array {
  const { BinaryWriter, WireType } = loadedMonitorLibraries().protobufWire;
  const w = new BinaryWriter();
  w.tag(1, WireType.Bit64).double(wallTime);
  w.tag(2, WireType.Varint).int64(step);
  w.tag(5, WireType.LengthDelimited).fork();
  for (const v of values) {
    w.tag(1, WireType.LengthDelimited).fork();
    writeValue(w, v);
    w.join();
  }
  w.join();
  return w.finish();
}

function writeValue(w: BinaryWriter, v: SummaryValue): void {
  const { WireType } = loadedMonitorLibraries().protobufWire;
  w.tag(1, WireType.LengthDelimited).string(v.tag);
  if ('scalar' in v) {
    w.tag(2, WireType.Bit32).float(v.scalar);
  } else if ('histogram' in v) {
    const h = v.histogram;
    w.tag(5, WireType.LengthDelimited).fork();
    w.tag(1, WireType.Bit64).double(h.min);
    w.tag(2, WireType.Bit64).double(h.max);
    w.tag(3, WireType.Bit64).double(h.num);
    w.tag(4, WireType.Bit64).double(h.sum);
    w.tag(5, WireType.Bit64).double(h.sumSquares);
    w.tag(6, WireType.LengthDelimited).fork();
    for (const x of h.bucketLimit) w.double(x);
    w.join();
    w.tag(7, WireType.LengthDelimited).fork();
    for (const x of h.bucket) w.double(x);
    w.join();
    w.join();
  } else {
    // the text plugin: metadata names it; the value is a DT_STRING tensor of shape [1]
    w.tag(9, WireType.LengthDelimited).fork();
    w.tag(1, WireType.LengthDelimited).fork().tag(1, WireType.LengthDelimited).string('text').join();
    w.join();
    w.tag(8, WireType.LengthDelimited).fork();
    w.tag(1, WireType.Varint).int32(DT_STRING);
    w.tag(2, WireType.LengthDelimited).fork().tag(2, WireType.LengthDelimited).fork().tag(1, WireType.Varint).int64(1).join().join();
    w.tag(8, WireType.LengthDelimited).bytes(utf8.encode(v.text));
    w.join();
  }
}
