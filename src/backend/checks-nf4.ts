/**
 * Argument checks of the NF4 kernels (QLoRA), shared by the backends: sizes, K a multiple of 64
 * (one NF4 block never spans two rows), and every buffer inside memory.
 */
import { BackendError, type Nf4Weight, type Ptr } from './backend.js';
import { checkDim, checkSpan } from './checks.js';
import type { ByteSlotExtent } from './checks-quant.js';

/** Throws a `BackendError` naming the kernel and the argument. */
export function checkNf4(m: ByteSlotExtent, k: string, outName: string, out: Ptr, inName: string, inp: Ptr, w: Nf4Weight, M: number, N: number, K: number): void {
  checkDim(m, k, 'M', M); checkDim(m, k, 'N', N); checkDim(m, k, 'K', K);
  if (K % 64 !== 0) throw new BackendError(`${m.name} backend ${k}: K = ${K} must be a multiple of 64 (NF4 blocks of 64 within a row)`);
  const outIsY = k === 'nf4Forward';
  checkSpan(m, k, outName, out, M * (outIsY ? N : K), outIsY ? '(M,N)' : '(M,K)');
  checkSpan(m, k, inName, inp, M * (outIsY ? K : N), outIsY ? '(M,K)' : '(M,N)');
  const blocks = (N * K) / 64;
  checkSpan(m, k, 'codes', w.codes, m.byteSlots((N * K) / 2), '(N*K/2 bytes)');
  checkSpan(m, k, 'absmaxCodes', w.absmaxCodes, m.byteSlots(blocks), '(N*K/64 bytes)');
  checkSpan(m, k, 'absmaxScales', w.absmaxScales, Math.ceil(blocks / 256), '(ceil(N*K/16384))');
  checkSpan(m, k, 'table', w.table, 256, '(256)');
  if (!Number.isFinite(w.offset)) throw new BackendError(`${m.name} backend ${k}: offset must be finite, got ${w.offset}`);
}
