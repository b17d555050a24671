/**
 * AdamW with 8-bit blockwise state (bitsandbytes' `AdamW8bit`, Dettmers et al. 2022, "8-bit
 * Optimizers via Block-wise Quantization"): the same API and update as `AdamW` (./adamw.ts) — the
 * weight-decayed range and the rest as two fused calls, global-norm clipping fused through
 * `gradScale`, the non-finite guard, `step` / `stepAsync`, step counting — but m and v are kept as
 * one byte each, codes into bitsandbytes' signed (m) and unsigned (v) dynamic maps
 * (src/quant/dynamic-map.ts), with one f32 absmax per block of 256 elements.
 *
 * Each step, per block, one kernel (`Backend.adamw8bitStep`; assembly/adam8bit.ts) dequantises m and
 * v, applies AdamW's update from the f32 moments, and requantises them against the block's new
 * absmax. Block size 256, as bitsandbytes' blockwise optimizers: 4 bytes of absmax per 256 values
 * (1/64 byte a parameter per moment) while an outlier only coarsens the 255 values of its own block.
 *
 * Blocks are counted from the start of each range (decayed, not decayed) of the flat parameter
 * block, so a block may span the end of one tensor and the start of the next (bitsandbytes
 * quantises each tensor apart, and keeps tensors under 4,096 values in f32: here every value is 8-bit).
 *
 * State memory: n + n bytes of codes, 2 · 4 · ceil(n/256) bytes of absmax (≈ 2.03 bytes a
 * parameter; AdamW's m and v take 8), plus 18 KiB of constants (the two maps and their search
 * tables). `stateBytes` gives the exact figure.
 *
 * The guard (./update-guard.ts) needs ‖m‖: it is bounded by the block absmax values,
 * ‖m‖² ≤ 256 · Σ absmax², so one `sumSquares` over the m absmax block replaces AdamW's over m
 * (the bound stays never wrong, only looser).
 */
import type { AdamW8bitBuffers, Ptr } from '../backend/backend.js';
import { BLOCKWISE8_BLOCK, type Blockwise8, SEARCH_TABLES_BYTES, codeSearchTable, dynamicMap, quantizeBlockwise8 } from '../quant/dynamic-map.js';
import type { ParameterSet } from '../tensor/parameters.js';
import type { AdamWState } from './adamw.js';
import { type AdamWOptions, type AdamWStepParams, GuardedAdamW } from './guarded-adamw.js';
import { readByteSlots, writeByteSlots } from './byte-slots.js';

/** AdamW8bit takes AdamW's options. */
export type AdamW8bitOptions = AdamWOptions;

/**
 * The 8-bit state for checkpoints, over the whole parameter block (padding included) in its
 * order: `codes` (blockSize bytes), `absmax` (the decayed range's ceil(d/256) blocks, then the
 * rest's), for m and for v; and the two maps the codes index.
 */
export interface AdamW8bitState {
  step: number;
  m: Blockwise8;
  v: Blockwise8;
  signedMap: Float32Array;
  unsignedMap: Float32Array;
}

/** One range of the parameter block and where its state lives. */
interface RangeState {
  start: number;
  length: number;
  weightDecay: boolean;
  /** Slot offset of its codes within the code blocks; block offset within the absmax blocks. */
  codeSlot: number;
  block: number;
}

const blocksOf = (n: number) => Math.ceil(n / BLOCKWISE8_BLOCK);

export class AdamW8bit extends GuardedAdamW {
  private readonly ranges: RangeState[];
  private readonly mCodes: Ptr;
  private readonly vCodes: Ptr;
  private readonly mAbsmax: Ptr;
  private readonly vAbsmax: Ptr;
  /** The signed map (256 f32), then the unsigned one. */
  private readonly maps: Ptr;
  /** Their search tables (2 x 8196 bytes, `codeSearchTable`). */
  private readonly searchTables: Ptr;
  private readonly blocks: number;
  protected readonly scratch: Ptr;
  /** Bytes of backend memory the state takes: codes, absmax and maps (wasm: 4-byte slots holding 4 codes; js: one code a slot). */
  readonly stateBytes: number;

  /** Allocates the code, absmax and map blocks (m = v = 0); call before the first forward (static memory). */
  constructor(params: ParameterSet, options: AdamW8bitOptions) {
    super(params, options, 'AdamW8bit');
    const heap = params.heap;
    const be = heap.backend;
    let codeSlots = 0;
    let blocks = 0;
    this.ranges = [];
    for (const [range, weightDecay] of [[params.decayRange, true], [params.noDecayRange, false]] as const) {
      this.ranges.push({ ...range, weightDecay, codeSlot: codeSlots, block: blocks });
      if (range.length > 0) codeSlots += be.byteSlots(range.length);
      blocks += blocksOf(range.length);
    }
    this.blocks = blocks;
    this.mCodes = heap.allocStatic(codeSlots, 'adamw8bit.m.codes');
    this.vCodes = heap.allocStatic(codeSlots, 'adamw8bit.v.codes');
    this.mAbsmax = heap.allocStatic(blocks, 'adamw8bit.m.absmax');
    this.vAbsmax = heap.allocStatic(blocks, 'adamw8bit.v.absmax');
    this.maps = heap.allocStatic(512, 'adamw8bit.maps');
    const tableSlots = be.byteSlots(SEARCH_TABLES_BYTES);
    this.searchTables = heap.allocStatic(tableSlots, 'adamw8bit.search_tables');
    this.stateBytes = (2 * codeSlots + 2 * blocks + 512 + tableSlots) * (be.dtype === 'f64' ? 8 : 4);
    this.scratch = heap.allocStatic(4, 'adamw8bit.scratch');
    // codes 0 with absmax 0: m = v = 0 (as bitsandbytes' zero-initialised state)
    for (const [p, n] of [[this.mCodes, codeSlots], [this.vCodes, codeSlots], [this.mAbsmax, blocks], [this.vAbsmax, blocks], [this.scratch, 4]] as const) {
      if (n > 0) be.fill(p, n, 0);
    }
    const signed = dynamicMap(true);
    const unsigned = dynamicMap(false);
    be.write(this.maps, signed);
    be.write(this.maps + 256, unsigned);
    const tables = new Uint8Array(SEARCH_TABLES_BYTES);
    tables.set(codeSearchTable(signed));
    tables.set(codeSearchTable(unsigned), SEARCH_TABLES_BYTES / 2);
    writeByteSlots(be, this.searchTables, tables);
  }

  /** A bound of ‖m‖ from the block absmax values: ‖m‖² ≤ 256 · Σ absmax² (one `sumSquares` over the m absmax block). */
  protected recordStateSquares(out: Ptr): void {
    this.params.heap.backend.sumSquares(out, this.mAbsmax, this.blocks);
  }

  protected stateNorm(sumSquares: number): number {
    return Math.sqrt(BLOCKWISE8_BLOCK * sumSquares);
  }

  /** One `adamw8bitStep` a range (weight-decayed, the rest). */
  protected update(hp: AdamWStepParams, gradScale: Ptr): void {
    const p = this.params;
    const be = p.heap.backend;
    for (const r of this.ranges) {
      if (r.length === 0) continue;
      be.adamw8bitStep(p.paramOffset + r.start, p.gradOffset + r.start, this.stateOf(r), r.length, { ...hp, weightDecay: r.weightDecay ? this.weightDecay : 0 }, gradScale);
    }
  }

  private stateOf(r: RangeState): AdamW8bitBuffers {
    return {
      mCodes: this.mCodes + r.codeSlot, vCodes: this.vCodes + r.codeSlot,
      mAbsmax: this.mAbsmax + r.block, vAbsmax: this.vAbsmax + r.block,
      signedMap: this.maps, unsignedMap: this.maps + 256, searchTables: this.searchTables,
    };
  }

  /** Copy out the 8-bit state (checkpoints): codes and absmax exactly as the kernel left them. */
  async exportState(): Promise<AdamW8bitState> {
    const be = this.params.heap.backend;
    const n = this.params.blockSize;
    const read = async (codes: Ptr, absmax: Ptr): Promise<Blockwise8> => {
      const out = new Uint8Array(n);
      for (const r of this.ranges) out.set(await readByteSlots(be, codes + r.codeSlot, r.length), r.start);
      return { codes: out, absmax: Float32Array.from(await be.read(absmax, this.blocks)) };
    };
    const maps = Float32Array.from(await be.read(this.maps, 512));
    return { step: this.stepCount, m: await read(this.mCodes, this.mAbsmax), v: await read(this.vCodes, this.vAbsmax), signedMap: maps.slice(0, 256), unsignedMap: maps.slice(256) };
  }

  /** Restore state saved by `exportState` (the same model shape: the same parameter block layout). */
  importState(state: AdamW8bitState): void {
    const who = 'AdamW8bit.importState';
    if (!Number.isInteger(state.step) || state.step < 0) throw new Error(`${who}: step must be a non-negative integer, got ${state.step}`);
    const n = this.params.blockSize;
    for (const [name, q] of [['m', state.m], ['v', state.v]] as const) {
      if (q.codes.length !== n) throw new Error(`${who}: ${name} has ${q.codes.length} codes but this model's parameter block holds ${n}; the checkpoint is from a different model shape`);
      if (q.absmax.length !== this.blocks) throw new Error(`${who}: ${name} has ${q.absmax.length} absmax blocks but this model's layout has ${this.blocks}; the checkpoint is from a different model shape`);
      const bad = q.absmax.findIndex((a) => !(Number.isFinite(a) && a >= 0));
      if (bad >= 0) throw new Error(`${who}: ${name} absmax[${bad}] = ${q.absmax[bad]} is not a finite number >= 0`);
    }
    for (const [name, got, want] of [['signed', state.signedMap, dynamicMap(true)], ['unsigned', state.unsignedMap, dynamicMap(false)]] as const) {
      if (got.length !== 256 || got.some((x, i) => x !== want[i])) {
        throw new Error(`${who}: the checkpoint's ${name} dynamic map differs from this build's (its codes mean other values); resume with the build that wrote it, or start the optimizer afresh`);
      }
    }
    const be = this.params.heap.backend;
    for (const [codes, absmax, q] of [[this.mCodes, this.mAbsmax, state.m], [this.vCodes, this.vAbsmax, state.v]] as const) {
      for (const r of this.ranges) writeByteSlots(be, codes + r.codeSlot, q.codes.subarray(r.start, r.start + r.length));
      if (this.blocks > 0) be.write(absmax, q.absmax);
    }
    this.stepCount = state.step;
  }

  /**
   * Start from an f32 AdamW state (an `AdamW` checkpoint, by parameter name): m and v are
   * quantised blockwise once, as the kernel would store them (lossy; the run then continues in 8 bits).
   */
  importAdamWState(state: AdamWState): void {
    const n = this.params.blockSize;
    const flat = (values: Map<string, Float32Array>, name: string): Float32Array => {
      const out = new Float32Array(n);
      for (const [param, t] of this.params) {
        const v = values.get(param);
        if (!v) throw new Error(`AdamW8bit.importAdamWState: the AdamW state has no ${name} for ${param}; the checkpoint is from a different model`);
        if (v.length !== t.size) throw new Error(`AdamW8bit.importAdamWState: ${param}.${name} has ${v.length} values but the model's needs ${t.size}; the checkpoint is from a different model shape`);
        out.set(v, t.offset - this.params.paramOffset);
      }
      for (const key of values.keys()) if (!this.params.has(key)) throw new Error(`AdamW8bit.importAdamWState: unknown parameter ${key}; the checkpoint is from a different model`);
      return out;
    };
    const quantize = (values: Float32Array, map: Float32Array, keepSigns: boolean): Blockwise8 => {
      const codes = new Uint8Array(n);
      const absmax = new Float32Array(this.blocks);
      for (const r of this.ranges) {
        const q = quantizeBlockwise8(values.subarray(r.start, r.start + r.length), map, keepSigns);
        codes.set(q.codes, r.start);
        absmax.set(q.absmax, r.block);
      }
      return { codes, absmax };
    };
    const signedMap = dynamicMap(true);
    const unsignedMap = dynamicMap(false);
    this.importState({
      step: state.step,
      m: quantize(flat(state.m, 'exp_avg'), signedMap, true),
      v: quantize(flat(state.v, 'exp_avg_sq'), unsignedMap, false),
      signedMap, unsignedMap,
    });
  }
}
