/**
 * Sizes, layouts and the weight-scale `group` of the BitNet b1.58 quantizers and packed
 * ternary kernels (wasm `assembly/quant.ts`, `assembly/ternary.ts`; js `src/backend/js/`).
 * All sizes in bytes for the wasm kernels, which are also element counts for the js kernels
 * (one int8 / packed byte per element). See `./README.md`.
 */

/** How many weights share one absmean scale. */
export type ScaleGranularity = 'tensor' | 'channel' | 'group';

/** Raised for a shape or scale layout the quantizers or kernels cannot take. */
export class QuantLayoutError extends Error {
  override name = 'QuantLayoutError';
}

/**
 * The `group` integer of a weight W (N,K): the number of consecutive row-major elements that
 * share a scale. `'tensor'` -> N*K (one scale), `'channel'` -> K (one per output row),
 * `'group'` -> `groupSize` input elements within a row (K % groupSize == 0).
 *
 * @example
 * weightScaleGroup(384, 128, 'channel');     // 128 (384 scales)
 * weightScaleGroup(384, 128, 'group', 32);   // 32 (1536 scales)
 */
export function weightScaleGroup(N: number, K: number, granularity: ScaleGranularity = 'tensor', groupSize?: number): number {
  checkShape('weightScaleGroup', N, K);
  if (granularity === 'tensor') return N * K;
  if (granularity === 'channel') return K;
  if (granularity === 'group') {
    if (groupSize === undefined || !Number.isInteger(groupSize) || groupSize <= 0 || K % groupSize !== 0) {
      throw new QuantLayoutError(`weightScaleGroup: group size ${String(groupSize)} for W (${N}, ${K}) must be a positive divisor of K = ${K} (try ${divisorHint(K)})`);
    }
    return groupSize;
  }
  throw new QuantLayoutError(`weightScaleGroup: granularity must be 'tensor', 'channel' or 'group', got ${String(granularity)}`);
}

/** Number of f32 scales of W (N,K) under `group`: N*K / group. */
export function weightScaleCount(N: number, K: number, group: number): number {
  checkWeightScaleGroup('weightScaleCount', N, K, group);
  return (N * K) / group;
}

/**
 * Throws unless `group` is N*K, K, or a divisor G of K; with `packedKernels`, a per-group G
 * must also be a multiple of 16 (the panel width of `ternary_forward` / `ternary_backward_dx`).
 * A block of whole rows, `group = R*K` with `N % R == 0`, is also accepted (every kernel indexes
 * scales by `floor((n*K+k)/group)`): BitLinear uses it for one scale per stacked q/k/v part.
 */
export function checkWeightScaleGroup(op: string, N: number, K: number, group: number, packedKernels = false): void {
  checkShape(op, N, K);
  const rowBlock = group > K && group % K === 0 && N % (group / K) === 0;
  const ok = Number.isInteger(group) && group > 0 && (group === N * K || group === K || rowBlock || (group < K && K % group === 0));
  if (!ok) {
    throw new QuantLayoutError(`${op}: weight scale group ${group} for W (${N}, ${K}) must be ${N * K} (per tensor), ${K} (per channel), a divisor of ${K} (per group) or R*${K} with R dividing ${N} (per block of rows)`);
  }
  if (packedKernels && group < K && group % 16 !== 0) {
    throw new QuantLayoutError(`${op}: per-group scales of ${group} elements for W (${N}, ${K}): the packed kernels need a multiple of 16 (use 16, 32, 64, ... or per-channel scales)`);
  }
}

/** Row stride of int8 activations xq (M, K8): K rounded up to a multiple of 8 (padding is 0). */
export function activationRowBytes(K: number): number {
  return (K + 7) & ~7;
}

/** Bytes of int8 activations xq (M, K8). The per-row scales sx take M f32 more. */
export function int8ActivationBytes(M: number, K: number): number {
  return M * activationRowBytes(K);
}

/** Rows of the 2-bit packed layout of W (N,K): ceil(N/4); each holds K bytes. */
export function packedTernaryRows(N: number): number {
  return (N + 3) >> 2;
}

/** Bytes of W (N,K) packed 2 bits a weight: ceil(N/4) * K. */
export function packedTernaryBytes(N: number, K: number): number {
  return packedTernaryRows(N) * K;
}

/** Scratch bytes `ternary_forward` needs per caller (per thread): 10 * K8. */
export function ternaryForwardScratchBytes(K: number): number {
  return 10 * activationRowBytes(K);
}

/** Scratch bytes `ternary_backward_dx` needs per caller (per thread): 64 * N. */
export function ternaryBackwardDxScratchBytes(N: number): number {
  return 64 * N;
}

/** Bytes of n trits packed 5 a byte (base 3): ceil(n/5). */
export function trits5Bytes(n: number): number {
  return Math.ceil(n / 5);
}

function checkShape(op: string, N: number, K: number): void {
  if (!(Number.isInteger(N) && N > 0 && Number.isInteger(K) && K > 0)) {
    throw new QuantLayoutError(`${op}: W (${N}, ${K}) must have positive integer dimensions`);
  }
}

function divisorHint(K: number): string {
  const d = [16, 32, 64, 128].filter((g) => g <= K && K % g === 0);
  return d.length > 0 ? d.join(', ') : `1 or ${K}`;
}
