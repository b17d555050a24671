/**
 * Token and position embedding tables (no weight decay, normal init).
 */
import { embedding } from '../autograd/ops/embedding.js';
import type { ParameterSet } from '../tensor/parameters.js';
import type { Tensor } from '../tensor/tensor.js';

/** A (count, dim) lookup table registered as `${name}.weight`. */
export class Embedding {
  readonly weight: Tensor;

  constructor(params: ParameterSet, name: string, count: number, dim: number, initStd: number) {
    this.weight = params.register(`${name}.weight`, [count, dim], { init: { kind: 'normal', std: initStd }, decay: false });
  }

  /** tokens (B, T) indices → (B, T, dim); adds `positions`' first T rows when given. */
  forward(tokens: Tensor, positions: Embedding | null = null): Tensor {
    return embedding(tokens, this.weight, positions ? positions.weight : null);
  }
}
