/**
 * `Heap`: the llm.c memory plan over one backend's flat memory (DESIGN.md decision 2).
 *
 *   [0, base)                reserved by the backend (pointer 0 means "absent")
 *   [base, staticTop)        static regions, laid out back to back: the parameter block,
 *                            the gradient block (same layout), optimizer state (m, v), ...
 *   [staticTop, arenaTop)    the per-step arena: activations, saved scratch, activation grads
 *
 * The arena is a bump allocator (16-element aligned) that `resetArena()` empties after each
 * optimizer step; its high-water mark is tracked, so after the first step memory never grows.
 * Static regions may only be allocated while the arena is empty (so they stay contiguous).
 */
import type { Backend, Ptr } from '../backend/backend.js';
import { Tape } from '../autograd/tape.js';
import { Tensor, formatShape, shapeSize } from './tensor.js';

/** Element alignment of every allocation (64 bytes in f32: one cache line, four v128 lanes x4). */
export const ALIGN = 16;

/** Round `n` up to a multiple of `ALIGN`. */
export function alignUp(n: number): number {
  return Math.ceil(n / ALIGN) * ALIGN;
}

/** A labelled static region, for `heap.stats()` and error messages. */
export interface StaticRegion {
  label: string;
  offset: Ptr;
  size: number;
}

/** Memory accounting, in elements. */
export interface HeapStats {
  /** Elements in static regions (parameters, gradients, optimizer state). */
  staticElements: number;
  /** Elements the arena holds right now. */
  arenaElements: number;
  /** The most elements the arena ever held. Constant after the first step of a fixed-shape loop. */
  arenaHighWater: number;
  /** Elements the backend can address (its memory size). */
  capacity: number;
  /** Completed arena resets (the step counter of activations). */
  generation: number;
  regions: readonly StaticRegion[];
}

/** Options of `heap.fromArray`. */
export interface FromArrayOptions {
  /** Compute a gradient for this tensor in `backward()` (read it with `t.grad`). Default false. */
  requiresGrad?: boolean;
}

export class Heap {
  /** The backend that owns the memory and runs the kernels. */
  readonly backend: Backend;
  /** The op tape of the current step (ops record here; `backward()` consumes it). */
  readonly tape = new Tape();
  private staticTop: Ptr;
  private arenaTop: Ptr;
  private highWater = 0;
  private gen = 0;
  private readonly regionList: StaticRegion[] = [];
  /**
   * Activations below this offset may not receive a new gradient (0: no limit). Set while a
   * block's backward runs in a region that is released afterwards (src/autograd/checkpoint.ts):
   * a gradient allocated there for an activation made before the block would be freed before
   * that activation's producer reads it, so `gradOf` refuses it with an error that names the fix.
   */
  gradientFloor: Ptr = 0;

  constructor(backend: Backend) {
    this.backend = backend;
    this.staticTop = alignUp(Math.max(backend.base, 1));
    this.arenaTop = this.staticTop;
  }

  /** Number of arena resets so far: activations made now carry this generation ("step"). */
  get generation(): number {
    return this.gen;
  }

  /**
   * Allocate `n` elements in the static region (they live as long as the heap).
   * Only allowed while the arena is empty: build the model and optimizer before the first step.
   * The memory is NOT cleared.
   */
  allocStatic(n: number, label: string): Ptr {
    if (!Number.isInteger(n) || n < 0) throw new Error(`allocStatic(${label}): size must be a non-negative integer, got ${n}`);
    if (this.arenaTop !== this.staticTop) {
      throw new Error(
        `allocStatic(${label}): the arena holds ${this.arenaTop - this.staticTop} elements of step ${this.gen}; ` +
          'static memory (parameters, optimizer state) must be allocated while the arena is empty — ' +
          'create the model and optimizer before the first forward, or call heap.resetArena() first',
      );
    }
    const p = this.staticTop;
    this.ensure(p + n);
    this.staticTop = alignUp(p + n);
    this.arenaTop = this.staticTop;
    this.regionList.push({ label, offset: p, size: n });
    return p;
  }

  /** Allocate `n` uninitialised elements in the arena (valid until `resetArena()`). */
  alloc(n: number): Ptr {
    const p = this.arenaTop;
    this.ensure(p + n);
    this.arenaTop = alignUp(p + n);
    const used = this.arenaTop - this.staticTop;
    if (used > this.highWater) this.highWater = used;
    return p;
  }

  /** Allocate `n` zeroed elements in the arena. */
  allocZeroed(n: number): Ptr {
    const p = this.alloc(n);
    if (n > 0) this.backend.fill(p, n, 0);
    return p;
  }

  /**
   * Free every activation at once: the end of a step, after the optimizer. Tensors made before
   * become invalid (using them throws); the tape is cleared.
   */
  resetArena(): void {
    this.arenaTop = this.staticTop;
    this.gradientFloor = 0;
    this.gen++;
    this.tape.clear();
  }

  /**
   * The arena's current top, for `releaseArenaTo` (gradient checkpointing frees a block's
   * activations once its output is copied out; src/autograd/checkpoint.ts).
   */
  arenaMark(): Ptr {
    return this.arenaTop;
  }

  /**
   * Free everything allocated in the arena since `mark` (a value of `arenaMark()` of this step).
   * The caller guarantees no tensor allocated after the mark is used again; the high-water mark
   * keeps the peak.
   */
  releaseArenaTo(mark: Ptr): void {
    if (!(mark >= this.staticTop && mark <= this.arenaTop)) {
      throw new Error(`releaseArenaTo: mark ${mark} is outside the arena [${this.staticTop}, ${this.arenaTop}] of step ${this.gen}; take it with arenaMark() in this step`);
    }
    this.arenaTop = mark;
  }

  /** An uninitialised activation tensor of `shape` in the arena. */
  empty(shape: readonly number[]): Tensor {
    const n = shapeSize(shape, 'empty');
    return new Tensor({ heap: this, offset: this.alloc(n), shape, kind: 'activation', generation: this.gen });
  }

  /** A zero-filled activation tensor. */
  zeros(shape: readonly number[]): Tensor {
    const t = this.empty(shape);
    if (t.size > 0) this.backend.fill(t.offset, t.size, 0);
    return t;
  }

  /** An activation tensor holding a copy of `data` (length must equal the shape's size). */
  fromArray(data: ArrayLike<number>, shape: readonly number[], options: FromArrayOptions = {}): Tensor {
    const n = shapeSize(shape, 'fromArray');
    if (data.length !== n) throw new Error(`fromArray: ${data.length} values do not fill shape ${formatShape(shape)} (${n} elements)`);
    const t = this.empty(shape);
    this.backend.write(t.offset, data);
    t.requiresGrad = options.requiresGrad ?? false;
    return t;
  }

  /**
   * An integer tensor (token ids, targets) stored with `writeIndices`. The range of the values
   * is remembered so ops can reject out-of-range ids before a kernel reads out of bounds.
   */
  indices(data: Int32Array, shape: readonly number[]): Tensor {
    const n = shapeSize(shape, 'indices');
    if (data.length !== n) throw new Error(`indices: ${data.length} values do not fill shape ${formatShape(shape)} (${n} elements)`);
    const t = new Tensor({ heap: this, offset: this.alloc(n), shape, kind: 'activation', generation: this.gen, dtype: 'index' });
    let lo = 0;
    let hi = 0;
    for (let i = 0; i < n; i++) {
      const v = data[i]!;
      if (i === 0 || v < lo) lo = v;
      if (i === 0 || v > hi) hi = v;
    }
    t.indexRange = [lo, hi];
    this.backend.writeIndices(t.offset, data);
    return t;
  }

  /**
   * Throw if `t` cannot be used by `op`: an activation from an earlier step (its arena was
   * reset), or a tensor of another heap.
   */
  check(t: Tensor, op: string, argName = 'tensor'): void {
    if (t.heapRef !== this) {
      if (t.heapRef === null) void t.heap; // throws "not materialized"
      throw new Error(`${op}: ${argName} ${t.describe()} belongs to a different heap (backend); tensors of one computation must share a heap`);
    }
    if (t.kind === 'activation' && t.generation !== this.gen) {
      throw new Error(
        `${op}: ${argName} ${t.describe()} is a tensor from step ${t.generation} used after arena reset (now step ${this.gen}); ` +
          'read values with await t.data() before the step ends, or recompute it',
      );
    }
  }

  /**
   * The gradient pointer of `t`, allocating a zeroed one in the arena on first use (activations).
   * Parameters' gradients are in the gradient block (set when the parameter set is materialized).
   */
  gradOf(t: Tensor): Ptr {
    if (t.gradPtr === 0) {
      if (t.kind === 'param') throw new Error(`backward: parameter ${t.describe()} has no gradient slot (was it materialized?)`);
      if (t.offset < this.gradientFloor) {
        throw new Error(
          `backward: ${t.describe()} was made before a checkpointed (or gradient-scoped) block and takes a gradient inside it; ` +
            'pass it in the inputs of checkpoint / gradientScope / forwardBlocks, so that its gradient outlives the block',
        );
      }
      t.gradPtr = this.allocZeroed(t.size);
    }
    return t.gradPtr;
  }

  /** Memory accounting, in elements. */
  stats(): HeapStats {
    return {
      staticElements: this.staticTop - alignUp(Math.max(this.backend.base, 1)),
      arenaElements: this.arenaTop - this.staticTop,
      arenaHighWater: this.highWater,
      capacity: this.backend.capacity,
      generation: this.gen,
      regions: [...this.regionList],
    };
  }

  /** Grow the backend's memory so `[0, end)` is addressable, with headroom so the first step grows it a few times, not per op. */
  private ensure(end: number): void {
    const cap = this.backend.capacity;
    if (end <= cap) return;
    const headroom = Math.max(end + (end >> 3), cap + (cap >> 2), 65536);
    this.backend.reserve(alignUp(headroom));
  }
}
