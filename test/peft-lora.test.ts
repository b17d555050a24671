// LoRA (src/peft/): the ops' gradients against central finite differences (f64, js backend),
// PEFT-format save/load round trips, training lowers the loss, and bad input.
//
// Gradient tolerance as in grad.test.ts: max |analytic − numeric| ≤ 1e-6·max(1, max |numeric|), h = 1e-5.
import { describe, expect, it } from 'vitest';
import { JsBackend } from '../src/backend/js/index.js';
import { mul, sum } from '../src/autograd/index.js';
import { loraMergedWeight, loraProjection } from '../src/autograd/ops/lora.js';
import { FrozenDense, FrozenTernary } from '../src/peft/frozen.js';
import { PeftModel } from '../src/peft/model.js';
import { resolveLoraConfig } from '../src/peft/config.js';
import { applyAdapter, loadAdapter, saveAdapter, ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE } from '../src/peft/format.js';
import { selectTargets } from '../src/peft/targets.js';
import { AdamW } from '../src/optim/adamw.js';
import { MemoryFileSystem } from '../src/runtime/fs-memory.js';
import { decodeSafetensors, encodeSafetensors } from '../src/io/safetensors.js';
import { Heap } from '../src/tensor/heap.js';
import type { Tensor } from '../src/tensor/tensor.js';
import type { ModelConfig } from '../src/train/model.js';
import { Rng } from '../src/util/rng.js';

const H = 1e-5;
const TOL = 1e-6;

function values(rng: Rng, n: number, std = 1): Float64Array {
  const v = new Float64Array(n);
  rng.fillNormal(v, 0, std);
  return v;
}

/** max |analytic − numeric| / max(1, max|numeric|) of d(Σ R·f())/d(t) over every coordinate of `t`. */
function gradError(heap: Heap, f: () => Tensor, t: Tensor, R: Float64Array): number {
  const be = heap.backend;
  const loss = (): number => {
    const y = f();
    const v = sum(mul(y, heap.fromArray(R, y.shape))).itemSync();
    heap.tape.clear(); // evaluations only: nothing of them may reach the next backward
    return v;
  };
  // analytic: run forward + backward once, read t's gradient (zeroed first: backward accumulates)
  if (t.gradPtr) be.fill(t.gradPtr, t.size, 0);
  heap.tape.clear();
  const y = f();
  const l = sum(mul(y, heap.fromArray(R, y.shape)));
  l.backward();
  const analytic = Float64Array.from(be.readSync(t.gradPtr, t.size));
  let err = 0;
  let scale = 1;
  const numeric: number[] = [];
  for (let i = 0; i < t.size; i++) {
    const orig = be.readSync(t.offset + i, 1)[0]!;
    be.write(t.offset + i, [orig + H]);
    const lp = loss();
    be.write(t.offset + i, [orig - H]);
    const lm = loss();
    be.write(t.offset + i, [orig]);
    numeric.push((lp - lm) / (2 * H));
  }
  for (let i = 0; i < t.size; i++) {
    err = Math.max(err, Math.abs(analytic[i]! - numeric[i]!));
    scale = Math.max(scale, Math.abs(numeric[i]!));
  }
  return err / scale;
}

const tinyModel = (over: Partial<ModelConfig> = {}): ModelConfig => ({
  vocabSize: 11, contextLength: 8, layers: 2, heads: 2, dim: 16, norm: 'layer', mlp: 'gelu', pos: 'learned',
  bitlinear: false, bias: false, tiedHead: false, initStd: 0.1, ...over,
});

describe('loraProjection: y = base(x) + s·(x·Aᵀ)·Bᵀ', () => {
  it('matches finite differences for x, A, B and the bias on a stacked dense base with two of three parts adapted', () => {
    const heap = new Heap(new JsBackend({ dtype: 'f64' }));
    const rng = new Rng(3);
    const [M, K, R, r] = [5, 7, 4, 3];
    const W = heap.fromArray(values(rng, 3 * R * K), [3 * R, K]);
    const x = heap.fromArray(values(rng, M * K), [M, K], { requiresGrad: true });
    const A0 = heap.fromArray(values(rng, r * K), [r, K], { requiresGrad: true });
    const B0 = heap.fromArray(values(rng, R * r), [R, r], { requiresGrad: true });
    const A2 = heap.fromArray(values(rng, 2 * K), [2, K], { requiresGrad: true });
    const B2 = heap.fromArray(values(rng, R * 2), [R, 2], { requiresGrad: true });
    const bias = heap.fromArray(values(rng, 3 * R), [3 * R], { requiresGrad: true });
    const base = new FrozenDense(W);
    const f = () => loraProjection(x, base, [{ A: A0, B: B0, scale: 1.5, col0: 0 }, { A: A2, B: B2, scale: 0.5, col0: 2 * R }], bias);
    const Rr = values(rng, M * 3 * R);
    for (const t of [x, A0, B0, A2, B2, bias]) expect(gradError(heap, f, t, Rr)).toBeLessThan(TOL);
  });

  it('with dropout: the same mask in forward and backward, so gradients still match finite differences', () => {
    const heap = new Heap(new JsBackend({ dtype: 'f64' }));
    const rng = new Rng(4);
    const [M, K, N, r] = [6, 8, 5, 2];
    const base = new FrozenDense(heap.fromArray(values(rng, N * K), [N, K]));
    const x = heap.fromArray(values(rng, M * K), [M, K], { requiresGrad: true });
    const A = heap.fromArray(values(rng, r * K), [r, K], { requiresGrad: true });
    const B = heap.fromArray(values(rng, N * r), [N, r], { requiresGrad: true });
    const f = () => loraProjection(x, base, [{ A, B, scale: 2, col0: 0 }], null, { p: 0.3, seed: 99 });
    const Rr = values(rng, M * N);
    for (const t of [x, A, B]) expect(gradError(heap, f, t, Rr)).toBeLessThan(TOL);
  });

  it('on a packed ternary base: A and B gradients match finite differences; the base alone is the int8 × ternary product', () => {
    const heap = new Heap(new JsBackend({ dtype: 'f64' }));
    const rng = new Rng(5);
    const [M, K, N, r] = [3, 16, 8, 2];
    const base = new FrozenTernary(N, K, { norm: false, normEps: 1e-5, normWeight: null, group: N * K });
    base.materialize(heap);
    const w = values(rng, N * K);
    base.load(heap, w);
    const x = heap.fromArray(values(rng, M * K), [M, K], { requiresGrad: true });
    const A = heap.fromArray(values(rng, r * K), [r, K], { requiresGrad: true });
    const B = heap.fromArray(values(rng, N * r), [N, r], { requiresGrad: true });
    const f = () => loraProjection(x, base, [{ A, B, scale: 1, col0: 0 }], null);
    const Rr = values(rng, M * N);
    for (const t of [A, B]) expect(gradError(heap, f, t, Rr)).toBeLessThan(TOL);
  });
});

describe('loraMergedWeight: W̃ = W + s·B·A (quantisation-aware mode)', () => {
  it('matches finite differences for A and B of two row blocks', () => {
    const heap = new Heap(new JsBackend({ dtype: 'f64' }));
    const rng = new Rng(6);
    const [R, K, r] = [3, 5, 2];
    const W = heap.fromArray(values(rng, 2 * R * K), [2 * R, K]);
    const A = heap.fromArray(values(rng, r * K), [r, K], { requiresGrad: true });
    const B = heap.fromArray(values(rng, R * r), [R, r], { requiresGrad: true });
    const A1 = heap.fromArray(values(rng, r * K), [r, K], { requiresGrad: true });
    const B1 = heap.fromArray(values(rng, R * r), [R, r], { requiresGrad: true });
    const f = () => loraMergedWeight(W, [{ A, B, scale: 0.7, row0: 0 }, { A: A1, B: B1, scale: 2, row0: R }]);
    const Rr = values(rng, 2 * R * K);
    for (const t of [A, B, A1, B1]) expect(gradError(heap, f, t, Rr)).toBeLessThan(TOL);
  });
});

describe('target_modules, r and layers_to_transform (PEFT rules)', () => {
  const projections = ['model.layers.0.self_attn.q_proj', 'model.layers.0.self_attn.v_proj', 'model.layers.0.mlp.up_proj', 'model.layers.1.self_attn.q_proj'];
  it('matches names by suffix, a regex by full match, all-linear, and filters layers', () => {
    expect(selectTargets(resolveLoraConfig({ target_modules: ['q_proj'] }), projections)).toEqual([projections[0], projections[3]]);
    expect(selectTargets(resolveLoraConfig({ target_modules: '.*\\.0\\..*_proj' }), projections)).toEqual(projections.slice(0, 3));
    expect(selectTargets(resolveLoraConfig({ target_modules: 'all-linear', layers_to_transform: [1] }), projections)).toEqual([projections[3]]);
  });
  it('refuses an unknown module, listing the valid ones', () => {
    expect(() => selectTargets(resolveLoraConfig({ target_modules: ['q_prj'] }), projections)).toThrow(/unknown module "q_prj" \(did you mean "q_proj"\?\); valid names: q_proj, v_proj, up_proj/);
  });
  it('refuses r ≤ 0 and r larger than the layer, naming the limit', () => {
    expect(() => resolveLoraConfig({ r: 0 })).toThrow(/r must be a positive integer, got 0/);
    expect(() => PeftModel.build({ model: tinyModel(), lora: resolveLoraConfig({ r: 17, target_modules: ['q_proj'] }) })).toThrow(/r = 17 for model.layers.0.self_attn.q_proj is larger than the layer allows: it is \(16, 16\), so r must be at most 16/);
  });
});

/** A tiny corpus of token ids and batches from it. */
function batch(rng: Rng, B: number, T: number, V: number): { tokens: Int32Array; targets: Int32Array } {
  const seq = Int32Array.from({ length: B * (T + 1) }, (_, i) => (i * 3 + (i % 5)) % V);
  const tokens = new Int32Array(B * T);
  const targets = new Int32Array(B * T);
  for (let b = 0; b < B; b++) {
    const o = rng.int(3);
    for (let t = 0; t < T; t++) {
      tokens[b * T + t] = seq[b * (T + 1) + t + o] ?? 0;
      targets[b * T + t] = seq[b * (T + 1) + t + 1 + o] ?? 0;
    }
  }
  return { tokens, targets };
}

async function trainedLora(bitlinear: boolean, steps: number, extra: Record<string, unknown> = {}): Promise<{ model: PeftModel; first: number; last: number; heap: Heap }> {
  const heap = new Heap(new JsBackend());
  const model = PeftModel.build({ model: tinyModel({ bitlinear, bitlinearNorm: false }), lora: resolveLoraConfig({ r: 4, lora_alpha: 8, target_modules: 'all-linear', ...extra }) });
  model.materialize(heap, new Rng(1));
  model.initBaseRandom(new Rng(2));
  const opt = new AdamW(model.params, { lr: 1e-2, weightDecay: 0 });
  const rng = new Rng(9);
  let first = 0;
  let last = 0;
  for (let s = 0; s < steps; s++) {
    const { tokens, targets } = batch(rng, 4, 8, 11);
    opt.zeroGrad();
    model.beginStep(s);
    const { loss } = model.forward(heap.indices(tokens, [4, 8]), heap.indices(targets, [4, 8]));
    const v = loss!.itemSync();
    if (s === 0) first = v;
    last = v;
    loss!.backward();
    opt.step();
    heap.resetArena();
  }
  return { model, first, last, heap };
}

describe('PeftModel: a frozen base, trainable adapters only', () => {
  it('starts as the base (B = 0), trains only the adapters and lowers the loss on dense and ternary bases', async () => {
    for (const bitlinear of [false, true]) {
      const { model, first, last } = await trainedLora(bitlinear, 40);
      expect(last).toBeLessThan(first - 0.3);
      // trainable: lora_A / lora_B of all 6 projections (q, k, v, o, up, down) of 2 layers
      expect(model.params.names().every((n) => /\.lora_[AB]\.weight$/.test(n))).toBe(true);
      expect(model.params.names()).toHaveLength(2 * 6 * 2);
      // a ternary base keeps no f32 latent: no projection weight among the base's parameters
      if (bitlinear) expect(model.base.params.names().some((n) => /_proj\.weight$/.test(n))).toBe(false);
    }
  });

  it('modules_to_save trains a copy of the module and leaves the frozen base unchanged', async () => {
    const { model } = await trainedLora(false, 5, { modules_to_save: ['lm_head'] });
    expect(model.params.names()).toContain('lm_head.weight');
    const frozen = model.base.params.getParam('lm_head.weight').dataSync();
    const trained = model.params.getParam('lm_head.weight').dataSync();
    expect(frozen).not.toEqual(trained);
  });
});

describe('PEFT adapter files', () => {
  it('writes adapter_config.json and adapter_model.safetensors with PEFT key names, and loads them back exactly', async () => {
    const fs = new MemoryFileSystem();
    const { model } = await trainedLora(true, 3, { target_modules: ['q_proj', 'v_proj', 'down_proj'], rank_pattern: { down_proj: 2 } });
    await saveAdapter(fs, 'out/adapter', model, { baseModel: 'runs/base' });
    const cfg = JSON.parse(await fs.readText(`out/adapter/${ADAPTER_CONFIG_FILE}`));
    expect(cfg).toMatchObject({ peft_type: 'LORA', r: 4, lora_alpha: 8, target_modules: ['q_proj', 'v_proj', 'down_proj'], bias: 'none', rank_pattern: { down_proj: 2 }, base_model_name_or_path: 'runs/base' });
    const file = decodeSafetensors(await fs.readFile(`out/adapter/${ADAPTER_WEIGHTS_FILE}`), { source: 'x' });
    expect(file.tensors.get('base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight')?.shape).toEqual([4, 16]);
    expect(file.tensors.get('base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight')?.shape).toEqual([16, 4]);
    expect(file.tensors.get('base_model.model.model.layers.1.mlp.down_proj.lora_A.weight')?.shape).toEqual([2, 64]);
    expect(file.metadata?.format).toBe('pt');

    const loaded = await loadAdapter(fs, 'out/adapter');
    const heap = new Heap(new JsBackend());
    const again = PeftModel.build({ model: model.modelConfig as ModelConfig, lora: loaded.config }).materialize(heap, new Rng(77));
    applyAdapter(again, loaded);
    const a = await model.params.exportValues();
    const b = await again.params.exportValues();
    expect([...b.keys()]).toEqual([...a.keys()]);
    for (const [k, v] of a) expect(b.get(k)).toEqual(v);
  });

  it('refuses unknown keys and an adapter of another base, naming the key and both shapes', async () => {
    const fs = new MemoryFileSystem();
    const { model } = await trainedLora(false, 1, { target_modules: ['q_proj'] });
    await saveAdapter(fs, 'a', model);
    const loaded = await loadAdapter(fs, 'a');
    const heap = new Heap(new JsBackend());
    const wider = PeftModel.build({ model: tinyModel({ dim: 32 }), lora: loaded.config }).materialize(heap, new Rng(1));
    expect(() => applyAdapter(wider, loaded)).toThrow(/base_model\.model\.model\.layers\.0\.self_attn\.q_proj\.lora_A\.weight has shape \(4,16\) but this base needs \(4,32\); the adapter was trained on another base model/);
    // a key this model does not have
    const tensors = decodeSafetensors(await fs.readFile(`a/${ADAPTER_WEIGHTS_FILE}`), { source: 'a' }).tensors;
    tensors.set('base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector', { dtype: 'F32', shape: [16], data: new Float32Array(16) });
    await fs.writeFile(`a/${ADAPTER_WEIGHTS_FILE}`, encodeSafetensors(tensors));
    const bad = await loadAdapter(fs, 'a');
    const same = PeftModel.build({ model: tinyModel(), lora: bad.config }).materialize(new Heap(new JsBackend()), new Rng(1));
    expect(() => applyAdapter(same, bad)).toThrow(/unknown key base_model\.model\.model\.layers\.0\.self_attn\.q_proj\.lora_magnitude_vector/);
    // a missing directory
    await expect(loadAdapter(fs, 'nowhere')).rejects.toThrow(/adapter_config\.json is missing/);
  });
});

describe('LoRA on a Hugging Face LLaMA with grouped-query attention (the --from-hf path)', () => {
  it('loads the fixture tiny-llama-gqa as a frozen base, adapts q/k/v/o/gate/up/down and lowers the loss', async () => {
    const { readFileSync } = await import('node:fs');
    const { llamaConfigFromHf } = await import('../src/nn/hf-config.js');
    const { LlamaModel } = await import('../src/nn/llama.js');
    const { readHfWeights } = await import('../src/io/hf/weights.js');
    const { hfFilesFromFileSystem } = await import('../src/io/hf/source.js');
    const { getDefaultFileSystem } = await import('../src/runtime/fs.js');
    const dir = '../shared/fixtures/hf/tiny-llama-gqa';
    const spec = llamaConfigFromHf(JSON.parse(readFileSync(`${dir}/config.json`, 'utf8')));
    const probe = new LlamaModel(spec.config);
    const { values } = await readHfWeights(probe, hfFilesFromFileSystem(await getDefaultFileSystem(), dir), spec);
    const { WasmBackend } = await import('../src/backend/wasm/index.js');
    const heap = new Heap(WasmBackend.createSync());
    const model = PeftModel.build({ model: { family: 'llama', config: spec.config }, lora: resolveLoraConfig({ r: 4, target_modules: 'all-linear' }) }).materialize(heap, new Rng(1));
    model.loadBase(new Map([...values].map(([k, v]) => [k, { shape: probe.params.getParam(k).shape, data: v }])), dir);
    expect(model.targets).toHaveLength(2 * 7);
    expect(model.params.getParam('model.layers.0.self_attn.k_proj.lora_B.weight').shape).toEqual([32, 4]); // 2 kv heads of 16
    const opt = new AdamW(model.params, { lr: 1e-2, weightDecay: 0 });
    const tokens = Int32Array.from({ length: 32 }, (_, i) => (i * 7) % 97);
    const targets = Int32Array.from({ length: 32 }, (_, i) => (i * 7 + 7) % 97);
    const losses: number[] = [];
    for (let s = 0; s < 15; s++) {
      opt.zeroGrad();
      const { loss } = model.forward(heap.indices(tokens, [2, 16]), heap.indices(targets, [2, 16]));
      losses.push(loss!.itemSync());
      loss!.backward();
      opt.step();
      heap.resetArena();
    }
    expect(losses[14]!).toBeLessThan(losses[0]! - 0.5);
  });
});
