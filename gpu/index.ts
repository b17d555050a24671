/**
 * The webgpu backend (DESIGN.md decision 12), loaded lazily by `createBackend('webgpu')` so CPU
 * users never load it. See gpu/README.md.
 */
export { WebGpuBackend, createWebGpuBackend, type WebGpuBackendOptions } from './backend.js';
