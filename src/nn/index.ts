/** Neural-network modules: layers and the GPT model. */
export { Linear, denseLinear, type LinearFactory, type LinearLayer, type LinearSpec } from './linear.js';
export { LayerNorm, RMSNorm, type NormLayer } from './norm.js';
export { Embedding } from './embedding.js';
export { RotaryEmbedding } from './rope.js';
export { Block, CausalSelfAttention, MLP, makeNorm, type BlockConfig } from './block.js';
export { GPT, resolveGPTConfig, type GPTConfig, type GPTOutput, type ResolvedGPTConfig } from './gpt.js';
// BitNet b1.58
export {
  BitLinear, bitLinearFactory, bitLinearLayerName, bitLinearNormName, checkKeepLists, projectionNames, resolveBitLinearOptions,
  type BitLinearOptions, type BitLinearScale, type ResolvedBitLinearOptions,
} from './bitlinear.js';
// LLaMA-family models (Hugging Face LlamaForCausalLM, BitNetForCausalLM) and the config.json mapping
export { DecoderBlock, GatedMLP, GroupedQueryAttention, type DecoderBlockConfig, type NamedProjection } from './block.js';
export { LlamaModel, bitnetDefaults, resolveLlamaConfig, type LlamaConfig, type LlamaFamily, type LlamaOutput, type ResolvedLlamaConfig } from './llama.js';
export { createBitNet, latentFromTernary, type BitNetConfig } from './bitnet.js';
export { HfConfigError, hfConfigOf, llamaConfigFromHf, type HfConfigOptions, type HfModelSpec, type HfQuantization } from './hf-config.js';
