/**
 * `bitnet-train report RUN_DIR [--out report.html]`: a run's log as one self-contained HTML page.
 */
import { getDefaultFileSystem } from '../runtime/fs.js';
import { writeRunReport } from '../monitor/report.js';
import { UsageError, parseFlags, sampleSpec } from './args.js';
import type { CliIO } from './commands.js';

const REPORT_FLAGS = [sampleSpec('out', 'string', 'where to write the HTML (default RUN_DIR/report.html)')];

/** `bitnet-train report --help`. */
export function reportHelp(): string {
  return `Usage: bitnet-train report RUN_DIR [--out report.html]

Turns a run's log (RUN_DIR/log.jsonl, or a log file given directly) into one HTML file that opens
without a network: loss curves (train, val, best step marked), learning rate, tokens/s, per-layer
SQNR heat maps, the -1/0/+1 fractions, flip rate, sensitivity ranking and mixed-precision picks,
the profile (--profile), the run config and the samples. Works on a run still in progress.

Options:
  --out PATH            where to write it (default RUN_DIR/report.html)
  --help                this text
`;
}

/** Run `report`; returns the exit status. */
export async function reportCommand(argv: readonly string[], io: CliIO): Promise<number> {
  const positional = argv.filter((a, i) => !a.startsWith('-') && !(i > 0 && argv[i - 1] === '--out'));
  const flags = argv.filter((a) => !positional.includes(a));
  const { values, help } = parseFlags('report', flags, REPORT_FLAGS);
  if (help) {
    io.stdout.write(reportHelp());
    return 0;
  }
  if (positional.length !== 1) {
    throw new UsageError(positional.length === 0
      ? 'report: RUN_DIR is required (a run directory such as runs/<name>, or its log.jsonl)'
      : `report: one run at a time, got ${positional.length} (${positional.join(', ')})`);
  }
  const fs = io.fs ?? (await getDefaultFileSystem());
  const path = await writeRunReport(fs, positional[0]!, values.out as string | undefined);
  io.stdout.write(`report: ${path}\n`);
  return 0;
}
