/**
 * The JSON-lines run log (`--log-file`): one object per line, one line per event.
 *
 *   {"event":"step","step":10,"loss":3.91,"lr":0.0003,"tokens_per_s":5120}
 *   {"event":"eval","step":200,"train_loss":2.41,"val_loss":2.45}
 *   {"event":"checkpoint","step":200,"path":"runs/x/ckpt-200"}
 *   {"event":"done","step":600,"val_loss":2.01,"train_seconds":95.2,"tokens_per_s":4980}
 *
 * A non-finite number is written as null (JSON has no NaN).
 */
import type { FileSystem } from '../runtime/fs-types.js';
import { dirname } from '../runtime/fs-types.js';

export interface StepEvent { event: 'step'; step: number; loss: number; lr: number; tokens_per_s: number }
export interface EvalEvent { event: 'eval'; step: number; train_loss: number; val_loss: number }
export interface CheckpointEvent { event: 'checkpoint'; step: number; path: string }
export interface DoneEvent { event: 'done'; step: number; val_loss: number | null; train_seconds: number; tokens_per_s: number }
export type RunEvent = StepEvent | EvalEvent | CheckpointEvent | DoneEvent;

/** One event as its JSON line (with the trailing newline). */
export function formatEvent(e: RunEvent): string {
  return JSON.stringify(e, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v)) + '\n';
}

/** Appends events to a JSON-lines file (created with its directory; an existing log is continued). */
export class JsonLinesLog {
  private ready: Promise<void> | undefined;

  constructor(readonly fs: FileSystem, readonly path: string) {}

  /** Append one event. */
  async write(e: RunEvent): Promise<void> {
    this.ready ??= this.fs.mkdirp(dirname(this.path));
    await this.ready;
    await this.fs.appendFile(this.path, formatEvent(e));
  }
}
