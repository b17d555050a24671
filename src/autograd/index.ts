/** Tape autograd: the op tape, no-grad mode and the differentiable ops. */
export { Tape, type TapeEntry, noGrad, isGradEnabled } from './tape.js';
export { backward } from './backward.js';
export { checkpoint, forwardBlocks, type GradientCheckpointing } from './checkpoint.js';
export * from './ops/index.js';
