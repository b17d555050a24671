// Quantisation-aware training from the CLI, as a user runs it (spawned with node, tiny models, a
// temporary directory), and bit-identical resume of a run with every stateful QAT option.
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCheckpoint } from '../src/io/checkpoint.js';
import { MemoryFileSystem, getDefaultFileSystem } from '../src/runtime/fs.js';
import { DEFAULT_RUN_CONFIG } from '../src/train/config.js';
import { modelConfigFromRun, modelShapeDifferences } from '../src/train/model.js';
import { runTraining } from '../src/train/run.js';

const ROOT = new URL('..', import.meta.url).pathname;
const MAIN = join(ROOT, 'dist/cli/main.js');
const CORPUS = readFileSync(join(ROOT, 'examples/data/tinyshakespeare.txt'), 'utf8').slice(0, 20000);
const TINY = ['--data', 'small.txt', '--layers', '2', '--dim', '16', '--heads', '2', '--context', '16', '--batch', '4', '--eval-iters', '2', '--log-every', '5', '--threads', '1'];

let dir = '';

function cli(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [MAIN, ...args], { cwd: dir, encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

type Event = Record<string, unknown> & { event: string; step: number };
const events = (path: string): Event[] => readFileSync(join(dir, path), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Event);
const trainerJson = (ckpt: string) => JSON.parse(readFileSync(join(dir, ckpt, 'trainer.json'), 'utf8')) as { step: number; config: { run: Record<string, unknown>; model: Record<string, unknown> } };

function snapshot(d: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (p: string, rel: string) => {
    for (const name of readdirSync(p).sort()) {
      const full = join(p, name);
      if (statSync(full).isDirectory()) walk(full, `${rel}${name}/`);
      else out[`${rel}${name}`] = createHash('sha256').update(readFileSync(full)).digest('hex');
    }
  };
  walk(d, '');
  return out;
}

const PROJECTIONS = ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.o_proj', 'mlp.up_proj', 'mlp.down_proj'];
const ALL = [0, 1].flatMap((l) => PROJECTIONS.map((p) => `model.layers.${l}.${p}`));

let fpRun: ReturnType<typeof cli>;
let qatRun: ReturnType<typeof cli>;

beforeAll(() => {
  if (!existsSync(MAIN)) execFileSync(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', join(ROOT, 'tsconfig.json')]);
  dir = mkdtempSync(join(tmpdir(), 'bitnet-qat-cli-'));
  writeFileSync(join(dir, 'small.txt'), CORPUS);
  fpRun = cli(['train', ...TINY, '--fp', '--iters', '30', '--eval-every', '0', '--out', 'fp']);
  writeFileSync(join(dir, 'qat.json'), JSON.stringify({ keepInt8: ['model.layers.1.mlp.up_proj'], sampleTokens: 0 }));
  // the built-in RMSNorm keeps activations in a range where one static int8 scale per layer gives ~40 dB
  qatRun = cli(['train', ...TINY, '--config', 'qat.json', '--iters', '20', '--eval-every', '10', '--out', 'qat', '--error-every', '5', '--bitlinear-norm', '--lr', '1e-3',
    '--quant-warmup', '8', '--quant-schedule', 'sigmoid', '--quant-layerwise', '--quant-noise', '0.5', '--quant-noise-steps', '6', '--ste', 'lsq',
    '--activation-scale', 'static', '--calibrate-every', '5', '--keep-fp', 'layers.0.self_attn.o_proj', '--qat-reg', '0.01', '--clamp-latent', '2']);
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('bitnet-train train with QAT flags', () => {
  it('trains, describes the QAT setup in its header, and prints a short line per error-analysis report', () => {
    expect(fpRun.status).toBe(0);
    expect(qatRun.stderr).toBe('');
    expect(qatRun.status).toBe(0);
    const out = qatRun.stdout;
    expect(out).toContain('qat: progressive quantisation (sigmoid, layer by layer (first-to-last)): weights over 8 steps, activations over 8 steps');
    expect(out).toContain('qat: quantisation noise: 0.5 of the weights quantised at step 0, 1 after 6 steps');
    expect(out).toContain('qat: weight STE: lsq');
    expect(out).toContain('qat: activation scales: static (ema, refreshed every 5 steps), activation STE clipped');
    expect(out).toContain('qat: kept in full precision: model.layers.0.self_attn.o_proj');
    expect(out).toContain('qat: kept at 8 bits: model.layers.1.mlp.up_proj');
    expect(out).toMatch(/qat: ternary-grid penalty: weight 0\.01\n/);
    expect(out).toContain('qat: latent weights clamped to ±2 grid steps');
    for (const s of [5, 10, 15, 20]) {
      expect(out).toMatch(new RegExp(`quant step ${s}: weight SQNR -?\\d+\\.\\d dB \\(worst -?\\d+\\.\\d model\\.layers\\.\\d\\.[a-z_.]+\\) \\| activation SQNR \\d+\\.\\d dB \\| -1/0/\\+1 0\\.\\d\\d/0\\.\\d\\d/0\\.\\d\\d \\| flips ${s === 5 ? 'n/a' : '\\d+\\.\\d\\d%'}`));
    }
  });

  it('logs quant_error events every --error-every steps with per-layer SQNR, ternary fractions, flip rate and scale', () => {
    const quant = events('qat/log.jsonl').filter((e) => e.event === 'quant_error');
    expect(quant.map((e) => e.step)).toEqual([5, 10, 15, 20]);
    for (const [i, e] of quant.entries()) {
      expect(Object.keys(e)).toEqual(['event', 'step', 'layers']);
      const layers = e.layers as Record<string, unknown>[];
      expect(layers.map((l) => l.name)).toEqual(ALL);
      for (const l of layers) {
        expect(Object.keys(l)).toEqual(['name', 'precision', 'weight_sqnr_db', 'activation_sqnr_db', 'ternary', 'flip_rate', 'scale']);
        expect(l.precision).toBe(l.name === 'model.layers.0.self_attn.o_proj' ? 'fp' : l.name === 'model.layers.1.mlp.up_proj' ? 'int8' : 'ternary');
        expect(Number.isFinite(l.weight_sqnr_db)).toBe(true);
        expect(l.activation_sqnr_db as number).toBeGreaterThan(20); // int8 activations: ~40 dB
        const t = l.ternary as { neg: number; zero: number; pos: number };
        expect(t.neg + t.zero + t.pos).toBeCloseTo(1, 12);
        for (const f of [t.neg, t.zero, t.pos]) expect(f).toBeGreaterThan(0.1);
        if (i === 0) expect(l.flip_rate).toBeNull();
        else {
          expect(l.flip_rate as number).toBeGreaterThanOrEqual(0);
          expect(l.flip_rate as number).toBeLessThanOrEqual(1);
        }
        expect(l.scale as number).toBeGreaterThan(1);
      }
    }
    expect(quant.slice(1).some((e) => (e.layers as { flip_rate: number }[]).some((l) => l.flip_rate > 0))).toBe(true);
  });

  it('calibrates the static clips at the start and every --calibrate-every steps, in the log', () => {
    const cal = events('qat/log.jsonl').filter((e) => e.event === 'calibration');
    expect(cal.map((e) => [e.step, e.method, e.batches])).toEqual([[0, 'ema', 4], [5, 'ema', 1], [10, 'ema', 1], [15, 'ema', 1]]);
    for (const e of cal) {
      const layers = e.layers as { name: string; clip: number }[];
      expect(layers.map((l) => l.name)).toEqual([0, 1].flatMap((b) => ['self_attn.qkv_proj', 'self_attn.o_proj', 'mlp.up_proj', 'mlp.down_proj'].map((p) => `model.layers.${b}.${p}`)));
      for (const l of layers) expect(l.clip).toBeGreaterThan(0);
    }
  });

  it('records the model-affecting QAT options in the checkpoint, and sample rebuilds that model', () => {
    const t = trainerJson('qat/ckpt-20');
    expect(t.config.model).toMatchObject({
      bitlinear: true, ste: 'lsq', activationScale: 'static', activationSte: 'clipped', keepFp: ['model.layers.0.self_attn.o_proj'], keepInt8: ['model.layers.1.mlp.up_proj'], steByLayer: {},
    });
    expect(t.config.run).toMatchObject({ quantWarmup: 8, quantNoise: 0.5, errorEvery: 5, keepFp: ['model.layers.0.self_attn.o_proj'] });
    const s = cli(['sample', '--ckpt', 'qat', '--prompt', 'ROMEO:', '--tokens', '20']);
    expect(s.status).toBe(0);
    expect(s.stdout.startsWith('ROMEO:')).toBe(true);
    expect(s.stdout.trimEnd().length).toBeGreaterThan(20);
  });

  it('lists the QAT flags in --help', () => {
    const r = cli(['train', '--help']);
    expect(r.status).toBe(0);
    for (const flag of ['--ste identity|clipped|soft|lsq', '--ste-by-layer LAYER=STE,...', '--quant-warmup N', '--quant-warmup-weights N', '--quant-warmup-activations N',
      '--quant-schedule linear|exponential|sigmoid', '--quant-layerwise', '--quant-noise X', '--activation-scale token|static', '--calibrate-every N',
      '--error-every N', '--keep-fp NAME,...', '--keep-int8 NAME,...', '--auto-mixed-precision N', '--auto-mixed-precision-threshold X', '--qat-reg X', '--clamp-latent X']) {
      expect(r.stdout).toContain(`  ${flag}`);
    }
    expect(r.stdout).toMatch(/--error-every N\s+error analysis .* \(default 100\)/);
  });

  it('keeps the K most sensitive projections in FP with --auto-mixed-precision, and records them for resume and sample', () => {
    const r = cli(['train', ...TINY, '--iters', '5', '--out', 'amp', '--auto-mixed-precision', '2', '--log-file', 'amp.jsonl']);
    expect(r.status).toBe(0);
    const mp = events('amp.jsonl').find((e) => e.event === 'mixed_precision')!;
    const sens = mp.sensitivity as { rows: { name: string }[] };
    expect(sens.rows).toHaveLength(12);
    expect(mp.projections).toEqual(sens.rows.slice(0, 2).map((x) => x.name));
    expect(r.stdout).toContain(`mixed precision: keeping ${(mp.projections as string[]).join(', ')} in fp`);
    expect(trainerJson('amp/ckpt-5').config.model.keepFp).toEqual(mp.projections);
    const resumed = cli(['train', '--resume', 'amp', '--iters', '8', '--log-file', 'amp2.jsonl']);
    expect(resumed.status).toBe(0);
    expect(events('amp2.jsonl').some((e) => e.event === 'mixed_precision')).toBe(false);
  });
});

describe('QAT warnings', () => {
  it('warns when a ramp outlasts the run (the model is never fully quantised), and still trains', () => {
    const r = cli(['train', ...TINY, '--iters', '4', '--quant-warmup', '50', '--out', 'long-ramp']);
    expect(r.status).toBe(0);
    expect(r.stderr).toBe('warning: --quant-warmup 50 is longer than --iters 4: the model is never fully quantised in this run (its evaluations run at λ < 1)\n');
  });
});

describe('bitnet-train convert', () => {
  it('starts from the FP checkpoint exactly (λ = 0: zero distillation loss against the original) and ends ternary', () => {
    const r = cli(['convert', '--from', 'fp', '--iters', '12', '--eval-iters', '2', '--log-every', '1', '--batch', '4', '--threads', '1', '--out', 'conv', '--teacher-from-source', '--alpha', '0', '--error-every', '12']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('qat: initial weights: fp');
    expect(r.stdout).toContain('qat: distillation: teacher fp, alpha 0, temperature 2');
    expect(r.stdout).toContain('qat: progressive quantisation (linear): weights over 6 steps, activations over 6 steps'); // default: half of --iters
    const steps = events('conv/log.jsonl').filter((e) => e.event === 'step').map((e) => e.loss as number);
    expect(steps[0]).toBe(0); // the student at λ = 0 is the teacher, bit for bit
    expect(steps[11]!).toBeGreaterThan(0);
    const t = trainerJson('conv/ckpt-12');
    expect(t.config.model).toMatchObject({ bitlinear: true, bitlinearNorm: false, layers: 2, dim: 16, heads: 2, contextLength: 16 });
    expect(t.config.run).toMatchObject({ from: 'fp', teacher: 'fp', quantWarmup: 6 });
    const quant = events('conv/log.jsonl').find((e) => e.event === 'quant_error')!;
    expect((quant.layers as { precision: string }[]).every((l) => l.precision === 'ternary')).toBe(true);
  });

  it('converts without a teacher with a direct --quant-warmup 0, from a positive loss at step 1', () => {
    const r = cli(['convert', '--from', 'fp/ckpt-30', '--iters', '4', '--eval-iters', '2', '--log-every', '1', '--threads', '1', '--quant-warmup', '0', '--out', 'direct']);
    expect(r.status).toBe(0);
    expect(r.stdout).not.toContain('progressive quantisation');
    expect(events('direct/log.jsonl').filter((e) => e.event === 'step').map((e) => e.step)).toEqual([1, 2, 3, 4]);
  });
});

describe('bitnet-train distill', () => {
  it('trains a ternary student on an FP teacher and records the teacher for resume', () => {
    const r = cli(['distill', '--teacher', 'fp', ...TINY, '--iters', '6', '--out', 'kd', '--alpha', '0.3', '--temperature', '1.5']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('qat: distillation: teacher fp, alpha 0.3, temperature 1.5');
    expect(trainerJson('kd/ckpt-6').config.run).toMatchObject({ teacher: 'fp', distillAlpha: 0.3, distillTemperature: 1.5 });
    const resumed = cli(['train', '--resume', 'kd', '--iters', '8']);
    expect(resumed.status).toBe(0);
    expect(resumed.stdout).toContain('qat: distillation: teacher fp, alpha 0.3, temperature 1.5');
  });

  it('refuses a teacher with another vocabulary before writing anything', () => {
    expect(cli(['train', ...TINY, '--fp', '--tokenizer', 'byte', '--iters', '2', '--out', 'bytes']).status).toBe(0);
    const r = cli(['distill', '--teacher', 'bytes', ...TINY, '--iters', '4', '--out', 'never']);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/--teacher bytes\/ckpt-2: distillation: the teacher's vocabulary has 256 tokens but the student's has \d+; the teacher must use the student's tokenizer/);
    expect(existsSync(join(dir, 'never'))).toBe(false);
  });
});

describe('bitnet-train calibrate', () => {
  it('writes a static-scale copy of a checkpoint (percentile clips below absmax ones) that samples and resumes, leaving the original untouched', async () => {
    const before = snapshot(join(dir, 'conv/ckpt-12'));
    const a = cli(['calibrate', '--ckpt', 'conv', '--batches', '3', '--threads', '1']);
    expect(a.stderr).toBe('');
    expect(a.status).toBe(0);
    expect(a.stdout).toMatch(/^calibrated conv\/ckpt-12 \(step 12\): absmax over 3 batches\n {2}model\.layers\.0\.self_attn\.qkv_proj +clip \d+\.\d{4}\n/);
    expect(a.stdout).toContain('checkpoint: conv/ckpt-12-calibrated (activation scales: static)');
    const p = cli(['calibrate', '--ckpt', 'conv/ckpt-12', '--method', 'percentile', '--percentile', '99', '--batches', '3', '--out', 'cal-p99', '--threads', '1']);
    expect(p.status).toBe(0);
    expect(snapshot(join(dir, 'conv/ckpt-12'))).toEqual(before);

    const fs = await getDefaultFileSystem();
    const clips = async (d: string) => [...(await loadCheckpoint(fs, join(dir, d))).model].filter(([n]) => n.endsWith('.input_clip')).map(([n, t]) => [n, (t.data as Float32Array)[0]!] as const);
    const absmax = await clips('conv/ckpt-12-calibrated');
    const p99 = await clips('cal-p99');
    expect(absmax).toHaveLength(8);
    absmax.forEach(([n, c], i) => {
      expect(p99[i]![0]).toBe(n);
      expect(c).toBeGreaterThan(0);
      expect(p99[i]![1]).toBeLessThan(c);
    });
    expect(trainerJson('cal-p99').config.model).toMatchObject({ activationScale: 'static', activationSte: 'clipped' });
    expect(trainerJson('cal-p99').config.run).toMatchObject({ activationScale: 'static', activationSte: 'clipped' });
    expect(cli(['sample', '--ckpt', 'cal-p99', '--tokens', '10']).status).toBe(0);
    const r = cli(['train', '--resume', 'conv/ckpt-12-calibrated', '--iters', '14', '--threads', '1', '--log-file', 'cal-resume.jsonl']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(events('cal-resume.jsonl').filter((e) => e.event === 'step').pop()!.step).toBe(14);
  });
});

describe('bitnet-train analyze', () => {
  it('prints a ranked sensitivity table and the error analysis, and writes them as JSON', () => {
    const r = cli(['analyze', '--ckpt', 'qat', '--batches', '2', '--json', 'reports/qat.json', '--threads', '1']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^analysis of qat\/ckpt-20 \(step 20\)\n/);
    expect(r.stdout).toMatch(/baseline val loss: all ternary \d\.\d{4}, all FP \d\.\d{4} \(2 batches\)/);
    const report = JSON.parse(readFileSync(join(dir, 'reports/qat.json'), 'utf8')) as {
      event: string; rows: { name: string; fp_delta: number; ternary_delta: number }[]; baseline: { ternary: number; fp: number }; quant_error: { layers: { name: string }[] };
    };
    expect(report.event).toBe('sensitivity');
    expect(report.rows.map((x) => x.name).sort()).toEqual([...ALL].sort());
    for (let i = 1; i < report.rows.length; i++) expect(report.rows[i]!.fp_delta).toBeGreaterThanOrEqual(report.rows[i - 1]!.fp_delta);
    report.rows.forEach((row, i) => expect(r.stdout).toContain(`${String(i + 1).padStart(4)}  ${row.name}`));
    expect(report.quant_error.layers.map((l) => l.name)).toEqual(ALL);
    expect(r.stdout).toMatch(/model\.layers\.0\.self_attn\.o_proj +fp +-?\d+\.\d dB/);
  });

  it('analyses a full-precision checkpoint as its BitLinear conversion', () => {
    const r = cli(['analyze', '--ckpt', 'fp', '--batches', '1', '--threads', '1']);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('a full-precision model, analysed as its BitLinear conversion');
  });
});

describe('the BitLinear norm in a model config', () => {
  it('is never recorded for a full-precision model, and never compared between two of them', () => {
    const fp = modelConfigFromRun({ ...DEFAULT_RUN_CONFIG, fp: true, bitlinearNorm: true }, 65);
    expect(fp.bitlinearNorm).toBe(false);
    expect(modelConfigFromRun({ ...DEFAULT_RUN_CONFIG, bitlinearNorm: true }, 65).bitlinearNorm).toBe(true);
    // an FP checkpoint written when the flag was recorded still resumes as an FP run
    expect(modelShapeDifferences({ ...fp, bitlinearNorm: true }, fp)).toEqual([]);
    const ternary = modelConfigFromRun({ ...DEFAULT_RUN_CONFIG, bitlinearNorm: true }, 65);
    expect(modelShapeDifferences(ternary, { ...ternary, bitlinearNorm: false })).toEqual([expect.stringMatching(/bitlinearNorm true in the checkpoint, false requested \(--bitlinear-norm\)/)]);
  });
});

describe('bad QAT input', () => {
  const cases: [string, string[], number, RegExp][] = [
    ['an unknown --keep-fp projection', ['train', ...TINY, '--keep-fp', 'layers.0.mlp.upproj'], 1,
      /--keep-fp: unknown projection "layers\.0\.mlp\.upproj" \(did you mean "model\.layers\.0\.mlp\.up_proj"\?\); valid names: model\.layers\.0\.self_attn\.q_proj, .*model\.layers\.1\.mlp\.down_proj$/m],
    ['an unknown --ste-by-layer layer', ['train', ...TINY, '--ste-by-layer', 'model.layers.0.self_attn.q_proj=lsq'], 1, /--ste-by-layer: unknown layer "model\.layers\.0\.self_attn\.q_proj" .*valid names: model\.layers\.0\.self_attn\.qkv_proj/],
    ['a malformed --ste-by-layer entry', ['train', ...TINY, '--ste-by-layer', 'model.layers.0.mlp.up_proj:lsq'], 1, /--ste-by-layer: 'model\.layers\.0\.mlp\.up_proj:lsq' is not layer=variant/],
    ['a negative --quant-warmup', ['train', '--quant-warmup', '-5'], 2, /--quant-warmup: expected a non-negative integer, got '-5'/],
    ['a negative --quant-noise-steps', ['train', '--quant-noise-steps', '-1'], 2, /--quant-noise-steps: expected a non-negative integer, got '-1'/],
    ['a negative ramp in a config file', ['train', '--config', 'neg.json'], 2, /neg\.json: quantWarmupWeights: expected a non-negative integer, got -10/],
    ['a noise fraction above 1', ['train', '--quant-noise', '1.5'], 2, /--quant-noise: expected a number in \[0, 1\], got '1\.5'/],
    ['QAT flags on a full-precision model', ['train', ...TINY, '--fp', '--quant-warmup', '10'], 1, /--quant-warmup needs BitLinear layers, but --fp trains a full-precision model/],
    ['--quant-layerwise without a ramp', ['train', ...TINY, '--quant-layerwise'], 1, /--quant-layerwise spreads the λ ramp over the blocks; add --quant-warmup N/],
    ['--calibrate-every without static scales', ['train', ...TINY, '--calibrate-every', '5'], 1, /--calibrate-every 5 refreshes static activation clips; add --activation-scale static/],
    ['both --auto-mixed-precision forms', ['train', ...TINY, '--auto-mixed-precision', '2', '--auto-mixed-precision-threshold', '0.01'], 1, /both pick the projections to keep; give one of them/],
    ['a latent clamp below one grid step', ['train', ...TINY, '--clamp-latent', '0.5'], 1, /--clamp-latent must be >= 1/],
    ['distill without a teacher', ['distill', ...TINY], 2, /distill: --teacher DIR is required/],
    ['convert without --from', ['convert', '--iters', '5'], 2, /convert: --from DIR is required/],
    ['convert with --fp', ['convert', '--from', 'fp', '--fp'], 2, /convert: it makes a BitLinear \(ternary\) model; drop --fp/],
    ['convert to another shape', ['convert', '--from', 'fp', '--dim', '32'], 1, /--from fp\/ckpt-30 is a different model shape: dim 16 in the checkpoint, 32 requested \(--dim\)/],
    ['resuming with another QAT model option', ['train', '--resume', 'qat', '--ste', 'identity', '--iters', '30'], 1,
      /checkpoint qat\/ckpt-20 is from a different model: ste "lsq" in the checkpoint, "identity" requested \(--ste\)/],
    ['a missing teacher', ['distill', '--teacher', 'nowhere', ...TINY], 1, /--teacher nowhere: checkpoint nowhere not found/],
    ['calibrating a full-precision checkpoint', ['calibrate', '--ckpt', 'fp'], 1, /calibrate: the checkpoint is a full-precision model \(--fp\): it has no activation quantisers; convert it first/],
    ['calibrate without --ckpt', ['calibrate'], 2, /calibrate: --ckpt DIR is required/],
    ['analyze without --ckpt', ['analyze', '--batches', '2'], 2, /analyze: --ckpt DIR is required/],
    ['an unknown calibration method', ['calibrate', '--ckpt', 'qat', '--method', 'mse'], 2, /--method: expected one of absmax, percentile, ema, got 'mse'/],
  ];
  beforeAll(() => writeFileSync(join(dir, 'neg.json'), JSON.stringify({ quantWarmupWeights: -10 })));
  it.each(cases)('%s: a clear message and a non-zero exit', (_name, args, status, message) => {
    const r = cli(args);
    expect(r.stderr).toMatch(message);
    expect(r.stderr.trim().split('\n').length).toBe(1);
    expect(r.status).toBe(status);
  });

  it('prints the options of every QAT command with --help', () => {
    const want: Record<string, string[]> = {
      convert: ['--from DIR', '--teacher-from-source', '--quant-warmup N', '--alpha X', '--temperature X'],
      distill: ['--teacher DIR', '--alpha X', '--temperature X'],
      calibrate: ['--ckpt DIR', '--method absmax|percentile|ema', '--batches N', '--out DIR'],
      analyze: ['--ckpt DIR', '--batches N', '--json PATH'],
    };
    for (const [command, flags] of Object.entries(want)) {
      const r = cli([command, '--help']);
      expect(r.status).toBe(0);
      expect(r.stdout).toMatch(new RegExp(`^Usage: bitnet-train ${command} `));
      for (const f of flags) expect(r.stdout).toContain(`  ${f}`);
    }
  });
});

describe('resume with QAT options', () => {
  it('is bit-identical: 20 steps = 10 steps + crash + resume + 10 steps (noise, LSQ, soft STE, static scales, regulariser, clamp, distillation)', async () => {
    const fs = new MemoryFileSystem();
    await fs.writeFile('small.txt', CORPUS);
    const base = { data: 'small.txt', layers: 2, dim: 16, heads: 2, context: 16, batch: 4, evalIters: 2, logEvery: 1, threads: 1, sampleTokens: 0 };
    await runTraining({ ...base, fp: true, iters: 4, out: 'teacher' }, {}, { fs });
    const qat = {
      ...base, iters: 20, evalEvery: 5, saveEvery: 10, teacher: 'teacher', distillAlpha: 0.5, errorEvery: 5,
      ste: 'lsq' as const, steByLayer: ['model.layers.1.mlp.down_proj=soft'], softTemperatureEnd: 0.2, quantWarmup: 12, quantSchedule: 'exponential' as const, quantLayerwise: true,
      quantNoise: 0.3, quantNoiseSteps: 16, activationScale: 'static' as const, calibrateEvery: 4, keepFp: ['model.layers.0.mlp.up_proj'], keepInt8: ['model.layers.1.self_attn.o_proj'],
      qatReg: 0.01, qatRegStart: 5, qatRegRamp: 5, clampLatent: 3,
    };
    await runTraining({ ...qat, out: 'straight' }, {}, { fs });
    const crash = runTraining({ ...qat, out: 'run' }, { onCheckpoint: (i) => { if (i.step === 10) throw new Error('simulated crash'); } }, { fs });
    await expect(crash).rejects.toThrow('simulated crash');
    await runTraining({ resume: 'run' }, {}, { fs });

    const log = async (d: string) => (await fs.readText(`${d}/log.jsonl`)).trim().split('\n').map((l) => JSON.parse(l) as Event);
    const pick = (es: Event[], kind: string) => es.filter((e) => e.event === kind).map((e) => JSON.stringify({ ...e, tokens_per_s: 0 }));
    const [a, b] = [await log('straight'), await log('run')];
    expect(pick(a, 'step')).toHaveLength(20);
    expect(pick(b, 'step')).toEqual(pick(a, 'step'));
    expect(pick(b, 'eval')).toEqual(pick(a, 'eval'));
    expect(pick(b, 'calibration')).toEqual(pick(a, 'calibration'));
    // error reports at 5, 10 (before the crash), 15, 20: the flip rate after the resume included
    expect(pick(b, 'quant_error')).toHaveLength(4);
    expect(pick(b, 'quant_error')).toEqual(pick(a, 'quant_error'));
    expect(pick(b, 'quant_error')[2]).toMatch(/"flip_rate":0|"flip_rate":\d/);
    const x = await loadCheckpoint(fs, 'straight/ckpt-20');
    const y = await loadCheckpoint(fs, 'run/ckpt-20');
    expect([...y.model.keys()]).toEqual([...x.model.keys()]);
    expect([...x.model.keys()].filter((n) => n.endsWith('.weight_step') || n.endsWith('.input_clip')).length).toBeGreaterThan(0);
    for (const [name, t] of x.model) expect(Buffer.from((y.model.get(name)!.data as Float32Array).buffer).equals(Buffer.from((t.data as Float32Array).buffer)), name).toBe(true);
    expect((y.trainer.extra as { extension: { noiseSeed: number } }).extension.noiseSeed).toBe((x.trainer.extra as { extension: { noiseSeed: number } }).extension.noiseSeed);
  }, 60_000);
});
