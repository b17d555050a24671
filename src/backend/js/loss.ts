// Reference fused softmax + cross-entropy, forward and backward.
// logits, probs, dlogits (N,V); targets (N) indices; losses, dlosses (N).
import type { Floats, Ptr } from '../backend.js';

export function crossEntropyForward(mem: Floats, losses: Ptr, probs: Ptr, logits: Ptr, targets: Ptr, N: number, V: number): void {
  for (let n = 0; n < N; n++) {
    const x = logits + n * V;
    const p = probs + n * V;
    let max = -Infinity;
    for (let i = 0; i < V; i++) if (mem[x + i] > max) max = mem[x + i];
    let sum = 0;
    for (let i = 0; i < V; i++) sum += Math.exp(mem[x + i] - max);
    for (let i = 0; i < V; i++) mem[p + i] = Math.exp(mem[x + i] - max) / sum;
    // -log softmax[target] = log(sum) - (logit[target] - max), stable even when p underflows
    mem[losses + n] = Math.log(sum) - (mem[x + mem[targets + n]] - max);
  }
}

// in the forward pass: loss = -log p[target], p = softmax(logits); dloss/dlogit_i = p_i - 1{i = target}
export function crossEntropyBackward(mem: Floats, dlogits: Ptr, probs: Ptr, targets: Ptr, dlosses: Ptr, N: number, V: number): void {
  for (let n = 0; n < N; n++) {
    const target = mem[targets + n];
    const dloss = mem[dlosses + n];
    for (let i = 0; i < V; i++) {
      mem[dlogits + n * V + i] += (mem[probs + n * V + i] - (i === target ? 1 : 0)) * dloss;
    }
  }
}
