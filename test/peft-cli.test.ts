// `bitnet-train finetune`, `merge` and `sample --adapter` as a user runs them (in process, on an
// in-memory file system): a LoRA run lowers the val loss, writes PEFT files, resumes bit for bit,
// and bad input gets one clear error before anything is written.
import { describe, expect, it } from 'vitest';
import { runCli } from '../src/cli/commands.js';
import { MemoryFileSystem } from '../src/runtime/fs-memory.js';
import { DEFAULT_FINETUNE_OPTIONS, runFinetune } from '../src/peft/finetune.js';
import { decodeSafetensors } from '../src/io/safetensors.js';

function io(fs: MemoryFileSystem) {
  let out = '';
  let err = '';
  return {
    io: { stdout: { write: (s: string) => void (out += s) }, stderr: { write: (s: string) => void (err += s) }, fs },
    out: () => out,
    err: () => err,
  };
}

const corpus = 'the quick brown fox jumps over the lazy dog. '.repeat(60);
const fineText = 'a lazy dog sleeps; the fox jumps. (twice) '.repeat(60);

async function baseRun(): Promise<MemoryFileSystem> {
  const fs = new MemoryFileSystem();
  await fs.writeFile('corpus.txt', corpus);
  await fs.writeFile('fine.txt', fineText);
  await fs.writeFile('run.json', JSON.stringify({ sampleTokens: 0 }));
  const r = io(fs);
  const status = await runCli(['train', '--data', 'corpus.txt', '--layers', '1', '--dim', '32', '--heads', '2', '--context', '16', '--batch', '4',
    '--iters', '6', '--eval-iters', '2', '--out', 'base', '--threads', '1', '--config', 'run.json', '--error-every', '0'], r.io);
  expect(status, r.err()).toBe(0);
  return fs;
}

const FT = ['--from', 'base', '--data', 'fine.txt', '--out', 'ft', '--iters', '12', '--batch', '4', '--eval-iters', '2', '--threads', '1', '--lora-r', '4', '--target-modules', 'all-linear', '--lr', '0.01'];

describe('bitnet-train finetune', () => {
  it('lists characters the base tokenizer cannot encode, then with --unknown-chars drop fine-tunes, prints the header and writes the adapter', async () => {
    const fs = await baseRun();
    const bad = io(fs);
    expect(await runCli(['finetune', ...FT], bad.io)).toBe(1);
    expect(bad.err()).toMatch(/fine\.txt: 3 characters the base model's tokenizer cannot encode: "\(" \(U\+0028\) ×60, "\)" \(U\+0029\) ×60, ";" \(U\+003B\) ×60; pass --unknown-chars drop/);
    expect(await fs.exists('ft')).toBe(false);
    const ok = io(fs);
    expect(await runCli(['finetune', ...FT, '--unknown-chars', 'drop', '--eval-every', '6'], ok.io), ok.err()).toBe(0);
    expect(ok.out()).toMatch(/trainable params: [\d,]+ \|\| all params: [\d,]+ \|\| trainable%: \d/);
    expect(ok.out()).toMatch(/memory: base [\d.]+ MB .*adapters \+ grads [\d.]+ MB \| optimizer state [\d.]+ MB \| activations [\d.]+ MB/);
    const evals = [...ok.out().matchAll(/val loss (\d\.\d+)/g)].map((m) => Number(m[1]));
    expect(evals.length).toBeGreaterThanOrEqual(2);
    expect(evals[evals.length - 1]!).toBeLessThan(evals[0]!);
    const cfg = JSON.parse(await fs.readText('ft/adapter/adapter_config.json'));
    expect(cfg.peft_type).toBe('LORA');
    expect(cfg.target_modules).toEqual(['down_proj', 'k_proj', 'o_proj', 'q_proj', 'up_proj', 'v_proj']);
    const keys = [...decodeSafetensors(await fs.readFile('ft/adapter/adapter_model.safetensors'), { source: 'x' }).tensors.keys()];
    expect(keys).toContain('base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight');

    const sample = io(fs);
    expect(await runCli(['sample', '--ckpt', 'base', '--adapter', 'ft/adapter', '--tokens', '10', '--prompt', 'the '], sample.io), sample.err()).toBe(0);
    expect(sample.out().length).toBeGreaterThan(10);

    const merge = io(fs);
    expect(await runCli(['merge', '--ckpt', 'base', '--adapter', 'ft/adapter', '--out', 'merged', '--data', 'fine.txt', '--unknown-chars', 'drop', '--eval-iters', '2'], merge.io), merge.err()).toBe(0);
    expect(merge.out()).toMatch(/model\.layers\.0\.mlp\.up_proj: r 4 \| ternary codes flipped \d+\.\d+%/);
    expect(merge.out()).toMatch(/val loss: adapted \d\.\d+ → merged \d\.\d+/);
    const over = io(fs);
    expect(await runCli(['merge', '--ckpt', 'base/ckpt-6', '--adapter', 'ft/adapter', '--out', 'base/ckpt-6'], over.io)).toBe(2);
    expect(over.err()).toMatch(/merging never overwrites the base/);
  });

  it('refuses a missing base, an unknown target module (listing the valid ones) and r larger than the layer, writing nothing', async () => {
    const fs = await baseRun();
    const cases: [string[], RegExp][] = [
      [['--from', 'nowhere'], /--from nowhere: /],
      [['--from', 'base', '--target-modules', 'qproj'], /unknown module "qproj" \(did you mean "q_proj"\?\); valid names: q_proj, k_proj, v_proj, o_proj, up_proj, down_proj/],
      [['--from', 'base', '--lora-r', '40', '--target-modules', 'q_proj'], /r = 40 for model\.layers\.0\.self_attn\.q_proj is larger than the layer allows: it is \(32, 32\), so r must be at most 32/],
    ];
    for (const [flags, re] of cases) {
      const r = io(fs);
      expect(await runCli(['finetune', '--data', 'fine.txt', '--out', 'x', '--unknown-chars', 'drop', ...flags], r.io)).not.toBe(0);
      expect(r.err()).toMatch(re);
      expect(await fs.exists('x')).toBe(false);
    }
    const none = io(fs);
    expect(await runCli(['finetune', '--data', 'fine.txt', '--out', 'x'], none.io)).toBe(2);
    expect(none.err()).toMatch(/the base is missing; give --from DIR/);
  });

  it('resumes bit-identically: 6 + 6 steps from a checkpoint give the adapter of 12 uninterrupted steps (with dropout)', async () => {
    const fs = await baseRun();
    const opts = { ...DEFAULT_FINETUNE_OPTIONS, from: 'base', data: 'fine.txt', unknownChars: 'drop', iters: 12, batch: 4, evalIters: 2, evalEvery: 0, threads: 1,
      lora: { r: 4, lora_dropout: 0.1, target_modules: ['q_proj', 'v_proj'] }, lr: 0.01 };
    await runFinetune({ ...opts, out: 'whole' }, {}, { fs });
    await runFinetune({ ...opts, out: 'part', saveEvery: 6 }, {}, { fs });
    // overwrite the first run's final adapter, so only the resumed run can produce the one compared
    await fs.remove('part/adapter', { recursive: true });
    let start = -1;
    let steps = 0;
    await runFinetune({ ...opts, out: 'part', resume: 'part/ckpt-6' }, { onStart: (i) => void (start = i.startStep), onStep: () => void steps++ }, { fs });
    expect([start, steps]).toEqual([6, 6]);
    const a = await fs.readFile('whole/adapter/adapter_model.safetensors');
    const b = await fs.readFile('part/adapter/adapter_model.safetensors');
    expect(Buffer.from(b).equals(Buffer.from(a))).toBe(true);
  });

  it('--gradient-checkpointing-layers N trains the same adapter, bit for bit, as no checkpointing', async () => {
    const fs = await baseRun();
    const activations: number[] = [];
    for (const [out, extra] of [['plain', []], ['gc1', ['--gradient-checkpointing-layers', '1']]] as const) {
      const r = io(fs);
      expect(await runCli(['finetune', ...FT, '--unknown-chars', 'drop', '--out', out, ...extra], r.io), r.err()).toBe(0);
      activations.push(Number(/activations ([\d.]+) MB/.exec(r.out())![1]));
    }
    expect(activations[1]).not.toBe(activations[0]); // the block was checkpointed (its arena is laid out otherwise)
    const a = await fs.readFile('plain/adapter/adapter_model.safetensors');
    const b = await fs.readFile('gc1/adapter/adapter_model.safetensors');
    expect(Buffer.from(b).equals(Buffer.from(a))).toBe(true);
    const bad = io(fs);
    expect(await runCli(['finetune', ...FT, '--unknown-chars', 'drop', '--out', 'x', '--gradient-checkpointing-layers', '-1'], bad.io)).not.toBe(0);
    expect(bad.err()).toMatch(/gradient-checkpointing-layers/);
  });

  it('--optimizer adamw8bit: the header counts its ~2-byte state, the loss falls, and a resume is bit-identical', async () => {
    const fs = await baseRun();
    const r = io(fs);
    expect(await runCli(['finetune', ...FT, '--unknown-chars', 'drop', '--eval-every', '6', '--optimizer', 'adamw8bit', '--out', 'ft8'], r.io), r.err()).toBe(0);
    const evals = [...r.out().matchAll(/val loss (\d\.\d+)/g)].map((m) => Number(m[1]));
    expect(evals[evals.length - 1]!).toBeLessThan(evals[0]!);
    expect(r.out()).toMatch(/optimizer state [\d.]+ MB/);
    const opts = { ...DEFAULT_FINETUNE_OPTIONS, from: 'base', data: 'fine.txt', unknownChars: 'drop', iters: 8, batch: 4, evalIters: 2, evalEvery: 0, threads: 1,
      lora: { r: 4, target_modules: 'all-linear' }, lr: 0.01, optimizer: 'adamw8bit' as const };
    let info: { trainable: number; memory: { optimizer: number } } | null = null;
    await runFinetune({ ...opts, out: 'whole8' }, { onStart: (i) => void (info = i) }, { fs });
    // 2 bytes a trainable parameter, an f32 absmax per 256 for each moment, and ~18 KB of maps and search tables
    const n = info!.trainable;
    expect(info!.memory.optimizer).toBeGreaterThanOrEqual(2 * n + 8 * Math.ceil(n / 256));
    expect(info!.memory.optimizer).toBeLessThan(2 * n + 8 * Math.ceil(n / 256) + 20_000 + 64);
    await runFinetune({ ...opts, out: 'part8', saveEvery: 4 }, {}, { fs });
    await fs.remove('part8/adapter', { recursive: true });
    await runFinetune({ ...opts, out: 'part8', resume: 'part8/ckpt-4' }, {}, { fs });
    const a = await fs.readFile('whole8/adapter/adapter_model.safetensors');
    const b = await fs.readFile('part8/adapter/adapter_model.safetensors');
    expect(Buffer.from(b).equals(Buffer.from(a))).toBe(true);
    // and not the adapter AdamW trains: the option reached the optimizer
    await runFinetune({ ...opts, optimizer: 'adamw', out: 'whole32' }, {}, { fs });
    const c = await fs.readFile('whole32/adapter/adapter_model.safetensors');
    expect(Buffer.from(c).equals(Buffer.from(a))).toBe(false);
  });
});
