/**
 * Argument checks shared by the CPU backends, one validator per kernel of `Backend`: each
 * pointer and the extent it addresses must lie inside `[base, capacity)`, so a wrong pointer
 * throws a `BackendError` naming the backend, the kernel, the argument, its size and the
 * capacity instead of silently reading garbage. A few comparisons per argument (cheap per call).
 */
import { type AdamW8bitBuffers, BackendError, type Ptr, type RopeScaling } from './backend.js';

/** What a check needs to know about the backend and its memory. */
export interface MemoryExtent {
  readonly name: string;
  readonly base: Ptr;
  readonly capacity: number;
  /** True once `dispose()` ran. */
  readonly disposed: boolean;
}

/** Largest integer a f32 slot holds exactly; larger indices are rejected. */
export const MAX_EXACT_INDEX_F32 = 16777216;

/** Throws once the backend was disposed. */
export function checkAlive(m: MemoryExtent, kernel: string): void {
  if (m.disposed) throw new BackendError(`${m.name} backend ${kernel}: the backend was disposed`);
}

/**
 * Throws unless `[p, p+n)` is inside `[base, capacity)`. With `optional`, `p = 0` (absent) passes.
 * `shape` describes `n` for the message, e.g. `'(N,C)'`.
 */
export function checkSpan(m: MemoryExtent, kernel: string, arg: string, p: Ptr, n: number, shape: string, optional = false): void {
  checkAlive(m, kernel);
  if (p === 0 && optional) return;
  if (Number.isInteger(p) && p >= m.base && Number.isInteger(n) && n >= 0 && p + n <= m.capacity) return;
  let why: string;
  if (!(Number.isInteger(n) && n >= 0)) why = `: the size is not a non-negative integer`;
  else if (!Number.isInteger(p)) why = `is not an integer element offset`;
  else if (p === 0) why = `is 0 (absent), but this argument is required`;
  else if (p < m.base) why = `lies in the reserved region [0, ${m.base})`;
  else why = `ends at ${p + n}, beyond capacity ${m.capacity} (call reserve() first or fix the pointer)`;
  throw new BackendError(`${m.name} backend ${kernel}: ${arg} = ${p} with ${n} elements ${shape} ${why}`);
}

/** Throws unless `v` is a positive (or, with `allowZero`, non-negative) integer dimension. */
export function checkDim(m: MemoryExtent, kernel: string, dim: string, v: number, allowZero = false): void {
  if (Number.isInteger(v) && (v > 0 || (allowZero && v === 0))) return;
  throw new BackendError(`${m.name} backend ${kernel}: ${dim} = ${v} must be a ${allowZero ? 'non-negative' : 'positive'} integer`);
}

/**
 * Checks `n` index slots at `p` (values stored by `writeIndices`) are integers in `[0, limit)`.
 * `what` names the limit for the message (e.g. `'V, the vocabulary size'`).
 */
export function checkIndexValues(m: MemoryExtent, kernel: string, arg: string, mem: ArrayLike<number>, p: Ptr, n: number, limit: number, what: string): void {
  for (let i = 0; i < n; i++) {
    const v = mem[p + i];
    if (!(Number.isInteger(v) && v >= 0 && v < limit)) {
      throw new BackendError(`${m.name} backend ${kernel}: ${arg}[${i}] = ${v} is not an index in [0, ${limit}) (${what}); write indices with writeIndices()`);
    }
  }
}

/** Checks integers for `writeIndices` (non-negative; at most 2^24 when slots are f32). */
export function checkIndicesToWrite(m: MemoryExtent, data: Int32Array, f32: boolean): void {
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    if (v < 0 || (f32 && v > MAX_EXACT_INDEX_F32)) {
      throw new BackendError(`${m.name} backend writeIndices: data[${i}] = ${v} is outside [0, ${f32 ? MAX_EXACT_INDEX_F32 : 2 ** 31 - 1}], the integers a ${f32 ? 'f32' : 'f64'} slot holds exactly`);
    }
  }
}

// ---- per-kernel validators, in the order of `Backend` -----------------------------------

type M = MemoryExtent;

export function checkGemm(m: M, layout: string, out: Ptr, a: Ptr, b: Ptr, M: number, N: number, K: number): void {
  const k = 'gemm';
  if (layout !== 'nn' && layout !== 'nt' && layout !== 'tn') throw new BackendError(`${m.name} backend gemm: layout must be 'nn', 'nt' or 'tn', got ${String(layout)}`);
  checkDim(m, k, 'M', M); checkDim(m, k, 'N', N); checkDim(m, k, 'K', K);
  checkSpan(m, k, 'out', out, M * N, '(M,N)');
  checkSpan(m, k, 'a', a, M * K, layout === 'tn' ? '(K,M)' : '(M,K)');
  checkSpan(m, k, 'b', b, K * N, layout === 'nt' ? '(N,K)' : '(K,N)');
}

/** addBias and biasBackward: x is out or dout (N,C), bias is bias or dbias (C). */
export function checkBias(m: M, k: string, xName: string, x: Ptr, biasName: string, bias: Ptr, N: number, C: number): void {
  checkDim(m, k, 'N', N); checkDim(m, k, 'C', C);
  checkSpan(m, k, xName, x, N * C, '(N,C)');
  checkSpan(m, k, biasName, bias, C, '(C)');
}

/** Elementwise kernels over n elements: every named pointer addresses (n). */
export function checkElementwise(m: M, k: string, n: number, n1: string, p1: Ptr, n2: string, p2: Ptr, n3?: string, p3?: Ptr): void {
  checkDim(m, k, 'n', n, true);
  checkSpan(m, k, n1, p1, n, '(n)');
  checkSpan(m, k, n2, p2, n, '(n)');
  if (n3 !== undefined) checkSpan(m, k, n3, p3 ?? 0, n, '(n)');
}

export function checkReduction(m: M, k: string, out: Ptr, x: Ptr, n: number): void {
  checkDim(m, k, 'n', n, true);
  checkSpan(m, k, 'out', out, 1, '(1)');
  checkSpan(m, k, 'x', x, n, '(n)');
}

export function checkLayerNormForward(m: M, out: Ptr, mean: Ptr, rstd: Ptr, inp: Ptr, weight: Ptr, bias: Ptr, N: number, C: number): void {
  const k = 'layerNormForward';
  checkDim(m, k, 'N', N); checkDim(m, k, 'C', C);
  checkSpan(m, k, 'out', out, N * C, '(N,C)'); checkSpan(m, k, 'inp', inp, N * C, '(N,C)');
  checkSpan(m, k, 'mean', mean, N, '(N)'); checkSpan(m, k, 'rstd', rstd, N, '(N)');
  checkSpan(m, k, 'weight', weight, C, '(C)'); checkSpan(m, k, 'bias', bias, C, '(C)', true);
}

export function checkLayerNormBackward(m: M, dinp: Ptr, dweight: Ptr, dbias: Ptr, dout: Ptr, inp: Ptr, weight: Ptr, mean: Ptr, rstd: Ptr, N: number, C: number): void {
  const k = 'layerNormBackward';
  checkDim(m, k, 'N', N); checkDim(m, k, 'C', C);
  checkSpan(m, k, 'dinp', dinp, N * C, '(N,C)'); checkSpan(m, k, 'dout', dout, N * C, '(N,C)'); checkSpan(m, k, 'inp', inp, N * C, '(N,C)');
  checkSpan(m, k, 'dweight', dweight, C, '(C)'); checkSpan(m, k, 'dbias', dbias, C, '(C)', true); checkSpan(m, k, 'weight', weight, C, '(C)');
  checkSpan(m, k, 'mean', mean, N, '(N)'); checkSpan(m, k, 'rstd', rstd, N, '(N)');
}

export function checkRmsNormForward(m: M, out: Ptr, rstd: Ptr, inp: Ptr, weight: Ptr, N: number, C: number): void {
  const k = 'rmsNormForward';
  checkDim(m, k, 'N', N); checkDim(m, k, 'C', C);
  checkSpan(m, k, 'out', out, N * C, '(N,C)'); checkSpan(m, k, 'inp', inp, N * C, '(N,C)');
  checkSpan(m, k, 'rstd', rstd, N, '(N)'); checkSpan(m, k, 'weight', weight, C, '(C)', true);
}

export function checkRmsNormBackward(m: M, dinp: Ptr, dweight: Ptr, dout: Ptr, inp: Ptr, weight: Ptr, rstd: Ptr, N: number, C: number): void {
  const k = 'rmsNormBackward';
  checkDim(m, k, 'N', N); checkDim(m, k, 'C', C);
  checkSpan(m, k, 'dinp', dinp, N * C, '(N,C)'); checkSpan(m, k, 'dout', dout, N * C, '(N,C)'); checkSpan(m, k, 'inp', inp, N * C, '(N,C)');
  checkSpan(m, k, 'dweight', dweight, C, '(C)', true); checkSpan(m, k, 'weight', weight, C, '(C)', true);
  checkSpan(m, k, 'rstd', rstd, N, '(N)');
}

function checkAttentionDims(m: M, k: string, B: number, T: number, C: number, NH: number): void {
  checkDim(m, k, 'B', B); checkDim(m, k, 'T', T); checkDim(m, k, 'C', C); checkDim(m, k, 'NH', NH);
  if (C % NH !== 0) throw new BackendError(`${m.name} backend ${k}: C = ${C} is not divisible by NH = ${NH} (head size must be an integer)`);
}

export function checkAttentionForward(m: M, out: Ptr, preatt: Ptr, att: Ptr, inp: Ptr, B: number, T: number, C: number, NH: number): void {
  const k = 'attentionForward';
  checkAttentionDims(m, k, B, T, C, NH);
  checkSpan(m, k, 'out', out, B * T * C, '(B,T,C)'); checkSpan(m, k, 'inp', inp, B * T * 3 * C, '(B,T,3C)');
  checkSpan(m, k, 'preatt', preatt, B * NH * T * T, '(B,NH,T,T)'); checkSpan(m, k, 'att', att, B * NH * T * T, '(B,NH,T,T)');
}

export function checkAttentionBackward(m: M, dinp: Ptr, dpreatt: Ptr, datt: Ptr, dout: Ptr, inp: Ptr, att: Ptr, B: number, T: number, C: number, NH: number): void {
  const k = 'attentionBackward';
  checkAttentionDims(m, k, B, T, C, NH);
  checkSpan(m, k, 'dinp', dinp, B * T * 3 * C, '(B,T,3C)'); checkSpan(m, k, 'inp', inp, B * T * 3 * C, '(B,T,3C)');
  checkSpan(m, k, 'dout', dout, B * T * C, '(B,T,C)');
  checkSpan(m, k, 'dpreatt', dpreatt, B * NH * T * T, '(B,NH,T,T)'); checkSpan(m, k, 'datt', datt, B * NH * T * T, '(B,NH,T,T)');
  checkSpan(m, k, 'att', att, B * NH * T * T, '(B,NH,T,T)');
}

function checkGroupedDims(m: M, k: string, B: number, T: number, NH: number, NKV: number, hs: number, qs: number, kvs: number): void {
  checkDim(m, k, 'B', B); checkDim(m, k, 'T', T); checkDim(m, k, 'NH', NH); checkDim(m, k, 'NKV', NKV); checkDim(m, k, 'hs', hs);
  if (NH % NKV !== 0) throw new BackendError(`${m.name} backend ${k}: NH = ${NH} query heads do not split into NKV = ${NKV} key/value groups evenly`);
  if (!(Number.isInteger(qs) && qs >= NH * hs)) throw new BackendError(`${m.name} backend ${k}: q row stride qs = ${qs} is shorter than NH·hs = ${NH * hs}`);
  if (!(Number.isInteger(kvs) && kvs >= NKV * hs)) throw new BackendError(`${m.name} backend ${k}: k/v row stride kvs = ${kvs} is shorter than NKV·hs = ${NKV * hs}`);
}

/** Span of a (B,T,·) buffer of `stride` whose rows use their first `width` elements. */
function rowsSpan(B: number, T: number, stride: number, width: number): number {
  return (B * T - 1) * stride + width;
}

export function checkGroupedAttentionForward(m: M, out: Ptr, preatt: Ptr, att: Ptr, q: Ptr, kp: Ptr, v: Ptr, B: number, T: number, NH: number, NKV: number, hs: number, qs: number, kvs: number): void {
  const k = 'groupedAttentionForward';
  checkGroupedDims(m, k, B, T, NH, NKV, hs, qs, kvs);
  checkSpan(m, k, 'out', out, B * T * NH * hs, '(B,T,NH*hs)');
  checkSpan(m, k, 'q', q, rowsSpan(B, T, qs, NH * hs), '(B,T,qs)');
  checkSpan(m, k, 'k', kp, rowsSpan(B, T, kvs, NKV * hs), '(B,T,kvs)'); checkSpan(m, k, 'v', v, rowsSpan(B, T, kvs, NKV * hs), '(B,T,kvs)');
  checkSpan(m, k, 'preatt', preatt, B * NH * T * T, '(B,NH,T,T)'); checkSpan(m, k, 'att', att, B * NH * T * T, '(B,NH,T,T)');
}

export function checkGroupedAttentionBackward(m: M, dq: Ptr, dk: Ptr, dv: Ptr, dpreatt: Ptr, datt: Ptr, dout: Ptr, q: Ptr, kp: Ptr, v: Ptr, att: Ptr, B: number, T: number, NH: number, NKV: number, hs: number, qs: number, kvs: number): void {
  const k = 'groupedAttentionBackward';
  checkGroupedDims(m, k, B, T, NH, NKV, hs, qs, kvs);
  const qn = rowsSpan(B, T, qs, NH * hs);
  const kvn = rowsSpan(B, T, kvs, NKV * hs);
  checkSpan(m, k, 'q', q, qn, '(B,T,qs)'); checkSpan(m, k, 'dq', dq, qn, '(B,T,qs)');
  checkSpan(m, k, 'k', kp, kvn, '(B,T,kvs)'); checkSpan(m, k, 'dk', dk, kvn, '(B,T,kvs)');
  checkSpan(m, k, 'v', v, kvn, '(B,T,kvs)'); checkSpan(m, k, 'dv', dv, kvn, '(B,T,kvs)');
  checkSpan(m, k, 'dout', dout, B * T * NH * hs, '(B,T,NH*hs)');
  checkSpan(m, k, 'dpreatt', dpreatt, B * NH * T * T, '(B,NH,T,T)'); checkSpan(m, k, 'datt', datt, B * NH * T * T, '(B,NH,T,T)');
  checkSpan(m, k, 'att', att, B * NH * T * T, '(B,NH,T,T)');
}

/**
 * embeddingForward/Backward: x is out or dout (B,T,C), table is wte or dwte, pos is wpe or dwpe.
 * The interface does not pass V, so token ids are checked against the rows of the table that
 * lie inside memory.
 */
export function checkEmbedding(m: M, k: string, mem: ArrayLike<number>, xName: string, x: Ptr, tokens: Ptr, tableName: string, table: Ptr, posName: string, pos: Ptr, B: number, T: number, C: number): void {
  checkDim(m, k, 'B', B); checkDim(m, k, 'T', T); checkDim(m, k, 'C', C);
  checkSpan(m, k, xName, x, B * T * C, '(B,T,C)'); checkSpan(m, k, 'tokens', tokens, B * T, '(B,T)');
  checkSpan(m, k, tableName, table, C, '(V,C)'); checkSpan(m, k, posName, pos, T * C, '(maxT,C)', true);
  checkIndexValues(m, k, 'tokens', mem, tokens, B * T, Math.floor((m.capacity - table) / C), `rows of ${tableName} inside memory`);
}

/** crossEntropyForward/Backward: a, b are the two (N,V) buffers, r the (N) per-row buffer. */
export function checkCrossEntropy(m: M, k: string, mem: ArrayLike<number>, aName: string, a: Ptr, bName: string, b: Ptr, rName: string, r: Ptr, targets: Ptr, N: number, V: number): void {
  checkDim(m, k, 'N', N); checkDim(m, k, 'V', V);
  checkSpan(m, k, aName, a, N * V, '(N,V)'); checkSpan(m, k, bName, b, N * V, '(N,V)');
  checkSpan(m, k, rName, r, N, '(N)'); checkSpan(m, k, 'targets', targets, N, '(N)');
  checkIndexValues(m, k, 'targets', mem, targets, N, V, 'V, the vocabulary size');
}

export function checkAdamW(m: M, params: Ptr, grads: Ptr, mom: Ptr, v: Ptr, n: number, step: number, gradScale: Ptr): void {
  const k = 'adamwStep';
  checkDim(m, k, 'n', n, true); checkDim(m, k, 'hp.step', step);
  checkSpan(m, k, 'params', params, n, '(n)'); checkSpan(m, k, 'grads', grads, n, '(n)');
  checkSpan(m, k, 'm', mom, n, '(n)'); checkSpan(m, k, 'v', v, n, '(n)');
  checkSpan(m, k, 'gradScale', gradScale, 1, '(1)', true);
}

/** adamw8bitStep: the f32 blocks, the code bytes (in byte slots), one absmax per 256-block, the two 256-entry maps. */
export function checkAdamW8bit(m: M & { byteSlots(bytes: number): number }, params: Ptr, grads: Ptr, s: AdamW8bitBuffers, n: number, step: number, gradScale: Ptr): void {
  const k = 'adamw8bitStep';
  checkDim(m, k, 'n', n, true); checkDim(m, k, 'hp.step', step);
  checkSpan(m, k, 'params', params, n, '(n)'); checkSpan(m, k, 'grads', grads, n, '(n)');
  const codeSlots = m.byteSlots(n);
  checkSpan(m, k, 'state.mCodes', s.mCodes, codeSlots, '(n bytes)'); checkSpan(m, k, 'state.vCodes', s.vCodes, codeSlots, '(n bytes)');
  const blocks = Math.ceil(n / 256);
  checkSpan(m, k, 'state.mAbsmax', s.mAbsmax, blocks, '(ceil(n/256))'); checkSpan(m, k, 'state.vAbsmax', s.vAbsmax, blocks, '(ceil(n/256))');
  checkSpan(m, k, 'state.signedMap', s.signedMap, 256, '(256)'); checkSpan(m, k, 'state.unsignedMap', s.unsignedMap, 256, '(256)');
  checkSpan(m, k, 'state.searchTables', s.searchTables, m.byteSlots(16392), '(16392 bytes)');
  checkSpan(m, k, 'gradScale', gradScale, 1, '(1)', true);
}

export function checkClipScale(m: M, out: Ptr, sumsq: Ptr): void {
  checkSpan(m, 'clipScale', 'out', out, 1, '(1)');
  checkSpan(m, 'clipScale', 'sumsq', sumsq, 1, '(1)');
}

// ---- squared ReLU and rotary position embedding ---------------------------------------------

function checkRopeHead(m: M, k: string, hs: number, what: string): void {
  if (hs % 2 !== 0) throw new BackendError(`${m.name} backend ${k}: head size ${what} = ${hs} is odd; RoPE rotates pairs (i, i + hs/2), so the head size must be even`);
}

export function checkRopeTable(m: M, table: Ptr, T: number, hs: number, theta: number): void {
  const k = 'ropeTable';
  checkDim(m, k, 'T', T); checkDim(m, k, 'hs', hs);
  checkRopeHead(m, k, hs, 'hs');
  if (!(Number.isFinite(theta) && theta > 0)) throw new BackendError(`${m.name} backend ${k}: theta = ${theta} must be a finite number > 0 (LLaMA uses 10000)`);
  checkSpan(m, k, 'table', table, T * hs, '(T,hs)');
}

export function checkRopeScaling(m: M, table: Ptr, T: number, hs: number, theta: number, scaling: RopeScaling): void {
  const k = 'ropeTableScaled';
  checkRopeTable(m, table, T, hs, theta);
  const pos = (name: string, v: number) => {
    if (!(typeof v === 'number' && Number.isFinite(v) && v > 0)) throw new BackendError(`${m.name} backend ${k}: scaling.${name} = ${v} must be a finite number > 0`);
  };
  if (scaling.kind !== 'linear' && scaling.kind !== 'llama3') throw new BackendError(`${m.name} backend ${k}: scaling.kind must be 'linear' or 'llama3', got ${String((scaling as { kind: unknown }).kind)}`);
  pos('factor', scaling.factor);
  if (scaling.kind === 'llama3') {
    pos('lowFreqFactor', scaling.lowFreqFactor); pos('highFreqFactor', scaling.highFreqFactor); pos('originalMaxPositions', scaling.originalMaxPositions);
    if (!(scaling.highFreqFactor > scaling.lowFreqFactor)) throw new BackendError(`${m.name} backend ${k}: scaling.highFreqFactor ${scaling.highFreqFactor} must exceed lowFreqFactor ${scaling.lowFreqFactor}`);
  }
}

function checkRopeShapes(m: M, k: string, aName: string, a: Ptr, bName: string, b: Ptr, table: Ptr, B: number, T: number, C: number, NH: number): void {
  checkAttentionDims(m, k, B, T, C, NH);
  checkRopeHead(m, k, C / NH, 'C/NH');
  checkSpan(m, k, aName, a, B * T * 3 * C, '(B,T,3C)'); checkSpan(m, k, bName, b, B * T * 3 * C, '(B,T,3C)');
  checkSpan(m, k, 'table', table, T * (C / NH), '(T,hs)');
}

function overlaps(a: Ptr, b: Ptr, n: number): boolean {
  return a < b + n && b < a + n;
}

export function checkRopeForward(m: M, out: Ptr, inp: Ptr, table: Ptr, B: number, T: number, C: number, NH: number): void {
  const k = 'ropeForward';
  checkRopeShapes(m, k, 'out', out, 'inp', inp, table, B, T, C, NH);
  if (out !== inp && overlaps(out, inp, B * T * 3 * C)) {
    throw new BackendError(`${m.name} backend ${k}: out = ${out} and inp = ${inp} partly overlap; pass out = inp (in place) or disjoint buffers`);
  }
}

export function checkRopeBackward(m: M, dinp: Ptr, dout: Ptr, table: Ptr, B: number, T: number, C: number, NH: number): void {
  const k = 'ropeBackward';
  checkRopeShapes(m, k, 'dinp', dinp, 'dout', dout, table, B, T, C, NH);
  if (overlaps(dinp, dout, B * T * 3 * C)) {
    throw new BackendError(`${m.name} backend ${k}: dinp = ${dinp} and dout = ${dout} overlap; the backward accumulates into dinp, so pass a separate gradient buffer`);
  }
}

function checkRopeHeadsShapes(m: M, k: string, aName: string, a: Ptr, bName: string, b: Ptr, table: Ptr, B: number, T: number, stride: number, heads: number, hs: number): void {
  checkDim(m, k, 'B', B); checkDim(m, k, 'T', T); checkDim(m, k, 'stride', stride); checkDim(m, k, 'heads', heads); checkDim(m, k, 'hs', hs);
  checkRopeHead(m, k, hs, 'hs');
  if (heads * hs > stride) throw new BackendError(`${m.name} backend ${k}: heads·hs = ${heads * hs} exceeds the row stride ${stride}`);
  checkSpan(m, k, aName, a, B * T * stride, '(B,T,stride)'); checkSpan(m, k, bName, b, B * T * stride, '(B,T,stride)');
  checkSpan(m, k, 'table', table, T * hs, '(T,hs)');
}

export function checkRopeHeadsForward(m: M, out: Ptr, inp: Ptr, table: Ptr, B: number, T: number, stride: number, heads: number, hs: number): void {
  const k = 'ropeHeadsForward';
  checkRopeHeadsShapes(m, k, 'out', out, 'inp', inp, table, B, T, stride, heads, hs);
  if (out !== inp && overlaps(out, inp, B * T * stride)) {
    throw new BackendError(`${m.name} backend ${k}: out = ${out} and inp = ${inp} partly overlap; pass out = inp (in place) or disjoint buffers`);
  }
}

export function checkRopeHeadsBackward(m: M, dinp: Ptr, dout: Ptr, table: Ptr, B: number, T: number, stride: number, heads: number, hs: number): void {
  const k = 'ropeHeadsBackward';
  checkRopeHeadsShapes(m, k, 'dinp', dinp, 'dout', dout, table, B, T, stride, heads, hs);
  if (overlaps(dinp, dout, B * T * stride)) {
    throw new BackendError(`${m.name} backend ${k}: dinp = ${dinp} and dout = ${dout} overlap; the backward accumulates into dinp, so pass a separate gradient buffer`);
  }
}
