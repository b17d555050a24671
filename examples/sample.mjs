// Generate text from a checkpoint written by `bitnet-train train` or examples/train-shakespeare.mjs.
//
//   node examples/sample.mjs runs/example "ROMEO:" [tokens]
import { sampleFromCheckpoint } from 'bitnet-training';

const [ckpt = 'runs/example', prompt = '\n', tokens = '300'] = process.argv.slice(2);
const { text, checkpoint, step } = await sampleFromCheckpoint({ ckpt, prompt, tokens: Number(tokens), temperature: 0.8, topK: 20, seed: 1 });
console.log(text);
console.error(`(from ${checkpoint}, step ${step})`);
