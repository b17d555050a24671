/**
 * Host file access (DESIGN.md decision 7): the `FileSystem` interface and how to get the right
 * implementation for the host. Node, Deno and Bun share the node:fs implementation (loaded
 * lazily, so this module also loads in a browser); browsers get the Origin Private File System
 * (`fs-opfs.ts`), and the in-memory one where OPFS is missing or denied.
 *
 * ```ts
 * const fs = await getDefaultFileSystem();
 * const text = await fs.readText('examples/data/tinyshakespeare.txt');
 * await fs.writeFileAtomic('out/notes.txt', 'done');
 * ```
 */

import type { FileSystem } from './fs-types.js';
import { MemoryFileSystem } from './fs-memory.js';
import { createNodeFileSystem } from './fs-node.js';
import { createOpfsFileSystem, hasOpfs } from './fs-opfs.js';

export * from './fs-types.js';
export { MemoryFileSystem } from './fs-memory.js';
export { NodeFileSystem, createNodeFileSystem } from './fs-node.js';
export { OpfsFileSystem, createOpfsFileSystem, hasOpfs } from './fs-opfs.js';

/** Which file system the current host gets by default. */
export function detectFileSystemKind(): 'node' | 'opfs' | 'memory' {
  const g = globalThis as { process?: { versions?: { node?: string } }; Deno?: unknown; Bun?: unknown };
  if (g.Deno !== undefined || g.Bun !== undefined || typeof g.process?.versions?.node === 'string') return 'node';
  return hasOpfs() ? 'opfs' : 'memory';
}

let defaultFs: Promise<FileSystem> | undefined;

/**
 * The host's file system, created once: node:fs in Node, Deno and Bun; the Origin Private File
 * System in browsers (an in-memory one, with a warning, where OPFS is missing or denied).
 */
export function getDefaultFileSystem(): Promise<FileSystem> {
  defaultFs ??= detectFileSystemKind() === 'node'
    ? createNodeFileSystem().catch((err: unknown) => {
        defaultFs = undefined; // let a later call try again
        throw err;
      })
    : hasOpfs()
      ? createOpfsFileSystem().catch((err: unknown) => {
          console.warn(`${(err as Error).message}; files will not outlive this page`);
          return new MemoryFileSystem();
        })
      : Promise.resolve(new MemoryFileSystem());
  return defaultFs;
}
