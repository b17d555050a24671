/**
 * Causal multi-head self-attention over a fused qkv tensor (llm.c layout).
 */
import type { Tensor } from '../../tensor/tensor.js';
import { assertArg, checkArgs, formatShape, recordOp } from './common.js';

/**
 * Causal self-attention. qkv is (B, T, 3C): q, k, v side by side per token; the result is
 * (B, T, C), heads concatenated. Scores are scaled by 1/sqrt(C/NH). The attention weights
 * (B, NH, T, T) are saved for backward.
 */
export function attention(qkv: Tensor, heads: number): Tensor {
  const op = 'attention';
  const heap = checkArgs(op, { qkv });
  assertArg(qkv.rank === 3, op, `qkv must be (B, T, 3C), got ${formatShape(qkv.shape)}`);
  const [B, T, C3] = qkv.shape as [number, number, number];
  assertArg(C3 % 3 === 0, op, `qkv ${formatShape(qkv.shape)}: last dim ${C3} must be 3C (q, k, v side by side)`);
  const C = C3 / 3;
  assertArg(Number.isInteger(heads) && heads > 0 && C % heads === 0, op, `qkv ${formatShape(qkv.shape)}: C = ${C} must split into ${heads} heads evenly`);
  const NH = heads;
  const be = heap.backend;
  const out = heap.empty([B, T, C]);
  // preatt and att are the forward kernel's workspace in any mode; att is what backward needs
  const preatt = heap.alloc(B * NH * T * T);
  const att = heap.alloc(B * NH * T * T);
  be.attentionForward(out.offset, preatt, att, qkv.offset, B, T, C, NH);

  recordOp(op, [qkv], out, () => {
    // scratch for the backward of the softmax and the weighted sum, overwritten by the kernel;
    // preatt is dead after the forward, so it serves as dpreatt
    const datt = heap.alloc(B * NH * T * T);
    be.attentionBackward(heap.gradOf(qkv), preatt, datt, out.gradPtr, qkv.offset, att, B, T, C, NH);
  });
  return out;
}
