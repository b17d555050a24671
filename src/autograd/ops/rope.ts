/**
 * Rotary position embedding (RoPE) on a fused qkv tensor, LLaMA convention.
 */
import type { Tensor } from '../../tensor/tensor.js';
import { assertArg, checkArgs, formatShape, recordOp } from './common.js';

/**
 * Rotate q and k of a fused qkv (B, T, 3C) by their positions 0..T-1 (LLaMA / Hugging Face
 * `rotate_half` layout): in every head (size hs = C/heads, even) element i pairs with i + hs/2
 * and turns by `t·θ_i`. `table` (maxT, hs), T <= maxT, holds `cos(t·θ_i)` then `sin(t·θ_i)` per
 * row, as written by `backend.ropeTable` (see `RotaryEmbedding` in nn/ for the model's table).
 * v passes through. Returns a new (B, T, 3C) tensor (out of place); the table is a constant
 * and receives no gradient. Backward: the inverse rotation (by −angle) of the q and k gradients.
 *
 * @example
 * const q = rope(qkvProj.forward(x), heads, rotary.table); // then attention(q, heads)
 */
export function rope(qkv: Tensor, heads: number, table: Tensor): Tensor {
  const op = 'rope';
  const heap = checkArgs(op, { qkv, table });
  assertArg(qkv.rank === 3, op, `qkv must be (B, T, 3C), got ${formatShape(qkv.shape)}`);
  const [B, T, C3] = qkv.shape as [number, number, number];
  assertArg(C3 % 3 === 0, op, `qkv ${formatShape(qkv.shape)}: last dim ${C3} must be 3C (q, k, v side by side)`);
  const C = C3 / 3;
  assertArg(Number.isInteger(heads) && heads > 0 && C % heads === 0, op, `qkv ${formatShape(qkv.shape)}: C = ${C} must split into ${heads} heads evenly`);
  const hs = C / heads;
  assertArg(hs % 2 === 0, op, `qkv ${formatShape(qkv.shape)} with ${heads} heads has head size ${hs}, which is odd; RoPE rotates pairs (i, i + hs/2), so choose dim/heads even`);
  assertArg(table.rank === 2 && table.shape[1] === hs, op, `table ${formatShape(table.shape)} must be (maxT, ${hs}) for head size ${hs}`);
  assertArg(T <= table.shape[0]!, op, `qkv ${formatShape(qkv.shape)} has T = ${T} positions but table ${formatShape(table.shape)} holds only ${table.shape[0]}; shorten the sequence or build a longer table`);
  assertArg(!table.requiresGrad, op, `table ${table.describe()} requires grad, but the cos/sin table is a constant and gets no gradient`);
  const be = heap.backend;
  const out = heap.empty([B, T, C3]);
  be.ropeForward(out.offset, qkv.offset, table.offset, B, T, C, heads);
  // forward: q, k rotated by +angle, v copied; so dq, dk += rotation by -angle of dout, dv += dout
  recordOp(op, [qkv], out, () => be.ropeBackward(heap.gradOf(qkv), out.gradPtr, table.offset, B, T, C, heads));
  return out;
}

/**
 * Rotate every head of x (B, T, H·hs) by its position 0..T-1 (LLaMA / HF `rotate_half`
 * layout, as `rope`), hs = `table.shape[1]`: the q or the k of grouped-query attention, which
 * have different head counts. Out of place; backward: the inverse rotation of the gradient.
 *
 * @example
 * const qr = ropeHeads(q, rotary.table); // q (B, T, NH·hs)
 */
export function ropeHeads(x: Tensor, table: Tensor): Tensor {
  const op = 'ropeHeads';
  const heap = checkArgs(op, { x, table });
  assertArg(x.rank === 3, op, `x must be (B, T, H·hs), got ${formatShape(x.shape)}`);
  assertArg(table.rank === 2, op, `table ${formatShape(table.shape)} must be (maxT, hs)`);
  const [B, T, W] = x.shape as [number, number, number];
  const hs = table.shape[1]!;
  assertArg(W % hs === 0, op, `x ${formatShape(x.shape)}: last dim ${W} is not a whole number of heads of ${hs} (the table's head size)`);
  assertArg(T <= table.shape[0]!, op, `x ${formatShape(x.shape)} has T = ${T} positions but table ${formatShape(table.shape)} holds only ${table.shape[0]}; shorten the sequence or build a longer table`);
  assertArg(!table.requiresGrad, op, `table ${table.describe()} requires grad, but the cos/sin table is a constant and gets no gradient`);
  const be = heap.backend;
  const out = heap.empty([B, T, W]);
  be.ropeHeadsForward(out.offset, x.offset, table.offset, B, T, W, W / hs, hs);
  recordOp(op, [x], out, () => be.ropeHeadsBackward(heap.gradOf(x), out.gradPtr, table.offset, B, T, W, W / hs, hs));
  return out;
}
