/**
 * Softmax cross-entropy, reduced to the mean over rows.
 */
import type { Tensor } from '../../tensor/tensor.js';
import { assertArg, checkArgs, formatShape, recordOp, rows } from './common.js';
import { broadcastScalar } from './reduce.js';

/**
 * Mean cross-entropy of `softmax(logits)` against integer targets, a scalar (shape `[]`).
 * logits (..., V); targets (...) indices in [0, V), the same leading dims.
 * Per-row losses and probs (N, V) are computed by one fused kernel; the mean is a backend
 * `sum` and a scale, so no value is read back to the host.
 */
export function crossEntropy(logits: Tensor, targets: Tensor): Tensor {
  const op = 'crossEntropy';
  const heap = checkArgs(op, { logits, targets }, ['targets']);
  assertArg(logits.rank >= 1, op, 'logits must be (..., V), got a scalar');
  const V = logits.shape[logits.rank - 1]!;
  const lead = logits.shape.slice(0, -1);
  const sameLead = lead.length === targets.rank && lead.every((d, i) => d === targets.shape[i]);
  assertArg(sameLead, op, `logits ${formatShape(logits.shape)} and targets ${formatShape(targets.shape)}: targets must be logits' shape without the last dim, ${formatShape(lead)}`);
  const N = rows(logits);
  assertArg(N > 0, op, `logits ${formatShape(logits.shape)} has no rows`);
  const [lo, hi] = targets.indexRange;
  assertArg(lo >= 0 && hi < V, op, `targets ${formatShape(targets.shape)} hold ids in [${lo}, ${hi}] but logits ${formatShape(logits.shape)} has V = ${V}; targets must be in [0, ${V - 1}]`);
  const be = heap.backend;
  const losses = heap.alloc(N);
  const probs = heap.alloc(N * V);
  const total = heap.alloc(1);
  const out = heap.empty([]);
  be.crossEntropyForward(losses, probs, logits.offset, targets.offset, N, V);
  be.sum(total, losses, N);
  be.scale(out.offset, total, 1 / N, 1);

  recordOp(op, [logits], out, () => {
    // forward: loss = Σ_rows losses / N, so dlosses[row] = dloss / N (broadcast on the backend)
    const dlosses = heap.alloc(N);
    broadcastScalar(heap, dlosses, out.gradPtr, N, 1 / N, false);
    be.crossEntropyBackward(heap.gradOf(logits), probs, targets.offset, dlosses, N, V);
  });
  return out;
}
