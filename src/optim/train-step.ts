/**
 * `trainStep`: one optimisation step in the only correct order.
 */
import { readsAreAsync } from '../backend/index.js';
import type { Heap } from '../tensor/heap.js';
import type { Tensor } from '../tensor/tensor.js';
import type { AdamW } from './adamw.js';
import type { AdamW8bit } from './adamw8bit.js';

/** Anything with a GPT-like `forward(tokens, targets) → { loss }`. */
export interface LossModel {
  forward(tokens: Tensor, targets: Tensor): { loss?: Tensor };
}

/** A batch of token ids and next-token targets, both (B, T), row-major. */
export interface TokenBatch {
  tokens: Int32Array;
  targets: Int32Array;
  B: number;
  T: number;
}

/**
 * zeroGrad → forward → backward → optimizer.step → heap.resetArena().
 * Returns the loss of this step (its read is started before the reset, so the promise
 * resolves to the right value on every backend).
 */
export function trainStep(heap: Heap, model: LossModel, optimizer: AdamW | AdamW8bit, batch: TokenBatch): Promise<number> {
  optimizer.zeroGrad();
  const shape = [batch.B, batch.T];
  const { loss } = model.forward(heap.indices(batch.tokens, shape), heap.indices(batch.targets, shape));
  if (!loss) throw new Error('trainStep: model.forward returned no loss; pass targets');
  loss.backward();
  if (readsAreAsync(heap.backend)) {
    // webgpu: the loss read is recorded before the update, the guard's read is awaited
    const value = loss.data();
    return optimizer.stepAsync().then(async () => {
      heap.resetArena();
      return (await value)[0]!;
    });
  }
  optimizer.step();
  const value = loss.data();
  heap.resetArena();
  return value.then((v) => v[0]!);
}
