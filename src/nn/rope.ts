/**
 * `RotaryEmbedding`: the model's RoPE cos/sin table (LLaMA convention, like Hugging Face's
 * `LlamaRotaryEmbedding`), one per model and shared by every layer's attention.
 */
import { rope, ropeHeads } from '../autograd/ops/rope.js';
import type { RopeScaling } from '../backend/backend.js';
import type { Heap } from '../tensor/heap.js';
import { Tensor } from '../tensor/tensor.js';

/**
 * The (contextLength, headSize) table of `cos(t·θ_i)` then `sin(t·θ_i)` per position t,
 * `θ_i = theta^(-2i/headSize)`. It is a constant, not a parameter: it lives in a static region
 * of the heap (allocated by `materialize`, before the first step), is computed by the backend
 * (inside wasm for the wasm backend, so every runtime gets the same bits), receives no
 * gradient and is not saved in checkpoints.
 *
 * @example
 * const rotary = new RotaryEmbedding(64, 32).materialize(heap);
 * const y = attention(rotary.forward(qkv, heads), heads);
 */
export class RotaryEmbedding {
  readonly contextLength: number;
  readonly headSize: number;
  readonly theta: number;
  /** Hugging Face `rope_scaling` (`linear`, Llama 3.1's `llama3`), or null for plain RoPE. */
  readonly scaling: RopeScaling | null;
  private tableRef: Tensor | null = null;

  constructor(contextLength: number, headSize: number, theta = 10000, scaling: RopeScaling | null = null) {
    if (!Number.isInteger(contextLength) || contextLength <= 0) throw new Error(`RotaryEmbedding: contextLength must be a positive integer, got ${contextLength}`);
    if (!Number.isInteger(headSize) || headSize <= 0 || headSize % 2 !== 0) {
      throw new Error(`RotaryEmbedding: head size must be a positive even integer (RoPE rotates pairs (i, i + hs/2)), got ${headSize}; choose dim/heads even`);
    }
    if (!(Number.isFinite(theta) && theta > 0)) throw new Error(`RotaryEmbedding: theta must be a finite number > 0 (LLaMA uses 10000), got ${theta}`);
    this.contextLength = contextLength;
    this.headSize = headSize;
    this.theta = theta;
    this.scaling = scaling;
  }

  /**
   * Allocate the table in a static region of `heap` and compute it. Like parameters, this must
   * happen while the heap's arena is empty (before the first forward). Returns `this`.
   */
  materialize(heap: Heap): this {
    if (this.tableRef) throw new Error('RotaryEmbedding.materialize: the table is already materialized');
    const shape = [this.contextLength, this.headSize];
    const offset = heap.allocStatic(this.contextLength * this.headSize, 'rope cos/sin table');
    if (this.scaling) heap.backend.ropeTableScaled(offset, this.contextLength, this.headSize, this.theta, this.scaling);
    else heap.backend.ropeTable(offset, this.contextLength, this.headSize, this.theta);
    // a static, non-trained tensor: kind 'param' marks static memory (valid for the heap's life)
    this.tableRef = new Tensor({ heap, offset, shape, kind: 'param', generation: -1, name: 'rotary_emb.cos_sin', requiresGrad: false });
    return this;
  }

  /** Whether `materialize` ran. */
  get materialized(): boolean {
    return this.tableRef !== null;
  }

  /** The (contextLength, headSize) cos/sin table. Throws before `materialize`. */
  get table(): Tensor {
    if (!this.tableRef) throw new Error('RotaryEmbedding: the cos/sin table is not materialized; call model.materialize(heap, rng) (or rotary.materialize(heap)) first');
    return this.tableRef;
  }

  /** qkv (B, T, 3C) → the same with q and k rotated by positions 0..T-1 (see the `rope` op). */
  forward(qkv: Tensor, heads: number): Tensor {
    return rope(qkv, heads, this.table);
  }

  /** x (B, T, H·headSize), a separate q or k → every head rotated by positions 0..T-1 (see `ropeHeads`). */
  rotate(x: Tensor): Tensor {
    return ropeHeads(x, this.table);
  }
}
