// Training runs that start from a Hugging Face directory (`--from-hf DIR`, or `--from` naming one):
// fine-tuning a LLaMA and a BitNet from the fixtures with their tokenizer.json lowers the loss,
// `convert --from-hf` turns the LLaMA into a BitLinear one, and the checkpoints record the family
// so `sample` and `--resume` rebuild the same model.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { loadCheckpoint } from '../src/io/checkpoint.js';
import { resolveCheckpointDir } from '../src/io/checkpoint-manager.js';
import { MemoryFileSystem } from '../src/runtime/fs.js';
import { runCli } from '../src/cli/commands.js';
import { runTraining, sampleFromCheckpoint } from '../src/train/run.js';

const FIXTURES = new URL('../../shared/fixtures/hf/', import.meta.url).pathname;
const CORPUS = readFileSync(new URL('../examples/data/tinyshakespeare.txt', import.meta.url), 'utf8').slice(0, 12000);

/** A character-level BPE tokenizer.json (no merges) over the corpus' characters, padded with unused tokens to the fixtures' 97 ids. */
function charTokenizer(text: string): object {
  const chars = [...new Set(text)].sort();
  while (chars.length < 97) chars.push(`<unused${chars.length}>`);
  return {
    version: '1.0', truncation: null, padding: null, added_tokens: [], normalizer: null, pre_tokenizer: null, post_processor: null, decoder: { type: 'Fuse' },
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, vocab: Object.fromEntries(chars.map((c, i) => [c, i])), merges: [] },
  };
}

/** A memory file system with the fixture `name` (+ a tokenizer.json) under hf/ and the corpus as small.txt. */
function withFixture(name: string): MemoryFileSystem {
  const files: Record<string, string | Uint8Array> = { 'small.txt': CORPUS, 'hf/tokenizer.json': JSON.stringify(charTokenizer(CORPUS)) };
  for (const f of ['config.json', 'model.safetensors']) files[`hf/${f}`] = new Uint8Array(readFileSync(`${FIXTURES}${name}/${f}`));
  return new MemoryFileSystem(files);
}

const RUN = { data: 'small.txt', context: 32, batch: 4, evalIters: 2, evalEvery: 100, logEvery: 1, threads: 1, warmup: 0, lr: 3e-3, sampleTokens: 8 } as const;

function silentIo(fs: MemoryFileSystem) {
  let out = '';
  let err = '';
  return { io: { fs, stdout: { write: (s: string) => void (out += s) }, stderr: { write: (s: string) => void (err += s) } }, out: () => out, err: () => err };
}

describe('training from a Hugging Face directory', () => {
  for (const name of ['tiny-llama-gqa', 'tiny-bitnet-bf16']) {
    it(`${name}: --from-hf fine-tunes the model with its tokenizer; 20 steps lower the loss; the checkpoint records the family`, async () => {
      const fs = withFixture(name);
      const losses: number[] = [];
      const res = await runTraining({ ...RUN, from: 'hf', iters: 20, out: 'run' }, { onLog: (i) => void losses.push(i.loss) }, { fs });
      expect(losses.length).toBe(20);
      const avg = (a: number[]) => a.reduce((s, v) => s + v, 0) / a.length;
      expect(avg(losses.slice(-5))).toBeLessThan(avg(losses.slice(0, 5)) - 0.3);
      const ckpt = await loadCheckpoint(fs, await resolveCheckpointDir(fs, res.outDir));
      expect(ckpt.trainer.step).toBe(20);
      const model = (ckpt.trainer.config as { model: Record<string, unknown> }).model;
      expect(model).toMatchObject(name === 'tiny-llama-gqa'
        ? { family: 'llama', kvHeads: 2, heads: 4, dim: 64, hidden: 160, contextLength: 128, bitlinear: false, tiedHead: false }
        : { family: 'bitnet', kvHeads: 2, mlp: 'relu2', bitlinear: true, tiedHead: true, ropeTheta: 500000 });
      expect(ckpt.trainer.tokenizer).toMatchObject({ kind: 'hf' });
      const s = await sampleFromCheckpoint({ ckpt: res.outDir, prompt: 'ROMEO:', tokens: 5, temperature: 0, topK: 0, seed: 1, backend: 'wasm' } as never, { fs });
      expect(s.ids.length).toBe(5);
    });
  }

  it('convert --from-hf turns a LLaMA into a BitLinear model (progressive, λ from 0) and trains it', async () => {
    const fs = withFixture('tiny-llama-gqa');
    const s = silentIo(fs);
    const code = await runCli(['convert', '--from-hf', 'hf', '--data', 'small.txt', '--iters', '6', '--context', '32', '--batch', '4', '--eval-iters', '2', '--threads', '1', '--out', 'conv'], s.io);
    expect(s.err()).toBe('');
    expect(code).toBe(0);
    const ckpt = await loadCheckpoint(fs, await resolveCheckpointDir(fs, 'conv'));
    expect(ckpt.trainer.step).toBe(6);
    const saved = ckpt.trainer.config as { model: Record<string, unknown>; run: Record<string, unknown> };
    expect(saved.model).toMatchObject({ family: 'llama', bitlinear: true, bitlinearNorm: false, kvHeads: 2 });
    expect(saved.run).toMatchObject({ quantWarmup: 3, family: 'llama', fp: false });
  });

  it('a Llama 3.1-style rope_scaling (llama3) is carried into the run, its checkpoints and --resume', async () => {
    const fs = withFixture('tiny-llama-gqa');
    const rs = { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 16 };
    await fs.writeFile('hf/config.json', JSON.stringify({ ...JSON.parse(readFileSync(`${FIXTURES}tiny-llama-gqa/config.json`, 'utf8')), rope_scaling: rs }));
    await runTraining({ ...RUN, from: 'hf', iters: 2, saveEvery: 2, out: 'r3' }, {}, { fs });
    const ckpt = await loadCheckpoint(fs, await resolveCheckpointDir(fs, 'r3'));
    expect((ckpt.trainer.config as { model: object }).model).toMatchObject({ ropeScaling: 'llama3', ropeScalingFactor: 8, ropeLowFreqFactor: 1, ropeHighFreqFactor: 4, ropeOriginalMaxPositions: 16 });
    const resumed = await runTraining({ resume: 'r3', iters: 3 }, {}, { fs });
    expect(resumed.step).toBe(3);
  });

  it('names the flag and the file when the directory is not a model it can run', async () => {
    const fs = withFixture('tiny-llama-gqa');
    await fs.writeFile('hf/config.json', JSON.stringify({ ...JSON.parse(readFileSync(`${FIXTURES}tiny-llama-gqa/config.json`, 'utf8')), rope_scaling: { rope_type: 'yarn', factor: 4 } }));
    await expect(runTraining({ ...RUN, from: 'hf', iters: 2, out: 'bad' }, {}, { fs })).rejects.toThrow(/^--from hf: config\.json: rope_scaling .*"yarn" is not implemented/);
    expect(await fs.exists('bad')).toBe(false);
    await fs.remove('hf/tokenizer.json');
    await fs.writeFile('hf/config.json', readFileSync(`${FIXTURES}tiny-llama-gqa/config.json`, 'utf8'));
    await expect(runTraining({ ...RUN, from: 'hf', iters: 2, out: 'bad' }, {}, { fs })).rejects.toThrow(/^--from hf: no tokenizer\.json; a run needs the model's own tokenizer/);
  });
});

describe('sampling from a Hugging Face directory', () => {
  for (const name of ['tiny-llama-gqa', 'tiny-bitnet-packed']) {
    it(`${name}: sample --from-hf --prompt-ids --print-ids --temperature 0 prints the reference greedy continuation`, async () => {
      const ref = JSON.parse(readFileSync(`${FIXTURES}${name}/reference.json`, 'utf8')) as { greedy_prompt: number[]; greedy: number[] };
      const fs = new MemoryFileSystem(Object.fromEntries(['config.json', 'model.safetensors'].map((f) => [`hf/${f}`, new Uint8Array(readFileSync(`${FIXTURES}${name}/${f}`))])));
      const s = silentIo(fs);
      const code = await runCli(['sample', '--from-hf', 'hf', '--prompt-ids', ref.greedy_prompt.join(','), '--print-ids', '--temperature', '0', '--tokens', String(ref.greedy.length)], s.io);
      expect(code, s.err()).toBe(0);
      expect(s.out().trim()).toBe(ref.greedy.join(','));
      expect(s.err()).toMatch(/sampled from hf, (LlamaForCausalLM|BitNetForCausalLM), greedy/);
    });
  }

  it('with a tokenizer.json: the text prompt is encoded by it and the continuation decoded, the same tokens as --prompt-ids', async () => {
    const fs = withFixture('tiny-llama-gqa');
    const text = silentIo(fs);
    expect(await runCli(['sample', '--from-hf', 'hf', '--prompt', 'ROMEO:', '--temperature', '0', '--tokens', '6'], text.io), text.err()).toBe(0);
    const vocab = (charTokenizer(CORPUS) as { model: { vocab: Record<string, number> } }).model.vocab;
    const ids = silentIo(fs);
    expect(await runCli(['sample', '--from-hf', 'hf', '--prompt-ids', [...'ROMEO:'].map((c) => vocab[c]).join(','), '--print-ids', '--temperature', '0', '--tokens', '6'], ids.io)).toBe(0);
    const byId = Object.fromEntries(Object.entries(vocab).map(([c, i]) => [i, c]));
    expect(text.out()).toBe(`ROMEO:${ids.out().trim().split(',').map((i) => byId[Number(i)]).join('')}\n`);
  });

  it('without a tokenizer.json asks for --prompt-ids', async () => {
    const fs = new MemoryFileSystem(Object.fromEntries(['config.json', 'model.safetensors'].map((f) => [`hf/${f}`, new Uint8Array(readFileSync(`${FIXTURES}tiny-llama-tied/${f}`))])));
    const s = silentIo(fs);
    expect(await runCli(['sample', '--from-hf', 'hf', '--prompt', 'hi'], s.io)).toBe(1);
    expect(s.err()).toMatch(/--from-hf hf: no tokenizer\.json; give the prompt as --prompt-ids/);
  });
});

describe('analysing a Hugging Face directory', () => {
  it('analyze --from-hf ranks all seven projections of every LLaMA layer (q, k, v apart)', async () => {
    const fs = withFixture('tiny-llama-gqa');
    const s = silentIo(fs);
    const code = await runCli(['analyze', '--from-hf', 'hf', '--data', 'small.txt', '--batches', '1', '--threads', '1', '--json', 'sens.json'], s.io);
    expect(code, s.err()).toBe(0);
    expect(s.out()).toMatch(/a full-precision model, analysed as its BitLinear conversion/);
    const report = JSON.parse(new TextDecoder().decode(await fs.readFile('sens.json'))) as { rows: { name: string }[] };
    const names = report.rows.map((r) => r.name).sort();
    expect(names).toHaveLength(14);
    expect(names).toContain('model.layers.1.self_attn.k_proj');
  });
});

describe('the families from scratch', () => {
  it('train --family bitnet / llama --kv-heads 2 builds and trains those models, recorded in the checkpoint', async () => {
    for (const [family, extra] of [['bitnet', ['--mlp', 'relu2']], ['llama', ['--mlp', 'swiglu', '--fp']]] as const) {
      const fs = new MemoryFileSystem({ 'small.txt': CORPUS });
      const s = silentIo(fs);
      const code = await runCli(['train', '--family', family, ...extra, '--norm', 'rms', '--pos', 'rope', '--kv-heads', '2', '--data', 'small.txt', '--iters', '2', '--layers', '1', '--dim', '32', '--context', '16', '--batch', '2', '--eval-iters', '1', '--threads', '1', '--out', 'r'], s.io);
      expect(code, s.err()).toBe(0);
      const ckpt = await loadCheckpoint(fs, await resolveCheckpointDir(fs, 'r'));
      expect((ckpt.trainer.config as { model: object }).model).toMatchObject({ family, kvHeads: 2, heads: 4, headDim: 8, bitlinear: family === 'bitnet' });
      expect(ckpt.model.has(family === 'bitnet' ? 'model.layers.0.self_attn.attn_sub_norm.weight' : 'lm_head.weight')).toBe(true);
      expect(ckpt.model.get('model.layers.0.self_attn.k_proj.weight')!.shape).toEqual([16, 32]);
    }
  });

  it('refuses a GPT-only option for a LLaMA family, naming the flag', async () => {
    const fs = new MemoryFileSystem({ 'small.txt': CORPUS });
    await expect(runTraining({ ...RUN, family: 'llama', mlp: 'gelu', norm: 'rms', pos: 'rope', iters: 1, out: 'x' }, {}, { fs })).rejects.toThrow(/--family llama: the MLP is gated; give --mlp swiglu/);
  });
});

describe('distilling with Hugging Face directories', () => {
  it('distill --teacher DIR --from-hf DIR: a LLaMA student from its own HF weights, taught by them', async () => {
    const fs = withFixture('tiny-llama-gqa');
    const s = silentIo(fs);
    const code = await runCli(['distill', '--teacher', 'hf', '--from-hf', 'hf', '--fp', '--data', 'small.txt', '--iters', '2', '--context', '16', '--batch', '2', '--eval-iters', '1', '--threads', '1', '--out', 'd'], s.io);
    expect(code, s.err()).toBe(0);
    const ckpt = await loadCheckpoint(fs, await resolveCheckpointDir(fs, 'd'));
    expect((ckpt.trainer.config as { run: object }).run).toMatchObject({ teacher: 'hf', from: 'hf', family: 'llama' });
  });
});

describe('QAT options on a LLaMA-family model', () => {
  it('--keep-fp and --ste-by-layer name its projections one by one (q, k, v apart), and an unknown one is refused listing them', async () => {
    const fs = withFixture('tiny-llama-gqa');
    const res = await runTraining({ ...RUN, from: 'hf', fp: false, iters: 1, out: 'q', keepFp: ['layers.0.self_attn.k_proj'], steByLayer: ['model.layers.1.self_attn.q_proj=lsq'] }, {}, { fs });
    expect(res.config.keepFp).toEqual(['model.layers.0.self_attn.k_proj']);
    const ckpt = await loadCheckpoint(fs, await resolveCheckpointDir(fs, 'q'));
    expect(ckpt.model.has('model.layers.1.self_attn.q_proj.weight_step')).toBe(true);
    expect(ckpt.model.has('model.layers.1.self_attn.k_proj.weight_step')).toBe(false);
    await expect(runTraining({ ...RUN, from: 'hf', fp: false, iters: 1, out: 'q2', steByLayer: ['model.layers.1.self_attn.qkv_proj=lsq'] }, {}, { fs }))
      .rejects.toThrow(/--ste-by-layer: unknown layer "model\.layers\.1\.self_attn\.qkv_proj".*valid names: model\.layers\.0\.self_attn\.q_proj/);
  });
});
