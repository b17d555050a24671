/**
 * Where a Hugging Face model directory's files come from: a host `FileSystem` (node:fs in
 * Node/Deno/Bun, OPFS in a browser, memory) or the `File` objects a browser page got from an
 * `<input type="file" webkitdirectory>` or a drop. The loader reads through `HfFiles` only, a
 * range at a time, so a multi-GB checkpoint is never held whole.
 */
import type { FileSystem } from '../../runtime/fs-types.js';

/** A file opened for reading byte ranges. */
export interface RangeReader {
  /** Size in bytes. */
  readonly size: number;
  /** Read `buffer.length` bytes (fewer at the end) at byte `position`; resolves to the count read. */
  read(buffer: Uint8Array, position: number): Promise<number>;
  close(): Promise<void>;
}

/** The files of one model directory, by name relative to it (`config.json`, `model-00001-of-00002.safetensors`). */
export interface HfFiles {
  /** The directory, for messages (a path, or the picked folder's name). */
  readonly dir: string;
  exists(name: string): Promise<boolean>;
  readText(name: string): Promise<string>;
  open(name: string): Promise<RangeReader>;
  /** Names in the directory (sorted), for messages. */
  list(): Promise<string[]>;
}

/** What `hfFilesFromFileSystem` uses of a host file system (openRead where the host has it). */
type RangeCapable = FileSystem & { openRead?(path: string): Promise<{ size: number; read(b: Uint8Array, p: number | null): Promise<number>; close(): Promise<void> }> };

/**
 * A model directory on a host `FileSystem`. Reads ranges through `openRead` where the file
 * system has it (node:fs, OPFS, memory); otherwise each file is read whole once.
 *
 * @example
 * const files = hfFilesFromFileSystem(await getDefaultFileSystem(), 'models/SmolLM2-135M');
 */
export function hfFilesFromFileSystem(fs: FileSystem, dir: string): HfFiles {
  const path = (name: string) => (dir === '' ? name : `${dir.replace(/\/+$/, '')}/${name}`);
  const rfs = fs as RangeCapable;
  return {
    dir,
    exists: (name) => fs.exists(path(name)),
    readText: (name) => fs.readText(path(name)),
    list: () => fs.list(dir === '' ? '.' : dir),
    async open(name) {
      if (typeof rfs.openRead === 'function') {
        const r = await rfs.openRead(path(name));
        return { size: r.size, read: (b, p) => r.read(b, p), close: () => r.close() };
      }
      const bytes = await fs.readFile(path(name));
      return bytesReader(bytes);
    },
  };
}

/** A `RangeReader` over bytes in memory. */
export function bytesReader(bytes: Uint8Array): RangeReader {
  return {
    size: bytes.length,
    async read(buffer, position) {
      const n = Math.max(0, Math.min(buffer.length, bytes.length - position));
      buffer.set(bytes.subarray(position, position + n));
      return n;
    },
    async close() {},
  };
}

/** The part of the DOM `File` the loader uses. */
export interface FileLike {
  readonly name: string;
  readonly size: number;
  /** Set by `<input webkitdirectory>`: `folder/sub/name`. */
  readonly webkitRelativePath?: string;
  slice(start: number, end: number): { arrayBuffer(): Promise<ArrayBuffer> };
}

/**
 * A model directory from browser `File` objects (a picked or dropped folder): files are matched
 * by name (the last part of `webkitRelativePath`), and read a slice at a time.
 *
 * @example
 * input.onchange = async () => { const { model } = await loadPretrained(hfFilesFromFileList(input.files), { backend }); };
 */
export function hfFilesFromFileList(files: Iterable<FileLike> | ArrayLike<FileLike>, dir?: string): HfFiles {
  const byName = new Map<string, FileLike>();
  const list = Array.from(files as ArrayLike<FileLike>);
  for (const f of list) byName.set(f.name, f);
  const label = dir ?? (list[0]?.webkitRelativePath?.split('/')[0] || '(selected files)');
  const get = (name: string): FileLike => {
    const f = byName.get(name);
    if (!f) throw new Error(`${label}: no file ${name} among the selected files (${[...byName.keys()].sort().join(', ')})`);
    return f;
  };
  return {
    dir: label,
    exists: async (name) => byName.has(name),
    readText: async (name) => new TextDecoder().decode(await get(name).slice(0, get(name).size).arrayBuffer()),
    list: async () => [...byName.keys()].sort(),
    async open(name) {
      const f = get(name);
      return {
        size: f.size,
        async read(buffer, position) {
          const end = Math.min(f.size, position + buffer.length);
          if (end <= position) return 0;
          const chunk = new Uint8Array(await f.slice(position, end).arrayBuffer());
          buffer.set(chunk);
          return chunk.length;
        },
        async close() {},
      };
    },
  };
}
