/** Data: tokenizers and the text dataset. */
export * from './tokenizer.js';
export * from './hf-tokenizer.js';
export * from './dataset.js';
export * from './corpus.js';
export * from './token-file.js';
export * from './unknown-chars.js';
export { Utf8PieceDecoder } from './utf8.js';
export * from './hf-files.js';
export * from './run-corpus.js';
export * from './corpus-progress.js';
export * from './text-stream.js';
