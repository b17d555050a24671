/** File formats: safetensors and the checkpoint directory. */
export * from './safetensors.js';
export * from './checkpoint.js';
export * from './checkpoint-manager.js';
