/**
 * Model and optimizer state <-> checkpoint tensors.
 *
 *   model.safetensors       `<param>` (F32, the parameter's shape)
 *   optimizer.safetensors   AdamW: `<param>.exp_avg`, `<param>.exp_avg_sq` (PyTorch's names);
 *                           SGD: `<param>.momentum_buffer`
 *   trainer.json `extra.optimizer`  `{ kind, step }`
 *
 * Values are copied as f32, the wasm backend's element type, so a save/load round trip is exact
 * (a `js` backend with `dtype: 'f64'` loses bits here; resume bit-identity needs f32 memory).
 */
import type { SafetensorsTensor } from '../io/safetensors.js';
import { AdamW } from '../optim/adamw.js';
import { SGD } from '../optim/sgd.js';
import type { ParameterSet } from '../tensor/parameters.js';

/** The optimizers the trainer drives. */
export type TrainerOptimizer = AdamW | SGD;

/** What trainer.json records about the optimizer. */
export interface OptimizerMeta {
  kind: 'adamw' | 'sgd';
  step: number;
}

const SUFFIXES = { adamw: ['exp_avg', 'exp_avg_sq'], sgd: ['momentum_buffer'] } as const;

export function optimizerKind(opt: TrainerOptimizer): 'adamw' | 'sgd' {
  if (opt instanceof AdamW) return 'adamw';
  if (opt instanceof SGD) return 'sgd';
  throw new Error('trainer: the optimizer must be an AdamW or SGD instance');
}

function asTensors(params: ParameterSet, values: Map<string, Float32Array>, suffix?: string): Map<string, SafetensorsTensor> {
  const out = new Map<string, SafetensorsTensor>();
  for (const [name, data] of values) out.set(suffix ? `${name}.${suffix}` : name, { dtype: 'F32', shape: [...params.getParam(name).shape], data });
  return out;
}

/** The parameters as safetensors tensors, by name. */
export async function exportModelTensors(params: ParameterSet): Promise<Map<string, SafetensorsTensor>> {
  return asTensors(params, await params.exportValues());
}

/** The optimizer's state as tensors plus the metadata trainer.json keeps. */
export async function exportOptimizerTensors(opt: TrainerOptimizer): Promise<{ tensors: Map<string, SafetensorsTensor>; meta: OptimizerMeta }> {
  const kind = optimizerKind(opt);
  if (opt instanceof AdamW) {
    const s = await opt.exportState();
    return { tensors: new Map([...asTensors(opt.params, s.m, 'exp_avg'), ...asTensors(opt.params, s.v, 'exp_avg_sq')]), meta: { kind, step: s.step } };
  }
  const s = await opt.exportState();
  return { tensors: asTensors(opt.params, s.momentum, 'momentum_buffer'), meta: { kind, step: s.step } };
}

/** `name → f32 values` of F32 tensors, checking the dtype; `source` names the file in errors. */
export function f32Values(tensors: ReadonlyMap<string, SafetensorsTensor>, source: string, strip?: string): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  for (const [name, t] of tensors) {
    if (strip !== undefined && !name.endsWith(`.${strip}`)) continue;
    if (t.dtype !== 'F32' || !(t.data instanceof Float32Array)) throw new Error(`${source}: tensor ${name} is ${t.dtype}; this trainer reads F32 checkpoints`);
    out.set(strip !== undefined ? name.slice(0, -(strip.length + 1)) : name, t.data);
  }
  return out;
}

/**
 * Load parameter values from checkpoint tensors; a different model shape is an error naming the
 * tensor. `partial`: parameters the checkpoint lacks keep their values (QAT parameters a
 * conversion adds: LSQ step sizes, static activation clips).
 */
export function importModelTensors(params: ParameterSet, tensors: ReadonlyMap<string, SafetensorsTensor>, source: string, options: { partial?: boolean } = {}): void {
  const values = f32Values(tensors, source);
  for (const name of values.keys()) {
    if (!params.has(name)) throw new Error(`${source}: tensor ${name} is not a parameter of this model; the checkpoint is from a different model`);
    const shape = params.getParam(name).shape;
    const saved = tensors.get(name)!.shape;
    if (saved.length !== shape.length || saved.some((d, i) => d !== shape[i])) {
      throw new Error(`${source}: ${name} has shape (${saved.join(',')}) but this model's is (${shape.join(',')}); the checkpoint is from a different model shape`);
    }
  }
  try {
    params.importValues(values, options);
  } catch (err) {
    throw new Error(`${source}: ${(err as Error).message}`);
  }
}

/** Restore optimizer state saved by `exportOptimizerTensors`. */
export function importOptimizerTensors(opt: TrainerOptimizer, tensors: ReadonlyMap<string, SafetensorsTensor>, meta: OptimizerMeta, source: string): void {
  const kind = optimizerKind(opt);
  if (meta.kind !== kind) throw new Error(`${source}: the checkpoint's optimizer is ${meta.kind}, this run uses ${kind}; resume with the same optimizer`);
  for (const name of tensors.keys()) {
    if (!SUFFIXES[kind].some((s) => name.endsWith(`.${s}`))) throw new Error(`${source}: unexpected tensor ${name} for a ${kind} optimizer`);
  }
  try {
    if (opt instanceof AdamW) {
      opt.importState({ step: meta.step, m: f32Values(tensors, source, 'exp_avg'), v: f32Values(tensors, source, 'exp_avg_sq') });
    } else {
      opt.importState({ step: meta.step, momentum: f32Values(tensors, source, 'momentum_buffer') });
    }
  } catch (err) {
    throw new Error(`${source}: ${(err as Error).message}`);
  }
}
