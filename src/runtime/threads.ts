/**
 * Choosing a thread count: validation, the host's core count, and the single-threaded fallback
 * where shared memory is unavailable (a browser page that is not cross-origin isolated).
 */
import { hardwareConcurrency } from './workers.js';
import { MAX_THREADS } from './pool.js';

const warned = new Set<string>();

/** Warn once per distinct message (a training loop must not repeat a warning every step). */
export function warnOnce(message: string): void {
  if (warned.has(message)) return;
  warned.add(message);
  console.warn(message);
}

/** Whether this host can share a WebAssembly memory between threads. */
export function canShareMemory(): boolean {
  if (typeof SharedArrayBuffer === 'undefined') return false;
  const g = globalThis as { crossOriginIsolated?: boolean; document?: unknown };
  // pages (and their workers) expose crossOriginIsolated; server runtimes do not
  if (g.crossOriginIsolated === false) return false;
  try {
    new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true });
    return true;
  } catch {
    return false;
  }
}

/** Check a requested thread count: an integer in [1, 256]. `who` names the option in the error. */
export function validateThreads(threads: number, who = 'threads'): number {
  if (typeof threads !== 'number' || !Number.isInteger(threads) || threads < 1 || threads > MAX_THREADS) {
    throw new Error(`${who}: threads must be an integer from 1 to ${MAX_THREADS}, got ${String(threads)}`);
  }
  return threads;
}

/**
 * The thread count to use for a request: validated; 1 (with a warning, once) where memory cannot
 * be shared; more than the host's cores works but warns (oversubscription slows every thread).
 */
export async function resolveThreads(threads: number, who = 'threads'): Promise<number> {
  validateThreads(threads, who);
  if (threads === 1) return 1;
  if (!canShareMemory()) {
    warnOnce(`${who}: SharedArrayBuffer is unavailable (in a browser, serve the page cross-origin isolated with COOP/COEP headers); running single-threaded`);
    return 1;
  }
  const cores = await hardwareConcurrency();
  if (threads > cores) warnOnce(`${who}: ${threads} threads on ${cores} cores (oversubscribed: expect it to be slower than ${cores})`);
  return threads;
}

/** The default thread count: the cores the host reports, and 1 where memory cannot be shared. */
export async function defaultThreads(): Promise<number> {
  if (!canShareMemory()) return 1;
  return Math.min(MAX_THREADS, Math.max(1, await hardwareConcurrency()));
}
