/** GGUF v3 (llama.cpp's model file): writer, header reader, ggml/bitnet.cpp ternary types, F16/BF16. */
export { GGML_TYPE_ID, GGUF_VERSION, QK_I2_S, QK_K, ggmlTensorBytes, gguf, type GgmlTypeName, type GgufValue } from './format.js';
export { encodeGguf, encodeGgufHeader, writeGguf, type GgufContent, type GgufTensor } from './writer.js';
export { ggufTensorData, parseGguf, type GgufTensorInfo, type ParsedGguf } from './reader.js';
export { dequantizeI2_S, dequantizeTq1_0, dequantizeTq2_0, packI2_S, packTq1_0, packTq2_0 } from './ternary.js';
export { bf16BitsToF32, encodeBf16, encodeF16, f16BitsToF32, f32ToBf16Bits, f32ToF16Bits } from './half.js';
