/**
 * `exportCheckpoint`: a checkpoint of this project → a file another engine loads. Formats:
 * `gguf` (llama.cpp; see gguf-gpt.ts and gguf-llama.ts for what maps where), `hf` and
 * `hf-packed` (Hugging Face directories; hf-export.ts). Everything that could refuse — the
 * model, the format, the type, an existing output — is checked before a byte is written.
 */
import type { TokenizerJSON } from '../../data/tokenizer.js';
import type { FileSystem } from '../../runtime/fs-types.js';
import type { ModelConfig } from '../../train/model.js';
import { loadCheckpoint } from '../checkpoint.js';
import { resolveCheckpointDir } from '../checkpoint-manager.js';
import { writeGguf } from '../gguf/writer.js';
import { ExportError, type GgufExportOptions, type GgufExportPlan, planGptGguf } from './gguf-gpt.js';
import type { TernaryGgufType } from './ternary-weights.js';

export const EXPORT_FORMATS = ['gguf', 'hf', 'hf-packed'] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

/** Options of `exportCheckpoint`. */
export interface ExportOptions {
  /** A checkpoint directory, or a run directory (its latest checkpoint). */
  ckpt: string;
  format: ExportFormat;
  /** gguf: a file path; hf / hf-packed: a directory. */
  out: string;
  /** Replace an existing output. Default false: an existing `out` is refused. */
  force?: boolean;
  /** gguf: the type of the ternary projections (default 'auto'). */
  type?: TernaryGgufType | 'auto';
  /** gguf: embeddings and LM head 'f32' (default) or 'f16'. */
  denseType?: 'f32' | 'f16';
}

/** What an export wrote. */
export interface ExportResult {
  out: string;
  format: ExportFormat;
  /** gguf: the llama.cpp architecture. */
  arch?: string;
  /** gguf: the type of the ternary projections (null: a full-precision model). */
  ternaryType?: TernaryGgufType | null;
  bytes: number;
  tensors: number;
  notes: string[];
  /** The checkpoint read and its step. */
  checkpoint: string;
  step: number;
}

/** The GGUF plan of a loaded checkpoint's model. */
export function planGguf(model: ModelConfig, tensors: ReadonlyMap<string, import('../safetensors.js').SafetensorsTensor>, tokenizer: TokenizerJSON | undefined, options: GgufExportOptions): GgufExportPlan {
  return planGptGguf(model, tensors, tokenizer, options);
}

/**
 * Export a checkpoint. Throws an `ExportError` (naming what the target cannot express, or the
 * existing output and `--force`) before writing anything.
 */
export async function exportCheckpoint(options: ExportOptions, fs: FileSystem): Promise<ExportResult> {
  if (!(EXPORT_FORMATS as readonly string[]).includes(options.format)) throw new ExportError(`export: unknown format ${JSON.stringify(options.format)}; formats: ${EXPORT_FORMATS.join(', ')}`);
  if (!options.force && (await fs.exists(options.out))) throw new ExportError(`export: ${options.out} already exists; choose another --out or pass --force to replace it`);
  const ckpt = await loadCheckpoint(fs, await resolveCheckpointDir(fs, options.ckpt));
  const saved = ckpt.trainer.config as { model?: ModelConfig };
  if (!saved.model || typeof saved.model.vocabSize !== 'number') throw new ExportError(`checkpoint ${ckpt.dir}/trainer.json has no config.model; it was not written by bitnet-train`);
  if (options.format !== 'gguf') throw new ExportError(`export --format ${options.format}: not available for this checkpoint's model (a ${saved.model.bitlinear ? 'BitLinear' : 'full-precision'} GPT): Hugging Face has no architecture with this GPT's LayerNorm, GELU and learned positions in LlamaForCausalLM/BitNetForCausalLM; export it as --format gguf (llama.cpp gpt2)`);
  const plan = planGguf(saved.model, ckpt.model, ckpt.trainer.tokenizer, { type: options.type, denseType: options.denseType });
  if (options.force && (await fs.exists(options.out))) await fs.remove(options.out, { recursive: true });
  const bytes = await writeGguf(fs, options.out, plan.content);
  return { out: options.out, format: 'gguf', arch: plan.arch, ternaryType: plan.ternaryType, bytes, tensors: plan.content.tensors.length, notes: plan.notes, checkpoint: ckpt.dir, step: ckpt.trainer.step };
}
