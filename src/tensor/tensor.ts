/**
 * `Tensor`: a handle to a region of backend memory, never the memory itself.
 *
 * A tensor is `{ offset, shape, kind, generation }`. Parameters (`kind: 'param'`) live in the
 * parameter block and are valid for the life of the heap; activations (`kind: 'activation'`)
 * live in the per-step arena and die when the arena is reset (DESIGN.md decisions 1-2).
 * Using a dead activation throws an Error that says so, instead of reading garbage.
 */
import type { Floats, Ptr } from '../backend/backend.js';
import { backward as runBackward } from '../autograd/backward.js';
import type { Heap } from './heap.js';

/** Where a tensor lives: the static parameter block, or the per-step arena. */
export type TensorKind = 'param' | 'activation';

/** What a tensor's elements hold: floats, or integers stored with `writeIndices` (token ids, targets). */
export type TensorDtype = 'float' | 'index';

/** `(2,3,5)`: how shapes are printed in error messages. */
export function formatShape(shape: readonly number[]): string {
  return `(${shape.join(',')})`;
}

/** Number of elements of a shape (1 for the scalar shape `[]`). Throws on a non-integer or negative dim. */
export function shapeSize(shape: readonly number[], what = 'shape'): number {
  let n = 1;
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new Error(`${what}: invalid shape ${formatShape(shape)}; dims must be non-negative integers`);
    n *= d;
  }
  return n;
}

export class Tensor {
  /** Element offset of the first element in backend memory (0 until a parameter is materialized). */
  offset: Ptr;
  /** Dimensions, outermost first. `[]` is a scalar. */
  readonly shape: readonly number[];
  /** Number of elements. */
  readonly size: number;
  /** `'param'` (parameter block) or `'activation'` (per-step arena). */
  readonly kind: TensorKind;
  /** `'float'`, or `'index'` for integer tensors made with `heap.indices`. */
  readonly dtype: TensorDtype;
  /** Arena generation (step) this activation belongs to; -1 for parameters. */
  readonly generation: number;
  /** Parameter name (`model.layers.0.self_attn.q_proj.weight`), or `''` for activations. */
  readonly name: string;
  /** Whether gradients flow to this tensor. Parameters: true; op outputs: true when recorded on the tape. */
  requiresGrad: boolean;
  /** @internal Element offset of this tensor's gradient; 0 until one is allocated (activations) or materialized (params). */
  gradPtr: Ptr = 0;
  /** @internal Smallest and largest value of an index tensor (validated by embedding / crossEntropy). */
  indexRange: [number, number] = [0, 0];
  /** @internal */
  heapRef: Heap | null;

  /** @internal Tensors are made by `Heap` (activations) and `ParameterSet` (parameters). */
  constructor(init: {
    heap: Heap | null;
    offset: Ptr;
    shape: readonly number[];
    kind: TensorKind;
    generation: number;
    dtype?: TensorDtype;
    name?: string;
    requiresGrad?: boolean;
  }) {
    this.heapRef = init.heap;
    this.offset = init.offset;
    this.shape = Object.freeze([...init.shape]);
    this.size = shapeSize(init.shape);
    this.kind = init.kind;
    this.generation = init.generation;
    this.dtype = init.dtype ?? 'float';
    this.name = init.name ?? '';
    this.requiresGrad = init.requiresGrad ?? false;
  }

  /** The heap this tensor lives in. Throws for a parameter that was never materialized. */
  get heap(): Heap {
    if (this.heapRef === null) {
      throw new Error(`parameter ${this.name} ${formatShape(this.shape)} is not materialized; call params.materialize(heap, rng) before using the model`);
    }
    return this.heapRef;
  }

  /** Number of dimensions. */
  get rank(): number {
    return this.shape.length;
  }

  /** `'name (2,3)'` or `'(2,3)'`, for messages. */
  describe(): string {
    return this.name ? `${this.name} ${formatShape(this.shape)}` : formatShape(this.shape);
  }

  /**
   * The gradient of this tensor as a tensor handle (same shape), or `null` when none was
   * computed. Parameters' gradients live in the gradient block; activations' in the arena.
   */
  get grad(): Tensor | null {
    if (this.gradPtr === 0) return null;
    this.heap.check(this, 'grad');
    return new Tensor({
      heap: this.heap,
      offset: this.gradPtr,
      shape: this.shape,
      kind: this.kind,
      generation: this.generation,
      name: this.name ? `${this.name}.grad` : '',
    });
  }

  /** Read this tensor's values (a copy). Call before the step's arena reset for activations. */
  data(): Promise<Floats> {
    this.assertFloat('data');
    this.heap.check(this, 'data');
    return this.heap.backend.read(this.offset, this.size);
  }

  /** Synchronous `data()` for CPU backends (`js`, `wasm`). */
  dataSync(): Floats {
    this.assertFloat('dataSync');
    this.heap.check(this, 'dataSync');
    return this.heap.backend.readSync(this.offset, this.size);
  }

  /** The single value of a size-1 tensor (a loss). */
  async item(): Promise<number> {
    this.assertScalar('item');
    return (await this.data())[0]!;
  }

  /** Synchronous `item()` for CPU backends. */
  itemSync(): number {
    this.assertScalar('itemSync');
    return this.dataSync()[0]!;
  }

  /** Read back an index tensor (token ids, targets). */
  indicesSync(): Int32Array {
    if (this.dtype !== 'index') throw new Error(`indicesSync: tensor ${this.describe()} holds floats; use data() or dataSync()`);
    this.heap.check(this, 'indicesSync');
    return this.heap.backend.readIndices(this.offset, this.size);
  }

  /**
   * Backpropagate from this scalar: seeds d(this) = 1 and runs the recorded ops in reverse,
   * accumulating into every parameter's gradient. Clears the tape.
   */
  backward(): void {
    runBackward(this);
  }

  private assertFloat(op: string): void {
    if (this.dtype === 'index') throw new Error(`${op}: tensor ${this.describe()} holds indices; use indicesSync()`);
  }

  private assertScalar(op: string): void {
    if (this.size !== 1) throw new Error(`${op}: tensor ${this.describe()} has ${this.size} elements; item() needs exactly one`);
  }
}
