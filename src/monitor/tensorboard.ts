/**
 * A TensorBoard event-file writer over the runtime's `FileSystem` (Node, Deno, Bun: node:fs; a
 * browser: OPFS or memory, from which the page offers the file for download).
 *
 * ```ts
 * const tb = await TensorBoardWriter.create(fs, 'runs/x/tb');
 * tb.scalar('train/loss', 3.2, 10);
 * tb.histogram('weights/q_proj', values, 10);
 * tb.text('config', '```json\n{…}\n```', 0);
 * await tb.flush();
 * ```
 *
 * Adding values is synchronous and only encodes the protocol buffer (cheap enough to call every
 * step); `flush()` frames the pending records (TFRecord, masked CRC-32C) and appends them to the
 * file, so the trainer awaits file I/O once per log interval (DESIGN.md decision 8).
 */
import { hostName } from '../runtime/host-name.js';
import type { FileSystem } from '../runtime/fs-types.js';
import { FileSystemError, FS_CODE_TEXT, joinPath } from '../runtime/fs-types.js';
import { type Crc32c, loadCrc32c } from './crc32c.js';
import { type Histogram, type SummaryValue, encodeFileVersionEvent, encodeSummaryEvent } from './event-proto.js';
import { histogramOf } from './histogram.js';
import { frameRecords } from './tfrecord.js';

/** Options of `TensorBoardWriter.create`. */
export interface TensorBoardWriterOptions {
  /** Wall clock in milliseconds (default `Date.now`); event `wall_time` is in seconds. */
  now?: () => number;
  /** The host part of the file name (default: the runtime's host name). */
  host?: string;
}

export class TensorBoardWriter {
  private pending: Uint8Array[] = [];
  private writing: Promise<void> = Promise.resolve();
  private closed = false;

  private constructor(
    readonly fs: FileSystem,
    /** The event file (`<dir>/events.out.tfevents.<seconds>.<host>`). */
    readonly path: string,
    private readonly crc32c: Crc32c,
    private readonly now: () => number,
  ) {}

  /** Create `dir` and a new event file in it (its first record: the file version). */
  static async create(fs: FileSystem, dir: string, options: TensorBoardWriterOptions = {}): Promise<TensorBoardWriter> {
    const now = options.now ?? (() => Date.now());
    const host = (options.host ?? (await hostName())).replace(/[^A-Za-z0-9._-]/g, '_');
    if (dir.trim() === '') throw new Error('tensorboard: the directory is empty; give one for the event files (e.g. --tensorboard runs/x/tb)');
    const crc32c = await loadCrc32c();
    try {
      await fs.mkdirp(dir);
    } catch (err) {
      if (err instanceof FileSystemError) throw new Error(`tensorboard ${dir}: cannot create the directory (${err.path}: ${FS_CODE_TEXT[err.code] ?? err.code}); give a directory for the event files`);
      throw err;
    }
    const seconds = Math.floor(now() / 1000);
    let path = joinPath(dir, `events.out.tfevents.${seconds}.${host}`);
    for (let i = 2; await fs.exists(path); i++) path = joinPath(dir, `events.out.tfevents.${seconds}.${host}.${i}`);
    const w = new TensorBoardWriter(fs, path, crc32c, now);
    await fs.writeFile(path, frameRecords([encodeFileVersionEvent(now() / 1000)], crc32c));
    return w;
  }

  /** Queue one event holding `values` at `step`. */
  add(step: number, values: readonly SummaryValue[]): void {
    if (this.closed) throw new Error(`tensorboard ${this.path}: the writer is closed`);
    if (!Number.isInteger(step) || step < 0) throw new Error(`tensorboard ${this.path}: step must be a non-negative integer, got ${step}`);
    if (values.length > 0) this.pending.push(encodeSummaryEvent(this.now() / 1000, step, values));
  }

  /** Queue a scalar. */
  scalar(tag: string, value: number, step: number): void {
    this.add(step, [{ tag, scalar: value }]);
  }

  /** Queue several scalars of one step as one event. Non-numbers are skipped; NaN is kept (TensorBoard shows it). */
  scalars(step: number, values: Record<string, number | null | undefined>): void {
    const list: SummaryValue[] = [];
    for (const [tag, v] of Object.entries(values)) if (typeof v === 'number') list.push({ tag, scalar: v });
    this.add(step, list);
  }

  /** Queue a histogram of `values` (equal-width buckets), or a histogram already bucketed. */
  histogram(tag: string, values: ArrayLike<number> | Histogram, step: number): void {
    const h = 'bucketLimit' in values ? values : histogramOf(values);
    this.add(step, [{ tag, histogram: h }]);
  }

  /** Queue markdown text (TensorBoard's Text tab). */
  text(tag: string, markdown: string, step: number): void {
    this.add(step, [{ tag, text: markdown }]);
  }

  /** Frame and append the queued events. Concurrent calls write in call order. */
  flush(): Promise<void> {
    if (this.pending.length === 0) return this.writing;
    const records = this.pending;
    this.pending = [];
    const bytes = frameRecords(records, this.crc32c);
    this.writing = this.writing.then(() => this.fs.appendFile(this.path, bytes));
    return this.writing;
  }

  /** Flush and refuse further values. */
  async close(): Promise<void> {
    await this.flush();
    this.closed = true;
  }
}
