/**
 * The QAT commands of `bitnet-train`: `convert` and `distill` (training runs with their own
 * required checkpoint and defaults), `calibrate` and `analyze` (tools on a checkpoint).
 */
import { formatSensitivityTable } from '../qat/index.js';
import { getDefaultFileSystem } from '../runtime/fs.js';
import { dirname } from '../runtime/fs-types.js';
import { DEFAULT_RUN_CONFIG, type RunConfig } from '../train/config.js';
import { analyzeCheckpoint, calibrateCheckpoint } from '../train/qat-tools.js';
import { UsageError } from './args.js';
import type { CliIO } from './commands.js';
import {
  analyzeHelp, calibrateHelp, convertHelp, distillHelp, keepFpHint, parseAnalyzeArgs, parseCalibrateArgs, parseRunCommandArgs,
} from './qat-args.js';
import { optionLayers, runTrainingCommand } from './run-train.js';

/** `bitnet-train convert --from DIR`: progressive conversion of a (full-precision) checkpoint to ternary. */
export async function convertCommand(argv: readonly string[], io: CliIO): Promise<number> {
  const a = parseRunCommandArgs('convert', argv);
  if (a.help) {
    io.stdout.write(convertHelp());
    return 0;
  }
  const { fs, fromFile } = await optionLayers(io, a.config, a.configFile);
  const get = <K extends keyof RunConfig>(k: K): RunConfig[K] | undefined => (a.config[k] !== undefined ? a.config[k] : fromFile[k]);
  const resume = get('resume');
  const from = get('from');
  if (!from && !resume) throw new UsageError('convert: --from DIR is required (the checkpoint to convert, e.g. the run directory of a --fp run, or --from-hf DIR for a Hugging Face LLaMA)');
  if (get('fp') === true) throw new UsageError('convert: it makes a BitLinear (ternary) model; drop --fp');
  const flags: Partial<RunConfig> = { ...a.config };
  if (a.teacherFromSource) {
    if (get('teacher')) throw new UsageError('convert: --teacher-from-source and --teacher both name a teacher; give one of them');
    if (!from) throw new UsageError('convert: --teacher-from-source needs --from DIR');
    flags.teacher = from;
  }
  const base: Partial<RunConfig>[] = [];
  const rampGiven = (['quantWarmup', 'quantWarmupWeights', 'quantWarmupActivations'] as const).some((k) => get(k) !== undefined && get(k) !== null);
  if (!rampGiven && !resume) base.push({ quantWarmup: Math.floor((get('iters') ?? DEFAULT_RUN_CONFIG.iters) / 2) });
  // a Hugging Face LLaMA's shape layer says fp (it fine-tunes as it is); converting makes it BitLinear
  if (!resume) base.push({ fp: false });
  return runTrainingCommand(io, fs, { base, fromFile, flags });
}

/** `bitnet-train distill --teacher DIR`: train on a teacher's logits. */
export async function distillCommand(argv: readonly string[], io: CliIO): Promise<number> {
  const a = parseRunCommandArgs('distill', argv);
  if (a.help) {
    io.stdout.write(distillHelp());
    return 0;
  }
  const { fs, fromFile } = await optionLayers(io, a.config, a.configFile);
  const given = (k: keyof RunConfig) => a.config[k] ?? fromFile[k];
  if (!given('teacher') && !given('resume')) throw new UsageError('distill: --teacher DIR is required (a checkpoint or run directory trained with the same tokenizer)');
  return runTrainingCommand(io, fs, { fromFile, flags: a.config });
}

/** `bitnet-train calibrate --ckpt DIR`: static activation clips, written as a new checkpoint. */
export async function calibrateCommand(argv: readonly string[], io: CliIO): Promise<number> {
  const { args, help } = parseCalibrateArgs(argv);
  if (help) {
    io.stdout.write(calibrateHelp());
    return 0;
  }
  const fs = io.fs ?? (await getDefaultFileSystem());
  const r = await calibrateCheckpoint(args, { fs });
  const res = r.result;
  io.stdout.write(`calibrated ${r.checkpoint} (step ${r.step}): ${res.method} over ${res.batches} batches\n`);
  const w = Math.max(...res.layers.map((l) => l.name.length));
  for (const l of res.layers) io.stdout.write(`  ${l.name.padEnd(w)}  clip ${l.clip.toFixed(4)}\n`);
  io.stdout.write(`checkpoint: ${r.out} (activation scales: static)\n`);
  return 0;
}

const db = (x: number | null): string => (x === null ? 'exact' : `${x.toFixed(1)} dB`);

/** `bitnet-train analyze --ckpt DIR`: ranked sensitivity table, error analysis, optional JSON. */
export async function analyzeCommand(argv: readonly string[], io: CliIO): Promise<number> {
  const { args, help } = parseAnalyzeArgs(argv);
  if (help) {
    io.stdout.write(analyzeHelp());
    return 0;
  }
  const fs = io.fs ?? (await getDefaultFileSystem());
  const r = await analyzeCheckpoint(args, { fs });
  const out = (t: string) => io.stdout.write(t + '\n');
  out(`analysis of ${r.checkpoint} (step ${r.step})${r.fullPrecisionCheckpoint ? ': a full-precision model, analysed as its BitLinear conversion' : ''}`);
  out('');
  out('sensitivity (val loss; only FP Δ < 0: keeping the projection in FP helps):');
  out(formatSensitivityTable(r.sensitivity));
  const helpful = r.sensitivity.rows.filter((row) => row.fp_delta < 0).slice(0, 3).map((row) => row.name);
  if (helpful.length > 0) out(`to keep the most sensitive in full precision: ${keepFpHint(helpful)} (or --auto-mixed-precision K)`);
  out('');
  out('quantisation error:');
  const layers = r.quantError.layers;
  const w = Math.max(10, ...layers.map((l) => l.name.length));
  out(`  ${'projection'.padEnd(w)}  ${'precision'.padEnd(9)}  ${'weight SQNR'.padStart(11)}  ${'act SQNR'.padStart(9)}  ${'-1/0/+1'.padStart(14)}  ${'scale'.padStart(8)}`);
  for (const l of layers) {
    const t = `${l.ternary.neg.toFixed(2)}/${l.ternary.zero.toFixed(2)}/${l.ternary.pos.toFixed(2)}`;
    out(`  ${l.name.padEnd(w)}  ${l.precision.padEnd(9)}  ${db(l.weight_sqnr_db).padStart(11)}  ${db(l.activation_sqnr_db).padStart(9)}  ${t.padStart(14)}  ${l.scale.toFixed(2).padStart(8)}`);
  }
  if (args.json) {
    const report = { ...r.sensitivity, checkpoint: r.checkpoint, step: r.step, full_precision_checkpoint: r.fullPrecisionCheckpoint, quant_error: { step: r.quantError.step, layers: r.quantError.layers } };
    const dir = dirname(args.json);
    if (dir && dir !== '.') await fs.mkdirp(dir);
    await fs.writeFile(args.json, JSON.stringify(report, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), 2) + '\n');
    out(`report: ${args.json}`);
  }
  return 0;
}
