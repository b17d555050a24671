/**
 * Autoregressive sampling with temperature and top-k.
 *
 * Each new token runs the model on the last `contextLength` tokens (no KV cache: a sample of a
 * few hundred characters from a small model takes seconds). The softmax runs on the backend
 * (`crossEntropyForward` writes the probabilities), so its exponentials are the kernels' and
 * not `Math.exp`, and a seed gives the same text in every runtime; top-k and the draw from
 * `rng.uniform()` use comparisons and sums only.
 */
import { noGrad } from '../autograd/tape.js';
import type { Heap } from '../tensor/heap.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Rng } from '../util/rng.js';

/** A model that maps tokens (1, T) to logits (1, T, V). */
export interface SamplingModel {
  readonly config: { readonly contextLength: number; readonly vocabSize: number };
  forward(tokens: Tensor): { logits: Tensor };
}

/** Options of `generate`. */
export interface GenerateOptions {
  /** Tokens to append. */
  maxNewTokens: number;
  /**
   * Divide the logits by this before the softmax (default 1; lower is more conservative).
   * 0 is greedy decoding: always the most likely token (the lowest id among equal logits), no draw.
   */
  temperature?: number;
  /** Sample among the k most likely tokens only (0 or undefined: all). */
  topK?: number;
  /** The draws; the same seed gives the same text. */
  rng: Rng;
  /** Called with each new token id (streaming output). */
  onToken?: (id: number) => void;
}

/** A logit that `exp` turns into exactly 0 (top-k's excluded tokens). */
const EXCLUDED = -1e30;

/** Index of the largest value (the first of equal ones); NaN never wins. */
function argmax(v: ArrayLike<number>): number {
  let best = 0;
  let bestV = -Infinity;
  for (let i = 0; i < v.length; i++) {
    if (v[i]! > bestV) {
      bestV = v[i]!;
      best = i;
    }
  }
  return best;
}

/**
 * Append `maxNewTokens` sampled tokens to `prompt` (at least one token) and return the new ones.
 * Call between training steps: it uses and then resets the heap's arena.
 */
export function generate(model: SamplingModel, heap: Heap, prompt: ArrayLike<number>, options: GenerateOptions): Int32Array {
  const { maxNewTokens, rng } = options;
  const temperature = options.temperature ?? 1;
  const { contextLength: T, vocabSize: V } = model.config;
  const topK = options.topK ?? 0;
  if (!(Number.isInteger(maxNewTokens) && maxNewTokens >= 0)) throw new Error(`generate: maxNewTokens must be a non-negative integer, got ${maxNewTokens}`);
  if (!(Number.isFinite(temperature) && temperature >= 0)) throw new Error(`generate: temperature must be a finite number >= 0 (0: greedy), got ${temperature}`);
  if (!(Number.isInteger(topK) && topK >= 0)) throw new Error(`generate: topK must be a non-negative integer, got ${topK}`);
  if (prompt.length === 0) throw new Error('generate: the prompt must hold at least one token (e.g. the id of a newline)');
  for (let i = 0; i < prompt.length; i++) {
    const id = prompt[i]!;
    if (!(Number.isInteger(id) && id >= 0 && id < V)) throw new Error(`generate: prompt id ${id} at index ${i} is outside the vocabulary 0..${V - 1}`);
  }
  if (heap.stats().arenaElements !== 0) throw new Error('generate: the arena holds activations of an unfinished step; call generate between training steps');
  const be = heap.backend;
  const tokens = Array.from(prompt);
  const out = new Int32Array(maxNewTokens);
  const target = new Int32Array(1);
  for (let n = 0; n < maxNewTokens; n++) {
    const window = Int32Array.from(tokens.slice(-T));
    const t = window.length;
    let probs: Float64Array;
    try {
      const logits = noGrad(() => model.forward(heap.indices(window, [1, t])).logits);
      const row = logits.offset + (t - 1) * V;
      if (temperature === 0) {
        const id = argmax(be.readSync(row, V));
        tokens.push(id);
        out[n] = id;
        options.onToken?.(id);
        continue;
      }
      const scaled = heap.alloc(V);
      be.scale(scaled, row, 1 / temperature, V);
      if (topK > 0 && topK < V) {
        const vals = be.readSync(scaled, V);
        const kth = Float64Array.from(vals).sort()[V - topK]!; // ties at the threshold stay in
        const masked = Float64Array.from(vals, (x) => (x >= kth ? x : EXCLUDED));
        be.write(scaled, masked);
      }
      const p = heap.alloc(V);
      const loss = heap.alloc(1);
      const tgt = heap.alloc(1);
      be.writeIndices(tgt, target);
      be.crossEntropyForward(loss, p, scaled, tgt, 1, V);
      probs = Float64Array.from(be.readSync(p, V));
    } finally {
      heap.resetArena();
    }
    let total = 0;
    for (let i = 0; i < V; i++) total += probs[i]!;
    const u = rng.uniform() * total;
    let id = V - 1;
    let cum = 0;
    for (let i = 0; i < V; i++) {
      cum += probs[i]!;
      if (u < cum) {
        id = i;
        break;
      }
    }
    while (id > 0 && probs[id] === 0) id--; // rounding at the top end: never pick an excluded token
    tokens.push(id);
    out[n] = id;
    options.onToken?.(id);
  }
  return out;
}
