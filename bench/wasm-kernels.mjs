// Shared by the benchmarks: build/kernels.wasm instantiated directly (no backend in between),
// on its own memory, with a bump allocator for f32 buffers. Kernels take BYTE offsets; the
// allocator hands out ELEMENT offsets (multiply by 4 when calling a kernel).
import { existsSync, readFileSync } from 'node:fs';

const WASM_URL = new URL('../build/kernels.wasm', import.meta.url);
/** Buffers start here (bytes), well above any static data of the module. */
const BASE_BYTES = 1 << 20;
const PAGE = 65536;

/**
 * Instantiates build/kernels.wasm on a fresh `WebAssembly.Memory`.
 * @returns `{ exports, memory, alloc(n, fill?) => elementOffset, f32() => Float32Array view }`
 */
export function loadKernels() {
  if (!existsSync(WASM_URL)) {
    throw new Error(`bench: ${WASM_URL.pathname} is missing; build it with: npx asc --config asconfig.json --target release`);
  }
  const module = new WebAssembly.Module(readFileSync(WASM_URL));
  const memory = new WebAssembly.Memory({ initial: BASE_BYTES / PAGE + 16 });
  const env = {};
  for (const imp of WebAssembly.Module.imports(module)) {
    if (imp.module !== 'env') throw new Error(`bench: kernels.wasm imports ${imp.module}.${imp.name}; only env.* is provided`);
    if (imp.kind === 'memory') env[imp.name] = memory;
    else if (imp.kind === 'function') env[imp.name] = () => { throw new Error(`kernels.wasm called env.${imp.name} (abort)`); };
  }
  const { exports } = new WebAssembly.Instance(module, { env });
  let top = BASE_BYTES;
  return {
    exports,
    memory,
    /** Fresh Float32Array view (views go stale when memory grows). */
    f32: () => new Float32Array(memory.buffer),
    /** Reserves `n` floats, 64-byte aligned, optionally filled by `fill(i)`; returns the element offset. */
    alloc(n, fill) {
      const p = top;
      top = Math.ceil((top + 4 * n) / 64) * 64;
      const need = Math.ceil(top / PAGE) - memory.buffer.byteLength / PAGE;
      if (need > 0) memory.grow(need);
      if (fill) {
        const v = new Float32Array(memory.buffer, p, n);
        for (let i = 0; i < n; i++) v[i] = fill(i);
      }
      return p / 4;
    },
  };
}

/** Deterministic uniform values in [-1, 1) (an LCG; benchmarks need no better). */
export function lcg(seed = 1) {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2147483648 - 1;
  };
}
