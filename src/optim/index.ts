/** Optimizers. */
export { AdamW, type AdamWOptions, type AdamWState } from './adamw.js';
export { AdamW8bit, type AdamW8bitOptions, type AdamW8bitState } from './adamw8bit.js';
export { trainStep, type LossModel, type TokenBatch } from './train-step.js';
export { type StepOutcome, adamwGuard, sgdGuard } from './update-guard.js';
