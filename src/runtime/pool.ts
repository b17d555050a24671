/**
 * A pool of workers that run kernels of one WebAssembly module over one shared memory
 * (DESIGN.md decision 5). Dispatch goes through a control block in that memory with
 * `Atomics.wait`/`Atomics.notify`, never through postMessage (a round trip costs ~30 us, too
 * slow per op). The calling thread takes the first share of every kernel itself.
 *
 * The caller splits the work: `run(kernel, args, ranges)` gives range i to thread i, each range
 * a part of the kernel's output rows (or chunks). Which thread computes a row never changes the
 * row's value, so results are bit-identical for any number of threads.
 */
import { spawnWorker, type WorkerHandle } from './workers.js';

/** Bytes of shared memory the pool's control block needs (64-byte aligned). */
export const POOL_CONTROL_BYTES = 3072;
/** Most threads a pool may have. */
export const MAX_THREADS = 256;

// control block, in i32 slots
const SEQ = 0; // dispatch generation; -1 tells workers to exit
const PENDING = 1; // workers still running the current dispatch
const ERROR = 2; // 0, or 1 + index of the first worker that threw
const KERNEL = 3; // index into the kernel name table
const NARGS = 4;
const READY = 5; // workers that finished instantiating
const PER_THREAD_ARG = 6; // index of an arg offset by thread * PER_THREAD_STRIDE (per-thread scratch), or -1
const PER_THREAD_STRIDE = 7;
const SPURIOUS = 8; // wake-ups of a worker that found no new dispatch (diagnostics)
const RANGES = 16; // r0, r1 for thread w at RANGES + 2w
const MAX_ARGS = 32;
const ARGS_BYTE = 2176; // f64 args
const MESSAGE_BYTE = ARGS_BYTE + MAX_ARGS * 8; // UTF-8 error text of the failing worker
const MESSAGE_BYTES = POOL_CONTROL_BYTES - MESSAGE_BYTE;

/** The worker's whole program. Plain JavaScript, runs as a classic script or a module. */
const WORKER_SOURCE = `
const port = globalThis.__bitnetPort ?? self;
const listen = (fn) => port.on ? port.once('message', fn) : (self.onmessage = (e) => fn(e.data));
listen((boot) => {
  const { module, memory, control, index, kernels, spin } = boot;
  const imports = {};
  for (const imp of WebAssembly.Module.imports(module)) {
    imports[imp.module] ??= {};
    imports[imp.module][imp.name] = imp.kind === 'memory' ? memory
      : () => { throw new Error('kernel aborted (' + imp.module + '.' + imp.name + ')'); };
  }
  const instance = new WebAssembly.Instance(module, imports);
  const fns = kernels.map((name) => instance.exports[name]);
  const I = new Int32Array(memory.buffer, control, ${POOL_CONTROL_BYTES} / 4);
  const A = new Float64Array(memory.buffer, control + ${ARGS_BYTE}, ${MAX_ARGS});
  const args = [];
  Atomics.add(I, ${READY}, 1);
  Atomics.notify(I, ${READY});
  let seen = 0;
  for (;;) {
    let seq = Atomics.load(I, ${SEQ});
    for (let i = 0; seq === seen && i < spin; i++) seq = Atomics.load(I, ${SEQ});
    if (seq === seen) { Atomics.wait(I, ${SEQ}, seen); seq = Atomics.load(I, ${SEQ}); }
    if (seq === seen) { Atomics.add(I, ${SPURIOUS}, 1); continue; } // woken without a new dispatch: never run one twice
    if (seq < 0) break;
    seen = seq;
    const r0 = I[${RANGES} + 2 * index], r1 = I[${RANGES} + 2 * index + 1];
    if (r0 < r1) {
      try {
        const n = I[${NARGS}];
        args.length = n + 2;
        for (let i = 0; i < n; i++) args[i] = A[i];
        const pt = I[${PER_THREAD_ARG}];
        if (pt >= 0) args[pt] += index * I[${PER_THREAD_STRIDE}];
        args[n] = r0; args[n + 1] = r1;
        fns[I[${KERNEL}]](...args);
      } catch (e) {
        if (Atomics.compareExchange(I, ${ERROR}, 0, index + 1) === 0) {
          const bytes = new TextEncoder().encode(String(e && e.message || e)).subarray(0, ${MESSAGE_BYTES} - 1);
          new Uint8Array(memory.buffer, control + ${MESSAGE_BYTE}, ${MESSAGE_BYTES}).fill(0).set(bytes);
        }
      }
    }
    if (Atomics.sub(I, ${PENDING}, 1) === 1) Atomics.notify(I, ${PENDING});
  }
});
`;

export interface ThreadPoolOptions {
  /** Total threads including the caller's (>= 2; a single thread needs no pool). */
  threads: number;
  /** The shared-memory build of the kernels. */
  module: WebAssembly.Module;
  /** A `WebAssembly.Memory` created with `shared: true`. */
  memory: WebAssembly.Memory;
  /** Byte offset of `POOL_CONTROL_BYTES` reserved bytes in `memory`, 64-byte aligned. */
  control: number;
  /** Export names the pool may run, in the order their ids are given to `run`. */
  kernels: string[];
  /** Give up waiting for a dispatch after this long (a worker that died). Default 120 s. */
  timeoutMs?: number;
  /** Polls of the control block before a thread sleeps on it. Default 20000. */
  spin?: number;
}

export class ThreadPool {
  readonly threads: number;
  private readonly I: Int32Array;
  private readonly A: Float64Array;
  private readonly workers: WorkerHandle[];
  private readonly kernels: string[];
  private readonly timeoutMs: number;
  private readonly spin: number;
  private seq = 0;
  private lastKernel = -1;
  private canBlock = true;
  private failure: Error | null = null;
  private disposed = false;

  private constructor(opts: ThreadPoolOptions, workers: WorkerHandle[]) {
    this.threads = opts.threads;
    this.I = new Int32Array(opts.memory.buffer, opts.control, POOL_CONTROL_BYTES / 4);
    this.A = new Float64Array(opts.memory.buffer, opts.control + ARGS_BYTE, MAX_ARGS);
    this.workers = workers;
    this.kernels = opts.kernels;
    this.timeoutMs = opts.timeoutMs ?? 120_000;
    this.spin = opts.spin ?? 20_000;
    for (const w of workers) w.onError((e) => { this.failure ??= new Error(`threads: a worker failed: ${e.message}`); });
  }

  /** Start `threads - 1` workers and wait until each has instantiated the module. */
  static async create(opts: ThreadPoolOptions): Promise<ThreadPool> {
    const { threads, memory, control } = opts;
    if (!Number.isInteger(threads) || threads < 2 || threads > MAX_THREADS) {
      throw new Error(`ThreadPool: threads must be an integer in [2, ${MAX_THREADS}], got ${threads}`);
    }
    if (!(memory.buffer instanceof SharedArrayBuffer)) throw new Error('ThreadPool: memory must be created with shared: true');
    if (control % 64 !== 0) throw new Error(`ThreadPool: control block offset ${control} must be 64-byte aligned`);
    const I = new Int32Array(memory.buffer, control, POOL_CONTROL_BYTES / 4);
    I.fill(0);
    const workers: WorkerHandle[] = [];
    let startError: Error | null = null;
    for (let index = 1; index < threads; index++) {
      const w = await spawnWorker(WORKER_SOURCE);
      w.onError((e) => { startError ??= e; });
      w.postMessage({ module: opts.module, memory, control, index, kernels: opts.kernels, spin: opts.spin ?? 20_000 });
      workers.push(w);
    }
    const deadline = Date.now() + (opts.timeoutMs ?? 120_000);
    // wait asynchronously: workers need this thread's event loop to receive their boot message
    while (Atomics.load(I, READY) < threads - 1) {
      if (startError) { for (const w of workers) w.terminate(); throw new Error(`threads: a worker failed to start: ${(startError as Error).message}`); }
      if (Date.now() > deadline) { for (const w of workers) w.terminate(); throw new Error(`threads: workers did not start within ${opts.timeoutMs ?? 120_000} ms`); }
      await new Promise((r) => setTimeout(r, 1));
    }
    for (const w of workers) w.unref();
    return new ThreadPool(opts, workers);
  }

  /**
   * Run kernel `id` with `args` (numbers) plus a range `[r0, r1)` appended, on every thread:
   * thread i gets `ranges[i]` (thread 0 is the caller; missing or empty ranges idle).
   * `callLocal` runs the caller's share on its own instance. Blocks until all are done.
   * `perThread` gives each thread its own scratch: thread i adds `i * stride` to `args[index]`
   * (thread 0, the caller, uses the argument as given).
   */
  run(id: number, args: ArrayLike<number>, ranges: ArrayLike<number>, callLocal: (r0: number, r1: number) => void, perThread?: { index: number; stride: number }): void {
    if (this.disposed) throw new Error('ThreadPool: used after dispose()');
    if (this.failure) throw this.failure;
    const { I, A } = this;
    this.checkControl('before', id);
    if (args.length > MAX_ARGS) throw new Error(`ThreadPool: kernel ${this.kernels[id]} has ${args.length} args (max ${MAX_ARGS})`);
    for (let i = 0; i < args.length; i++) A[i] = args[i];
    I[NARGS] = args.length;
    I[KERNEL] = id;
    I[PER_THREAD_ARG] = perThread ? perThread.index : -1;
    I[PER_THREAD_STRIDE] = perThread ? perThread.stride : 0;
    for (let w = 1; w < this.threads; w++) {
      I[RANGES + 2 * w] = 2 * w < ranges.length ? ranges[2 * w] : 0;
      I[RANGES + 2 * w + 1] = 2 * w + 1 < ranges.length ? ranges[2 * w + 1] : 0;
    }
    Atomics.store(I, PENDING, this.threads - 1);
    this.seq = (this.seq + 1) & 0x3fffffff;
    Atomics.store(I, SEQ, this.seq);
    Atomics.notify(I, SEQ);
    let localError: unknown = null;
    if (ranges[0] < ranges[1]) {
      try { callLocal(ranges[0], ranges[1]); } catch (e) { localError = e; }
    }
    this.waitIdle();
    this.checkControl('after', id);
    this.lastKernel = id;
    if (localError) throw localError;
    const failed = Atomics.load(I, ERROR);
    if (failed) {
      Atomics.store(I, ERROR, 0);
      const bytes = new Uint8Array(I.buffer, I.byteOffset + MESSAGE_BYTE, MESSAGE_BYTES);
      const end = bytes.indexOf(0);
      const text = new TextDecoder().decode(bytes.slice(0, end < 0 ? bytes.length : end));
      throw new Error(`threads: worker ${failed - 1} failed in kernel ${this.kernels[id]}: ${text}`);
    }
  }

  /**
   * The control block must hold exactly what this thread last wrote there: a mismatch means a
   * kernel wrote outside its buffers into the block, and continuing would hang or run garbage.
   */
  private checkControl(when: 'before' | 'after', id: number): void {
    const seq = Atomics.load(this.I, SEQ);
    const pending = Atomics.load(this.I, PENDING);
    if (seq !== this.seq || pending !== 0) {
      const where = when === 'before'
        ? `between kernels ${this.lastKernel < 0 ? '(none)' : this.kernels[this.lastKernel]} and ${this.kernels[id]}`
        : `during kernel ${this.kernels[id]}`;
      this.failure = new Error(`threads: the pool's control block was overwritten ${where} (sequence ${seq}, expected ${this.seq}; pending ${pending}): a kernel wrote outside its buffers; the pool is unusable`);
      throw this.failure;
    }
  }

  private waitIdle(): void {
    const { I } = this;
    let pending = Atomics.load(I, PENDING);
    for (let i = 0; pending !== 0 && i < this.spin; i++) pending = Atomics.load(I, PENDING);
    const start = Date.now();
    while (pending !== 0) {
      if (this.canBlock) {
        try {
          Atomics.wait(I, PENDING, pending, 1000);
        } catch {
          this.canBlock = false; // a browser's main thread may not block: poll instead
        }
      }
      pending = Atomics.load(I, PENDING);
      if (pending < 0) return; // reported by checkControl
      if (pending !== 0 && Date.now() - start > this.timeoutMs) {
        this.failure = new Error(`threads: ${pending} worker(s) did not finish kernel ${this.kernels[I[KERNEL]]} within ${this.timeoutMs} ms (a worker died?); the pool is unusable, create a new backend`);
        throw this.failure;
      }
    }
  }

  /** Times a worker woke up without a new dispatch (diagnostics; such wake-ups are ignored). */
  get spuriousWakeups(): number {
    return Atomics.load(this.I, SPURIOUS);
  }

  /** Stop the workers. The pool is unusable afterwards. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    Atomics.store(this.I, SEQ, -1);
    Atomics.notify(this.I, SEQ);
    for (const w of this.workers) w.terminate();
  }
}
