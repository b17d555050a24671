/**
 * The corpus keys of a `RunConfig` (flags of `bitnet-train train`, keys of `--config` files):
 * a Hugging Face tokenizer, what to do with characters a given tokenizer lacks, devices/FIFOs,
 * and where token ids go when they outgrow memory.
 */
import type { OptionSpec, RunConfig } from '../train/config.js';

/** Corpus options of a run. */
export interface DataRunConfig {
  /** A Hugging Face tokenizer.json, or a directory holding it (and tokenizer_config.json); null: --tokenizer's kind. */
  tokenizerJson: string | null;
  /** Characters a given tokenizer (a checkpoint's, a Hugging Face one) cannot encode: `error`, `drop` or `replace=X`. */
  unknownChars: string;
  /** Read --data even when it is a device or FIFO (at most 1 GiB). */
  dataAnyFile: boolean;
  /** Token file for the corpus's ids: reused when it matches the corpus and tokenizer, else written; needed past --data-max-memory-mb. */
  tokenCache: string | null;
  /** Largest in-memory token array in MiB; larger corpora need a token file (default: <data>.tokens-<tokenizer>.bin next to the corpus). */
  dataMaxMemoryMb: number;
}

const spec = (key: keyof DataRunConfig, type: OptionSpec['type'], flag: boolean, help: string, extra: Partial<OptionSpec> = {}): OptionSpec =>
  ({ key: key as keyof RunConfig, type, flag, help, ...extra });

/** The corpus rows of `OPTION_SPECS`. */
export const DATA_OPTION_SPECS: readonly OptionSpec[] = [
  spec('tokenizerJson', 'string', true, 'a Hugging Face tokenizer.json (or its directory, with tokenizer_config.json) instead of --tokenizer', { nullable: true }),
  spec('unknownChars', 'string', true, "characters the model's tokenizer lacks: error (list them), drop, or replace=X"),
  spec('dataAnyFile', 'bool', true, 'read --data even if it is a device or FIFO (at most 1 GiB)'),
  spec('tokenCache', 'string', true, "token file of the corpus's ids (reused when it matches; holds corpora past --data-max-memory-mb)", { nullable: true }),
  spec('dataMaxMemoryMb', 'posInt', true, 'largest in-memory token array (MiB); past it ids are read from a token file'),
];

export const DEFAULT_DATA_CONFIG: Readonly<DataRunConfig> = Object.freeze({
  tokenizerJson: null,
  unknownChars: 'error',
  dataAnyFile: false,
  tokenCache: null,
  dataMaxMemoryMb: 1024,
});
