/**
 * The `bitnet-train` commands, as a function of argv and output streams (tests call it in
 * process; `main.ts` is the executable). Returns the exit status: 0 done, 1 the run failed
 * (bad data, a checkpoint that does not fit, a NaN streak), 2 bad command-line input.
 */
import { getDefaultFileSystem } from '../runtime/fs.js';
import { type FileSystem, FileSystemError, FS_CODE_TEXT } from '../runtime/fs-types.js';
import { DEFAULT_RUN_CONFIG, type RunConfig, closest, validatePartialConfig } from '../train/config.js';
import { runTraining, sampleFromCheckpoint } from '../train/run.js';
import { MAIN_HELP, UsageError, parseSampleArgs, parseTrainArgs, sampleHelp, trainHelp } from './args.js';
import { type OutputStream, ProgressReporter, formatDuration, formatRate } from './progress.js';

export interface CliIO {
  stdout: OutputStream;
  stderr: OutputStream;
  /** Default: the host file system. */
  fs?: FileSystem;
  /** Where the bundled corpus is when the working directory has no `examples/data/` (the package's own copy). */
  packageCorpus?: string;
  /** Print stack traces of errors (BITNET_DEBUG=1). */
  debug?: boolean;
}

const COMMANDS = ['train', 'sample', 'help'];

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
    const near = closest(command, COMMANDS);
    throw new UsageError(`unknown command '${command}'${near ? ` (did you mean '${near}'?)` : ''}; commands: train, sample`);
  } catch (err) {
    const usage = err instanceof UsageError;
    io.stderr.write(`bitnet-train: ${usage ? '' : 'error: '}${err instanceof Error ? err.message : String(err)}\n`);
    if (io.debug && err instanceof Error && err.stack) io.stderr.write(err.stack + '\n');
    return usage ? 2 : 1;
  }
}

async function readConfigFile(fs: FileSystem, path: string): Promise<Partial<RunConfig>> {
  let text: string;
  try {
    text = await fs.readText(path);
  } catch (err) {
    if (err instanceof FileSystemError) throw new UsageError(`--config ${path}: ${FS_CODE_TEXT[err.code] ?? err.code}`);
    throw err;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`--config ${path}: not valid JSON (${(err as Error).message})`);
  }
  try {
    return validatePartialConfig(json, `--config ${path}`);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

async function trainCommand(argv: readonly string[], io: CliIO): Promise<number> {
  const { config: flags, configFile, help } = parseTrainArgs(argv);
  if (help) {
    io.stdout.write(trainHelp());
    return 0;
  }
  const fs = io.fs ?? (await getDefaultFileSystem());
  const fromFile = configFile !== undefined ? await readConfigFile(fs, configFile) : {};
  const layers: Partial<RunConfig>[] = [fromFile, flags];
  // `npm start` outside the repository root: fall back to the package's bundled corpus
  const dataGiven = flags.data !== undefined || fromFile.data !== undefined || flags.resume !== undefined || fromFile.resume !== undefined;
  if (!dataGiven && io.packageCorpus && !(await fs.exists(DEFAULT_RUN_CONFIG.data)) && (await fs.exists(io.packageCorpus))) {
    layers.unshift({ data: io.packageCorpus });
  }
  let reporter: ProgressReporter | undefined;
  let sampleStarted = false;
  const result = await runTraining(layers, {
    onWarning: (w) => (reporter ? reporter.warn(w) : io.stderr.write(`warning: ${w}\n`)),
    onStart: (s) => {
      reporter = new ProgressReporter(io.stdout, io.stderr, s.config.iters);
      const m = s.model;
      const kind = m.bitlinear ? 'BitLinear b1.58' : 'full precision';
      reporter.line(`model: ${(s.parameters / 1e6).toFixed(2)}M parameters | ${m.layers} layers, dim ${m.dim}, ${m.heads} heads, context ${m.contextLength}, vocab ${m.vocabSize} | ${kind}, ${m.norm} norm, ${m.mlp}, ${m.pos} positions`);
      reporter.line(`data: ${s.config.data} | ${s.trainTokens} train / ${s.valTokens} val tokens (${s.config.tokenizer})`);
      const c = s.config;
      reporter.line(`training: ${c.iters} steps x ${c.batch * c.gradAccum} x ${c.context} tokens | ${c.optimizer} lr ${c.lr} (${c.schedule}, warmup ${c.warmup}) | backend ${s.backend}, ${s.threads} thread${s.threads === 1 ? '' : 's'}`);
      if (s.resumedFrom) reporter.line(`resumed from ${s.resumedFrom} at step ${s.startStep}`);
      reporter.line(`run directory: ${s.outDir} (log: ${s.logFile})`);
    },
    onStep: (i) => reporter!.onStep(i),
    onLog: (i) => reporter!.onLog(i),
    onEval: (i) => reporter!.onEval(i),
    onCheckpoint: (i) => reporter!.onCheckpoint(i),
    onSampleText: (t) => {
      if (!sampleStarted) {
        reporter!.line('--- sample ---');
        sampleStarted = true;
      }
      io.stdout.write(t);
    },
  }, { fs });
  if (sampleStarted) io.stdout.write('\n--------------\n');
  const r = result;
  const stop = r.stopReason === 'early-stop' ? ` (early stop: no better val loss in ${r.config.patience} evaluations)` : '';
  const val = r.lastEval ? ` | val loss ${r.lastEval.valLoss.toFixed(4)}` : '';
  io.stdout.write(`done: step ${r.step}${stop} in ${formatDuration(r.trainSeconds)} | ${formatRate(r.tokensPerSecond)} tok/s${val}\n`);
  if (r.checkpoint) io.stdout.write(`checkpoint: ${r.checkpoint}${r.bestValLoss !== null ? ` (best val loss ${r.bestValLoss.toFixed(4)} in ${r.outDir}/best)` : ''}\n`);
  return 0;
}

async function sampleCommand(argv: readonly string[], io: CliIO): Promise<number> {
  const { args, help } = parseSampleArgs(argv);
  if (help) {
    io.stdout.write(sampleHelp());
    return 0;
  }
  const fs = io.fs ?? (await getDefaultFileSystem());
  io.stdout.write(args.prompt);
  const res = await sampleFromCheckpoint({ ...args, onText: (t) => io.stdout.write(t) }, { fs });
  io.stdout.write('\n');
  io.stderr.write(`(sampled from ${res.checkpoint}, step ${res.step})\n`);
  return 0;
}
