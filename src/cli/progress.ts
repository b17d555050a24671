/**
 * What `bitnet-train train` prints while it runs. On a terminal: one progress line redrawn in
 * place (step, bar, loss, tokens/s, ETA), with eval and checkpoint lines printed above it.
 * Otherwise (a pipe, a log file, CI): one plain line every `--log-every` steps.
 */
import type { CheckpointInfo, EvalInfo, LogInfo, StepInfo } from '../train/trainer.js';

/** The bits of a stream the reporter needs (process.stdout fits). */
export interface OutputStream {
  write(text: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

/** `95` → `1m35s`, `4000` → `1h06m`. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** `5123.4` → `5.1k`. */
export function formatRate(x: number): string {
  if (!Number.isFinite(x)) return '?';
  return x >= 10000 ? `${(x / 1000).toFixed(0)}k` : x >= 1000 ? `${(x / 1000).toFixed(1)}k` : x.toFixed(0);
}

const fmtLoss = (x: number): string => (Number.isFinite(x) ? x.toFixed(4) : String(x));

export class ProgressReporter {
  private readonly tty: boolean;
  private lastDraw = 0;
  private barShown = false;
  private lastStep: StepInfo | undefined;
  private rate = NaN;
  private eta = NaN;
  private secondsPerStep = NaN;
  /** The lowest val loss so far (NaN before the first evaluation). */
  private bestVal = NaN;

  constructor(private readonly out: OutputStream, private readonly err: OutputStream, private readonly iters: number, private readonly now: () => number = () => Date.now()) {
    this.tty = out.isTTY === true;
  }

  /** Print a full line (clearing the progress bar first on a terminal). */
  line(text: string): void {
    this.clearBar();
    this.out.write(text + '\n');
  }

  /** A warning on stderr. */
  warn(text: string): void {
    this.clearBar();
    this.err.write(`warning: ${text}\n`);
  }

  onStep(i: StepInfo): void {
    this.lastStep = i;
    // a smoothed step time gives a steadier ETA than the last interval alone
    this.secondsPerStep = Number.isFinite(this.secondsPerStep) ? 0.9 * this.secondsPerStep + 0.1 * i.seconds : i.seconds;
    if (!Number.isFinite(this.rate)) this.rate = i.tokens / i.seconds;
    this.eta = (this.iters - i.step) * this.secondsPerStep;
    if (i.skipped) {
      const why = i.skipReason === 'gradient' ? `gradient norm is ${i.gradNorm}` : i.skipReason === 'overflow' ? 'the update would overflow the weights' : `loss is ${i.loss}`;
      this.warn(`step ${i.step}: ${why}; update skipped (${i.nanStreak} in a row)`);
    }
    if (this.tty && (this.now() - this.lastDraw > 100 || i.step === this.iters)) this.drawBar();
  }

  onLog(i: LogInfo): void {
    this.rate = i.tokensPerSecond;
    if (this.tty) return;
    this.out.write(`step ${String(i.step).padStart(String(this.iters).length)}/${this.iters} | loss ${fmtLoss(i.loss)} | lr ${i.lr.toExponential(2)} | ${formatRate(i.tokensPerSecond)} tok/s | ETA ${formatDuration(this.eta)}${this.bestText()}\n`);
  }

  onEval(i: EvalInfo): void {
    if (Number.isFinite(i.valLoss) && !(i.valLoss >= this.bestVal)) this.bestVal = i.valLoss;
    this.line(`eval step ${i.step}: train loss ${fmtLoss(i.trainLoss)} | val loss ${fmtLoss(i.valLoss)} | val ppl ${i.perplexity.toFixed(2)}${i.best ? ' | best so far' : ''}`);
  }

  onCheckpoint(i: CheckpointInfo): void {
    this.line(`checkpoint step ${i.step}: ${i.path}${i.isBest ? ' (also best/)' : ''}`);
  }

  /** Remove the progress line (before other output, and at the end). */
  clearBar(): void {
    if (this.barShown) {
      this.out.write('\r\x1b[K');
      this.barShown = false;
    }
  }

  private bestText(): string {
    return Number.isFinite(this.bestVal) ? ` | best val ${fmtLoss(this.bestVal)}` : '';
  }

  private drawBar(): void {
    const i = this.lastStep;
    if (!i) return;
    this.lastDraw = this.now();
    const frac = Math.min(1, i.step / this.iters);
    const width = 20;
    const filled = Math.round(frac * width);
    const bar = '#'.repeat(filled) + '.'.repeat(width - filled);
    let text = `step ${i.step}/${this.iters} [${bar}] ${(frac * 100).toFixed(0)}% | loss ${fmtLoss(i.loss)} | ${formatRate(this.rate)} tok/s | ETA ${formatDuration(this.eta)}${this.bestText()}`;
    const cols = this.out.columns ?? 0;
    if (cols > 10 && text.length >= cols) text = text.slice(0, cols - 1);
    this.out.write(`\r\x1b[K${text}`);
    this.barShown = true;
  }
}
