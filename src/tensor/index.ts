/** Tensors and memory: the heap (static blocks + per-step arena), tensor handles, parameter sets. */
export { Heap, ALIGN, alignUp, type HeapStats, type StaticRegion, type FromArrayOptions } from './heap.js';
export { Tensor, formatShape, shapeSize, type TensorKind, type TensorDtype } from './tensor.js';
export { ParameterSet, type Init, type ParamOptions, type BlockRange } from './parameters.js';
