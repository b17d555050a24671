/**
 * QLoRA's frozen base: 4-bit NormalFloat weights with double-quantised block scales, as
 * bitsandbytes stores them (`quantize_4bit(quant_type='nf4', blocksize=64, compress_statistics=True)`):
 *
 *   codes       W flattened row-major in blocks of 64; each value the index of the nearest of
 *               the 16 NF4 levels (below) to w / absmax_block; two a byte, the first in the high nibble
 *   absmax      per 64-block max |w|, double-quantised: offset = mean(absmax); (absmax − offset)
 *               in blocks of 256, each the index of the nearest entry of bitsandbytes' signed
 *               8-bit dynamic map times the block's max |absmax − offset| (an f32 per 256 blocks)
 *   dequantised w = NF4[code] · (DYN[q] · absmax2[b / 256] + offset)
 *
 * The weights are never held in f32: the kernels (`Backend.nf4Forward`, `nf4BackwardDx`; wasm
 * assembly/nf4.ts, js src/backend/js/nf4.ts) dequantise a panel at a time inside the matmul.
 * Memory: 0.5 byte a weight + 1 byte per 64 + 4 bytes per 16384 (≈ 4.127 bits a weight).
 */
import { dynamicMap } from '../quant/dynamic-map.js';
import type { Ptr } from '../backend/backend.js';
import type { Heap } from '../tensor/heap.js';
import type { PackedBase } from './frozen.js';

/** The 16 NF4 levels (QLoRA, Dettmers et al. 2023; bitsandbytes' `get_4bit_type('nf4')`). */
export const NF4_LEVELS: readonly number[] = [
  -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635, -0.18477343022823334,
  -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
  0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
];

/** Values per NF4 block, and absmax values per second-level block. */
export const NF4_BLOCK = 64;
export const NF4_ABSMAX_BLOCK = 256;

/** bitsandbytes' signed 8-bit dynamic map (`create_dynamic_map(signed=True)`), the double quantisation's code book: `dynamicMap(true)` (src/quant/dynamic-map.ts). */
export function dynamicMap8(): Float32Array {
  return dynamicMap(true);
}

/** Index of the entry of sorted `table` nearest to v (ties to the lower index). */
function nearest(table: ArrayLike<number>, v: number): number {
  let lo = 0;
  let hi = table.length - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (table[mid]! <= v) lo = mid;
    else hi = mid;
  }
  return Math.abs(v - table[lo]!) <= Math.abs(table[hi]! - v) ? lo : hi;
}

/** An NF4-quantised tensor of n values (n a multiple of 64). */
export interface Nf4Tensor {
  n: number;
  /** n/2 bytes, two codes a byte (first in the high nibble). */
  codes: Uint8Array;
  /** n/64 bytes: the double-quantised absmax of each block. */
  absmaxCodes: Uint8Array;
  /** ceil(n/64/256) f32: the scale of each 256-block of absmax values. */
  absmaxScales: Float32Array;
  /** The mean of the absmax values. */
  offset: number;
}

const NF4 = Float32Array.from(NF4_LEVELS);

/** Quantise n f32 values (n % 64 == 0) to NF4 with double-quantised absmax (bitsandbytes' layout, see the header). */
export function quantizeNf4(w: ArrayLike<number>): Nf4Tensor {
  const n = w.length;
  if (n % NF4_BLOCK !== 0) throw new Error(`quantizeNf4: ${n} values are not a whole number of ${NF4_BLOCK}-value blocks`);
  const blocks = n / NF4_BLOCK;
  const absmax = new Float32Array(blocks);
  for (let b = 0; b < blocks; b++) {
    let m = 0;
    for (let i = b * NF4_BLOCK; i < (b + 1) * NF4_BLOCK; i++) m = Math.max(m, Math.abs(w[i]!));
    absmax[b] = m;
  }
  // double quantisation: offset = mean, then 8-bit dynamic codes per 256-block
  let sum = 0;
  for (let b = 0; b < blocks; b++) sum += absmax[b]!;
  const offset = Math.fround(sum / blocks);
  const dyn = dynamicMap8();
  const groups = Math.ceil(blocks / NF4_ABSMAX_BLOCK);
  const absmaxScales = new Float32Array(groups);
  const absmaxCodes = new Uint8Array(blocks);
  for (let g = 0; g < groups; g++) {
    const end = Math.min(blocks, (g + 1) * NF4_ABSMAX_BLOCK);
    let m = 0;
    for (let b = g * NF4_ABSMAX_BLOCK; b < end; b++) m = Math.max(m, Math.abs(absmax[b]! - offset));
    absmaxScales[g] = m;
    for (let b = g * NF4_ABSMAX_BLOCK; b < end; b++) absmaxCodes[b] = m > 0 ? nearest(dyn, Math.fround((absmax[b]! - offset) / m)) : nearest(dyn, 0);
  }
  // the NF4 codes against the dequantised absmax (what the kernels will multiply by)
  const codes = new Uint8Array(n / 2);
  for (let b = 0; b < blocks; b++) {
    const s = Math.fround(Math.fround(dyn[absmaxCodes[b]!]! * absmaxScales[b >> 8]!) + offset);
    for (let i = b * NF4_BLOCK; i < (b + 1) * NF4_BLOCK; i++) {
      const q = s > 0 ? nearest(NF4, Math.fround(w[i]! / s)) : 7;
      codes[i >> 1] |= (i & 1) === 0 ? q << 4 : q;
    }
  }
  return { n, codes, absmaxCodes, absmaxScales, offset };
}

/** The dequantised f32 values of an NF4 tensor (the reference of the kernels; tests and merging). */
export function dequantizeNf4(t: Nf4Tensor): Float32Array {
  const dyn = dynamicMap8();
  const out = new Float32Array(t.n);
  for (let i = 0; i < t.n; i++) {
    const b = (i / NF4_BLOCK) | 0;
    const s = Math.fround(Math.fround(dyn[t.absmaxCodes[b]!]! * t.absmaxScales[b >> 8]!) + t.offset);
    const byte = t.codes[i >> 1]!;
    out[i] = Math.fround(NF4[(i & 1) === 0 ? byte >> 4 : byte & 15]! * s);
  }
  return out;
}

/** Write raw bytes into byte slots at p (wasm: 4 bytes an f32 slot, bit-exact; js: one byte a slot). */
function writeBytes(heap: Heap, p: Ptr, bytes: Uint8Array): void {
  const be = heap.backend;
  if (be.byteSlots(4) === 1) {
    const padded = new Uint8Array(Math.ceil(bytes.length / 4) * 4);
    padded.set(bytes);
    be.write(p, new Float32Array(padded.buffer));
  } else {
    be.write(p, bytes);
  }
}

/** A dense projection W (N,K) frozen in NF4 (QLoRA). K must be a multiple of 64. */
export class FrozenNF4 implements PackedBase {
  readonly kind = 'nf4';
  private codes: Ptr = 0;
  private absmaxCodes: Ptr = 0;
  private absmaxScales: Ptr = 0;
  private table: Ptr = 0;
  private offset = 0;

  constructor(readonly outFeatures: number, readonly inFeatures: number, readonly name = 'projection') {
    if (inFeatures % NF4_BLOCK !== 0) throw new Error(`QLoRA: ${name} has ${inFeatures} input features; NF4 blocks of ${NF4_BLOCK} need a multiple of ${NF4_BLOCK} (use --peft lora for this base)`);
  }

  private get blocks(): number {
    return (this.outFeatures * this.inFeatures) / NF4_BLOCK;
  }

  get bytes(): number {
    return (this.outFeatures * this.inFeatures) / 2 + this.blocks + 4 * Math.ceil(this.blocks / NF4_ABSMAX_BLOCK) + 4 * 256;
  }

  materialize(heap: Heap): void {
    const be = heap.backend;
    this.codes = heap.allocStatic(be.byteSlots((this.outFeatures * this.inFeatures) / 2), 'peft.frozen.nf4');
    this.absmaxCodes = heap.allocStatic(be.byteSlots(this.blocks), 'peft.frozen.nf4.absmax');
    this.absmaxScales = heap.allocStatic(Math.ceil(this.blocks / NF4_ABSMAX_BLOCK), 'peft.frozen.nf4.absmax2');
    this.table = heap.allocStatic(256, 'peft.frozen.nf4.dynamic_map');
    be.write(this.table, dynamicMap8());
  }

  load(heap: Heap, values: ArrayLike<number>): void {
    const q = quantizeNf4(values);
    writeBytes(heap, this.codes, q.codes);
    writeBytes(heap, this.absmaxCodes, q.absmaxCodes);
    heap.backend.write(this.absmaxScales, q.absmaxScales);
    this.offset = q.offset;
  }

  forward(heap: Heap, x: Ptr, out: Ptr, M: number): (dy: Ptr, dx: Ptr) => void {
    const be = heap.backend;
    const { outFeatures: N, inFeatures: K } = this;
    const w = { codes: this.codes, absmaxCodes: this.absmaxCodes, absmaxScales: this.absmaxScales, table: this.table, offset: this.offset };
    be.nf4Forward(out, x, w, heap.alloc(be.nf4ScratchSlots('forward', N, K)), M, N, K);
    // forward: out = x·deq(W)ᵀ, so dx += dy·deq(W)
    return (dy, dx) => be.nf4BackwardDx(dx, dy, w, heap.alloc(be.nf4ScratchSlots('backwardDx', N, K)), M, N, K);
  }
}

/** `PeftModelOptions.quantizedBase.create` for QLoRA. */
export const nf4BaseFactory = (outFeatures: number, inFeatures: number, names: readonly string[]): FrozenNF4 => new FrozenNF4(outFeatures, inFeatures, names.join('+'));
