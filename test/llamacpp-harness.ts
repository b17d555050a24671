// llama.cpp (through node-llama-cpp's prebuilt CPU binaries; nothing is downloaded or built) and
// our model side by side: greedy continuations and teacher-forced top-1 predictions as token ids.
import { type Llama, type LlamaModel, LlamaLogLevel, getLlama } from 'node-llama-cpp';
import { noGrad } from '../src/autograd/tape.js';
import type { Heap } from '../src/tensor/heap.js';
import type { Tensor } from '../src/tensor/tensor.js';

let llamaPromise: Promise<Llama> | undefined;

/** The llama.cpp runtime: CPU only, the prebuilt binary shipped in the npm package, no downloads, no builds. */
export function openLlama(): Promise<Llama> {
  llamaPromise ??= getLlama({ gpu: false, build: 'never', usePrebuiltBinaries: true, skipDownload: true, progressLogs: false, logLevel: process.env.H6_LLAMA_LOG ? LlamaLogLevel.warn : LlamaLogLevel.error });
  return llamaPromise;
}

/** What llama.cpp computes for a GGUF file. */
export interface LlamaCppRun {
  greedy(prompt: readonly number[], n: number): Promise<number[]>;
  /** top-1 next token after each position of `tokens` (one evaluation, no sampling). */
  teacherForcedTop1(tokens: readonly number[]): Promise<number[]>;
  /** The probability llama.cpp gives token `next[i]` after position i of `tokens` (softmax of its logits). */
  teacherForcedProbs(tokens: readonly number[], next: readonly number[]): Promise<number[]>;
  tokenize(text: string): number[];
  model: LlamaModel;
  dispose(): Promise<void>;
}

export async function loadGguf(path: string, contextSize: number): Promise<LlamaCppRun> {
  const llama = await openLlama();
  const model = await llama.loadModel({ modelPath: path, gpuLayers: 0 });
  const run = async <T>(fn: (seq: ReturnType<Awaited<ReturnType<LlamaModel['createContext']>>['getSequence']>) => Promise<T>): Promise<T> => {
    const ctx = await model.createContext({ contextSize: Math.max(256, contextSize), threads: 1, sequences: 1 });
    try {
      return await fn(ctx.getSequence());
    } finally {
      await ctx.dispose();
    }
  };
  const greedyOpts = { generateNext: { token: true, options: { temperature: 0 } } } as const;
  return {
    model,
    tokenize: (text) => Array.from(model.tokenize(text)),
    greedy: (prompt, n) => run(async (seq) => {
      const out: number[] = [];
      let input: Parameters<typeof seq.controlledEvaluate>[0] = [...prompt.slice(0, -1), [prompt[prompt.length - 1]!, greedyOpts]] as never;
      for (let i = 0; i < n; i++) {
        const res = await seq.controlledEvaluate(input);
        const t = res[res.length - 1]?.next.token;
        if (t === undefined || t === null) throw new Error('llama.cpp returned no token');
        out.push(t);
        input = [[t, greedyOpts]] as never;
      }
      return out;
    }),
    teacherForcedTop1: (tokens) => run(async (seq) => {
      const res = await seq.controlledEvaluate(tokens.map((t) => [t, { generateNext: { probabilities: true } }]) as never);
      return tokens.map((_, i) => {
        const probs = res[i]?.next.probabilities;
        if (!probs) throw new Error(`llama.cpp returned no probabilities at position ${i}`);
        return probs.keys().next().value as number;
      });
    }),
    teacherForcedProbs: (tokens, next) => run(async (seq) => {
      const res = await seq.controlledEvaluate(tokens.map((t) => [t, { generateNext: { probabilities: true } }]) as never);
      return tokens.map((_, i) => res[i]?.next.probabilities?.get(next[i]!) ?? 0);
    }),
    dispose: () => model.dispose(),
  };
}

/** A model of ours: tokens (1, T) → logits (1, T, V). */
export interface OurModel {
  readonly config: { readonly contextLength: number; readonly vocabSize: number };
  forward(tokens: Tensor): { logits: Tensor };
}

function argmax(row: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i]! > row[best]!) best = i;
  return best;
}

/** Logits (T, V) of `tokens` under our model, one forward pass. */
export function ourLogits(model: OurModel, heap: Heap, tokens: readonly number[]): Float32Array[] {
  const V = model.config.vocabSize;
  try {
    const logits = noGrad(() => model.forward(heap.indices(Int32Array.from(tokens), [1, tokens.length])).logits);
    const all = heap.backend.readSync(logits.offset, tokens.length * V);
    return tokens.map((_, i) => Float32Array.from(all.subarray(i * V, (i + 1) * V)));
  } finally {
    heap.resetArena();
  }
}

/** Our greedy continuation (argmax of the last position, no KV cache). */
export function ourGreedy(model: OurModel, heap: Heap, prompt: readonly number[], n: number): number[] {
  const tokens = [...prompt];
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const rows = ourLogits(model, heap, tokens.slice(-model.config.contextLength));
    const t = argmax(rows[rows.length - 1]!);
    tokens.push(t);
    out.push(t);
  }
  return out;
}

/** Our top-1 next token after each position. */
export function ourTop1(model: OurModel, heap: Heap, tokens: readonly number[]): number[] {
  return ourLogits(model, heap, tokens).map(argmax);
}

/** Our softmax probability of token `next[i]` after position i. */
export function ourProbs(model: OurModel, heap: Heap, tokens: readonly number[], next: readonly number[]): number[] {
  return ourLogits(model, heap, tokens).map((row, i) => {
    let max = -Infinity;
    for (const v of row) max = Math.max(max, v);
    let sum = 0;
    for (const v of row) sum += Math.exp(v - max);
    return Math.exp(row[next[i]!]! - max) / sum;
  });
}

/** The median of |a_i − b_i|. */
export function medianAbsDiff(a: readonly number[], b: readonly number[]): number {
  const d = a.map((x, i) => Math.abs(x - b[i]!)).sort((x, y) => x - y);
  return d[Math.floor(d.length / 2)]!;
}

/** How many leading entries agree. */
export function commonPrefix(a: readonly number[], b: readonly number[]): number {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return i;
}

/** Fraction of positions where two top-1 lists agree. */
export function agreement(a: readonly number[], b: readonly number[]): number {
  let same = 0;
  for (let i = 0; i < a.length; i++) if (a[i] === b[i]) same++;
  return same / a.length;
}
