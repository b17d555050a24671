/**
 * The `FileSystem` over the browser's Origin Private File System (OPFS:
 * `navigator.storage.getDirectory()`), so checkpoints saved in a page survive a reload and use
 * the same format as on disk in Node. Works in pages and in Web Workers (Chromium, Firefox,
 * Safari 17+ for `createWritable`).
 *
 * Paths are '/'-separated from the OPFS root ('.' and '..' resolved; a relative path starts at
 * the root). Semantics follow the node implementation:
 * - `writeFileAtomic`: OPFS writable streams already write to a swap file and replace the file
 *   only on `close()`, so readers see the old or the new contents, never a torn file.
 * - `rename`: a file uses `FileSystemHandle.move()` where the browser has it, else copy and
 *   delete; a directory is moved the same way (copied recursively where `move` is missing), and
 *   may replace only an empty directory (ENOTEMPTY otherwise), as POSIX rename(2).
 */

import {
  type FileData,
  type FileReader,
  type FileStat,
  type FileSystem,
  FileSystemError,
  FS_CODE_TEXT,
  toBytes,
} from './fs-types.js';

/** Parts of a path from the OPFS root, with '.' and '..' resolved. */
function parts(path: string): string[] {
  const out: string[] = [];
  for (const part of path.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') out.pop();
    else out.push(part);
  }
  return out;
}

function fail(op: string, path: string, code: string): never {
  throw new FileSystemError(op, path, code, FS_CODE_TEXT[code]);
}

/** A DOMException from OPFS as a FileSystemError with a POSIX-style code. */
function wrap(op: string, path: string, err: unknown): FileSystemError {
  if (err instanceof FileSystemError) return err;
  const name = (err as { name?: string })?.name;
  const code = name === 'NotFoundError' ? 'ENOENT'
    : name === 'TypeMismatchError' ? 'ENOTDIR'
    : name === 'InvalidModificationError' ? 'ENOTEMPTY'
    : name === 'QuotaExceededError' ? 'ENOSPC'
    : name === 'NoModificationAllowedError' || name === 'NotAllowedError' ? 'EACCES'
    : 'EIO';
  const message = (err as { message?: string })?.message;
  return new FileSystemError(op, path, code, FS_CODE_TEXT[code] ?? message);
}

type Handle = FileSystemFileHandle | FileSystemDirectoryHandle;
type Movable = { move?: (parent: FileSystemDirectoryHandle, name: string) => Promise<void> };
type Entries = { entries(): AsyncIterable<[string, Handle]> };

/** A `FileSystem` in the Origin Private File System. Create it with {@link createOpfsFileSystem}. */
export class OpfsFileSystem implements FileSystem {
  readonly kind = 'opfs' as const;

  /** Prefer `createOpfsFileSystem()`, which finds the root for you. */
  constructor(private readonly root: FileSystemDirectoryHandle) {}

  async readFile(path: string): Promise<Uint8Array> {
    try {
      const file = await (await this.fileHandle('readFile', path)).getFile();
      return new Uint8Array(await file.arrayBuffer());
    } catch (err) {
      throw wrap('readFile', path, err);
    }
  }

  async readText(path: string): Promise<string> {
    return new TextDecoder().decode(await this.readFile(path));
  }

  async openRead(path: string): Promise<FileReader> {
    let file: File;
    try {
      file = await (await this.fileHandle('openRead', path)).getFile();
    } catch (err) {
      throw wrap('openRead', path, err);
    }
    let cursor = 0;
    // a File is a snapshot: ranges are read with slice() (no synchronous read on the main thread)
    return {
      size: file.size,
      read: async (buffer, position) => {
        const at = position ?? cursor;
        const bytes = new Uint8Array(await file.slice(at, at + buffer.length).arrayBuffer());
        buffer.set(bytes);
        if (position === null) cursor += bytes.length;
        return bytes.length;
      },
      close: async () => undefined,
    };
  }

  async writeFile(path: string, data: FileData): Promise<void> {
    await this.write('writeFile', path, data, false);
  }

  async writeFileAtomic(path: string, data: FileData): Promise<void> {
    // createWritable writes a swap file that replaces the file only when closed (see above)
    await this.write('writeFileAtomic', path, data, false);
  }

  async appendFile(path: string, data: FileData): Promise<void> {
    await this.write('appendFile', path, data, true);
  }

  async mkdirp(path: string): Promise<void> {
    let dir = this.root;
    try {
      for (const name of parts(path)) {
        if ((await this.child(dir, name))?.kind === 'file') fail('mkdirp', path, 'ENOTDIR');
        dir = await dir.getDirectoryHandle(name, { create: true });
      }
    } catch (err) {
      throw wrap('mkdirp', path, err);
    }
  }

  async exists(path: string): Promise<boolean> {
    try {
      return (await this.lookup(path)) !== undefined;
    } catch (err) {
      const e = wrap('exists', path, err);
      if (e.code === 'ENOENT' || e.code === 'ENOTDIR') return false;
      throw e;
    }
  }

  async stat(path: string): Promise<FileStat> {
    let handle: Handle | undefined;
    try {
      handle = await this.lookup(path);
    } catch (err) {
      throw wrap('stat', path, err);
    }
    if (!handle) fail('stat', path, 'ENOENT');
    if (handle.kind === 'directory') return { isDirectory: true, isFile: false, size: 0 };
    return { isDirectory: false, isFile: true, size: (await (handle as FileSystemFileHandle).getFile()).size };
  }

  async list(dir: string): Promise<string[]> {
    const handle = await this.existing('list', dir);
    if (handle.kind !== 'directory') fail('list', dir, 'ENOTDIR');
    const names: string[] = [];
    for await (const [name] of (handle as unknown as Entries).entries()) names.push(name);
    return names.sort();
  }

  async remove(path: string, options: { recursive?: boolean; force?: boolean } = {}): Promise<void> {
    const p = parts(path);
    if (p.length === 0) fail('remove', path, 'EPERM');
    const handle = await this.lookup(path).catch(() => undefined);
    if (!handle) {
      if (options.force) return;
      fail('remove', path, 'ENOENT');
    }
    try {
      const parent = await this.dirAt(p.slice(0, -1), 'remove', path);
      await parent.removeEntry(p[p.length - 1]!, { recursive: handle.kind === 'directory' && !!options.recursive });
    } catch (err) {
      throw wrap('remove', path, err);
    }
  }

  async rename(from: string, to: string): Promise<void> {
    const src = parts(from);
    const dst = parts(to);
    const source = await this.existing('rename', from);
    if (src.length === 0 || dst.length === 0) fail('rename', to, 'EPERM');
    const parent = await this.dirAt(dst.slice(0, -1), 'rename', to);
    if (src.join('/') === dst.join('/')) return;
    if (dst.join('/').startsWith(src.join('/') + '/')) fail('rename', to, 'EINVAL');
    const target = await this.child(parent, dst[dst.length - 1]!);
    if (target) {
      if (source.kind === 'file' && target.kind === 'directory') fail('rename', to, 'EISDIR');
      if (source.kind === 'directory' && target.kind === 'file') fail('rename', to, 'ENOTDIR');
      if (target.kind === 'directory' && (await this.list(to)).length > 0) fail('rename', to, 'ENOTEMPTY');
    }
    const name = dst[dst.length - 1]!;
    try {
      const move = (source as Movable).move;
      if (typeof move === 'function' && (!target || source.kind === 'file')) {
        try {
          await move.call(source, parent, name); // replaces an existing file
          return;
        } catch (err) {
          // a browser whose move() does not take this kind of handle: copy instead
          const n = (err as { name?: string }).name;
          if (n !== 'NotSupportedError' && n !== 'TypeError') throw err;
        }
      }
      if (target) await parent.removeEntry(name, { recursive: true });
      await this.copyInto(source, parent, name);
      const srcParent = await this.dirAt(src.slice(0, -1), 'rename', from);
      await srcParent.removeEntry(src[src.length - 1]!, { recursive: true });
    } catch (err) {
      throw wrap('rename', to, err);
    }
  }

  // ---- internals ----------------------------------------------------------------------------

  private async write(op: string, path: string, data: FileData, append: boolean): Promise<void> {
    const p = parts(path);
    if (p.length === 0) fail(op, path, 'EISDIR');
    try {
      const dir = await this.dirAt(p.slice(0, -1), op, path);
      const name = p[p.length - 1]!;
      if ((await this.child(dir, name))?.kind === 'directory') fail(op, path, 'EISDIR');
      const file = await dir.getFileHandle(name, { create: true });
      const stream = await file.createWritable({ keepExistingData: append });
      try {
        if (append) await stream.seek((await file.getFile()).size);
        await stream.write(toBytes(data) as Uint8Array<ArrayBuffer>);
        await stream.close();
      } catch (err) {
        await stream.abort().catch(() => undefined);
        throw err;
      }
    } catch (err) {
      throw wrap(op, path, err);
    }
  }

  /** Copy a file or a directory tree under `parent` as `name`. */
  private async copyInto(source: Handle, parent: FileSystemDirectoryHandle, name: string): Promise<void> {
    if (source.kind === 'file') {
      const bytes = new Uint8Array(await (await (source as FileSystemFileHandle).getFile()).arrayBuffer());
      const stream = await (await parent.getFileHandle(name, { create: true })).createWritable();
      await stream.write(bytes);
      await stream.close();
      return;
    }
    const dir = await parent.getDirectoryHandle(name, { create: true });
    for await (const [childName, child] of (source as unknown as Entries).entries()) await this.copyInto(child, dir, childName);
  }

  /** The entry `name` of `dir`, or undefined. */
  private async child(dir: FileSystemDirectoryHandle, name: string): Promise<Handle | undefined> {
    try {
      return await dir.getDirectoryHandle(name);
    } catch (err) {
      const n = (err as { name?: string }).name;
      if (n !== 'TypeMismatchError' && n !== 'NotFoundError') throw err;
    }
    try {
      return await dir.getFileHandle(name);
    } catch (err) {
      if ((err as { name?: string }).name === 'NotFoundError') return undefined;
      throw err;
    }
  }

  /** The handle at `path`, or undefined when it is missing (ENOTDIR when a parent is a file). */
  private async lookup(path: string): Promise<Handle | undefined> {
    const p = parts(path);
    let cur: Handle = this.root;
    for (const name of p) {
      if (cur.kind !== 'directory') fail('lookup', path, 'ENOTDIR');
      const next = await this.child(cur as FileSystemDirectoryHandle, name);
      if (!next) return undefined;
      cur = next;
    }
    return cur;
  }

  private async existing(op: string, path: string): Promise<Handle> {
    let handle: Handle | undefined;
    try {
      handle = await this.lookup(path);
    } catch (err) {
      throw wrap(op, path, err);
    }
    if (!handle) fail(op, path, 'ENOENT');
    return handle;
  }

  private async fileHandle(op: string, path: string): Promise<FileSystemFileHandle> {
    const handle = await this.existing(op, path);
    if (handle.kind !== 'file') fail(op, path, 'EISDIR');
    return handle as FileSystemFileHandle;
  }

  /** The existing directory at `p` (ENOENT / ENOTDIR naming `shown` otherwise). */
  private async dirAt(p: string[], op: string, shown: string): Promise<FileSystemDirectoryHandle> {
    let dir = this.root;
    for (const name of p) {
      const next = await this.child(dir, name);
      if (!next) fail(op, shown, 'ENOENT');
      if (next.kind !== 'directory') fail(op, shown, 'ENOTDIR');
      dir = next as FileSystemDirectoryHandle;
    }
    return dir;
  }
}

/** True where this host has the Origin Private File System. */
export function hasOpfs(): boolean {
  const storage = (globalThis as { navigator?: { storage?: { getDirectory?: unknown } } }).navigator?.storage;
  return typeof storage?.getDirectory === 'function';
}

/**
 * The OPFS root as a `FileSystem`, e.g. `const fs = await createOpfsFileSystem()` then
 * `await saveCheckpoint(fs, 'runs/demo/ckpt-100', data)`.
 * Throws where the browser has no OPFS or denies it (some private-browsing modes).
 */
export async function createOpfsFileSystem(): Promise<OpfsFileSystem> {
  if (!hasOpfs()) throw new Error('OPFS file system: navigator.storage.getDirectory is not available in this host; use MemoryFileSystem');
  try {
    return new OpfsFileSystem(await navigator.storage.getDirectory());
  } catch (err) {
    throw new Error(`OPFS file system: navigator.storage.getDirectory() failed (${(err as Error).message}); use MemoryFileSystem`);
  }
}
