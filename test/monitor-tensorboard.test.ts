// TensorBoard event files: written through the runtime's FileSystem, read back by an independent
// reader (test/monitor-reader.ts: its own CRC-32C and TFRecord parser, protobufjs over vendored
// .proto definitions).
import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import type { Backend } from '../src/backend/backend.js';
import { createBackend } from '../src/backend/index.js';
import { TextDataset } from '../src/data/dataset.js';
import { loadCrc32c, maskCrc } from '../src/monitor/crc32c.js';
import { histogramOf } from '../src/monitor/histogram.js';
import { TensorBoardWriter } from '../src/monitor/tensorboard.js';
import { writeQuantError } from '../src/monitor/trainer-tensorboard.js';
import { GPT } from '../src/nn/gpt.js';
import { AdamW } from '../src/optim/adamw.js';
import { MemoryFileSystem } from '../src/runtime/fs.js';
import { Heap } from '../src/tensor/heap.js';
import { type StepInfo, Trainer } from '../src/train/trainer.js';
import { Rng } from '../src/util/rng.js';
import { crc32cReference, readEvents, readRecords, scalarSeries } from './monitor-reader.js';

const backends: Backend[] = [];
afterEach(() => {
  for (const be of backends.splice(0)) be.dispose();
});

const f32 = Math.fround;

describe('TensorBoard event files', () => {
  it('computes CRC-32C (Castagnoli) through hash-wasm, matching the reference and the standard check value', async () => {
    const crc = await loadCrc32c();
    const check = new TextEncoder().encode('123456789');
    expect(crc(check)).toBe(0xe3069283);
    const rng = new Rng(5);
    for (const n of [0, 1, 7, 64, 1001]) {
      const data = new Uint8Array(n).map(() => rng.int(256));
      expect(crc(data)).toBe(crc32cReference(data));
    }
    expect(maskCrc(0)).toBe(0xa282ead8);
  });

  it('writes events.out.tfevents.<seconds>.<host> whose records, CRCs and protos an independent reader decodes', async () => {
    const fs = new MemoryFileSystem();
    const tb = await TensorBoardWriter.create(fs, 'run/tb', { now: () => 1_700_000_000_500, host: 'box.local' });
    expect(tb.path).toBe('run/tb/events.out.tfevents.1700000000.box.local');
    tb.scalars(3, { 'train/loss': 2.5, 'train/lr': 1e-3, skipped: null });
    tb.scalar('val/loss', NaN, 4);
    tb.histogram('weights/w', [-1, -0.5, 0, 0.25, 0.5, 1, 2], 5);
    tb.text('config', '```json\n{"lr":0.001}\n```', 0);
    await tb.close();
    const events = readEvents(await fs.readFile(tb.path));
    expect(events[0]!.fileVersion).toBe('brain.Event:2');
    expect(events[0]!.wallTime).toBeCloseTo(1_700_000_000.5, 3);
    expect(events.length).toBe(5);
    const [scalars, nan, histo, text] = events.slice(1);
    expect(scalars!.step).toBe(3);
    expect(scalars!.summary!.value.map((v) => [v.tag, v.simpleValue])).toEqual([['train/loss', 2.5], ['train/lr', f32(1e-3)]]);
    expect(nan!.summary!.value[0]!.simpleValue).toBeNaN();
    const h = histo!.summary!.value[0]!.histo!;
    expect(h).toMatchObject({ min: -1, max: 2, num: 7, sum: 2.25, sumSquares: 1 + 0.25 + 0.0625 + 0.25 + 1 + 4 });
    expect(h.bucket.reduce((a, b) => a + b, 0)).toBe(7);
    expect(h.bucketLimit.at(-1)).toBe(2);
    const tv = text!.summary!.value[0]!;
    expect(tv.metadata!.pluginData!.pluginName).toBe('text');
    expect(tv.tensor!.dtype).toBe(7); // DT_STRING
    expect(new TextDecoder().decode(tv.tensor!.stringVal[0])).toBe('```json\n{"lr":0.001}\n```');
  });

  it('refuses an empty directory or one that is a file, naming it', async () => {
    const fs = new MemoryFileSystem();
    await fs.writeFile('taken', 'x');
    await expect(TensorBoardWriter.create(fs, '')).rejects.toThrow(/tensorboard: the directory is empty/);
    await expect(TensorBoardWriter.create(fs, 'taken/tb')).rejects.toThrow(/^tensorboard taken\/tb: cannot create the directory \(taken.*: not a directory\); give a directory for the event files$/);
  });

  it('buckets a histogram as (limit[i-1], limit[i]] with every finite value counted once', () => {
    const h = histogramOf([0, 1, 2, 3, 4, Infinity, NaN], 4);
    expect(h.bucketLimit).toEqual([1, 2, 3, 4]);
    expect(h.bucket).toEqual([2, 1, 1, 1]); // 0 (the minimum) and 1 share the first bucket
    expect(h.num).toBe(5);
  });

  it('the reader it is tested with rejects a flipped byte (the CRCs are real)', async () => {
    const fs = new MemoryFileSystem();
    const tb = await TensorBoardWriter.create(fs, 'tb', { host: 'h' });
    tb.scalar('a', 1, 1);
    await tb.flush();
    const bytes = await fs.readFile(tb.path);
    expect(readRecords(bytes).length).toBe(2);
    const bad = bytes.slice();
    bad[bad.length - 6]! ^= 1;
    expect(() => readRecords(bad)).toThrow(/data CRC mismatch/);
  });

  it('a Trainer with `tensorboard` logs every step\'s loss, lr and grad norm, tokens/s and each evaluation', async () => {
    const backend = await createBackend('wasm');
    backends.push(backend);
    const heap = new Heap(backend);
    const text = readFileSync(new URL('../examples/data/tinyshakespeare.txt', import.meta.url), 'utf8').slice(0, 20000);
    const dataset = TextDataset.fromText(text, { tokenizer: 'char' });
    const model = new GPT({ vocabSize: dataset.tokenizer.vocabSize, contextLength: 16, layers: 1, heads: 2, dim: 16, bitlinear: true });
    model.materialize(heap, new Rng(1));
    const optimizer = new AdamW(model.params, { lr: 1e-2, clipNorm: 1 });
    const fs = new MemoryFileSystem();
    const tb = await TensorBoardWriter.create(fs, 'tb', { host: 'h' });
    const steps: StepInfo[] = [];
    const evals: number[] = [];
    const trainer = new Trainer({
      model, dataset, optimizer,
      options: {
        iters: 12, batchSize: 4, contextLength: 16, schedule: { kind: 'cosine', peakLr: 1e-2, warmup: 3, totalSteps: 12 },
        evalEvery: 6, evalIters: 2, logEvery: 4, tensorboard: tb,
        onStep: (i) => steps.push(i),
        onEval: (i) => void evals.push(i.valLoss),
      },
    });
    await trainer.train();
    const series = scalarSeries(readEvents(await fs.readFile(tb.path)));
    expect(series.get('train/loss')).toEqual(steps.map((s) => ({ step: s.step, value: f32(s.loss) })));
    expect(series.get('train/lr')!.map((p) => p.value)).toEqual(steps.map((s) => f32(s.lr)));
    const gn = series.get('train/grad_norm')!;
    expect(gn.map((p) => p.step)).toEqual(steps.map((s) => s.step));
    expect(gn.every((p) => p.value > 0 && Number.isFinite(p.value))).toBe(true);
    expect(series.get('train/tokens_per_s')!.map((p) => p.step)).toEqual([4, 8, 12]);
    expect(series.get('val/loss')).toEqual([{ step: 6, value: f32(evals[0]!) }, { step: 12, value: f32(evals[1]!) }]);

    // an error-analysis report: scalars per projection and histograms of latent weights and codes
    const name = 'model.layers.0.self_attn.q_proj';
    const w = await model.params.getParam(`${name}.weight`).data();
    await writeQuantError(tb, { event: 'quant_error', step: 12, layers: [{ name, precision: 'ternary', weight_sqnr_db: 9.5, activation_sqnr_db: null, ternary: { neg: 0.25, zero: 0.5, pos: 0.25 }, flip_rate: 0.01, scale: 30 }] }, model.params);
    const events = readEvents(await fs.readFile(tb.path));
    const after = scalarSeries(events);
    expect(after.get(`quant/${name}/weight_sqnr_db`)).toEqual([{ step: 12, value: 9.5 }]);
    expect(after.has(`quant/${name}/activation_sqnr_db`)).toBe(false);
    expect(after.get(`quant/${name}/flip_rate`)).toEqual([{ step: 12, value: f32(0.01) }]);
    const histos = new Map(events.flatMap((e) => (e.summary?.value ?? []).filter((v) => v.histo).map((v) => [v.tag, v.histo!] as const)));
    const wh = histos.get(`weights/${name}`)!;
    expect(wh.num).toBe(w.length);
    expect(wh.min).toBe(Math.min(...w));
    expect(wh.max).toBe(Math.max(...w));
    expect(wh.bucket.reduce((a, b) => a + b, 0)).toBe(w.length);
    expect(histos.get(`codes/${name}`)!.bucket).toEqual([w.length / 4, w.length / 2, w.length / 4]);
  });
});
