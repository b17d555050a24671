// The methods on a PeftModel's frozen base (packed ternary projections): each trains only its
// own tensors, lowers the loss on a learnable task, and writes PEFT-style files that decode back.
import { describe, expect, it } from 'vitest';
import { Heap } from '../src/tensor/heap.js';
import { AdamW } from '../src/optim/adamw.js';
import { Rng } from '../src/util/rng.js';
import { MemoryFileSystem } from '../src/runtime/fs-memory.js';
import { decodeSafetensors } from '../src/io/safetensors.js';
import { decodePromptAdapter } from '../src/peft/prompt-files.js';
import { type PeftMethodB, readMethodAdapter, setupMethod, setupMethodForAdapter } from '../src/peft/methods.js';
import { noGrad } from '../src/autograd/index.js';
import { runTraining } from '../src/train/run.js';
import { DEFAULT_FINETUNE_OPTIONS, loadAdaptedModel, runFinetune } from '../src/peft/finetune.js';
import { latestCheckpoint } from '../src/io/checkpoint-manager.js';
import { generate } from '../src/train/generate.js';
import { createWasmBackend } from '../src/backend/wasm/index.js';
import type { ModelConfig } from '../src/train/model.js';

const base: ModelConfig = {
  vocabSize: 12, contextLength: 16, layers: 2, heads: 2, dim: 16, norm: 'layer', mlp: 'gelu', pos: 'learned',
  bitlinear: true, bitlinearNorm: false, bias: false, tiedHead: false, initStd: 0.1,
} as ModelConfig;

const JSONS: Record<PeftMethodB, Record<string, unknown>> = {
  adalora: { init_r: 4, target_r: 2, lora_alpha: 8, target_modules: 'all-linear', tinit: 5, tfinal: 10, total_step: 40 },
  prefix: { num_virtual_tokens: 4, prefix_projection: true, encoder_hidden_size: 16 },
  'p-tuning-v2': { num_virtual_tokens: 4 },
  prompt: { num_virtual_tokens: 4 },
  bitfit: {},
};

async function run(method: PeftMethodB, steps = 40) {
  const heap = new Heap(await createWasmBackend());
  const m = setupMethod(method, { model: base, json: JSONS[method], totalSteps: steps, gradientCheckpointing: method === 'prefix' });
  m.model.materialize(heap, new Rng(1));
  m.model.initBaseRandom(new Rng(2));
  m.ready(new Rng(3));
  const ext = m.extension();
  const opt = new AdamW(m.model.params, { lr: method === 'prompt' ? 1e-1 : method === 'bitfit' ? 3e-2 : 1e-2, weightDecay: 0 });
  const rng = new Rng(4);
  const losses: number[] = [];
  for (let step = 0; step < steps; step++) {
    const tokens = Int32Array.from({ length: 4 * 10 }, () => rng.int(12));
    const targets = tokens.map((t) => (t % 2 === 0 ? 3 : 7));
    opt.zeroGrad();
    ext.beforeStep?.(step);
    const x = heap.indices(tokens, [4, 10]), y = heap.indices(targets, [4, 10]);
    const loss = ext.loss ? ext.loss(x, y, step) : m.model.forward(x, y).loss!;
    losses.push(loss.itemSync());
    loss.backward();
    opt.step();
    ext.afterUpdate?.(step);
    heap.resetArena();
  }
  const fs = new MemoryFileSystem();
  await m.save(fs, '/adapter', 'runs/base');
  const probe = Int32Array.from({ length: 10 }, (_, i) => (i * 5) % 12);
  const logits = Array.from(noGrad(() => m.model.forward(heap.indices(probe, [1, 10])).logits.dataSync()));
  heap.resetArena();
  return { m, losses, fs, probe, logits };
}

const mean = (a: number[]) => a.reduce((x, y) => x + y) / a.length;

describe('fine-tuning methods on a frozen ternary base', () => {
  for (const method of ['adalora', 'prefix', 'p-tuning-v2', 'prompt', 'bitfit'] as const) {
    it(`${method}: trains only its tensors, lowers the loss, writes its adapter files`, async () => {
      const { m, losses, fs } = await run(method, method === 'prompt' ? 60 : 40);
      expect(m.model.baseKind).toBe('ternary');
      // prompt tuning trains the fewest values (4 × 16) and learns slowest: a smaller margin
      expect(mean(losses.slice(-5))).toBeLessThan(mean(losses.slice(0, 5)) - (method === 'prompt' ? 0.1 : 0.2));
      const names = m.model.params.names();
      if (method === 'adalora') expect(names.every((n) => /\.lora_[ABE](\.weight)?$/.test(n))).toBe(true);
      else if (method === 'bitfit') expect(names.every((n) => /norm\.weight$/.test(n))).toBe(true);
      else expect(names.every((n) => n.startsWith('prompt_encoder.'))).toBe(true);
      const config = JSON.parse(new TextDecoder().decode(await fs.readFile('/adapter/adapter_config.json')));
      const weights = await fs.readFile('/adapter/adapter_model.safetensors');
      if (method === 'prefix' || method === 'p-tuning-v2' || method === 'prompt') {
        const back = decodePromptAdapter({ 'adapter_config.json': JSON.stringify(config), 'adapter_model.safetensors': weights }, method === 'prompt' ? 'PROMPT_TUNING' : 'PREFIX_TUNING');
        expect(back.shape).toEqual(method === 'prompt' ? [4, 16] : [4, 2 * 2 * 16]);
      } else {
        const { tensors, metadata } = decodeSafetensors(weights, { source: 'adapter' });
        expect(metadata?.['bitnet.method']).toBe(method);
        if (method === 'adalora') {
          expect(config).toMatchObject({ peft_type: 'ADALORA', init_r: 4, target_r: 2 });
          const kept = Object.values(config.rank_pattern as Record<string, boolean[]>).flat().filter(Boolean).length;
          expect(kept).toBe(2 * 12); // target_r × 12 projections after tfinal
          expect(tensors.has('base_model.model.model.layers.0.mlp.down_proj.lora_E')).toBe(true);
        } else {
          expect(config).toMatchObject({ bitnet_method: 'BITFIT', targets: 'norm' });
          expect([...tensors.keys()]).toContain('base_model.model.model.norm.weight');
        }
      }
    });
  }

  it('each adapter loads back (readMethodAdapter → setupMethodForAdapter → load) onto the same base with the same logits', async () => {
    for (const method of ['adalora', 'prefix', 'prompt', 'bitfit'] as const) {
      const { fs, probe, logits } = await run(method, 12);
      const adapter = (await readMethodAdapter(fs, '/adapter'))!;
      expect(adapter.method).toBe(method);
      const heap = new Heap(await createWasmBackend());
      const again = setupMethodForAdapter(adapter, base);
      again.model.materialize(heap, new Rng(1));
      again.model.initBaseRandom(new Rng(2)); // the same random base as the trained one
      again.ready(new Rng(3));
      again.load(adapter);
      const got = Array.from(noGrad(() => again.model.forward(heap.indices(probe, [1, 10])).logits.dataSync()));
      expect(Math.max(...got.map((v, i) => Math.abs(v - logits[i]!))), method).toBeLessThan(1e-5);
      // a tensor of another base is refused by name
      const bad = { ...adapter, tensors: new Map([...adapter.tensors].map(([k, t]) => [k, { shape: t.shape, data: t.data.subarray(0, t.data.length - 1) }])) };
      expect(() => again.load(bad), method).toThrow(/another base|needs|shape/);
    }
  });

  it('runFinetune with prefix and prompt tuning: the default context leaves room for the virtual tokens, the adapter samples past one window', async () => {
    const fs = new MemoryFileSystem();
    const text = 'the quick brown fox jumps over the lazy dog. '.repeat(200);
    await fs.writeFileAtomic('/data.txt', new TextEncoder().encode(text));
    await runTraining({ data: '/data.txt', layers: 1, heads: 2, dim: 16, context: 16, batch: 2, iters: 3, evalIters: 1, evalEvery: 0, sampleTokens: 0, errorEvery: 0, threads: 1, out: '/base' }, {}, { fs });
    const ckpt = (await latestCheckpoint(fs, '/base'))!;
    for (const [peft, lora] of [['prefix', { num_virtual_tokens: 4, prefix_projection: true }], ['prompt', { num_virtual_tokens: 3 }]] as const) {
      const r = await runFinetune({ ...DEFAULT_FINETUNE_OPTIONS, from: ckpt, data: '/data.txt', out: `/${peft}`, peft, lora, iters: 3, threads: 1, evalIters: 1, evalEvery: 0 }, {}, { fs });
      expect(r.step).toBe(3);
      const heap = new Heap(await createWasmBackend());
      const { model, tokenizer } = await loadAdaptedModel(fs, heap, ckpt, r.adapterDir);
      expect(model.config.contextLength).toBe(16 - lora.num_virtual_tokens);
      const ids = generate(model, heap, tokenizer.encode('the '), { maxNewTokens: 30, temperature: 1, rng: new Rng(1) });
      expect(ids).toHaveLength(30);
    }
    await expect(runFinetune({ ...DEFAULT_FINETUNE_OPTIONS, from: ckpt, data: '/data.txt', out: '/x', peft: 'prompt', lora: { num_virtual_tokens: 3 }, context: 16, iters: 1, threads: 1 }, {}, { fs }))
      .rejects.toThrow(/--context 16 is longer than the base model's context length 16 less the 3 virtual tokens \(at most 13\)/);
  });

  it('refuses bad settings before building anything', () => {
    expect(() => setupMethod('prefix', { model: base, json: { num_virtual_tokens: -1 }, totalSteps: 10 })).toThrow(/--config prefix: num_virtual_tokens must be a positive integer, got -1/);
    expect(() => setupMethod('bitfit', { model: base, json: { target: 'bias' }, totalSteps: 10 })).toThrow(/--config bitfit: unknown key "target"; BitFit takes only "targets"/);
    expect(() => setupMethod('adalora', { model: base, json: { target_modules: ['qq_proj'] }, totalSteps: 10 })).toThrow(/unknown module "qq_proj"/);
  });
});
