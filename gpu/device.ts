/**
 * Finding a WebGPU device: `navigator.gpu` where the host has it (browsers, Deno), else the
 * `webgpu` npm package (Dawn's Node addon, an optional dependency; Node and Bun). Dawn's `null`
 * backend (an adapter that computes nothing) is refused, as is a missing adapter, with an error
 * naming what was found and how to fix it.
 */
import { BackendError } from '../src/backend/backend.js';

/** A device with what the backend needs to know about its adapter. */
export interface GpuContext {
  device: GPUDevice;
  /** "vendor architecture device (description)", for messages and benchmarks. */
  adapter: string;
  /** WGSL has `dot4I8Packed` (language feature packed_4x8_integer_dot_product). */
  packedDot: boolean;
  /** The largest storage binding (bytes): the arena's limit. */
  maxBindingBytes: number;
}

/** How to get a CPU fallback, appended to every "no WebGPU" message. */
export const CPU_HINT = "use the CPU backends instead (--backend wasm, createBackend('wasm'))";

const NODE_HINT = 'in Node, install the optional dependency `webgpu` (Dawn) and a Vulkan driver: on Debian, `apt-get install chromium` and set VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json (SwiftShader, a CPU adapter), or mesa-vulkan-drivers';

/**
 * The Node addon's GPU instance, held for the life of the process: when the instance object is
 * garbage-collected, Dawn tears down the native instance under live devices (crashes, hangs).
 */
let nodeGpu: GPU | null = null;

async function findGpu(): Promise<GPU> {
  if (nodeGpu) return nodeGpu;
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  if (nav?.gpu) return nav.gpu;
  const isNodeLike = typeof (globalThis as { process?: { versions?: { node?: string } } }).process?.versions?.node === 'string';
  if (!isNodeLike) throw new BackendError(`webgpu backend: this runtime has no navigator.gpu (a browser needs WebGPU enabled: Chrome 113+, or --enable-unsafe-webgpu); ${CPU_HINT}`);
  const name = 'webgpu'; // a variable: bundlers and browsers never see this import
  let mod: { create: (flags: string[]) => GPU };
  try {
    mod = (await import(name)) as typeof mod;
  } catch (e) {
    throw new BackendError(`webgpu backend: the npm package 'webgpu' could not be loaded (${(e as Error).message}); ${NODE_HINT}; or ${CPU_HINT}`);
  }
  nodeGpu = mod.create([]);
  return nodeGpu;
}

function describe(info: GPUAdapterInfo | undefined): string {
  if (!info) return 'unknown adapter';
  const parts = [info.vendor, info.architecture, info.device].filter((s) => s);
  const desc = info.description ? ` (${info.description})` : '';
  return (parts.join(' ') || 'unnamed adapter') + desc;
}

const adapters = new Set<GPUAdapter>();

/** Request an adapter and a device with the adapter's largest buffer limits. */
export async function requestGpuContext(): Promise<GpuContext> {
  const gpu = await findGpu();
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) {
    throw new BackendError(`webgpu backend: no WebGPU adapter found (no GPU driver this runtime can use); ${NODE_HINT}; or ${CPU_HINT}`);
  }
  const info = (adapter as { info?: GPUAdapterInfo }).info;
  const name = describe(info);
  if (info?.device === 'null-backend' || /\bnull\b/i.test(info?.device ?? '')) {
    throw new BackendError(`webgpu backend: the adapter is Dawn's null backend (${name}), which computes nothing; ${NODE_HINT}; or ${CPU_HINT}`);
  }
  adapters.add(adapter); // held as the instance is (see nodeGpu)
  const limits = adapter.limits;
  let device: GPUDevice;
  try {
    device = await adapter.requestDevice({
      requiredLimits: {
        maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize,
        maxBufferSize: limits.maxBufferSize,
        maxComputeWorkgroupsPerDimension: limits.maxComputeWorkgroupsPerDimension,
      },
    });
  } catch (e) {
    throw new BackendError(`webgpu backend: adapter ${name} refused a device (${(e as Error).message}); ${CPU_HINT}`);
  }
  const packedDot = gpu.wgslLanguageFeatures?.has('packed_4x8_integer_dot_product') ?? false;
  return { device, adapter: name, packedDot, maxBindingBytes: Math.min(limits.maxStorageBufferBindingSize, limits.maxBufferSize) };
}
