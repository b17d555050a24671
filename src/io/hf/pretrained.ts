/**
 * `loadPretrained`: a Hugging Face model directory (`config.json`, safetensors weights, and
 * `tokenizer.json` where present) → a materialized `LlamaModel` on a heap, its family config and
 * its tokenizer. The config is mapped and checked (`llamaConfigFromHf`) before anything is
 * allocated; the weights stream in tensor by tensor (`loadHfWeights`), so the peak memory is
 * the model's own, not the file's on top.
 */
import { createBackend } from '../../backend/index.js';
import type { Backend } from '../../backend/backend.js';
import { HfTokenizer } from '../../data/hf-tokenizer.js';
import type { BitLinearOptions } from '../../nn/bitlinear.js';
import { type HfModelSpec, llamaConfigFromHf } from '../../nn/hf-config.js';
import { type LlamaConfig, LlamaModel } from '../../nn/llama.js';
import type { FileSystem } from '../../runtime/fs-types.js';
import { Heap } from '../../tensor/heap.js';
import { type HfFiles, hfFilesFromFileSystem } from './source.js';
import { HfCheckpointError, type HfLoadProgress, type HfWeightsReport, loadHfWeights } from './weights.js';

/** Options of `loadPretrained`. */
export interface LoadPretrainedOptions {
  /** The file system a path is read from (default: the host's, `getDefaultFileSystem()`). */
  fs?: FileSystem;
  /** Put the model on this heap (default: a new heap on `backend`). */
  heap?: Heap;
  /** Backend of a new heap (default: `createBackend('wasm')`). */
  backend?: Backend;
  /** Shorter context than `max_position_embeddings` (the RoPE table and `sample`'s window). */
  contextLength?: number;
  /** BitLinear options (QAT: `ste`, `keepFp`, ...) for a BitNet model. */
  bitlinearOptions?: BitLinearOptions;
  /** Load a LLaMA with BitLinear projections (to convert it to 1.58 bit: at λ = 0 it computes the FP model). */
  bitlinear?: boolean;
  /** Progress of the weight stream (bytes read so far / total). */
  onProgress?: (p: HfLoadProgress) => void;
}

/** What `loadPretrained` returns. */
export interface Pretrained {
  model: LlamaModel;
  heap: Heap;
  /** What config.json says (family, config, quantization form, BOS/EOS ids). */
  spec: HfModelSpec;
  /** The config the model was built from (spec.config with the options applied). */
  config: LlamaConfig;
  /** From `tokenizer.json` (+ `tokenizer_config.json`), or null when the directory has none. */
  tokenizer: HfTokenizer | null;
  /** What the weight stream read. */
  weights: HfWeightsReport;
  /** Wall-clock seconds of the weight stream. */
  seconds: number;
}

async function readJson(files: HfFiles, name: string): Promise<unknown> {
  const text = await files.readText(name);
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new HfCheckpointError(`${files.dir}/${name}: not valid JSON (${(err as Error).message}); re-download the file`);
  }
}

/**
 * Load a Hugging Face `LlamaForCausalLM` or `BitNetForCausalLM` directory.
 *
 * @example
 * const { model, heap, tokenizer } = await loadPretrained('models/SmolLM2-135M', { backend: await createBackend('wasm', { threads: 2 }) });
 * const ids = generate(model, heap, tokenizer.encode('Once upon a time'), { maxNewTokens: 20, temperature: 0, rng: new Rng(1) });
 * // in a browser: loadPretrained(hfFilesFromFileList(input.files), { backend })
 */
export async function loadPretrained(dir: string | HfFiles, options: LoadPretrainedOptions = {}): Promise<Pretrained> {
  let files: HfFiles;
  if (typeof dir === 'string') {
    const fs = options.fs ?? (await (await import('../../runtime/fs.js')).getDefaultFileSystem());
    files = hfFilesFromFileSystem(fs, dir);
  } else files = dir;
  if (!(await files.exists('config.json'))) {
    throw new HfCheckpointError(`${files.dir}: no config.json; give a Hugging Face model directory (config.json + model.safetensors)`);
  }
  const spec = llamaConfigFromHf(await readJson(files, 'config.json'), `${files.dir}/config.json`);
  const config: LlamaConfig = { ...spec.config };
  if (options.contextLength !== undefined) {
    if (!Number.isInteger(options.contextLength) || options.contextLength <= 0 || options.contextLength > spec.config.contextLength) {
      throw new HfCheckpointError(`loadPretrained: contextLength must be an integer in [1, ${spec.config.contextLength}] (max_position_embeddings of ${files.dir}/config.json), got ${options.contextLength}`);
    }
    config.contextLength = options.contextLength;
  }
  if (options.bitlinear !== undefined) {
    if (spec.config.bitlinear && !options.bitlinear) throw new HfCheckpointError(`loadPretrained: ${files.dir} is a BitNet (ternary) model; it cannot be loaded with bitlinear: false`);
    config.bitlinear = options.bitlinear;
  }
  if (options.bitlinearOptions) config.bitlinearOptions = { ...options.bitlinearOptions };

  // the tokenizer before the weights: a wrong vocabulary fails before the long read
  let tokenizer: HfTokenizer | null = null;
  if (await files.exists('tokenizer.json')) {
    const tc = (await files.exists('tokenizer_config.json')) ? await readJson(files, 'tokenizer_config.json') : {};
    try {
      tokenizer = HfTokenizer.fromJSON(await readJson(files, 'tokenizer.json') as object, tc as object);
    } catch (err) {
      throw new HfCheckpointError(`${files.dir}/tokenizer.json: ${(err as Error).message}`);
    }
    if (tokenizer.vocabSize > spec.config.vocabSize) {
      throw new HfCheckpointError(`${files.dir}/tokenizer.json: the tokenizer has ${tokenizer.vocabSize} ids but config.json vocab_size is ${spec.config.vocabSize}; the tokenizer belongs to another model (use the tokenizer files that came with these weights)`);
    }
  }

  const model = new LlamaModel(config);
  const heap = options.heap ?? new Heap(options.backend ?? (await createBackend('wasm')));
  const t0 = Date.now();
  const weights = await loadHfWeights(model, files, spec, { onProgress: options.onProgress, beforeWrite: () => model.materialize(heap, null) });
  return { model, heap, spec, config, tokenizer, weights, seconds: (Date.now() - t0) / 1000 };
}
