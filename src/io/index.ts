/** File formats: safetensors, the checkpoint directory, GGUF and exports for other engines. */
export * from './safetensors.js';
export * from './checkpoint.js';
export * from './checkpoint-manager.js';
export * from './gguf/index.js';
export * from './export/index.js';
