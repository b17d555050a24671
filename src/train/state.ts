/**
 * Model and optimizer state <-> checkpoint tensors.
 *
 *   model.safetensors       `<param>` (F32, the parameter's shape)
 *   optimizer.safetensors   AdamW: `<param>.exp_avg`, `<param>.exp_avg_sq` (PyTorch's names);
 *                           SGD: `<param>.momentum_buffer`;
 *                           AdamW8bit: `adamw8bit.exp_avg.codes` (U8, one a value of the whole
 *                           parameter block, padding included), `adamw8bit.exp_avg.absmax` (F32,
 *                           one per 256-block of each range), `adamw8bit.exp_avg.qmap` (F32, the 256
 *                           entries the codes index), and the same three for `exp_avg_sq`
 *   trainer.json `extra.optimizer`  `{ kind, step }` (AdamW8bit adds `blockSize`: 256)
 *
 * A new optimizer kind changes no file layout, so the checkpoint format version stays; a build
 * that does not know `adamw8bit` refuses such a checkpoint by its kind. An `adamw` checkpoint
 * resumed with AdamW8bit is converted (m and v quantised once, `AdamW8bit.importAdamWState`); an
 * `adamw8bit` one resumed with AdamW is refused (the f32 moments are gone).
 *
 * Values are copied as f32, the wasm backend's element type, so a save/load round trip is exact
 * (a `js` backend with `dtype: 'f64'` loses bits here; resume bit-identity needs f32 memory).
 */
import type { SafetensorsTensor } from '../io/safetensors.js';
import { AdamW } from '../optim/adamw.js';
import { AdamW8bit } from '../optim/adamw8bit.js';
import { BLOCKWISE8_BLOCK } from '../quant/dynamic-map.js';
import { SGD } from '../optim/sgd.js';
import type { ParameterSet } from '../tensor/parameters.js';

/** The optimizers the trainer drives. */
export type TrainerOptimizer = AdamW | AdamW8bit | SGD;

/** The optimizer kinds a checkpoint records. */
export type OptimizerKind = 'adamw' | 'adamw8bit' | 'sgd';

/** What trainer.json records about the optimizer. */
export interface OptimizerMeta {
  kind: OptimizerKind;
  step: number;
  /** AdamW8bit: elements per absmax block. */
  blockSize?: number;
}

const SUFFIXES = { adamw: ['exp_avg', 'exp_avg_sq'], sgd: ['momentum_buffer'] } as const;
const ADAMW8BIT_TENSORS = ['exp_avg', 'exp_avg_sq'].flatMap((s) => ['codes', 'absmax', 'qmap'].map((part) => `adamw8bit.${s}.${part}`));

export function optimizerKind(opt: TrainerOptimizer): OptimizerKind {
  if (opt instanceof AdamW) return 'adamw';
  if (opt instanceof AdamW8bit) return 'adamw8bit';
  if (opt instanceof SGD) return 'sgd';
  throw new Error('trainer: the optimizer must be an AdamW, AdamW8bit or SGD instance');
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
  if (opt instanceof AdamW8bit) {
    const s = await opt.exportState();
    const tensors = new Map<string, SafetensorsTensor>();
    for (const [name, q, map] of [['exp_avg', s.m, s.signedMap], ['exp_avg_sq', s.v, s.unsignedMap]] as const) {
      tensors.set(`adamw8bit.${name}.codes`, { dtype: 'U8', shape: [q.codes.length], data: q.codes });
      tensors.set(`adamw8bit.${name}.absmax`, { dtype: 'F32', shape: [q.absmax.length], data: q.absmax });
      tensors.set(`adamw8bit.${name}.qmap`, { dtype: 'F32', shape: [map.length], data: map });
    }
    return { tensors, meta: { kind, step: s.step, blockSize: BLOCKWISE8_BLOCK } };
  }
  const s = await opt.exportState();
  return { tensors: asTensors(opt.params, s.momentum, 'momentum_buffer'), meta: { kind, step: s.step } };
}

/** The 8-bit state tensors of an `adamw8bit` checkpoint, dtype- and presence-checked. */
function adamw8bitState(tensors: ReadonlyMap<string, SafetensorsTensor>, step: number, source: string) {
  for (const name of tensors.keys()) {
    if (!ADAMW8BIT_TENSORS.includes(name)) throw new Error(`${source}: unexpected tensor ${name} for an adamw8bit optimizer`);
  }
  const get = (name: string, dtype: 'U8' | 'F32') => {
    const t = tensors.get(name);
    if (!t) throw new Error(`${source}: tensor ${name} is missing (an adamw8bit checkpoint holds ${ADAMW8BIT_TENSORS.join(', ')})`);
    if (t.dtype !== dtype) throw new Error(`${source}: tensor ${name} is ${t.dtype}, expected ${dtype}`);
    return t.data;
  };
  const moment = (s: string) => ({ codes: get(`adamw8bit.${s}.codes`, 'U8') as Uint8Array, absmax: get(`adamw8bit.${s}.absmax`, 'F32') as Float32Array });
  return {
    step, m: moment('exp_avg'), v: moment('exp_avg_sq'),
    signedMap: get('adamw8bit.exp_avg.qmap', 'F32') as Float32Array, unsignedMap: get('adamw8bit.exp_avg_sq.qmap', 'F32') as Float32Array,
  };
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
  // documented conversion: f32 AdamW moments quantised once into the 8-bit state
  const converting = meta.kind === 'adamw' && opt instanceof AdamW8bit;
  if (meta.kind !== kind && !converting) {
    const why = meta.kind === 'adamw8bit' ? ' (its m and v are 8-bit codes; the f32 moments cannot be recovered: resume with --optimizer adamw8bit)' : '';
    throw new Error(`${source}: the checkpoint's optimizer is ${meta.kind}, this run uses ${kind}${why}; resume with the same optimizer`);
  }
  if (kind === 'adamw8bit' && !converting) {
    if (meta.blockSize !== undefined && meta.blockSize !== BLOCKWISE8_BLOCK) throw new Error(`${source}: the 8-bit state has blocks of ${meta.blockSize}, this build uses ${BLOCKWISE8_BLOCK}`);
    const state = adamw8bitState(tensors, meta.step, source);
    try {
      (opt as AdamW8bit).importState(state);
    } catch (err) {
      throw new Error(`${source}: ${(err as Error).message}`);
    }
    return;
  }
  const suffixes = SUFFIXES[converting ? 'adamw' : (kind as 'adamw' | 'sgd')];
  for (const name of tensors.keys()) {
    if (!suffixes.some((s) => name.endsWith(`.${s}`))) throw new Error(`${source}: unexpected tensor ${name} for a ${meta.kind} optimizer`);
  }
  try {
    if (opt instanceof AdamW8bit) {
      opt.importAdamWState({ step: meta.step, m: f32Values(tensors, source, 'exp_avg'), v: f32Values(tensors, source, 'exp_avg_sq') });
    } else if (opt instanceof AdamW) {
      opt.importState({ step: meta.step, m: f32Values(tensors, source, 'exp_avg'), v: f32Values(tensors, source, 'exp_avg_sq') });
    } else {
      opt.importState({ step: meta.step, momentum: f32Values(tensors, source, 'momentum_buffer') });
    }
  } catch (err) {
    throw new Error(`${source}: ${(err as Error).message}`);
  }
}
