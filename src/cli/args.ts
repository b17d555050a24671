/**
 * Command-line parsing for `bitnet-train`: `--flag value`, `--flag=value`, boolean `--fp`.
 * Every value is checked against `OPTION_SPECS` (the same table config files use), and every
 * mistake becomes a `UsageError` whose message says the flag, what it expects and what it got:
 *
 *   --iters: expected a positive integer, got 'abc'
 *   unknown flag --iter (did you mean --iters?)
 */
import {
  DEFAULT_RUN_CONFIG, OPTION_SPECS, type OptionSpec, type RunConfig, closest, describeType, isValidValue, kebabCase,
} from '../train/config.js';
import { QAT_OPTION_SPECS } from '../train/qat-config.js';

/** Bad command-line input: the CLI prints the message and exits with status 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** A flag of a command: its config key (or a command-only name) and value type. */
export interface FlagSpec {
  name: string;
  spec: OptionSpec;
}

export const TRAIN_FLAGS: FlagSpec[] = [
  ...OPTION_SPECS.filter((s) => s.flag).map((spec) => ({ name: `--${kebabCase(spec.key)}`, spec })),
  // --from-hf DIR is --from naming a Hugging Face model directory (LlamaForCausalLM / BitNetForCausalLM)
  { name: '--from-hf', spec: { ...OPTION_SPECS.find((s) => s.key === 'from')!, help: 'initialise from a Hugging Face model directory (config.json + safetensors + tokenizer.json): LLaMA or BitNet' } },
];

/** Options of `sample` that are not run-config keys. */
export interface SampleArgs {
  ckpt: string;
  prompt: string;
  tokens: number;
  temperature: number;
  topK: number;
  seed: number;
  backend: 'wasm' | 'js';
  /** Token ids to continue instead of `prompt` (models without a tokenizer; comparing with other engines). */
  promptIds?: number[];
  /** Print the generated ids (comma-separated) instead of text. */
  printIds: boolean;
  /** A LoRA adapter directory (PEFT format) applied to the `ckpt` base. */
  adapter?: string;
}

const SAMPLE_DEFAULTS: Omit<SampleArgs, 'ckpt'> = { prompt: '', tokens: 500, temperature: 0.8, topK: 0, seed: 1337, backend: 'wasm', printIds: false };

/** A command-only flag (`--kebab-key`), or an alias of a run-config key with `name`. */
export const sampleSpec = (key: string, type: OptionSpec['type'], help: string, values?: readonly string[]): FlagSpec => ({
  name: `--${kebabCase(key)}`,
  spec: { key: key as keyof RunConfig, type, help, flag: true, ...(values ? { values } : {}) },
});

const SAMPLE_FLAGS: FlagSpec[] = [
  sampleSpec('ckpt', 'string', 'checkpoint directory, or a run directory (its latest checkpoint), or a Hugging Face model directory — required'),
  { name: '--from-hf', spec: { key: 'ckpt' as keyof RunConfig, type: 'string', flag: true, help: 'a Hugging Face model directory (LlamaForCausalLM / BitNetForCausalLM) to sample from, instead of --ckpt' } },
  sampleSpec('prompt', 'string', "text to continue (default: a newline)"),
  sampleSpec('tokens', 'posInt', 'tokens to generate'),
  sampleSpec('temperature', 'nonNegNum', 'softmax temperature (lower: more conservative; 0: greedy, the most likely token each time)'),
  sampleSpec('topK', 'nonNegInt', 'sample among the k most likely tokens (0: all)'),
  sampleSpec('seed', 'nonNegInt', 'seed of the draws'),
  sampleSpec('backend', 'enum', 'kernels: wasm (SIMD) or js (reference)', ['wasm', 'js']),
  sampleSpec('adapter', 'string', 'a LoRA adapter directory (adapter_config.json + adapter_model.safetensors) applied to the --ckpt base'),
  sampleSpec('promptIds', 'list', 'token ids to continue instead of --prompt, e.g. 1,5,9 (no tokenizer needed)'),
  sampleSpec('printIds', 'bool', 'print the generated token ids (comma-separated) instead of text'),
];

const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

/** Convert one flag's text to its typed value, or throw the flag's UsageError. */
export function parseFlagValue(flag: string, spec: OptionSpec, raw: string): string | number | boolean | string[] {
  const fail = (): never => {
    throw new UsageError(`${flag}: expected ${describeType(spec)}, got '${raw}'`);
  };
  let v: string | number | boolean | string[];
  switch (spec.type) {
    case 'string':
    case 'enum':
      v = raw;
      break;
    case 'bool':
      if (raw !== 'true' && raw !== 'false') fail();
      v = raw === 'true';
      break;
    case 'list': {
      const names = raw.split(',').map((x) => x.trim()).filter((x) => x.length > 0);
      v = names;
      break;
    }
    default:
      if (!NUMBER.test(raw.trim())) fail();
      v = Number(raw);
  }
  if (!isValidValue(spec, v)) fail();
  return v;
}

/** What `parseArgs` found. */
export interface Parsed {
  values: Record<string, string | number | boolean | string[]>;
  help: boolean;
}

/** Parse `argv` against `flags` (`--name value`, `--name=value`, bare booleans, `--help`). */
export function parseFlags(command: string, argv: readonly string[], flags: readonly FlagSpec[]): Parsed {
  const byName = new Map(flags.map((f) => [f.name, f]));
  const values: Record<string, string | number | boolean | string[]> = {};
  let help = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--help' || arg === '-h') {
      help = true;
      continue;
    }
    if (!arg.startsWith('--')) {
      throw new UsageError(`${command}: unexpected argument '${arg}' (options are --name value; see bitnet-train ${command} --help)`);
    }
    const eq = arg.indexOf('=');
    const name = eq >= 0 ? arg.slice(0, eq) : arg;
    const f = byName.get(name);
    if (!f) {
      const near = closest(name, [...byName.keys()]);
      throw new UsageError(`${command}: unknown flag ${name}${near ? ` (did you mean ${near}?)` : ''}; see bitnet-train ${command} --help`);
    }
    let raw: string;
    if (eq >= 0) raw = arg.slice(eq + 1);
    else if (f.spec.type === 'bool') raw = 'true';
    else {
      const next = argv[i + 1];
      if (next === undefined || next.startsWith('--')) throw new UsageError(`${name}: expected ${describeType(f.spec)}, got nothing`);
      raw = next;
      i++;
    }
    values[f.spec.key] = parseFlagValue(name, f.spec, raw);
  }
  return { values, help };
}

/** `train` flags → a partial run config (only the flags given), plus `--config` and `--help`. */
export function parseTrainArgs(argv: readonly string[]): { config: Partial<RunConfig>; configFile?: string; help: boolean } {
  const configFlag: FlagSpec = { name: '--config', spec: { key: 'config' as keyof RunConfig, type: 'string', flag: true, help: '' } };
  const { values, help } = parseFlags('train', argv, [configFlag, ...TRAIN_FLAGS]);
  const { config: configFile, ...rest } = values;
  return { config: rest as Partial<RunConfig>, ...(configFile !== undefined ? { configFile: configFile as string } : {}), help };
}

/** `sample` flags, with defaults filled in; `--ckpt` is required (unless `--help`). */
export function parseSampleArgs(argv: readonly string[]): { args: SampleArgs; help: boolean } {
  const { values, help } = parseFlags('sample', argv, SAMPLE_FLAGS);
  if (!help && values.ckpt === undefined) throw new UsageError('sample: --ckpt DIR is required (a checkpoint directory, or a run directory such as runs/<name>)');
  if (values.promptIds !== undefined) {
    const raw = values.promptIds as string[];
    const bad = raw.find((x) => !/^\d+$/.test(x) || !Number.isSafeInteger(Number(x)));
    if (bad !== undefined || raw.length === 0) throw new UsageError(`--prompt-ids: expected token ids separated by commas (e.g. 1,5,9), got '${bad ?? ''}'`);
    if (values.prompt !== undefined) throw new UsageError('sample: give --prompt or --prompt-ids, not both');
    values.promptIds = raw.map(Number) as unknown as string[];
  }
  return { args: { ...SAMPLE_DEFAULTS, ...values } as SampleArgs, help };
}

const VALUE_NAME: Record<string, string> = { promptIds: 'ID,...', tokenizerJson: 'PATH', tokenCache: 'PATH', data: 'PATH', out: 'DIR', logFile: 'PATH', resume: 'DIR', ckpt: 'DIR', from: 'DIR', teacher: 'DIR', json: 'PATH', steByLayer: 'LAYER=STE,...', tensorboard: 'DIR' };

/** Help lines of `flags`, with their defaults. */
export function flagLines(flags: readonly FlagSpec[], defaults: Record<string, unknown>): string {
  const width = 24;
  return flags.map((f) => {
    const t = f.spec.type;
    const hint = t === 'bool' ? '' : t === 'enum' ? ` ${f.spec.values!.join('|')}` : t === 'list' ? ` ${VALUE_NAME[f.spec.key] ?? 'NAME,...'}` : ` ${VALUE_NAME[f.spec.key] ?? (/Int$/.test(t) ? 'N' : t === 'string' ? 'TEXT' : 'X')}`;
    const d = defaults[f.spec.key];
    const def = d === undefined || d === null || d === false || d === '' || (Array.isArray(d) && d.length === 0) ? '' : ` (default ${String(d)})`;
    const left = `  ${f.name}${hint}`;
    const right = `${f.spec.help}${def}`;
    return left.length < width - 1 ? left.padEnd(width) + right : `${left}\n${' '.repeat(width)}${right}`;
  }).join('\n');
}

/** Break `text` at spaces into lines of at most `width` columns, each indented by `indent`. */
export function wrap(text: string, indent: number, width: number): string {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line && indent + line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) lines.push(line);
  return lines.map((l) => ' '.repeat(indent) + l).join('\n');
}

/** `bitnet-train --help`. */
export const MAIN_HELP = `bitnet-train — train BitNet b1.58 (ternary) transformers on CPU, in any JavaScript runtime

Usage:
  bitnet-train train [options]            train a model (defaults: the bundled tinyshakespeare corpus)
  bitnet-train sample --ckpt DIR [opts]   generate text from a checkpoint
  bitnet-train convert --from DIR [opts]  fine-tune a full-precision checkpoint into a ternary one
  bitnet-train train --from-hf DIR [opts] fine-tune a Hugging Face LLaMA or BitNet (sample, convert too)
  bitnet-train distill --teacher DIR [..] train a ternary student on a teacher's logits
  bitnet-train calibrate --ckpt DIR       static activation scales for a checkpoint
  bitnet-train analyze --ckpt DIR         per-layer quantisation sensitivity (ranked table + JSON)
  bitnet-train export --ckpt DIR --format gguf|hf|hf-packed --out PATH   for llama.cpp / transformers
  bitnet-train report RUN_DIR [--out F]   the run's log as one self-contained HTML page (charts)
  bitnet-train finetune --from DIR --data FILE --out DIR [--peft lora|qlora]   LoRA / QLoRA, adapters in PEFT's format
  bitnet-train merge --ckpt BASE --adapter DIR --out DIR   merge an adapter into a new checkpoint
  bitnet-train <command> --help           the options of a command

Examples:
  bitnet-train train --iters 2000 --eval-iters 100 --out runs/shakespeare
  bitnet-train train --resume runs/shakespeare --iters 4000
  bitnet-train sample --ckpt runs/shakespeare/best --prompt "ROMEO:" --tokens 300
  bitnet-train train --fp --iters 2000 --out runs/fp && bitnet-train convert --from runs/fp --iters 600 --teacher-from-source
`;

/** `bitnet-train train --help`. */
export function trainHelp(): string {
  return `Usage: bitnet-train train [--config run.json] [options]

Trains a decoder-only transformer (BitLinear by default, --fp for full precision) with AdamW,
warmup and a decaying learning rate; evaluates, checkpoints (keeps the last N and best/),
and prints a sample at the end. Flags override --config, which overrides the defaults.

Options:
  --config PATH         JSON object of options: the flags in camelCase ("evalEvery": 100), and
${wrap(OPTION_SPECS.filter((s) => !s.flag).map((s) => s.key).join(', '), 24, 96)}
${flagLines(TRAIN_FLAGS.filter((f) => !QAT_KEYS.has(f.spec.key)), DEFAULT_RUN_CONFIG as unknown as Record<string, unknown>)}
  --help                this text

Quantisation-aware training (BitLinear models; see README "Quantization-aware training"):
${flagLines(TRAIN_FLAGS.filter((f) => QAT_KEYS.has(f.spec.key)), DEFAULT_RUN_CONFIG as unknown as Record<string, unknown>)}
`;
}

const QAT_KEYS = new Set<string>(QAT_OPTION_SPECS.map((s) => s.key));

/** `bitnet-train sample --help`. */
export function sampleHelp(): string {
  return `Usage: bitnet-train sample --ckpt DIR [options]

Loads the model and tokenizer of a checkpoint and continues --prompt.

Options:
${flagLines(SAMPLE_FLAGS, SAMPLE_DEFAULTS as unknown as Record<string, unknown>)}
  --help                this text
`;
}
