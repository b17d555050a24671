/**
 * The webgpu backend's memory and command stream: one big storage buffer (the arena; pointers
 * are f32 element offsets into it), a pooled ring of parameter blocks, a scratch buffer for
 * reduction partials, pooled staging buffers for reads. Recording is synchronous: each kernel
 * call appends one dispatch to an open compute pass; the batch is submitted when the ring is
 * full, before a host write, and when a read needs the results. Nothing is allocated per step
 * (pipelines are built once per kernel, staging buffers are reused by size class).
 */
import { BackendError } from '../src/backend/backend.js';
import { CPU_HINT, type GpuContext } from './device.js';
import { PRELUDE } from './kernels/prelude.js';

// WebGPU constants (numeric: the Node addon does not install its globals)
const BUFFER_MAP_READ = 0x1, BUFFER_COPY_SRC = 0x4, BUFFER_COPY_DST = 0x8, BUFFER_STORAGE = 0x80;
const MAP_READ = 0x1;
const STAGE_COMPUTE = 0x4;

/** u32 parameters per dispatch (256 bytes: the storage offset alignment). */
const PARAM_WORDS = 64;
/** Dispatches recorded before a submit. */
const RING_SLOTS = 1024;
/** f32 partial sums of the two-pass reductions (enough for 2^28 elements at 4096 per chunk). */
export const PARTIALS = 65536;
const MAX_GROUPS_X = 65535;

/** A dispatch's grid: workgroups along x (folded into a 2-D grid past 65535) or an explicit [x, y]. */
export type Grid = number | [number, number];

export class GpuArena {
  readonly device: GPUDevice;
  readonly adapter: string;
  private readonly maxBytes: number;
  private buffer: GPUBuffer;
  private elements: number;
  private readonly ring: GPUBuffer;
  private readonly ringHost = new Uint32Array(RING_SLOTS * PARAM_WORDS);
  private readonly ringF32 = new Float32Array(this.ringHost.buffer);
  private readonly partials: GPUBuffer;
  private readonly layout: GPUBindGroupLayout;
  private readonly pipelineLayout: GPUPipelineLayout;
  private bindGroup: GPUBindGroup;
  private readonly pipelines = new Map<string, GPUComputePipeline>();
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private slots = 0;
  private readonly staging = new Map<number, GPUBuffer[]>();
  private flushing: Promise<void> | null = null;
  /** The first asynchronous failure (device lost, out of memory, validation), reported by the next call. */
  private failure: string | null = null;
  private destroyed = false;
  private pending = 0;
  private keepAlive: ReturnType<typeof setInterval> | null = null;

  constructor(ctx: GpuContext, elements: number) {
    this.device = ctx.device;
    this.adapter = ctx.adapter;
    this.maxBytes = ctx.maxBindingBytes;
    const d = this.device;
    d.lost.then((info) => {
      if (!this.destroyed) this.failure ??= `the GPU device was lost (${info.reason || 'unknown'}: ${info.message})`;
    });
    d.addEventListener('uncapturederror', (ev) => {
      this.failure ??= `GPU error: ${(ev as GPUUncapturedErrorEvent).error.message}`;
    });
    this.elements = elements;
    this.buffer = this.createArena(elements);
    this.ring = d.createBuffer({ size: RING_SLOTS * PARAM_WORDS * 4, usage: BUFFER_STORAGE | BUFFER_COPY_DST, label: 'bitnet params ring' });
    this.partials = d.createBuffer({ size: PARTIALS * 4, usage: BUFFER_STORAGE, label: 'bitnet partial sums' });
    this.layout = d.createBindGroupLayout({
      entries: [
        { binding: 0, visibility: STAGE_COMPUTE, buffer: { type: 'storage' } },
        { binding: 1, visibility: STAGE_COMPUTE, buffer: { type: 'read-only-storage', hasDynamicOffset: true, minBindingSize: PARAM_WORDS * 4 } },
        { binding: 2, visibility: STAGE_COMPUTE, buffer: { type: 'storage' } },
      ],
    });
    this.pipelineLayout = d.createPipelineLayout({ bindGroupLayouts: [this.layout] });
    this.bindGroup = this.createBindGroup();
  }

  /** GPU buffers created so far (arena, ring, partials, staging): flat across steps once warm. */
  buffersCreated = 0;

  /** Elements addressable now. */
  get capacity(): number {
    return this.elements;
  }

  /** Throws the recorded asynchronous failure, if any, naming the adapter. */
  checkHealthy(): void {
    if (this.failure) throw new BackendError(`webgpu backend (adapter ${this.adapter}): ${this.failure}; ${CPU_HINT}`);
  }

  private checkBytes(elements: number): number {
    const bytes = elements * 4;
    if (bytes > this.maxBytes) {
      throw new BackendError(`webgpu backend: ${elements} elements (${bytes} bytes) exceed the adapter's maxStorageBufferBindingSize/maxBufferSize of ${this.maxBytes} bytes (adapter ${this.adapter}); use a smaller model or batch, or ${CPU_HINT}`);
    }
    return bytes;
  }

  private createArena(elements: number): GPUBuffer {
    const bytes = this.checkBytes(elements);
    this.device.pushErrorScope('out-of-memory');
    const buf = this.device.createBuffer({ size: bytes, usage: BUFFER_STORAGE | BUFFER_COPY_SRC | BUFFER_COPY_DST, label: 'bitnet arena' });
    this.buffersCreated++;
    void this.device.popErrorScope().then((err) => {
      if (err) this.failure ??= `out of GPU memory allocating the ${bytes}-byte arena (${err.message})`;
    });
    return buf;
  }

  private createBindGroup(): GPUBindGroup {
    return this.device.createBindGroup({
      layout: this.layout,
      entries: [
        { binding: 0, resource: { buffer: this.buffer } },
        { binding: 1, resource: { buffer: this.ring, size: PARAM_WORDS * 4 } },
        { binding: 2, resource: { buffer: this.partials } },
      ],
    });
  }

  /** Grow the arena to `elements` (contents kept): a new buffer, one copy, the old one destroyed. */
  grow(elements: number): void {
    this.checkHealthy();
    if (elements <= this.elements) return;
    const next = this.createArena(elements);
    this.endPass();
    this.openEncoder().copyBufferToBuffer(this.buffer, 0, next, 0, this.elements * 4);
    this.submit();
    this.buffer.destroy();
    this.buffer = next;
    this.elements = elements;
    this.bindGroup = this.createBindGroup();
  }

  /** The compute pipeline of a kernel, compiled on first use from PRELUDE-based WGSL. */
  private pipeline(name: string, wgsl: string): GPUComputePipeline {
    let p = this.pipelines.get(name);
    if (!p) {
      if (!wgsl.includes(PRELUDE)) throw new Error(`webgpu kernel ${name}: its WGSL must start from PRELUDE`);
      const module = this.device.createShaderModule({ code: wgsl, label: name });
      p = this.device.createComputePipeline({ layout: this.pipelineLayout, compute: { module, entryPoint: 'main' }, label: name });
      this.pipelines.set(name, p);
    }
    return p;
  }

  /** Shader compilation messages of a kernel (tests: a WGSL error names its line). */
  async compilationErrors(name: string, wgsl: string): Promise<string[]> {
    const module = this.device.createShaderModule({ code: wgsl, label: name });
    const info = await module.getCompilationInfo();
    return info.messages.filter((m) => m.type === 'error').map((m) => `${name}:${m.lineNum}:${m.linePos} ${m.message}`);
  }

  private openEncoder(): GPUCommandEncoder {
    if (!this.encoder) this.encoder = this.device.createCommandEncoder();
    return this.encoder;
  }

  private endPass(): void {
    if (this.pass) {
      this.pass.end();
      this.pass = null;
    }
  }

  /**
   * Record one dispatch of kernel `name` with u32 parameters `u` (P[0..)) and f32 parameters
   * `f` (P[32..)). A grid of 0 workgroups records nothing.
   */
  dispatch(name: string, wgsl: string, grid: Grid, u: ArrayLike<number>, f: ArrayLike<number> = []): void {
    this.checkHealthy();
    let x: number, y: number;
    if (typeof grid === 'number') {
      if (grid <= 0) return;
      x = Math.min(grid, MAX_GROUPS_X);
      y = Math.ceil(grid / MAX_GROUPS_X);
    } else {
      [x, y] = grid;
      if (x <= 0 || y <= 0) return;
    }
    if (y > MAX_GROUPS_X) throw new BackendError(`webgpu backend ${name}: ${x * y} workgroups exceed the dispatch limit (adapter ${this.adapter}); ${CPU_HINT}`);
    const pipeline = this.pipeline(name, wgsl);
    if (this.slots === RING_SLOTS) this.submit();
    const o = this.slots * PARAM_WORDS;
    for (let i = 0; i < u.length; i++) this.ringHost[o + i] = u[i]!;
    for (let i = 0; i < f.length; i++) this.ringF32[o + 32 + i] = f[i]!;
    if (!this.pass) this.pass = this.openEncoder().beginComputePass();
    this.pass.setPipeline(pipeline);
    this.pass.setBindGroup(0, this.bindGroup, [o * 4]);
    this.pass.dispatchWorkgroups(x, y);
    this.slots++;
  }

  /** Submit everything recorded so far (the parameter ring is uploaded first, queue order keeps it right). */
  submit(): void {
    this.endPass();
    if (!this.encoder) return;
    if (this.slots > 0) this.device.queue.writeBuffer(this.ring, 0, this.ringHost.buffer, 0, this.slots * PARAM_WORDS * 4);
    this.device.queue.submit([this.encoder.finish()]);
    this.encoder = null;
    this.slots = 0;
  }

  /** Write host data at element `p` after everything recorded so far. */
  write(p: number, data: Float32Array): void {
    this.checkHealthy();
    this.submit();
    this.device.queue.writeBuffer(this.buffer, p * 4, data.buffer, data.byteOffset, data.byteLength);
  }

  private takeStaging(bytes: number): GPUBuffer {
    const size = Math.max(256, 2 ** Math.ceil(Math.log2(bytes)));
    const pooled = this.staging.get(size)?.pop();
    if (pooled) return pooled;
    this.buffersCreated++;
    return this.device.createBuffer({ size, usage: BUFFER_MAP_READ | BUFFER_COPY_DST, label: `bitnet staging ${size}` });
  }

  private giveStaging(buf: GPUBuffer): void {
    const list = this.staging.get(buf.size) ?? [];
    if (list.length < 4) list.push(buf);
    else buf.destroy();
    this.staging.set(buf.size, list);
  }

  /**
   * Dawn's Node addon does not keep the event loop alive while a map or a work-done callback is
   * pending (Node would exit, or stall, mid-read): a timer holds it while any is in flight.
   */
  private hold<T>(work: () => Promise<T>): Promise<T> {
    if (this.pending++ === 0) this.keepAlive = setInterval(() => {}, 5);
    return work().finally(() => {
      if (--this.pending === 0 && this.keepAlive !== null) {
        clearInterval(this.keepAlive);
        this.keepAlive = null;
      }
    });
  }

  /** One submit for every read requested in the same synchronous stretch. */
  private submitSoon(): Promise<void> {
    if (!this.flushing) {
      this.flushing = Promise.resolve().then(() => {
        this.flushing = null;
        this.submit();
      });
    }
    return this.flushing;
  }

  /**
   * Copy `n` elements at `p` out, after everything recorded so far. The copy is recorded now
   * (so later kernels may overwrite the region); reads of one synchronous stretch share a submit.
   */
  read(p: number, n: number): Promise<Uint32Array> {
    this.checkHealthy();
    if (n === 0) return Promise.resolve(new Uint32Array(0));
    const bytes = n * 4;
    const buf = this.takeStaging(bytes);
    this.endPass();
    this.openEncoder().copyBufferToBuffer(this.buffer, p * 4, buf, 0, bytes);
    return this.hold(() => this.mapped(buf, bytes));
  }

  private async mapped(buf: GPUBuffer, bytes: number): Promise<Uint32Array> {
    await this.submitSoon();
    try {
      await buf.mapAsync(MAP_READ, 0, bytes);
    } catch (e) {
      this.checkHealthy();
      throw new BackendError(`webgpu backend read: mapping the result failed (${(e as Error).message}; adapter ${this.adapter}); ${CPU_HINT}`);
    }
    const out = new Uint32Array(buf.getMappedRange(0, bytes).slice(0));
    buf.unmap();
    this.giveStaging(buf);
    this.checkHealthy();
    return out;
  }

  /** Wait for all submitted work (and report a failure). */
  async finish(): Promise<void> {
    this.submit();
    await this.hold(() => this.device.queue.onSubmittedWorkDone());
    this.checkHealthy();
  }

  destroy(): void {
    this.destroyed = true;
    this.encoder = null;
    this.pass = null;
    for (const list of this.staging.values()) for (const b of list) b.destroy();
    this.staging.clear();
    this.buffer.destroy();
    this.ring.destroy();
    this.partials.destroy();
    this.device.destroy();
  }
}
