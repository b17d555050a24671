/**
 * The corpus of a training run: which tokenizer (a checkpoint's, a Hugging Face tokenizer.json,
 * or a kind built from the corpus), how unknown characters are treated, and where a large
 * corpus's ids go — then `loadCorpus`. Used by `runTraining`; progress goes to `onProgress`.
 */
import type { FileSystem } from '../runtime/fs-types.js';
import { type CorpusProgress, loadCorpus } from './corpus.js';
import type { TextDataset } from './dataset.js';
import { loadHfTokenizer } from './hf-files.js';
import { fnv1a } from './token-file.js';
import type { Tokenizer } from './tokenizer.js';
import { parseUnknownChars } from './unknown-chars.js';

/** The run options the corpus depends on (a `RunConfig` has them all). */
export interface TrainingCorpusOptions {
  data: string;
  tokenizer: 'char' | 'byte';
  tokenizerJson: string | null;
  unknownChars: string;
  dataAnyFile: boolean;
  tokenCache: string | null;
  dataMaxMemoryMb: number;
  valFraction: number;
  context: number;
}

/**
 * Tokenise `cfg.data` with `fixed` (the tokenizer of the checkpoint being resumed or fine-tuned)
 * when given, else `--tokenizer-json`, else `--tokenizer`'s kind. Past `--data-max-memory-mb`
 * the ids go to `--token-cache`, or by default to `<data>.tokens-<tokenizer hash>.bin` next to the
 * corpus (reused by later runs on the same corpus and tokenizer).
 */
export async function loadTrainingCorpus(fs: FileSystem, cfg: TrainingCorpusOptions, fixed?: Tokenizer, onProgress?: (p: CorpusProgress) => void): Promise<TextDataset> {
  const unknownChars = parseUnknownChars(cfg.unknownChars);
  const tokenizer = fixed ?? (cfg.tokenizerJson !== null ? await loadHfTokenizer(fs, cfg.tokenizerJson) : cfg.tokenizer);
  const kind = typeof tokenizer === 'string' ? tokenizer : `${tokenizer.kind}-${fnv1a(JSON.stringify(tokenizer.toJSON()))}`;
  const explicit = cfg.tokenCache !== null;
  return loadCorpus(fs, cfg.data, {
    tokenizer,
    valFraction: cfg.valFraction,
    contextLength: cfg.context,
    unknownChars,
    allowSpecialFile: cfg.dataAnyFile,
    tokenFile: cfg.tokenCache ?? `${cfg.data}.tokens-${kind}.bin`,
    cacheInMemoryCorpus: explicit,
    maxInMemoryTokenBytes: cfg.dataMaxMemoryMb * (1 << 20),
    onProgress,
  });
}
