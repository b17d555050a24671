/**
 * The `FileSystem` over `node:fs/promises`, which Node, Deno 2 and Bun all provide. The module is
 * imported lazily (a variable specifier, so bundlers for the browser do not try to resolve it);
 * nothing here runs until `createNodeFileSystem()` is awaited.
 */

import type * as NodeFs from 'node:fs/promises';
import {
  type FileData,
  type FileReader,
  type FileStat,
  type FileSystem,
  FileSystemError,
  FS_CODE_TEXT,
  dirname,
  randomSuffix,
  toBytes,
} from './fs-types.js';

type NodeFsModule = typeof NodeFs;

const NODE_FS_SPECIFIER = 'node:fs/promises';
const NODE_FS_SYNC_SPECIFIER = 'node:fs';

/** Load node:fs/promises; throws a clear error in a host without it (a browser). */
async function loadNodeFs(): Promise<NodeFsModule> {
  try {
    return (await import(/* @vite-ignore */ NODE_FS_SPECIFIER)) as NodeFsModule;
  } catch (err) {
    throw new Error(
      `node file system: cannot import ${NODE_FS_SPECIFIER} in this runtime (${(err as Error).message}); ` +
        'use MemoryFileSystem in a browser',
    );
  }
}

/** Wrap a node error as a FileSystemError with the operation, path and code. */
function wrap(op: string, path: string, err: unknown): FileSystemError {
  const e = err as { code?: unknown; message?: unknown };
  const code = typeof e?.code === 'string' ? e.code : 'EIO';
  const detail = FS_CODE_TEXT[code] ?? (typeof e?.message === 'string' ? e.message : undefined);
  return new FileSystemError(op, path, code, detail);
}

/** The node:fs-backed `FileSystem` (also for Deno and Bun). */
export class NodeFileSystem implements FileSystem {
  readonly kind = 'node' as const;

  /** Prefer `createNodeFileSystem()`, which loads the module for you. */
  constructor(private readonly fs: NodeFsModule) {}

  async readFile(path: string): Promise<Uint8Array> {
    try {
      const buf = await this.fs.readFile(path);
      return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
    } catch (err) {
      throw wrap('readFile', path, err);
    }
  }

  async readText(path: string): Promise<string> {
    return new TextDecoder().decode(await this.readFile(path));
  }

  async openRead(path: string): Promise<FileReader> {
    let handle: NodeFs.FileHandle;
    let size: number;
    try {
      handle = await this.fs.open(path, 'r');
      const s = await handle.stat();
      if (s.isDirectory()) {
        await handle.close();
        throw Object.assign(new Error('is a directory'), { code: 'EISDIR' });
      }
      size = s.isFile() ? s.size : 0;
    } catch (err) {
      throw wrap('openRead', path, err);
    }
    // node:fs's readSync reads random windows of token files inside a synchronous batch draw
    const syncFs = (await import(/* @vite-ignore */ NODE_FS_SYNC_SPECIFIER).catch(() => null)) as { readSync?: (fd: number, b: Uint8Array, o: number, l: number, p: number) => number } | null;
    const readSync = syncFs?.readSync;
    return {
      size,
      read: async (buffer, position) => {
        try {
          return (await handle.read(buffer, 0, buffer.length, position)).bytesRead;
        } catch (err) {
          throw wrap('read', path, err);
        }
      },
      ...(readSync ? {
        readSync: (buffer: Uint8Array, position: number) => {
          try {
            return readSync(handle.fd, buffer, 0, buffer.length, position);
          } catch (err) {
            throw wrap('read', path, err);
          }
        },
      } : {}),
      close: () => handle.close(),
    };
  }

  async writeFile(path: string, data: FileData): Promise<void> {
    try {
      await this.fs.writeFile(path, toBytes(data));
    } catch (err) {
      throw wrap('writeFile', path, err);
    }
  }

  async writeFileAtomic(path: string, data: FileData): Promise<void> {
    const tmp = `${path}.tmp-${randomSuffix()}`;
    let handle: NodeFs.FileHandle | undefined;
    try {
      handle = await this.fs.open(tmp, 'wx');
      const bytes = toBytes(data);
      let written = 0;
      while (written < bytes.length) {
        const { bytesWritten } = await handle.write(bytes, written, bytes.length - written);
        written += bytesWritten;
      }
      await syncQuietly(handle);
      await handle.close();
      handle = undefined;
      await this.fs.rename(tmp, path);
    } catch (err) {
      if (handle) await handle.close().catch(() => undefined);
      await this.fs.rm(tmp, { force: true }).catch(() => undefined);
      throw wrap('writeFileAtomic', path, err);
    }
    await this.syncDir(dirname(path));
  }

  async appendFile(path: string, data: FileData): Promise<void> {
    try {
      await this.fs.appendFile(path, toBytes(data));
    } catch (err) {
      throw wrap('appendFile', path, err);
    }
  }

  async mkdirp(path: string): Promise<void> {
    // Level by level, not mkdir({ recursive: true }): on procfs, where mkdir answers ENOENT for
    // a parent that exists, Node's recursive mkdir retries forever. Bounded by the path's depth.
    const missing: string[] = [];
    for (let p = path; ; p = dirname(p)) {
      try {
        if (!(await this.fs.stat(p)).isDirectory()) throw new FileSystemError('mkdirp', path, 'ENOTDIR', `${p} is a file`);
        break;
      } catch (err) {
        if (err instanceof FileSystemError) throw err;
        if ((err as { code?: string }).code !== 'ENOENT') throw wrap('mkdirp', path, err);
      }
      missing.push(p);
      if (dirname(p) === p) break;
    }
    for (const dir of missing.reverse()) {
      try {
        await this.fs.mkdir(dir);
      } catch (err) {
        const code = (err as { code?: string }).code;
        if (code === 'EEXIST' && (await this.fs.stat(dir).catch(() => undefined))?.isDirectory()) continue; // made by someone else meanwhile
        if (code === 'ENOENT') throw new FileSystemError('mkdirp', path, 'ENOENT', `${dirname(dir)} exists but does not accept a new directory ${dir}`);
        throw wrap('mkdirp', path, err);
      }
    }
  }

  async exists(path: string): Promise<boolean> {
    try {
      await this.fs.lstat(path);
      return true;
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return false;
      throw wrap('exists', path, err);
    }
  }

  async stat(path: string): Promise<FileStat> {
    try {
      const s = await this.fs.stat(path);
      const type = s.isFile() ? 'file' : s.isDirectory() ? 'directory' : s.isFIFO() ? 'fifo' : s.isCharacterDevice() ? 'character-device' : s.isBlockDevice() ? 'block-device' : s.isSocket() ? 'socket' : 'other';
      return { isDirectory: s.isDirectory(), isFile: s.isFile(), size: s.size, type, mtimeMs: s.mtimeMs };
    } catch (err) {
      throw wrap('stat', path, err);
    }
  }

  async list(dir: string): Promise<string[]> {
    try {
      return (await this.fs.readdir(dir)).sort();
    } catch (err) {
      throw wrap('list', dir, err);
    }
  }

  async remove(path: string, options: { recursive?: boolean; force?: boolean } = {}): Promise<void> {
    try {
      const s = await this.fs.lstat(path);
      if (!s.isDirectory()) await this.fs.unlink(path);
      else if (options.recursive) await this.fs.rm(path, { recursive: true, force: true });
      else await this.fs.rmdir(path);
    } catch (err) {
      if (options.force && (err as { code?: string }).code === 'ENOENT') return;
      throw wrap('remove', path, err);
    }
  }

  async rename(from: string, to: string): Promise<void> {
    try {
      await this.fs.rename(from, to);
    } catch (err) {
      // Linux says ENOTEMPTY, some systems EEXIST, for a directory over a non-empty one.
      const code = (err as { code?: string }).code;
      if (code === 'EEXIST') throw new FileSystemError('rename', to, 'ENOTEMPTY', FS_CODE_TEXT.ENOTEMPTY);
      throw wrap('rename', code === 'ENOENT' ? `${from} -> ${to}` : to, err);
    }
    await this.syncDir(dirname(to));
  }

  /** fsync a directory so a rename inside it survives a power loss (best effort: not on Windows). */
  private async syncDir(dir: string): Promise<void> {
    let handle: NodeFs.FileHandle | undefined;
    try {
      handle = await this.fs.open(dir, 'r');
      await handle.sync();
    } catch {
      // Directories cannot be opened or synced on every host; the rename itself is still atomic.
    } finally {
      await handle?.close().catch(() => undefined);
    }
  }
}

async function syncQuietly(handle: NodeFs.FileHandle): Promise<void> {
  try {
    await handle.sync();
  } catch {
    // Some file systems (and some runtimes' node:fs shims) do not support fsync; still atomic.
  }
}

/** Load node:fs/promises and return a `FileSystem` over it (Node, Deno, Bun). */
export async function createNodeFileSystem(): Promise<NodeFileSystem> {
  return new NodeFileSystem(await loadNodeFs());
}
