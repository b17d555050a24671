/**
 * The LLaMA families (`LlamaModel`: Hugging Face LlamaForCausalLM / BitNetForCausalLM names) as
 * llama.cpp architectures:
 *
 * - `bitnet` (llama.cpp's BitNet graph): RMSNorm, RoPE (NEOX, i.e. Hugging Face's rotate_half: q/k
 *   as they are), `attn_sub_norm` before `attn_output`, `ffn_sub_norm` before `ffn_down`, every
 *   projection followed by its optional `*.scale` (f32, one value): the ternary codes are written
 *   with d = 1 and the exact scale there. Its MLP is SwiGLU (SiLU), and its LM head is the token
 *   embedding. A BitNet with squared ReLU (BitNet b1.58 2B4T's `hidden_act: relu2`) is refused:
 *   that graph would compute SiLU instead. `--type i2_s` writes bitnet.cpp's `bitnet-b1.58`
 *   architecture instead (its I2_S tensors carry their scale; bitnet.cpp is not run here).
 * - `llama`: full-precision LLaMA (q/k rows permuted to llama.cpp's interleaved RoPE, as its
 *   convert_hf_to_gguf.py does); a LLaMA with BitLinear projections (being converted to 1.58 bit)
 *   has them as code·scale values.
 */
import type { TokenizerJSON } from '../../data/tokenizer.js';
import { resolveBitLinearOptions } from '../../nn/bitlinear.js';
import type { ResolvedLlamaConfig } from '../../nn/llama.js';
import type { SafetensorsTensor } from '../safetensors.js';
import { type GgmlTypeName, type GgufValue, gguf } from '../gguf/format.js';
import { encodeF16, encodeF32 } from '../gguf/half.js';
import type { GgufTensor } from '../gguf/writer.js';
import { ExportError, type GgufExportOptions, type GgufExportPlan, chooseTernaryType, f32Tensor } from './gguf-gpt.js';
import { ggufNoTokenizerMetadata, ggufTokenizerMetadata } from './gguf-tokenizer.js';
import { GGML_NAME_OF, type TernaryGgufType, encodeTernary, ternarize } from './ternary-weights.js';

/** QAT refusals for a LlamaModel's BitLinear options. */
function refuseLlamaQat(c: ResolvedLlamaConfig, arch: string): void {
  if (!c.bitlinear) return;
  const o = resolveBitLinearOptions(c.bitlinearOptions);
  if (o.activationScale === 'static') throw new ExportError(`gguf: this model quantises activations with static calibrated clips (--activation-scale static); llama.cpp's ${arch} architecture has no per-layer activation clip`);
  if (o.keepInt8.length > 0) throw new ExportError(`gguf: projections kept at 8 bits (--keep-int8 ${o.keepInt8.join(',')}) are not written by this export; retrain without --keep-int8`);
  if (o.ste === 'lsq' || Object.values(o.steByLayer).includes('lsq')) throw new ExportError('gguf: LSQ (--ste lsq) learns its own weight step sizes, which this export does not map to a ternary scale');
  if (o.scale !== 'tensor') throw new ExportError(`gguf: BitLinear scale ${JSON.stringify(o.scale)}; llama.cpp's ${arch} has one scale per projection (per-tensor absmean)`);
  if (o.norm) throw new ExportError(`gguf: BitLinear's built-in RMSNorm has no place in llama.cpp's ${arch} graph`);
}

/**
 * Hugging Face q/k rows (rotate_half pairs (i, i + d/2) in each head) → llama.cpp's interleaved
 * pairs (2i, 2i + 1): gguf row h·d + 2i + c = hf row h·d + c·d/2 + i (convert_hf_to_gguf's `permute`).
 */
export function permuteRopeRows(w: Float32Array, heads: number, headDim: number, cols: number): Float32Array {
  const out = new Float32Array(w.length);
  const half = headDim / 2;
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < half; i++) {
      for (let c = 0; c < 2; c++) {
        const src = (h * headDim + c * half + i) * cols;
        out.set(w.subarray(src, src + cols), (h * headDim + 2 * i + c) * cols);
      }
    }
  }
  return out;
}

/** Plan the GGUF file of a LLaMA-family model. */
export function planLlamaGguf(c: ResolvedLlamaConfig, tensors: ReadonlyMap<string, SafetensorsTensor>, tokenizer: TokenizerJSON | undefined, options: GgufExportOptions = {}): GgufExportPlan {
  const bitnetCpp = options.type === 'i2_s';
  const isBitNet = c.family === 'bitnet' || c.subNorms;
  const arch = isBitNet ? (bitnetCpp ? 'bitnet-b1.58' : 'bitnet') : 'llama';
  if (bitnetCpp && !isBitNet) throw new ExportError("gguf --type i2_s: I2_S is bitnet.cpp's type for BitNet models (sub-norms); this LLaMA exports to llama.cpp's llama with --type tq2_0, tq1_0, f16 or f32");
  if (isBitNet && !c.bitlinear) throw new ExportError('gguf: a BitNet-shaped model without BitLinear projections has no llama.cpp architecture (bitnet expects ternary projections)');
  if (isBitNet && !bitnetCpp) {
    const missing: string[] = [];
    if (c.act !== 'silu') missing.push(`a ${c.act} gated MLP (hidden_act ${c.act}, as in BitNet b1.58 2B4T; llama.cpp's bitnet graph computes SiLU there, so it would load and compute another model — bitnet.cpp's bitnet-b1.58 has relu2: --type i2_s)`);
    if (!c.tiedHead) missing.push('an LM head separate from the token embedding (llama.cpp\'s bitnet uses token_embd as the LM head)');
    if (c.attentionBias || c.mlpBias) missing.push('biases in the projections');
    if (missing.length > 0) throw new ExportError(`gguf: llama.cpp's bitnet architecture cannot express ${missing.join('; ')}`);
  }
  if (!isBitNet) {
    if (c.act !== 'silu') throw new ExportError(`gguf: llama.cpp's llama architecture has a SwiGLU MLP; this model's hidden_act is ${c.act}`);
    if (c.attentionBias || c.mlpBias) throw new ExportError('gguf: biases in the projections (attention_bias / mlp_bias) are not written by this export to llama.cpp\'s llama');
  }
  refuseLlamaQat(c, arch);

  const { dim: C, layers: L, vocabSize: V, heads: Hq, kvHeads: Hkv, headDim: D, hidden: F } = c;
  const tokenizerMetadata = tokenizer ? ggufTokenizerMetadata(tokenizer, V) : ggufNoTokenizerMetadata(arch, V).filter(([k]) => k !== `${arch}.vocab_size`);
  const keepFp = new Set(c.bitlinearOptions.keepFp ?? []);
  const isTernary = (proj: string) => c.bitlinear && !keepFp.has(proj);
  const projs = [
    ['self_attn.q_proj', 'attn_q', Hq * D, C], ['self_attn.k_proj', 'attn_k', Hkv * D, C], ['self_attn.v_proj', 'attn_v', Hkv * D, C],
    ['self_attn.o_proj', 'attn_output', C, Hq * D], ['mlp.gate_proj', 'ffn_gate', F, C], ['mlp.up_proj', 'ffn_up', F, C], ['mlp.down_proj', 'ffn_down', C, F],
  ] as const;
  const rowLengths = new Map<string, number>();
  for (let i = 0; i < L; i++) for (const [p, , , k] of projs) if (isTernary(`model.layers.${i}.${p}`)) rowLengths.set(`model.layers.${i}.${p}.weight`, k);
  const fallback: TernaryGgufType = isBitNet ? 'f16' : 'f32';
  const ternaryType = c.bitlinear ? (bitnetCpp ? chooseTernaryType('i2_s', rowLengths, 'i2_s') : chooseTernaryType(options.type, rowLengths, fallback)) : null;
  const unitScale = arch === 'bitnet'; // codes with d = 1, the scale in `*.scale`
  const dense = options.denseType ?? 'f32';
  const denseType: GgmlTypeName = dense === 'f16' ? 'F16' : 'F32';
  const get = (name: string, shape: number[]) => f32Tensor(tensors, name, shape);
  const out: GgufTensor[] = [];
  const vec = (name: string, data: Float32Array) => out.push({ name, type: 'F32', ne: [data.length], data: encodeF32(data) });
  const denseMat = (gg: string, name: string, rows: number, cols: number, transform?: (w: Float32Array) => Float32Array) => {
    const w = get(name, [rows, cols]);
    out.push({ name: gg, type: denseType, ne: [cols, rows], data: () => (dense === 'f16' ? encodeF16 : encodeF32)(transform ? transform(w) : w) });
  };

  denseMat('token_embd.weight', 'model.embed_tokens.weight', V, C);
  for (let i = 0; i < L; i++) {
    const p = `model.layers.${i}`;
    const b = `blk.${i}`;
    vec(`${b}.attn_norm.weight`, get(`${p}.input_layernorm.weight`, [C]));
    if (isBitNet) vec(`${b}.attn_sub_norm.weight`, get(`${p}.self_attn.attn_sub_norm.weight`, [Hq * D]));
    vec(`${b}.ffn_norm.weight`, get(`${p}.post_attention_layernorm.weight`, [C]));
    if (isBitNet) vec(`${b}.ffn_sub_norm.weight`, get(`${p}.mlp.ffn_sub_norm.weight`, [F]));
    for (const [proj, gg, rows, cols] of projs) {
      const name = `${p}.${proj}`;
      // llama.cpp's llama rotates interleaved pairs: permute q and k rows (bitnet uses NEOX, HF's own order)
      const heads = proj === 'self_attn.q_proj' ? Hq : proj === 'self_attn.k_proj' ? Hkv : 0;
      const transform = !isBitNet && heads > 0 ? (w: Float32Array) => permuteRopeRows(w, heads, D, cols) : undefined;
      if (!isTernary(name) || !ternaryType) {
        denseMat(`${b}.${gg}.weight`, `${name}.weight`, rows, cols, transform);
        continue;
      }
      const w = get(`${name}.weight`, [rows, cols]);
      const t = () => ternarize(transform ? transform(w) : w, rows, cols);
      out.push({ name: `${b}.${gg}.weight`, type: GGML_NAME_OF[ternaryType], ne: [cols, rows], data: () => encodeTernary([t()], ternaryType, unitScale) });
      if (unitScale) out.push({ name: `${b}.${gg}.scale`, type: 'F32', ne: [1], data: () => encodeF32([t().scale]) });
    }
  }
  vec('output_norm.weight', get('model.norm.weight', [C]));
  if (!c.tiedHead) denseMat('output.weight', 'lm_head.weight', V, C);

  const metadata: [string, GgufValue][] = [
    ['general.architecture', gguf.str(arch)],
    ['general.name', gguf.str(options.name ?? `bitnet-training ${c.family}`)],
    [`${arch}.vocab_size`, gguf.u32(V)],
    [`${arch}.context_length`, gguf.u32(c.contextLength)],
    [`${arch}.embedding_length`, gguf.u32(C)],
    [`${arch}.feed_forward_length`, gguf.u32(F)],
    [`${arch}.block_count`, gguf.u32(L)],
    [`${arch}.attention.head_count`, gguf.u32(Hq)],
    [`${arch}.attention.head_count_kv`, gguf.u32(Hkv)],
    [`${arch}.attention.key_length`, gguf.u32(D)],
    [`${arch}.attention.value_length`, gguf.u32(D)],
    [`${arch}.attention.layer_norm_rms_epsilon`, gguf.f32(c.normEps)],
    [`${arch}.rope.freq_base`, gguf.f32(c.ropeTheta)],
    [`${arch}.rope.dimension_count`, gguf.u32(D)],
    ...tokenizerMetadata,
  ];
  const notes: string[] = [];
  if (ternaryType) {
    notes.push(unitScale
      ? `ternary projections as ${GGML_NAME_OF[ternaryType]} codes (d = 1) with the exact f32 scale in each *.scale tensor`
      : ternaryType === 'i2_s' ? "ternary projections as bitnet.cpp's I2_S (x86 layout, scale inside each tensor) for its bitnet-b1.58 architecture; llama.cpp itself cannot load I2_S"
        : `ternary projections as ${GGML_NAME_OF[ternaryType]} values code·scale`);
    notes.push('llama.cpp does not quantise activations to int8 per token as BitLinear does (F16/F32 weights: not at all; TQ types: Q8_K blocks of 256): logits differ slightly');
  } else notes.push('full-precision model: every projection dense');
  if (!tokenizer) notes.push("no tokenizer in the checkpoint: llama.cpp's 'none' vocabulary (feed token ids)");
  return { arch, content: { metadata, tensors: out }, ternaryType, notes };
}
