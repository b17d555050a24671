/**
 * This project's GPT (the default CLI model: LayerNorm, GELU MLP, learned positions, BitLinear
 * projections without the built-in norm) as llama.cpp's `gpt2` architecture:
 *
 *   token_embd, position_embd, blk.N.{attn_norm, attn_qkv (q, k, v rows stacked), attn_output,
 *   ffn_norm, ffn_up, ffn_down} with biases (zeros when the model has none), output_norm, output
 *
 * llama.cpp computes every projection as a plain matmul: a ternary projection is written as its
 * codes times its scale (F32 exact; F16 or TQ1_0/TQ2_0 with an f16 scale d), and llama.cpp does
 * not quantise activations per token to int8 as BitLinear does (with TQ types it quantises them
 * its own way, Q8_K blocks of 256) — the one difference between the two computations. What the
 * graph cannot express is refused: RMSNorm, RoPE, SwiGLU/relu2, BitLinear's built-in RMSNorm,
 * static activation clips, 8-bit projections, LSQ step sizes.
 */
import type { TokenizerJSON } from '../../data/tokenizer.js';
import type { ModelConfig } from '../../train/model.js';
import type { SafetensorsTensor } from '../safetensors.js';
import { type GgmlTypeName, type GgufValue, gguf } from '../gguf/format.js';
import { encodeF16, encodeF32 } from '../gguf/half.js';
import type { GgufContent, GgufTensor } from '../gguf/writer.js';
import { ggufNoTokenizerMetadata, ggufTokenizerMetadata } from './gguf-tokenizer.js';
import { GGML_NAME_OF, type TernaryGgufType, type TernaryWeight, encodeTernary, rowBlock, ternarize } from './ternary-weights.js';

/** An export that the target format or engine cannot express: the message names what is missing. */
export class ExportError extends Error {
  override readonly name = 'ExportError';
}

/** Options of a GGUF export. */
export interface GgufExportOptions {
  /** Ternary projections: a type, or 'auto' (default: TQ2_0 where every row is a multiple of 256, else exact F32/F16). */
  type?: TernaryGgufType | 'auto';
  /** Embeddings and the LM head: 'f32' (default) or 'f16'. Norms and biases are always F32. */
  denseType?: 'f32' | 'f16';
  /** `general.name`. */
  name?: string;
}

/** A planned GGUF file and what each tensor became. */
export interface GgufExportPlan {
  arch: string;
  content: GgufContent;
  /** The type chosen for the ternary projections. */
  ternaryType: TernaryGgufType | null;
  notes: string[];
}

/** Row-major f32 data of `name`, checked against `shape`. */
export function f32Tensor(tensors: ReadonlyMap<string, SafetensorsTensor>, name: string, shape: readonly number[]): Float32Array {
  const t = tensors.get(name);
  if (!t) throw new ExportError(`model.safetensors has no tensor ${name} (the model config needs it)`);
  if (t.dtype !== 'F32' || !(t.data instanceof Float32Array)) throw new ExportError(`${name}: dtype ${t.dtype}; an export reads F32 checkpoints`);
  if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) throw new ExportError(`${name}: shape [${t.shape.join(', ')}], the model config needs [${shape.join(', ')}]`);
  return t.data;
}

/** Refusals shared by the architectures: QAT options llama.cpp has no way to compute. */
export function refuseQatOptions(model: ModelConfig, arch: string): void {
  if (!model.bitlinear) return;
  if (model.activationScale === 'static') throw new ExportError(`gguf: this model quantises activations with static calibrated clips (--activation-scale static); llama.cpp's ${arch} architecture has no per-layer activation clip. Export a model trained with per-token scales`);
  if ((model.keepInt8 ?? []).length > 0) throw new ExportError(`gguf: projections kept at 8 bits (--keep-int8 ${model.keepInt8!.join(',')}) have per-channel int8 weights that this export does not write; retrain without --keep-int8`);
  const lsq = model.ste === 'lsq' || Object.values(model.steByLayer ?? {}).includes('lsq');
  if (lsq) throw new ExportError('gguf: LSQ (--ste lsq) learns its own weight step sizes (…weight_step), which this export does not map to a ternary scale; export a model trained with another --ste');
}

/** The ternary type to use for projections of `rowLengths` (refuses a type whose block does not divide a row). */
export function chooseTernaryType(requested: GgufExportOptions['type'], rowLengths: ReadonlyMap<string, number>, fallback: TernaryGgufType): TernaryGgufType {
  const fits = (t: TernaryGgufType) => [...rowLengths.values()].every((k) => k % rowBlock(t) === 0);
  if (requested === undefined || requested === 'auto') return fits('tq2_0') ? 'tq2_0' : fallback;
  const bad = [...rowLengths].filter(([, k]) => k % rowBlock(requested) !== 0);
  if (bad.length > 0) {
    const [name, k] = bad[0]!;
    throw new ExportError(`gguf --type ${requested}: ${GGML_NAME_OF[requested]} packs rows in blocks of ${rowBlock(requested)} values, but ${name} has rows of ${k}${bad.length > 1 ? ` (and ${bad.length - 1} more tensors)` : ''}; use --type f16 or f32 (exact codes), or a model whose widths are multiples of ${rowBlock(requested)}`);
  }
  return requested;
}

const denseEncoder = (t: 'f32' | 'f16') => (t === 'f16' ? encodeF16 : encodeF32);

/** Plan the GGUF file of a GPT checkpoint (llama.cpp `gpt2` architecture). */
export function planGptGguf(model: ModelConfig, tensors: ReadonlyMap<string, SafetensorsTensor>, tokenizer: TokenizerJSON | undefined, options: GgufExportOptions = {}): GgufExportPlan {
  const arch = 'gpt2';
  const missing: string[] = [];
  if (model.norm !== 'layer') missing.push(`RMSNorm (--norm ${model.norm}; gpt2 has LayerNorm)`);
  if (model.mlp !== 'gelu') missing.push(`a ${model.mlp} MLP (gpt2 has GELU)`);
  if (model.pos !== 'learned') missing.push(`${model.pos} positions (gpt2 has learned positions)`);
  if (model.bitlinear && (model.bitlinearNorm ?? true)) missing.push("BitLinear's built-in RMSNorm before every projection (--bitlinear-norm; train with --bitlinear-norm=false, the CLI default)");
  if (missing.length > 0) throw new ExportError(`gguf: llama.cpp's gpt2 architecture, the one with this GPT's LayerNorm, GELU and learned positions, cannot express ${missing.join('; ')}`);
  refuseQatOptions(model, arch);
  if (options.type === 'i2_s') throw new ExportError("gguf --type i2_s: I2_S is bitnet.cpp's type for its BitNet architecture (bitnet-b1.58); this GPT exports to llama.cpp's gpt2 with --type tq2_0, tq1_0, f16 or f32");

  const { dim: C, layers: L, contextLength: T, vocabSize: V } = model;
  const tokenizerMetadata = tokenizer ? ggufTokenizerMetadata(tokenizer, V) : ggufNoTokenizerMetadata(arch, V);
  const H = 4 * C; // gelu MLP hidden width (resolveGPTConfig)
  const keepFp = new Set(model.keepFp ?? []);
  const isTernary = (proj: string) => model.bitlinear && !keepFp.has(proj);
  const rowLengths = new Map<string, number>();
  for (let i = 0; i < L; i++) {
    const p = `model.layers.${i}`;
    for (const [proj, k] of [['self_attn.q_proj', C], ['self_attn.o_proj', C], ['mlp.up_proj', C], ['mlp.down_proj', H]] as const) {
      if (isTernary(`${p}.${proj}`)) rowLengths.set(`${p}.${proj}.weight`, k);
    }
  }
  const ternaryType = model.bitlinear ? chooseTernaryType(options.type, rowLengths, 'f32') : null;
  const dense = options.denseType ?? 'f32';
  const get = (name: string, shape: number[]) => f32Tensor(tensors, name, shape);
  const bias = (name: string, n: number) => (model.bias ? get(name, [n]) : new Float32Array(n));
  const out: GgufTensor[] = [];
  const vec = (name: string, data: Float32Array) => out.push({ name, type: 'F32', ne: [data.length], data: encodeF32(data) });
  const mat = (name: string, rows: number, cols: number, data: () => Uint8Array, type: GgmlTypeName = dense === 'f16' ? 'F16' : 'F32') => out.push({ name, type, ne: [cols, rows], data });

  const denseMat = (gg: string, name: string, rows: number, cols: number) => {
    const w = get(name, [rows, cols]); // checked now, encoded when written
    mat(gg, rows, cols, () => denseEncoder(dense)(w));
  };
  denseMat('token_embd.weight', 'model.embed_tokens.weight', V, C);
  denseMat('position_embd.weight', 'model.embed_positions.weight', T, C);
  // a projection (or q/k/v stacked): ternary codes and scale, or dense f32 for --keep-fp ones
  const projection = (gg: string, names: string[], rows: number[], cols: number) => {
    const total = rows.reduce((a, b) => a + b, 0);
    const ternary = names.every((n) => isTernary(n));
    const latent = names.map((n, j) => get(`${n}.weight`, [rows[j]!, cols])); // checked now, encoded when written
    if (ternary && ternaryType) {
      mat(gg, total, cols, () => encodeTernary(latent.map((w, j) => ternarize(w, rows[j]!, cols)), ternaryType, false), GGML_NAME_OF[ternaryType]);
      return;
    }
    mat(gg, total, cols, () => {
      const parts = names.map((n, j) => (isTernary(n) ? ternarize(latent[j]!, rows[j]!, cols) : latent[j]!));
      const values = new Float32Array(total * cols);
      let at = 0;
      for (const p of parts as (TernaryWeight | Float32Array)[]) {
        if (p instanceof Float32Array) values.set(p, at);
        else for (let i = 0; i < p.codes.length; i++) values[at + i] = p.codes[i]! * p.scale;
        at += p instanceof Float32Array ? p.length : p.codes.length;
      }
      return encodeF32(values);
    }, 'F32');
  };
  for (let i = 0; i < L; i++) {
    const p = `model.layers.${i}`;
    const b = `blk.${i}`;
    vec(`${b}.attn_norm.weight`, get(`${p}.input_layernorm.weight`, [C]));
    vec(`${b}.attn_norm.bias`, bias(`${p}.input_layernorm.bias`, C));
    projection(`${b}.attn_qkv.weight`, ['q', 'k', 'v'].map((x) => `${p}.self_attn.${x}_proj`), [C, C, C], C);
    const qkvBias = new Float32Array(3 * C);
    if (model.bias) ['q', 'k', 'v'].forEach((x, j) => qkvBias.set(get(`${p}.self_attn.${x}_proj.bias`, [C]), j * C));
    vec(`${b}.attn_qkv.bias`, qkvBias);
    projection(`${b}.attn_output.weight`, [`${p}.self_attn.o_proj`], [C], C);
    vec(`${b}.attn_output.bias`, bias(`${p}.self_attn.o_proj.bias`, C));
    vec(`${b}.ffn_norm.weight`, get(`${p}.post_attention_layernorm.weight`, [C]));
    vec(`${b}.ffn_norm.bias`, bias(`${p}.post_attention_layernorm.bias`, C));
    projection(`${b}.ffn_up.weight`, [`${p}.mlp.up_proj`], [H], C);
    vec(`${b}.ffn_up.bias`, bias(`${p}.mlp.up_proj.bias`, H));
    projection(`${b}.ffn_down.weight`, [`${p}.mlp.down_proj`], [C], H);
    vec(`${b}.ffn_down.bias`, bias(`${p}.mlp.down_proj.bias`, C));
  }
  vec('output_norm.weight', get('model.norm.weight', [C]));
  vec('output_norm.bias', bias('model.norm.bias', C));
  if (!model.tiedHead) denseMat('output.weight', 'lm_head.weight', V, C);

  const metadata: [string, GgufValue][] = [
    ['general.architecture', gguf.str(arch)],
    ['general.name', gguf.str(options.name ?? 'bitnet-training GPT')],
    [`${arch}.context_length`, gguf.u32(T)],
    [`${arch}.embedding_length`, gguf.u32(C)],
    [`${arch}.feed_forward_length`, gguf.u32(H)],
    [`${arch}.block_count`, gguf.u32(L)],
    [`${arch}.attention.head_count`, gguf.u32(model.heads)],
    [`${arch}.attention.head_count_kv`, gguf.u32(model.heads)],
    [`${arch}.attention.layer_norm_epsilon`, gguf.f32(1e-5)],
    ...tokenizerMetadata,
  ];
  const notes = [
    ternaryType === 'f32' || ternaryType === 'f16'
      ? `ternary projections as ${ternaryType.toUpperCase()} values code·scale (rows of ${[...new Set(rowLengths.values())].join('/')} are not multiples of 256, so TQ2_0/TQ1_0 do not fit)`
      : ternaryType ? `ternary projections as ${GGML_NAME_OF[ternaryType]} with the scale as each block's f16 d` : 'full-precision model: every projection dense',
    'llama.cpp does not quantise activations to int8 per token (BitLinear does): logits differ slightly',
  ];
  return { arch, content: { metadata, tensors: out }, ternaryType, notes };
}
