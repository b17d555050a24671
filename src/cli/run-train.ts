/**
 * The part of `train`, `distill` and `convert` that runs a training: read `--config`, layer the
 * options, call `runTraining` with a progress reporter, and print the run header, QAT reports
 * and the result.
 */
import type { CorpusProgress } from '../data/corpus.js';
import { corpusProgressPrinter } from '../data/corpus-progress.js';
import { formatSensitivityTable } from '../qat/index.js';
import { getDefaultFileSystem } from '../runtime/fs.js';
import { type FileSystem, FileSystemError, FS_CODE_TEXT } from '../runtime/fs-types.js';
import { DEFAULT_RUN_CONFIG, type RunConfig, validatePartialConfig } from '../train/config.js';
import { formatQuantSummary } from '../train/qat-describe.js';
import { runTraining } from '../train/run.js';
import { UsageError } from './args.js';
import type { CliIO } from './commands.js';
import { ProgressReporter, formatDuration, formatRate } from './progress.js';

/** Exit status of a training stopped by each signal (128 + the signal's number, as a shell reports it). */
const INTERRUPT_STATUS = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 } as const;

/** Which signal aborted `signal` (its `reason`, as `catchInterrupt` sets it); SIGINT for any other abort. */
function interruptSignal(signal: AbortSignal | undefined): keyof typeof INTERRUPT_STATUS {
  const r: unknown = signal?.reason;
  return r === 'SIGTERM' || r === 'SIGHUP' ? r : 'SIGINT';
}

/** Read and check a `--config` file (errors are usage errors naming the file). */
export async function readConfigFile(fs: FileSystem, path: string): Promise<Partial<RunConfig>> {
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

/** The option layers of a training command: `--config` file below the flags (plus a command's own defaults below both). */
export async function optionLayers(io: CliIO, flags: Partial<RunConfig>, configFile: string | undefined): Promise<{ fs: FileSystem; fromFile: Partial<RunConfig>; flags: Partial<RunConfig> }> {
  const fs = io.fs ?? (await getDefaultFileSystem());
  const fromFile = configFile !== undefined ? await readConfigFile(fs, configFile) : {};
  return { fs, fromFile, flags };
}

/** Run a training with progress output; `base` layers go under the file and the flags. Returns the exit status. */
export async function runTrainingCommand(io: CliIO, fs: FileSystem, layers: { base?: Partial<RunConfig>[]; fromFile: Partial<RunConfig>; flags: Partial<RunConfig> }): Promise<number> {
  const { fromFile, flags } = layers;
  const all: Partial<RunConfig>[] = [...(layers.base ?? []), fromFile, flags];
  // `npm start` outside the repository root: fall back to the package's bundled corpus
  const given = (k: keyof RunConfig) => all.some((l) => l[k] !== undefined);
  const dataGiven = given('data') || given('resume') || given('from');
  if (!dataGiven && io.packageCorpus && !(await fs.exists(DEFAULT_RUN_CONFIG.data)) && (await fs.exists(io.packageCorpus))) {
    all.unshift({ data: io.packageCorpus });
  }
  let reporter: ProgressReporter | undefined;
  let sampleStarted = false;
  let printer: ((p: CorpusProgress) => void) | undefined;
  const dataProgress = (p: CorpusProgress) => (printer ??= corpusProgressPrinter(io.stderr, all.reduce<string>((d, l) => l.data ?? d, DEFAULT_RUN_CONFIG.data)))(p);
  const interrupt = io.catchInterrupt?.();
  let r: Awaited<ReturnType<typeof runTraining>>;
  try {
    r = await runTraining(all, {
      onWarning: (w) => (reporter ? reporter.warn(w) : io.stderr.write(`warning: ${w}\n`)),
      onDataProgress: dataProgress,
      onStart: (s) => {
        reporter = new ProgressReporter(io.stdout, io.stderr, s.config.iters);
        const m = s.model;
        const kind = m.bitlinear ? 'BitLinear b1.58' : 'full precision';
        reporter.line(`model: ${(s.parameters / 1e6).toFixed(2)}M parameters | ${m.layers} layers, dim ${m.dim}, ${m.heads} heads, context ${m.contextLength}, vocab ${m.vocabSize} | ${kind}, ${m.norm} norm, ${m.mlp}, ${m.pos} positions`);
        reporter.line(`data: ${s.config.data} | ${s.trainTokens} train / ${s.valTokens} val tokens (${s.config.tokenizerJson ?? s.config.tokenizer})`);
        const c = s.config;
        reporter.line(`training: ${c.iters} steps x ${c.batch * c.gradAccum} x ${c.context} tokens | ${c.optimizer} lr ${c.lr} (${c.schedule}, warmup ${c.warmup}) | backend ${s.backend}, ${s.threads} thread${s.threads === 1 ? '' : 's'}`);
        for (const q of s.qat) reporter.line(`qat: ${q}`);
        if (s.resumedFrom) reporter.line(`resumed from ${s.resumedFrom} at step ${s.startStep}`);
        reporter.line(`run directory: ${s.outDir} (log: ${s.logFile})`);
      },
      onStep: (i) => reporter!.onStep(i),
      onLog: (i) => reporter!.onLog(i),
      onEval: (i) => reporter!.onEval(i),
      onCheckpoint: (i) => reporter!.onCheckpoint(i),
      onQuantError: (e) => reporter!.line(formatQuantSummary(e)),
      onCalibration: (e) => {
        const clips = e.layers.map((l) => l.clip);
        const range = clips.length > 0 ? `clips ${Math.min(...clips).toFixed(3)}..${Math.max(...clips).toFixed(3)}` : 'no static layers';
        const line = `calibration step ${e.step}: ${e.method} on ${e.batches} batch${e.batches === 1 ? '' : 'es'}, ${e.layers.length} layers, ${range}`;
        if (reporter) reporter.line(line);
        else io.stdout.write(line + '\n');
      },
      onMixedPrecision: (e) => {
        const out = (t: string) => (reporter ? reporter.line(t) : io.stdout.write(t + '\n'));
        out(formatSensitivityTable(e.sensitivity).split('\n').slice(0, 2 + Math.max(3, e.projections.length)).join('\n'));
        out(`mixed precision: ${e.projections.length === 0 ? 'no projection passed the threshold; all stay ternary' : `keeping ${e.projections.join(', ')} in ${e.precision}`}`);
      },
      onSummary: (t) => {
        if (sampleStarted) { // the report's path comes after the streamed sample: close it first
          io.stdout.write('\n--------------\n');
          sampleStarted = false;
        }
        if (reporter) reporter.line(t);
        else io.stdout.write(t + '\n');
      },
      onSampleText: (t) => {
        if (!sampleStarted) {
          reporter!.line('--- sample ---');
          sampleStarted = true;
        }
        io.stdout.write(t);
      },
    }, { fs, signal: interrupt?.signal });
  } finally {
    interrupt?.release();
  }
  if (r.stopReason === 'interrupted') {
    const saved = r.checkpoint ? `checkpoint: ${r.checkpoint}` : 'no checkpoint directory';
    const by = interruptSignal(interrupt?.signal);
    io.stdout.write(`${by === 'SIGINT' ? 'interrupted' : `stopped by ${by}`} at step ${r.step} of ${r.config.iters} | ${saved}\n`);
    if (r.checkpoint) io.stdout.write(`continue with: bitnet-train train --resume ${r.checkpoint}\n`);
    return INTERRUPT_STATUS[by];
  }
  if (sampleStarted) io.stdout.write('\n--------------\n');
  const stop = r.stopReason === 'early-stop' ? ` (early stop: no better val loss in ${r.config.patience} evaluations)` : '';
  const val = r.lastEval ? ` | val loss ${r.lastEval.valLoss.toFixed(4)}` : '';
  io.stdout.write(`done: step ${r.step}${stop} in ${formatDuration(r.trainSeconds)} | ${formatRate(r.tokensPerSecond)} tok/s${val}\n`);
  if (r.checkpoint) io.stdout.write(`checkpoint: ${r.checkpoint}${r.bestValLoss !== null ? ` (best val loss ${r.bestValLoss.toFixed(4)} in ${r.outDir}/best)` : ''}\n`);
  return 0;
}
