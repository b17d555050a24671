/**
 * Argument checks of the BitNet b1.58 kernels of `Backend` (quantizers and packed ternary
 * matmuls), shared by the CPU backends; the general rules are in `./checks.ts`. Byte buffers
 * (int8 activations, packed weights, scratch) are checked over the `byteSlots` they occupy.
 */
import { BackendError, type Ptr } from './backend.js';
import { checkDim, checkSpan, type MemoryExtent } from './checks.js';
import {
  activationRowBytes, checkWeightScaleGroup, packedTernaryBytes, QuantLayoutError,
} from '../quant/layout.js';

/** A backend extent that knows how many element slots a byte buffer takes. */
export interface ByteSlotExtent extends MemoryExtent {
  byteSlots(bytes: number): number;
}

type M = ByteSlotExtent;

/** The scale `group` of W (N,K) is valid (and, for the packed matmuls, per-group G % 16 == 0). */
function checkGroup(m: M, k: string, N: number, K: number, group: number, packedKernels: boolean): void {
  checkDim(m, k, 'group', group);
  try {
    checkWeightScaleGroup(`${m.name} backend ${k}`, N, K, group, packedKernels);
  } catch (e) {
    if (e instanceof QuantLayoutError) throw new BackendError(e.message);
    throw e;
  }
}

function checkWeightDims(m: M, k: string, N: number, K: number, group: number, packedKernels = false): void {
  checkDim(m, k, 'N', N); checkDim(m, k, 'K', K);
  checkGroup(m, k, N, K, group, packedKernels);
}

function checkPacked(m: M, k: string, name: string, p: Ptr, N: number, K: number): void {
  checkSpan(m, k, name, p, m.byteSlots(packedTernaryBytes(N, K)), `(ceil(N/4),K) bytes`);
}

function checkInt8Rows(m: M, k: string, xq: Ptr, sx: Ptr, M: number, K: number): void {
  checkSpan(m, k, 'xq', xq, m.byteSlots(M * activationRowBytes(K)), '(M,K8) bytes');
  checkSpan(m, k, 'sx', sx, M, '(M)');
}

export function checkAbsmeanScales(m: M, scales: Ptr, w: Ptr, count: number, group: number): void {
  const k = 'absmeanScales';
  checkDim(m, k, 'count', count); checkDim(m, k, 'group', group);
  if (count % group !== 0) throw new BackendError(`${m.name} backend ${k}: count = ${count} is not a multiple of group = ${group} (every scale covers a whole group)`);
  checkSpan(m, k, 'w', w, count, '(count)');
  checkSpan(m, k, 'scales', scales, count / group, '(count/group)');
}

export function checkTernaryPack(m: M, packed: Ptr, w: Ptr, scales: Ptr, N: number, K: number, group: number): void {
  const k = 'ternaryPack';
  checkWeightDims(m, k, N, K, group);
  checkSpan(m, k, 'w', w, N * K, '(N,K)');
  checkSpan(m, k, 'scales', scales, (N * K) / group, '(N*K/group)');
  checkPacked(m, k, 'packed', packed, N, K);
}

export function checkTernaryDequantize(m: M, out: Ptr, packed: Ptr, scales: Ptr, N: number, K: number, group: number): void {
  const k = 'ternaryDequantize';
  checkWeightDims(m, k, N, K, group);
  checkSpan(m, k, 'out', out, N * K, '(N,K)');
  checkSpan(m, k, 'scales', scales, (N * K) / group, '(N*K/group)');
  checkPacked(m, k, 'packed', packed, N, K);
}

/** quantizeActivations (x is the f32 input) and dequantizeActivations (x is the f32 output). */
export function checkActivationQuant(m: M, k: string, xName: string, x: Ptr, xq: Ptr, sx: Ptr, M: number, K: number): void {
  checkDim(m, k, 'M', M); checkDim(m, k, 'K', K);
  checkSpan(m, k, xName, x, M * K, '(M,K)');
  checkInt8Rows(m, k, xq, sx, M, K);
}

export function checkTernaryForward(m: M, out: Ptr, xq: Ptr, sx: Ptr, packed: Ptr, sw: Ptr, scratch: Ptr, scratchSlots: number,
  M: number, N: number, K: number, group: number): void {
  const k = 'ternaryForward';
  checkDim(m, k, 'M', M);
  checkWeightDims(m, k, N, K, group, true);
  checkSpan(m, k, 'out', out, M * N, '(M,N)');
  checkInt8Rows(m, k, xq, sx, M, K);
  checkPacked(m, k, 'packed', packed, N, K);
  checkSpan(m, k, 'sw', sw, (N * K) / group, '(N*K/group)');
  checkSpan(m, k, 'scratch', scratch, scratchSlots, `(ternaryScratchSlots('forward', N, K))`, scratchSlots === 0);
}

export function checkTernaryBackwardDx(m: M, dx: Ptr, dy: Ptr, packed: Ptr, sw: Ptr, scratch: Ptr, scratchSlots: number,
  M: number, N: number, K: number, group: number): void {
  const k = 'ternaryBackwardDx';
  checkDim(m, k, 'M', M);
  checkWeightDims(m, k, N, K, group, true);
  checkSpan(m, k, 'dx', dx, M * K, '(M,K)');
  checkSpan(m, k, 'dy', dy, M * N, '(M,N)');
  checkPacked(m, k, 'packed', packed, N, K);
  checkSpan(m, k, 'sw', sw, (N * K) / group, '(N*K/group)');
  checkSpan(m, k, 'scratch', scratch, scratchSlots, `(ternaryScratchSlots('backwardDx', N, K))`, scratchSlots === 0);
}

export function checkSteClippedWeights(m: M, dw: Ptr, dwq: Ptr, w: Ptr, scales: Ptr, N: number, K: number, group: number): void {
  const k = 'steClippedWeights';
  checkWeightDims(m, k, N, K, group);
  checkSpan(m, k, 'dw', dw, N * K, '(N,K)'); checkSpan(m, k, 'dwq', dwq, N * K, '(N,K)'); checkSpan(m, k, 'w', w, N * K, '(N,K)');
  checkSpan(m, k, 'scales', scales, (N * K) / group, '(N*K/group)');
}

export function checkSteClippedActivations(m: M, dx: Ptr, dxq: Ptr, x: Ptr, sx: Ptr, M: number, K: number): void {
  const k = 'steClippedActivations';
  checkDim(m, k, 'M', M); checkDim(m, k, 'K', K);
  checkSpan(m, k, 'dx', dx, M * K, '(M,K)'); checkSpan(m, k, 'dxq', dxq, M * K, '(M,K)'); checkSpan(m, k, 'x', x, M * K, '(M,K)');
  checkSpan(m, k, 'sx', sx, M, '(M)');
}

/** A byte count for `byteSlots`: a non-negative integer. */
export function checkByteCount(m: MemoryExtent, bytes: number): void {
  checkDim(m, 'byteSlots', 'bytes', bytes, true);
}
