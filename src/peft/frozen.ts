/**
 * Frozen base projections (DESIGN.md decision 11): the weight of a projection being adapted is
 * not trained, so it keeps only what its forward and its input gradient need.
 *
 *   FrozenDense     the f32 weight (a parameter of the base model, no gradient flows to it)
 *   FrozenTernary   a BitLinear's packed 2-bit codes and absmean scales only (no f32 latent):
 *                   forward = RMSNorm? → int8 per token → int8 × ternary kernel → rescale,
 *                   backward dx = dY·(Wq/s) on the packed codes (+ the norm's backward)
 *   FrozenNF4       (./nf4.ts) 4-bit NormalFloat codes with double-quantised block scales
 *
 * Static memory is allocated in `materialize` (the arena must be empty); `load` quantises f32
 * values into it through the arena and resets the arena.
 */
import type { FrozenKernel } from '../autograd/ops/lora.js';
import type { Ptr } from '../backend/backend.js';
import { activationRowBytes, packedTernaryBytes } from '../quant/layout.js';
import type { Heap } from '../tensor/heap.js';
import type { Tensor } from '../tensor/tensor.js';

/** A frozen base with its own static memory (packed formats). */
export interface PackedBase extends FrozenKernel {
  /** Allocate the static buffers. */
  materialize(heap: Heap): void;
  /** Quantise the f32 weights W (N,K), row-major, into the static buffers. */
  load(heap: Heap, values: ArrayLike<number>): void;
  /** Bytes of static memory the base holds. */
  readonly bytes: number;
}

/** Run `fn(tmp)` with `n` arena elements holding `values`, then empty the arena (needs it empty at the start). */
export function withArenaValues(heap: Heap, values: ArrayLike<number>, what: string, fn: (tmp: Ptr) => void): void {
  if (heap.stats().arenaElements !== 0) throw new Error(`${what}: the arena holds activations of an unfinished step; load base weights between steps`);
  try {
    const tmp = heap.alloc(values.length);
    heap.backend.write(tmp, values);
    fn(tmp);
  } finally {
    heap.resetArena();
  }
}

/** A dense f32 weight W (N,K) that receives no gradient. */
export class FrozenDense implements FrozenKernel {
  readonly kind = 'dense';
  readonly inFeatures: number;
  readonly outFeatures: number;

  constructor(readonly weight: Tensor) {
    [this.outFeatures, this.inFeatures] = weight.shape as [number, number];
  }

  forward(heap: Heap, x: Ptr, out: Ptr, M: number): (dy: Ptr, dx: Ptr) => void {
    const be = heap.backend;
    const { inFeatures: K, outFeatures: N } = this;
    heap.check(this.weight, 'FrozenDense.forward', 'weight');
    // out (M,N) = x (M,K) · W (N,K)ᵀ
    be.gemm('nt', out, x, this.weight.offset, M, N, K, false);
    // forward: out = x·Wᵀ, so dx += dy·W
    return (dy, dx) => be.gemm('nn', dx, dy, this.weight.offset, M, K, N, true);
  }
}

/** Options of a frozen BitLinear (its model's BitLinear options that shape the forward). */
export interface FrozenTernaryOptions {
  /** The built-in RMSNorm in front of the quantiser. */
  norm: boolean;
  normEps: number;
  /** The norm's affine scale (a frozen parameter), or null. */
  normWeight: Tensor | null;
  /** Weight-scale group (N*K per tensor, R*K per stacked part, K per channel, G per group). */
  group: number;
}

/** A BitLinear kept as packed 2-bit ternary codes + absmean scales: 1/16 of its f32 size plus the scales. */
export class FrozenTernary implements PackedBase {
  readonly kind = 'ternary';
  private packed: Ptr = 0;
  private scales: Ptr = 0;
  private heapRef: Heap | null = null;

  constructor(readonly outFeatures: number, readonly inFeatures: number, readonly options: FrozenTernaryOptions) {}

  get bytes(): number {
    return packedTernaryBytes(this.outFeatures, this.inFeatures) + 4 * this.scaleCount;
  }

  private get scaleCount(): number {
    return (this.outFeatures * this.inFeatures) / this.options.group;
  }

  materialize(heap: Heap): void {
    const be = heap.backend;
    this.packed = heap.allocStatic(be.byteSlots(packedTernaryBytes(this.outFeatures, this.inFeatures)), 'peft.frozen.ternary');
    this.scales = heap.allocStatic(this.scaleCount, 'peft.frozen.scales');
    this.heapRef = heap;
  }

  /** Quantise latent weights W (N,K) to ternary (absmean) and pack them. */
  load(heap: Heap, values: ArrayLike<number>): void {
    const { outFeatures: N, inFeatures: K, options } = this;
    if (values.length !== N * K) throw new Error(`FrozenTernary.load: ${values.length} values for W (${N}, ${K})`);
    withArenaValues(heap, values, 'FrozenTernary.load', (w) => {
      heap.backend.absmeanScales(this.scales, w, N * K, options.group);
      heap.backend.ternaryPack(this.packed, w, this.scales, N, K, options.group);
    });
  }

  /** The dequantised weights Wq/s (N,K), read back (tests, merging). */
  dequantized(): Float32Array {
    const heap = this.heapRef!;
    const { outFeatures: N, inFeatures: K, options } = this;
    const out = heap.alloc(N * K);
    heap.backend.ternaryDequantize(out, this.packed, this.scales, N, K, options.group);
    const v = Float32Array.from(heap.backend.readSync(out, N * K));
    heap.resetArena();
    return v;
  }

  forward(heap: Heap, x: Ptr, out: Ptr, M: number): (dy: Ptr, dx: Ptr) => void {
    const be = heap.backend;
    const { outFeatures: N, inFeatures: K } = this;
    const { norm, normEps, normWeight, group } = this.options;
    if (!this.packed) throw new Error('FrozenTernary: not materialized; call model.materialize(heap, rng) first');
    let xn = x;
    let rstd = 0;
    if (norm) {
      xn = heap.alloc(M * K);
      rstd = heap.alloc(M);
      be.rmsNormForward(xn, rstd, x, normWeight ? normWeight.offset : 0, M, K, normEps);
    }
    const xq = heap.alloc(be.byteSlots(M * activationRowBytes(K)));
    const sx = heap.alloc(M);
    be.quantizeActivations(xq, sx, xn, M, K);
    be.ternaryForward(out, xq, sx, this.packed, this.scales, heap.alloc(be.ternaryScratchSlots('forward', N, K)), M, N, K, group);
    return (dy, dx) => {
      // forward: y = Q(xn)·(Wq/s)ᵀ with the STE, so dxn = dY·(Wq/s); then the norm's backward
      const dxn = norm ? heap.allocZeroed(M * K) : dx;
      be.ternaryBackwardDx(dxn, dy, this.packed, this.scales, heap.alloc(be.ternaryScratchSlots('backwardDx', N, K)), M, N, K, group);
      if (norm) be.rmsNormBackward(dx, 0, dxn, x, normWeight ? normWeight.offset : 0, rstd, M, K);
    };
  }
}
