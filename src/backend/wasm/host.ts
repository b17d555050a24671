/**
 * The machinery under the `wasm` backend: the kernel module's instance on one
 * `WebAssembly.Memory`, memory growth and views, and `run`, the one place a kernel call is split
 * over rows and, with a thread pool, over threads. `WasmBackend` (index.ts) adds the kernels.
 */
import { BackendError, type Floats, type Ptr } from '../backend.js';
import * as check from '../checks.js';
import { kernelsMtWasmBytes, kernelsWasmBytes } from '../../runtime/wasm-bytes.js';
import { kernelsRelaxedMtWasmBase64, kernelsRelaxedWasmBase64 } from '../../generated/kernels-wasm.js';
import { ThreadPool, POOL_CONTROL_BYTES } from '../../runtime/pool.js';
import { KERNEL_NAMES, kernelExports, kernelImports, type KernelExports, type KernelName } from './kernels.js';

/** Options for {@link createWasmBackend}. */
export interface WasmBackendOptions {
  /** Elements addressable from the start (default 65536); `reserve` grows memory. */
  initialCapacity?: number;
  /**
   * Internal, for tests: run every kernel as this many consecutive calls over parts of its
   * range (default 1), to check that results do not depend on how a thread pool splits work.
   */
  splits?: number;
  /**
   * Threads that run the kernels (default 1): the calling thread plus `threads - 1` workers on
   * one shared memory. Results are bit-identical for every count. Needs `SharedArrayBuffer`
   * (a cross-origin-isolated page in a browser); without it the backend runs single-threaded
   * and warns once.
   */
  threads?: number;
  /** Largest memory a threaded backend may grow to, in bytes (default 2 GiB; shared memories reserve it up front). */
  maxSharedBytes?: number;
  /**
   * Use the relaxed-SIMD build (`i32x4.relaxed_dot_i8x16_i7x16_add_s` in the int8 × ternary
   * forward: exact for ternary weights, so the same bits) where the runtime validates it.
   * Default true (auto-detected: Chromium, Deno, Node ≥ 22); false forces the plain SIMD kernels.
   */
  relaxedSimd?: boolean;
}

function decodeBase64(b64: string): Uint8Array {
  const bin = atob(b64);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return bytes;
}

/** Modules compiled from a relaxed-SIMD build (so a backend knows which kernels it runs). */
const relaxedModules = new WeakSet<WebAssembly.Module>();
let relaxedVerdict: boolean | undefined;

/**
 * The start-up check of the relaxed build: one int8 × ternary forward (2 rows, 5 outputs, K = 24,
 * negative activations, all three codes) must give the plain kernels' bits. A runtime that
 * validates the instruction but computes it otherwise (Node 20's --experimental-wasm-relaxed-simd
 * implements an older draft) is refused, and the plain kernels run.
 */
function sameForward(plain: WebAssembly.Instance, plainMem: WebAssembly.Memory, relaxed: WebAssembly.Instance, relaxedMem: WebAssembly.Memory): boolean {
  const outs = ([[plain, plainMem], [relaxed, relaxedMem]] as const).map(([inst, memory]) => {
    const e = inst.exports as Record<string, (...a: number[]) => number>;
    const base = Math.ceil(e.heap_base!() / 64) * 64;
    const [M, N, K] = [2, 5, 24];
    const xq = base, sx = base + 64, w = base + 128, sw = base + 320, scratch = base + 384, out = base + 768;
    const u8 = new Uint8Array(memory.buffer);
    const f32 = new Float32Array(memory.buffer);
    u8.fill(0, base, out + 64);
    for (let i = 0; i < M * K; i++) u8[xq + i] = ((i * 37) % 256) ^ 0x80;
    f32[sx >> 2] = 1; f32[(sx >> 2) + 1] = 0.5; f32[sw >> 2] = 2;
    for (let i = 0; i < 2 * K; i++) u8[w + i] = ((i * 7) % 3) | (((i + 1) % 3) << 2) | (((i * 5 + 2) % 3) << 4) | (((i + 2) % 3) << 6); // codes w + 1 in {0, 1, 2}
    e.ternary_forward!(out, xq, sx, w, sw, scratch, M, N, K, N * K, 0, M);
    return Array.from(new Uint32Array(memory.buffer, out, M * N));
  });
  return outs[0]!.every((v, i) => v === outs[1]![i]);
}

function instantiateSync(bytes: Uint8Array): { instance: WebAssembly.Instance; memory: WebAssembly.Memory } {
  const module = new WebAssembly.Module(bytes as BufferSource);
  const memory = new WebAssembly.Memory({ initial: 2, maximum: MAX_PAGES });
  return { instance: new WebAssembly.Instance(module, kernelImports(module, memory)), memory };
}

/**
 * The relaxed-SIMD kernel module (threads: the shared-memory build) when this runtime validates
 * it and passes the start-up check (`sameForward`), else null (Node 20, Bun, older browsers).
 */
export function relaxedKernelsBytes(shared: boolean): Uint8Array | null {
  const single = kernelsRelaxedWasmBase64 ? decodeBase64(kernelsRelaxedWasmBase64) : null;
  if (relaxedVerdict === undefined) {
    relaxedVerdict = false;
    try {
      if (single && WebAssembly.validate(single as BufferSource)) {
        const p = instantiateSync(kernelsWasmBytes());
        const r = instantiateSync(single);
        relaxedVerdict = sameForward(p.instance, p.memory, r.instance, r.memory);
      }
    } catch {
      relaxedVerdict = false;
    }
  }
  if (!relaxedVerdict) return null;
  if (!shared) return single;
  const mt = kernelsRelaxedMtWasmBase64 ? decodeBase64(kernelsRelaxedMtWasmBase64) : null;
  return mt && WebAssembly.validate(mt as BufferSource) ? mt : null;
}

const PAGE_BYTES = 65536;
const MAX_PAGES = 65536; // wasm32: 4 GiB
/** f64 partial sums that fit in the scratch area; longer reductions run in several passes. */
const SCRATCH_CHUNKS = 1024;
/** Scalar operations below which a kernel runs on the calling thread alone (waking workers costs ~10 us). */
const MIN_PARALLEL_WORK = 1 << 15;
/** Thread shares start at multiples of this many rows (SIMD width, GEMM register blocks). */
const SPLIT_ALIGN = 8;
const KERNEL_IDS = new Map<string, number>(KERNEL_NAMES.map((name, i) => [name, i]));

/** A compiled kernel module instantiated on its memory (shared when `threads > 1`). */
export interface LoadedKernels {
  module: WebAssembly.Module;
  instance: WebAssembly.Instance;
  memory: WebAssembly.Memory;
  /** Whether this is the relaxed-SIMD build. */
  relaxed?: boolean;
}

/** Compile and instantiate the single-threaded build synchronously (not on a browser's main thread). */
export function loadKernelsSync(relaxedSimd = true): LoadedKernels {
  const relaxed = relaxedSimd ? relaxedKernelsBytes(false) : null;
  const module = new WebAssembly.Module((relaxed ?? kernelsWasmBytes()) as BufferSource);
  if (relaxed) relaxedModules.add(module);
  const memory = new WebAssembly.Memory({ initial: 1, maximum: MAX_PAGES });
  return { module, instance: new WebAssembly.Instance(module, kernelImports(module, memory)), memory, relaxed: relaxed !== null };
}

/** Compile and instantiate the single-threaded build, or with `shared` the shared-memory build. */
export async function loadKernels(shared: boolean, maxSharedBytes = 2 ** 31, relaxedSimd = true): Promise<LoadedKernels> {
  const relaxed = relaxedSimd ? relaxedKernelsBytes(shared) : null;
  const bytes = relaxed ?? (shared ? kernelsMtWasmBytes() : kernelsWasmBytes());
  if (!bytes) throw new BackendError('wasm backend: threads > 1 needs build/kernels-mt.wasm (run npm run build:wasm)');
  const module = await WebAssembly.compile(bytes as BufferSource);
  const memory = shared
    ? new WebAssembly.Memory({ initial: 1, maximum: Math.min(MAX_PAGES, Math.ceil(maxSharedBytes / PAGE_BYTES)), shared: true })
    : new WebAssembly.Memory({ initial: 1, maximum: MAX_PAGES });
  if (relaxed) relaxedModules.add(module);
  const instance = await WebAssembly.instantiate(module, kernelImports(module, memory));
  return { module, instance, memory, relaxed: relaxed !== null };
}

/** Memory, views and dispatch of the wasm backend; the kernels are methods of `WasmBackend`. */
export abstract class WasmKernelHost {
  readonly name = 'wasm';
  readonly dtype = 'f32' as const;
  readonly base: Ptr;
  protected f32: Float32Array;
  protected partials: Float64Array;
  protected readonly k: KernelExports;
  protected readonly scratchByte: number;
  private readonly splits: number;
  private pool: ThreadPool | null = null;
  private ranges: Int32Array;
  /** Byte offset of the thread pool's control block (inside the reserved `[0, base)`). */
  readonly controlByte: number;
  /** True once `dispose()` ran; every method then throws. */
  disposed = false;
  /** Whether the kernels are the relaxed-SIMD build (see `WasmBackendOptions.relaxedSimd`). */
  readonly relaxedSimd: boolean;

  protected constructor(
    /** The compiled kernel module (a thread pool instantiates it in each worker). */
    readonly module: WebAssembly.Module,
    instance: WebAssembly.Instance,
    /** The memory every kernel addresses. */
    readonly memory: WebAssembly.Memory,
    opts: WasmBackendOptions,
  ) {
    this.k = kernelExports(instance);
    this.relaxedSimd = relaxedModules.has(module);
    this.splits = Math.max(1, Math.floor(opts.splits ?? 1));
    // [0, heap_base) is the module's static data; then the reduction scratch; then user memory
    this.scratchByte = Math.ceil(this.k.heapBase / 64) * 64;
    this.controlByte = this.scratchByte + SCRATCH_CHUNKS * 8;
    this.base = Math.ceil((this.controlByte + POOL_CONTROL_BYTES) / 64) * 16;
    this.ranges = new Int32Array(2);
    this.f32 = new Float32Array(memory.buffer);
    this.partials = new Float64Array(memory.buffer, this.scratchByte, SCRATCH_CHUNKS);
    this.reserve(Math.max(this.base + 16, opts.initialCapacity ?? 65536));
  }

  /** Start `threads - 1` workers over this backend's shared memory. */
  protected async startPool(threads: number): Promise<void> {
    this.pool = await ThreadPool.create({ threads, module: this.module, memory: this.memory, control: this.controlByte, kernels: [...KERNEL_NAMES] });
  }

  /** Threads this backend runs kernels on (1 without a pool). */
  get threads(): number {
    return this.pool?.threads ?? 1;
  }

  get capacity(): number {
    return this.f32.length;
  }

  // ---- dispatch ---------------------------------------------------------------

  /**
   * Run `kernel(...args, r0, r1)` over rows `[0, rows)`: the one place work is split. With a
   * thread pool, rows go to threads in contiguous shares when the kernel does at least
   * `MIN_PARALLEL_WORK` scalar operations (`work`); the kernels give the same bits for any split.
   */
  protected run(kernel: KernelName, rows: number, args: number[], work = rows, perThread?: { index: number; stride: number }): void {
    const fn = this.k.kernels[kernel];
    if (this.pool && rows > 1 && work >= MIN_PARALLEL_WORK) {
      this.runThreaded(kernel, fn, rows, args, perThread);
      return;
    }
    const parts = Math.min(this.splits, rows);
    if (parts <= 1) {
      fn(...args, 0, rows);
      return;
    }
    for (let s = 0; s < parts; s++) {
      const r0 = Math.floor((rows * s) / parts);
      const r1 = Math.floor((rows * (s + 1)) / parts);
      if (r0 < r1) fn(...args, r0, r1);
    }
  }

  /** `perThread`: thread i adds `i * stride` to `args[index]` (a per-thread scratch pointer, in bytes). */
  private runThreaded(kernel: KernelName, fn: (...args: number[]) => void, rows: number, args: number[], perThread?: { index: number; stride: number }): void {
    const pool = this.pool!;
    const threads = Math.min(pool.threads, rows);
    if (this.ranges.length < 2 * pool.threads) this.ranges = new Int32Array(2 * pool.threads);
    const ranges = this.ranges;
    ranges.fill(0);
    let r0 = 0;
    for (let t = 0; t < threads; t++) {
      let r1 = t === threads - 1 ? rows : Math.round((rows * (t + 1)) / threads);
      if (r1 < rows && rows >= SPLIT_ALIGN * threads) r1 = Math.min(rows, Math.round(r1 / SPLIT_ALIGN) * SPLIT_ALIGN);
      ranges[2 * t] = r0;
      ranges[2 * t + 1] = Math.max(r0, r1);
      r0 = Math.max(r0, r1);
    }
    pool.run(KERNEL_IDS.get(kernel)!, args, ranges, (a, b) => fn(...args, a, b), perThread);
  }

  // ---- memory -------------------------------------------------------------

  reserve(n: number): void {
    check.checkAlive(this, 'reserve');
    check.checkDim(this, 'reserve', 'n', n, true);
    if (n <= this.f32.length) return;
    const pages = this.memory.buffer.byteLength / PAGE_BYTES;
    const needed = Math.ceil((n * 4) / PAGE_BYTES);
    if (needed > MAX_PAGES) throw new BackendError(`wasm backend reserve: ${n} f32 elements need ${n * 4} bytes, more than the 4 GiB a wasm32 memory can hold`);
    // grow by at least half again, so a sequence of small reserves costs amortised O(n)
    const target = Math.min(MAX_PAGES, Math.max(needed, Math.ceil(pages * 1.5)));
    try {
      this.memory.grow(target - pages);
    } catch {
      try {
        this.memory.grow(needed - pages);
      } catch (e) {
        throw new BackendError(`wasm backend reserve: cannot grow memory to ${needed * PAGE_BYTES} bytes (${(e as Error).message})`);
      }
    }
    this.f32 = new Float32Array(this.memory.buffer);
    this.partials = new Float64Array(this.memory.buffer, this.scratchByte, SCRATCH_CHUNKS);
  }

  readSync(p: Ptr, n: number): Floats {
    check.checkSpan(this, 'readSync', 'p', p, n, '(n)');
    return this.f32.slice(p, p + n);
  }

  read(p: Ptr, n: number): Promise<Floats> {
    try {
      return Promise.resolve(this.readSync(p, n));
    } catch (e) {
      return Promise.reject(e);
    }
  }

  write(p: Ptr, data: ArrayLike<number>): void {
    check.checkSpan(this, 'write', 'p', p, data.length, '(data.length)');
    this.f32.set(data, p);
  }

  writeIndices(p: Ptr, data: Int32Array): void {
    check.checkSpan(this, 'writeIndices', 'p', p, data.length, '(data.length)');
    check.checkIndicesToWrite(this, data, true);
    this.f32.set(data, p);
  }

  readIndices(p: Ptr, n: number): Int32Array {
    check.checkSpan(this, 'readIndices', 'p', p, n, '(n)');
    return Int32Array.from(this.f32.subarray(p, p + n));
  }

  fill(p: Ptr, n: number, value: number): void {
    check.checkSpan(this, 'fill', 'p', p, n, '(n)');
    // a kernel, not Float32Array.fill: V8 fills a shared buffer ~5x slower, and the backward
    // zeroes ~12 M gradient elements a step of the reference model
    this.run('fill_f32', n, [p * 4, value]);
  }

  copy(dst: Ptr, src: Ptr, n: number): void {
    check.checkSpan(this, 'copy', 'src', src, n, '(n)');
    check.checkSpan(this, 'copy', 'dst', dst, n, '(n)');
    this.f32.copyWithin(dst, src, src + n);
  }

  dispose(): void {
    this.pool?.dispose();
    this.pool = null;
    this.disposed = true;
    this.f32 = new Float32Array(0);
  }

  /** Chunk partial sums (f64) in the scratch area, added in chunk order here: the same total for any split. */
  protected reduce(chunks: 'sum_chunks' | 'sum_squares_chunks', out: Ptr, x: Ptr, n: number): void {
    const chunk = this.k.sumChunk;
    let total = 0;
    for (let start = 0; start < n; start += SCRATCH_CHUNKS * chunk) {
      const len = Math.min(n - start, SCRATCH_CHUNKS * chunk);
      const count = Math.ceil(len / chunk);
      this.run(chunks, count, [this.scratchByte, (x + start) * 4, len], len);
      for (let c = 0; c < count; c++) total += this.partials[c];
    }
    this.f32[out] = total;
  }
}
