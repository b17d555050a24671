/**
 * Quantisation-aware training for BitNet b1.58 models (numerics and usage: ./README.md):
 * STE variants and LSQ, progressive quantisation (λ warmup) and quantisation noise, activation
 * calibration, error analysis, sensitivity analysis with mixed precision, knowledge
 * distillation, the ternary-grid regulariser and the latent-weight clamp.
 */
export * from './schedule.js';
export {
  QatController, bitLinearLayers, quantizedProjectionNames, setQuantLambda,
  type BitLinearEntry, type NoiseOptions, type QatControllerOptions, type QatModel, type QatStepState,
} from './controller.js';
export {
  OnlineCalibrator, absMax, absPercentile, calibrate,
  type CalibrateOptions, type CalibrationMethod, type CalibrationResult, type ForwardModel, type OnlineCalibrationOptions,
} from './calibrate.js';
export { QuantErrorAnalyzer, sqnrDb, type ProjectionQuantStats, type QuantReport } from './analysis.js';
export {
  autoMixedPrecision, evaluateLoss, formatSensitivityTable, sensitivityAnalysis, setProjectionPrecision,
  type MixedPrecisionPick, type SensitivityReport, type SensitivityRow,
} from './sensitivity.js';
export {
  checkDistillationOptions, checkTeacher, distillationLoss, teacherLogits, type DistillationOptions, type LogitsModel,
} from './distill.js';
export { QatRegularizer, clampLatentWeights, ternaryGridPenalty, type RegularizerOptions } from './regularize.js';
export type { ProjectionPrecision, WeightSte } from './projection.js';
export type { ActivationSteVariant, QuantNoise } from '../autograd/ops/bitlinear.js';
