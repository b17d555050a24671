// The synthetic "repeat the pattern" task the training tests learn (train, rope, bitlinear-model,
// webgpu-training, webgpu-browser; test/portable/webgpu-page.mjs has its browser copy).
import type { TokenBatch } from '../src/optim/train-step.js';
import type { Rng } from '../src/util/rng.js';

/**
 * "Repeat the pattern": each row is a random pattern of `period` tokens from [1, V) repeated;
 * the target is the next token. The first `period - 1` targets cannot be known yet and are
 * the blank token 0, so every target is predictable and the loss can approach 0; the model
 * must learn to attend `period - 1` positions back. Uniform guessing scores ln V.
 */
export function repeatPatternBatch(rng: Rng, B: number, T: number, V: number, period = 4): TokenBatch {
  const tokens = new Int32Array(B * T);
  const targets = new Int32Array(B * T);
  const pattern = new Int32Array(period);
  for (let b = 0; b < B; b++) {
    for (let i = 0; i < period; i++) pattern[i] = 1 + rng.int(V - 1);
    for (let t = 0; t < T; t++) {
      tokens[b * T + t] = pattern[t % period]!;
      targets[b * T + t] = t < period - 1 ? 0 : pattern[(t + 1) % period]!;
    }
  }
  return { tokens, targets, B, T };
}
