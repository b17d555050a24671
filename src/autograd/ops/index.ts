/** The differentiable ops: each computes its forward on the backend and records its backward. */
export { linear, matmul } from './linear.js';
export { layerNorm, rmsNorm } from './norm.js';
export { gelu, silu, relu2, gatedActivation, type GateActivation } from './activation.js';
export { add, mul, scale } from './elementwise.js';
export { sum, mean } from './reduce.js';
export { attention, groupedAttention } from './attention.js';
export { rope, ropeHeads } from './rope.js';
export { embedding } from './embedding.js';
export { crossEntropy, linearCrossEntropy, LOSS_CHUNK_ELEMENTS } from './loss.js';
// BitNet b1.58
export { bitLinear, type BitLinearOpOptions, type SteVariant } from './bitlinear.js';
