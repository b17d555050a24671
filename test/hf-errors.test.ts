// Bad Hugging Face directories and config.json files: one clear error naming the file, the key
// or tensor, and the fix — raised before any weight is written. And the sharded layout
// (model.safetensors.index.json) reading the same model as the single file.
import { readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import type { Backend } from '../src/backend/backend.js';
import { WasmBackend } from '../src/backend/wasm/index.js';
import { HfCheckpointError, loadPretrained } from '../src/io/hf/index.js';
import { decodeSafetensors, encodeSafetensors, type SafetensorsTensor } from '../src/io/safetensors.js';
import { HfConfigError, hfConfigOf, llamaConfigFromHf } from '../src/nn/hf-config.js';
import { resolveLlamaConfig } from '../src/nn/llama.js';
import { MemoryFileSystem } from '../src/runtime/fs-memory.js';

const FIXTURES = new URL('../../shared/fixtures/hf/', import.meta.url).pathname;
const backends: Backend[] = [];
afterAll(() => backends.forEach((b) => b.dispose()));
const wasm = () => {
  const be = WasmBackend.createSync();
  backends.push(be);
  return be;
};

const fixtureConfig = (name: string) => JSON.parse(readFileSync(`${FIXTURES}${name}/config.json`, 'utf8')) as Record<string, unknown>;
const fixtureTensors = (name: string) => decodeSafetensors(new Uint8Array(readFileSync(`${FIXTURES}${name}/model.safetensors`)), { source: name }).tensors;

/** A model directory `/m` in memory with these files. */
function dir(files: Record<string, string | Uint8Array | object>): MemoryFileSystem {
  const out: Record<string, string | Uint8Array> = {};
  for (const [k, v] of Object.entries(files)) out[`/m/${k}`] = typeof v === 'string' || v instanceof Uint8Array ? v : JSON.stringify(v);
  return new MemoryFileSystem(out);
}

async function loadError(fs: MemoryFileSystem): Promise<Error> {
  try {
    await loadPretrained('/m', { fs, backend: wasm() });
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected the load to fail');
}

describe('config.json mapping (llamaConfigFromHf)', () => {
  const base = fixtureConfig('tiny-llama-gqa');
  const refuse = (patch: Record<string, unknown>) => () => llamaConfigFromHf({ ...base, ...patch }, 'x/config.json');

  it('refuses an unknown model_type, naming the file, the key and the supported types', () => {
    expect(refuse({ model_type: 'mistral' })).toThrow(/^x\/config\.json: model_type "mistral" is not supported; supported: "llama" \(LlamaForCausalLM\) and "bitnet"/);
  });

  it('refuses rope_scaling types it does not implement, sliding windows and mixture-of-experts keys', () => {
    expect(refuse({ rope_scaling: { rope_type: 'yarn', factor: 4, original_max_position_embeddings: 4096 } })).toThrow(/config\.json: rope_scaling .* RoPE scaling type "yarn" is not implemented; supported: null, \{"rope_type": "default"\}, "linear" and "llama3"/);
    expect(refuse({ rope_scaling: { type: 'dynamic', factor: 2 } })).toThrow(/"dynamic" is not implemented/);
    expect(refuse({ rope_scaling: { rope_type: 'llama3', factor: 32 } })).toThrow(/config\.json: rope_scaling\.low_freq_factor must be a finite number > 0, got undefined/);
    expect(refuse({ rope_scaling: { rope_type: 'linear', factor: 2, beta: 1 } })).toThrow(/rope_scaling\.beta is not supported for rope_type "linear"/);
    expect(refuse({ sliding_window: 4096 })).toThrow(/sliding_window 4096 is not supported: sliding-window attention is not implemented/);
    expect(refuse({ num_local_experts: 8 })).toThrow(/num_local_experts \(mixture of experts\) is not supported/);
    expect(refuse({ rope_interleaved: true })).toThrow(/rope_interleaved true is not supported/);
    expect(refuse({ hidden_act: 'gelu' })).toThrow(/hidden_act "gelu" is not supported; supported: "silu" \(SwiGLU\) and "relu2"/);
    expect(refuse({ some_new_key: 1 })).toThrow(/some_new_key is not a key this library understands for model_type "llama"; supported keys: vocab_size/);
  });

  it('refuses values out of range, naming the key', () => {
    expect(refuse({ num_key_value_heads: 3 })).toThrow(/^x\/config\.json: num_key_value_heads 3 must divide num_attention_heads 4/);
    expect(refuse({ hidden_size: -64 })).toThrow(/hidden_size must be a positive integer, got -64/);
    expect(refuse({ rms_norm_eps: 0 })).toThrow(/rms_norm_eps must be a finite number > 0/);
    expect(refuse({ vocab_size: undefined })).toThrow(/vocab_size is missing/);
    expect(refuse({ head_dim: 7 })).toThrow(/head_dim 7 must be even/);
    expect(refuse({ architectures: ['LlamaForSequenceClassification'] })).toThrow(/architectures .* expected \["LlamaForCausalLM"\]/);
    expect(() => llamaConfigFromHf({ ...fixtureConfig('tiny-bitnet-bf16'), quantization_config: { quant_method: 'gptq' } }, 'b/config.json'))
      .toThrow(/b\/config\.json: quantization_config\.quant_method "gptq" is not supported; supported: "bitnet"/);
    expect(refuse({ num_key_value_heads: 3 })).toThrow(HfConfigError);
  });

  it("reads transformers 5's rope_parameters and takes transformers' defaults for absent keys", () => {
    const { rope_theta: _t, rms_norm_eps: _e, tie_word_embeddings: _w, ...rest } = base;
    const spec = llamaConfigFromHf({ ...rest, rope_parameters: { rope_type: 'llama3', rope_theta: 500000, factor: 32, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 } });
    expect(resolveLlamaConfig(spec.config)).toMatchObject({ ropeTheta: 500000, normEps: 1e-6, tiedHead: false, ropeScaling: { kind: 'llama3', factor: 32 } });
    expect(llamaConfigFromHf({ ...rest, rope_parameters: { rope_type: 'default', rope_theta: 1e4 } }).config.ropeScaling).toBeUndefined();
    expect(() => llamaConfigFromHf({ ...base, rope_parameters: { rope_type: 'default' }, rope_scaling: { type: 'linear', factor: 2 } })).toThrow(/rope_scaling and rope_parameters are both given/);
  });

  it('maps Llama 3.1 / 3.2 rope_scaling (llama3) and linear scaling, and writes them back', () => {
    const llama3 = { rope_type: 'llama3', factor: 32.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_position_embeddings: 8192 };
    const spec = llamaConfigFromHf({ ...base, rope_scaling: llama3 });
    expect(spec.config.ropeScaling).toEqual({ kind: 'llama3', factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192 });
    expect(hfConfigOf(spec.config).rope_scaling).toEqual(llama3);
    expect(llamaConfigFromHf({ ...base, rope_scaling: { type: 'linear', factor: 2 } }).config.ropeScaling).toEqual({ kind: 'linear', factor: 2 });
    expect(llamaConfigFromHf({ ...base, rope_scaling: { rope_type: 'default' } }).config.ropeScaling).toBeUndefined();
  });

  it('accepts the keys real checkpoints carry (SmolLM2/TinyLlama style) and round-trips through hfConfigOf', () => {
    const spec = llamaConfigFromHf({ ...base, rope_scaling: null, pretraining_tp: 1, attention_dropout: 0.0, use_cache: true, transformers_version: '4.40.0', is_llama_config: true, rope_interleaved: false, initializer_range: 0.02 });
    const back = llamaConfigFromHf(hfConfigOf(spec.config));
    expect(resolveLlamaConfig(back.config)).toMatchObject({ ...resolveLlamaConfig(spec.config), linear: expect.anything(), bitlinearOptions: expect.anything() });
    const bit = llamaConfigFromHf(fixtureConfig('tiny-bitnet-bf16'));
    expect(llamaConfigFromHf(hfConfigOf(bit.config)).quantization).toEqual({ mode: 'online', linearClass: 'autobitlinear' });
  });
});

describe('bad model directories (loadPretrained)', () => {
  const config = fixtureConfig('tiny-llama-gqa');
  const tensors = fixtureTensors('tiny-llama-gqa');
  const without = (names: string[]) => new Map([...tensors].filter(([n]) => !names.includes(n)));

  it('names the missing tensors (the first few) and the fix', async () => {
    const gone = ['model.layers.1.mlp.up_proj.weight', 'model.norm.weight'];
    const err = await loadError(dir({ 'config.json': config, 'model.safetensors': encodeSafetensors(without(gone)) }));
    expect(err).toBeInstanceOf(HfCheckpointError);
    expect(err.message).toMatch(/^\/m: the checkpoint does not match its config\.json \(LlamaForCausalLM, 2 layers\): missing tensors model\.norm\.weight, model\.layers\.1\.mlp\.up_proj\.weight|missing tensors model\.layers\.1\.mlp\.up_proj\.weight, model\.norm\.weight/);
    expect(err.message).toMatch(/use the config\.json that came with these weights/);
  });

  it('names extra tensors the model does not have', async () => {
    const extra = new Map<string, SafetensorsTensor>([...tensors, ['model.layers.2.mlp.up_proj.weight', tensors.get('model.layers.1.mlp.up_proj.weight')!]]);
    const err = await loadError(dir({ 'config.json': config, 'model.safetensors': encodeSafetensors(extra) }));
    expect(err.message).toMatch(/tensor the model does not have: model\.layers\.2\.mlp\.up_proj\.weight/);
  });

  it('gives both shapes when a tensor does not fit the config', async () => {
    const err = await loadError(dir({ 'config.json': { ...config, intermediate_size: 128 }, 'model.safetensors': encodeSafetensors(tensors) }));
    expect(err.message).toMatch(/^\/m\/model\.safetensors: tensor model\.layers\.0\.mlp\.gate_proj\.weight has shape \(160, 64\), but the config\.json model needs \(128, 64\)/);
  });

  it('refuses a dtype it cannot read as a weight, naming the tensor and the supported ones', async () => {
    const t = tensors.get('model.norm.weight')!;
    const bad = new Map([...tensors, ['model.norm.weight', { dtype: 'I32', shape: t.shape, data: new Int32Array(t.shape[0]!) } as SafetensorsTensor]]);
    const err = await loadError(dir({ 'config.json': config, 'model.safetensors': encodeSafetensors(bad) }));
    expect(err.message).toMatch(/model\.safetensors: tensor model\.norm\.weight has dtype I32, .*supported: F32, F16, BF16 \(and U8 for packed BitNet projections\)/);
  });

  it('refuses a shard that the index lists but the directory lacks, naming the index, the shard and the fix', async () => {
    const names = [...tensors.keys()];
    const weightMap = Object.fromEntries(names.map((n, i) => [n, i % 2 ? 'model-00002-of-00002.safetensors' : 'model-00001-of-00002.safetensors']));
    const first = new Map(names.filter((_, i) => i % 2 === 0).map((n) => [n, tensors.get(n)!]));
    const err = await loadError(dir({ 'config.json': config, 'model.safetensors.index.json': { metadata: {}, weight_map: weightMap }, 'model-00001-of-00002.safetensors': encodeSafetensors(first) }));
    expect(err.message).toMatch(/^\/m\/model\.safetensors\.index\.json: weight_map lists shard model-00002-of-00002\.safetensors \(holding .*\), but \/m\/model-00002-of-00002\.safetensors does not exist; download every shard the index names/);
  });

  it('says what to give when there are no safetensors weights at all', async () => {
    const err = await loadError(dir({ 'config.json': config, 'pytorch_model.bin': new Uint8Array(4) }));
    expect(err.message).toMatch(/^\/m: no model\.safetensors or model\.safetensors\.index\.json \(found: config\.json, pytorch_model\.bin\); PyTorch \.bin\/\.pt checkpoints are not read here/);
  });

  it('refuses a config key out of range before allocating anything', async () => {
    const err = await loadError(dir({ 'config.json': { ...config, num_key_value_heads: 3 }, 'model.safetensors': encodeSafetensors(tensors) }));
    expect(err.message).toBe('/m/config.json: num_key_value_heads 3 must divide num_attention_heads 4 (grouped-query attention)');
  });

  it('refuses a tokenizer.json with more ids than the model has', async () => {
    const vocab = Object.fromEntries(Array.from({ length: 120 }, (_, i) => [`t${i}`, i]));
    const tokenizer = { version: '1.0', model: { type: 'BPE', vocab, merges: [] }, added_tokens: [], pre_tokenizer: null, normalizer: null, decoder: null, post_processor: null };
    const err = await loadError(dir({ 'config.json': config, 'model.safetensors': encodeSafetensors(tensors), 'tokenizer.json': tokenizer }));
    expect(err.message).toMatch(/^\/m\/tokenizer\.json: the tokenizer has 120 ids but config\.json vocab_size is 97; the tokenizer belongs to another model/);
  });

  it('reads a sharded checkpoint (index + 2 shards) to the same weights as the single file', async () => {
    const names = [...tensors.keys()];
    const shardOf = (i: number) => (i < names.length / 2 ? 'model-00001-of-00002.safetensors' : 'model-00002-of-00002.safetensors');
    const weightMap = Object.fromEntries(names.map((n, i) => [n, shardOf(i)]));
    const part = (s: string) => encodeSafetensors(new Map(names.filter((_, i) => shardOf(i) === s).map((n) => [n, tensors.get(n)!])));
    const fs = dir({
      'config.json': config, 'model.safetensors.index.json': { metadata: { total_size: 0 }, weight_map: weightMap },
      'model-00001-of-00002.safetensors': part('model-00001-of-00002.safetensors'), 'model-00002-of-00002.safetensors': part('model-00002-of-00002.safetensors'),
    });
    const progress: number[] = [];
    const p = await loadPretrained('/m', { fs, backend: wasm(), onProgress: (e) => progress.push(e.bytesDone / e.bytesTotal) });
    expect(p.weights.files).toEqual(['/m/model-00001-of-00002.safetensors', '/m/model-00002-of-00002.safetensors']);
    const values = p.model.params.exportValuesSync();
    for (const [n, t] of tensors) expect(Array.from(values.get(n)!), n).toEqual(Array.from(t.data as Float32Array));
    expect(progress[progress.length - 1]).toBe(1);
  });
});

describe('a model with rope_scaling', () => {
  it('loads with the scaled RoPE table: position 0 unchanged, later positions rotated by the scaled frequencies', async () => {
    const config = fixtureConfig('tiny-llama-gqa');
    const weights = encodeSafetensors(fixtureTensors('tiny-llama-gqa'));
    const scaled = { ...config, rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 16 } };
    const plain = await loadPretrained('/m', { fs: dir({ 'config.json': config, 'model.safetensors': weights }), backend: wasm() });
    const llama3 = await loadPretrained('/m', { fs: dir({ 'config.json': scaled, 'model.safetensors': weights }), backend: wasm() });
    expect(llama3.model.rotary.scaling).toMatchObject({ kind: 'llama3', factor: 8 });
    const run = (p: typeof plain) => {
      const { logits } = p.model.forward(p.heap.indices(Int32Array.from([3, 14, 15, 92, 65, 35, 89, 79]), [1, 8]));
      const v = Array.from(p.heap.backend.readSync(logits.offset, logits.size));
      p.heap.resetArena();
      return v;
    };
    const [a, b] = [run(plain), run(llama3)];
    const V = 97;
    expect(b.slice(0, V)).toEqual(a.slice(0, V));
    expect(b.slice(7 * V)).not.toEqual(a.slice(7 * V));
  });
});
