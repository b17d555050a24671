/**
 * `exportCheckpoint`: a checkpoint of this project → a file another engine loads. Formats:
 * `gguf` (llama.cpp; see gguf-gpt.ts and gguf-llama.ts for what maps where), `hf` and
 * `hf-packed` (Hugging Face directories; hf-export.ts). Everything that could refuse — the
 * model, the format, the type, an existing output — is checked before a byte is written.
 */
import type { TokenizerJSON } from '../../data/tokenizer.js';
import { type FileSystem, dirname } from '../../runtime/fs-types.js';
import type { ModelConfig } from '../../train/model.js';
import { loadCheckpoint } from '../checkpoint.js';
import { resolveCheckpointDir } from '../checkpoint-manager.js';
import { writeGguf } from '../gguf/writer.js';
import { type LlamaConfig, resolveLlamaConfig } from '../../nn/llama.js';
import { bitLinearOptionsOf } from '../../train/model.js';
import type { SafetensorsTensor } from '../safetensors.js';
import { ExportError, type GgufExportOptions, type GgufExportPlan, planGptGguf } from './gguf-gpt.js';
import { planLlamaGguf } from './gguf-llama.js';
import { hfExportFiles, writeHfDirectory } from './hf-export.js';
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
  /** hf: master weights 'bf16' (default for BitNet) or 'f32' (default for an FP LLaMA). */
  dtype?: 'bf16' | 'f32';
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
  /** gguf: tensors; hf: files. */
  tensors: number;
  notes: string[];
  /** The checkpoint read and its step. */
  checkpoint: string;
  step: number;
}

/**
 * The `LlamaConfig` of a checkpoint's llama/bitnet model config (trainer.json `config.model` with
 * `family`, `kvHeads`, `headDim`, `hidden`, `ropeTheta`, `normEps`; `mlp` relu2 or swiglu).
 */
export function llamaConfigOfCheckpoint(m: ModelConfig): LlamaConfig {
  const x = m as ModelConfig & { family?: string; kvHeads?: number; headDim?: number; hidden?: number; ropeTheta?: number; normEps?: number };
  if (x.family !== 'llama' && x.family !== 'bitnet') throw new ExportError(`model family ${String(x.family)} is not a LLaMA family`);
  if (x.hidden === undefined) throw new ExportError(`trainer.json config.model of family ${x.family} has no hidden (MLP width)`);
  return {
    family: x.family, vocabSize: m.vocabSize, contextLength: m.contextLength, layers: m.layers, heads: m.heads, dim: m.dim, hidden: x.hidden,
    ...(x.kvHeads !== undefined ? { kvHeads: x.kvHeads } : {}),
    ...(x.headDim !== undefined ? { headDim: x.headDim } : {}),
    ...(x.ropeTheta !== undefined ? { ropeTheta: x.ropeTheta } : {}),
    ...(x.normEps !== undefined ? { normEps: x.normEps } : {}),
    tiedHead: m.tiedHead, attentionBias: m.bias, mlpBias: m.bias, act: m.mlp === 'relu2' ? 'relu2' : 'silu', initStd: m.initStd,
    bitlinear: m.bitlinear, bitlinearOptions: { ...bitLinearOptionsOf(m), norm: false },
  };
}

const isLlamaFamily = (m: ModelConfig) => ['llama', 'bitnet'].includes((m as { family?: string }).family ?? 'gpt');

/** The GGUF plan of a loaded checkpoint's model. */
export function planGguf(model: ModelConfig, tensors: ReadonlyMap<string, SafetensorsTensor>, tokenizer: TokenizerJSON | undefined, options: GgufExportOptions): GgufExportPlan {
  if (isLlamaFamily(model)) return planLlamaGguf(resolveLlamaConfig(llamaConfigOfCheckpoint(model)), tensors, tokenizer, options);
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
  const base = { out: options.out, checkpoint: ckpt.dir, step: ckpt.trainer.step };
  if (options.format === 'gguf') {
    if (options.dtype !== undefined) throw new ExportError('export --dtype is for --format hf; GGUF types are --type and --dense-type');
    const plan = planGguf(saved.model, ckpt.model, ckpt.trainer.tokenizer, { type: options.type, denseType: options.denseType });
    if (options.force && (await fs.exists(options.out))) await fs.remove(options.out, { recursive: true });
    await fs.mkdirp(dirname(options.out));
    const bytes = await writeGguf(fs, options.out, plan.content);
    return { ...base, format: 'gguf', arch: plan.arch, ternaryType: plan.ternaryType, bytes, tensors: plan.content.tensors.length, notes: plan.notes };
  }
  if (!isLlamaFamily(saved.model)) {
    throw new ExportError(`export --format ${options.format}: transformers has no architecture for this checkpoint's GPT (LayerNorm, GELU, learned positions; LlamaForCausalLM and BitNetForCausalLM have RMSNorm and RoPE); export it with --format gguf (llama.cpp gpt2), or train --family bitnet / llama`);
  }
  if (options.type !== undefined && options.type !== 'auto') throw new ExportError(`export --type is for --format gguf; --format ${options.format} writes ${options.format === 'hf' ? 'BF16/F32 master weights (--dtype)' : 'U8 packed codes and BF16 weight_scale'}`);
  const c = resolveLlamaConfig(llamaConfigOfCheckpoint(saved.model));
  const { files, notes } = hfExportFiles(c, ckpt.model, ckpt.trainer.tokenizer, { form: options.format, ...(options.dtype ? { dtype: options.dtype } : {}) });
  if (options.force && (await fs.exists(options.out))) await fs.remove(options.out, { recursive: true });
  const bytes = await writeHfDirectory(fs, options.out, files);
  return { ...base, format: options.format, bytes, tensors: files.length, notes };
}
