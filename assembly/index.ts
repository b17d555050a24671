// Kernel module entry: every exported kernel takes byte offsets into the imported memory,
// sizes, and a row (or chunk) range [r0, r1) so that a thread pool can split it.
// Modules re-exported here, one per kernel family, forward and backward side by side.
export * from './gemm';
export * from './elementwise';
export * from './norm';
export * from './activation';
export * from './attention';
export * from './embedding';
export * from './loss';
export * from './optim';
export * from './quant';
export * from './ternary';
export * from './rope';
export * from './qat';
export * from './peft';
export * from './nf4';
export * from './adam8bit';
