/**
 * SGD with momentum (PyTorch semantics) over the contiguous parameter and gradient blocks.
 *
 * Per element, on the weight-decayed range and (with weight decay 0) on the rest:
 *
 *   g = clip · grad + weightDecay · p              (L2 decay, coupled, as torch.optim.SGD)
 *   buf = momentum · buf + (1 - dampening) · g     (buf = g on the first step)
 *   u = nesterov ? g + momentum · buf : buf        (u = g without momentum)
 *   p -= lr · u
 *
 * There is no fused SGD kernel: a step is a handful of `scale` / `axpy` / `copy` passes over the
 * flat blocks (memory-bound, a small part of a training step). The clip factor comes from the
 * backend's `sumSquares` + `clipScale` (the same rule as AdamW) and is read back with one
 * `readSync` of a single float, because `scale` takes the factor as a host number; a backend
 * without synchronous reads (WebGPU) would need a fused kernel. The step overwrites the
 * gradient block (it is zeroed before the next step anyway). Before the update the non-finite
 * guard (./update-guard.ts) reads the sums of squares of gradients, weights and momentum and
 * refuses a step that would write NaN/Inf.
 */
import type { Ptr } from '../backend/backend.js';
import type { ParameterSet } from '../tensor/parameters.js';
import { type StepOutcome, sgdGuard } from './update-guard.js';

/** SGD hyperparameters. `lr` and `weightDecay` may be changed between steps (schedules). */
export interface SGDOptions {
  lr: number;
  /** Default 0 (plain SGD). */
  momentum?: number;
  /** Default 0. */
  dampening?: number;
  /** Nesterov momentum (needs momentum > 0 and dampening 0). Default false. */
  nesterov?: boolean;
  /** L2 weight decay of the decayed group (matrices). Default 0. Norms, biases, embeddings never decay. */
  weightDecay?: number;
  /** Clip the global gradient norm to this value; 0 or undefined turns clipping off. */
  clipNorm?: number;
}

/** Optimizer state for checkpoints: step count and the momentum buffers by parameter name (empty without momentum). */
export interface SGDState {
  step: number;
  momentum: Map<string, Float32Array>;
}

function check(name: string, v: number, lo: number, hi = Infinity): void {
  if (!(typeof v === 'number' && Number.isFinite(v) && v >= lo && v <= hi)) {
    throw new Error(`SGD: ${name} must be a finite number >= ${lo}${hi < Infinity ? ` and <= ${hi}` : ''}, got ${v}`);
  }
}

export class SGD {
  readonly params: ParameterSet;
  lr: number;
  momentum: number;
  dampening: number;
  nesterov: boolean;
  weightDecay: number;
  clipNorm: number;
  /** Steps taken. */
  stepCount = 0;
  /** The momentum buffer block (0 without momentum). */
  private readonly buf: Ptr;
  /** scratch[0] = sum of squared grads, scratch[1] = clip factor, scratch[2..3] = sums of squared weights and momentum (the guard). */
  private readonly scratch: Ptr;

  /** Allocates the momentum block (when momentum > 0); call before the first forward (static memory). */
  constructor(params: ParameterSet, options: SGDOptions) {
    this.params = params;
    this.lr = options.lr;
    this.momentum = options.momentum ?? 0;
    this.dampening = options.dampening ?? 0;
    this.nesterov = options.nesterov ?? false;
    this.weightDecay = options.weightDecay ?? 0;
    this.clipNorm = options.clipNorm ?? 0;
    this.validate();
    if (this.nesterov && (this.momentum <= 0 || this.dampening !== 0)) {
      throw new Error(`SGD: nesterov needs momentum > 0 and dampening 0, got momentum ${this.momentum}, dampening ${this.dampening}`);
    }
    const heap = params.heap;
    const n = params.blockSize;
    this.buf = this.momentum > 0 ? heap.allocStatic(n, 'sgd.momentum') : 0;
    this.scratch = heap.allocStatic(4, 'sgd.scratch');
    if (this.buf && n > 0) heap.backend.fill(this.buf, n, 0);
    heap.backend.fill(this.scratch, 4, 0);
  }

  /** Zero every gradient (one `fill` over the gradient block). */
  zeroGrad(): void {
    this.params.zeroGrad();
  }

  /**
   * Apply one update from the accumulated gradients, unless it would write a NaN or Inf: then
   * nothing changes (weights, momentum, the step count) and the outcome says why.
   */
  step(): StepOutcome {
    this.validate();
    const p = this.params;
    const be = p.heap.backend;
    const n = p.blockSize;
    be.sumSquares(this.scratch, p.gradOffset, n);
    be.sumSquares(this.scratch + 2, p.paramOffset, n);
    if (this.buf) be.sumSquares(this.scratch + 3, this.buf, n);
    else be.fill(this.scratch + 3, 1, 0);
    const sums = be.readSync(this.scratch, 4);
    const outcome = sgdGuard(
      { grad: Math.sqrt(sums[0]!), param: Math.sqrt(sums[2]!), state: Math.sqrt(sums[3]!) },
      { lr: this.lr, momentum: this.momentum, dampening: this.dampening, nesterov: this.nesterov, weightDecay: this.weightDecay, clip: this.clipNorm, first: this.stepCount === 0 },
    );
    if (!outcome.applied) return outcome;
    let clip = 1;
    if (this.clipNorm > 0) {
      be.clipScale(this.scratch + 1, this.scratch, this.clipNorm);
      clip = be.readSync(this.scratch + 1, 1)[0]!;
    }
    const first = this.stepCount === 0;
    this.stepCount++;
    for (const [range, weightDecay] of [[p.decayRange, this.weightDecay], [p.noDecayRange, 0]] as const) {
      const len = range.length;
      if (len === 0) continue;
      const param = p.paramOffset + range.start;
      const grad = p.gradOffset + range.start; // becomes g, then u
      if (clip !== 1) be.scale(grad, grad, clip, len);
      if (weightDecay !== 0) be.axpy(grad, weightDecay, param, len);
      let update = grad;
      if (this.buf) {
        const buf = this.buf + range.start;
        if (first) {
          be.copy(buf, grad, len);
        } else {
          be.scale(buf, buf, this.momentum, len);
          be.axpy(buf, 1 - this.dampening, grad, len);
        }
        if (this.nesterov) be.axpy(grad, this.momentum, buf, len);
        else update = buf;
      }
      be.axpy(param, -this.lr, update, len);
    }
    return outcome;
  }

  /** The global gradient norm (before clipping) seen by the last `step()`. Reads one value back. */
  async gradNorm(): Promise<number> {
    const v = await this.params.heap.backend.read(this.scratch, 1);
    return Math.sqrt(v[0]!);
  }

  /** Copy out the optimizer state (checkpoints). */
  async exportState(): Promise<SGDState> {
    return { step: this.stepCount, momentum: this.buf ? await this.params.exportBlock(this.buf) : new Map() };
  }

  /** Restore state saved by `exportState` (same model shape and momentum setting). */
  importState(state: SGDState): void {
    if (!Number.isInteger(state.step) || state.step < 0) throw new Error(`SGD.importState: step must be a non-negative integer, got ${state.step}`);
    if (this.buf) {
      if (state.momentum.size === 0 && state.step > 0) throw new Error('SGD.importState: the state has no momentum buffers but this optimizer uses momentum; the checkpoint was trained without momentum');
      if (state.momentum.size > 0) this.params.importBlock(this.buf, state.momentum);
    } else if (state.momentum.size > 0) {
      throw new Error('SGD.importState: the state has momentum buffers but this optimizer has momentum 0; set the same momentum as the checkpoint');
    }
    this.stepCount = state.step;
  }

  private validate(): void {
    check('lr', this.lr, 0);
    check('momentum', this.momentum, 0, 1);
    check('dampening', this.dampening, 0, 1);
    check('weightDecay', this.weightDecay, 0);
    check('clipNorm', this.clipNorm, 0);
  }
}
