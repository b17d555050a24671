/** Exports for other engines: GGUF (llama.cpp gpt2 / llama / bitnet, bitnet.cpp I2_S) and Hugging Face directories. */
export { EXPORT_FORMATS, exportCheckpoint, llamaConfigOfCheckpoint, planGguf, type ExportFormat, type ExportOptions, type ExportResult } from './export-checkpoint.js';
export { ExportError, planGptGguf, type GgufExportOptions, type GgufExportPlan } from './gguf-gpt.js';
export { permuteRopeRows, planLlamaGguf } from './gguf-llama.js';
export { hfExportFiles, writeHfDirectory, type HfExportOptions } from './hf-export.js';
export { TERNARY_GGUF_TYPES, ternarize, type TernaryGgufType, type TernaryWeight } from './ternary-weights.js';
