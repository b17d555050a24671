// The webgpu backend's scaled RoPE table (rope_scaling linear / llama3, computed on the host in
// f64 as its plain table) against the js reference. Skipped, with the reason printed, where no
// WebGPU adapter is found (as test/webgpu-kernels.test.ts).
import { afterAll, beforeAll, describe, it } from 'vitest';
import type { WebGpuBackend } from '../gpu/index.js';
import { Pair, webgpuOrReason } from './portable/webgpu-harness.js';

const found = await webgpuOrReason();
if (!found.gpu) console.warn(`webgpu: SKIPPING the scaled RoPE table test: ${found.reason}`);

describe.skipIf(!found.gpu)('webgpu ropeTableScaled vs the js reference', () => {
  const gpu = found.gpu as WebGpuBackend;
  let pair: Pair;
  beforeAll(() => { pair = new Pair(gpu); });
  afterAll(() => gpu?.dispose());

  it('llama3 and linear tables equal the js ones (one f32 rounding)', async () => {
    const T = 300, hs = 16;
    pair.alloc('s3', T * hs).alloc('sl', T * hs);
    pair.run((be, p) => {
      be.ropeTableScaled(p('s3'), T, hs, 500000, { kind: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 64 });
      be.ropeTableScaled(p('sl'), T, hs, 10000, { kind: 'linear', factor: 4 });
    });
    await pair.check('s3', 1e-7, 1e-7);
    await pair.check('sl', 1e-7, 1e-7);
  });
});
