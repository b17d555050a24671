/**
 * A LLaMA-family model as a Hugging Face directory that transformers loads:
 *
 * - `hf`: `config.json` (`hfConfigOf`: `LlamaForCausalLM`, or `BitNetForCausalLM` with
 *   `quantization_config` online / autobitlinear — the trainable `-bf16` form), `model.safetensors`
 *   with the latent (master) weights in BF16 (default for BitNet, as transformers trains it) or
 *   F32 (default for an FP LLaMA; every f32 value round-trips bit for bit), and the tokenizer files.
 * - `hf-packed`: BitNet's inference form, offline / `bitlinear`: every projection's ternary codes
 *   packed 4 a byte along dim 0 (U8 (out/4, in), row block i in bits 2i..2i+1, value + 1 — our I2
 *   layout) and `weight_scale` = s = 1/mean|W| in BF16 (transformers' BitLinear divides by it),
 *   the codes quantised with that stored s (as transformers' own conversion does);
 *   norms and embeddings BF16.
 *
 * A tied LM head writes no `lm_head.weight`. Tokenizers: a Hugging Face one (`tokenizer.json`,
 * `tokenizer_config.json`) is written back as loaded; char/byte tokenizers have no transformers
 * form, so none is written (the export says so).
 */
import type { TokenizerJSON } from '../../data/tokenizer.js';
import { hfConfigOf } from '../../nn/hf-config.js';
import type { ResolvedLlamaConfig } from '../../nn/llama.js';
import { packTernaryI2, quantizeTernaryWeights, roundHalfEven } from '../../quant/index.js';
import type { FileSystem } from '../../runtime/fs-types.js';
import { joinPath } from '../../runtime/fs-types.js';
import { bf16BitsToF32, encodeBf16, f32ToBf16Bits } from '../gguf/half.js';
import { type SafetensorsTensor, encodeSafetensors } from '../safetensors.js';
import { ExportError, f32Tensor } from './gguf-gpt.js';

/** Options of an HF export. */
export interface HfExportOptions {
  form: 'hf' | 'hf-packed';
  /** `hf`: dtype of the weights. Default 'bf16' for a BitLinear model, 'f32' otherwise. */
  dtype?: 'bf16' | 'f32';
}

/** The files of an HF directory: name → bytes. */
export type HfExportFiles = [name: string, data: Uint8Array | string][];

const PROJECTIONS = ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.o_proj', 'mlp.gate_proj', 'mlp.up_proj', 'mlp.down_proj'] as const;

/** Every parameter name of a LlamaModel of config `c`, with its shape. */
function parameterShapes(c: ResolvedLlamaConfig): [string, number[]][] {
  const { dim: C, hidden: F, heads: Hq, kvHeads: Hkv, headDim: D } = c;
  const out: [string, number[]][] = [['model.embed_tokens.weight', [c.vocabSize, C]], ['model.norm.weight', [C]]];
  for (let i = 0; i < c.layers; i++) {
    const p = `model.layers.${i}`;
    out.push([`${p}.input_layernorm.weight`, [C]], [`${p}.post_attention_layernorm.weight`, [C]]);
    const shapes: Record<(typeof PROJECTIONS)[number], [number, number]> = {
      'self_attn.q_proj': [Hq * D, C], 'self_attn.k_proj': [Hkv * D, C], 'self_attn.v_proj': [Hkv * D, C], 'self_attn.o_proj': [C, Hq * D],
      'mlp.gate_proj': [F, C], 'mlp.up_proj': [F, C], 'mlp.down_proj': [C, F],
    };
    for (const proj of PROJECTIONS) {
      out.push([`${p}.${proj}.weight`, shapes[proj]]);
      const bias = proj.startsWith('self_attn') ? c.attentionBias : c.mlpBias;
      if (bias) out.push([`${p}.${proj}.bias`, [shapes[proj][0]]]);
    }
    if (c.subNorms) out.push([`${p}.self_attn.attn_sub_norm.weight`, [Hq * D]], [`${p}.mlp.ffn_sub_norm.weight`, [F]]);
  }
  if (!c.tiedHead) out.push(['lm_head.weight', [c.vocabSize, C]]);
  return out;
}

const isProjectionWeight = (name: string) => /\.(q|k|v|o|gate|up|down)_proj\.weight$/.test(name);

/** The files of the HF directory of a LLaMA-family model (nothing is written). */
export function hfExportFiles(c: ResolvedLlamaConfig, tensors: ReadonlyMap<string, SafetensorsTensor>, tokenizer: TokenizerJSON | undefined, options: HfExportOptions): { files: HfExportFiles; notes: string[] } {
  const notes: string[] = [];
  const packed = options.form === 'hf-packed';
  const o = c.bitlinearOptions;
  if (c.family === 'bitnet' && !c.subNorms) throw new ExportError('export hf: a bitnet-family model without sub-norms has no BitNetForCausalLM form');
  if (c.family === 'llama' && c.subNorms) throw new ExportError('export hf: a llama-family model with sub-norms has no LlamaForCausalLM form');
  if (c.bitlinear) {
    if (o.norm) throw new ExportError("export hf: BitLinear's built-in RMSNorm has no place in transformers' BitLinear (BitNet's sub-norms are separate layers)");
    if ((o.scale ?? 'tensor') !== 'tensor') throw new ExportError(`export hf: BitLinear scale ${JSON.stringify(o.scale)}; transformers' BitNet has one absmean scale per projection`);
    if (o.activationScale === 'static') throw new ExportError('export hf: static activation clips (--activation-scale static) have no place in transformers\' BitLinear (per-token absmax)');
    if ((o.keepInt8 ?? []).length > 0 || (o.keepFp ?? []).length > 0) throw new ExportError(`export hf: mixed precision (--keep-fp / --keep-int8: ${[...(o.keepFp ?? []), ...(o.keepInt8 ?? [])].join(', ')}) has no place in transformers' BitNet, where every projection is a BitLinear`);
    if (o.ste === 'lsq' || Object.values(o.steByLayer ?? {}).includes('lsq')) throw new ExportError('export hf: LSQ (--ste lsq) weight step sizes have no transformers form');
  }
  if (packed && !c.bitlinear) throw new ExportError('export hf-packed: a full-precision model has no packed ternary form; use --format hf');
  const dtype = options.dtype ?? (c.bitlinear ? 'bf16' : 'f32');
  const denseDtype = packed ? 'bf16' : dtype; // the packed form keeps norms and embeddings in BF16, as transformers writes it
  const dense = (t: Float32Array, shape: number[]): SafetensorsTensor => (denseDtype === 'f32' ? { dtype: 'F32', shape, data: t } : { dtype: 'BF16', shape, data: encodeBf16(t) });
  const out = new Map<string, SafetensorsTensor>();
  for (const [name, shape] of parameterShapes(c)) {
    const w = f32Tensor(tensors, name, shape);
    if (packed && isProjectionWeight(name)) {
      const [N, K] = shape as [number, number];
      if (N % 4 !== 0) throw new ExportError(`export hf-packed: ${name} has ${N} rows; the packed form stores 4 rows a byte along dim 0 and needs a multiple of 4`);
      // s = 1/mean|W| as stored (BF16), and the codes quantised with that stored scale, so that the
      // file is self-consistent: y = (xq·Wq)/(s_x·weight_scale) with the Wq that weight_scale made
      const s = bf16BitsToF32(f32ToBf16Bits(quantizeTernaryWeights(w, N, K).scales[0]!));
      const codes = Int8Array.from(w, (x) => Math.max(-1, Math.min(1, roundHalfEven(Math.fround(x * s)))));
      // I2 is transformers' pack_weights layout: row block i of (out/4) rows in bits 2i..2i+1
      out.set(name, { dtype: 'U8', shape: [N / 4, K], data: packTernaryI2(codes, N, K) });
      out.set(name.replace(/\.weight$/, '.weight_scale'), { dtype: 'BF16', shape: [1], data: encodeBf16([s]) });
    } else out.set(name, dense(w, shape));
  }
  const extra = [...tensors.keys()].filter((n) => !out.has(n) && !(packed && n.endsWith('.weight_scale')));
  if (extra.length > 0) throw new ExportError(`export hf: the checkpoint has tensors the ${c.family} model does not: ${extra.slice(0, 5).join(', ')}${extra.length > 5 ? ', ...' : ''}`);
  const quantization = c.bitlinear ? (packed ? { mode: 'offline' as const, linearClass: 'bitlinear' as const } : { mode: 'online' as const, linearClass: 'autobitlinear' as const }) : null;
  const hfTok = tokenizer?.kind === 'hf' ? tokenizer : undefined;
  const cfgTok = (hfTok?.config ?? {}) as Record<string, unknown>;
  const idOf = (key: string): number | null => {
    const tok = cfgTok[key];
    const text = typeof tok === 'string' ? tok : tok && typeof tok === 'object' ? (tok as { content?: string }).content : undefined;
    if (!text || !hfTok) return null;
    const added = (hfTok.tokenizer.added_tokens ?? []) as { id: number; content: string }[];
    const hit = added.find((a) => a.content === text);
    if (hit) return hit.id;
    const vocab = ((hfTok.tokenizer.model ?? {}) as { vocab?: Record<string, number> }).vocab;
    return vocab && typeof vocab[text] === 'number' ? vocab[text]! : null;
  };
  const config = hfConfigOf(c, { quantization, torchDtype: packed || dtype === 'bf16' ? 'bfloat16' : 'float32', bosTokenId: idOf('bos_token'), eosTokenId: idOf('eos_token') });
  const files: HfExportFiles = [
    ['config.json', JSON.stringify(config, null, 2) + '\n'],
    ['model.safetensors', encodeSafetensors(out, { format: 'pt' })],
  ];
  if (hfTok) {
    files.push(['tokenizer.json', JSON.stringify(hfTok.tokenizer)]);
    files.push(['tokenizer_config.json', JSON.stringify(hfTok.config, null, 2) + '\n']);
  } else notes.push(tokenizer ? `the checkpoint's ${tokenizer.kind} tokenizer has no transformers form: no tokenizer files written (token ids are the model's)` : 'no tokenizer in the checkpoint: no tokenizer files written');
  if (c.bitlinear && !packed && dtype === 'bf16') notes.push('latent weights rounded to BF16 (transformers\' -bf16 form); --dtype f32 keeps them bit for bit');
  return { files, notes };
}

/** Write the files of an HF export into `dir` (created; every file through a temporary name). */
export async function writeHfDirectory(fs: FileSystem, dir: string, files: HfExportFiles): Promise<number> {
  await fs.mkdirp(dir);
  let bytes = 0;
  for (const [name, data] of files) {
    await fs.writeFileAtomic(joinPath(dir, name), data);
    bytes += typeof data === 'string' ? new TextEncoder().encode(data).length : data.length;
  }
  return bytes;
}
