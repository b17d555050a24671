// `bitnet-train` as a user runs it: spawned with node, tiny settings, in a temporary directory.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProgressReporter, formatDuration } from '../src/cli/progress.js';

const ROOT = new URL('..', import.meta.url).pathname;
const MAIN = join(ROOT, 'dist/cli/main.js');
const CORPUS = readFileSync(join(ROOT, 'examples/data/tinyshakespeare.txt'), 'utf8').slice(0, 20000);
const TINY = ['--data', 'small.txt', '--layers', '1', '--dim', '16', '--heads', '2', '--context', '16', '--batch', '4', '--eval-iters', '2', '--log-every', '5'];

let dir = '';

function cli(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [MAIN, ...args], { cwd: dir, encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** sha256 of every file under `d`, by relative path: proves a command left a checkpoint untouched. */
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

let firstRun: ReturnType<typeof cli>;

beforeAll(() => {
  if (!existsSync(MAIN)) execFileSync(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', join(ROOT, 'tsconfig.json')]);
  dir = mkdtempSync(join(tmpdir(), 'bitnet-cli-'));
  writeFileSync(join(dir, 'small.txt'), CORPUS);
  writeFileSync(join(dir, 'empty.txt'), '');
  writeFileSync(join(dir, 'short.txt'), 'To be, or not to be: that is the question.\n');
  firstRun = cli(['train', ...TINY, '--iters', '20', '--eval-every', '10', '--save-every', '10', '--out', 'run', '--log-file', 'logs/train.jsonl']);
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('bitnet-train train', () => {
  it('trains, prints eval lines, a sample and the checkpoint path, and exits 0', () => {
    expect(firstRun.stderr).not.toMatch(/error/);
    expect(firstRun.status).toBe(0);
    expect(firstRun.stdout).toMatch(/eval step 10: train loss \d\.\d{4} \| val loss \d\.\d{4}/);
    expect(firstRun.stdout).toMatch(/step 20\/20 \| loss \d\.\d{4} \| lr [\d.e+-]+ \| [\d.k]+ tok\/s/); // not a TTY: plain lines
    expect(firstRun.stdout).toMatch(/--- sample ---\n[\s\S]{100,}\n--------------/);
    expect(firstRun.stdout).toMatch(/checkpoint: run\/ckpt-20 \(best val loss \d\.\d{4} in run\/best\)/);
    expect(readdirSync(join(dir, 'run')).sort()).toEqual(['best', 'ckpt-10', 'ckpt-20']);
  });

  it('writes the --log-file JSON lines with exactly the specified events and fields, done last', () => {
    const events = readFileSync(join(dir, 'logs/train.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const keys = (e: string) => events.filter((x) => x.event === e).map((x) => Object.keys(x));
    expect(keys('step')).toEqual(Array(4).fill(['event', 'step', 'loss', 'lr', 'tokens_per_s']));
    expect(events.filter((x) => x.event === 'step').map((x) => x.step)).toEqual([5, 10, 15, 20]);
    expect(keys('eval')).toEqual(Array(2).fill(['event', 'step', 'train_loss', 'val_loss']));
    expect(events.filter((x) => x.event === 'checkpoint').map((x) => [x.step, x.path])).toEqual([[10, 'run/ckpt-10'], [20, 'run/ckpt-20']]);
    const done = events[events.length - 1]!;
    expect(Object.keys(done)).toEqual(['event', 'step', 'val_loss', 'train_seconds', 'tokens_per_s']);
    expect(done.event).toBe('done');
    expect(done.step).toBe(20);
    expect(done.val_loss).toBe(events.filter((x) => x.event === 'eval').pop()!.val_loss);
    for (const e of events) for (const v of Object.values(e)) if (typeof v === 'number') expect(Number.isFinite(v)).toBe(true);
    expect(events[0]!.event).toBe('config');
    expect(Object.keys(events[0]!)).toEqual(['event', 'step', 'run', 'model', 'parameters']);
    expect(keys('sample')).toEqual([['event', 'step', 'prompt', 'text']]);
    expect(new Set(events.map((e) => e.event))).toEqual(new Set(['config', 'step', 'eval', 'checkpoint', 'sample', 'done']));
  });

  it('resumes a run directory from its latest checkpoint and continues to the new --iters', () => {
    cpSync(join(dir, 'run'), join(dir, 'resumed'), { recursive: true });
    const r = cli(['train', '--resume', 'resumed', '--iters', '30', '--log-file', 'resumed.jsonl']);
    expect(r.stderr).not.toMatch(/error/);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/resumed from resumed\/ckpt-20 at step 20/);
    const steps = readFileSync(join(dir, 'resumed.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((e) => e.event === 'step').map((e) => e.step);
    expect(steps).toEqual([25, 30]);
    expect(readdirSync(join(dir, 'resumed'))).toContain('ckpt-30');
  });

  it('trains the same loss curve at --threads 1 and --threads 2, and says how many it used', () => {
    const losses = (threads: string) => {
      const r = cli(['train', ...TINY, '--dim', '64', '--heads', '4', '--batch', '8', '--iters', '10', '--eval-every', '0', '--log-every', '1', '--threads', threads, '--out', `threads-${threads}`, '--log-file', `threads-${threads}.jsonl`]);
      expect(r.status).toBe(0);
      expect(r.stdout).toContain(`backend wasm, ${threads} thread${threads === '1' ? '' : 's'}`);
      return readFileSync(join(dir, `threads-${threads}.jsonl`), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((e) => e.event === 'step').map((e) => e.loss);
    };
    const one = losses('1');
    expect(one).toHaveLength(10);
    expect(losses('2')).toEqual(one);
  });

  it('prints the flags of the issue with --help', () => {
    const r = cli(['train', '--help']);
    expect(r.status).toBe(0);
    for (const flag of ['--config', '--data', '--layers', '--heads', '--dim', '--context', '--batch', '--iters', '--lr', '--warmup', '--min-lr', '--weight-decay', '--beta2', '--clip', '--norm layer|rms', '--mlp gelu|swiglu|relu2', '--pos learned|rope', '--fp', '--seed', '--eval-every', '--eval-iters', '--log-every', '--save-every', '--keep', '--out', '--log-file', '--resume', '--backend wasm|js', '--schedule cosine|linear|constant|two-stage', '--tokenizer char|byte', '--grad-accum']) {
      expect(r.stdout).toContain(`  ${flag}`);
    }
  });
});

describe('Ctrl-C during training', () => {
  it('finishes the step, saves a checkpoint, exits 130, and the run resumes from it', async () => {
    const child = spawn(process.execPath, [MAIN, 'train', ...TINY, '--iters', '100000', '--warmup', '2', '--log-every', '1', '--out', 'int', '--log-file', 'int.jsonl', '--threads', '1'], { cwd: dir });
    let stdout = '';
    let stderr = '';
    let sent = false;
    child.stderr.on('data', (d) => (stderr += d));
    const exit = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    child.stdout.on('data', (d) => {
      stdout += d;
      if (!sent && /step +3\/100000/.test(stdout)) {
        sent = true;
        child.kill('SIGINT');
      }
    });
    const code = await exit;
    expect(stderr).toMatch(/interrupt: finishing the current step and saving a checkpoint \(Ctrl-C again to quit at once\)/);
    expect(code).toBe(130);
    const m = /interrupted at step (\d+) of 100000 \| checkpoint: (int\/ckpt-\d+)\ncontinue with: bitnet-train train --resume int\/ckpt-\d+\n$/.exec(stdout);
    expect(m, stdout.slice(-300)).not.toBeNull();
    const step = Number(m![1]);
    expect(m![2]).toBe(`int/ckpt-${step}`);
    expect(stdout).not.toMatch(/--- sample ---/);
    const events = readFileSync(join(dir, 'int.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(events.at(-1)).toMatchObject({ event: 'done', step, stop_reason: 'interrupted' });
    expect(events.filter((e) => e.event === 'checkpoint').map((e) => e.path)).toEqual([`int/ckpt-${step}`]);
    // (--from next to --resume is named and ignored, not silently dropped)
    const r = cli(['train', '--resume', `int/ckpt-${step}`, '--from', 'run/ckpt-10', '--iters', String(step + 2), '--threads', '1']);
    expect(r.stderr).toBe("warning: --from run/ckpt-10 is ignored: --resume continues its checkpoint's own weights\n");
    expect(r.status).toBe(0);
    expect(r.stdout).toContain(`resumed from int/ckpt-${step} at step ${step}`);
    expect(r.stdout).toMatch(new RegExp(`done: step ${step + 2} `));
  });
});

describe('bitnet-train sample', () => {
  it('continues a prompt from a run directory, the same text for the same seed', () => {
    const a = cli(['sample', '--ckpt', 'run', '--prompt', 'ROMEO:', '--tokens', '40', '--seed', '3', '--top-k', '10']);
    expect(a.stderr).toMatch(/sampled from run\/ckpt-20, step 20/);
    expect(a.status).toBe(0);
    expect(a.stdout.startsWith('ROMEO:')).toBe(true);
    expect(a.stdout.trimEnd().length).toBeGreaterThan(30);
    expect(cli(['sample', '--ckpt', 'run/best', '--prompt', 'ROMEO:', '--tokens', '40', '--seed', '3', '--top-k', '10']).stdout).toBe(a.stdout);
  });
});

describe('bad input', () => {
  beforeAll(() => {
    writeFileSync(join(dir, 'bad.json'), JSON.stringify({ iters: 'abc' }));
    writeFileSync(join(dir, 'typo.json'), JSON.stringify({ evalEvry: 5 }));
    writeFileSync(join(dir, 'broken.json'), '{ "iters": ');
  });
  const cases: [string, string[], number, RegExp][] = [
    ['a non-numeric flag', ['train', '--iters', 'abc'], 2, /--iters: expected a positive integer, got 'abc'/],
    ['a negative learning rate', ['train', '--lr', '-1'], 2, /--lr: expected a positive number, got '-1'/],
    ['a fractional count', ['train', '--batch', '2.5'], 2, /--batch: expected a positive integer, got '2.5'/],
    ['an unknown choice', ['train', '--norm', 'batch'], 2, /--norm: expected one of layer, rms, got 'batch'/],
    ['a flag without its value', ['train', '--iters'], 2, /--iters: expected a positive integer, got nothing/],
    ['an unknown flag', ['train', '--iter', '5'], 2, /unknown flag --iter \(did you mean --iters\?\)/],
    ['an unknown command', ['trian'], 2, /unknown command 'trian' \(did you mean 'train'\?\)/],
    ['sample without --ckpt', ['sample'], 2, /--ckpt DIR is required/],
    ['a config value of the wrong type', ['train', '--config', 'bad.json'], 2, /bad.json: iters: expected a positive integer, got "abc"/],
    ['a misspelt config key', ['train', '--config', 'typo.json'], 2, /unknown option "evalEvry" \(did you mean "evalEvery"\?\)/],
    ['a config file that is not JSON', ['train', '--config', 'broken.json'], 2, /broken.json: not valid JSON/],
    ['a missing data file', ['train', '--data', 'missing.txt'], 1, /data file missing.txt: no such file or directory/],
    ['an empty data file', ['train', '--data', 'empty.txt'], 1, /empty.txt: the corpus is empty/],
    ['a corpus shorter than one context window', ['train', '--data', 'short.txt', '--context', '64'], 1, /short.txt: the train split has \d+ tokens .* but context 64 needs at least 65/],
    ['heads that do not divide dim', ['train', ...TINY, '--heads', '3'], 1, /dim 16 must be divisible by heads 3/],
    ['zero threads', ['train', '--threads', '0'], 2, /--threads: expected a positive integer, got '0'/],
    ['a fractional thread count', ['train', '--threads', '1.5'], 2, /--threads: expected a positive integer, got '1.5'/],
    ['more than 256 threads', ['train', ...TINY, '--threads', '300'], 1, /--threads: threads must be an integer from 1 to 256, got 300/],
  ];
  it.each(cases)('%s: a clear message and a non-zero exit', (_name, args, status, message) => {
    const r = cli(args);
    expect(r.stderr).toMatch(message);
    expect(r.stderr.trim().split('\n').length).toBe(1);
    expect(r.status).toBe(status);
  });

  it('refuses a checkpoint of another model shape, and leaves it untouched', () => {
    const before = snapshot(join(dir, 'run'));
    const r = cli(['train', '--resume', 'run', '--dim', '32']);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/checkpoint run\/ckpt-20 is from a different model: dim 16 in the checkpoint, 32 requested \(--dim\)/);
    expect(snapshot(join(dir, 'run'))).toEqual(before);
  });

  it('refuses a truncated and a non-safetensors weights file, and leaves them untouched', () => {
    cpSync(join(dir, 'run'), join(dir, 'trunc'), { recursive: true });
    const file = join(dir, 'trunc/ckpt-20/model.safetensors');
    truncateSync(file, 1000);
    const before = snapshot(join(dir, 'trunc'));
    const t = cli(['train', '--resume', 'trunc', '--iters', '40']);
    expect(t.status).toBe(1);
    expect(t.stderr).toMatch(/model.safetensors is 1000 bytes but trainer.json recorded \d+ \(file truncated or replaced\)/);
    expect(snapshot(join(dir, 'trunc'))).toEqual(before);

    cpSync(join(dir, 'run'), join(dir, 'garbage'), { recursive: true });
    const g = join(dir, 'garbage/ckpt-20/model.safetensors');
    writeFileSync(g, Buffer.alloc(statSync(g).size, 0xff)); // same size, so only the format check can catch it
    const s = cli(['sample', '--ckpt', 'garbage']);
    expect(s.status).toBe(1);
    expect(s.stderr).toMatch(/garbage\/ckpt-20\/model.safetensors.*not safetensors/);
  });
});

describe('progress output', () => {
  const step = (n: number) => ({ step: n, loss: 2.5, lr: 1e-3, weightDecay: 0.1, skipped: false, nanStreak: 0, tokens: 768, seconds: 0.1 });

  it('redraws one line in place on a terminal and prints eval lines above it', () => {
    const out: string[] = [];
    let t = 0;
    const r = new ProgressReporter({ write: (s) => out.push(s), isTTY: true, columns: 200 }, { write: () => 0 }, 100, () => (t += 1000));
    r.onStep(step(1));
    r.onLog({ step: 1, loss: 2.5, lr: 1e-3, tokensPerSecond: 7680, etaSeconds: 9.9 });
    r.onStep(step(2));
    r.onEval({ step: 2, trainLoss: 2.4, valLoss: 2.45, perplexity: Math.exp(2.45), best: true });
    expect(out[0]).toBe('\r\x1b[Kstep 1/100 [....................] 1% | loss 2.5000 | 7.7k tok/s | ETA 10s');
    expect(out[1]).toMatch(/^\r\x1b\[Kstep 2\/100 \[\.+\] 2% \| loss 2\.5000 \| 7\.7k tok\/s \| ETA 10s$/);
    expect(out.slice(2)).toEqual(['\r\x1b[K', 'eval step 2: train loss 2.4000 | val loss 2.4500 | val ppl 11.59 | best so far\n']);
  });

  it('prints plain lines every log interval when not a terminal, and warns about skipped steps on stderr', () => {
    const out: string[] = [];
    const err: string[] = [];
    const r = new ProgressReporter({ write: (s) => out.push(s) }, { write: (s) => err.push(s) }, 100);
    r.onStep(step(10));
    r.onStep({ ...step(11), loss: NaN, skipped: true, nanStreak: 1 });
    r.onLog({ step: 11, loss: NaN, lr: 1e-3, tokensPerSecond: 7680, etaSeconds: 8.9 });
    expect(out).toEqual(['step  11/100 | loss NaN | lr 1.00e-3 | 7.7k tok/s | ETA 9s\n']);
    expect(err).toEqual(['warning: step 11: loss is NaN; update skipped (1 in a row)\n']);
    expect([formatDuration(59.4), formatDuration(95), formatDuration(4000)]).toEqual(['59s', '1m35s', '1h06m']);
  });
});

describe('bitnet-train --help', () => {
  it('lists every command, the QAT ones included', () => {
    const r = cli(['--help']);
    expect(r.status).toBe(0);
    for (const command of ['train [options]', 'sample --ckpt DIR', 'convert --from DIR', 'distill --teacher DIR', 'calibrate --ckpt DIR', 'analyze --ckpt DIR']) {
      expect(r.stdout).toContain(`  bitnet-train ${command}`);
    }
    expect(cli(['analyse']).stderr).toMatch(/unknown command 'analyse' \(did you mean 'analyze'\?\); commands: train, sample, convert, distill, calibrate, analyze/);
  });
});
