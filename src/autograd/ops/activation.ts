/**
 * Pointwise activations: `gelu` (tanh approximation), `silu` and `relu2` (squared ReLU), and
 * `gatedActivation`, the gated MLP's `act(gate) * up` in one op.
 */
import type { Backend, Ptr } from '../../backend/backend.js';
import type { Tensor } from '../../tensor/tensor.js';
import { checkArgs, recordOp, requireSameShape, wantsGrad } from './common.js';

/** GELU, tanh approximation, elementwise; y has x's shape. */
export function gelu(x: Tensor): Tensor {
  const heap = checkArgs('gelu', { x });
  const be = heap.backend;
  const out = heap.empty(x.shape);
  be.geluForward(out.offset, x.offset, x.size);
  // forward: y = gelu(x), so dx += gelu'(x) * dy
  recordOp('gelu', [x], out, () => be.geluBackward(heap.gradOf(x), x.offset, out.gradPtr, x.size));
  return out;
}

/** SiLU (swish): `x * sigmoid(x)`, elementwise; y has x's shape. */
export function silu(x: Tensor): Tensor {
  const heap = checkArgs('silu', { x });
  const be = heap.backend;
  const out = heap.empty(x.shape);
  be.siluForward(out.offset, x.offset, x.size);
  // forward: y = silu(x), so dx += silu'(x) * dy
  recordOp('silu', [x], out, () => be.siluBackward(heap.gradOf(x), x.offset, out.gradPtr, x.size));
  return out;
}

/** Squared ReLU, `max(x, 0)^2`, elementwise (BitNet b1.58 2B4T's MLP activation); y has x's shape. */
export function relu2(x: Tensor): Tensor {
  const heap = checkArgs('relu2', { x });
  const be = heap.backend;
  const out = heap.empty(x.shape);
  be.relu2Forward(out.offset, x.offset, x.size);
  // forward: y = max(x, 0)^2, so dx += 2 max(x, 0) * dy
  recordOp('relu2', [x], out, () => be.relu2Backward(heap.gradOf(x), x.offset, out.gradPtr, x.size));
  return out;
}

/** The activations a gated MLP uses: SwiGLU's `silu`, BitNet b1.58's squared ReLU. */
export type GateActivation = 'silu' | 'relu2';

/** A gate activation's forward and backward kernels (`dinp += act'(inp) * dout`). */
function gateKernels(be: Backend, act: GateActivation): { forward: (out: Ptr, inp: Ptr, n: number) => void; backward: (dinp: Ptr, inp: Ptr, dout: Ptr, n: number) => void } {
  return act === 'silu'
    ? { forward: (o, i, n) => be.siluForward(o, i, n), backward: (d, i, g, n) => be.siluBackward(d, i, g, n) }
    : { forward: (o, i, n) => be.relu2Forward(o, i, n), backward: (d, i, g, n) => be.relu2Backward(d, i, g, n) };
}

/**
 * `act(gate) * up`, the gated MLP of LLaMA (SwiGLU, `silu`) and BitNet (`relu2`), as one op that
 * keeps only gate and up for backward: act(gate) is freed after the forward and recomputed in
 * backward, so a layer keeps one (B, T, hidden) tensor less. The same kernels as
 * `mul(act(gate), up)` on the same values, so the same bits.
 */
export function gatedActivation(gate: Tensor, up: Tensor, act: GateActivation): Tensor {
  const op = 'gatedActivation';
  const heap = checkArgs(op, { gate, up });
  requireSameShape(op, 'gate', gate, 'up', up);
  const be = heap.backend;
  const kernels = gateKernels(be, act);
  const n = gate.size;
  const out = heap.empty(gate.shape);
  const a = heap.alloc(n);
  kernels.forward(a, gate.offset, n);
  be.mul(out.offset, a, up.offset, n);
  heap.releaseArenaTo(a);
  // forward: out = act(gate) * up, so dgate += act'(gate) * (up * dout), dup += act(gate) * dout
  recordOp(op, [gate, up], out, () => {
    const dgate = wantsGrad(gate) ? heap.gradOf(gate) : 0;
    const dup = wantsGrad(up) ? heap.gradOf(up) : 0;
    const scratch = heap.arenaMark();
    if (dgate) {
      const da = heap.allocZeroed(n);
      be.mulAccumulate(da, up.offset, out.gradPtr, n);
      kernels.backward(dgate, gate.offset, da, n);
    }
    if (dup) {
      const recomputed = heap.alloc(n);
      kernels.forward(recomputed, gate.offset, n);
      be.mulAccumulate(dup, recomputed, out.gradPtr, n);
    }
    heap.releaseArenaTo(scratch);
  });
  return out;
}
