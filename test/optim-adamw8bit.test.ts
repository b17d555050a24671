// AdamW8bit: the 8-bit blockwise state (bitsandbytes' blockwise 8-bit Adam). The wasm kernel gives
// the js reference's bits (codes, absmax, weights) on odd sizes and partial last blocks, at any
// split and thread count; the dynamic maps round-trip within their documented errors; a small model
// trains to AdamW's loss; resume is bit-identical; the non-finite guard still refuses; the state
// takes ~2 bytes a parameter.
import { readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import type { AdamW8bitBuffers, Backend } from '../src/backend/backend.js';
import { createWasmBackend } from '../src/backend/index.js';
import { JsBackend } from '../src/backend/js/index.js';
import { WasmBackend } from '../src/backend/wasm/index.js';
import { TextDataset } from '../src/data/dataset.js';
import { loadCheckpoint } from '../src/io/checkpoint.js';
import { GPT } from '../src/nn/gpt.js';
import { AdamW } from '../src/optim/adamw.js';
import { AdamW8bit } from '../src/optim/adamw8bit.js';
import { readByteSlots, writeByteSlots } from '../src/optim/byte-slots.js';
import { dynamicMap8 } from '../src/peft/nf4.js';
import { BLOCKWISE8_BLOCK, SEARCH_TABLES_BYTES, codeSearchTable, dequantizeBlockwise8, dynamicMap, quantizeBlockwise8 } from '../src/quant/dynamic-map.js';
import { MemoryFileSystem } from '../src/runtime/fs.js';
import { Heap } from '../src/tensor/heap.js';
import { Trainer } from '../src/train/trainer.js';
import { runTraining } from '../src/train/run.js';
import { parseTrainArgs } from '../src/cli/args.js';
import { Rng } from '../src/util/rng.js';

const disposeLater: Backend[] = [];
afterAll(() => {
  for (const be of disposeLater) be.dispose();
});

/** The same buffers of one 8-bit AdamW problem at the same pointers in one backend. */
class Problem {
  readonly p: number; readonly g: number; readonly scale: number; readonly s: AdamW8bitBuffers;
  constructor(readonly be: Backend, readonly n: number) {
    let top = be.base;
    const take = (k: number) => { const at = top; top += k + 3; return at; };
    const blocks = Math.ceil(n / BLOCKWISE8_BLOCK);
    this.p = take(n); this.g = take(n); this.scale = take(1);
    this.s = {
      mCodes: take(be.byteSlots(n)), vCodes: take(be.byteSlots(n)), mAbsmax: take(blocks), vAbsmax: take(blocks),
      signedMap: take(256), unsignedMap: take(256), searchTables: take(be.byteSlots(SEARCH_TABLES_BYTES)),
    };
    be.reserve(top + 16);
    be.fill(this.s.mCodes, be.byteSlots(n), 0); be.fill(this.s.vCodes, be.byteSlots(n), 0);
    be.fill(this.s.mAbsmax, blocks, 0); be.fill(this.s.vAbsmax, blocks, 0);
    be.write(this.s.signedMap, dynamicMap(true)); be.write(this.s.unsignedMap, dynamicMap(false));
    const tables = new Uint8Array(SEARCH_TABLES_BYTES);
    tables.set(codeSearchTable(dynamicMap(true))); tables.set(codeSearchTable(dynamicMap(false)), SEARCH_TABLES_BYTES / 2);
    writeByteSlots(be, this.s.searchTables, tables);
  }

  /** Everything the step writes: weights (f32 bits), m and v codes, absmax. */
  async snapshot(): Promise<{ p: Uint8Array; m: Uint8Array; v: Uint8Array; am: Float32Array; av: Float32Array }> {
    const f32 = async (q: number, k: number) => Float32Array.from(await this.be.read(q, k));
    const blocks = Math.ceil(this.n / BLOCKWISE8_BLOCK);
    return {
      p: new Uint8Array((await f32(this.p, this.n)).buffer),
      m: await readByteSlots(this.be, this.s.mCodes, this.n), v: await readByteSlots(this.be, this.s.vCodes, this.n),
      am: await f32(this.s.mAbsmax, blocks), av: await f32(this.s.vAbsmax, blocks),
    };
  }
}

/** Gradients whose magnitudes span decades inside every block (the case 8-bit state is for), with a few zeros. */
function gradients(rng: Rng, n: number): Float32Array {
  const g = new Float32Array(n);
  for (let i = 0; i < n; i++) g[i] = i % 17 === 5 ? 0 : rng.normal() * 10 ** (-4 * rng.uniform());
  return g;
}

describe('adamw8bitStep: wasm gives the js reference bits', () => {
  it('on odd sizes and partial last blocks, 4 steps with and without a fused grad scale, for any split and 2 threads', async () => {
    const js = new JsBackend();
    const wasm = WasmBackend.createSync();
    const split = WasmBackend.createSync({ splits: 3 });
    const threaded = await createWasmBackend({ threads: 2 });
    disposeLater.push(js, wasm, split, threaded);
    for (const n of [1, 7, 255, 256, 257, 1000, 2053, 40_000]) {
      const rng = new Rng(n);
      const init = Float32Array.from({ length: n }, () => rng.normal() * 0.05);
      const problems = [js, wasm, split, threaded].map((be) => {
        const q = new Problem(be, n);
        be.write(q.p, init);
        be.write(q.scale, [0.37]);
        return q;
      });
      for (let step = 1; step <= 4; step++) {
        const g = gradients(rng, n);
        const hp = { lr: 3e-3, beta1: 0.9, beta2: step < 3 ? 0.95 : 0.999, eps: 1e-8, weightDecay: step % 2 ? 0.1 : 0, step };
        for (const q of problems) {
          q.be.write(q.g, g);
          q.be.adamw8bitStep(q.p, q.g, q.s, n, hp, step % 2 ? q.scale : 0);
        }
      }
      const want = await problems[0]!.snapshot();
      for (const q of problems.slice(1)) {
        const got = await q.snapshot();
        for (const key of ['p', 'm', 'v', 'am', 'av'] as const) {
          expect(Buffer.from(got[key].buffer, got[key].byteOffset, got[key].byteLength).equals(Buffer.from(want[key].buffer, want[key].byteOffset, want[key].byteLength)), `n = ${n}, ${q.be.name} (${(q.be as WasmBackend).threads ?? 1} threads): ${key}`).toBe(true);
        }
      }
      // the moments are really there: dequantised m of the last block matches the blockwise quantiser's view of itself
      expect(Math.max(...want.am)).toBeGreaterThan(0);
    }
  });

  it('refuses buffers outside memory, naming the argument', () => {
    const be = WasmBackend.createSync();
    disposeLater.push(be);
    const q = new Problem(be, 300);
    const hp = { lr: 1e-3, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0, step: 1 };
    expect(() => be.adamw8bitStep(q.p, q.g, { ...q.s, vAbsmax: be.capacity - 1 }, 300, hp, 0)).toThrow(/adamw8bitStep: state\.vAbsmax .* 2 elements \(ceil\(n\/256\)\)/);
    expect(() => be.adamw8bitStep(q.p, q.g, q.s, 300, { ...hp, step: 0 }, 0)).toThrow(/hp\.step = 0 must be a positive integer/);
  });
});

describe('the dynamic maps (bitsandbytes create_dynamic_map) and blockwise quantisation', () => {
  const signed = dynamicMap(true);
  const unsigned = dynamicMap(false);

  it('has 256 sorted entries: signed with one 0 at code 127 and 1 at 255 (no −1), unsigned from 0 to 1', () => {
    expect(Array.from(signed)).toEqual(Array.from(dynamicMap8())); // QLoRA's double quantisation uses the same signed map
    for (const map of [signed, unsigned]) {
      expect(map).toHaveLength(256);
      for (let i = 1; i < 256; i++) expect(map[i]!).toBeGreaterThan(map[i - 1]!);
      expect(map[255]).toBe(1);
    }
    expect(signed[127]).toBe(0);
    expect(signed[0]).toBeCloseTo(-(0.1 + 0.9 * 127 / 128), 6);
    expect(signed[128]).toBeCloseTo(0.55e-6, 12);
    expect(unsigned[0]).toBe(0);
    expect(unsigned[1]).toBeCloseTo(0.325e-6, 12);
  });

  it('search tables start every bucket at or below its values, at most 3 entries short of the answer', () => {
    const bits = new Uint32Array(1);
    const value = new Float32Array(bits.buffer);
    const at = (b: number) => { bits[0] = b >>> 0; return value[0]!; };
    const per = SEARCH_TABLES_BYTES / 4;
    for (const map of [signed, unsigned]) {
      const table = codeSearchTable(map);
      expect(table).toHaveLength(2 * per);
      for (let b = 0; b < 2 * per; b++) {
        const sign = b >= per ? -1 : 1, k = b % per;
        // the bucket's magnitudes [lo, hi)
        const [lo, hi] = k === 0 ? [0, at(64 << 23)] : k === per - 1 ? [2, Infinity] : [at(((64 + ((k - 1) >> 6)) << 23) | (((k - 1) & 63) << 17)), at(((64 + ((k - 1) >> 6)) << 23) + ((((k - 1) & 63) + 1) << 17))];
        const least = sign > 0 ? lo : -hi, most = sign > 0 ? hi : -lo;
        const start = table[b]!;
        if (start > 0) expect(map[start]!).toBeLessThanOrEqual(least);
        if (k > 0 && k < per - 1) expect(map.filter((v, i) => i > start && v <= most).length, `bucket ${b}`).toBeLessThanOrEqual(3);
      }
    }
  });

  it('stores each value as its nearest code (ties low; m keeps its sign) and dequantises within half a gap', () => {
    const rng = new Rng(3);
    const n = 256 * 40 + 77;
    // moments spanning 7 decades, as Adam's do
    const m = Float32Array.from({ length: n }, () => rng.normal() * 10 ** (-7 * rng.uniform()));
    const v = Float32Array.from(m, (x) => x * x);
    for (const [values, map, keepSigns] of [[m, signed, true], [v, unsigned, false]] as const) {
      const q = quantizeBlockwise8(values, map, keepSigns);
      expect(q.codes).toHaveLength(n);
      expect(q.absmax).toHaveLength(Math.ceil(n / 256));
      const d = dequantizeBlockwise8(q, map);
      let worstTop = 0; // |error| / absmax over values in the top decade [0.1, 1]·absmax
      for (let i = 0; i < n; i++) {
        const a = q.absmax[Math.floor(i / 256)]!;
        const x = Math.fround(values[i]! / a);
        const c = q.codes[i]!;
        if (keepSigns && x !== 0) expect(Math.sign(map[c]!), `sign of m[${i}]`).toBe(Math.sign(x));
        else {
          for (const other of [c - 1, c + 1]) {
            if (other >= 0 && other < 256) expect(Math.abs(x - map[other]!), `code of x[${i}] = ${x}`).toBeGreaterThanOrEqual(Math.abs(x - map[c]!));
          }
        }
        if (Math.abs(x) >= 0.1) worstTop = Math.max(worstTop, Math.abs(d[i]! - values[i]!) / a);
      }
      // the top decade is linear with 64 (signed) or 128 (unsigned) steps of 0.9: half a step
      expect(worstTop).toBeLessThanOrEqual((keepSigns ? 0.9 / 128 : 0.9 / 256) * 1.0001);
    }
  });

  it('writes the kernel\'s codes: one step from zero state stores quantizeBlockwise8 of the f32 moments', () => {
    const be = new JsBackend();
    disposeLater.push(be);
    const n = 700;
    const q = new Problem(be, n);
    const g = gradients(new Rng(9), n);
    be.write(q.g, g);
    be.adamw8bitStep(q.p, q.g, q.s, n, { lr: 1e-3, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0, step: 1 }, 0);
    const m = Float32Array.from(g, (x) => Math.fround(Math.fround(1 - Math.fround(0.9)) * x));
    const want = quantizeBlockwise8(m, signed, true);
    expect(Array.from(be.readSync(q.s.mCodes, n))).toEqual(Array.from(want.codes));
    expect(Array.from(be.readSync(q.s.mAbsmax, 3))).toEqual(Array.from(want.absmax));
  });

  it('moves bytes through backend slots bit for bit (4 a slot in wasm, one in js), NaN patterns included', async () => {
    const bytes = Uint8Array.from({ length: 23 }, (_, i) => [0x01, 0x00, 0x80, 0x7f, 0xff, 0xc0][i % 6]!); // 0x7f800001: a signalling NaN
    for (const be of [WasmBackend.createSync(), new JsBackend()]) {
      disposeLater.push(be);
      writeByteSlots(be, be.base, bytes);
      expect(Array.from(await readByteSlots(be, be.base, 23))).toEqual(Array.from(bytes));
    }
  });
});

// ---- training -----------------------------------------------------------------------------

const TEXT = readFileSync(new URL('../examples/data/tinyshakespeare.txt', import.meta.url), 'utf8').slice(0, 40000);

interface Run {
  trainer: Trainer;
  optimizer: AdamW | AdamW8bit;
  losses: number[];
  model: GPT;
  heap: Heap;
}

/** A 2-layer, dim-32 GPT on 40k characters of Shakespeare (a few ms a step). */
async function run(kind: 'adamw' | 'adamw8bit', options: { iters: number; fs?: MemoryFileSystem; saveEvery?: number }): Promise<Run> {
  const backend = await createWasmBackend();
  disposeLater.push(backend);
  const heap = new Heap(backend);
  const dataset = TextDataset.fromText(TEXT, { tokenizer: 'char' });
  const model = new GPT({ vocabSize: dataset.tokenizer.vocabSize, contextLength: 32, layers: 2, heads: 2, dim: 32 });
  model.materialize(heap, new Rng(1));
  const hp = { lr: 1e-2, betas: [0.9, 0.95] as [number, number], weightDecay: 0.1, clipNorm: 1 };
  const optimizer = kind === 'adamw8bit' ? new AdamW8bit(model.params, hp) : new AdamW(model.params, hp);
  const losses: number[] = [];
  const trainer = new Trainer({
    model, dataset, optimizer,
    options: {
      iters: options.iters, batchSize: 8, contextLength: 32, seed: 5, evalIters: 8, evalEvery: options.iters,
      schedule: { kind: 'cosine', peakLr: 1e-2, warmup: Math.min(10, options.iters), totalSteps: options.iters, minLr: 1e-3 },
      ...(options.fs ? { checkpoints: { fs: options.fs, dir: 'run', keep: 2 }, saveEvery: options.saveEvery ?? 0 } : {}),
      onStep: (i) => { losses.push(i.loss); },
    },
  });
  return { trainer, optimizer, losses, model, heap };
}

describe('AdamW8bit in training', () => {
  it('reaches the loss of AdamW (f32 state) within 0.05 nats after 200 steps', async () => {
    const iters = 200;
    const f32 = await run('adamw', { iters });
    const q8 = await run('adamw8bit', { iters });
    const a = await f32.trainer.train();
    const b = await q8.trainer.train();
    const first = f32.losses[0]!;
    const va = a.lastEval!.valLoss, vb = b.lastEval!.valLoss;
    console.log(`AdamW8bit vs AdamW, ${iters} steps: val loss ${vb.toFixed(4)} vs ${va.toFixed(4)} (difference ${(vb - va).toFixed(4)}; from ${first.toFixed(4)})`);
    expect(va).toBeLessThan(first - 0.8); // both learn
    expect(Math.abs(vb - va)).toBeLessThan(0.05);
  });

  it('resumes bit-identically from its checkpoint: codes and absmax saved as U8 and F32', async () => {
    const N = 10;
    const straight = await run('adamw8bit', { iters: 2 * N });
    await straight.trainer.train();
    const fs = new MemoryFileSystem();
    const first = await run('adamw8bit', { iters: 2 * N, fs, saveEvery: N });
    await first.trainer.train({ untilStep: N });
    const ckpt = await loadCheckpoint(fs, `run/ckpt-${N}`);
    expect(ckpt.optimizer!.get('adamw8bit.exp_avg.codes')!.dtype).toBe('U8');
    expect(ckpt.optimizer!.get('adamw8bit.exp_avg_sq.absmax')!.dtype).toBe('F32');
    expect((ckpt.trainer.extra as { optimizer: unknown }).optimizer).toEqual({ kind: 'adamw8bit', step: N, blockSize: 256 });
    const second = await run('adamw8bit', { iters: 2 * N, fs });
    second.trainer.restore(ckpt);
    await second.trainer.train();
    const resumed = [...first.losses, ...second.losses];
    for (let i = 0; i < 2 * N; i++) expect(Object.is(resumed[i], straight.losses[i]), `loss of step ${i + 1}`).toBe(true);
    const [sa, sb] = [await straight.optimizer.exportState(), await second.optimizer.exportState()] as Awaited<ReturnType<AdamW8bit['exportState']>>[];
    expect(Buffer.from(sb!.m.codes).equals(Buffer.from(sa!.m.codes))).toBe(true);
    expect(Buffer.from(sb!.v.absmax.buffer).equals(Buffer.from(sa!.v.absmax.buffer))).toBe(true);
  });

  it('converts an AdamW checkpoint (f32 m, v quantised once); an adamw8bit one is refused by AdamW with the fix', async () => {
    const fs = new MemoryFileSystem();
    const f32 = await run('adamw', { iters: 6, fs, saveEvery: 6 });
    await f32.trainer.train();
    const ckpt = await loadCheckpoint(fs, 'run/ckpt-6');
    const q8 = await run('adamw8bit', { iters: 10 });
    q8.trainer.restore(ckpt);
    expect(q8.optimizer.stepCount).toBe(6);
    const s = await (q8.optimizer as AdamW8bit).exportState();
    expect(Math.max(...s.m.absmax)).toBeGreaterThan(0);
    await q8.trainer.train();
    expect(q8.losses.every(Number.isFinite)).toBe(true);

    const fs8 = new MemoryFileSystem();
    const r8 = await run('adamw8bit', { iters: 3, fs: fs8, saveEvery: 3 });
    await r8.trainer.train();
    const loaded8 = await loadCheckpoint(fs8, 'run/ckpt-3');
    const back = await run('adamw', { iters: 6 });
    expect(() => back.trainer.restore(loaded8)).toThrow(/optimizer is adamw8bit, this run uses adamw .*resume with --optimizer adamw8bit/);
  });

  it('refuses a NaN step through the guard: weights, codes and absmax unchanged', async () => {
    const r = await run('adamw8bit', { iters: 2 });
    await r.trainer.train();
    const opt = r.optimizer as AdamW8bit;
    const before = await opt.exportState();
    const weights = r.model.params.exportValuesSync();
    const p = r.model.params;
    const be = r.heap.backend;
    be.fill(p.gradOffset, p.blockSize, 0.01);
    be.write(p.gradOffset + 3, [Number.NaN]);
    const outcome = opt.step();
    expect(outcome.applied).toBe(false);
    expect(!outcome.applied && outcome.reason).toBe('gradient');
    expect(opt.stepCount).toBe(2);
    const after = await opt.exportState();
    expect(Buffer.from(after.m.codes).equals(Buffer.from(before.m.codes))).toBe(true);
    expect(Buffer.from(after.v.absmax.buffer).equals(Buffer.from(before.v.absmax.buffer))).toBe(true);
    for (const [name, v] of r.model.params.exportValuesSync()) expect(Buffer.from(v.buffer).equals(Buffer.from(weights.get(name)!.buffer)), name).toBe(true);
  });

  it('keeps its state in ~2 bytes a parameter (AdamW: 8)', async () => {
    const f32 = await run('adamw', { iters: 1 });
    const q8 = await run('adamw8bit', { iters: 1 });
    const bytes = (r: Run, prefix: string) => r.heap.stats().regions.filter((g) => g.label.startsWith(prefix) && !g.label.endsWith('scratch')).reduce((s, g) => s + g.size * 4, 0);
    const n = q8.model.params.blockSize;
    const q8Bytes = bytes(q8, 'adamw8bit.');
    const f32Bytes = bytes(f32, 'adamw.');
    console.log(`state of ${n} parameters (block, padding included): AdamW ${f32Bytes} bytes (${(f32Bytes / n).toFixed(4)}/param), AdamW8bit ${q8Bytes} bytes (${(q8Bytes / n).toFixed(4)}/param)`);
    expect(f32Bytes).toBe(8 * n);
    expect(q8Bytes).toBe((q8.optimizer as AdamW8bit).stateBytes);
    // two code blocks (ceil(range/4) slots a range), two absmax blocks, the two maps
    const d = q8.model.params.decayRange.length, r = q8.model.params.noDecayRange.length;
    const blocks = Math.ceil(d / 256) + Math.ceil(r / 256);
    expect(q8Bytes).toBe(2 * 4 * (Math.ceil(d / 4) + Math.ceil(r / 4)) + 2 * 4 * blocks + 2 * 1024 + SEARCH_TABLES_BYTES);
    // per parameter: 2 bytes of codes + 8/256 of absmax (+ 18 KiB of maps and search tables, fixed)
    expect((q8Bytes - 2048 - SEARCH_TABLES_BYTES) / n).toBeLessThan(2 + 8 / 256 + 0.001);
  });
});

describe('bitnet-train train --optimizer adamw8bit', () => {
  it('parses the flag (adamw, adamw8bit, sgd) and names the values on a typo', () => {
    expect(parseTrainArgs(['--optimizer', 'adamw8bit']).config.optimizer).toBe('adamw8bit');
    expect(() => parseTrainArgs(['--optimizer', 'adam8'])).toThrow(/--optimizer: expected one of adamw, adamw8bit, sgd, got 'adam8'/);
  });

  it('fully fine-tunes a checkpoint (--from) with 8-bit state, and converts an adamw run on --resume --optimizer adamw8bit', async () => {
    const fs = new MemoryFileSystem({ 'small.txt': new TextEncoder().encode(TEXT.slice(0, 8000)) });
    const base = { data: 'small.txt', layers: 1, heads: 2, dim: 16, context: 16, batch: 4, evalIters: 1, evalEvery: 0, threads: 1, warmup: 0, sampleTokens: 0 } as const;
    await runTraining({ ...base, iters: 3, saveEvery: 3, out: 'base' }, {}, { fs });
    const ft = await runTraining({ ...base, from: 'base', optimizer: 'adamw8bit', iters: 3, saveEvery: 3, out: 'ft' }, {}, { fs });
    const ckpt = await loadCheckpoint(fs, 'ft/ckpt-3');
    expect((ckpt.trainer.extra as { optimizer: { kind: string } }).optimizer.kind).toBe('adamw8bit');
    expect(Number.isFinite(ft.lastEval!.valLoss)).toBe(true);
    const resumed = await runTraining({ resume: 'base', optimizer: 'adamw8bit', iters: 5, saveEvery: 5 }, {}, { fs });
    expect(resumed.step).toBe(5);
    expect(((await loadCheckpoint(fs, 'base/ckpt-5')).trainer.extra as { optimizer: { kind: string } }).optimizer.kind).toBe('adamw8bit');
  });
});
