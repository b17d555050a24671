/**
 * A run's JSON-lines log (src/train/log.ts) gathered into the series a report plots.
 */
import type { ProjectionQuantStats } from '../qat/analysis.js';
import type { ProfileReport } from './profiler.js';

/** Sensitivity ranking and the projections `--auto-mixed-precision` kept. */
export interface MixedPrecisionSummary {
  precision: string;
  projections: string[];
  baseline: { ternary: number; fp: number } | null;
  rows: { name: string; fp_delta: number; ternary_delta: number }[];
}

/** Everything a report shows, as columns. Missing numbers (JSON null) are null. */
export interface RunSeries {
  /** `step` events: step, loss, lr, tokens/s. */
  train: { step: number[]; loss: (number | null)[]; lr: (number | null)[]; tokensPerSecond: (number | null)[] };
  /** `eval` events. */
  evals: { step: number[]; trainLoss: (number | null)[]; valLoss: (number | null)[] };
  /** The lowest val loss and its step (null without evaluations). */
  best: { step: number; valLoss: number } | null;
  /** `quant_error` reports: steps, the projections (union, first-seen order), values per projection per report. */
  quant: {
    step: number[];
    layers: string[];
    weightSqnrDb: (number | null)[][];
    activationSqnrDb: (number | null)[][];
    flipRate: (number | null)[][];
    /** Fractions of −1, 0, +1 over all ternary projections (weighted equally), per report. */
    neg: (number | null)[];
    zero: (number | null)[];
    pos: (number | null)[];
  };
  mixedPrecision: MixedPrecisionSummary | null;
  /** The last `config` event's run options and model (null for logs written before it existed). */
  config: { run: unknown; model: unknown; parameters: number } | null;
  samples: { step: number; prompt: string; text: string }[];
  profile: ProfileReport | null;
  done: { step: number; valLoss: number | null; trainSeconds: number; tokensPerSecond: number } | null;
  /** Lines that were not JSON (a torn last line of a run in progress is skipped silently). */
  skippedLines: number;
}

const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);

/**
 * Parse a log's text. A resumed run appends to the same log and may repeat steps after its
 * checkpoint: a later event for a step replaces the earlier one, so each series stays sorted.
 */
export function parseRunLog(text: string, source = 'log'): RunSeries {
  const lines = text.split('\n');
  const train = new Map<number, [number | null, number | null, number | null]>();
  const evals = new Map<number, [number | null, number | null]>();
  const quant = new Map<number, ProjectionQuantStats[]>();
  let mixedPrecision: MixedPrecisionSummary | null = null;
  let config: RunSeries['config'] = null;
  const samples: RunSeries['samples'] = [];
  let profile: ProfileReport | null = null;
  let done: RunSeries['done'] = null;
  let skipped = 0;
  let events = 0;
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    let e: Record<string, unknown>;
    try {
      e = JSON.parse(line) as Record<string, unknown>;
    } catch {
      if (i < lines.length - 1 || events === 0) skipped++;
      return;
    }
    events++;
    const step = typeof e.step === 'number' ? e.step : 0;
    switch (e.event) {
      case 'step': train.set(step, [num(e.loss), num(e.lr), num(e.tokens_per_s)]); break;
      case 'eval': evals.set(step, [num(e.train_loss), num(e.val_loss)]); break;
      case 'quant_error': if (Array.isArray(e.layers)) quant.set(step, e.layers as ProjectionQuantStats[]); break;
      case 'mixed_precision': {
        const s = e.sensitivity as { baseline?: { ternary: number; fp: number }; rows?: MixedPrecisionSummary['rows'] } | undefined;
        mixedPrecision = { precision: String(e.precision), projections: (e.projections as string[]) ?? [], baseline: s?.baseline ?? null, rows: s?.rows ?? [] };
        break;
      }
      case 'config': config = { run: e.run, model: e.model, parameters: num(e.parameters) ?? 0 }; break;
      case 'sample': samples.push({ step, prompt: String(e.prompt ?? ''), text: String(e.text ?? '') }); break;
      case 'profile': profile = e as unknown as ProfileReport; break;
      case 'done': done = { step, valLoss: num(e.val_loss), trainSeconds: num(e.train_seconds) ?? 0, tokensPerSecond: num(e.tokens_per_s) ?? 0 }; break;
      default: break;
    }
  });
  if (events === 0 && skipped > 0) throw new Error(`${source}: no JSON-lines events (is it a bitnet-train log.jsonl?)`);
  const sorted = <T>(m: Map<number, T>): [number, T][] => [...m].sort((a, b) => a[0] - b[0]);
  const t = sorted(train);
  const ev = sorted(evals);
  let best: RunSeries['best'] = null;
  for (const [step, [, v]] of ev) if (v !== null && (best === null || v < best.valLoss)) best = { step, valLoss: v };
  const q = sorted(quant);
  const layers: string[] = [];
  const index = new Map<string, number>();
  for (const [, ls] of q) for (const l of ls) if (!index.has(l.name)) index.set(l.name, layers.push(l.name) - 1);
  const perLayer = (pick: (l: ProjectionQuantStats) => number | null | undefined): (number | null)[][] => layers.map((name) => q.map(([, ls]) => num(pick(ls.find((l) => l.name === name) ?? ({} as ProjectionQuantStats)))));
  const fraction = (k: 'neg' | 'zero' | 'pos'): (number | null)[] => q.map(([, ls]) => {
    const tern = ls.filter((l) => l.precision === 'ternary' && l.ternary);
    return tern.length === 0 ? null : tern.reduce((a, l) => a + l.ternary[k], 0) / tern.length;
  });
  return {
    train: { step: t.map(([s]) => s), loss: t.map(([, v]) => v[0]), lr: t.map(([, v]) => v[1]), tokensPerSecond: t.map(([, v]) => v[2]) },
    evals: { step: ev.map(([s]) => s), trainLoss: ev.map(([, v]) => v[0]), valLoss: ev.map(([, v]) => v[1]) },
    best,
    quant: {
      step: q.map(([s]) => s), layers,
      weightSqnrDb: perLayer((l) => l.weight_sqnr_db), activationSqnrDb: perLayer((l) => l.activation_sqnr_db), flipRate: perLayer((l) => l.flip_rate),
      neg: fraction('neg'), zero: fraction('zero'), pos: fraction('pos'),
    },
    mixedPrecision, config, samples, profile, done, skippedLines: skipped,
  };
}
