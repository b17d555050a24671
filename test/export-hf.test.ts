// Hugging Face exports of LLaMA-family models, checked against the fixtures in
// ../shared/fixtures/hf (written by code that is not ours): the -bf16 BitNet fixture exported as
// hf-packed is the packed fixture byte for byte; exported as hf it is itself; an f32 export
// round-trips every value bit for bit and computes the same logits.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createBackend } from '../src/backend/index.js';
import { hfExportFiles } from '../src/io/export/hf-export.js';
import { bf16BitsToF32 } from '../src/io/gguf/half.js';
import { type SafetensorsTensor, decodeSafetensors } from '../src/io/safetensors.js';
import { llamaConfigFromHf } from '../src/nn/hf-config.js';
import { LlamaModel, resolveLlamaConfig } from '../src/nn/llama.js';
import { Heap } from '../src/tensor/heap.js';
import { Rng } from '../src/util/rng.js';
import { ourLogits } from './llamacpp-harness.js';

const FIXTURES = join(new URL('..', import.meta.url).pathname, '../shared/fixtures/hf');
const raw = (dir: string) => decodeSafetensors(new Uint8Array(readFileSync(join(FIXTURES, dir, 'model.safetensors'))), { source: dir }).tensors;
const asF32 = (m: Map<string, SafetensorsTensor>) => new Map([...m].map(([n, t]) => [n, { dtype: 'F32' as const, shape: t.shape, data: t.dtype === 'BF16' ? Float32Array.from(t.data as Uint16Array, bf16BitsToF32) : (t.data as Float32Array) }]));
const spec = (dir: string) => llamaConfigFromHf(JSON.parse(readFileSync(join(FIXTURES, dir, 'config.json'), 'utf8')), `${dir}/config.json`);
const bytesOf = (t: SafetensorsTensor) => new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
const fileOf = (files: [string, Uint8Array | string][], name: string) => files.find(([n]) => n === name)![1];

describe('hf-packed: the offline BitNet form (U8 codes 4 a byte along dim 0, weight_scale BF16)', () => {
  it('of the tiny-bitnet-bf16 fixture is the tiny-bitnet-packed fixture, tensor for tensor and byte for byte', () => {
    const c = resolveLlamaConfig(spec('tiny-bitnet-bf16').config);
    const { files } = hfExportFiles(c, asF32(raw('tiny-bitnet-bf16')), undefined, { form: 'hf-packed' });
    const ours = decodeSafetensors(fileOf(files, 'model.safetensors') as Uint8Array, { source: 'export' }).tensors;
    const theirs = raw('tiny-bitnet-packed');
    expect([...ours.keys()].sort()).toEqual([...theirs.keys()].sort());
    for (const [name, t] of theirs) {
      const o = ours.get(name)!;
      expect([name, o.dtype, o.shape]).toEqual([name, t.dtype, t.shape]);
      expect(Buffer.from(bytesOf(o)).equals(Buffer.from(bytesOf(t))), name).toBe(true);
    }
    const cfg = JSON.parse(fileOf(files, 'config.json') as string);
    expect(cfg.quantization_config).toEqual({ quant_method: 'bitnet', linear_class: 'bitlinear', quantization_mode: 'offline' });
    expect(llamaConfigFromHf(cfg).config).toMatchObject(spec("tiny-bitnet-packed").config);
  });
});

describe('hf: the trainable form', () => {
  it('of the tiny-bitnet-bf16 fixture (BF16 master weights, online/autobitlinear) is the fixture itself', () => {
    const s = spec('tiny-bitnet-bf16');
    const { files } = hfExportFiles(resolveLlamaConfig(s.config), asF32(raw('tiny-bitnet-bf16')), undefined, { form: 'hf' });
    const ours = decodeSafetensors(fileOf(files, 'model.safetensors') as Uint8Array, { source: 'export' }).tensors;
    for (const [name, t] of raw('tiny-bitnet-bf16')) expect(Buffer.from(bytesOf(ours.get(name)!)).equals(Buffer.from(bytesOf(t))), name).toBe(true);
    const cfg = JSON.parse(fileOf(files, 'config.json') as string);
    expect(cfg).toMatchObject({ architectures: ['BitNetForCausalLM'], model_type: 'bitnet', hidden_act: 'relu2', torch_dtype: 'bfloat16', quantization_config: { linear_class: 'autobitlinear', quantization_mode: 'online' } });
    expect(llamaConfigFromHf(cfg).config).toMatchObject(s.config);
  });

  it('ours → hf (f32) → ours is bit-exact: every tensor and the logits', async () => {
    // a LLaMA with GQA and trained-looking (random) f32 weights that BF16 could not hold
    const c = resolveLlamaConfig({ vocabSize: 50, contextLength: 32, layers: 2, heads: 4, kvHeads: 2, dim: 32, hidden: 48, ropeTheta: 5e5, normEps: 1e-6 });
    const heap = new Heap(await createBackend('js'));
    const model = new LlamaModel(c).materialize(heap, new Rng(9));
    const values = model.params.exportValuesSync();
    const tensors = new Map([...values].map(([n, v]) => [n, { dtype: 'F32' as const, shape: [...model.params.getParam(n).shape], data: v }]));
    const { files } = hfExportFiles(c, tensors, undefined, { form: 'hf' });
    const cfg = llamaConfigFromHf(JSON.parse(fileOf(files, 'config.json') as string));
    const back = decodeSafetensors(fileOf(files, 'model.safetensors') as Uint8Array, { source: 'export' }).tensors;
    expect(JSON.parse(fileOf(files, 'config.json') as string)).toMatchObject({ architectures: ['LlamaForCausalLM'], torch_dtype: 'float32', rope_theta: 5e5, rms_norm_eps: 1e-6 });
    for (const [n, v] of values) expect(Array.from(back.get(n)!.data as Float32Array), n).toEqual(Array.from(v));
    const copy = new LlamaModel(cfg.config).materialize(new Heap(heap.backend), new Rng(1));
    copy.params.importValues(new Map([...back].map(([n, t]) => [n, t.data as Float32Array])));
    const tokens = [1, 7, 3, 49, 0, 12];
    expect(ourLogits(copy, copy.params.heap, tokens).map((r) => Array.from(r))).toEqual(ourLogits(model, heap, tokens).map((r) => Array.from(r)));
    heap.backend.dispose();
  });

  it('refuses what transformers cannot express, naming it', () => {
    const c = resolveLlamaConfig(spec('tiny-bitnet-bf16').config);
    const t = asF32(raw('tiny-bitnet-bf16'));
    expect(() => hfExportFiles(resolveLlamaConfig({ ...spec('tiny-bitnet-bf16').config, bitlinearOptions: { keepFp: ['model.layers.0.mlp.up_proj'] } }), t, undefined, { form: 'hf' })).toThrow(/mixed precision .*model\.layers\.0\.mlp\.up_proj/);
    const missing = new Map(t);
    missing.delete('model.layers.1.mlp.down_proj.weight');
    expect(() => hfExportFiles(c, missing, undefined, { form: 'hf' })).toThrow(/no tensor model\.layers\.1\.mlp\.down_proj\.weight/);
    expect(() => hfExportFiles(resolveLlamaConfig(spec('tiny-llama-gqa').config), asF32(raw('tiny-llama-gqa')), undefined, { form: 'hf-packed' })).toThrow(/full-precision model has no packed ternary form/);
  });
});

describe('bitnet-train export from a checkpoint of the bitnet family', () => {
  it('writes hf-packed equal to the packed fixture, refuses gguf for relu2 and an existing --out, replaces it with --force', async () => {
    const { mkdtempSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { runCli } = await import('../src/cli/commands.js');
    const { saveCheckpoint } = await import('../src/io/checkpoint.js');
    const { getDefaultFileSystem } = await import('../src/runtime/fs.js');
    const dir = mkdtempSync(join(tmpdir(), 'bitnet-export-hf-'));
    try {
      const c = spec('tiny-bitnet-bf16').config;
      // trainer.json config.model of a `--family bitnet` run (RMSNorm, RoPE, relu2, tied)
      const model = { family: 'bitnet', vocabSize: c.vocabSize, contextLength: c.contextLength, layers: c.layers, heads: c.heads, dim: c.dim, norm: 'rms', mlp: 'relu2', pos: 'rope', bitlinear: true, bitlinearNorm: false, bias: false, tiedHead: true, initStd: 0.02, kvHeads: c.kvHeads, headDim: c.headDim, hidden: c.hidden, ropeTheta: c.ropeTheta, normEps: 1e-5 };
      await saveCheckpoint(await getDefaultFileSystem(), join(dir, 'ckpt'), { model: asF32(raw('tiny-bitnet-bf16')), trainer: { step: 7, config: { model }, rng: new Rng(0).state() } });
      let out = '';
      let err = '';
      const io = { stdout: { write: (s: string) => void (out += s) }, stderr: { write: (s: string) => void (err += s) } };
      expect(await runCli(['export', '--ckpt', join(dir, 'ckpt'), '--format', 'hf-packed', '--out', join(dir, 'packed')], io)).toBe(0);
      expect(out).toMatch(/as a Hugging Face directory \(hf-packed\)/);
      const ours = decodeSafetensors(new Uint8Array(readFileSync(join(dir, 'packed/model.safetensors'))), { source: 'x' }).tensors;
      for (const [name, t] of raw('tiny-bitnet-packed')) expect(Buffer.from(bytesOf(ours.get(name)!)).equals(Buffer.from(bytesOf(t))), name).toBe(true);
      expect(await runCli(['export', '--ckpt', join(dir, 'ckpt'), '--format', 'hf-packed', '--out', join(dir, 'packed')], io)).toBe(1);
      expect(err).toMatch(/packed already exists; choose another --out or pass --force/);
      expect(await runCli(['export', '--ckpt', join(dir, 'ckpt'), '--format', 'hf', '--dtype', 'f32', '--out', join(dir, 'packed'), '--force'], io)).toBe(0);
      expect(JSON.parse(readFileSync(join(dir, 'packed/config.json'), 'utf8')).torch_dtype).toBe('float32');
      // loading the export back (the Hugging Face loader) reproduces the checkpoint's model: the same logits, bit for bit
      const { loadPretrained } = await import('../src/io/hf/pretrained.js');
      const backend = await createBackend('js');
      const back = await loadPretrained(join(dir, 'packed'), { backend });
      const orig = new LlamaModel(c).materialize(new Heap(backend), new Rng(3));
      orig.params.importValues(new Map([...asF32(raw('tiny-bitnet-bf16'))].map(([n, t]) => [n, t.data as Float32Array])));
      const tokens = [1, 17, 4, 33, 96, 0, 5];
      expect(ourLogits(back.model, back.heap, tokens).map((r) => Array.from(r))).toEqual(ourLogits(orig, orig.params.heap, tokens).map((r) => Array.from(r)));
      backend.dispose();
      err = '';
      expect(await runCli(['export', '--ckpt', join(dir, 'ckpt'), '--format', 'gguf', '--out', join(dir, 'm.gguf')], io)).toBe(1);
      expect(err).toMatch(/llama\.cpp's bitnet architecture cannot express a relu2 gated MLP/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});

describe('hf: tokenizer files', () => {
  it('writes tokenizer.json and tokenizer_config.json of a Hugging Face tokenizer back, with its BOS/EOS ids in config.json', async () => {
    const { byteLevelTokenizer } = await import('./data-fixtures.js');
    const { HfTokenizer } = await import('../src/data/hf-tokenizer.js');
    const tj = byteLevelTokenizer('llama3');
    const tc = { bos_token: '<|begin_of_text|>', eos_token: '<|endoftext|>', add_bos_token: true };
    const tok = HfTokenizer.fromJSON(tj, tc);
    const c = resolveLlamaConfig({ vocabSize: tok.vocabSize, contextLength: 16, layers: 1, heads: 2, dim: 16, hidden: 32 });
    const heap = new Heap(await createBackend('js'));
    const model = new LlamaModel(c).materialize(heap, new Rng(1));
    const tensors = new Map([...model.params.exportValuesSync()].map(([n, v]) => [n, { dtype: 'F32' as const, shape: [...model.params.getParam(n).shape], data: v }]));
    heap.backend.dispose();
    const { files, notes } = hfExportFiles(c, tensors, tok.toJSON() as never, { form: 'hf' });
    expect(JSON.parse(fileOf(files, 'tokenizer.json') as string)).toEqual(tj);
    expect(JSON.parse(fileOf(files, 'tokenizer_config.json') as string)).toEqual(tc);
    expect(JSON.parse(fileOf(files, 'config.json') as string)).toMatchObject({ bos_token_id: tok.bosId, eos_token_id: tok.eosId });
    expect(notes).toEqual([]);
  });
});
