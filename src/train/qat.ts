/**
 * `QatTraining`: the QAT options of a `RunConfig` as a `StepExtension` of the trainer — the
 * progressive-quantisation / noise / soft-temperature state of every step (`QatController`),
 * online calibration of static activation clips, error analysis to the log, the ternary-grid
 * penalty, the latent-weight clamp and knowledge distillation from a teacher model.
 *
 * Determinism: every decision is a function of the step and the run seed (the calibration
 * batch of step s is drawn from its own Rng seeded by (seed, s), so the training data order is
 * untouched); the noise seed is saved with each checkpoint. A resumed run trains bit-identically.
 */
import { add } from '../autograd/ops/elementwise.js';
import type { TextDataset } from '../data/dataset.js';
import type { JsonObject } from '../io/checkpoint.js';
import type { TokenBatch } from '../optim/train-step.js';
import {
  type CalibrateOptions, type CalibrationResult, QatController, type QatControllerOptions, QatRegularizer, type QuantReport,
  QuantErrorAnalyzer, bitLinearLayers, calibrate, clampLatentWeights, distillationLoss, teacherLogits,
} from '../qat/index.js';
import type { Tensor } from '../tensor/tensor.js';
import { Rng } from '../util/rng.js';
import type { RunConfig } from './config.js';
import type { StepExtension } from './extension.js';
import type { CalibrationEvent, QuantErrorEvent } from './log.js';
import type { LanguageModel } from './model.js';

/** What `QatTraining` reports (the run writes them to the log and the progress output). */
export interface QatEvents {
  onQuantError?: (e: QuantErrorEvent) => void | Promise<void>;
  onCalibration?: (e: CalibrationEvent) => void | Promise<void>;
}

/** A u32 hash of two integers (murmur3's finaliser), for per-step seeds. */
function mix(a: number, b: number): number {
  let h = (Math.imul(a >>> 0, 0x9e3779b1) ^ Math.imul(b + 1, 0x85ebca6b)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d) >>> 0;
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

/** The default base seed of the quantisation-noise masks of a run with seed `seed`. */
export function defaultNoiseSeed(seed: number): number {
  return mix(seed, 0x6e6f6973); // 'nois'
}

/** The `QatController` options a run config asks for, or null when no per-step state changes. */
export function controllerOptions(cfg: RunConfig, noiseSeed: number): QatControllerOptions | null {
  const w = cfg.quantWarmupWeights ?? cfg.quantWarmup;
  const a = cfg.quantWarmupActivations ?? cfg.quantWarmup;
  const shape = cfg.quantSchedule;
  const o: QatControllerOptions = {
    weights: w > 0 ? { shape, steps: w } : null,
    activations: a > 0 ? { shape, steps: a } : null,
    layerwise: cfg.quantLayerwise ? cfg.quantLayerOrder : false,
    noise: cfg.quantNoise !== null ? { start: cfg.quantNoise, schedule: { steps: cfg.quantNoiseSteps ?? Math.floor(cfg.iters / 2) }, seed: noiseSeed } : null,
    softTemperature: cfg.softTemperatureEnd !== null ? { from: cfg.softTemperature, to: cfg.softTemperatureEnd, steps: cfg.iters } : null,
  };
  return o.weights || o.activations || o.noise || o.softTemperature ? o : null;
}

export class QatTraining implements StepExtension {
  controller: QatController | null;
  readonly analyzer: QuantErrorAnalyzer | null;
  readonly regularizer: QatRegularizer | null;
  private readonly calibration: CalibrateOptions;
  private readonly bitlinear: boolean;
  /** Set by `restore`: take the checkpoint's ternary codes as the flip-rate reference. */
  private codesFromCheckpoint = false;

  /**
   * Build the per-step machinery for `model` (materialized; create it before the first step,
   * after the optimizer: the analyzer takes static memory). `teacher`: a materialized model on the
   * same heap (distillation), checked by the caller with `checkTeacher`.
   */
  constructor(
    readonly model: LanguageModel,
    readonly cfg: RunConfig,
    readonly dataset: TextDataset,
    readonly teacher: LanguageModel | null = null,
    readonly events: QatEvents = {},
  ) {
    this.bitlinear = bitLinearLayers(model).length > 0;
    if (this.bitlinear) for (const { layer } of bitLinearLayers(model)) layer.softTemperature = cfg.softTemperature;
    const co = this.bitlinear ? controllerOptions(cfg, defaultNoiseSeed(cfg.seed)) : null;
    this.controller = co ? new QatController(model, co) : null;
    this.analyzer = this.bitlinear && cfg.errorEvery > 0 ? new QuantErrorAnalyzer(model, { every: cfg.errorEvery }) : null;
    this.regularizer = this.bitlinear && cfg.qatReg > 0
      ? new QatRegularizer(model, { weight: cfg.qatReg, schedule: cfg.qatRegStart > 0 || cfg.qatRegRamp > 0 ? { start: cfg.qatRegStart, steps: cfg.qatRegRamp } : null })
      : null;
    this.calibration = { method: cfg.calibrateMethod, percentile: cfg.calibratePercentile, momentum: cfg.calibrateMomentum };
  }

  /** Whether any layer has a static activation clip. */
  get staticScales(): boolean {
    return this.bitlinear && bitLinearLayers(this.model).some((e) => e.layer.inputClip !== null);
  }

  /** `n` training batches for calibration at `step`, from an Rng of their own (the data order is untouched). */
  calibrationBatches(step: number, n: number): TokenBatch[] {
    const { batch: B, context: T } = this.cfg;
    const rng = new Rng(mix(this.cfg.seed ^ 0x63616c69, step)); // 'cali'
    return Array.from({ length: n }, () => {
      const b = this.dataset.sampleBatch('train', B, T, rng);
      return { tokens: b.inputs, targets: b.targets, B, T };
    });
  }

  /**
   * Calibrate the static clips of layers that have none yet (clip 0) on `calibrateBatches`
   * batches; a fresh run calls it before step 0. Returns null when every clip is set already.
   */
  async initialCalibration(): Promise<CalibrationResult | null> {
    if (!this.staticScales) return null;
    const be = this.model.params.heap.backend;
    let missing = false;
    for (const { layer } of bitLinearLayers(this.model)) if (layer.inputClip && (await be.read(layer.inputClip.offset, 1))[0]! <= 0) missing = true;
    if (!missing) return null;
    const result = await calibrate(this.model, this.calibrationBatches(0, this.cfg.calibrateBatches), { ...this.calibration, continueEma: false });
    await this.events.onCalibration?.(calibrationEvent(0, result));
    return result;
  }

  async beforeStep(step: number): Promise<void> {
    if (this.codesFromCheckpoint) {
      this.codesFromCheckpoint = false;
      // resumed at a report step: its codes, recomputed from the saved weights, are the ones the
      // uninterrupted run compared against, so the next report's flip rate is the same
      if (this.analyzer!.due(step)) await this.analyzer!.report(step);
    }
    this.controller?.beginStep(step);
    const every = this.cfg.calibrateEvery;
    if (every > 0 && step > 0 && step % every === 0 && this.staticScales) {
      const result = await calibrate(this.model, this.calibrationBatches(step, 1), this.calibration);
      await this.events.onCalibration?.(calibrationEvent(step, result));
    }
    this.analyzer?.beginStep(step + 1); // armed for the forward of a step after which a report is due
  }

  loss(tokens: Tensor, targets: Tensor, step: number): Tensor {
    let loss: Tensor;
    if (this.teacher) {
      const { logits } = this.model.forward(tokens);
      loss = distillationLoss(logits, teacherLogits(this.teacher, tokens), targets, { alpha: this.cfg.distillAlpha, temperature: this.cfg.distillTemperature });
    } else {
      // GPT | LlamaModel: the union's overloads do not resolve together; both return { loss } with targets
      loss = (this.model as { forward(tokens: Tensor, targets: Tensor): { loss?: Tensor } }).forward(tokens, targets).loss!;
    }
    const r = this.regularizer?.loss(step);
    return r ? add(loss, r) : loss;
  }

  afterUpdate(): void {
    if (this.cfg.clampLatent !== null && this.bitlinear) clampLatentWeights(this.model, this.cfg.clampLatent);
  }

  async afterStep(stepsDone: number): Promise<void> {
    if (!this.analyzer?.due(stepsDone)) return;
    const report = await this.analyzer.report(stepsDone);
    await this.events.onQuantError?.(quantErrorEvent(report));
  }

  beforeEval(stepsDone: number): void {
    this.controller?.beginStep(stepsDone);
  }

  state(): JsonObject {
    return this.controller?.noiseSeed !== undefined && this.cfg.quantNoise !== null ? { noiseSeed: this.controller.noiseSeed } : {};
  }

  restore(state: JsonObject | undefined, source: string): void {
    this.codesFromCheckpoint = this.analyzer !== null;
    const seed = state?.noiseSeed;
    if (seed === undefined || this.cfg.quantNoise === null || !this.controller) return;
    if (!(typeof seed === 'number' && Number.isInteger(seed) && seed >= 0 && seed <= 0xffffffff)) throw new Error(`${source}: extra.extension.noiseSeed must be a u32, got ${JSON.stringify(seed)}`);
    if (seed !== this.controller.noiseSeed) this.controller = new QatController(this.model, controllerOptions(this.cfg, seed)!);
  }
}

/** The log event of an error-analysis report. */
export function quantErrorEvent(r: QuantReport): QuantErrorEvent {
  return { event: 'quant_error', step: r.step, layers: r.layers };
}

/** The log event of a calibration. */
export function calibrationEvent(step: number, r: CalibrationResult): CalibrationEvent {
  return { event: 'calibration', step, method: r.method, batches: r.batches, layers: r.layers.filter((l) => l.written).map((l) => ({ name: l.name, clip: l.clip })) };
}
