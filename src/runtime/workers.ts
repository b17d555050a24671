/**
 * Spawning a worker from source text, on every host (DESIGN.md decision 7: the only place that
 * knows how a worker is made). Node uses `worker_threads` (`eval: true`); Deno, Bun and browsers
 * use a module `Worker` over a Blob URL. The source runs unchanged in both: it finds its message
 * port through `globalThis.__bitnetPort` (Node) or `self` (web workers).
 */

export interface WorkerHandle {
  postMessage(message: unknown): void;
  /** Called once with the first message the worker sends. */
  onMessage(fn: (data: unknown) => void): void;
  /** Called when the worker fails to start or throws outside our protocol. */
  onError(fn: (error: Error) => void): void;
  /** Let the host exit while this worker is idle (Node); a no-op elsewhere. */
  unref(): void;
  terminate(): void;
}

/** True in Node (and not in Deno or Bun, which also define `process.versions` but run web Workers natively). */
export function isNodeHost(): boolean {
  const g = globalThis as { process?: { versions?: { node?: string; bun?: string } }; Deno?: unknown };
  return !!g.process?.versions?.node && !g.process.versions.bun && g.Deno === undefined;
}

/** Number of logical cores the host reports (1 where it does not say). */
export async function hardwareConcurrency(): Promise<number> {
  const nav = (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator;
  if (nav?.hardwareConcurrency) return nav.hardwareConcurrency;
  if (isNodeHost()) {
    const os = await import('node:os');
    return typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
  }
  return 1;
}

/** Start a worker running `source` (plain JavaScript, classic-script compatible). */
export async function spawnWorker(source: string): Promise<WorkerHandle> {
  if (isNodeHost()) {
    const { Worker } = await import('node:worker_threads');
    const prelude = "globalThis.__bitnetPort = require('node:worker_threads').parentPort;\n";
    const w = new Worker(prelude + source, { eval: true });
    return {
      postMessage: (m) => w.postMessage(m),
      onMessage: (fn) => void w.once('message', fn),
      onError: (fn) => void w.on('error', fn),
      unref: () => w.unref(),
      terminate: () => void w.terminate(),
    };
  }
  const WorkerCtor = (globalThis as { Worker?: typeof Worker }).Worker;
  if (!WorkerCtor) throw new Error('threads: this host has no Worker; use threads: 1');
  const url = URL.createObjectURL(new Blob([source], { type: 'text/javascript' }));
  const w = new WorkerCtor(url, { type: 'module' });
  return {
    postMessage: (m) => w.postMessage(m),
    onMessage: (fn) => w.addEventListener('message', (e) => fn((e as MessageEvent).data), { once: true }),
    onError: (fn) => w.addEventListener('error', (e) => fn(new Error((e as ErrorEvent).message ?? 'worker error'))),
    unref: () => { (w as unknown as { unref?: () => void }).unref?.(); },
    terminate: () => { w.terminate(); URL.revokeObjectURL(url); },
  };
}
