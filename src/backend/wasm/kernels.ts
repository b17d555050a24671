/**
 * The wasm kernel module's exports, as the backend calls them: every kernel takes byte offsets,
 * sizes and hyperparameters, then the range `[r0, r1)` of output rows (elements, chunks or
 * columns) it computes. See assembly/ for each kernel's shapes.
 */

/** A kernel export: its arguments then `r0, r1`. */
export type Kernel = (...args: number[]) => void;

/** Names of the exported kernels the backend dispatches (all end with a range). */
export type KernelName =
  | 'gemm_nn' | 'gemm_nt' | 'gemm_tn'
  | 'add_f32' | 'mul_f32' | 'fill_f32' | 'scale_f32' | 'axpy_f32' | 'mul_accumulate_f32'
  | 'sum_chunks' | 'sum_squares_chunks' | 'add_bias' | 'bias_backward'
  | 'layernorm_forward' | 'layernorm_backward_dinp' | 'layernorm_backward_dparams'
  | 'rmsnorm_forward' | 'rmsnorm_backward_dinp' | 'rmsnorm_backward_dweight'
  | 'gelu_forward' | 'gelu_backward' | 'silu_forward' | 'silu_backward'
  | 'attention_forward' | 'attention_backward'
  | 'embedding_forward' | 'embedding_backward'
  | 'crossentropy_forward' | 'crossentropy_backward'
  | 'adamw_step' | 'clip_scale' | 'adamw8bit_step'
  // BitNet b1.58: quantizers and packed ternary matmuls (BitLinear)
  | 'absmean_scales' | 'ternary_pack' | 'ternary_dequantize' | 'quantize_activations' | 'dequantize_activations'
  | 'ternary_forward' | 'ternary_backward_dx' | 'ste_clipped_weights' | 'ste_clipped_activations'
  // squared ReLU and rotary position embedding (mlp: 'relu2', pos: 'rope')
  | 'relu2_forward' | 'relu2_backward' | 'rope_table' | 'rope_forward' | 'rope_backward' | 'rope_table_scaled'
  // QAT: quantisation-aware training (assembly/qat.ts)
  | 'qat_lerp' | 'qat_ste_weights' | 'qat_lsq_scales' | 'qat_lsq_step_grad' | 'qat_quantize_activations_static'
  | 'qat_copy_columns' | 'kd_forward' | 'kd_backward' | 'qat_grid_penalty' | 'qat_grid_penalty_backward' | 'qat_clamp_weights'
  // PEFT (assembly/peft.ts): tanh of the prefix-tuning MLP
  | 'tanh_forward' | 'tanh_backward'
  // QLoRA: NF4 matmuls (assembly/nf4.ts)
  | 'nf4_forward' | 'nf4_backward_dx';

export const KERNEL_NAMES: readonly KernelName[] = [
  'gemm_nn', 'gemm_nt', 'gemm_tn',
  'add_f32', 'mul_f32', 'fill_f32', 'scale_f32', 'axpy_f32', 'mul_accumulate_f32',
  'sum_chunks', 'sum_squares_chunks', 'add_bias', 'bias_backward',
  'layernorm_forward', 'layernorm_backward_dinp', 'layernorm_backward_dparams',
  'rmsnorm_forward', 'rmsnorm_backward_dinp', 'rmsnorm_backward_dweight',
  'gelu_forward', 'gelu_backward', 'silu_forward', 'silu_backward',
  'attention_forward', 'attention_backward',
  'embedding_forward', 'embedding_backward',
  'crossentropy_forward', 'crossentropy_backward',
  'adamw_step', 'clip_scale', 'adamw8bit_step',
  // BitNet b1.58: quantizers and packed ternary matmuls (BitLinear)
  'absmean_scales', 'ternary_pack', 'ternary_dequantize', 'quantize_activations', 'dequantize_activations',
  'ternary_forward', 'ternary_backward_dx', 'ste_clipped_weights', 'ste_clipped_activations',
  // squared ReLU and rotary position embedding (mlp: 'relu2', pos: 'rope')
  'relu2_forward', 'relu2_backward', 'rope_table', 'rope_forward', 'rope_backward', 'rope_table_scaled',
  // QAT: quantisation-aware training (assembly/qat.ts)
  'qat_lerp', 'qat_ste_weights', 'qat_lsq_scales', 'qat_lsq_step_grad', 'qat_quantize_activations_static',
  'qat_copy_columns', 'kd_forward', 'kd_backward', 'qat_grid_penalty', 'qat_grid_penalty_backward', 'qat_clamp_weights',
  // PEFT (assembly/peft.ts): tanh of the prefix-tuning MLP
  'tanh_forward', 'tanh_backward',
  // QLoRA: NF4 matmuls (assembly/nf4.ts)
  'nf4_forward', 'nf4_backward_dx',
];

/** Everything the backend reads from an instance's exports. */
export interface KernelExports {
  kernels: Record<KernelName, Kernel>;
  /** Byte offset where the module's static data ends. */
  heapBase: number;
  /** Elements per reduction chunk of `sum_chunks` / `sum_squares_chunks`. */
  sumChunk: number;
}

/** Look up and check the exports of an instantiated kernel module. */
export function kernelExports(instance: WebAssembly.Instance): KernelExports {
  const e = instance.exports as Record<string, unknown>;
  const kernels = {} as Record<KernelName, Kernel>;
  for (const name of KERNEL_NAMES) {
    if (typeof e[name] !== 'function') {
      throw new Error(`wasm backend: the kernel module has no export '${name}' (rebuild it with npm run build:wasm)`);
    }
    kernels[name] = e[name] as Kernel;
  }
  const heapBase = (e.heap_base as () => number)();
  const sumChunk = (e.SUM_CHUNK as WebAssembly.Global).value as number;
  return { kernels, heapBase, sumChunk };
}

/** The imports a kernel module needs: `env.memory`, and a throwing `env.abort` should a build import it. */
export function kernelImports(module: WebAssembly.Module, memory: WebAssembly.Memory): WebAssembly.Imports {
  const imports: Record<string, Record<string, WebAssembly.ImportValue>> = {};
  for (const imp of WebAssembly.Module.imports(module)) {
    imports[imp.module] ??= {};
    imports[imp.module][imp.name] = imp.kind === 'memory' ? memory : () => {
      throw new Error(`wasm kernel aborted (${imp.module}.${imp.name})`);
    };
  }
  return imports;
}
