/**
 * Causal multi-head self-attention over a fused qkv tensor (llm.c layout).
 */
import type { Tensor } from '../../tensor/tensor.js';
import { assertArg, checkArgs, formatShape, recordOp, wantsGrad } from './common.js';

/**
 * Causal self-attention. qkv is (B, T, 3C): q, k, v side by side per token; the result is
 * (B, T, C), heads concatenated. Scores are scaled by 1/sqrt(C/NH). The attention weights
 * (B, NH, T, T) are saved for backward (the pre-softmax scores are not: backward needs only the weights).
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
  // att is what backward needs; preatt, the forward kernel's workspace, is freed once it ran
  const att = heap.alloc(B * NH * T * T);
  const preatt = heap.alloc(B * NH * T * T);
  be.attentionForward(out.offset, preatt, att, qkv.offset, B, T, C, NH);
  heap.releaseArenaTo(preatt);

  recordOp(op, [qkv], out, () => {
    // scratch for the backward of the softmax and the weighted sum, overwritten by the kernel
    const dpreatt = heap.alloc(B * NH * T * T);
    const datt = heap.alloc(B * NH * T * T);
    be.attentionBackward(heap.gradOf(qkv), dpreatt, datt, out.gradPtr, qkv.offset, att, B, T, C, NH);
  });
  return out;
}

/**
 * Causal grouped-query self-attention (Hugging Face LLaMA / BitNet). q is (B, T, NH·hs), k and
 * v are (B, T, NKV·hs) with NKV = `kvHeads` dividing NH = `heads`; query head h attends with
 * key/value head floor(h / (NH/NKV)) (HF's `repeat_kv`, without materialising the repeat).
 * The result is (B, T, NH·hs), heads concatenated; scores are scaled by 1/sqrt(hs). With
 * kvHeads = heads it is multi-head attention. The attention weights (B, NH, T, T) are saved for
 * backward, which accumulates into q, k and v.
 *
 * @example
 * const y = groupedAttention(rotary.rotate(q), rotary.rotate(k), v, 4, 2); // 4 query heads, 2 kv heads
 */
export function groupedAttention(q: Tensor, k: Tensor, v: Tensor, heads: number, kvHeads: number): Tensor {
  const op = 'groupedAttention';
  const heap = checkArgs(op, { q, k, v });
  assertArg(q.rank === 3 && k.rank === 3 && v.rank === 3, op, `q, k, v must be (B, T, ·), got ${formatShape(q.shape)}, ${formatShape(k.shape)}, ${formatShape(v.shape)}`);
  const [B, T, Cq] = q.shape as [number, number, number];
  assertArg(Number.isInteger(heads) && heads > 0 && Cq % heads === 0, op, `q ${formatShape(q.shape)}: last dim ${Cq} must split into ${heads} heads evenly`);
  const hs = Cq / heads;
  assertArg(Number.isInteger(kvHeads) && kvHeads > 0 && heads % kvHeads === 0, op, `${heads} query heads must split into kvHeads = ${kvHeads} groups evenly`);
  const want = [B, T, kvHeads * hs];
  for (const [name, t] of [['k', k], ['v', v]] as const) {
    assertArg(t.shape[0] === B && t.shape[1] === T && t.shape[2] === kvHeads * hs, op, `${name} ${formatShape(t.shape)} must be ${formatShape(want)} (${kvHeads} kv heads of ${hs}) for q ${formatShape(q.shape)}`);
  }
  const NH = heads;
  const be = heap.backend;
  const out = heap.empty([B, T, Cq]);
  // att is what backward needs; preatt, the forward kernel's workspace, is freed once it ran
  const att = heap.alloc(B * NH * T * T);
  const preatt = heap.alloc(B * NH * T * T);
  be.groupedAttentionForward(out.offset, preatt, att, q.offset, k.offset, v.offset, B, T, NH, kvHeads, hs, Cq, kvHeads * hs);
  heap.releaseArenaTo(preatt);

  recordOp(op, [q, k, v], out, () => {
    const grad = (t: Tensor) => (wantsGrad(t) ? heap.gradOf(t) : heap.allocZeroed(t.size));
    const [dq, dk, dv] = [grad(q), grad(k), grad(v)];
    // scratch for the backward of the softmax and the weighted sum, overwritten by the kernel
    const dpreatt = heap.alloc(B * NH * T * T);
    const datt = heap.alloc(B * NH * T * T);
    be.groupedAttentionBackward(dq, dk, dv, dpreatt, datt, out.gradPtr, q.offset, k.offset, v.offset, att, B, T, NH, kvHeads, hs, Cq, kvHeads * hs);
  });
  return out;
}
