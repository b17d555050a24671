/** Optimizers. */
export { AdamW, type AdamWOptions, type AdamWState } from './adamw.js';
export { trainStep, type LossModel, type TokenBatch } from './train-step.js';
export { type StepOutcome, adamwGuard, sgdGuard } from './update-guard.js';
