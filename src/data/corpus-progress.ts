/**
 * A progress line for reading a long corpus: `tokenizing data.txt: 45% (270/600 MiB, 3.1 MiB/s)`,
 * printed at most every `everyMs` and only for corpora of at least `minBytes` (small ones load in
 * well under a second and print nothing).
 */
import type { CorpusProgress } from './corpus.js';

/** What the printer writes to (process.stderr fits). */
export interface ProgressStream {
  write(text: string): unknown;
  isTTY?: boolean;
}

/** A progress callback for `loadCorpus` that writes lines to `out`. */
export function corpusProgressPrinter(out: ProgressStream, source: string, options: { minBytes?: number; everyMs?: number; now?: () => number } = {}): (p: CorpusProgress) => void {
  const minBytes = options.minBytes ?? 32 << 20;
  const everyMs = options.everyMs ?? 1000;
  const now = options.now ?? (() => Date.now());
  const start = now();
  let last = -Infinity;
  return (p) => {
    const t = now();
    const done = p.bytesTotal > 0 && p.bytesDone >= p.bytesTotal;
    if ((p.bytesTotal > 0 && p.bytesTotal < minBytes) || (t - last < everyMs && !done)) return;
    if (p.bytesTotal === 0 && p.bytesDone < minBytes) return;
    last = t;
    const mib = (b: number) => (b / (1 << 20)).toFixed(b < 10 << 20 ? 1 : 0);
    const rate = p.bytesDone / (1 << 20) / Math.max(1e-3, (t - start) / 1000);
    const what = p.phase === 'vocabulary' ? 'reading the vocabulary of' : 'tokenizing';
    const pct = p.bytesTotal > 0 ? `${Math.floor((100 * p.bytesDone) / p.bytesTotal)}% (${mib(p.bytesDone)}/${mib(p.bytesTotal)} MiB` : `(${mib(p.bytesDone)} MiB`;
    out.write(`${what} ${source}: ${pct}, ${rate.toFixed(1)} MiB/s${p.phase === 'tokenize' ? `, ${p.tokens} tokens` : ''})${out.isTTY && !done ? '\r' : '\n'}`);
  };
}
