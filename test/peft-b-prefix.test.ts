// Prefix tuning (P-tuning v2) and prompt tuning: the ops' gradients against central finite
// differences (f64, js backend; tolerance as grad.test.ts: 1e-6 relative, h = 1e-5), the
// KV-cache semantics (a prefix holding the keys/values of a real sequence S gives the logits of
// S + X on X), PEFT-format round trips, a short run that lowers the loss, and bad input.
import { describe, expect, it } from 'vitest';
import { JsBackend } from '../src/backend/js/index.js';
import { attention, groupedAttention, mul, noGrad, sum } from '../src/autograd/index.js';
import { LlamaModel } from '../src/nn/llama.js';
import { Heap } from '../src/tensor/heap.js';
import { ParameterSet } from '../src/tensor/parameters.js';
import type { Tensor } from '../src/tensor/tensor.js';
import { GPT, type GPTConfig } from '../src/nn/gpt.js';
import { AdamW } from '../src/optim/adamw.js';
import { Rng } from '../src/util/rng.js';
import { dropRows, prependRows, tanh } from '../src/peft/prefix-ops.js';
import { PrefixTuning, checkPrefixShape, gptPrefixShape, prefixShapeOf, prefixTuningConfigJSON, resolvePrefixTuningConfig } from '../src/peft/prefix.js';
import { PromptTuning, promptTuningConfigJSON, resolvePromptTuningConfig } from '../src/peft/prompt.js';
import { decodePromptAdapter, encodePromptAdapter } from '../src/peft/prompt-files.js';
import { freezeParameters } from '../src/peft/model-walk.js';
import { encodeSafetensors } from '../src/io/safetensors.js';

const H = 1e-5;
const TOL = 1e-6;

const f64Heap = () => new Heap(new JsBackend({ dtype: 'f64' }));
const randn = (rng: Rng, n: number, std = 1) => {
  const a = new Float64Array(n);
  rng.fillNormal(a, 0, std);
  return a;
};
const maxAbs = (a: ArrayLike<number>) => Array.from(a).reduce((m, v) => Math.max(m, Math.abs(v)), 0);

/** d(Σ f(inputs)·R)/d(input) analytic vs central differences, worst relative error over all inputs. */
function checkGrad(f: (...t: Tensor[]) => Tensor, shapes: number[][], seed = 3): number {
  const heap = f64Heap();
  const rng = new Rng(seed);
  const values = shapes.map((s) => randn(rng, s.reduce((a, b) => a * b, 1)));
  let R: Float64Array | null = null;
  const loss = (vals: Float64Array[], grad: boolean): { value: number; grads: Float64Array[] } => {
    const ts = vals.map((v, i) => heap.fromArray(v, shapes[i]!, { requiresGrad: grad }));
    const out = grad ? f(...ts) : noGrad(() => f(...ts));
    R ??= randn(new Rng(seed + 1), out.size);
    const l = grad ? sum(mul(out, heap.fromArray(R, out.shape))) : noGrad(() => sum(mul(out, heap.fromArray(R!, out.shape))));
    const value = l.dataSync()[0]!;
    let grads: Float64Array[] = [];
    if (grad) {
      l.backward();
      grads = ts.map((t) => Float64Array.from(t.grad ? t.grad.dataSync() : new Float64Array(t.size)));
    }
    heap.resetArena();
    return { value, grads };
  };
  const { grads } = loss(values, true);
  let worst = 0;
  values.forEach((v, i) => {
    const numeric = new Float64Array(v.length);
    for (let j = 0; j < v.length; j++) {
      const keep = v[j]!;
      v[j] = keep + H;
      const up = loss(values, false).value;
      v[j] = keep - H;
      const down = loss(values, false).value;
      v[j] = keep;
      numeric[j] = (up - down) / (2 * H);
    }
    let err = 0;
    for (let j = 0; j < v.length; j++) err = Math.max(err, Math.abs(grads[i]![j]! - numeric[j]!));
    worst = Math.max(worst, err / Math.max(1, maxAbs(numeric)));
  });
  return worst;
}

describe('prefix ops: gradients vs finite differences', () => {
  it('prependRows: into columns [at, at+width) from a strided source, the rest zero', () => {
    expect(checkGrad((x, s) => prependRows(x, 3, { source: s, col: 2, width: 4, at: 1 }), [[2, 5, 7], [3, 9]])).toBeLessThan(TOL);
    expect(checkGrad((x, s) => prependRows(x, 2, { source: s, col: 0, width: 6, at: 0 }), [[3, 1, 6], [2, 6]])).toBeLessThan(TOL);
    expect(checkGrad((x) => prependRows(x, 4, null), [[2, 3, 5]])).toBeLessThan(TOL);
  });

  it('dropRows and tanh', () => {
    expect(checkGrad((y) => dropRows(y, 3), [[2, 7, 5]])).toBeLessThan(TOL);
    expect(checkGrad((x) => tanh(x), [[4, 9]])).toBeLessThan(TOL);
  });

  it('attention over [prefix; tokens] with the prefix in k, v: gradients to the tokens and the prefix', () => {
    // qkv (B=2, T=5, 3C), C = 8, 2 heads; prefix (P=3, 2C) in columns [C, 3C)
    const f = (qkv: Tensor, kv: Tensor) => dropRows(attention(prependRows(qkv, 3, { source: kv, col: 0, width: 16, at: 8 }), 2), 3);
    expect(checkGrad(f, [[2, 5, 24], [3, 16]])).toBeLessThan(TOL);
  });
});

const tiny = (extra: Partial<GPTConfig> = {}): GPTConfig => ({ vocabSize: 11, contextLength: 12, layers: 2, heads: 2, dim: 8, ...extra });

/** A frozen base GPT on a heap, and a trainable set for the adapter. */
function setup(heap: Heap, cfg: GPTConfig, seed = 5) {
  const model = new GPT(cfg).materialize(heap, new Rng(seed));
  freezeParameters(model);
  return { model, trainable: new ParameterSet() };
}

/** The logits of `model` on `tokens` (1, T) as numbers. */
function logits(heap: Heap, model: GPT, tokens: number[]): number[] {
  const out = noGrad(() => Array.from(model.forward(heap.indices(Int32Array.from(tokens), [1, tokens.length])).logits.dataSync()));
  heap.resetArena();
  return out;
}

describe('prefix tuning', () => {
  for (const pos of ['learned', 'rope'] as const) {
    it(`a prefix of S's keys and values gives S + X's logits on X (KV-cache semantics, ${pos} positions)`, () => {
      const heap = f64Heap();
      const { model, trainable } = setup(heap, tiny({ pos, norm: 'rms', mlp: 'swiglu' }));
      const S = [3, 1, 4], X = [1, 5, 9, 2, 6];
      const P = S.length, C = 8, L = 2;
      // capture every layer's (rotated) k and v of S with a pass-through hook
      const captured: Float64Array[] = [];
      model.blocks.forEach((b, l) => {
        b.attn.kvPrefix = { attend: (qkv, heads, rotary) => {
          const q = rotary ? rotary.forward(qkv, heads) : qkv;
          captured[l] = Float64Array.from(q.dataSync());
          return attention(q, heads);
        } };
      });
      logits(heap, model, S);
      const rows = new Float64Array(P * L * 2 * C);
      for (let p = 0; p < P; p++) for (let l = 0; l < L; l++) rows.set(captured[l]!.subarray(p * 3 * C + C, p * 3 * C + 3 * C), p * L * 2 * C + l * 2 * C);
      model.blocks.forEach((b) => (b.attn.kvPrefix = null));
      const full = logits(heap, model, [...S, ...X]).slice(P * 11);

      const prefix = new PrefixTuning(resolvePrefixTuningConfig({ num_virtual_tokens: P }), gptPrefixShape(model), trainable);
      trainable.materialize(heap, new Rng(1));
      prefix.loadPromptEmbeddings(rows);
      prefix.attach(model);
      const got = logits(heap, model, X);
      let err = 0;
      for (let i = 0; i < full.length; i++) err = Math.max(err, Math.abs(got[i]! - full[i]!));
      expect(err).toBeLessThan(1e-12);
    });
  }

  it('with grouped-query attention (a LLaMA model, 4 heads, 2 kv heads): the same KV-cache semantics, and the PEFT config names the kv width', () => {
    const heap = f64Heap();
    const model = new LlamaModel({ vocabSize: 11, contextLength: 12, layers: 2, heads: 4, kvHeads: 2, dim: 16, hidden: 24 }).materialize(heap, new Rng(8));
    freezeParameters(model);
    const S = [2, 7], X = [5, 1, 3, 3];
    const P = S.length, D = 2 * 4, L = 2;
    const captured: [Float64Array, Float64Array][] = [];
    model.blocks.forEach((b, l) => {
      b.attn.kvPrefix = {
        attend: () => { throw new Error('not the fused path'); },
        attendGrouped: (q, k, v, h, kvh, rotary) => {
          const kr = rotary.rotate(k);
          captured[l] = [Float64Array.from(kr.dataSync()), Float64Array.from(v.dataSync())];
          return groupedAttention(rotary.rotate(q), kr, v, h, kvh);
        },
      };
    });
    logits(heap, model as unknown as GPT, S);
    const rows = new Float64Array(P * L * 2 * D);
    for (let p = 0; p < P; p++) for (let l = 0; l < L; l++) {
      rows.set(captured[l]![0].subarray(p * D, (p + 1) * D), p * L * 2 * D + 2 * l * D);
      rows.set(captured[l]![1].subarray(p * D, (p + 1) * D), p * L * 2 * D + (2 * l + 1) * D);
    }
    model.blocks.forEach((b) => (b.attn.kvPrefix = null));
    const full = logits(heap, model as unknown as GPT, [...S, ...X]).slice(P * 11);
    const trainable = new ParameterSet();
    const shape = prefixShapeOf(model);
    expect(shape).toEqual({ layers: 2, dim: 16, heads: 4, kvHeads: 2, headDim: 4 });
    const prefix = new PrefixTuning(resolvePrefixTuningConfig({ num_virtual_tokens: P }), shape, trainable);
    trainable.materialize(heap, new Rng(1));
    prefix.loadPromptEmbeddings(rows);
    prefix.attach(model);
    const got = logits(heap, model as unknown as GPT, X);
    expect(Math.max(...got.map((v, i) => Math.abs(v - full[i]!)))).toBeLessThan(1e-12);
    expect(prefixTuningConfigJSON(prefix.config, shape, null)).toMatchObject({ token_dim: 8, num_attention_heads: 2, num_layers: 2 });
  });

  for (const projection of [false, true]) {
    it(`the prefix's gradient (prefix_projection ${projection}) matches finite differences through the frozen GPT`, () => {
      const heap = f64Heap();
      const { model, trainable } = setup(heap, tiny({ pos: 'rope' }));
      const prefix = new PrefixTuning(resolvePrefixTuningConfig({ num_virtual_tokens: 2, prefix_projection: projection, encoder_hidden_size: 6 }), gptPrefixShape(model), trainable);
      trainable.materialize(heap, new Rng(2));
      prefix.attach(model);
      const tokens = Int32Array.from([1, 2, 3, 4, 5, 6, 7, 8]), targets = Int32Array.from([2, 3, 4, 5, 6, 7, 8, 9]);
      const lossOf = () => noGrad(() => model.forward(heap.indices(tokens, [2, 4]), heap.indices(targets, [2, 4])).loss!.dataSync()[0]!);
      model.forward(heap.indices(tokens, [2, 4]), heap.indices(targets, [2, 4])).loss!.backward();
      const grads = heap.backend.readSync(trainable.gradOffset, trainable.blockSize);
      heap.resetArena();
      expect(maxAbs(grads)).toBeGreaterThan(0);
      const vals = heap.backend.readSync(trainable.paramOffset, trainable.blockSize);
      const rng = new Rng(4);
      let worst = 0;
      for (let s = 0; s < 24; s++) {
        const j = rng.int(trainable.blockSize);
        const at = trainable.paramOffset + j;
        heap.backend.write(at, [vals[j]! + H]);
        const up = lossOf();
        heap.resetArena();
        heap.backend.write(at, [vals[j]! - H]);
        const down = lossOf();
        heap.resetArena();
        heap.backend.write(at, [vals[j]!]);
        worst = Math.max(worst, Math.abs((up - down) / (2 * H) - grads[j]!));
      }
      expect(worst / Math.max(1, maxAbs(grads))).toBeLessThan(TOL);
    });
  }

  it('writes PEFT files and reads them back: prompt_embeddings (P, L·2·D) and the config PEFT reads', () => {
    const heap = f64Heap();
    const { model, trainable } = setup(heap, tiny());
    const cfg = resolvePrefixTuningConfig({ num_virtual_tokens: 3, prefix_projection: true, encoder_hidden_size: 5 });
    const prefix = new PrefixTuning(cfg, gptPrefixShape(model), trainable);
    trainable.materialize(heap, new Rng(3));
    prefix.attach(model);
    const before = logits(heap, model, [1, 2, 3, 4]);
    const json = prefixTuningConfigJSON(cfg, gptPrefixShape(model), 'runs/base');
    const files = encodePromptAdapter({ config: json, embeddings: prefix.promptEmbeddings(), shape: [3, prefix.width] });
    const back = decodePromptAdapter(files, 'PREFIX_TUNING');
    expect(back.shape).toEqual([3, 2 * 2 * 8]);
    expect(back.config).toMatchObject({ peft_type: 'PREFIX_TUNING', num_virtual_tokens: 3, token_dim: 8, num_layers: 2, num_attention_heads: 2, prefix_projection: true, encoder_hidden_size: 5 });
    // loaded into a fresh model without the MLP (as PEFT does at inference), the logits are the same
    const heap2 = f64Heap();
    const fresh = setup(heap2, tiny());
    const loadedCfg = resolvePrefixTuningConfig({ ...(back.config as object), prefix_projection: false });
    checkPrefixShape(back.config, gptPrefixShape(fresh.model));
    const loaded = new PrefixTuning(loadedCfg, gptPrefixShape(fresh.model), fresh.trainable);
    fresh.trainable.materialize(heap2, new Rng(9));
    loaded.loadPromptEmbeddings(back.embeddings);
    loaded.attach(fresh.model);
    const after = logits(heap2, fresh.model, [1, 2, 3, 4]);
    expect(Math.max(...after.map((v, i) => Math.abs(v - before[i]!)))).toBeLessThan(1e-6); // f32 file
  });

  it('refuses bad input by name: an unknown key, another base, extra tensors, too long a sequence', () => {
    expect(() => resolvePrefixTuningConfig({ num_virtual_tokens: 0 })).toThrow(/num_virtual_tokens must be a positive integer, got 0/);
    expect(() => resolvePrefixTuningConfig({ num_virtual_tokens: 4, prefix_len: 3 } as never)).toThrow(/unknown key "prefix_len"/);
    const heap = f64Heap();
    const { model } = setup(heap, tiny());
    expect(() => checkPrefixShape({ num_layers: 30, token_dim: 576 }, gptPrefixShape(model))).toThrow(/num_layers is 30 but the base model needs 2; the adapter was trained for another base/);
    const bad = { 'adapter_config.json': JSON.stringify({ peft_type: 'PREFIX_TUNING' }), 'adapter_model.safetensors': encodeSafetensors({ prompt_embeddings: { dtype: 'F32', shape: [1, 2], data: new Float32Array(2) }, extra: { dtype: 'F32', shape: [1], data: new Float32Array(1) } }) };
    expect(() => decodePromptAdapter(bad, 'PREFIX_TUNING')).toThrow(/unknown tensor "extra"; a PREFIX_TUNING adapter holds only prompt_embeddings/);
    const trainable = new ParameterSet();
    const prefix = new PrefixTuning(resolvePrefixTuningConfig({ num_virtual_tokens: 4 }), gptPrefixShape(model), trainable);
    trainable.materialize(heap, new Rng(1));
    expect(() => prefix.loadPromptEmbeddings(new Float32Array(5))).toThrow(/prompt_embeddings has 5 values but this model needs \(4, 32\)/);
    prefix.attach(model);
    expect(() => logits(heap, model, Array.from({ length: 10 }, () => 1))).toThrow(/and 4 virtual tokens exceed contextLength 12; crop the sequence to the last 8 tokens/);
  });

  it('a short run on a frozen BitLinear base lowers the loss (wasm; targets 5 or 9 by the parity of the token), and the base does not move', async () => {
    const { createWasmBackend } = await import('../src/backend/wasm/index.js');
    const heap = new Heap(await createWasmBackend());
    const { model, trainable } = setup(heap, { vocabSize: 16, contextLength: 16, layers: 2, heads: 2, dim: 16, bitlinear: true, bitlinearOptions: { norm: false } });
    const prefix = new PrefixTuning(resolvePrefixTuningConfig({ num_virtual_tokens: 4, prefix_projection: true }), gptPrefixShape(model), trainable);
    trainable.materialize(heap, new Rng(2));
    prefix.attach(model);
    const base = Float32Array.from(heap.backend.readSync(model.params.paramOffset, model.params.blockSize));
    const opt = new AdamW(trainable, { lr: 1e-2, weightDecay: 0 });
    const rng = new Rng(7);
    const losses: number[] = [];
    for (let s = 0; s < 30; s++) {
      const tokens = Int32Array.from({ length: 4 * 12 }, () => rng.int(16));
      opt.zeroGrad();
      const { loss } = model.forward(heap.indices(tokens, [4, 12]), heap.indices(tokens.map((t) => (t % 2 === 0 ? 5 : 9)), [4, 12]));
      loss!.backward();
      opt.step();
      losses.push(loss!.dataSync()[0]!);
      heap.resetArena();
    }
    const first = losses.slice(0, 5).reduce((a, b) => a + b) / 5, last = losses.slice(-5).reduce((a, b) => a + b) / 5;
    expect(last).toBeLessThan(first - 0.2);
    expect(Float32Array.from(heap.backend.readSync(model.params.paramOffset, model.params.blockSize))).toEqual(base);
  });
});

describe('prompt tuning', () => {
  it("a soft prompt of S's token embeddings gives S + X's logits on X (learned positions 0..P-1 for it)", () => {
    const heap = f64Heap();
    const { model, trainable } = setup(heap, tiny());
    const S = [7, 0, 2], X = [4, 4, 1, 8];
    const full = logits(heap, model, [...S, ...X]).slice(S.length * 11);
    const prompt = new PromptTuning(resolvePromptTuningConfig({ num_virtual_tokens: 3, prompt_tuning_init: 'TEXT', prompt_tuning_init_text: 'x' }), 8, trainable);
    trainable.materialize(heap, new Rng(1));
    prompt.attach(model, { initTokenIds: S });
    const got = logits(heap, model, X);
    expect(Math.max(...got.map((v, i) => Math.abs(v - full[i]!)))).toBeLessThan(1e-12);
  });

  it('its gradient matches finite differences (RoPE model), and the files round-trip', () => {
    const heap = f64Heap();
    const { model, trainable } = setup(heap, tiny({ pos: 'rope' }));
    const cfg = resolvePromptTuningConfig({ num_virtual_tokens: 2 });
    const prompt = new PromptTuning(cfg, 8, trainable);
    trainable.materialize(heap, new Rng(6));
    prompt.attach(model);
    const tokens = Int32Array.from([1, 2, 3, 4, 5, 6]), targets = Int32Array.from([2, 3, 4, 5, 6, 7]);
    const lossOf = () => noGrad(() => model.forward(heap.indices(tokens, [2, 3]), heap.indices(targets, [2, 3])).loss!.dataSync()[0]!);
    model.forward(heap.indices(tokens, [2, 3]), heap.indices(targets, [2, 3])).loss!.backward();
    const grads = Float64Array.from(prompt.embedding.grad!.dataSync());
    heap.resetArena();
    const vals = Float64Array.from(prompt.embedding.dataSync());
    let worst = 0;
    for (let j = 0; j < vals.length; j++) {
      heap.backend.write(prompt.embedding.offset + j, [vals[j]! + H]);
      const up = lossOf();
      heap.resetArena();
      heap.backend.write(prompt.embedding.offset + j, [vals[j]! - H]);
      const down = lossOf();
      heap.resetArena();
      heap.backend.write(prompt.embedding.offset + j, [vals[j]!]);
      worst = Math.max(worst, Math.abs((up - down) / (2 * H) - grads[j]!));
    }
    expect(worst / Math.max(1, maxAbs(grads))).toBeLessThan(TOL);
    const files = encodePromptAdapter({ config: promptTuningConfigJSON(cfg, { layers: 2, dim: 8, heads: 2 }, null), embeddings: prompt.promptEmbeddings(), shape: [2, 8] });
    const back = decodePromptAdapter(files, 'PROMPT_TUNING');
    expect(Array.from(back.embeddings)).toEqual(Array.from(vals, (v) => Math.fround(v)));
    expect(() => decodePromptAdapter(files, 'PREFIX_TUNING')).toThrow(/peft_type is "PROMPT_TUNING", expected "PREFIX_TUNING"/);
  });
});
