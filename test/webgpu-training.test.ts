// Training through the webgpu backend (gpu/): whole-model gradients against the js f64 reference,
// a short training run whose loss curve stays with the wasm backend's, a repeat run that is bit
// for bit the same on one adapter, and the Trainer (async reads of losses and the optimizer's
// guard). Node + Dawn + SwiftShader here; skipped with the reason printed only where no adapter
// exists, and never under CI=true.
import { describe, expect, it } from 'vitest';
import type { Backend } from '../src/backend/backend.js';
import { JsBackend } from '../src/backend/js/index.js';
import { createWasmBackend } from '../src/backend/wasm/index.js';
import { GPT, type GPTConfig } from '../src/nn/gpt.js';
import { AdamW } from '../src/optim/adamw.js';
import { trainStep } from '../src/optim/train-step.js';
import { repeatPatternBatch } from './pattern-task.js';
import { Heap } from '../src/tensor/heap.js';
import { Rng } from '../src/util/rng.js';
import { webgpuOrReason } from './portable/webgpu-harness.js';
import type { WebGpuBackend } from '../gpu/index.js';

const found = await webgpuOrReason();
if (!found.gpu) console.warn(`webgpu: SKIPPING the webgpu training tests: ${found.reason}`);

const FP: GPTConfig = { vocabSize: 11, contextLength: 12, layers: 1, heads: 2, dim: 16 };
const BITNET: GPTConfig = { ...FP, bitlinear: true, norm: 'rms', mlp: 'relu2', pos: 'rope', tiedHead: false };
// SwiftShader is slow (~0.35 s a step here, plus ~9 s compiling the kernels once): few steps
const RUN = { B: 8, T: 12, steps: 8 };

/** Loss and every parameter's gradient after one forward + backward. */
async function gradients(be: Backend, config: GPTConfig): Promise<{ loss: number; grads: Map<string, Float32Array> }> {
  const heap = new Heap(be);
  const model = new GPT(config).materialize(heap, new Rng(5));
  const b = repeatPatternBatch(new Rng(9), 4, config.contextLength, config.vocabSize);
  model.params.zeroGrad();
  const { loss } = model.forward(heap.indices(b.tokens, [b.B, b.T]), heap.indices(b.targets, [b.B, b.T]));
  const value = loss!.item();
  loss!.backward();
  const grads = await model.params.exportBlock(model.params.gradOffset);
  heap.resetArena();
  return { loss: await value, grads };
}

async function trainRun(be: Backend, config: GPTConfig): Promise<number[]> {
  const heap = new Heap(be);
  const model = new GPT(config).materialize(heap, new Rng(42));
  const opt = new AdamW(model.params, { lr: 3e-2, betas: [0.9, 0.95], weightDecay: 0.01, clipNorm: 1 });
  const data = new Rng(7);
  const losses: number[] = [];
  for (let s = 0; s < RUN.steps; s++) losses.push(await trainStep(heap, model, opt, repeatPatternBatch(data, RUN.B, RUN.T, config.vocabSize)));
  return losses;
}

describe.skipIf(!found.gpu)(`training through the webgpu backend (${found.gpu?.adapter ?? 'no adapter'})`, () => {
  const gpu = found.gpu as WebGpuBackend;

  for (const [name, config, rtol] of [['an FP GPT (LayerNorm, GELU, learned positions)', FP, 1e-4], ['a BitNet GPT (BitLinear, RMSNorm, relu2, RoPE)', BITNET, 2e-3]] as const) {
    it(`gradients of ${name} agree with the js f64 reference (every parameter, rtol ${rtol} of its largest gradient)`, async () => {
      const ref = await gradients(new JsBackend({ dtype: 'f64' }), config);
      const got = await gradients(gpu, config);
      expect(Math.abs(got.loss - ref.loss)).toBeLessThan(1e-4 * ref.loss);
      for (const [pname, g] of ref.grads) {
        const h = got.grads.get(pname)!;
        const scale = g.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
        for (let i = 0; i < g.length; i++) {
          if (Math.abs(h[i]! - g[i]!) > rtol * scale + 1e-7) expect.fail(`${pname}[${i}]: webgpu ${h[i]} vs js ${g[i]} (largest |grad| ${scale})`);
        }
      }
    });
  }

  it(`a ${RUN.steps}-step BitNet run tracks the wasm backend's loss curve, and repeats bit for bit with no new GPU buffer`, async () => {
    const t0 = performance.now();
    const wasm = await trainRun(await createWasmBackend(), BITNET);
    const t1 = performance.now();
    const first = await trainRun(gpu, BITNET);
    const t2 = performance.now();
    const buffers = gpu.buffersCreated;
    const second = await trainRun(gpu, BITNET);
    expect(gpu.buffersCreated, 'GPU buffers created by a second run (pooled: none)').toBe(buffers);
    console.log(`run seconds: wasm ${((t1 - t0) / 1000).toFixed(2)}, webgpu ${((t2 - t1) / 1000).toFixed(2)} then ${((performance.now() - t2) / 1000).toFixed(2)}`);
    expect(second).toEqual(first); // same adapter, same bits (fixed reduction orders, no atomics)
    // measured on SwiftShader: within 3e-7 of wasm at every step (the same f32 math, other sum orders)
    for (let s = 0; s < RUN.steps; s++) expect(Math.abs(first[s]! - wasm[s]!), `step ${s}: webgpu ${first[s]} vs wasm ${wasm[s]}`).toBeLessThan(1e-3 * wasm[s]!);
    console.log(`webgpu vs wasm, ${RUN.steps} steps: first ${first[0]!.toFixed(4)} / ${wasm[0]!.toFixed(4)}, last ${first[RUN.steps - 1]!.toFixed(4)} / ${wasm[RUN.steps - 1]!.toFixed(4)}`);
  });
});
