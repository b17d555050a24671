/**
 * Argument checks of the QAT kernels of `Backend` (the "QAT" section), shared by the CPU
 * backends; the general rules are in `./checks.ts`, the weight-scale `group` rule in
 * `../quant/layout.ts`.
 */
import { BackendError, type Ptr, type QatBlend, type QatSurrogate } from './backend.js';
import { checkDim, checkIndexValues, checkSpan } from './checks.js';
import type { ByteSlotExtent } from './checks-quant.js';
import { activationRowBytes, checkWeightScaleGroup, QuantLayoutError } from '../quant/layout.js';

type M = ByteSlotExtent;

function checkFinite(m: M, k: string, name: string, v: number): void {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new BackendError(`${m.name} backend ${k}: ${name} = ${v} must be a finite number`);
}

function checkBlend(m: M, k: string, blend: QatBlend): void {
  checkFinite(m, k, 'blend.lambda', blend.lambda);
  checkFinite(m, k, 'blend.p', blend.p);
  if (!(Number.isInteger(blend.seed) && blend.seed >= 0 && blend.seed <= 0xffffffff)) {
    throw new BackendError(`${m.name} backend ${k}: blend.seed = ${blend.seed} must be an integer in [0, 2^32)`);
  }
}

function checkWeights(m: M, k: string, N: number, K: number, group: number): void {
  checkDim(m, k, 'N', N); checkDim(m, k, 'K', K); checkDim(m, k, 'group', group);
  try {
    checkWeightScaleGroup(`${m.name} backend ${k}`, N, K, group);
  } catch (e) {
    if (e instanceof QuantLayoutError) throw new BackendError(e.message);
    throw e;
  }
}

export function checkQatLerp(m: M, out: Ptr, a: Ptr, b: Ptr, n: number, blend: QatBlend): void {
  const k = 'qatLerp';
  checkDim(m, k, 'n', n, true);
  checkSpan(m, k, 'out', out, n, '(n)'); checkSpan(m, k, 'a', a, n, '(n)'); checkSpan(m, k, 'b', b, n, '(n)');
  checkBlend(m, k, blend);
}

export function checkQatSteWeights(m: M, dw: Ptr, dwq: Ptr, w: Ptr, scales: Ptr, N: number, K: number, group: number,
  surrogate: QatSurrogate, temperature: number, blend: QatBlend): void {
  const k = 'qatSteWeights';
  checkWeights(m, k, N, K, group);
  for (const [name, p] of [['dw', dw], ['dwq', dwq], ['w', w]] as const) checkSpan(m, k, name, p, N * K, '(N,K)');
  checkSpan(m, k, 'scales', scales, (N * K) / group, '(N*K/group)');
  if (surrogate !== 'identity' && surrogate !== 'clipped' && surrogate !== 'soft') {
    throw new BackendError(`${m.name} backend ${k}: surrogate must be 'identity', 'clipped' or 'soft', got ${String(surrogate)}`);
  }
  if (surrogate === 'soft' && !(Number.isFinite(temperature) && temperature > 0)) {
    throw new BackendError(`${m.name} backend ${k}: temperature = ${temperature} must be a finite number > 0`);
  }
  checkBlend(m, k, blend);
}

export function checkQatLsqScales(m: M, sw: Ptr, step: Ptr, absmean: Ptr, count: number): void {
  const k = 'qatLsqScales';
  checkDim(m, k, 'count', count);
  for (const [name, p] of [['sw', sw], ['step', step], ['absmean', absmean]] as const) checkSpan(m, k, name, p, count, '(count)');
}

export function checkQatLsqStepGrad(m: M, dstep: Ptr, dwq: Ptr, w: Ptr, sw: Ptr, count: number, group: number, gradScale: number, blend: QatBlend): void {
  const k = 'qatLsqStepGrad';
  checkDim(m, k, 'count', count); checkDim(m, k, 'group', group);
  if (count % group !== 0) throw new BackendError(`${m.name} backend ${k}: count = ${count} is not a multiple of group = ${group}`);
  checkSpan(m, k, 'dwq', dwq, count, '(count)'); checkSpan(m, k, 'w', w, count, '(count)');
  checkSpan(m, k, 'dstep', dstep, count / group, '(count/group)'); checkSpan(m, k, 'sw', sw, count / group, '(count/group)');
  checkFinite(m, k, 'gradScale', gradScale);
  checkBlend(m, k, blend);
}

export function checkQatQuantizeActivationsStatic(m: M, xq: Ptr, sx: Ptr, x: Ptr, clip: Ptr, M: number, K: number): void {
  const k = 'qatQuantizeActivationsStatic';
  checkDim(m, k, 'M', M); checkDim(m, k, 'K', K);
  checkSpan(m, k, 'x', x, M * K, '(M,K)');
  checkSpan(m, k, 'xq', xq, m.byteSlots(M * activationRowBytes(K)), '(M,K8) bytes');
  checkSpan(m, k, 'sx', sx, M, '(M)');
  checkSpan(m, k, 'clip', clip, 1, '(1)');
}

export function checkQatCopyColumns(m: M, dst: Ptr, dstCols: number, dstCol0: number, src: Ptr, srcCols: number, srcCol0: number, M: number, n: number): void {
  const k = 'qatCopyColumns';
  checkDim(m, k, 'M', M); checkDim(m, k, 'n', n);
  checkDim(m, k, 'dstCols', dstCols); checkDim(m, k, 'srcCols', srcCols);
  checkDim(m, k, 'dstCol0', dstCol0, true); checkDim(m, k, 'srcCol0', srcCol0, true);
  if (dstCol0 + n > dstCols || srcCol0 + n > srcCols) {
    throw new BackendError(`${m.name} backend ${k}: columns [${dstCol0}, ${dstCol0 + n}) of dst (${dstCols} columns) or [${srcCol0}, ${srcCol0 + n}) of src (${srcCols} columns) out of range`);
  }
  checkSpan(m, k, 'dst', dst, M * dstCols, '(M,dstCols)'); checkSpan(m, k, 'src', src, M * srcCols, '(M,srcCols)');
}

export function checkKd(m: M, k: string, mem: ArrayLike<number>, ptrs: [string, Ptr][], targets: Ptr, rowPtr: [string, Ptr], N: number, V: number, temperature: number, alpha: number): void {
  checkDim(m, k, 'N', N); checkDim(m, k, 'V', V);
  for (const [name, p] of ptrs) checkSpan(m, k, name, p, N * V, '(N,V)');
  checkSpan(m, k, rowPtr[0], rowPtr[1], N, '(N)');
  checkSpan(m, k, 'targets', targets, N, '(N)');
  checkIndexValues(m, k, 'targets', mem, targets, N, V, 'V, the vocabulary size');
  if (!(Number.isFinite(temperature) && temperature > 0)) throw new BackendError(`${m.name} backend ${k}: temperature = ${temperature} must be a finite number > 0`);
  if (!(alpha >= 0 && alpha <= 1)) throw new BackendError(`${m.name} backend ${k}: alpha = ${alpha} must be in [0, 1]`);
}

export function checkQatGrid(m: M, k: string, ptrs: [string, Ptr, 'NK' | 'N' | '1'][], scales: Ptr, N: number, K: number, group: number): void {
  checkWeights(m, k, N, K, group);
  for (const [name, p, shape] of ptrs) {
    const n = shape === 'NK' ? N * K : shape === 'N' ? N : 1;
    checkSpan(m, k, name, p, n, shape === 'NK' ? '(N,K)' : `(${shape})`);
  }
  checkSpan(m, k, 'scales', scales, (N * K) / group, '(N*K/group)');
}
