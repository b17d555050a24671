/**
 * The host file adapter's contract: a small async `FileSystem` interface, its error class and
 * '/'-separated path helpers. Implementations: `fs-node.ts` (Node, Deno, Bun via node:fs),
 * `fs-memory.ts` (tests, browsers without storage); an OPFS one plugs into the same interface.
 */

/** Bytes or UTF-8 text to write. */
export type FileData = Uint8Array | string;

/** What `stat` reports. */
export interface FileStat {
  isDirectory: boolean;
  isFile: boolean;
  /** Size in bytes (0 for directories in the memory implementation). */
  size: number;
  /** What it is, where the host says more than file/directory (a FIFO or device is neither). */
  type?: 'file' | 'directory' | 'fifo' | 'character-device' | 'block-device' | 'socket' | 'other';
  /** Last modification, in ms since the epoch, where the host knows it. */
  mtimeMs?: number;
}

/**
 * A file opened for reading in pieces (`FileSystem.openRead`): corpora and token files larger
 * than memory, or than one JS string, are read a range at a time.
 */
export interface FileReader {
  /** Size in bytes when opened (0 for a device or FIFO, which are read sequentially). */
  readonly size: number;
  /**
   * Read up to `buffer.length` bytes at byte `position` (null: from the current position, for a
   * FIFO or device) into `buffer`; resolves to the number read, 0 at the end of the file.
   */
  read(buffer: Uint8Array, position: number | null): Promise<number>;
  /** The same, synchronously, where the host can (node:fs, memory): random windows of a token file. */
  readSync?(buffer: Uint8Array, position: number): number;
  close(): Promise<void>;
}

/**
 * A host file system, reduced to what training needs: read the corpus, write checkpoints
 * atomically, append logs, rotate checkpoint directories. Paths use '/' separators.
 * Every failure throws a {@link FileSystemError} naming the operation, the path and a code.
 */
export interface FileSystem {
  /** Which implementation this is ('node' also serves Deno and Bun). */
  readonly kind: 'node' | 'memory' | 'opfs';
  /** The whole file as bytes. ENOENT if missing, EISDIR if a directory. */
  readFile(path: string): Promise<Uint8Array>;
  /** Open a file to read it in pieces (see {@link FileReader}); ENOENT if missing, EISDIR if a directory. */
  openRead?(path: string): Promise<FileReader>;
  /** The whole file decoded as UTF-8 (invalid sequences become U+FFFD; use readFile to validate). */
  readText(path: string): Promise<string>;
  /** Create or truncate `path` and write `data` (not atomic: a crash may leave part of it). */
  writeFile(path: string, data: FileData): Promise<void>;
  /**
   * Write `data` to `path.tmp-<random>`, flush it to disk where the host can, then rename it
   * over `path`: readers see the old file or the new one, never a torn one.
   */
  writeFileAtomic(path: string, data: FileData): Promise<void>;
  /** Append to `path`, creating it if missing (for JSON-lines logs). */
  appendFile(path: string, data: FileData): Promise<void>;
  /** Create a directory and any missing parents; no error if it exists. */
  mkdirp(path: string): Promise<void>;
  /** Whether anything (file or directory) exists at `path`. */
  exists(path: string): Promise<boolean>;
  /** File or directory facts; ENOENT if missing. */
  stat(path: string): Promise<FileStat>;
  /** Names (not paths) of a directory's entries, sorted by UTF-16 code units. */
  list(dir: string): Promise<string[]>;
  /**
   * Remove a file or an empty directory; `recursive` removes a whole tree, `force` ignores a
   * missing path.
   */
  remove(path: string, options?: { recursive?: boolean; force?: boolean }): Promise<void>;
  /**
   * Rename a file or directory. A file replaces an existing file atomically; a directory may
   * replace only an empty directory (ENOTEMPTY otherwise), as POSIX rename(2) does.
   */
  rename(from: string, to: string): Promise<void>;
}

/** A file operation that failed: `op` on `path` with a POSIX-style `code` (ENOENT, EISDIR, ...). */
export class FileSystemError extends Error {
  override readonly name = 'FileSystemError';
  constructor(
    readonly op: string,
    readonly path: string,
    readonly code: string,
    detail?: string,
  ) {
    super(`${op} ${path}: ${code}${detail ? ` (${detail})` : ''}`);
  }
}

/** Human wording of the common codes, for messages. */
export const FS_CODE_TEXT: Record<string, string> = {
  ENOENT: 'no such file or directory',
  EEXIST: 'already exists',
  EISDIR: 'is a directory',
  ENOTDIR: 'not a directory',
  ENOTEMPTY: 'directory not empty',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  ENOSPC: 'no space left on device',
};

/** Join path parts with '/', collapsing duplicate separators (no '..' resolution). */
export function joinPath(...parts: string[]): string {
  const kept = parts.filter((p) => p.length > 0);
  if (kept.length === 0) return '.';
  const joined = kept.join('/').replace(/\/{2,}/g, '/');
  return joined.length > 1 ? joined.replace(/\/$/, '') : joined;
}

/** The directory part of a path ('.' for a bare name, '/' for a root entry). */
export function dirname(path: string): string {
  const p = path.length > 1 ? path.replace(/\/+$/, '') : path;
  const i = p.lastIndexOf('/');
  if (i < 0) return '.';
  if (i === 0) return '/';
  return p.slice(0, i);
}

/** The last component of a path. */
export function basename(path: string): string {
  const p = path.length > 1 ? path.replace(/\/+$/, '') : path;
  return p.slice(p.lastIndexOf('/') + 1);
}

/** Bytes of `data` (strings are encoded as UTF-8). */
export function toBytes(data: FileData): Uint8Array {
  return typeof data === 'string' ? new TextEncoder().encode(data) : data;
}

/** A random suffix for temporary names (not security-relevant; only avoids collisions). */
export function randomSuffix(): string {
  const c = (globalThis as { crypto?: { getRandomValues?: (a: Uint32Array) => Uint32Array } }).crypto;
  const words = new Uint32Array(2);
  if (c?.getRandomValues) c.getRandomValues(words);
  else for (let i = 0; i < 2; i++) words[i] = Math.floor(Math.random() * 4294967296);
  return Array.from(words, (w) => w.toString(36)).join('');
}
