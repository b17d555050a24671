/**
 * Where a training step goes: a profiling layer around the `Backend` and the op tape, with no
 * change inside kernels.
 *
 *   backend proxy     every Backend method call timed, by method (kernel) and phase
 *   tape              forward time of each op kind (from the previous op's record to its own, the
 *                     op's kernels and JS), backward time of each op kind (its backward closure)
 *   wasm internals    when the backend has them (duck-typed): the raw WASM export calls (compute on
 *                     the calling thread) and the thread pool's `run` (the caller's wait for workers)
 *
 * Derived numbers: dispatch overhead = backend call time − WASM compute on the calling thread −
 * waiting for workers (argument checks, row splits, the pool's signalling); thread-pool idle =
 * the calling thread's wait for workers inside threaded kernels, and workers' idle time outside
 * threaded kernels (a worker is busy at most while a threaded kernel runs).
 *
 * Only the inside of `Trainer.trainStep` is measured (the trainer's method is wrapped in place):
 * evaluation, checkpoint saves and QAT hooks between steps are not counted, nor kernels run with
 * grad off. A window of `steps` steps after `skip` warm-up steps is measured.
 */
import type { Backend } from '../backend/backend.js';
import { isGradEnabled, type Tape, type TapeEntry } from '../autograd/tape.js';
import type { StepInfo } from '../train/callbacks.js';

/** The part of a `Trainer` the profiler wraps. */
export interface SteppingTrainer {
  trainStep(): StepInfo;
}

/** Phase of a step a kernel ran in. */
export type StepPhase = 'forward' | 'backward' | 'update';

/** One row of a profile: a name, calls, and total milliseconds over the window. */
export interface ProfileRow {
  name: string;
  phase: StepPhase;
  calls: number;
  ms: number;
}

/** What `--profile` prints and logs (`{"event":"profile", ...}`). Times are totals over `steps` steps, in ms. */
export interface ProfileReport {
  steps: number;
  /** First and last step measured. */
  fromStep: number;
  toStep: number;
  /** Wall time of the measured steps. */
  stepMs: number;
  /** Per op kind and phase (the tape's op names). */
  ops: ProfileRow[];
  /** Per Backend method and phase. */
  kernels: ProfileRow[];
  /** Totals: time in backend calls, WASM compute on the calling thread, dispatch overhead, time outside any op. */
  backendMs: number;
  /** null where the backend does not expose its WASM exports (the js backend). */
  computeMs: number | null;
  dispatchMs: number | null;
  /** Step time not inside a forward op, a backward op or an update kernel (data sampling, JS between ops). */
  untrackedMs: number;
  /** Thread pool (null without one): threads, time in threaded kernels, the caller's wait for workers, workers' idle time outside threaded kernels (per worker). */
  pool: { threads: number; threadedMs: number; callerWaitMs: number; workerIdleMs: number } | null;
}

const now = (): number => (globalThis.performance ?? Date).now();

interface Acc { calls: number; ms: number }

/** The wasm backend's internals the profiler instruments when they are there. */
interface WasmInternals {
  k?: { kernels?: Record<string, (...a: number[]) => unknown> };
  pool?: { threads: number; run: (id: number, args: ArrayLike<number>, ranges: ArrayLike<number>, callLocal: (r0: number, r1: number) => void, perThread?: unknown) => void } | null;
}

export class StepProfiler {
  private active = false;
  private measured = 0;
  private stepsSeen = 0;
  private fromStep = -1;
  private toStep = -1;
  private stepMs = 0;
  private phase: StepPhase = 'forward';
  private lastRecord = 0;
  private depth = 0;
  /** Backward closures running (a checkpointed block records its recomputed forward inside one). */
  private inBackward = 0;
  private readonly ops = new Map<string, Acc>();
  private readonly kernels = new Map<string, Acc>();
  private backendMs = 0;
  private computeMs = 0;
  private hasCompute = false;
  private threadedMs = 0;
  private localMs = 0;
  private threads = 0;
  private forwardOpMs = 0;
  private backwardOpMs = 0;
  private updateMs = 0;

  /** Measure `steps` steps after `skip` warm-up steps (default 1). */
  constructor(readonly steps: number, readonly skip = 1) {
    if (!Number.isInteger(steps) || steps < 1) throw new Error(`profiler: steps must be a positive integer, got ${steps}`);
  }

  /** Whether the window is complete. */
  get done(): boolean {
    return this.measured >= this.steps;
  }

  /** A Backend that times every method call (pass it to `new Heap`); instruments the wasm exports and thread pool in place. */
  wrapBackend<B extends Backend>(backend: B): B {
    this.instrumentWasm(backend as unknown as WasmInternals);
    const wrappers = new Map<PropertyKey, unknown>();
    return new Proxy(backend, {
      get: (target, prop) => {
        const v = Reflect.get(target, prop, target) as unknown;
        if (typeof v !== 'function' || prop === 'constructor') return v;
        let w = wrappers.get(prop);
        if (!w) {
          const fn = v as (...a: unknown[]) => unknown;
          const name = String(prop);
          w = (...args: unknown[]): unknown => {
            if (!this.counting()) return fn.apply(target, args);
            this.depth++;
            const t0 = now();
            try {
              return fn.apply(target, args);
            } finally {
              this.depth--;
              const ms = now() - t0;
              this.add(this.kernels, `${name}|${this.phase}`, ms);
              this.backendMs += ms;
              if (this.phase === 'update') this.updateMs += ms;
            }
          };
          wrappers.set(prop, w);
        }
        return w;
      },
    });
  }

  /** Time forward and backward of each op recorded on `tape`. */
  attachTape(tape: Tape): void {
    const record = tape.record.bind(tape);
    const drain = tape.drainReversed.bind(tape);
    tape.record = (entry: TapeEntry): void => {
      const t = now();
      if (this.active && this.inBackward === 0) { // a recompute inside a backward counts as that backward
        this.phase = 'forward';
        const ms = t - this.lastRecord;
        this.add(this.ops, `${entry.name}|forward`, ms);
        this.forwardOpMs += ms;
      }
      this.lastRecord = t;
      record(entry);
    };
    tape.drainReversed = (): TapeEntry[] => {
      const entries = drain();
      if (!this.active || this.inBackward > 0) return entries; // a checkpointed block's inner backward: part of the enclosing op's
      this.phase = 'backward';
      return entries.map((e, i) => ({
        name: e.name,
        backward: () => {
          const t0 = now();
          this.inBackward++;
          try {
            e.backward();
          } finally {
            this.inBackward--;
            const ms = now() - t0;
            this.add(this.ops, `${e.name}|backward`, ms);
            this.backwardOpMs += ms;
            if (i === entries.length - 1) this.phase = 'update';
          }
        },
      }));
    };
  }

  /** Measure the window's calls of `trainer.trainStep()` (wrapped in place). */
  attachTrainer(trainer: SteppingTrainer): void {
    const step = trainer.trainStep.bind(trainer);
    trainer.trainStep = (): StepInfo => {
      this.active = this.stepsSeen >= this.skip && this.measured < this.steps;
      this.stepsSeen++;
      if (!this.active) return step();
      this.phase = 'forward';
      const t0 = now();
      this.lastRecord = t0;
      try {
        const info = step();
        this.measured++;
        if (this.fromStep < 0) this.fromStep = info.step;
        this.toStep = info.step;
        return info;
      } finally {
        this.stepMs += now() - t0;
        this.active = false;
      }
    };
  }

  /** The measurements so far. */
  report(): ProfileReport {
    const rows = (m: Map<string, Acc>): ProfileRow[] => [...m].map(([key, a]) => {
      const [name, phase] = key.split('|') as [string, StepPhase];
      return { name, phase, calls: a.calls, ms: a.ms };
    }).sort((a, b) => b.ms - a.ms);
    const waitMs = this.threadedMs - this.localMs;
    return {
      steps: this.measured,
      fromStep: this.fromStep,
      toStep: this.toStep,
      stepMs: this.stepMs,
      ops: rows(this.ops),
      kernels: rows(this.kernels),
      backendMs: this.backendMs,
      computeMs: this.hasCompute ? this.computeMs : null,
      dispatchMs: this.hasCompute ? this.backendMs - this.computeMs - (this.threads > 1 ? waitMs : 0) : null,
      untrackedMs: Math.max(0, this.stepMs - this.forwardOpMs - this.backwardOpMs - this.updateMs),
      pool: this.threads > 1 ? { threads: this.threads, threadedMs: this.threadedMs, callerWaitMs: waitMs, workerIdleMs: Math.max(0, this.stepMs - this.threadedMs) } : null,
    };
  }

  private counting(): boolean {
    return this.active && this.depth === 0 && isGradEnabled();
  }

  private add(m: Map<string, Acc>, key: string, ms: number): void {
    const a = m.get(key);
    if (a) {
      a.calls++;
      a.ms += ms;
    } else m.set(key, { calls: 1, ms });
  }

  private instrumentWasm(be: WasmInternals): void {
    const kernels = be.k?.kernels;
    if (kernels) {
      this.hasCompute = true;
      for (const name of Object.keys(kernels)) {
        const fn = kernels[name]!;
        kernels[name] = (...args: number[]): unknown => {
          if (!this.active || !isGradEnabled()) return fn(...args);
          const t0 = now();
          try {
            return fn(...args);
          } finally {
            this.computeMs += now() - t0;
          }
        };
      }
    }
    const pool = be.pool;
    if (pool && pool.threads > 1) {
      this.threads = pool.threads;
      const run = pool.run.bind(pool);
      pool.run = (id, args, ranges, callLocal, perThread) => {
        if (!this.active || !isGradEnabled()) return run(id, args, ranges, callLocal, perThread);
        const t0 = now();
        try {
          run(id, args, ranges, (r0, r1) => {
            const l0 = now();
            try {
              callLocal(r0, r1);
            } finally {
              this.localMs += now() - l0;
            }
          }, perThread);
        } finally {
          this.threadedMs += now() - t0;
        }
      };
    }
  }
}

const pct = (x: number, of: number): string => (of > 0 ? `${((100 * x) / of).toFixed(1)}%` : '-');
const ms = (x: number, steps: number): string => `${(x / Math.max(1, steps)).toFixed(2)} ms`;

/** The profile as the table `--profile` prints (per-step averages, shares of the step). */
export function formatProfile(r: ProfileReport, top = 12): string {
  if (r.steps === 0) return 'profile: no step was measured (the run ended before the window; lower --profile-steps or raise --iters)';
  const lines = [`profile: steps ${r.fromStep}-${r.toStep} (${r.steps} steps), ${ms(r.stepMs, r.steps)} a step`];
  const table = (title: string, rows: ProfileRow[]): void => {
    lines.push(`  ${title}`);
    for (const row of rows.slice(0, top)) {
      lines.push(`    ${`${row.name} (${row.phase})`.padEnd(40)} ${ms(row.ms, r.steps).padStart(10)} ${pct(row.ms, r.stepMs).padStart(6)}  ${(row.calls / r.steps).toFixed(1)} calls`);
    }
    if (rows.length > top) lines.push(`    … ${rows.length - top} more (log.jsonl "profile" event)`);
  };
  table('by op (forward: from the previous op to this one; backward: its closure)', r.ops);
  table('by kernel (Backend method)', r.kernels);
  lines.push(`  backend calls ${ms(r.backendMs, r.steps)} (${pct(r.backendMs, r.stepMs)})` +
    (r.computeMs !== null ? ` = WASM compute ${ms(r.computeMs, r.steps)} + dispatch overhead ${ms(r.dispatchMs!, r.steps)}` : '') +
    (r.pool ? ` + waiting for workers ${ms(r.pool.callerWaitMs, r.steps)}` : ''));
  if (r.pool) lines.push(`  thread pool: ${r.pool.threads} threads; threaded kernels ${ms(r.pool.threadedMs, r.steps)}; each worker idle ≥ ${ms(r.pool.workerIdleMs, r.steps)} (${pct(r.pool.workerIdleMs, r.stepMs)}) outside them`);
  lines.push(`  outside ops and update kernels (data, JS between ops): ${ms(r.untrackedMs, r.steps)} (${pct(r.untrackedMs, r.stepMs)})`);
  return lines.join('\n');
}
