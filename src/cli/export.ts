/**
 * `bitnet-train export --ckpt DIR --format hf|hf-packed|gguf [--type T] [--dense-type f32|f16] --out PATH [--force]`.
 */
import { EXPORT_FORMATS, exportCheckpoint } from '../io/export/export-checkpoint.js';
import { TERNARY_GGUF_TYPES } from '../io/export/ternary-weights.js';
import { getDefaultFileSystem } from '../runtime/fs.js';
import { type FlagSpec, UsageError, flagLines, parseFlags, sampleSpec } from './args.js';
import type { CliIO } from './commands.js';

const EXPORT_FLAGS: FlagSpec[] = [
  sampleSpec('ckpt', 'string', 'checkpoint directory, or a run directory (its latest checkpoint) — required'),
  sampleSpec('format', 'enum', 'gguf (llama.cpp), hf (Hugging Face, trainable -bf16 form) or hf-packed (U8 + weight_scale) — required', EXPORT_FORMATS),
  sampleSpec('out', 'string', 'output: a .gguf file, or a directory for hf/hf-packed — required'),
  sampleSpec('type', 'enum', 'gguf: ternary projections as tq2_0 / tq1_0 (rows a multiple of 256), i2_s (bitnet.cpp), f16 or f32; auto: tq2_0 where it fits, else exact codes', ['auto', ...TERNARY_GGUF_TYPES]),
  sampleSpec('denseType', 'enum', 'gguf: embeddings and LM head', ['f32', 'f16']),
  sampleSpec('dtype', 'enum', 'hf: master weights (default bf16 for BitNet, as transformers trains it; f32 for an FP LLaMA)', ['bf16', 'f32']),
  sampleSpec('force', 'bool', 'replace an existing --out'),
];

const DEFAULTS = { type: 'auto', denseType: 'f32' };

/** `bitnet-train export --help`. */
export function exportHelp(): string {
  return `Usage: bitnet-train export --ckpt DIR --format gguf|hf|hf-packed --out PATH [options]

Writes a checkpoint in another engine's format. Nothing is written when the target cannot express
the model (the error says what is missing) or when --out exists (unless --force).

Options:
${flagLines(EXPORT_FLAGS, DEFAULTS)}
  --help                this text
`;
}

/** Run `export`. */
export async function exportCommand(argv: readonly string[], io: CliIO): Promise<number> {
  const { values, help } = parseFlags('export', argv, EXPORT_FLAGS);
  if (help) {
    io.stdout.write(exportHelp());
    return 0;
  }
  for (const key of ['ckpt', 'format', 'out'] as const) {
    if (values[key] === undefined) throw new UsageError(`export: --${key} is required (bitnet-train export --ckpt DIR --format gguf --out model.gguf)`);
  }
  const fs = io.fs ?? (await getDefaultFileSystem());
  const r = await exportCheckpoint({
    ckpt: values.ckpt as string,
    format: values.format as (typeof EXPORT_FORMATS)[number],
    out: values.out as string,
    force: values.force === true,
    ...(values.type !== undefined ? { type: values.type as 'auto' } : {}),
    ...(values.denseType !== undefined ? { denseType: values.denseType as 'f32' | 'f16' } : {}),
    ...(values.dtype !== undefined ? { dtype: values.dtype as 'bf16' | 'f32' } : {}),
  }, fs);
  const what = r.format === 'gguf' ? `GGUF (llama.cpp ${r.arch}${r.ternaryType ? `, ternary projections ${r.ternaryType}` : ''})` : `a Hugging Face directory (${r.format})`;
  io.stdout.write(`exported ${r.checkpoint} (step ${r.step}) as ${what}: ${r.out} (${r.tensors} ${r.format === 'gguf' ? 'tensors' : 'files'}, ${(r.bytes / 1e6).toFixed(2)} MB)\n`);
  for (const n of r.notes) io.stdout.write(`  note: ${n}\n`);
  return 0;
}
