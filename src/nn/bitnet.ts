/**
 * The `bitnet` family: Hugging Face's `BitNetForCausalLM`, the architecture of BitNet b1.58
 * 2B4T — the LLaMA wiring (`LlamaModel`, llama.ts) with every attention/MLP projection a
 * BitLinear (per-tensor absmean ternary weights, per-token absmax int8 activations, no norm of
 * its own), squared-ReLU gated MLP, RMSNorm `attn_sub_norm` before o_proj and `ffn_sub_norm`
 * before down_proj, RoPE θ 500000, tied embeddings; embeddings and LM head dense.
 *
 * Where quantisation sits, as in transformers' integrations/bitnet.py (`AutoBitLinear` online):
 * `y = linear(actquant(x), weightquant(W))`, `weightquant(W) = clamp(round(W·s), -1, 1)/s`,
 * `s = 1/max(mean|W|, 1e-5)` over the whole tensor, `actquant(x) = clamp(round(x·s_x), -128, 127)/s_x`,
 * `s_x = 127/max(max|x|, 1e-5)` per token. Our BitLinear computes the same product as one int8 ×
 * ternary matmul rescaled by `1/(s_x·s)`.
 */
import { type LlamaConfig, LlamaModel } from './llama.js';

/** A BitNet model's config: a `LlamaConfig` whose family is `'bitnet'`. */
export type BitNetConfig = Omit<LlamaConfig, 'family'>;

/**
 * Build a `BitNetForCausalLM`-shaped model (not yet materialized).
 *
 * @example
 * // BitNet b1.58 2B4T: createBitNet({ vocabSize: 128256, contextLength: 4096, layers: 30, heads: 20, kvHeads: 5, dim: 2560, hidden: 6912 })
 * const model = createBitNet({ vocabSize: 97, contextLength: 128, layers: 2, heads: 4, kvHeads: 2, dim: 64, hidden: 160 }).materialize(heap, rng);
 */
export function createBitNet(config: BitNetConfig): LlamaModel {
  return new LlamaModel({ ...config, family: 'bitnet' });
}

/**
 * Latent f32 weights whose per-tensor absmean quantisation is exactly the given ternary codes
 * with weight scale `s` (`Wq = clamp(round(W·s), -1, 1)`, dequantised `Wq/s`): `W = Wq·c` with
 * `c = N/(nnz·s)`, so that `mean|W| = 1/s` and `round(Wq·N/nnz) = Wq` (N/nnz ≥ 1). This is how a
 * packed (inference-form) checkpoint becomes a trainable BitLinear that computes what it did.
 * `codes` holds -1, 0, +1; writes `out` (same length) and returns it.
 */
export function latentFromTernary(codes: ArrayLike<number>, s: number, out: Float32Array): Float32Array {
  if (!(Number.isFinite(s) && s > 0)) throw new Error(`latentFromTernary: the weight scale must be a finite number > 0, got ${s}`);
  let nnz = 0;
  for (let i = 0; i < codes.length; i++) {
    const c = codes[i]!;
    if (c !== -1 && c !== 0 && c !== 1) throw new Error(`latentFromTernary: code ${i} is ${c}, not -1, 0 or +1`);
    if (c !== 0) nnz++;
  }
  const c = nnz === 0 ? 0 : codes.length / (nnz * s);
  for (let i = 0; i < codes.length; i++) out[i] = codes[i]! * c;
  return out;
}
