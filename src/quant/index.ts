/**
 * BitNet b1.58 quantisation: absmean ternary weights, absmax int8 activations, the packed
 * storage formats and the layout helpers of the packed kernels. Numerics and layouts:
 * `./README.md`; the kernels themselves live in the backends (`assembly/quant.ts`,
 * `assembly/ternary.ts`, and their js twins in `src/backend/js/`).
 */
import { absmeanScales, ternaryPack } from '../backend/js/quant.js';
import { checkWeightScaleGroup, packedTernaryBytes, QuantLayoutError, weightScaleCount } from './layout.js';

export * from './layout.js';
export * from './packing.js';
export { roundHalfEven } from '../backend/js/quant.js';

/** Latent weights quantised and packed: what a checkpoint export or the wasm kernels take. */
export interface PackedTernary {
  /** W (N,K), 2 bits a weight, `ceil(N/4) * K` bytes (I2 layout). */
  packed: Uint8Array;
  /** f32 multipliers s (dequantised weight = Wq / s), `N*K/group` of them. */
  scales: Float32Array;
  N: number;
  K: number;
  group: number;
}

/**
 * Absmean-quantise latent f32 weights w (N,K) and pack them (plain TypeScript, same bits as
 * the wasm kernels `absmean_scales` + `ternary_pack`).
 *
 * @example
 * const { packed, scales } = quantizeTernaryWeights(w, 384, 128);            // per tensor
 * const perRow = quantizeTernaryWeights(w, 384, 128, weightScaleGroup(384, 128, 'channel'));
 */
export function quantizeTernaryWeights(w: Float32Array | Float64Array, N: number, K: number, group = N * K): PackedTernary {
  checkWeightScaleGroup('quantizeTernaryWeights', N, K, group);
  if (w.length < N * K) throw new QuantLayoutError(`quantizeTernaryWeights: w has ${w.length} elements, W (${N}, ${K}) needs ${N * K}`);
  const scales = new Float32Array(weightScaleCount(N, K, group));
  absmeanScales(scales, w, N * K, group, 0, scales.length);
  const packed = new Uint8Array(packedTernaryBytes(N, K));
  ternaryPack(packed, w, scales, N, K, group, 0, (N + 3) >> 2);
  return { packed, scales, N, K, group };
}
