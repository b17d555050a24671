/**
 * Backend selection. `createBackend('wasm')` (the default) loads the AssemblyScript SIMD kernels;
 * where WebAssembly SIMD is unavailable it warns once and returns the `js` backend instead.
 */
import type { Backend } from './backend.js';
import { JsBackend } from './js/index.js';
import { validateThreads } from '../runtime/threads.js';

export { BackendError } from './backend.js';
export type { AdamW8bitBuffers, AdamWParams, Backend, Floats, GemmLayout, Ptr } from './backend.js';
export { JsBackend, type JsBackendOptions } from './js/index.js';
export { WasmBackend, createWasmBackend, type WasmBackendOptions } from './wasm/index.js';

/** Options accepted by {@link createBackend}; each backend reads the ones it knows. */
export interface CreateBackendOptions {
  /** Elements addressable from the start; `reserve` grows memory later. */
  initialCapacity?: number;
  /** js backend only: element type (default `'f32'`). */
  dtype?: 'f32' | 'f64';
  /**
   * wasm backend only: threads running the kernels (default 1), bit-identical results at any
   * count. Without `SharedArrayBuffer` it runs single-threaded and warns once. The js backend
   * is single-threaded (it is the reference).
   */
  threads?: number;
  /**
   * wasm backend with threads > 1: the largest memory it may grow to, in bytes. A shared memory
   * reserves its maximum up front, so the default is the whole 4 GiB a wasm32 memory addresses
   * on server runtimes (Node, Deno, Bun: reserved address space, not RAM) and 2 GiB in browsers,
   * where a tab's reservation is scarcer.
   */
  maxSharedBytes?: number;
}

/** Default `maxSharedBytes`: 4 GiB − 64 KiB (wasm32's limit) outside browsers, 2 GiB in them. */
export function defaultMaxSharedBytes(): number {
  const g = globalThis as { process?: { versions?: { node?: string } }; Deno?: unknown };
  return g.process?.versions?.node || g.Deno ? 4 * 2 ** 30 - 65536 : 2 ** 31;
}

// (module (func (result v128) i32.const 0 i8x16.splat i8x16.popcnt)), as in wasm-feature-detect
const SIMD_PROBE = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 10, 1, 8, 0, 65, 0, 253, 15, 253, 98, 11]);

/** True when this runtime has WebAssembly with the SIMD (v128) proposal. */
export function hasWasmSimd(): boolean {
  try {
    return typeof WebAssembly === 'object' && WebAssembly.validate(SIMD_PROBE);
  } catch {
    return false;
  }
}

let warnedNoSimd = false;

/**
 * True when `be` reads memory asynchronously only (`readSync` throws): the webgpu backend. The
 * trainer and `trainStep` then await their reads (the loss, the optimizer's guard) instead.
 */
export function readsAreAsync(be: Backend): boolean {
  return be.name === 'webgpu';
}

/** The backends {@link createBackend} knows. */
export type BackendName = 'wasm' | 'js' | 'webgpu';

/**
 * The webgpu backend (gpu/), imported only when asked for. Its compiled module sits at
 * dist/gpu/ next to dist/backend/; from the sources (vitest) it is gpu/ next to src/.
 */
async function createWebGpu(opts: CreateBackendOptions): Promise<Backend> {
  const fromSources = import.meta.url.endsWith('.ts');
  const spec = fromSources ? '../../gpu/index.js' : '../gpu/index.js';
  const mod = (await import(spec)) as { createWebGpuBackend: (o: { initialCapacity?: number }) => Promise<Backend> };
  return mod.createWebGpuBackend({ initialCapacity: opts.initialCapacity });
}

/**
 * Create a backend by name.
 *
 * @example
 * const be = await createBackend();          // wasm SIMD kernels (js fallback without SIMD)
 * const oracle = await createBackend('js', { dtype: 'f64' });
 * const gpu = await createBackend('webgpu');  // WGSL kernels on a WebGPU adapter (gpu/)
 */
export async function createBackend(name: BackendName = 'wasm', opts: CreateBackendOptions = {}): Promise<Backend> {
  if (opts.threads !== undefined) validateThreads(opts.threads, 'createBackend');
  if (name === 'js') return new JsBackend({ dtype: opts.dtype, initialCapacity: opts.initialCapacity });
  if (name === 'webgpu') return createWebGpu(opts);
  if (name !== 'wasm') throw new Error(`createBackend: unknown backend '${String(name)}' (expected 'wasm', 'js' or 'webgpu')`);
  if (!hasWasmSimd()) {
    if (!warnedNoSimd) {
      warnedNoSimd = true;
      console.warn('bitnet-training: WebAssembly SIMD is not available in this runtime; using the (slower) js backend');
    }
    return new JsBackend({ initialCapacity: opts.initialCapacity });
  }
  const { createWasmBackend } = await import('./wasm/index.js');
  return createWasmBackend({ initialCapacity: opts.initialCapacity, threads: opts.threads, maxSharedBytes: opts.maxSharedBytes ?? defaultMaxSharedBytes() });
}
