/**
 * Host file access (DESIGN.md decision 7): the `FileSystem` interface and how to get the right
 * implementation for the host. Node, Deno and Bun share the node:fs implementation (loaded
 * lazily, so this module also loads in a browser); browsers get the in-memory one until the
 * OPFS implementation lands (it will be picked here, behind the same interface).
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

export * from './fs-types.js';
export { MemoryFileSystem } from './fs-memory.js';
export { NodeFileSystem, createNodeFileSystem } from './fs-node.js';

/** Which file system the current host gets by default. */
export function detectFileSystemKind(): 'node' | 'memory' {
  const g = globalThis as { process?: { versions?: { node?: string } }; Deno?: unknown; Bun?: unknown };
  if (g.Deno !== undefined || g.Bun !== undefined || typeof g.process?.versions?.node === 'string') return 'node';
  return 'memory';
}

let defaultFs: Promise<FileSystem> | undefined;

/**
 * The host's file system, created once: node:fs in Node, Deno and Bun; an in-memory one
 * elsewhere (browsers — OPFS comes later behind the same interface).
 */
export function getDefaultFileSystem(): Promise<FileSystem> {
  defaultFs ??= detectFileSystemKind() === 'node'
    ? createNodeFileSystem().catch((err: unknown) => {
        defaultFs = undefined; // let a later call try again
        throw err;
      })
    : Promise.resolve(new MemoryFileSystem());
  return defaultFs;
}
