// Helpers of the webgpu tests: find an adapter (Dawn in Node with SwiftShader's Vulkan ICD, never
// Dawn's null backend), and a pair of backends (the js f64 reference and webgpu) holding the same
// buffers at the same pointers, so a kernel runs on both and the results are compared.
import { existsSync } from 'node:fs';
import { expect } from 'vitest';
import type { Backend } from '../../src/backend/backend.js';
import { JsBackend } from '../../src/backend/js/index.js';
import type { WebGpuBackend } from '../../gpu/index.js';

/** Debian chromium's SwiftShader Vulkan driver (a CPU adapter; CI installs chromium). */
export const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';

/**
 * A webgpu backend, or the reason there is none. Points Dawn at SwiftShader when no Vulkan ICD
 * is chosen. Under CI=true a missing adapter is an error, not a skip.
 */
export async function webgpuOrReason(): Promise<{ gpu?: WebGpuBackend; reason?: string }> {
  if (!process.env.VK_ICD_FILENAMES && existsSync(SWIFTSHADER_ICD)) process.env.VK_ICD_FILENAMES = SWIFTSHADER_ICD;
  try {
    const { createWebGpuBackend } = await import('../../gpu/index.js');
    return { gpu: await createWebGpuBackend() };
  } catch (e) {
    if (process.env.CI) throw e;
    return { reason: (e as Error).message };
  }
}

/** |got - want| <= atol + rtol*|want| elementwise, with the first offending index in the message. */
export function expectClose(got: ArrayLike<number>, want: ArrayLike<number>, rtol: number, atol: number, what: string): void {
  expect(got.length, `${what}: length`).toBe(want.length);
  for (let i = 0; i < want.length; i++) {
    const g = got[i]!, w = want[i]!;
    const ok = Number.isNaN(w) ? Number.isNaN(g) : Math.abs(g - w) <= atol + rtol * Math.abs(w);
    if (!ok) expect.fail(`${what}[${i}]: webgpu ${g} vs js ${w} (rtol ${rtol}, atol ${atol})`);
  }
}

/** Bytes (one per js slot) as the webgpu backend stores them: 4 a slot, little-endian. */
export function bytesToSlots(bytes: ArrayLike<number>): Float32Array {
  const u8 = new Uint8Array(Math.ceil(bytes.length / 4) * 4);
  for (let i = 0; i < bytes.length; i++) u8[i] = bytes[i]! & 0xff;
  return new Float32Array(u8.buffer);
}

/** The first `n` bytes of webgpu slots, signed (int8 activations) or not (packed weights). */
export function slotsToBytes(slots: Float32Array, n: number, signed: boolean): number[] {
  const b = new Uint8Array(slots.buffer, slots.byteOffset, slots.byteLength);
  return Array.from(b.subarray(0, n), (x) => (signed && x > 127 ? x - 256 : x));
}

/**
 * Named buffers at the same pointers in a js (f64) backend and the webgpu backend. Float buffers
 * are written identically; byte buffers (`bytes`) hold one byte a slot in js and 4 in webgpu.
 */
export class Pair {
  readonly js = new JsBackend({ dtype: 'f64' });
  private readonly off: Record<string, number> = {};
  private readonly len: Record<string, number> = {};
  private top = 0;

  constructor(readonly gpu: WebGpuBackend) {}

  /** Allocate `n` elements (bytes for byte buffers) under `name`, with a gap after it. */
  alloc(name: string, n: number): this {
    this.off[name] = this.top;
    this.len[name] = n;
    this.top += n + 5;
    for (const be of [this.js, this.gpu] as Backend[]) be.reserve(be.base + this.top + 64);
    return this;
  }

  /** Pointer of buffer `name`; `'0'` is absent. Both backends share it (webgpu base 64 >= js base 16). */
  p(name: string): number {
    if (name === '0') return 0;
    if (!(name in this.off)) throw new Error(`Pair: no buffer ${name}`);
    return this.gpu.base + this.off[name]!;
  }

  write(name: string, data: ArrayLike<number>): void {
    const f = Array.from(data, Math.fround);
    this.js.write(this.p(name), f);
    this.gpu.write(this.p(name), f);
  }

  random(name: string, rand: () => number, std = 1): number[] {
    const data = Array.from({ length: this.len[name]! }, () => Math.fround(std * rand()));
    this.write(name, data);
    return data;
  }

  indices(name: string, data: number[]): void {
    this.js.writeIndices(this.p(name), new Int32Array(data));
    this.gpu.writeIndices(this.p(name), new Int32Array(data));
  }

  writeBytes(name: string, bytes: ArrayLike<number>): void {
    this.js.write(this.p(name), Array.from(bytes));
    this.gpu.write(this.p(name), bytesToSlots(bytes));
  }

  /** Run `op(be, p)` on both backends. */
  run(op: (be: Backend, p: (name: string) => number) => void): void {
    op(this.js, (n) => this.p(n));
    op(this.gpu, (n) => this.p(n));
  }

  async read(name: string): Promise<{ gpu: Float32Array; js: Float64Array }> {
    const n = this.len[name]!;
    return { gpu: (await this.gpu.read(this.p(name), n)) as Float32Array, js: this.js.readSync(this.p(name), n) as Float64Array };
  }

  async check(name: string, rtol: number, atol: number): Promise<void> {
    const { gpu, js } = await this.read(name);
    expectClose(gpu, js, rtol, atol, name);
  }

  /** Compare a byte buffer of `n` bytes: returns [webgpu bytes, js bytes]. */
  async bytes(name: string, n: number, signed: boolean): Promise<[number[], number[]]> {
    const gpu = await this.gpu.read(this.p(name), Math.ceil(n / 4));
    const js = Array.from(this.js.readSync(this.p(name), n), (v) => v + 0); // js codes may be -0
    return [slotsToBytes(gpu as Float32Array, n, signed), js];
  }
}
