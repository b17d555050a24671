/**
 * Flags and help of the QAT commands: `convert` and `distill` (training runs: every `train` flag
 * plus their own), `calibrate` and `analyze` (tools on a checkpoint).
 */
import type { CalibrationMethod } from '../qat/index.js';
import { DEFAULT_RUN_CONFIG, type RunConfig, kebabCase } from '../train/config.js';
import { type FlagSpec, TRAIN_FLAGS, UsageError, flagLines, parseFlags, sampleSpec } from './args.js';

const alias = (name: string, key: keyof RunConfig, type: FlagSpec['spec']['type'], help: string): FlagSpec => ({ name, spec: { key, type, help, flag: true } });

const CONFIG_FLAG: FlagSpec = { name: '--config', spec: { key: 'config' as keyof RunConfig, type: 'string', flag: true, help: 'JSON object of run options (see bitnet-train train --help)' } };

const DISTILL_OWN: FlagSpec[] = [
  alias('--teacher', 'teacher', 'string', 'the teacher: a checkpoint or run directory with the same tokenizer — required'),
  alias('--alpha', 'distillAlpha', 'fraction', 'weight of the hard-label loss: α·CE + (1−α)·T²·KL(teacher ‖ student)'),
  alias('--temperature', 'distillTemperature', 'posNum', 'softmax temperature T of both distributions'),
];

const CONVERT_OWN: FlagSpec[] = [
  alias('--from', 'from', 'string', 'the checkpoint (or run directory) to convert, usually a --fp run — required'),
  { name: '--teacher-from-source', spec: { key: 'teacherFromSource' as keyof RunConfig, type: 'bool', flag: true, help: 'distil from the --from model while converting' } },
  alias('--quant-warmup', 'quantWarmup', 'nonNegInt', 'steps over which λ ramps from 0 (FP) to 1 (ternary); default: half of --iters'),
  alias('--teacher', 'teacher', 'string', 'distil from another checkpoint instead'),
  alias('--alpha', 'distillAlpha', 'fraction', 'distillation: weight of the hard-label loss'),
  alias('--temperature', 'distillTemperature', 'posNum', 'distillation: softmax temperature'),
];

/** Every train flag not overridden by the command's own (`--temperature` etc. mean the command's). */
function runFlags(own: FlagSpec[]): FlagSpec[] {
  const names = new Set(own.map((f) => f.name));
  return [CONFIG_FLAG, ...own, ...TRAIN_FLAGS.filter((f) => !names.has(f.name))];
}

/** What a training command (`distill`, `convert`) was given. */
export interface RunCommandArgs {
  config: Partial<RunConfig>;
  configFile?: string;
  help: boolean;
  /** `convert --teacher-from-source`. */
  teacherFromSource: boolean;
}

/** `distill` / `convert` flags → a partial run config (only the flags given). */
export function parseRunCommandArgs(command: 'distill' | 'convert', argv: readonly string[]): RunCommandArgs {
  const { values, help } = parseFlags(command, argv, runFlags(command === 'distill' ? DISTILL_OWN : CONVERT_OWN));
  const { config: configFile, teacherFromSource, ...rest } = values;
  return { config: rest as Partial<RunConfig>, ...(configFile !== undefined ? { configFile: configFile as string } : {}), help, teacherFromSource: teacherFromSource === true };
}

const tool = (key: string, type: FlagSpec['spec']['type'], help: string, values?: readonly string[]): FlagSpec => sampleSpec(key, type, help, values);

const CKPT = tool('ckpt', 'string', 'checkpoint directory, or a run directory (its latest checkpoint) — required');
const COMMON_TOOL_FLAGS: FlagSpec[] = [
  tool('data', 'string', "corpus the batches come from (default: the checkpoint's run's)"),
  tool('seed', 'nonNegInt', "seed of the batch draws (default: the checkpoint's run's)"),
  tool('backend', 'enum', 'kernels: wasm (SIMD) or js (reference)', ['wasm', 'js']),
  tool('threads', 'posInt', 'threads for the wasm kernels (default: all cores)'),
];

const CALIBRATE_FLAGS: FlagSpec[] = [
  CKPT,
  tool('method', 'enum', 'absmax: max over the batches; percentile: mean p-th percentile of |x|; ema: EMA of the batch absmax', ['absmax', 'percentile', 'ema']),
  tool('batches', 'posInt', 'training batches to measure on'),
  tool('percentile', 'posNum', 'p of --method percentile, in (0, 100]'),
  tool('momentum', 'unitOpen', 'EMA momentum of --method ema'),
  tool('out', 'string', 'where the calibrated checkpoint goes (default <checkpoint>-calibrated)'),
  ...COMMON_TOOL_FLAGS,
];

const CALIBRATE_DEFAULTS = { method: 'absmax', batches: 8, percentile: 99.99, momentum: 0.9 };

/** `calibrate` options. */
export interface CalibrateArgs {
  ckpt: string;
  method: CalibrationMethod;
  batches: number;
  percentile: number;
  momentum: number;
  out?: string;
  data?: string;
  seed?: number;
  backend?: 'wasm' | 'js';
  threads?: number;
}

export function parseCalibrateArgs(argv: readonly string[]): { args: CalibrateArgs; help: boolean } {
  const { values, help } = parseFlags('calibrate', argv, CALIBRATE_FLAGS);
  if (!help && values.ckpt === undefined) throw new UsageError('calibrate: --ckpt DIR is required (a BitLinear checkpoint, or a run directory)');
  if (typeof values.percentile === 'number' && values.percentile > 100) throw new UsageError(`--percentile: expected a number in (0, 100], got '${values.percentile}'`);
  return { args: { ...CALIBRATE_DEFAULTS, ...values } as CalibrateArgs, help };
}

const ANALYZE_FLAGS: FlagSpec[] = [
  CKPT,
  { name: '--from-hf', spec: { ...CKPT.spec, help: 'a Hugging Face model directory (LLaMA or BitNet) to analyse, instead of --ckpt (needs --data)' } },
  tool('batches', 'posInt', 'val batches per evaluation (2 + 2·projections evaluations in all)'),
  tool('json', 'string', 'also write the report (sensitivity and error analysis) as JSON to PATH'),
  ...COMMON_TOOL_FLAGS,
];

/** `analyze` options. */
export interface AnalyzeArgs {
  ckpt: string;
  batches: number;
  json?: string;
  data?: string;
  seed?: number;
  backend?: 'wasm' | 'js';
  threads?: number;
}

export function parseAnalyzeArgs(argv: readonly string[]): { args: AnalyzeArgs; help: boolean } {
  const { values, help } = parseFlags('analyze', argv, ANALYZE_FLAGS);
  if (!help && values.ckpt === undefined) throw new UsageError('analyze: --ckpt DIR is required (a checkpoint, or a run directory)');
  return { args: { batches: 4, ...values } as AnalyzeArgs, help };
}

const defaults = DEFAULT_RUN_CONFIG as unknown as Record<string, unknown>;

export function distillHelp(): string {
  return `Usage: bitnet-train distill --teacher DIR [--alpha A] [--temperature T] [train options]

Trains a model (BitLinear by default) on the loss α·CE + (1−α)·T²·KL(softmax(teacher/T) ‖ softmax(student/T)),
the teacher a checkpoint of any shape with the student's tokenizer (e.g. a --fp run on the same corpus).
The logged step loss is this mixed loss; evaluations report the plain cross-entropy.

Options:
${flagLines(DISTILL_OWN, defaults)}
  (every option of bitnet-train train, e.g. --iters, --lr, --out, --quant-warmup; see bitnet-train train --help)
  --help                this text
`;
}

export function convertHelp(): string {
  return `Usage: bitnet-train convert --from DIR [--quant-warmup N] [--teacher-from-source] [train options]

Fine-tunes a full-precision checkpoint into a BitNet b1.58 (ternary) one with progressive
quantisation: the model has the checkpoint's shape, tokenizer and (by default) corpus, starts from
its weights with a fresh optimizer, and λ ramps from 0 to 1 (ternary). From an FP checkpoint
BitLinear's built-in norm is off by default, so that λ = 0 is the FP model bit for bit
(--bitlinear-norm adds it). --teacher-from-source also distils from the original.

Options:
${flagLines(CONVERT_OWN, defaults)}
  (every option of bitnet-train train, e.g. --iters, --lr, --out, --quant-schedule, --keep-fp; see bitnet-train train --help)
  --help                this text
`;
}

export function calibrateHelp(): string {
  return `Usage: bitnet-train calibrate --ckpt DIR [--method absmax|percentile|ema] [--batches N] [--out DIR]

Measures a static activation clip for every BitLinear layer on N training batches and writes a
checkpoint whose model uses them (--activation-scale static, clipped activation STE): sample from
it, or resume training from it (the new clips get zero optimizer state).

Options:
${flagLines(CALIBRATE_FLAGS, CALIBRATE_DEFAULTS)}
  --help                this text
`;
}

export function analyzeHelp(): string {
  return `Usage: bitnet-train analyze --ckpt DIR [--batches N] [--json PATH]

For every projection: the val-loss change when only it is full precision (from the all-ternary
model) and when only it is ternary (from the all-FP model), ranked most sensitive first; then one
error-analysis report (SQNR of weights and activations, ternary fractions, scale). A --fp
checkpoint is analysed as its BitLinear conversion. Keep the top rows with --keep-fp.

Options:
${flagLines(ANALYZE_FLAGS, { batches: 4 })}
  --help                this text
`;
}

/** `--keep-fp` value for the top `k` rows of a report. */
export function keepFpHint(names: readonly string[]): string {
  return `--${kebabCase('keepFp')} ${names.join(',')}`;
}
