/**
 * The monitoring keys of a `RunConfig` (flags of `bitnet-train train`, keys of `--config` files):
 * TensorBoard event files, the HTML report at the end of a run, and the step profiler.
 */
import type { OptionSpec, RunConfig } from '../train/config.js';

/** Monitoring options of a run; the defaults (`DEFAULT_MONITOR_CONFIG`) turn everything off. */
export interface MonitorRunConfig {
  /** Directory for TensorBoard event files (`tensorboard --logdir DIR`); null: none. */
  tensorboard: string | null;
  /** Write `<out>/report.html` (as `bitnet-train report` does) when the run ends. */
  report: boolean;
  /** Time ops and kernels over `profileSteps` steps and print where a step goes. */
  profile: boolean;
  /** Steps the profiler measures (after one warm-up step). */
  profileSteps: number;
}

const spec = (key: keyof MonitorRunConfig, type: OptionSpec['type'], flag: boolean, help: string, extra: Partial<OptionSpec> = {}): OptionSpec =>
  ({ key: key as keyof RunConfig, type, flag, help, ...extra });

/** The monitoring rows of `OPTION_SPECS`. */
export const MONITOR_OPTION_SPECS: readonly OptionSpec[] = [
  spec('tensorboard', 'string', true, 'write TensorBoard event files (scalars every step, error-analysis histograms) into DIR', { nullable: true }),
  spec('report', 'bool', true, 'write <out>/report.html (loss curves, SQNR heat map, ...) at the end'),
  spec('profile', 'bool', true, 'time ops and kernels over --profile-steps steps; print and log where a step goes'),
  spec('profileSteps', 'posInt', true, 'steps --profile measures (after one warm-up step)'),
];

export const DEFAULT_MONITOR_CONFIG: Readonly<MonitorRunConfig> = Object.freeze({
  tensorboard: null,
  report: false,
  profile: false,
  profileSteps: 20,
});
