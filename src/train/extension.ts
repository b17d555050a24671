/**
 * `StepExtension`: hooks that change what a training step computes (quantisation-aware
 * training, distillation, regularisation), as opposed to the callbacks, which only observe.
 * The trainer calls them in this order for each optimizer step `step` (0-based, the steps done
 * before it):
 *
 *   await beforeStep(step)            QAT state of the step (λ, noise), online calibration, arming statistics
 *   gradAccum x { loss(tokens, targets, step) → backward }
 *   optimizer.step(); afterUpdate(step)   e.g. clamp latent weights (skipped with the update on a NaN step)
 *   await afterStep(step + 1)         e.g. an error-analysis report after the step
 *
 * and `beforeEval(step)` before each evaluation, so the model is evaluated in the state the next
 * step would train it in. Everything an extension decides must be a function of the step (or be
 * returned by `state()`), so a resumed run computes the same steps bit for bit.
 */
import type { JsonObject } from '../io/checkpoint.js';
import type { Tensor } from '../tensor/tensor.js';

export interface StepExtension {
  /** Before the step's first forward; may be async (calibration reads values back). */
  beforeStep?(step: number): void | Promise<void>;
  /** The loss to backpropagate for one micro-batch (default: `model.forward(tokens, targets).loss`). */
  loss?(tokens: Tensor, targets: Tensor, step: number): Tensor;
  /** After the optimizer update of the step (not called when a non-finite loss skipped the update). */
  afterUpdate?(step: number): void;
  /** After the step; `stepsDone` counts it. Awaited, and counted in the step's time. */
  afterStep?(stepsDone: number): void | Promise<void>;
  /** Before an evaluation at `stepsDone` (the state the next step trains in). */
  beforeEval?(stepsDone: number): void;
  /** Extra state for trainer.json `extra.extension` (JSON-safe). */
  state?(): JsonObject;
  /** Restore what `state()` returned, on resume. */
  restore?(state: JsonObject | undefined, source: string): void;
}
