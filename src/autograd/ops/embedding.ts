/**
 * Token (+ learned position) embedding lookup.
 */
import type { Tensor } from '../../tensor/tensor.js';
import { assertArg, checkArgs, formatShape, recordOp, wantsGrad } from './common.js';

/**
 * `out[b,t] = wte[tokens[b,t]] + wpe[t]`. tokens (B, T) indices; wte (V, C); wpe (maxT, C)
 * with T <= maxT, or null; out (B, T, C). Backward scatter-adds into wte (and wpe).
 */
export function embedding(tokens: Tensor, wte: Tensor, wpe: Tensor | null = null): Tensor {
  const op = 'embedding';
  const heap = checkArgs(op, { tokens, wte, wpe }, ['tokens']);
  assertArg(tokens.rank === 2, op, `tokens must be (B, T), got ${formatShape(tokens.shape)}`);
  assertArg(wte.rank === 2, op, `wte must be (V, C), got ${formatShape(wte.shape)}`);
  const [B, T] = tokens.shape as [number, number];
  const [V, C] = wte.shape as [number, number];
  const [lo, hi] = tokens.indexRange;
  if (tokens.size > 0) {
    assertArg(lo >= 0 && hi < V, op, `tokens ${formatShape(tokens.shape)} hold ids in [${lo}, ${hi}] but wte ${formatShape(wte.shape)} has ${V} rows; ids must be in [0, ${V - 1}]`);
  }
  if (wpe) {
    assertArg(wpe.rank === 2 && wpe.shape[1] === C, op, `wpe ${formatShape(wpe.shape)} must be (maxT, ${C}) to match wte ${formatShape(wte.shape)}`);
    assertArg(T <= wpe.shape[0]!, op, `tokens ${formatShape(tokens.shape)} have T = ${T} positions but wpe ${formatShape(wpe.shape)} holds only ${wpe.shape[0]}; shorten the sequence or raise contextLength`);
  }
  const be = heap.backend;
  const out = heap.empty([B, T, C]);
  be.embeddingForward(out.offset, tokens.offset, wte.offset, wpe ? wpe.offset : 0, B, T, C);

  recordOp(op, [wte, wpe], out, () => {
    // The kernel scatters into both tables at once; a table that wants no gradient gets scratch.
    const dwte = wantsGrad(wte) ? heap.gradOf(wte) : heap.allocZeroed(wte.size);
    const dwpe = wpe ? (wantsGrad(wpe) ? heap.gradOf(wpe) : heap.allocZeroed(wpe.size)) : 0;
    be.embeddingBackward(dwte, dwpe, out.gradPtr, tokens.offset, B, T, C);
  });
  return out;
}
