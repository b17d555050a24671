/**
 * `ParameterSet`: named parameters laid out in one contiguous block (DESIGN.md decision 2).
 *
 * Modules register parameters by name (Hugging Face LLaMA-style, e.g.
 * `model.layers.0.self_attn.q_proj.weight`) with a shape, an init and a weight-decay flag.
 * `materialize` lays them out — weight-decayed first, then the rest (norms, biases,
 * embeddings) — so AdamW runs as two fused calls, and allocates a gradient block of the same
 * layout: the gradient of the element at `p` is at `p + gradOffset`.
 */
import type { Floats, Ptr } from '../backend/backend.js';
import type { Rng } from '../util/rng.js';
import { type Heap, alignUp } from './heap.js';
import { Tensor, formatShape, shapeSize } from './tensor.js';

/** How a parameter starts: N(0, std²), all zeros, or all ones. */
export type Init = { kind: 'normal'; std: number } | { kind: 'zeros' } | { kind: 'ones' };

/** Options of `ParameterSet.register`. */
export interface ParamOptions {
  init: Init;
  /** Apply AdamW weight decay (true for matrices; false for norms, biases, embeddings). */
  decay: boolean;
}

/** A contiguous range of the parameter block, relative to its start. */
export interface BlockRange {
  start: number;
  length: number;
}

interface Group {
  parts: Tensor[];
  whole: Tensor | null;
  opts: ParamOptions;
}

/** Values written per call by `writeInit`: a 2^20-element f64 buffer (8 MB) however large the tensor. */
const INIT_CHUNK = 1 << 20;

/**
 * Write `t`'s initial values, drawn from `rng` in element order a chunk at a time, so the values
 * are those of one draw over the whole tensor without a host copy of it (a 49,152 × 576 embedding
 * would need 226 MB of f64). Called in registration order: every backend and runtime draws the
 * same numbers.
 */
function writeInit(t: Tensor, init: Init, rng: Rng): void {
  if (init.kind === 'zeros') return;
  if (init.kind === 'normal' && !(Number.isFinite(init.std) && init.std >= 0)) throw new Error(`init of ${t.name}: std must be a finite number >= 0, got ${init.std}`);
  const be = t.heap.backend;
  const v = new Float64Array(Math.min(t.size, INIT_CHUNK));
  for (let off = 0; off < t.size; off += v.length) {
    const part = off + v.length <= t.size ? v : v.subarray(0, t.size - off);
    if (init.kind === 'normal') rng.fillNormal(part, 0, init.std);
    else part.fill(1);
    be.write(t.offset + off, part);
  }
}

export class ParameterSet {
  private readonly groups: Group[] = [];
  private readonly byName = new Map<string, Tensor>();
  private heapRef: Heap | null = null;
  private paramBase: Ptr = 0;
  private gradBase: Ptr = 0;
  private size = 0;
  private decayLength = 0;
  private frozenSet = false;

  /**
   * Freeze the whole set before `materialize`: no gradient block is allocated and no tensor
   * requires grad (a PEFT model's base, src/peft/model.ts: gradients flow through it to the
   * adapters, never into it). `gradOffset` then throws; `zeroGrad` does nothing.
   */
  freeze(): this {
    if (this.heapRef) throw new Error('freeze: the parameter set is already materialized; freeze it before materialize()');
    this.frozenSet = true;
    for (const t of this.byName.values()) t.requiresGrad = false;
    for (const g of this.groups) if (g.whole) g.whole.requiresGrad = false;
    return this;
  }

  /** Whether `freeze` ran (no gradient block). */
  get frozen(): boolean {
    return this.frozenSet;
  }

  /** Register one parameter. Returns its tensor handle (usable once the set is materialized). */
  register(name: string, shape: readonly number[], opts: ParamOptions): Tensor {
    return this.registerStacked([name], shape, opts).parts[0]!;
  }

  /**
   * Register parameters of one shape laid out back to back, and a `whole` handle over all of
   * them, of shape `(k·shape[0], ...shape[1:])`. Attention uses it to keep HF names
   * (`q_proj`, `k_proj`, `v_proj`) while multiplying by one fused (3C, C) matrix.
   */
  registerStacked(names: readonly string[], shape: readonly number[], opts: ParamOptions): { parts: Tensor[]; whole: Tensor } {
    if (this.heapRef) throw new Error(`register ${names.join(', ')}: the parameter set is already materialized; register every parameter before materialize()`);
    if (names.length === 0) throw new Error('registerStacked: no names');
    if (shape.length === 0) throw new Error(`register ${names[0]}: a parameter needs at least one dim, got ${formatShape(shape)}`);
    shapeSize(shape, `register ${names[0]}`);
    const parts = names.map((name) => {
      if (this.byName.has(name)) throw new Error(`register ${name}: a parameter of that name already exists`);
      const t = new Tensor({ heap: null, offset: 0, shape, kind: 'param', generation: -1, name, requiresGrad: true });
      this.byName.set(name, t);
      return t;
    });
    const whole = names.length === 1
      ? parts[0]!
      : new Tensor({ heap: null, offset: 0, shape: [shape[0]! * names.length, ...shape.slice(1)], kind: 'param', generation: -1, name: names.join('+'), requiresGrad: true });
    this.groups.push({ parts, whole: names.length === 1 ? null : whole, opts });
    return { parts, whole };
  }

  /**
   * Allocate the parameter and gradient blocks on `heap` and initialise every parameter from
   * `rng`, drawing in registration order. Gradients start at zero. With `rng` null every
   * parameter stays 0: for a caller that writes all values next (loading a pretrained model,
   * where drawing 100M+ normal values would cost more than reading the file).
   */
  materialize(heap: Heap, rng: Rng | null): void {
    if (this.heapRef) throw new Error('materialize: the parameter set is already materialized');
    // layout: decayed groups first, then the rest; each group 16-element aligned
    const ordered = [...this.groups.filter((g) => g.opts.decay), ...this.groups.filter((g) => !g.opts.decay)];
    let cursor = 0;
    const rel = new Map<Group, number>();
    for (const g of ordered) {
      if (g === ordered.find((x) => !x.opts.decay)) this.decayLength = cursor;
      rel.set(g, cursor);
      cursor = alignUp(cursor + g.parts.length * g.parts[0]!.size);
    }
    if (ordered.every((g) => g.opts.decay)) this.decayLength = cursor;
    this.size = cursor;
    this.paramBase = heap.allocStatic(this.size, 'parameters');
    this.gradBase = this.frozenSet ? 0 : heap.allocStatic(this.size, 'gradients');
    const be = heap.backend;
    if (this.size > 0) {
      be.fill(this.paramBase, this.size, 0); // padding stays 0 in every block
      if (!this.frozenSet) be.fill(this.gradBase, this.size, 0);
    }
    this.heapRef = heap;
    for (const g of ordered) {
      let off = this.paramBase + rel.get(g)!;
      if (g.whole) this.bind(g.whole, heap, off);
      for (const t of g.parts) {
        this.bind(t, heap, off);
        off += t.size;
      }
    }
    // init in registration order, independent of the layout
    if (rng === null) return;
    for (const g of this.groups) {
      for (const t of g.parts) {
        writeInit(t, g.opts.init, rng);
      }
    }
  }

  private assertMaterialized(): void {
    if (!this.heapRef) throw new Error('ParameterSet: not materialized; call params.materialize(heap, rng) first');
  }

  private bind(t: Tensor, heap: Heap, offset: Ptr): void {
    t.heapRef = heap;
    t.offset = offset;
    t.gradPtr = this.frozenSet ? 0 : offset + (this.gradBase - this.paramBase);
    if (this.frozenSet) t.requiresGrad = false;
  }

  /** Whether `materialize` ran. */
  get materialized(): boolean {
    return this.heapRef !== null;
  }

  /** The heap the blocks live in (after `materialize`). */
  get heap(): Heap {
    if (!this.heapRef) throw new Error('ParameterSet: not materialized; call params.materialize(heap, rng) first');
    return this.heapRef;
  }

  /** The parameter called `name`. Throws, listing similar names, if there is none. */
  getParam(name: string): Tensor {
    const t = this.byName.get(name);
    if (!t) {
      const near = [...this.byName.keys()].filter((n) => n.split('.').pop() === name.split('.').pop()).slice(0, 5);
      throw new Error(`getParam: no parameter named ${name}${near.length ? ` (similar: ${near.join(', ')})` : ''}`);
    }
    return t;
  }

  /** Whether a parameter called `name` exists. */
  has(name: string): boolean {
    return this.byName.has(name);
  }

  /** Parameter names in registration order. */
  names(): string[] {
    return [...this.byName.keys()];
  }

  /** `[name, tensor]` pairs in registration order. */
  [Symbol.iterator](): IterableIterator<[string, Tensor]> {
    return this.byName.entries();
  }

  /** Number of parameters (elements, without alignment padding). */
  get count(): number {
    let n = 0;
    for (const t of this.byName.values()) n += t.size;
    return n;
  }

  /** Elements in each block, padding included (after `materialize`). */
  get blockSize(): number {
    this.assertMaterialized();
    return this.size;
  }

  /** Element offset of the parameter block. */
  get paramOffset(): Ptr {
    this.assertMaterialized();
    return this.paramBase;
  }

  /** Element offset of the gradient block. */
  get gradOffset(): Ptr {
    this.assertMaterialized();
    if (this.frozenSet) throw new Error('ParameterSet: a frozen set has no gradient block (freeze() ran); build the optimizer over the trainable set');
    return this.gradBase;
  }

  /** The weight-decayed part of every block: `[0, decayLength)`. */
  get decayRange(): BlockRange {
    this.assertMaterialized();
    return { start: 0, length: this.decayLength };
  }

  /** The part without weight decay (norms, biases, embeddings): `[decayLength, blockSize)`. */
  get noDecayRange(): BlockRange {
    this.assertMaterialized();
    return { start: this.decayLength, length: this.size - this.decayLength };
  }

  /** Set every gradient to zero: one `fill` over the gradient block. */
  zeroGrad(): void {
    if (this.size > 0 && !this.frozenSet) this.heap.backend.fill(this.gradBase, this.size, 0);
  }

  /** Copy every parameter's values out, by name (f32; an f64 backend's values are rounded). */
  async exportValues(): Promise<Map<string, Float32Array>> {
    return this.exportBlock(this.paramOffset);
  }

  /** Synchronous `exportValues` for CPU backends. */
  exportValuesSync(): Map<string, Float32Array> {
    return this.exportBlockSync(this.paramOffset);
  }

  /** Overwrite parameter values by name. Every name must exist with the same size; names missing from `values` are an error unless `partial`. */
  importValues(values: ReadonlyMap<string, ArrayLike<number>>, options: { partial?: boolean } = {}): void {
    this.importBlock(this.paramOffset, values, options);
  }

  /**
   * Read a block of this set's layout starting at `base` (parameters, gradients, or an
   * optimizer's m / v) as `name → values`. Used for checkpoints.
   */
  async exportBlock(base: Ptr): Promise<Map<string, Float32Array>> {
    const all = await this.heap.backend.read(base, this.blockSize);
    return this.splitBlock(all);
  }

  /** Synchronous `exportBlock` for CPU backends. */
  exportBlockSync(base: Ptr): Map<string, Float32Array> {
    return this.splitBlock(this.heap.backend.readSync(base, this.blockSize));
  }

  /** Write `name → values` into a block of this set's layout at `base`. */
  importBlock(base: Ptr, values: ReadonlyMap<string, ArrayLike<number>>, options: { partial?: boolean } = {}): void {
    const be = this.heap.backend;
    for (const name of values.keys()) {
      if (!this.byName.has(name)) throw new Error(`importValues: unknown parameter ${name}; the checkpoint is from a different model`);
    }
    for (const [name, t] of this.byName) {
      const v = values.get(name);
      if (!v) {
        if (options.partial) continue;
        throw new Error(`importValues: missing parameter ${name} ${formatShape(t.shape)}; the checkpoint is from a different model (or pass { partial: true })`);
      }
      if (v.length !== t.size) throw new Error(`importValues: ${name} has ${v.length} values but the model's ${formatShape(t.shape)} needs ${t.size}; the checkpoint is from a different model shape`);
      be.write(base + (t.offset - this.paramBase), v);
    }
  }

  private splitBlock(all: Floats): Map<string, Float32Array> {
    const out = new Map<string, Float32Array>();
    for (const [name, t] of this.byName) {
      const start = t.offset - this.paramBase;
      out.set(name, Float32Array.from(all.subarray(start, start + t.size)));
    }
    return out;
  }
}
