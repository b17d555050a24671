/**
 * The memory plan of a run, computed from its config before anything is allocated, so that a
 * model or batch that cannot fit is refused at once with the numbers and the flags to change —
 * not after minutes of growing memory, or with a V8 out-of-memory abort.
 *
 *   static      parameters + gradients + optimizer state (AdamW m, v; AdamW8bit's codes and absmax;
 *               SGD momentum) + a teacher's weights
 *   arena       one step's activations, a lower bound: per block ≥ 24·B·T·C values (the inputs each
 *               layer saves for backward, MLP hidden states, their gradients) + 2·B·H·T² (attention
 *               probabilities and their gradient), and 2·B·T·V for the logits and their gradient
 *               (measured high-water marks of the wasm backend are 1.3-2.2x this: see
 *               test/reliability-memory.test.ts)
 *
 * The plan is a lower bound: a run it refuses cannot fit; one it accepts may still be refused
 * later by the backend (with the backend's own message), never silently.
 */
import { createModel, type ModelConfig } from './model.js';

/** The optimizers a run can use. */
export type OptimizerName = 'adamw' | 'adamw8bit' | 'sgd';

/** Elements (4 bytes) of AdamW8bit's state for n parameters: two code blocks of n bytes, two absmax blocks of ceil(n/256), two 256-entry maps. */
export function adamw8bitStateElements(n: number): number {
  return 2 * Math.ceil(n / 4) + 2 * Math.ceil(n / 256) + 512;
}

/** Elements one backend memory can hold, and how to say so. */
export interface MemoryLimit {
  elements: number;
  bytesPerElement: number;
  /** "the 4 GiB a wasm32 memory can hold" */
  what: string;
}

/** The limit of a backend's single flat memory. */
export function backendMemoryLimit(backend: 'wasm' | 'js' | string): MemoryLimit {
  if (backend === 'js') return { elements: 2 ** 32, bytesPerElement: 4, what: "the 2^32 elements of the js backend's largest typed array" };
  return { elements: 2 ** 30, bytesPerElement: 4, what: 'the 4 GiB a wasm32 memory can hold' };
}

/** What a training step needs, in elements of backend memory. */
export interface MemoryPlan {
  /** Trainable parameters (elements). */
  parameters: number;
  /** Optimizer state blocks (2 for AdamW, 1 for SGD with momentum; AdamW8bit's are counted in `stateElements`). */
  stateBlocks: number;
  /** Elements of optimizer state (4-byte elements: AdamW8bit's 2 bytes a parameter take half an element). */
  stateElements: number;
  /** The optimizer planned for. */
  optimizer: OptimizerName;
  /** Parameters, gradients, optimizer state and a teacher's weights. */
  staticElements: number;
  /** A lower bound of one step's activations. */
  activationElements: number;
  totalElements: number;
}

/** Thrown when a plan exceeds the memory; the message says what is needed, why, and which flags lower it. */
export class MemoryPlanError extends Error {
  override readonly name = 'MemoryPlanError';
}

/** Check the shape fields of a model config (a trainer.json may say anything). */
export function checkModelShape(m: Partial<ModelConfig>, source: string): asserts m is ModelConfig {
  for (const key of ['vocabSize', 'contextLength', 'layers', 'heads', 'dim'] as const) {
    const v = m[key];
    if (!(Number.isSafeInteger(v) && (v as number) > 0)) {
      throw new MemoryPlanError(`${source}: ${key} must be a positive integer, got ${typeof v === 'number' && !Number.isFinite(v) ? `${v} (not a finite number)` : JSON.stringify(v)}`);
    }
  }
  if (m.dim! % m.heads! !== 0) throw new MemoryPlanError(`${source}: dim ${m.dim} must be divisible by heads ${m.heads}`);
}

/**
 * Trainable parameters of the GPT `m` describes, without building it: a 1- and a 2-block model are
 * described (not materialized), and blocks are all alike.
 */
export function countParameters(m: ModelConfig): number {
  // attention alone holds 4·C² per block: past 2^50 the model is absurd, and describing it could overflow a shape
  const attention = m.layers * 4 * m.dim * m.dim;
  if (attention > 2 ** 50) return attention;
  const probe = (layers: number) => createModel({ ...m, layers, keepFp: [], keepInt8: [], steByLayer: {} }).params.count;
  const one = probe(1);
  if (m.layers === 1) return one;
  return one + (m.layers - 1) * (probe(2) - one);
}

/** Activations of one step at batch B (sequences) × T tokens: the lower bound of the file header. */
export function activationLowerBound(m: ModelConfig, B: number, T: number, options: { backward?: boolean; gradientCheckpointing?: boolean } = {}): number {
  const N = B * T;
  const C = m.dim;
  const perBlock = 24 * N * C + 2 * B * m.heads * T * T;
  const backward = options.backward ?? true;
  // with gradient checkpointing only the blocks' inputs stay, plus one block recomputed at a time
  const blocks = !backward ? perBlock / 3 : options.gradientCheckpointing ? m.layers * N * C + perBlock : m.layers * perBlock;
  return blocks + (backward ? 2 : 1) * N * m.vocabSize;
}

/** The memory plan of training `model` at batch × context with `optimizer` (and a distillation teacher's weights). */
export function planTrainingMemory(
  model: ModelConfig,
  run: { batch: number; context: number; optimizer: OptimizerName; momentum?: number; gradAccum?: number; gradientCheckpointing?: boolean },
  teacher?: ModelConfig,
): MemoryPlan {
  const parameters = countParameters(model);
  const stateBlocks = run.optimizer === 'adamw' ? 2 : run.optimizer === 'sgd' && (run.momentum ?? 0) > 0 ? 1 : 0;
  const stateElements = run.optimizer === 'adamw8bit' ? adamw8bitStateElements(parameters) : parameters * stateBlocks;
  const teacherParams = teacher ? countParameters(teacher) : 0;
  const staticElements = parameters * 2 + stateElements + teacherParams;
  const activationElements = activationLowerBound(model, run.batch, run.context, { gradientCheckpointing: run.gradientCheckpointing })
    + (teacher ? activationLowerBound(teacher, run.batch, run.context, { backward: false }) : 0);
  return { parameters, stateBlocks, stateElements, optimizer: run.optimizer, staticElements, activationElements, totalElements: staticElements + activationElements };
}

/** The memory plan of sampling from `model` (weights and a forward pass over one context window). */
export function planSamplingMemory(model: ModelConfig): MemoryPlan {
  const parameters = countParameters(model);
  const activationElements = activationLowerBound(model, 1, model.contextLength, { backward: false });
  return { parameters, stateBlocks: 0, stateElements: 0, optimizer: 'adamw', staticElements: parameters, activationElements, totalElements: parameters + activationElements };
}

/** `1.59 GiB` / `812 MiB` / `96 KiB`. */
export function formatBytes(bytes: number): string {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'];
  let v = bytes;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v} bytes` : v >= 1e6 ? `${v.toExponential(2)} ${units[u]}` : `${v.toPrecision(3)} ${units[u]}`;
}

/**
 * Throw a `MemoryPlanError` unless `plan` fits `limit`. `shape` names what was planned
 * ("batch 64 x context 256") for the message.
 */
export function checkMemoryPlan(plan: MemoryPlan, limit: MemoryLimit, shape: { batch?: number; context: number; training: boolean }): void {
  if (plan.totalElements <= limit.elements) return;
  const b = limit.bytesPerElement;
  const blocks = !shape.training ? 'weights'
    : plan.optimizer === 'adamw8bit' ? 'weights, gradients, 8-bit AdamW m and v'
      : plan.stateBlocks === 2 ? 'weights, gradients, AdamW m and v' : plan.stateBlocks === 1 ? 'weights, gradients, momentum' : 'weights, gradients';
  const p = plan.parameters;
  const params = p >= 1e12 ? p.toExponential(2) : p >= 1e9 ? `${(p / 1e9).toPrecision(3)}B` : p >= 1e6 ? `${(p / 1e6).toPrecision(3)}M` : String(p);
  const acts = shape.batch !== undefined ? `batch ${shape.batch} x context ${shape.context}` : `context ${shape.context}`;
  const fix = shape.training
    ? plan.staticElements > limit.elements ? 'lower --layers or --dim' : 'lower --batch (activations grow with it; --grad-accum keeps the tokens per step), --context, --dim or --layers'
    : 'the checkpoint\'s model is too large for this backend';
  throw new MemoryPlanError(
    `memory plan: this run needs at least ${formatBytes(plan.totalElements * b)} — ${formatBytes(plan.staticElements * b)} for ${params} parameters (${blocks}) ` +
      `and ≥ ${formatBytes(plan.activationElements * b)} of activations for ${acts} — more than ${limit.what}; ${fix}`,
  );
}

/** Most tokens one `sample` generates (their ids and text are kept in memory). */
export const MAX_SAMPLE_TOKENS = 10_000_000;
/** Most bytes the fixed evaluation batches may hold (JS memory, outside the backend's). */
export const MAX_EVAL_BATCH_BYTES = 2 ** 30;

/** Throw unless `sample --tokens` (or `sampleTokens`) is within `MAX_SAMPLE_TOKENS`. */
export function checkSampleTokens(tokens: number, flag: string): void {
  if (tokens > MAX_SAMPLE_TOKENS) {
    throw new MemoryPlanError(`${flag} ${tokens}: at most ${MAX_SAMPLE_TOKENS.toLocaleString('en-US')} tokens per sample (the generated ids and text are kept in memory); sample in pieces with --prompt`);
  }
}

/**
 * Everything a training run's config decides about memory, checked before anything is allocated:
 * the backend memory plan (`planTrainingMemory`), the fixed evaluation batches and the final sample.
 */
export function checkRunMemory(
  run: { backend: string; batch: number; context: number; gradAccum: number; optimizer: OptimizerName; momentum: number; evalIters: number; sampleTokens: number },
  model: ModelConfig,
  teacher?: ModelConfig,
): void {
  checkModelShape(model, 'config');
  const limit = backendMemoryLimit(run.backend);
  checkMemoryPlan(planTrainingMemory(model, run, teacher), limit, { batch: run.batch, context: run.context, training: true });
  const evalBytes = 2 * run.evalIters * 2 * run.batch * run.context * 4; // two splits, inputs and targets, int32
  if (evalBytes > MAX_EVAL_BATCH_BYTES) {
    const fit = Math.floor(MAX_EVAL_BATCH_BYTES / (16 * run.batch * run.context));
    throw new MemoryPlanError(
      `--eval-iters ${run.evalIters}: the fixed evaluation batches (${run.evalIters} per split, ${run.batch} x ${run.context} tokens each) would take ${formatBytes(evalBytes)}; ` +
        `at most ${fit.toLocaleString('en-US')} fit in the ${formatBytes(MAX_EVAL_BATCH_BYTES)} allowed`,
    );
  }
  checkSampleTokens(run.sampleTokens, 'sampleTokens');
}
