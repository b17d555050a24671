/**
 * Stream a Hugging Face checkpoint's tensors (`model.safetensors`, or the shards a
 * `model.safetensors.index.json` names) into a `LlamaModel`'s parameters on the heap, tensor by
 * tensor, in file order. Everything is checked first — shards present, every tensor there and
 * none left over, shapes, dtypes — so a bad directory fails with one error before a byte of
 * weights is written. Dense tensors may be F32, F16, BF16 (F64); BitNet projections in the packed
 * offline form are U8 `(⌈out/4⌉, in)` + `weight_scale`, turned into latent weights that quantise
 * to exactly the stored codes and scale (`latentFromTernary`).
 */
import { latentFromTernary } from '../../nn/bitnet.js';
import type { HfModelSpec } from '../../nn/hf-config.js';
import type { LlamaModel } from '../../nn/llama.js';
import type { SafetensorsEntry } from '../safetensors.js';
import { FLOAT_DTYPES, type SafetensorsFile, decodeF32, openSafetensors, readTensorBytes, streamTensorF32 } from './safetensors-stream.js';
import type { HfFiles } from './source.js';

/** Progress of a load: bytes of tensor data read so far out of the total. */
export interface HfLoadProgress {
  file: string;
  tensor: string;
  bytesDone: number;
  bytesTotal: number;
}

/** Options of `loadHfWeights`. */
export interface HfWeightsOptions {
  /** Called after every chunk (at most every 8 MB) with the bytes read so far. */
  onProgress?: (p: HfLoadProgress) => void;
  /**
   * Called once the checkpoint is checked and before the first write: `loadPretrained`
   * materializes the model here, so a mismatched directory fails before the heap grows.
   */
  beforeWrite?: () => void;
}

/** What a load read. */
export interface HfWeightsReport {
  /** The safetensors files read, in order. */
  files: string[];
  /** Tensors written into parameters. */
  tensors: number;
  /** Bytes of tensor data read. */
  bytes: number;
}

/** A checkpoint directory that does not fit the model: the message names the file, the tensor or key, and the fix. */
export class HfCheckpointError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'HfCheckpointError';
  }
}

const INDEX = 'model.safetensors.index.json';
const SINGLE = 'model.safetensors';
/** Non-persistent buffers some exporters still save; they hold nothing the model needs. */
const IGNORED = /\.rotary_emb\.inv_freq$/;

function firstFew(names: readonly string[], n = 5): string {
  return names.slice(0, n).join(', ') + (names.length > n ? `, ... (${names.length} in all)` : '');
}

const shapeText = (s: readonly number[]) => `(${s.join(', ')})`;

/** The safetensors files of a directory: the index's shards, or `model.safetensors`. */
async function listShards(files: HfFiles): Promise<{ shards: string[]; index: Map<string, string> | null }> {
  if (await files.exists(INDEX)) {
    const where = `${files.dir}/${INDEX}`;
    let parsed: unknown;
    try {
      parsed = JSON.parse(await files.readText(INDEX));
    } catch (err) {
      throw new HfCheckpointError(`${where}: not valid JSON (${(err as Error).message}); re-download the file`);
    }
    const map = (parsed as { weight_map?: unknown } | null)?.weight_map;
    if (map === null || typeof map !== 'object' || Array.isArray(map) || !Object.values(map as object).every((v) => typeof v === 'string')) {
      throw new HfCheckpointError(`${where}: weight_map must be an object of tensor name → shard file name; re-download the file`);
    }
    const index = new Map(Object.entries(map as Record<string, string>));
    const shards = [...new Set(index.values())].sort();
    for (const shard of shards) {
      if (shard.includes('/') || shard.includes('\\') || shard === '..') throw new HfCheckpointError(`${where}: shard ${JSON.stringify(shard)} is not a file name in the model directory`);
      if (!(await files.exists(shard))) {
        const held = [...index].filter(([, s]) => s === shard).map(([n]) => n);
        throw new HfCheckpointError(`${where}: weight_map lists shard ${shard} (holding ${firstFew(held, 3)}), but ${files.dir}/${shard} does not exist; download every shard the index names`);
      }
    }
    return { shards, index };
  }
  if (await files.exists(SINGLE)) return { shards: [SINGLE], index: null };
  let found: string[] = [];
  try {
    found = await files.list();
  } catch {
    // the directory itself may be missing: the message below says what to give
  }
  const bin = found.some((n) => n.endsWith('.bin') || n.endsWith('.pt') || n.endsWith('.pth'));
  throw new HfCheckpointError(`${files.dir}: no ${SINGLE} or ${INDEX}${found.length ? ` (found: ${firstFew(found, 8)})` : ''}; ${bin ? 'PyTorch .bin/.pt checkpoints are not read here: save the model with safetensors (model.save_pretrained(dir, safe_serialization=True))' : 'give a Hugging Face model directory with safetensors weights'}`);
}

/** How one parameter is read. */
interface Plan {
  param: string;
  file: SafetensorsFile;
  entry: SafetensorsEntry;
  /** Packed / offline ternary projection: its `weight_scale` tensor and file. */
  scale?: { file: SafetensorsFile; entry: SafetensorsEntry; divides: boolean };
}

/**
 * Load the checkpoint in `files` into `model` (of the config `spec` describes; materialized, or
 * materialized by `options.beforeWrite`).
 * Throws an `HfCheckpointError` — missing or extra tensors (the first few named), a shape that
 * does not match the config (both shapes), a dtype it cannot read, a shard the index names but
 * the directory lacks — before any parameter is written.
 */
export async function loadHfWeights(model: LlamaModel, files: HfFiles, spec: HfModelSpec, options: HfWeightsOptions = {}): Promise<HfWeightsReport> {
  return readCheckpoint(model, files, spec, options, (plans, opened) => {
    options.beforeWrite?.();
    const be = model.params.heap.backend;
    return stream(model, plans, opened, options, (param, start, values) => be.write(model.params.getParam(param).offset + start, values));
  });
}

/**
 * The same checks and conversions as `loadHfWeights`, into f32 arrays by parameter name instead
 * of a heap (`model` need not be materialized): what `--from` / `--teacher` of a training run
 * import. Holds one f32 copy of the model.
 */
export async function readHfWeights(model: LlamaModel, files: HfFiles, spec: HfModelSpec, options: HfWeightsOptions = {}): Promise<{ values: Map<string, Float32Array>; report: HfWeightsReport }> {
  const values = new Map<string, Float32Array>();
  const report = await readCheckpoint(model, files, spec, options, (plans, opened) => {
    const sizes = new Map([...model.params].map(([n, t]) => [n, t.size]));
    for (const p of plans) values.set(p.param, new Float32Array(sizes.get(p.param)!));
    return stream(model, plans, opened, options, (param, start, v) => values.get(param)!.set(v, start));
  });
  return { values, report };
}

type WeightSink = (param: string, start: number, values: Float32Array) => void;

async function readCheckpoint(model: LlamaModel, files: HfFiles, spec: HfModelSpec, options: HfWeightsOptions, run: (plans: Plan[], opened: SafetensorsFile[]) => Promise<HfWeightsReport>): Promise<HfWeightsReport> {
  const { shards, index } = await listShards(files);
  const opened: SafetensorsFile[] = [];
  try {
    const where = new Map<string, { file: SafetensorsFile; entry: SafetensorsEntry }>();
    for (const shard of shards) {
      const source = `${files.dir}/${shard}`;
      const file = await openSafetensors(await files.open(shard), source);
      opened.push(file);
      for (const [name, entry] of file.entries) {
        const prev = where.get(name);
        if (prev) throw new HfCheckpointError(`${source}: tensor ${name} is also in ${prev.file.source}; a tensor must be in one shard (re-download the checkpoint)`);
        if (index && index.get(name) !== shard) {
          throw new HfCheckpointError(`${source}: holds tensor ${name}, which ${INDEX} ${index.has(name) ? `puts in ${index.get(name)}` : 'does not list'}; the index and the shards disagree (re-download the checkpoint)`);
        }
        where.set(name, { file, entry });
      }
    }
    if (index) {
      const absent = [...index.keys()].filter((n) => !where.has(n));
      if (absent.length > 0) throw new HfCheckpointError(`${files.dir}/${INDEX}: lists tensors its shards do not hold: ${firstFew(absent)}; re-download the checkpoint`);
    }
    return await run(planLoad(model, spec, where, files.dir), opened);
  } finally {
    await Promise.all(opened.map((f) => f.reader.close().catch(() => {})));
  }
}

function planLoad(model: LlamaModel, spec: HfModelSpec, where: Map<string, { file: SafetensorsFile; entry: SafetensorsEntry }>, dir: string): Plan[] {
  const offline = spec.quantization?.mode === 'offline';
  const divides = spec.quantization?.linearClass === 'bitlinear';
  const projectionWeights = new Set(model.projections().map((p) => `${p.name}.weight`));
  const used = new Set<string>();
  const missing: string[] = [];
  const plans: Plan[] = [];
  const src = (w: { file: SafetensorsFile }) => w.file.source;
  for (const [name, t] of model.params) {
    const w = where.get(name);
    if (!w) {
      missing.push(name);
      continue;
    }
    used.add(name);
    const { entry } = w;
    const packedProjection = offline && projectionWeights.has(name);
    if (packedProjection) {
      const scaleName = `${name.slice(0, -'.weight'.length)}.weight_scale`;
      const sw = where.get(scaleName);
      if (!sw) {
        missing.push(scaleName);
        continue;
      }
      used.add(scaleName);
      const [out, inF] = t.shape as [number, number];
      if (entry.dtype === 'U8') {
        const want = [Math.ceil(out / 4), inF];
        if (entry.shape.length !== 2 || entry.shape[0] !== want[0] || entry.shape[1] !== want[1]) {
          throw new HfCheckpointError(`${src(w)}: tensor ${name} (packed U8) has shape ${shapeText(entry.shape)}, but the config.json model needs ${shapeText(want)} (4 ternary weights a byte along dim 0 of ${shapeText(t.shape)}); the checkpoint does not belong to this config.json`);
        }
      } else if (!FLOAT_DTYPES.includes(entry.dtype)) {
        throw new HfCheckpointError(`${src(w)}: tensor ${name} has dtype ${entry.dtype}; a BitNet projection is U8 (packed) or F32/F16/BF16 (ternary values)`);
      } else if (!sameShape(entry.shape, t.shape)) {
        throw new HfCheckpointError(`${src(w)}: tensor ${name} has shape ${shapeText(entry.shape)}, but the config.json model needs ${shapeText(t.shape)}; the checkpoint does not belong to this config.json`);
      }
      if (!FLOAT_DTYPES.includes(sw.entry.dtype) || sw.entry.shape.reduce((a, d) => a * d, 1) !== 1) {
        throw new HfCheckpointError(`${src(sw)}: tensor ${scaleName} must be one float (per-tensor weight scale), got ${sw.entry.dtype} ${shapeText(sw.entry.shape)}`);
      }
      plans.push({ param: name, file: w.file, entry, scale: { file: sw.file, entry: sw.entry, divides } });
      continue;
    }
    if (!FLOAT_DTYPES.includes(entry.dtype)) {
      const hint = entry.dtype === 'U8' && projectionWeights.has(name)
        ? ' (a packed BitNet weight, but config.json has no quantization_config with quantization_mode "offline")'
        : '; supported: F32, F16, BF16 (and U8 for packed BitNet projections)';
      throw new HfCheckpointError(`${src(w)}: tensor ${name} has dtype ${entry.dtype}, which this loader cannot read as a dense weight${hint}`);
    }
    if (!sameShape(entry.shape, t.shape)) {
      throw new HfCheckpointError(`${src(w)}: tensor ${name} has shape ${shapeText(entry.shape)}, but the config.json model needs ${shapeText(t.shape)}; the checkpoint does not belong to this config.json (check hidden_size, intermediate_size, num_key_value_heads, head_dim, vocab_size)`);
    }
    plans.push({ param: name, file: w.file, entry });
  }
  const extra = [...where.keys()].filter((n) => !used.has(n) && !IGNORED.test(n) && !(n === 'lm_head.weight' && model.config.tiedHead));
  if (missing.length > 0 || extra.length > 0) {
    const parts: string[] = [];
    if (missing.length > 0) parts.push(`missing tensor${missing.length > 1 ? 's' : ''} ${firstFew(missing)}`);
    if (extra.length > 0) parts.push(`tensor${extra.length > 1 ? 's' : ''} the model does not have: ${firstFew(extra)}`);
    const quantHint = extra.some((n) => n.endsWith('.weight_scale')) && !offline
      ? ' (weight_scale tensors belong to a packed checkpoint: config.json needs quantization_config with quantization_mode "offline")'
      : missing.some((n) => n.endsWith('.weight_scale')) ? ' (config.json says quantization_mode "offline", but the checkpoint has no weight_scale: it is the online -bf16 form; set quantization_mode "online")' : '';
    throw new HfCheckpointError(`${dir}: the checkpoint does not match its config.json (${spec.architecture}, ${model.config.layers} layers): ${parts.join('; ')}${quantHint}; use the config.json that came with these weights`);
  }
  // file order: each shard read front to back
  const order = new Map<SafetensorsFile, number>();
  plans.forEach((p) => order.set(p.file, order.get(p.file) ?? order.size));
  return plans.sort((a, b) => order.get(a.file)! - order.get(b.file)! || a.entry.dataOffsets[0] - b.entry.dataOffsets[0]);
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** The ternary codes (out, in) of a packed U8 (⌈out/4⌉, in) tensor: row block i in bits 2i..2i+1, value + 1. */
export function unpackTernaryRows(packed: Uint8Array, out: number, inFeatures: number, source: string, name: string): Int8Array {
  const rows = Math.ceil(out / 4);
  const codes = new Int8Array(out * inFeatures);
  for (let i = 0; i < 4; i++) {
    for (let r = 0; r < rows; r++) {
      const row = i * rows + r;
      if (row >= out) break;
      for (let c = 0; c < inFeatures; c++) {
        const v = (packed[r * inFeatures + c]! >> (2 * i)) & 3;
        if (v === 3) throw new HfCheckpointError(`${source}: tensor ${name} holds the 2-bit value 3 at packed row ${r}, column ${c} (bits ${2 * i}..${2 * i + 1}); packed ternary weights are value + 1 in {0, 1, 2}; the file is corrupt`);
        codes[row * inFeatures + c] = v - 1;
      }
    }
  }
  return codes;
}

async function stream(model: LlamaModel, plans: Plan[], opened: SafetensorsFile[], options: HfWeightsOptions, sink: WeightSink): Promise<HfWeightsReport> {
  const shapes = new Map([...model.params].map(([n, t]) => [n, t.shape]));
  const bytesTotal = plans.reduce((a, p) => a + (p.entry.dataOffsets[1] - p.entry.dataOffsets[0]) + (p.scale ? p.scale.entry.dataOffsets[1] - p.scale.entry.dataOffsets[0] : 0), 0);
  let bytesDone = 0;
  const report = (file: string, tensor: string, n: number) => {
    bytesDone += n;
    options.onProgress?.({ file, tensor, bytesDone, bytesTotal });
  };
  for (const plan of plans) {
    const shape = shapes.get(plan.param)!;
    if (!plan.scale) {
      await streamTensorF32(plan.file, plan.param, (values, start) => sink(plan.param, start, values), (n) => report(plan.file.source, plan.param, n));
      continue;
    }
    // offline BitNet projection: codes + one scale → latent weights quantising to them
    const scaleBytes = await readTensorBytes(plan.scale.file, scaleNameOf(plan.param));
    const sv = new Float32Array(1);
    decodeF32(plan.scale.entry.dtype, scaleBytes, sv, 0);
    const stored = sv[0]!;
    if (!(Number.isFinite(stored) && stored > 0)) throw new HfCheckpointError(`${plan.scale.file.source}: tensor ${scaleNameOf(plan.param)} is ${stored}; a weight scale must be a finite number > 0 (the file is corrupt)`);
    // bitlinear: y = xq·Wq / (s_x · weight_scale), so weight_scale = s; autobitlinear offline: y = (xq/s_x)·Wq · weight_scale, so s = 1/weight_scale
    const s = plan.scale.divides ? stored : 1 / stored;
    const [out, inF] = shape as [number, number];
    let codes: ArrayLike<number>;
    if (plan.entry.dtype === 'U8') {
      codes = unpackTernaryRows(await readTensorBytes(plan.file, plan.param), out, inF, plan.file.source, plan.param);
    } else {
      const vals = new Float32Array(out * inF);
      await streamTensorF32(plan.file, plan.param, (v, start) => vals.set(v, start));
      codes = vals;
    }
    const latent = new Float32Array(out * inF);
    try {
      latentFromTernary(codes, s, latent);
    } catch (err) {
      throw new HfCheckpointError(`${plan.file.source}: tensor ${plan.param}: ${(err as Error).message}`);
    }
    sink(plan.param, 0, latent);
    report(plan.file.source, plan.param, plan.entry.dataOffsets[1] - plan.entry.dataOffsets[0] + scaleBytes.length);
  }
  return { files: opened.map((f) => f.source), tensors: plans.length, bytes: bytesDone };
}

function scaleNameOf(weightName: string): string {
  return `${weightName.slice(0, -'.weight'.length)}.weight_scale`;
}
