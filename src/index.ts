/**
 * bitnet-training: train and fine-tune BitNet b1.58 (ternary-weight) transformers anywhere
 * JavaScript runs.
 *
 * One call trains a model as the CLI does:
 *
 * ```ts
 * import { runTraining } from 'bitnet-training';
 * const result = await runTraining({ iters: 300, out: 'runs/demo' });
 * console.log(result.lastEval?.valLoss, result.sample);
 * ```
 *
 * or build the pieces yourself (see examples/train-shakespeare.mjs):
 * `createBackend` → `Heap` → `GPT` (+ `materialize`) → `AdamW` → `Trainer` over a `TextDataset`.
 */
export * from './backend/index.js';
export * from './tensor/index.js';
export * from './autograd/index.js';
export * from './nn/index.js';
export * from './optim/index.js';
export * from './optim/schedule.js';
export * from './optim/sgd.js';
export * from './quant/index.js';
export * from './qat/index.js';
export * from './data/index.js';
export * from './io/index.js';
export * from './io/hf/index.js';
export * from './runtime/fs.js';
export * from './train/index.js';
export * from './peft/index.js';
export * from './monitor/index.js';
export { Rng, detLog, type RngState } from './util/rng.js';
