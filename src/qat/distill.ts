/**
 * Knowledge distillation: a (full-precision) teacher's logits train a (ternary) student with
 *
 *   L = α·CE(z_s, y) + (1 − α)·T²·KL(softmax(z_t/T) ‖ softmax(z_s/T)),   mean over rows
 *
 * (Hinton et al. 2015; T² keeps the soft term's gradient scale independent of T). One fused op,
 * forward and backward (`kdForward` / `kdBackward`); the teacher logits are constants.
 */
import { assertArg, checkArgs, formatShape, recordOp, rows } from '../autograd/ops/common.js';
import { broadcastScalar } from '../autograd/ops/reduce.js';
import { noGrad } from '../autograd/tape.js';
import type { Tensor } from '../tensor/tensor.js';

/** Options of {@link distillationLoss}. */
export interface DistillationOptions {
  /** Weight of the hard-label cross-entropy, in [0, 1] (1: no distillation). */
  alpha: number;
  /** Softmax temperature T > 0 of the soft term. */
  temperature: number;
}

/** Throw unless α ∈ [0, 1] and T > 0, naming the bad value. */
export function checkDistillationOptions(o: DistillationOptions, where = 'distillationLoss'): void {
  if (o === null || typeof o !== 'object') throw new Error(`${where}: options { alpha, temperature } are required`);
  if (!(typeof o.alpha === 'number' && o.alpha >= 0 && o.alpha <= 1)) throw new Error(`${where}: alpha must be a number in [0, 1] (the weight of the hard-label loss), got ${String(o.alpha)}`);
  if (!(typeof o.temperature === 'number' && Number.isFinite(o.temperature) && o.temperature > 0)) {
    throw new Error(`${where}: temperature must be a finite number > 0, got ${String(o.temperature)}`);
  }
}

/**
 * The distillation loss, a scalar. student (..., V) logits, teacher (..., V) logits (constants: no
 * gradient flows to them), targets (...) indices in [0, V).
 *
 * @example
 * const t = teacherLogits(teacher, tokens);                    // noGrad forward of the FP teacher
 * const { logits } = student.forward(tokens);
 * const loss = distillationLoss(logits, t, targets, { alpha: 0.5, temperature: 2 });
 * loss.backward();
 */
export function distillationLoss(student: Tensor, teacher: Tensor, targets: Tensor, options: DistillationOptions): Tensor {
  const op = 'distillationLoss';
  checkDistillationOptions(options, op);
  const heap = checkArgs(op, { student, teacher, targets }, ['targets']);
  assertArg(student.rank >= 1, op, 'student logits must be (..., V), got a scalar');
  const V = student.shape[student.rank - 1]!;
  const Vt = teacher.shape[teacher.rank - 1];
  assertArg(Vt === V, op, `teacher logits ${formatShape(teacher.shape)} have a vocabulary of ${Vt} but the student's ${formatShape(student.shape)} has ${V}; teacher and student need the same tokenizer`);
  assertArg(teacher.size === student.size, op, `teacher logits ${formatShape(teacher.shape)} and student logits ${formatShape(student.shape)} must have the same shape (the same batch)`);
  const lead = student.shape.slice(0, -1);
  assertArg(lead.length === targets.rank && lead.every((d, i) => d === targets.shape[i]), op,
    `student logits ${formatShape(student.shape)} and targets ${formatShape(targets.shape)}: targets must be ${formatShape(lead)}`);
  const [lo, hi] = targets.indexRange;
  assertArg(lo >= 0 && hi < V, op, `targets hold ids in [${lo}, ${hi}] but the vocabulary is V = ${V}`);
  const N = rows(student);
  const be = heap.backend;
  const { alpha, temperature } = options;
  const losses = heap.alloc(N);
  const probs = heap.alloc(N * V);
  const probsT = heap.alloc(N * V);
  const teacherT = heap.alloc(N * V);
  const total = heap.alloc(1);
  const out = heap.empty([]);
  be.kdForward(losses, probs, probsT, teacherT, student.offset, teacher.offset, targets.offset, N, V, temperature, alpha);
  be.sum(total, losses, N);
  be.scale(out.offset, total, 1 / N, 1);

  recordOp(op, [student], out, () => {
    // forward: loss = Σ_rows losses / N, so dlosses[row] = dloss / N
    const dlosses = heap.alloc(N);
    broadcastScalar(heap, dlosses, out.gradPtr, N, 1 / N, false);
    be.kdBackward(heap.gradOf(student), probs, probsT, teacherT, targets.offset, dlosses, N, V, temperature, alpha);
  });
  return out;
}

/** A model whose forward gives logits (a GPT), with its config's vocabulary size. */
export interface LogitsModel {
  readonly config: { vocabSize: number; contextLength: number };
  forward(tokens: Tensor): { logits: Tensor };
}

/**
 * Throw unless `teacher` can teach `student`: the same vocabulary (and a context at least as long).
 * Call it when loading a teacher checkpoint, before training.
 */
export function checkTeacher(teacher: LogitsModel, student: LogitsModel): void {
  const t = teacher.config, s = student.config;
  if (t.vocabSize !== s.vocabSize) {
    throw new Error(`distillation: the teacher's vocabulary has ${t.vocabSize} tokens but the student's has ${s.vocabSize}; the teacher must use the student's tokenizer`);
  }
  if (t.contextLength < s.contextLength) {
    throw new Error(`distillation: the teacher's context length ${t.contextLength} is shorter than the student's ${s.contextLength}`);
  }
}

/** The teacher's logits for `tokens` (B, T), computed without a gradient (constants for the student's loss). */
export function teacherLogits(teacher: LogitsModel, tokens: Tensor): Tensor {
  return noGrad(() => teacher.forward(tokens).logits);
}
