/**
 * `bitnet-train sample --from-hf DIR` (or `--ckpt DIR` naming a Hugging Face model directory):
 * generate from a `LlamaForCausalLM` / `BitNetForCausalLM` directory as it is, with its
 * tokenizer.json, or with `--prompt-ids` / `--print-ids` where it has none.
 */
import { createBackend } from '../backend/index.js';
import { createTextStream } from '../data/text-stream.js';
import { loadPretrained } from '../io/hf/pretrained.js';
import type { FileSystem } from '../runtime/fs-types.js';
import { generate } from '../train/generate.js';
import { promptIds } from '../train/run.js';
import { Rng } from '../util/rng.js';
import type { SampleArgs } from './args.js';
import type { CliIO } from './commands.js';

/** Sample from the Hugging Face directory `args.ckpt`; writes the text (or ids) to stdout. */
export async function sampleFromHfDirectory(args: SampleArgs, io: CliIO, fs: FileSystem): Promise<number> {
  const backend = await createBackend(args.backend);
  try {
    // a large checkpoint reports its progress every 10 %
    let shown = 0;
    const p = await loadPretrained(args.ckpt, {
      fs, backend,
      onProgress: (e) => {
        const tenth = Math.floor((10 * e.bytesDone) / e.bytesTotal);
        if (e.bytesTotal < 64e6 || tenth <= shown) return;
        shown = tenth;
        io.stderr.write(`(loading ${args.ckpt}: ${tenth * 10} % of ${(e.bytesTotal / 1e6).toFixed(0)} MB)\n`);
      },
    });
    const tokenizer = p.tokenizer;
    if (!tokenizer && args.promptIds === undefined) {
      throw new Error(`--from-hf ${args.ckpt}: no tokenizer.json; give the prompt as --prompt-ids 1,5,9 and read the output with --print-ids`);
    }
    const V = p.model.config.vocabSize;
    // a text prompt starts as the model saw its sequences: BOS first where tokenizer_config.json adds it
    const bos = tokenizer && tokenizer.addBos && tokenizer.bosId !== null ? [tokenizer.bosId] : [];
    const prompt = args.promptIds !== undefined ? Int32Array.from(args.promptIds) : Int32Array.from([...bos, ...promptIds(tokenizer!, args.prompt)]);
    const bad = prompt.findIndex((id) => !(Number.isInteger(id) && id >= 0 && id < V));
    if (bad >= 0) throw new Error(`--prompt-ids: id ${prompt[bad]} is not a token of ${args.ckpt} (vocab_size ${V})`);
    const text = tokenizer && !args.printIds ? createTextStream(tokenizer, prompt) : null;
    if (text) io.stdout.write(args.promptIds !== undefined ? tokenizer!.decode(prompt) : args.prompt);
    const ids = generate(p.model, p.heap, prompt, {
      maxNewTokens: args.tokens,
      temperature: args.temperature,
      topK: args.topK,
      rng: new Rng(args.seed),
      onToken: (id) => {
        const t = text?.push(id);
        if (t) io.stdout.write(t);
      },
    });
    if (text) io.stdout.write(`${text.flush()}\n`);
    else io.stdout.write(`${Array.from(ids).join(',')}\n`);
    io.stderr.write(`(sampled from ${args.ckpt}, ${p.spec.architecture}${args.temperature === 0 ? ', greedy' : ''})\n`);
    return 0;
  } finally {
    backend.dispose();
  }
}
