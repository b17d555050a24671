/** Data: tokenizers and the text dataset. */
export * from './tokenizer.js';
export * from './hf-tokenizer.js';
export * from './dataset.js';
