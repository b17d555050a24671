/**
 * The `bitnet-train` commands, as a function of argv and output streams (tests call it in
 * process; `main.ts` is the executable). Returns the exit status: 0 done, 1 the run failed
 * (bad data, a checkpoint that does not fit, a NaN streak), 2 bad command-line input, 130 / 143 /
 * 129 a training stopped by SIGINT (Ctrl-C) / SIGTERM / SIGHUP after saving a checkpoint.
 */
import { getDefaultFileSystem } from '../runtime/fs.js';
import type { FileSystem } from '../runtime/fs-types.js';
import { closest } from '../train/config.js';
import { sampleFromCheckpoint } from '../train/run.js';
import { isHfModelDirectory } from '../train/sources.js';
import { sampleFromHfDirectory } from './hf-sample.js';
import { MAIN_HELP, UsageError, parseSampleArgs, parseTrainArgs, sampleHelp, trainHelp } from './args.js';
import type { OutputStream } from './progress.js';
import { analyzeCommand, calibrateCommand, convertCommand, distillCommand } from './qat-commands.js';
import { exportCommand } from './export.js';
import { reportCommand } from './report.js';
import { finetuneCommand, mergeCommand, sampleWithAdapter } from './finetune.js';
import { optionLayers, runTrainingCommand } from './run-train.js';

export interface CliIO {
  stdout: OutputStream;
  stderr: OutputStream;
  /** Default: the host file system. */
  fs?: FileSystem;
  /** Where the bundled corpus is when the working directory has no `examples/data/` (the package's own copy). */
  packageCorpus?: string;
  /** Print stack traces of errors (BITNET_DEBUG=1). */
  debug?: boolean;
  /**
   * Route the host's stop signals (Ctrl-C, SIGTERM, SIGHUP) to a training while it runs: `signal`
   * aborts on the first one, with the signal's name as its `reason` (the exit status is 130, 143
   * or 129); `release()` restores the host's default handling. Without it a training cannot be
   * interrupted gracefully (the host's default applies).
   */
  catchInterrupt?: () => { signal: AbortSignal; release(): void };
}

const COMMANDS = ['train', 'sample', 'convert', 'distill', 'calibrate', 'analyze', 'report', 'export', 'finetune', 'merge', 'help'];

/** Run `bitnet-train <argv>`; resolves to the exit status. */
export async function runCli(argv: readonly string[], io: CliIO): Promise<number> {
  try {
    const [command, ...rest] = argv;
    if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
      io.stdout.write(MAIN_HELP);
      return command === undefined ? 2 : 0;
    }
    if (command === 'train') return await trainCommand(rest, io);
    if (command === 'sample') return await sampleCommand(rest, io);
    if (command === 'finetune') return await finetuneCommand(rest, io);
    if (command === 'merge') return await mergeCommand(rest, io);
    if (command === 'convert') return await convertCommand(rest, io);
    if (command === 'distill') return await distillCommand(rest, io);
    if (command === 'calibrate') return await calibrateCommand(rest, io);
    if (command === 'analyze') return await analyzeCommand(rest, io);
    if (command === 'export') return await exportCommand(rest, io);
    if (command === 'report') return await reportCommand(rest, io);
    const near = closest(command, COMMANDS);
    throw new UsageError(`unknown command '${command}'${near ? ` (did you mean '${near}'?)` : ''}; commands: ${COMMANDS.filter((c) => c !== 'help').join(', ')}`);
  } catch (err) {
    const usage = err instanceof UsageError;
    io.stderr.write(`bitnet-train: ${usage ? '' : 'error: '}${err instanceof Error ? err.message : String(err)}\n`);
    if (io.debug && err instanceof Error && err.stack) io.stderr.write(err.stack + '\n');
    return usage ? 2 : 1;
  }
}

async function trainCommand(argv: readonly string[], io: CliIO): Promise<number> {
  const { config: flags, configFile, help } = parseTrainArgs(argv);
  if (help) {
    io.stdout.write(trainHelp());
    return 0;
  }
  const { fs, fromFile } = await optionLayers(io, flags, configFile);
  return runTrainingCommand(io, fs, { fromFile, flags });
}

async function sampleCommand(argv: readonly string[], io: CliIO): Promise<number> {
  const { args, help } = parseSampleArgs(argv);
  if (help) {
    io.stdout.write(sampleHelp());
    return 0;
  }
  const fs = io.fs ?? (await getDefaultFileSystem());
  if (await isHfModelDirectory(fs, args.ckpt)) return sampleFromHfDirectory(args, io, fs);
  if (args.adapter !== undefined) return sampleWithAdapter(args, io, fs);
  if (args.printIds) {
    // ids only: for models without a tokenizer, and to compare token for token with other engines
    const res = await sampleFromCheckpoint(args, { fs });
    io.stdout.write(`${Array.from(res.ids).join(',')}\n`);
    io.stderr.write(`(sampled from ${res.checkpoint}, step ${res.step}${args.temperature === 0 ? ', greedy' : ''})\n`);
    return 0;
  }
  io.stdout.write(args.prompt);
  const res = await sampleFromCheckpoint({ ...args, onText: (t) => io.stdout.write(t) }, { fs });
  io.stdout.write('\n');
  io.stderr.write(`(sampled from ${res.checkpoint}, step ${res.step})\n`);
  return 0;
}
