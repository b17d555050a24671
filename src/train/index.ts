/** Training: the trainer loop, run configs, the JSON-lines log, sampling. */
export * from './config.js';
export * from './model.js';
export * from './state.js';
export * from './generate.js';
export * from './log.js';
export * from './trainer.js';
export * from './run.js';
export * from './qat-config.js';
export type { StepExtension } from './extension.js';
export { QatTraining, controllerOptions, defaultNoiseSeed, type QatEvents } from './qat.js';
export { describeQat, formatQuantSummary } from './qat-describe.js';
export * from './qat-tools.js';
