/**
 * Parameter-efficient fine-tuning (DESIGN.md decision 11): each method a module over one core —
 * config parsing with PEFT's names (./config.ts), target-module matching (./targets.ts), frozen
 * bases (./frozen.ts), the adapted projection (./lora.ts), the model wrapper (./model.ts) and
 * PEFT's file format (./format.ts).
 */
export * from './config.js';
export * from './targets.js';
export * from './frozen.js';
export * from './lora.js';
export * from './model.js';
export * from './format.js';
export * from './nf4.js';
export * from './merge.js';
export * from './finetune.js';
// part B: AdaLoRA, prefix tuning / P-tuning v2, prompt tuning, BitFit (each a module) and their setup
export * from './adalora.js';
export * from './prefix.js';
export * from './prefix-ops.js';
export * from './prompt.js';
export * from './prompt-files.js';
export * from './bitfit.js';
export * from './model-walk.js';
export * from './methods.js';
