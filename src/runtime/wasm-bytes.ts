/**
 * The kernel binaries, embedded at build time by scripts/embed-wasm.mjs (base64 in a generated
 * module), so obtaining them needs no file access or fetch in any runtime.
 */
import { kernelsMtWasmBase64, kernelsWasmBase64 } from '../generated/kernels-wasm.js';

function decodeBase64(b64: string): Uint8Array {
  // atob exists in Node >= 16, Deno, Bun and browsers; Buffer does not exist everywhere
  const bin = atob(b64);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return bytes;
}

let single: Uint8Array | undefined;

/** The single-threaded SIMD kernel module (build/kernels.wasm). */
export function kernelsWasmBytes(): Uint8Array {
  single ??= decodeBase64(kernelsWasmBase64);
  return single;
}

/** The shared-memory (threads) kernel module (build/kernels-mt.wasm), or undefined when it was not built. */
export function kernelsMtWasmBytes(): Uint8Array | undefined {
  return kernelsMtWasmBase64 ? decodeBase64(kernelsMtWasmBase64) : undefined;
}
