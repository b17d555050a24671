/**
 * The checkpoint directory format and its crash-safe writer.
 *
 *   <dir>/model.safetensors      weights (names chosen by the caller, HF LLaMA/BitNet style)
 *   <dir>/optimizer.safetensors  optimizer state (`<param>.exp_avg`, `<param>.exp_avg_sq`, ...)
 *   <dir>/trainer.json           format + version, step, config, RNG state, scheduler, metrics,
 *                                tokenizer, and the byte size and XXH64 checksum of each tensor file
 *
 * Nothing non-finite is written or read: `encodeCheckpoint` refuses F32 tensors holding NaN or
 * Inf (weights or optimizer state of a diverged run), and `loadCheckpoint` verifies every file's
 * size and checksum and refuses non-finite tensors too, naming the file and the tensor.
 *
 * `saveCheckpoint` builds the new checkpoint in `<dir>.tmp` (each file written atomically), then
 * swaps it in: `<dir>` -> `<dir>.old`, `<dir>.tmp` -> `<dir>`, delete `<dir>.old`. A crash at any
 * point leaves either the old or the new checkpoint complete: if it strikes between the two
 * renames, `<dir>.old` is the intact previous one, which `loadCheckpoint` reads and the next save
 * moves back (`recoverCheckpointDir`).
 */

import type { FileSystem } from '../runtime/fs.js';
import { FileSystemError, joinPath } from '../runtime/fs.js';
import type { RngState } from '../util/rng.js';
import type { TokenizerJSON } from '../data/tokenizer.js';
import { CHECKSUM_KIND, loadChecksum } from './checksum.js';
import { type SafetensorsTensor, decodeSafetensors, encodeSafetensors } from './safetensors.js';

export const CHECKPOINT_FORMAT = 'bitnet-training-checkpoint';
/** The trainer.json layout version this build writes and the newest it reads. */
export const CHECKPOINT_FORMAT_VERSION = 1;
export const MODEL_FILE = 'model.safetensors';
export const OPTIMIZER_FILE = 'optimizer.safetensors';
export const TRAINER_FILE = 'trainer.json';

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };
export type TensorMapInput = Map<string, SafetensorsTensor> | Record<string, SafetensorsTensor>;

/** Everything besides tensors that a resumed run needs, stored in trainer.json. */
export interface TrainerState {
  /** Optimizer steps completed. */
  step: number;
  /** Model and training configuration, as the trainer defines it. */
  config: JsonObject;
  /** The data/dropout Rng's state (`rng.state()`). */
  rng: RngState;
  /** LR scheduler state, if it has any. */
  scheduler?: JsonObject;
  /** This checkpoint's metric (e.g. val loss); drives `best/` in `CheckpointManager`. */
  metric?: number | null;
  /** Best metric seen so far in the run. */
  bestMetric?: number | null;
  tokenizer?: TokenizerJSON;
  /** Anything else (early-stopping counters, wall time, ...). */
  extra?: JsonObject;
}

/** What `saveCheckpoint` writes. */
export interface CheckpointData {
  model: TensorMapInput;
  /** Optional: a weights-only export has none. */
  optimizer?: TensorMapInput;
  trainer: TrainerState;
  /** String metadata for model.safetensors; `format: "pt"` is always set (transformers requires it). */
  metadata?: Record<string, string>;
}

/** What `loadCheckpoint` returns. */
export interface LoadedCheckpoint {
  /** The directory actually read (`<dir>.old` if a save was interrupted mid-swap). */
  dir: string;
  formatVersion: number;
  model: Map<string, SafetensorsTensor>;
  modelMetadata?: Record<string, string>;
  optimizer?: Map<string, SafetensorsTensor>;
  trainer: TrainerState;
}

/** A checkpoint that cannot be saved or loaded; the message names the directory and the problem. */
export class CheckpointError extends Error {
  override readonly name = 'CheckpointError';
}

/** The files of a checkpoint, encoded: name -> bytes (trainer.json last). */
export type EncodedCheckpoint = [name: string, bytes: Uint8Array][];

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** Where the first non-finite value of F32 tensors is: `{ name, index, value, count }`, or undefined if all are finite. */
export function findNonFinite(tensors: TensorMapInput): { name: string; index: number; value: number; count: number } | undefined {
  const entries = tensors instanceof Map ? [...tensors] : Object.entries(tensors);
  for (const [name, t] of entries) {
    const d = t.data;
    if (!(d instanceof Float32Array || d instanceof Float64Array)) continue;
    // fast pass: x·0 is ±0 for every finite x and NaN for NaN/±Inf (no branch per value)
    let s0 = 0;
    let s1 = 0;
    let s2 = 0;
    let s3 = 0;
    const n4 = d.length & ~3;
    for (let i = 0; i < n4; i += 4) {
      s0 += d[i]! * 0;
      s1 += d[i + 1]! * 0;
      s2 += d[i + 2]! * 0;
      s3 += d[i + 3]! * 0;
    }
    for (let i = n4; i < d.length; i++) s0 += d[i]! * 0;
    if (s0 + s1 + s2 + s3 === 0) continue;
    let first = -1;
    let count = 0;
    for (let i = 0; i < d.length; i++) {
      const x = d[i]!;
      if (x - x !== 0) { // NaN and ±Inf (Inf - Inf is NaN); one compare per value
        if (first < 0) first = i;
        count++;
      }
    }
    if (first >= 0) return { name, index: first, value: d[first]!, count };
  }
  return undefined;
}

/**
 * Encode the three files in memory (no I/O), so bad input fails before anything is written:
 * a non-finite F32 value in the model or optimizer state is a `CheckpointError` naming the tensor.
 * trainer.json records each tensor file's size and XXH64.
 */
export async function encodeCheckpoint(data: CheckpointData): Promise<EncodedCheckpoint> {
  const t = data.trainer;
  if (!(Number.isSafeInteger(t.step) && t.step >= 0)) throw new CheckpointError(`saveCheckpoint: step must be a non-negative integer, got ${t.step}`);
  if (!Array.isArray(t.rng) || t.rng.length !== 4 || !t.rng.every((w) => Number.isInteger(w) && w >= 0 && w < 4294967296)) {
    throw new CheckpointError(`saveCheckpoint: rng must be the 4 u32 words of rng.state(), got ${JSON.stringify(t.rng)}`);
  }
  for (const [file, tensors] of [[MODEL_FILE, data.model], [OPTIMIZER_FILE, data.optimizer]] as const) {
    const bad = tensors && findNonFinite(tensors);
    if (bad) {
      throw new CheckpointError(
        `saveCheckpoint: ${file} tensor ${bad.name} holds ${bad.count} non-finite value${bad.count === 1 ? '' : 's'} (${bad.value} at index ${bad.index}); ` +
          'a checkpoint is never written with NaN or Inf (the run diverged: resume from an earlier checkpoint with a lower learning rate)',
      );
    }
  }
  const files: EncodedCheckpoint = [];
  files.push([MODEL_FILE, encodeSafetensors(data.model, { format: 'pt', ...data.metadata })]);
  if (data.optimizer !== undefined) files.push([OPTIMIZER_FILE, encodeSafetensors(data.optimizer, { format: 'pt' })]);
  const checksum = await loadChecksum();
  const sizes: Record<string, { bytes: number; [CHECKSUM_KIND]: string }> = {};
  for (const [name, bytes] of files) sizes[name] = { bytes: bytes.length, [CHECKSUM_KIND]: checksum(bytes) };
  const json = {
    format: CHECKPOINT_FORMAT,
    formatVersion: CHECKPOINT_FORMAT_VERSION,
    files: sizes,
    ...t,
  };
  files.push([TRAINER_FILE, new TextEncoder().encode(JSON.stringify(json, null, 2) + '\n')]);
  return files;
}

/**
 * Finish or undo a swap that a crash interrupted: `<dir>.old` without `<dir>` is moved back,
 * `<dir>.old` beside a complete `<dir>` is deleted, a leftover `<dir>.tmp` is deleted.
 */
export async function recoverCheckpointDir(fs: FileSystem, dir: string): Promise<void> {
  const old = `${dir}.old`;
  if (await fs.exists(old)) {
    if (await fs.exists(dir)) await fs.remove(old, { recursive: true });
    else await fs.rename(old, dir);
  }
  await fs.remove(`${dir}.tmp`, { recursive: true, force: true });
}

/** Write already-encoded checkpoint files to `dir` with the crash-safe swap described above. */
export async function writeCheckpointFiles(fs: FileSystem, dir: string, files: EncodedCheckpoint): Promise<void> {
  await recoverCheckpointDir(fs, dir);
  const tmp = `${dir}.tmp`;
  await fs.mkdirp(tmp);
  for (const [name, bytes] of files) await fs.writeFileAtomic(joinPath(tmp, name), bytes);
  if (await fs.exists(dir)) {
    const old = `${dir}.old`;
    await fs.rename(dir, old);
    await fs.rename(tmp, dir);
    await fs.remove(old, { recursive: true });
  } else {
    await fs.rename(tmp, dir);
  }
}

/**
 * Save a checkpoint to `dir` (created with its parents), replacing an older one there only once
 * the new one is complete. Never leaves a torn checkpoint, whatever point a crash strikes.
 */
export async function saveCheckpoint(fs: FileSystem, dir: string, data: CheckpointData): Promise<void> {
  await writeCheckpointFiles(fs, dir, await encodeCheckpoint(data));
}

async function readOrExplain(fs: FileSystem, dir: string, name: string): Promise<Uint8Array> {
  try {
    return await fs.readFile(joinPath(dir, name));
  } catch (err) {
    if (err instanceof FileSystemError && err.code === 'ENOENT') {
      throw new CheckpointError(`checkpoint ${dir} is incomplete: ${name} is missing (copy the whole directory, or use another checkpoint)`);
    }
    throw err;
  }
}

/** Parse and check trainer.json. */
function parseTrainerJson(dir: string, bytes: Uint8Array): { formatVersion: number; files: Record<string, { bytes: number; xxh64?: string }>; trainer: TrainerState } {
  const where = `checkpoint ${joinPath(dir, TRAINER_FILE)}`;
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (err) {
    throw new CheckpointError(`${where} is not valid JSON (${(err as Error).message})`);
  }
  if (!isObject(json)) throw new CheckpointError(`${where} must hold a JSON object`);
  if (json.format !== CHECKPOINT_FORMAT) {
    throw new CheckpointError(`${where} is not a bitnet-training checkpoint ("format" is ${JSON.stringify(json.format)}, expected "${CHECKPOINT_FORMAT}")`);
  }
  const v = json.formatVersion;
  if (!Number.isInteger(v) || (v as number) < 1) throw new CheckpointError(`${where}: formatVersion ${JSON.stringify(v)} is not a valid version`);
  if ((v as number) > CHECKPOINT_FORMAT_VERSION) {
    throw new CheckpointError(`${where} was written by a newer bitnet-training (format version ${v}); this build reads up to version ${CHECKPOINT_FORMAT_VERSION} — upgrade the package`);
  }
  const step = json.step;
  if (!(Number.isSafeInteger(step) && (step as number) >= 0)) throw new CheckpointError(`${where}: "step" must be a non-negative integer, got ${JSON.stringify(step)}`);
  const rng = json.rng;
  if (!Array.isArray(rng) || rng.length !== 4 || !rng.every((w) => Number.isInteger(w) && w >= 0 && w < 4294967296) || rng.every((w) => w === 0)) {
    throw new CheckpointError(`${where}: "rng" must be 4 u32 words, not all zero, got ${JSON.stringify(rng)}`);
  }
  if (!isObject(json.config)) throw new CheckpointError(`${where}: "config" must be an object`);
  const validEntry = (f: unknown) => isObject(f) && Number.isSafeInteger(f.bytes) && (f[CHECKSUM_KIND] === undefined || (typeof f[CHECKSUM_KIND] === 'string' && /^[0-9a-f]{16}$/.test(f[CHECKSUM_KIND])));
  if (!isObject(json.files) || !Object.values(json.files).every(validEntry)) {
    throw new CheckpointError(`${where}: "files" must map each tensor file to { "bytes": N, "${CHECKSUM_KIND}": "16 hex digits" }`);
  }
  const files: Record<string, { bytes: number; xxh64?: string }> = {};
  for (const [name, f] of Object.entries(json.files)) files[name] = f as { bytes: number; xxh64?: string }; // a checkpoint from before checksums has none
  if (!(MODEL_FILE in files)) throw new CheckpointError(`${where}: "files" does not list ${MODEL_FILE}`);
  const { format: _f, formatVersion: _v, files: _files, ...rest } = json;
  return { formatVersion: v as number, files, trainer: rest as unknown as TrainerState };
}

/** Options of `loadCheckpoint`. */
export interface LoadCheckpointOptions {
  /** Read optimizer.safetensors (default true); `sample` needs only the weights. */
  optimizer?: boolean;
}

/**
 * Load and validate the checkpoint in `dir`: missing files, format and version, JSON errors,
 * file sizes and XXH64 checksums against trainer.json, every safetensors check, and finite
 * F32 values. Errors name the file and the fix.
 */
export async function loadCheckpoint(fs: FileSystem, dir: string, options: LoadCheckpointOptions = {}): Promise<LoadedCheckpoint> {
  let readDir = dir;
  if (!(await fs.exists(dir))) {
    if (await fs.exists(joinPath(`${dir}.old`, TRAINER_FILE))) readDir = `${dir}.old`; // interrupted swap
    else throw new CheckpointError(`checkpoint ${dir} not found (no such directory)`);
  }
  if (!(await fs.exists(joinPath(readDir, TRAINER_FILE)))) {
    const runs = (await fs.stat(readDir)).isDirectory ? (await fs.list(readDir)).filter((n) => /^ckpt-\d+$/.test(n)) : [];
    const hint = runs.length > 0
      ? `; it looks like a run directory holding ${runs.join(', ')}: pass one of those`
      : ' (incomplete, or not a checkpoint directory)';
    throw new CheckpointError(`checkpoint ${dir} has no ${TRAINER_FILE}${hint}`);
  }
  const meta = parseTrainerJson(readDir, await fs.readFile(joinPath(readDir, TRAINER_FILE)));
  const read = async (name: string) => {
    const bytes = await readOrExplain(fs, readDir, name);
    const where = `checkpoint ${joinPath(readDir, name)}`;
    const recorded = meta.files[name]!;
    if (bytes.length !== recorded.bytes) {
      throw new CheckpointError(`${where} is ${bytes.length} bytes but ${TRAINER_FILE} recorded ${recorded.bytes} (file truncated or replaced)`);
    }
    const decoded = decodeSafetensors(bytes, { source: where }); // structural errors first: they say more
    if (recorded.xxh64 !== undefined) {
      const actual = (await loadChecksum())(bytes);
      if (actual !== recorded.xxh64) {
        throw new CheckpointError(`${where} is corrupt: its XXH64 checksum is ${actual} but ${TRAINER_FILE} recorded ${recorded.xxh64} (the file changed after it was written; use another checkpoint)`);
      }
    }
    const bad = findNonFinite(decoded.tensors);
    if (bad) {
      throw new CheckpointError(
        `${where}: tensor ${bad.name} holds ${bad.count} non-finite value${bad.count === 1 ? '' : 's'} (${bad.value} at index ${bad.index}); ` +
          'the run that wrote it had diverged: use an earlier checkpoint',
      );
    }
    return decoded;
  };
  const model = await read(MODEL_FILE);
  const out: LoadedCheckpoint = { dir: readDir, formatVersion: meta.formatVersion, model: model.tensors, trainer: meta.trainer };
  if (model.metadata) out.modelMetadata = model.metadata;
  if (OPTIMIZER_FILE in meta.files && options.optimizer !== false) out.optimizer = (await read(OPTIMIZER_FILE)).tensors;
  return out;
}
