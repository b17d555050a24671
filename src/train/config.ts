/**
 * `RunConfig`: everything one training run needs, as a flat JSON object whose keys are the CLI
 * flags in camelCase (`--eval-every` is `evalEvery`). `bitnet-train train --config run.json`
 * reads such an object; `runTraining(config)` takes one from code. Precedence: defaults <
 * the resumed checkpoint's config < a config file < flags.
 *
 * `OPTION_SPECS` is the one table of keys, types and help texts: the CLI parser, the config-file
 * validator and `--help` all read it, so a flag and its config key cannot drift apart.
 */
import { SCHEDULE_KINDS, type ScheduleKind } from '../optim/schedule.js';
import { validateThreads } from '../runtime/threads.js';
import { DEFAULT_MONITOR_CONFIG, MONITOR_OPTION_SPECS, type MonitorRunConfig } from '../monitor/config.js';
import { DATA_OPTION_SPECS, DEFAULT_DATA_CONFIG, type DataRunConfig } from '../data/run-config.js';
import { DEFAULT_QAT_CONFIG, QAT_OPTION_SPECS, type QatRunConfig, checkQatConfig } from './qat-config.js';

/** One training run. Every field has a default (see `DEFAULT_RUN_CONFIG`); the QAT keys are in `QatRunConfig`. */
export interface RunConfig extends QatRunConfig, MonitorRunConfig, DataRunConfig {
  /** Path of a UTF-8 text corpus. */
  data: string;
  tokenizer: 'char' | 'byte';
  /** Fraction of the corpus (from its end) held out for validation. */
  valFraction: number;
  layers: number;
  heads: number;
  dim: number;
  /** Context length T (tokens per sequence). */
  context: number;
  /** Sequences per micro-batch B. */
  batch: number;
  /** Micro-batches whose gradients are summed (and averaged) per optimizer step. */
  gradAccum: number;
  norm: 'layer' | 'rms';
  mlp: 'gelu' | 'swiglu' | 'relu2';
  pos: 'learned' | 'rope';
  /** Full-precision linear layers instead of BitLinear. */
  fp: boolean;
  /** BitLinear's built-in RMSNorm (the BitNet FAQ layer); false reproduces plain fake-quant BitLinear. */
  bitlinearNorm: boolean;
  bias: boolean;
  tiedHead: boolean;
  initStd: number;
  /**
   * Model family: `'gpt'` (the GPT above), `'llama'` (Hugging Face LlamaForCausalLM: RMSNorm,
   * RoPE, gated MLP, grouped-query attention) or `'bitnet'` (BitNetForCausalLM, BitNet b1.58 2B4T:
   * llama + sub-norms). llama/bitnet use `mlp` swiglu or relu2 (gated), RMSNorm and RoPE always.
   */
  family: 'gpt' | 'llama' | 'bitnet';
  /** llama/bitnet: key/value heads (grouped-query attention; null: = heads). */
  kvHeads: number | null;
  /** llama/bitnet: head size (null: dim / heads). */
  headDim: number | null;
  /** llama/bitnet: MLP width (null: the GPT's default for `mlp`). */
  hidden: number | null;
  /** RoPE base θ (null: 10000, or 500000 for bitnet). */
  ropeTheta: number | null;
  /** llama/bitnet: epsilon of every RMSNorm (null: 1e-5). */
  normEps: number | null;
  /** llama/bitnet: rows of the RoPE table (a Hugging Face model's max_position_embeddings; null: = context). */
  maxPositions: number | null;
  /** llama/bitnet: RoPE scaling (Hugging Face rope_scaling): none, linear (ropeScalingFactor), llama3 (all four fields). */
  ropeScaling: 'none' | 'linear' | 'llama3';
  ropeScalingFactor: number | null;
  ropeLowFreqFactor: number | null;
  ropeHighFreqFactor: number | null;
  ropeOriginalMaxPositions: number | null;
  /** llama/bitnet: embedding rows (a Hugging Face model's vocab_size, >= the tokenizer's ids; null: the tokenizer's). */
  vocabRows: number | null;
  /** Optimizer steps of the whole run (also the schedule's length). */
  iters: number;
  /** Peak learning rate. */
  lr: number;
  minLr: number;
  warmup: number;
  weightDecay: number;
  beta1: number;
  beta2: number;
  /** Global gradient-norm clip; 0 turns clipping off. */
  clip: number;
  schedule: ScheduleKind;
  /** two-stage: fraction of `iters` where stage 2 starts. */
  dropAt: number;
  /** two-stage: LR stage 2 starts from; null means lr / 4. */
  secondStageLr: number | null;
  /** adamw (f32 m, v), adamw8bit (8-bit blockwise m, v: src/optim/adamw8bit.ts) or sgd. */
  optimizer: 'adamw' | 'adamw8bit' | 'sgd';
  /** SGD momentum. */
  momentum: number;
  seed: number;
  /** Evaluate every N steps (0: only at the end). */
  evalEvery: number;
  /** Batches per split in each evaluation. */
  evalIters: number;
  logEvery: number;
  /** Save a checkpoint every N steps (0: only at the end). */
  saveEvery: number;
  /** `ckpt-<step>` directories kept (besides `best/`). */
  keep: number;
  /** Stop after this many evaluations without a better val loss (0: never). */
  patience: number;
  /** Stop with an error after this many non-finite losses in a row. */
  maxNanSteps: number;
  /** Run directory; null means `runs/<timestamp>` (or the resumed run's directory). */
  out: string | null;
  /** JSON-lines log; null means `<out>/log.jsonl`. */
  logFile: string | null;
  /** A checkpoint directory, or a run directory (its latest `ckpt-<step>`), to continue from. */
  resume: string | null;
  backend: 'wasm' | 'js' | 'webgpu';
  /** Threads for the wasm kernels; null: every core the runtime reports (1 without shared memory). */
  threads: number | null;
  /** Characters generated after training (0: none). */
  sampleTokens: number;
  /** Text the final sample starts from ('' starts from a newline). */
  prompt: string;
  temperature: number;
  /** Sample among the k most likely tokens (0: all). */
  topK: number;
}

/** Value kinds of `OPTION_SPECS`. */
export type OptionType = 'posInt' | 'nonNegInt' | 'posNum' | 'nonNegNum' | 'fraction' | 'unitOpen' | 'enum' | 'string' | 'bool' | 'list';

/** One key of `RunConfig`: its type, help text, and whether it is a `train` flag or config-file only. */
export interface OptionSpec {
  key: keyof RunConfig;
  type: OptionType;
  /** Allowed values (`enum`). */
  values?: readonly string[];
  /** Whether null is allowed (config files; unset). */
  nullable?: boolean;
  /** Exposed as a `train` flag (`--kebab-name`); false: config file only. */
  flag: boolean;
  help: string;
}

export const OPTION_SPECS: readonly OptionSpec[] = [
  { key: 'data', type: 'string', flag: true, help: 'UTF-8 text corpus' },
  { key: 'tokenizer', type: 'enum', values: ['char', 'byte'], flag: true, help: 'char (vocabulary from the corpus) or byte (256 ids)' },
  { key: 'valFraction', type: 'unitOpen', flag: false, help: 'fraction held out for validation' },
  { key: 'layers', type: 'posInt', flag: true, help: 'transformer blocks' },
  { key: 'heads', type: 'posInt', flag: true, help: 'attention heads (must divide --dim)' },
  { key: 'dim', type: 'posInt', flag: true, help: 'model width' },
  { key: 'context', type: 'posInt', flag: true, help: 'context length (tokens per sequence)' },
  { key: 'batch', type: 'posInt', flag: true, help: 'sequences per micro-batch' },
  { key: 'gradAccum', type: 'posInt', flag: true, help: 'micro-batches per optimizer step' },
  { key: 'norm', type: 'enum', values: ['layer', 'rms'], flag: true, help: 'LayerNorm or RMSNorm' },
  { key: 'mlp', type: 'enum', values: ['gelu', 'swiglu', 'relu2'], flag: true, help: 'MLP activation' },
  { key: 'pos', type: 'enum', values: ['learned', 'rope'], flag: true, help: 'position encoding' },
  { key: 'fp', type: 'bool', flag: true, help: 'full-precision linear layers (the FP32 baseline) instead of BitLinear' },
  { key: 'bitlinearNorm', type: 'bool', flag: true, help: "BitLinear's built-in RMSNorm before activation quantisation (the BitNet FAQ layer; off by default: it trained worse on the reference model)" },
  { key: 'bias', type: 'bool', flag: false, help: 'biases in linear layers and norms' },
  { key: 'tiedHead', type: 'bool', flag: false, help: 'share the token embedding with the LM head' },
  { key: 'initStd', type: 'nonNegNum', flag: false, help: 'std of the normal weight init' },
  { key: 'family', type: 'enum', values: ['gpt', 'llama', 'bitnet'], flag: true, help: 'model family: gpt, llama (LlamaForCausalLM) or bitnet (BitNetForCausalLM, 2B4T)' },
  { key: 'kvHeads', type: 'posInt', nullable: true, flag: true, help: 'llama/bitnet: key/value heads (grouped-query attention; default = heads)' },
  { key: 'headDim', type: 'posInt', nullable: true, flag: false, help: 'llama/bitnet: head size (default dim/heads)' },
  { key: 'hidden', type: 'posInt', nullable: true, flag: true, help: 'MLP width of a llama/bitnet model (default as --mlp)' },
  { key: 'ropeTheta', type: 'posNum', nullable: true, flag: false, help: 'RoPE base θ (default 10000; bitnet 500000)' },
  { key: 'normEps', type: 'posNum', nullable: true, flag: false, help: 'llama/bitnet: RMSNorm epsilon (default 1e-5)' },
  { key: 'maxPositions', type: 'posInt', nullable: true, flag: false, help: 'llama/bitnet: rows of the RoPE table (default = context)' },
  { key: 'ropeScaling', type: 'enum', values: ['none', 'linear', 'llama3'], flag: false, help: 'llama/bitnet: RoPE scaling (a Hugging Face rope_scaling)' },
  { key: 'ropeScalingFactor', type: 'posNum', nullable: true, flag: false, help: 'RoPE scaling factor' },
  { key: 'ropeLowFreqFactor', type: 'posNum', nullable: true, flag: false, help: 'llama3 RoPE scaling: low_freq_factor' },
  { key: 'ropeHighFreqFactor', type: 'posNum', nullable: true, flag: false, help: 'llama3 RoPE scaling: high_freq_factor' },
  { key: 'ropeOriginalMaxPositions', type: 'posInt', nullable: true, flag: false, help: 'llama3 RoPE scaling: original_max_position_embeddings' },
  { key: 'vocabRows', type: 'posInt', nullable: true, flag: false, help: "llama/bitnet: embedding rows (default: the tokenizer's vocabulary)" },
  { key: 'iters', type: 'posInt', flag: true, help: 'optimizer steps' },
  { key: 'lr', type: 'posNum', flag: true, help: 'peak learning rate (default 3e-3 for BitLinear, 1e-3 with --fp)' },
  { key: 'minLr', type: 'nonNegNum', flag: true, help: 'final learning rate' },
  { key: 'warmup', type: 'nonNegInt', flag: true, help: 'linear warmup steps' },
  { key: 'weightDecay', type: 'nonNegNum', flag: true, help: 'AdamW weight decay (matrices only)' },
  { key: 'beta1', type: 'unitOpen', flag: false, help: 'Adam beta1' },
  { key: 'beta2', type: 'unitOpen', flag: true, help: 'Adam beta2' },
  { key: 'clip', type: 'nonNegNum', flag: true, help: 'global gradient-norm clip (0: off)' },
  { key: 'schedule', type: 'enum', values: SCHEDULE_KINDS, flag: true, help: 'learning-rate schedule' },
  { key: 'dropAt', type: 'fraction', flag: false, help: 'two-stage: fraction of the run where stage 2 starts' },
  { key: 'secondStageLr', type: 'nonNegNum', nullable: true, flag: false, help: 'two-stage: stage-2 starting LR (default lr/4)' },
  { key: 'optimizer', type: 'enum', values: ['adamw', 'adamw8bit', 'sgd'], flag: true, help: 'adamw, adamw8bit (m and v as 8-bit blockwise codes: ~2 bytes a parameter instead of 8) or sgd (momentum: config file)' },
  { key: 'momentum', type: 'fraction', flag: false, help: 'SGD momentum' },
  { key: 'seed', type: 'nonNegInt', flag: true, help: 'seed of init, data order and sampling' },
  { key: 'evalEvery', type: 'nonNegInt', flag: true, help: 'evaluate every N steps (0: only at the end)' },
  { key: 'evalIters', type: 'posInt', flag: true, help: 'batches per split in each evaluation' },
  { key: 'logEvery', type: 'posInt', flag: true, help: 'report the loss every N steps' },
  { key: 'saveEvery', type: 'nonNegInt', flag: true, help: 'checkpoint every N steps (0: only at the end)' },
  { key: 'keep', type: 'posInt', flag: true, help: 'checkpoints kept besides best/' },
  { key: 'patience', type: 'nonNegInt', flag: false, help: 'early stopping: evaluations without improvement (0: off)' },
  { key: 'maxNanSteps', type: 'posInt', flag: false, help: 'stop after this many NaN/Inf losses in a row' },
  { key: 'out', type: 'string', nullable: true, flag: true, help: 'run directory (default runs/<timestamp>)' },
  { key: 'logFile', type: 'string', nullable: true, flag: true, help: 'JSON-lines log (default <out>/log.jsonl)' },
  { key: 'resume', type: 'string', nullable: true, flag: true, help: 'continue from a checkpoint or run directory' },
  { key: 'backend', type: 'enum', values: ['wasm', 'js', 'webgpu'], flag: true, help: 'kernels: wasm (SIMD), js (reference) or webgpu (WGSL on a WebGPU adapter)' },
  { key: 'threads', type: 'posInt', nullable: true, flag: true, help: 'threads for the wasm kernels, 1-256 (default: all cores); results are identical at any count' },
  { key: 'sampleTokens', type: 'nonNegInt', flag: false, help: 'characters sampled after training (0: none)' },
  { key: 'prompt', type: 'string', flag: false, help: 'start of the final sample' },
  { key: 'temperature', type: 'posNum', flag: false, help: 'sampling temperature' },
  { key: 'topK', type: 'nonNegInt', flag: false, help: 'sample among the k most likely tokens (0: all)' },
  ...QAT_OPTION_SPECS,
  ...MONITOR_OPTION_SPECS,
  ...DATA_OPTION_SPECS,
];

/** The learning rate of `--fp` runs when none is given (nanoGPT's for this model size). */
export const FP_DEFAULT_LR = 1e-3;

/** The defaults, which `npm start` trains: the bundled corpus, a 4-layer BitNet, a few minutes on 2 cores. */
export const DEFAULT_RUN_CONFIG: Readonly<RunConfig> = Object.freeze({
  data: 'examples/data/tinyshakespeare.txt',
  tokenizer: 'char',
  valFraction: 0.1,
  layers: 4,
  heads: 4,
  dim: 128,
  context: 64,
  batch: 12,
  gradAccum: 1,
  norm: 'layer',
  mlp: 'gelu',
  pos: 'learned',
  fp: false,
  bitlinearNorm: false,
  bias: false,
  tiedHead: false,
  initStd: 0.02,
  family: 'gpt',
  kvHeads: null,
  headDim: null,
  hidden: null,
  ropeTheta: null,
  normEps: null,
  maxPositions: null,
  vocabRows: null,
  ropeScaling: 'none',
  ropeScalingFactor: null,
  ropeLowFreqFactor: null,
  ropeHighFreqFactor: null,
  ropeOriginalMaxPositions: null,
  iters: 1200,
  lr: 3e-3,
  minLr: 1e-4,
  warmup: 100,
  weightDecay: 0.1,
  beta1: 0.9,
  beta2: 0.99,
  clip: 1,
  schedule: 'cosine',
  dropAt: 0.5,
  secondStageLr: null,
  optimizer: 'adamw',
  momentum: 0.9,
  seed: 1337,
  evalEvery: 300,
  evalIters: 20,
  logEvery: 10,
  saveEvery: 300,
  keep: 3,
  patience: 0,
  maxNanSteps: 5,
  out: null,
  logFile: null,
  resume: null,
  backend: 'wasm',
  threads: null,
  sampleTokens: 400,
  prompt: '',
  temperature: 0.8,
  topK: 0,
  ...DEFAULT_QAT_CONFIG,
  ...DEFAULT_MONITOR_CONFIG,
  ...DEFAULT_DATA_CONFIG,
} satisfies RunConfig);

/** `evalEvery` → `eval-every`. */
export function kebabCase(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

/** `eval-every` → `evalEvery`. */
export function camelCase(name: string): string {
  return name.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

const SPEC_BY_KEY = new Map(OPTION_SPECS.map((s) => [s.key as string, s]));

/** The spec of a `RunConfig` key, or undefined. */
export function optionSpec(key: string): OptionSpec | undefined {
  return SPEC_BY_KEY.get(key);
}

/** What a value of this type must be, for messages: "a positive integer". */
export function describeType(spec: OptionSpec): string {
  switch (spec.type) {
    case 'posInt': return 'a positive integer';
    case 'nonNegInt': return 'a non-negative integer';
    case 'posNum': return 'a positive number';
    case 'nonNegNum': return 'a non-negative number';
    case 'fraction': return 'a number in [0, 1]';
    case 'unitOpen': return 'a number in [0, 1)';
    case 'enum': return `one of ${spec.values!.join(', ')}`;
    case 'string': return 'a non-empty string';
    case 'bool': return 'true or false';
    case 'list': return 'a comma-separated list of names (a JSON array of strings in a config file)';
  }
}

/** Whether `v` (already a number, string or boolean) is a valid value of `spec`. */
export function isValidValue(spec: OptionSpec, v: unknown): boolean {
  if (v === null) return spec.nullable === true;
  switch (spec.type) {
    case 'posInt': return Number.isSafeInteger(v) && (v as number) > 0;
    case 'nonNegInt': return Number.isSafeInteger(v) && (v as number) >= 0;
    case 'posNum': return typeof v === 'number' && Number.isFinite(v) && v > 0;
    case 'nonNegNum': return typeof v === 'number' && Number.isFinite(v) && v >= 0;
    case 'fraction': return typeof v === 'number' && v >= 0 && v <= 1;
    case 'unitOpen': return typeof v === 'number' && v >= 0 && v < 1;
    case 'enum': return typeof v === 'string' && spec.values!.includes(v);
    case 'string': return typeof v === 'string' && (v.length > 0 || spec.key === 'prompt');
    case 'bool': return typeof v === 'boolean';
    case 'list': return Array.isArray(v) && v.every((x) => typeof x === 'string' && x.length > 0);
  }
}

/** Edit distance (insert, delete, substitute), for "did you mean" suggestions. */
export function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diag = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = up;
    }
  }
  return row[b.length]!;
}

/** The candidate closest to `name` (by edit distance, or a prefix), if it is close enough to be a typo. */
export function closest(name: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    const prefix = name.replace(/^-+/, '').length >= 3 && (c.startsWith(name) || name.startsWith(c));
    const d = prefix ? Math.min(1, editDistance(name, c)) : editDistance(name, c);
    if (d < bestD) {
      bestD = d;
      best = c;
    }
  }
  return best !== undefined && bestD <= Math.max(2, Math.floor(name.length / 3)) ? best : undefined;
}

/**
 * Check a partial config (from a JSON file or code): unknown keys (with a suggestion) and
 * values of the wrong type. Keys may be camelCase or kebab-case. `source` prefixes messages.
 */
export function validatePartialConfig(input: unknown, source: string): Partial<RunConfig> {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) throw new Error(`${source}: expected a JSON object of options, got ${Array.isArray(input) ? 'an array' : JSON.stringify(input)}`);
  const out: Record<string, unknown> = {};
  for (const [rawKey, v] of Object.entries(input)) {
    const key = camelCase(rawKey);
    const spec = optionSpec(key);
    if (!spec) {
      const near = closest(key, OPTION_SPECS.map((s) => s.key));
      throw new Error(`${source}: unknown option "${rawKey}"${near ? ` (did you mean "${near}"?)` : ''}`);
    }
    if (v === undefined) continue;
    if (!isValidValue(spec, v)) {
      // JSON.parse turns 1e400 into Infinity, which JSON.stringify would print as null
      const got = typeof v === 'number' && !Number.isFinite(v) ? `${v}, not a finite number (beyond a double's range)` : JSON.stringify(v);
      throw new Error(`${source}: ${key}: expected ${describeType(spec)}, got ${got}`);
    }
    out[key] = v;
  }
  return out as Partial<RunConfig>;
}

/**
 * Merge layers (later wins; undefined values are skipped) over the defaults, then check the
 * combination: heads divide dim, minLr <= lr, warmup <= iters. Unless a layer sets `warmup`,
 * the default warmup is capped at iters / 10; unless one sets `lr`, `--fp` runs get `FP_DEFAULT_LR`.
 */
export function resolveRunConfig(...layers: Partial<RunConfig>[]): RunConfig {
  const cfg: RunConfig = { ...DEFAULT_RUN_CONFIG };
  let warmupGiven = false;
  let lrGiven = false;
  for (const layer of layers) {
    for (const [k, v] of Object.entries(validatePartialConfig(layer, 'config'))) {
      (cfg as unknown as Record<string, unknown>)[k] = v;
      if (k === 'warmup') warmupGiven = true;
      if (k === 'lr') lrGiven = true;
    }
  }
  // BitLinear trains best at a higher rate than full precision (the BitNet recipe; measured on
  // the reference model: 3e-3 gave val 1.917 vs 2.036 at 1e-3), so --fp has its own default
  if (!lrGiven && cfg.fp) cfg.lr = FP_DEFAULT_LR;
  // the default warmup shrinks with a short run (at most a tenth of it); an explicit one is checked
  if (!warmupGiven) cfg.warmup = Math.min(cfg.warmup, Math.floor(cfg.iters / 10));
  if (cfg.dim % cfg.heads !== 0) throw new Error(`config: dim ${cfg.dim} must be divisible by heads ${cfg.heads} (e.g. --heads ${largestDivisorAtMost(cfg.dim, cfg.heads)})`);
  if (cfg.minLr > cfg.lr) throw new Error(`config: minLr ${cfg.minLr} must not exceed lr ${cfg.lr}`);
  if (cfg.threads !== null) validateThreads(cfg.threads, '--threads');
  if (cfg.warmup > cfg.iters) throw new Error(`config: warmup ${cfg.warmup} must not exceed iters ${cfg.iters}`);
  checkQatConfig(cfg);
  return cfg;
}

function largestDivisorAtMost(n: number, k: number): number {
  for (let d = Math.min(n, k); d > 1; d--) if (n % d === 0) return d;
  return 1;
}
