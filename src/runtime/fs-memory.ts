/**
 * An in-memory `FileSystem`: the test double and the browser fallback when no persistent storage
 * is available. It follows POSIX semantics where the node implementation would (ENOENT for a
 * missing parent, ENOTEMPTY when renaming a directory over a non-empty one, ...), so code tested
 * on it behaves the same on disk. Paths are rooted at '/'; relative paths are taken from '/'.
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

type MemoryNode = { type: 'file'; data: Uint8Array } | { type: 'dir' };

function fail(op: string, path: string, code: string): never {
  throw new FileSystemError(op, path, code, FS_CODE_TEXT[code]);
}

/** Resolve '.', '..' and duplicate separators into an absolute '/'-path. */
function normalize(path: string): string {
  const out: string[] = [];
  for (const part of path.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') out.pop();
    else out.push(part);
  }
  return '/' + out.join('/');
}

function parentOf(p: string): string {
  const i = p.lastIndexOf('/');
  return i <= 0 ? '/' : p.slice(0, i);
}

/** A `FileSystem` held in a Map; contents are copied in and out so callers cannot alias them. */
export class MemoryFileSystem implements FileSystem {
  readonly kind = 'memory' as const;
  private readonly nodes = new Map<string, MemoryNode>([['/', { type: 'dir' }]]);

  /** Optionally start with files: `{ '/data/input.txt': 'hello' }` (parents are created). */
  constructor(files?: Record<string, FileData>) {
    for (const [path, data] of Object.entries(files ?? {})) {
      this.mkdirpSync(parentOf(normalize(path)), 'MemoryFileSystem', path);
      this.nodes.set(normalize(path), { type: 'file', data: toBytes(data).slice() });
    }
  }

  async readFile(path: string): Promise<Uint8Array> {
    const node = this.nodes.get(normalize(path));
    if (!node) fail('readFile', path, 'ENOENT');
    if (node.type === 'dir') fail('readFile', path, 'EISDIR');
    return node.data.slice();
  }

  async readText(path: string): Promise<string> {
    return new TextDecoder().decode(await this.readFile(path));
  }

  async openRead(path: string): Promise<FileReader> {
    const node = this.nodes.get(normalize(path));
    if (!node) fail('openRead', path, 'ENOENT');
    if (node.type === 'dir') fail('openRead', path, 'EISDIR');
    const data = node.data; // a later write replaces the node, so this stays the opened contents
    let cursor = 0;
    const readSync = (buffer: Uint8Array, position: number | null): number => {
      const at = position ?? cursor;
      const n = Math.max(0, Math.min(buffer.length, data.length - at));
      buffer.set(data.subarray(at, at + n));
      if (position === null) cursor += n;
      return n;
    };
    return { size: data.length, read: async (b, p) => readSync(b, p), readSync, close: async () => undefined };
  }

  async writeFile(path: string, data: FileData): Promise<void> {
    const p = this.writableFile('writeFile', path);
    this.nodes.set(p, { type: 'file', data: toBytes(data).slice() });
  }

  async writeFileAtomic(path: string, data: FileData): Promise<void> {
    // A Map.set is already all-or-nothing; no temporary name is needed in memory.
    const p = this.writableFile('writeFileAtomic', path);
    this.nodes.set(p, { type: 'file', data: toBytes(data).slice() });
  }

  async appendFile(path: string, data: FileData): Promise<void> {
    const p = this.writableFile('appendFile', path);
    const old = this.nodes.get(p);
    const add = toBytes(data);
    const prev = old?.type === 'file' ? old.data : new Uint8Array(0);
    const next = new Uint8Array(prev.length + add.length);
    next.set(prev, 0);
    next.set(add, prev.length);
    this.nodes.set(p, { type: 'file', data: next });
  }

  async mkdirp(path: string): Promise<void> {
    this.mkdirpSync(normalize(path), 'mkdirp', path);
  }

  async exists(path: string): Promise<boolean> {
    return this.nodes.has(normalize(path));
  }

  async stat(path: string): Promise<FileStat> {
    const node = this.nodes.get(normalize(path));
    if (!node) fail('stat', path, 'ENOENT');
    return node.type === 'dir'
      ? { isDirectory: true, isFile: false, size: 0, type: 'directory' }
      : { isDirectory: false, isFile: true, size: node.data.length, type: 'file' };
  }

  async list(dir: string): Promise<string[]> {
    const p = normalize(dir);
    const node = this.nodes.get(p);
    if (!node) fail('list', dir, 'ENOENT');
    if (node.type !== 'dir') fail('list', dir, 'ENOTDIR');
    return this.childrenOf(p).sort();
  }

  async remove(path: string, options: { recursive?: boolean; force?: boolean } = {}): Promise<void> {
    const p = normalize(path);
    const node = this.nodes.get(p);
    if (!node) {
      if (options.force) return;
      fail('remove', path, 'ENOENT');
    }
    if (p === '/') fail('remove', path, 'EPERM');
    if (node.type === 'dir') {
      if (this.childrenOf(p).length > 0 && !options.recursive) fail('remove', path, 'ENOTEMPTY');
      for (const key of [...this.nodes.keys()]) if (key.startsWith(p + '/')) this.nodes.delete(key);
    }
    this.nodes.delete(p);
  }

  async rename(from: string, to: string): Promise<void> {
    const src = normalize(from);
    const dst = normalize(to);
    const node = this.nodes.get(src);
    if (!node) fail('rename', from, 'ENOENT');
    const parent = this.nodes.get(parentOf(dst));
    if (!parent) fail('rename', to, 'ENOENT');
    if (parent.type !== 'dir') fail('rename', to, 'ENOTDIR');
    if (src === dst) return;
    if (dst.startsWith(src + '/')) fail('rename', to, 'EINVAL');
    const existing = this.nodes.get(dst);
    if (existing) {
      if (node.type === 'file' && existing.type === 'dir') fail('rename', to, 'EISDIR');
      if (node.type === 'dir' && existing.type === 'file') fail('rename', to, 'ENOTDIR');
      if (existing.type === 'dir' && this.childrenOf(dst).length > 0) fail('rename', to, 'ENOTEMPTY');
      this.nodes.delete(dst);
    }
    const moved: [string, MemoryNode][] = [];
    for (const [key, value] of this.nodes) {
      if (key === src || key.startsWith(src + '/')) moved.push([dst + key.slice(src.length), value]);
    }
    for (const [key] of moved) this.nodes.delete(src + key.slice(dst.length));
    for (const [key, value] of moved) this.nodes.set(key, value);
  }

  private childrenOf(p: string): string[] {
    const prefix = p === '/' ? '/' : p + '/';
    const names: string[] = [];
    for (const key of this.nodes.keys()) {
      if (key.length > prefix.length && key.startsWith(prefix) && !key.includes('/', prefix.length)) {
        names.push(key.slice(prefix.length));
      }
    }
    return names;
  }

  /** Check that a file may be written at `path` (parent is a directory, path is not one). */
  private writableFile(op: string, path: string): string {
    const p = normalize(path);
    const parent = this.nodes.get(parentOf(p));
    if (!parent) fail(op, path, 'ENOENT');
    if (parent.type !== 'dir') fail(op, path, 'ENOTDIR');
    if (this.nodes.get(p)?.type === 'dir') fail(op, path, 'EISDIR');
    return p;
  }

  private mkdirpSync(p: string, op: string, shown: string): void {
    let cur = '';
    for (const part of p.split('/').filter((s) => s.length > 0)) {
      cur += '/' + part;
      const node = this.nodes.get(cur);
      if (!node) this.nodes.set(cur, { type: 'dir' });
      else if (node.type !== 'dir') fail(op, shown, cur === p ? 'EEXIST' : 'ENOTDIR');
    }
  }
}
