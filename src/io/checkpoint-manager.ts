/**
 * Checkpoint rotation inside a run directory:
 *
 *   <root>/ckpt-<step>/   the last N saves (by step), older ones deleted
 *   <root>/best/          a copy of the save with the best metric so far (lowest val loss by default)
 *
 * Each directory is written with `writeCheckpointFiles`' crash-safe swap.
 */

import type { FileSystem } from '../runtime/fs.js';
import { joinPath } from '../runtime/fs.js';
import {
  type CheckpointData,
  CheckpointError,
  TRAINER_FILE,
  encodeCheckpoint,
  recoverCheckpointDir,
  writeCheckpointFiles,
} from './checkpoint.js';

const CKPT_NAME = /^ckpt-(\d+)$/;
export const BEST_DIR = 'best';

/** A checkpoint found in a run directory. */
export interface CheckpointEntry {
  step: number;
  path: string;
}

/** `ckpt-<step>` directories of `root` that hold a trainer.json, by ascending step. */
export async function listCheckpoints(fs: FileSystem, root: string): Promise<CheckpointEntry[]> {
  if (!(await fs.exists(root))) return [];
  const found: CheckpointEntry[] = [];
  for (const name of await fs.list(root)) {
    const m = CKPT_NAME.exec(name);
    if (!m) continue;
    const path = joinPath(root, name);
    if (await fs.exists(joinPath(path, TRAINER_FILE))) found.push({ step: Number(m[1]), path });
  }
  return found.sort((a, b) => a.step - b.step);
}

/** The `ckpt-<step>` directory with the highest step in `root`, or undefined if none. */
export async function latestCheckpoint(fs: FileSystem, root: string): Promise<string | undefined> {
  const all = await listCheckpoints(fs, root);
  return all.length > 0 ? all[all.length - 1].path : undefined;
}

/**
 * What `--resume PATH` means: PATH itself if it is a checkpoint (or one interrupted mid-swap),
 * else the latest `ckpt-<step>` inside it.
 */
export async function resolveCheckpointDir(fs: FileSystem, path: string): Promise<string> {
  if (await fs.exists(joinPath(path, TRAINER_FILE))) return path;
  if (!(await fs.exists(path)) && (await fs.exists(joinPath(`${path}.old`, TRAINER_FILE)))) return path;
  if (!(await fs.exists(path))) throw new CheckpointError(`checkpoint ${path} not found (no such directory)`);
  const latest = await latestCheckpoint(fs, path);
  if (latest === undefined) throw new CheckpointError(`no checkpoint in ${path} (no ${TRAINER_FILE} and no ckpt-<step> directories)`);
  return latest;
}

/** Options of a `CheckpointManager`. */
export interface CheckpointManagerOptions {
  /** How many `ckpt-<step>` directories to keep (default 3; Infinity keeps all). */
  keepLast?: number;
  /** Keep a copy of the best checkpoint in `best/` (default true). */
  keepBest?: boolean;
  /** Whether a lower ('min', default: a loss) or higher ('max') metric is better. */
  mode?: 'min' | 'max';
}

/** What one `save` did. */
export interface SaveResult {
  path: string;
  step: number;
  /** Whether this save became `best/`. */
  isBest: boolean;
  bestMetric: number | null;
  /** Checkpoint directories deleted by the retention rule. */
  removed: string[];
}

/** Saves checkpoints into a run directory, keeps the last N and the best, deletes the rest. */
export class CheckpointManager {
  readonly keepLast: number;
  readonly keepBest: boolean;
  readonly mode: 'min' | 'max';
  private best: number | null | undefined; // undefined: not read from disk yet
  private swept = false;

  constructor(readonly fs: FileSystem, readonly root: string, options: CheckpointManagerOptions = {}) {
    this.keepLast = options.keepLast ?? 3;
    this.keepBest = options.keepBest ?? true;
    this.mode = options.mode ?? 'min';
    if (!(this.keepLast >= 1) || (this.keepLast !== Infinity && !Number.isInteger(this.keepLast))) {
      throw new CheckpointError(`CheckpointManager: keepLast must be a positive integer or Infinity, got ${options.keepLast}`);
    }
  }

  /** Directory of the best checkpoint. */
  get bestPath(): string {
    return joinPath(this.root, BEST_DIR);
  }

  /** The best metric so far (from `best/trainer.json` on first use), or null if none. */
  async bestMetric(): Promise<number | null> {
    if (this.best === undefined) {
      this.best = null;
      await recoverCheckpointDir(this.fs, this.bestPath);
      const file = joinPath(this.bestPath, TRAINER_FILE);
      if (await this.fs.exists(file)) {
        try {
          const m = (JSON.parse(await this.fs.readText(file)) as { metric?: unknown }).metric;
          if (typeof m === 'number' && Number.isFinite(m)) this.best = m;
        } catch (err) {
          throw new CheckpointError(`checkpoint ${file} is not valid JSON (${(err as Error).message}); delete ${this.bestPath} to start a new best`);
        }
      }
    }
    return this.best;
  }

  private isBetter(metric: number, than: number | null): boolean {
    if (than === null) return true;
    return this.mode === 'min' ? metric < than : metric > than;
  }

  /** Finish swaps interrupted by a crash (`*.old`) and delete half-written `*.tmp` directories. */
  private async sweep(): Promise<void> {
    if (this.swept) return;
    this.swept = true;
    if (!(await this.fs.exists(this.root))) return;
    for (const name of await this.fs.list(this.root)) {
      const m = /^(.+)\.(tmp|old)$/.exec(name);
      if (m && (CKPT_NAME.test(m[1]) || m[1] === BEST_DIR)) await recoverCheckpointDir(this.fs, joinPath(this.root, m[1]));
    }
  }

  /**
   * Save `data` as `ckpt-<step>`; if its `trainer.metric` beats the best so far, also as `best/`;
   * then delete the oldest `ckpt-*` beyond `keepLast` (never the one just written).
   * `trainer.bestMetric` is filled in with the best metric including this save.
   */
  async save(data: CheckpointData): Promise<SaveResult> {
    await this.sweep();
    const metric = data.trainer.metric;
    const previousBest = this.keepBest ? await this.bestMetric() : null;
    const isBest = this.keepBest && typeof metric === 'number' && Number.isFinite(metric) && this.isBetter(metric, previousBest);
    const bestMetric = isBest ? (metric as number) : previousBest;
    const files = await encodeCheckpoint({ ...data, trainer: { ...data.trainer, bestMetric } });
    const step = data.trainer.step;
    const path = joinPath(this.root, `ckpt-${step}`);
    await writeCheckpointFiles(this.fs, path, files);
    if (isBest) {
      await writeCheckpointFiles(this.fs, this.bestPath, files);
      this.best = metric as number;
    }
    const removed: string[] = [];
    const all = await listCheckpoints(this.fs, this.root);
    const others = all.filter((c) => c.path !== path);
    const excess = others.length - (this.keepLast - 1);
    for (let i = 0; i < excess; i++) {
      await this.fs.remove(others[i].path, { recursive: true });
      removed.push(others[i].path);
    }
    return { path, step, isBest, bestMetric, removed };
  }

  /** The kept `ckpt-<step>` checkpoints, by ascending step. */
  list(): Promise<CheckpointEntry[]> {
    return listCheckpoints(this.fs, this.root);
  }

  /** The newest `ckpt-<step>` directory, or undefined. */
  latest(): Promise<string | undefined> {
    return latestCheckpoint(this.fs, this.root);
  }
}
