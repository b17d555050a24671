/**
 * Monitoring: TensorBoard event files, the HTML run report, the step profiler.
 */
export { type MonitorLibraries, useMonitorLibraries } from './libraries.js';
export { TensorBoardWriter, type TensorBoardWriterOptions } from './tensorboard.js';
export { type Histogram as TensorBoardHistogram, type SummaryValue } from './event-proto.js';
export { histogramOf, ternaryHistogram } from './histogram.js';
export { type GradNormSource, tensorBoardCallbacks, writeQuantError, writeRunConfig } from './trainer-tensorboard.js';
export { type ProfileReport, type ProfileRow, StepProfiler, type StepPhase, formatProfile } from './profiler.js';
export { type ReportAssets, loadUplotAssets, renderReport, resolveRunLog, writeRunReport } from './report.js';
export { type RunSeries, parseRunLog } from './run-log.js';
export { DEFAULT_MONITOR_CONFIG, MONITOR_OPTION_SPECS, type MonitorRunConfig } from './config.js';
