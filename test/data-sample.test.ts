// `sample --prompt-ids / --print-ids / --temperature 0`, Hugging Face tokenizers through a whole
// run (train, checkpoint record, resume, sample) and --unknown-chars from the CLI, in process on
// a memory file system.
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { type CliIO, runCli } from '../src/cli/commands.js';
import { createBackend } from '../src/backend/index.js';
import { noGrad } from '../src/autograd/tape.js';
import { HfTokenizer, createTextStream, tokenizerFromJSON } from '../src/data/index.js';
import { loadCheckpoint } from '../src/io/checkpoint.js';
import { MemoryFileSystem } from '../src/runtime/fs-memory.js';
import { Heap } from '../src/tensor/heap.js';
import { type ModelConfig, createModel } from '../src/train/model.js';
import { importModelTensors } from '../src/train/state.js';
import { Rng } from '../src/util/rng.js';
import { LLAMA2_CONFIG, byteLevelTokenizer, sentencePieceTokenizer } from './data-fixtures.js';

const SHAKESPEARE = readFileSync(new URL('../examples/data/tinyshakespeare.txt', import.meta.url), 'utf8');
const KJV = readFileSync(new URL('../../shared/data/kjv-excerpt.txt', import.meta.url), 'utf8');
const TINY = ['--layers', '1', '--dim', '16', '--heads', '2', '--context', '16', '--batch', '4', '--eval-iters', '1', '--log-every', '5', '--backend', 'js', '--threads', '1'];

function io(fs: MemoryFileSystem): CliIO & { out: () => string; err: () => string } {
  let out = '';
  let err = '';
  return { fs, stdout: { write: (t: string) => { out += t; } }, stderr: { write: (t: string) => { err += t; } }, out: () => out, err: () => err };
}

async function cli(fs: MemoryFileSystem, ...argv: string[]): Promise<{ status: number; out: string; err: string }> {
  const o = io(fs);
  const status = await runCli(argv, o);
  return { status, out: o.out(), err: o.err() };
}

const fs = new MemoryFileSystem({
  '/shakes.txt': SHAKESPEARE,
  '/shakes-head.txt': SHAKESPEARE.slice(0, 30_000),
  '/kjv.txt': KJV,
  '/hf/tokenizer.json': JSON.stringify(sentencePieceTokenizer('llama2')),
  '/hf/tokenizer_config.json': JSON.stringify(LLAMA2_CONFIG),
  '/bl/tokenizer.json': JSON.stringify(byteLevelTokenizer('gpt2')),
});

beforeAll(async () => {
  const r = await cli(fs, 'train', ...TINY, '--data', '/shakes.txt', '--iters', '10', '--out', '/run');
  expect(r.status, r.err).toBe(0);
}, 120_000);

describe('sample --prompt-ids, --print-ids, --temperature 0', () => {
  it('greedy decoding: the same ids for any seed, each the argmax of the logits before it', async () => {
    const a = await cli(fs, 'sample', '--ckpt', '/run', '--prompt-ids', '1,5,9', '--print-ids', '--temperature', '0', '--tokens', '12', '--backend', 'js');
    expect(a.status, a.err).toBe(0);
    expect(a.out).toMatch(/^\d+(,\d+){11}\n$/);
    const b = await cli(fs, 'sample', '--ckpt', '/run', '--prompt-ids', '1,5,9', '--print-ids', '--temperature', '0', '--tokens', '12', '--seed', '99', '--backend', 'js');
    expect(b.out).toBe(a.out);
    expect(a.err).toMatch(/greedy/);
    const ids = a.out.trim().split(',').map(Number);

    // teacher-forced: the model on prompt + generated ids, argmax at each position
    const ckpt = await loadCheckpoint(fs, '/run/ckpt-10', { optimizer: false });
    const cfg = (ckpt.trainer.config as { model: ModelConfig }).model;
    const backend = await createBackend('js');
    try {
      const heap = new Heap(backend);
      const model = createModel(cfg).materialize(heap, new Rng(0));
      importModelTensors(model.params, ckpt.model, 'ckpt');
      const seq = [1, 5, 9, ...ids];
      const logits = noGrad(() => model.forward(heap.indices(Int32Array.from(seq), [1, seq.length])).logits);
      const V = cfg.vocabSize;
      const all = backend.readSync(logits.offset, seq.length * V);
      for (let i = 0; i < ids.length; i++) {
        const row = Array.from(all.subarray((2 + i) * V, (3 + i) * V));
        expect(ids[i]).toBe(row.indexOf(Math.max(...row)));
      }
      heap.resetArena();
    } finally {
      backend.dispose();
    }
  }, 60_000);

  it('a near-zero temperature samples what greedy picks', async () => {
    const greedy = await cli(fs, 'sample', '--ckpt', '/run', '--prompt-ids', '10,20', '--print-ids', '--temperature', '0', '--tokens', '8', '--backend', 'js');
    const cold = await cli(fs, 'sample', '--ckpt', '/run', '--prompt-ids', '10,20', '--print-ids', '--temperature', '1e-4', '--tokens', '8', '--backend', 'js');
    expect(cold.out).toBe(greedy.out);
  }, 60_000);

  it('refuses bad ids with the flag and the fix', async () => {
    const bad = await cli(fs, 'sample', '--ckpt', '/run', '--prompt-ids', '1,x', '--print-ids');
    expect(bad.status).toBe(2);
    expect(bad.err).toMatch(/--prompt-ids: expected token ids separated by commas \(e\.g\. 1,5,9\), got 'x'/);
    const both = await cli(fs, 'sample', '--ckpt', '/run', '--prompt-ids', '1', '--prompt', 'a');
    expect(both.err).toMatch(/give --prompt or --prompt-ids, not both/);
    const range = await cli(fs, 'sample', '--ckpt', '/run', '--prompt-ids', '1,9999', '--print-ids', '--backend', 'js');
    expect(range.status).toBe(1);
    expect(range.err).toMatch(/prompt id 9999 at index 1 is outside the vocabulary/);
  });

  it('prints text for --prompt-ids without --print-ids, decoded in context', async () => {
    const r = await cli(fs, 'sample', '--ckpt', '/run', '--prompt-ids', '20,21', '--temperature', '0', '--tokens', '10', '--backend', 'js');
    expect(r.status, r.err).toBe(0);
    const ids = (await cli(fs, 'sample', '--ckpt', '/run', '--prompt-ids', '20,21', '--print-ids', '--temperature', '0', '--tokens', '10', '--backend', 'js')).out.trim().split(',').map(Number);
    const ckpt = await loadCheckpoint(fs, '/run/ckpt-10', { optimizer: false });
    expect(r.out).toBe(`${tokenizerFromJSON(ckpt.trainer.tokenizer).decode(ids)}\n`);
  }, 60_000);
});

describe('a run with a Hugging Face tokenizer (--tokenizer-json)', () => {
  it('trains on its ids (BOS first), records it in the checkpoint, resumes and samples with it', async () => {
    const r = await cli(fs, 'train', ...TINY, '--data', '/shakes-head.txt', '--tokenizer-json', '/hf', '--iters', '6', '--out', '/hfrun', '--unknown-chars', 'replace= ');
    expect(r.status, r.err).toBe(0);
    expect(r.out).toMatch(/vocab 297/);
    const ckpt = await loadCheckpoint(fs, '/hfrun/ckpt-6', { optimizer: false });
    const tok = tokenizerFromJSON(ckpt.trainer.tokenizer) as HfTokenizer;
    expect(tok).toBeInstanceOf(HfTokenizer);
    expect([tok.bosId, tok.addBos]).toEqual([1, true]);
    const resumed = await cli(fs, 'train', '--resume', '/hfrun', '--iters', '8', '--backend', 'js', '--threads', '1');
    expect(resumed.status, resumed.err).toBe(0);
    const s = await cli(fs, 'sample', '--ckpt', '/hfrun', '--prompt', 'the', '--tokens', '20', '--temperature', '0', '--backend', 'js');
    expect(s.status, s.err).toBe(0);
    expect(s.out.startsWith('the')).toBe(true);
  }, 120_000);

  it('decodes a stream of byte-level ids with multi-byte characters whole', () => {
    const tok = HfTokenizer.fromJSON(byteLevelTokenizer('gpt2'));
    const text = ' grüße 世界 hello';
    const stream = createTextStream(tok, tok.encode('say'));
    let out = '';
    for (const id of tok.encode(text)) out += stream.push(id);
    out += stream.flush();
    expect(out).toBe(text);
    const sp = HfTokenizer.fromJSON(sentencePieceTokenizer('llama2'), LLAMA2_CONFIG);
    const prompt = sp.encodeSequence('hello');
    const s2 = createTextStream(sp, prompt);
    const continuation = sp.encodeSequence('hello the world').subarray(prompt.length); // ▁the ▁ w o r l d
    expect([...continuation].map((id) => s2.push(id)).join('') + s2.flush()).toBe(' the world');
    expect(continuation.length > 0 && sp.decode([continuation[0]!])).toBe('the'); // one id alone loses its space
  });
});

describe('--unknown-chars from the CLI (fine-tuning on a corpus with characters the base lacks)', () => {
  it('refuses kjv-excerpt.txt for a tinyshakespeare char model, listing ( and ), and trains with drop', async () => {
    const r = await cli(fs, 'train', ...TINY, '--from', '/run', '--data', '/kjv.txt', '--iters', '2', '--out', '/ft');
    expect(r.status).toBe(1);
    expect(r.err).toMatch(/\/kjv\.txt: \d+ characters \(\d+ distinct\) are not in the tokenizer's vocabulary: .*"\(" \(U\+0028\) ×\d+/);
    expect(r.err).toMatch(/--unknown-chars drop/);
    expect(await fs.exists('/ft')).toBe(false);
    const ok = await cli(fs, 'train', ...TINY, '--from', '/run', '--data', '/kjv.txt', '--iters', '2', '--out', '/ft', '--unknown-chars', 'drop');
    expect(ok.status, ok.err).toBe(0);
  }, 120_000);

  it('refuses a device as --data before writing anything', async () => {
    const { createNodeFileSystem } = await import('../src/runtime/fs-node.js');
    const o = io(fs);
    const status = await runCli(['train', ...TINY, '--data', '/dev/zero', '--out', '/tmp/never-written-bt'], { ...o, fs: await createNodeFileSystem() });
    expect(status).toBe(1);
    expect(o.err()).toMatch(/data file \/dev\/zero is a character device, not a regular file: .*--data-any-file/);
  });
});
