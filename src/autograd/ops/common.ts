/**
 * Shared plumbing of the ops: argument checks that name the op and both shapes, and
 * `recordOp`, which puts an op on the tape only when a gradient can flow through it.
 */
import type { Heap } from '../../tensor/heap.js';
import { formatShape, type Tensor } from '../../tensor/tensor.js';
import { isGradEnabled } from '../tape.js';

export { formatShape };

/** Check every argument is alive, on one heap, and of the right dtype; return that heap. */
export function checkArgs(op: string, args: Record<string, Tensor | null | undefined>, indexArgs: readonly string[] = []): Heap {
  let heap: Heap | null = null;
  for (const [argName, t] of Object.entries(args)) {
    if (t === null || t === undefined) continue;
    if (heap === null) heap = t.heap;
    heap.check(t, op, argName);
    const wantIndex = indexArgs.includes(argName);
    if (wantIndex && t.dtype !== 'index') throw new Error(`${op}: ${argName} ${t.describe()} must be an index tensor; make it with heap.indices(Int32Array, shape)`);
    if (!wantIndex && t.dtype === 'index') throw new Error(`${op}: ${argName} ${t.describe()} is an index tensor; it needs float values`);
  }
  if (heap === null) throw new Error(`${op}: no tensor arguments`);
  return heap;
}

/** Throw `${op}: ${message}` unless `cond`. */
export function assertArg(cond: boolean, op: string, message: string): void {
  if (!cond) throw new Error(`${op}: ${message}`);
}

/** Throw unless `a` and `b` have identical shapes. */
export function requireSameShape(op: string, aName: string, a: Tensor, bName: string, b: Tensor): void {
  const same = a.shape.length === b.shape.length && a.shape.every((d, i) => d === b.shape[i]);
  if (!same) throw new Error(`${op}: ${aName} ${formatShape(a.shape)} and ${bName} ${formatShape(b.shape)} must have the same shape`);
}

/** Throw unless `t` has exactly `rank` dims. */
export function requireRank(op: string, name: string, t: Tensor, rank: number, layout: string): void {
  if (t.rank !== rank) throw new Error(`${op}: ${name} must be ${layout} (rank ${rank}), got ${formatShape(t.shape)}`);
}

/** Throw unless `n` is a finite number (hyperparameters such as eps or a scale factor). */
export function requireFinite(op: string, name: string, n: number): void {
  if (typeof n !== 'number' || !Number.isFinite(n)) throw new Error(`${op}: ${name} must be a finite number, got ${n}`);
}

/** Leading dims flattened: a (..., C) tensor as N rows of C. */
export function rows(t: Tensor): number {
  return t.rank === 0 ? 1 : t.size / t.shape[t.rank - 1]!;
}

/**
 * Put an op on the tape when grad mode is on and some input requires grad; mark `out` as
 * requiring grad. `backward` runs only if `out` received a gradient.
 * Returns whether it recorded (ops skip saving backward-only state otherwise).
 */
export function recordOp(name: string, inputs: readonly (Tensor | null | undefined)[], out: Tensor, backward: () => void): boolean {
  if (!willRecord(inputs)) return false;
  out.requiresGrad = true;
  out.heap.tape.record({
    name,
    backward: () => {
      if (out.gradPtr !== 0) backward();
    },
  });
  return true;
}

/** Whether `recordOp` with these inputs will record (grad mode on, some input requires grad). */
export function willRecord(inputs: readonly (Tensor | null | undefined)[]): boolean {
  return isGradEnabled() && inputs.some((t) => t?.requiresGrad);
}

/** Whether `t` should receive a gradient in backward. */
export function wantsGrad(t: Tensor | null | undefined): t is Tensor & { requiresGrad: true } {
  return !!t && t.requiresGrad;
}
