/**
 * AdaLoRA (Zhang et al. 2023, "Adaptive budget allocation for parameter-efficient fine-tuning"),
 * with Hugging Face PEFT's `AdaLoraConfig` names (peft/tuners/adalora):
 *
 *   ΔW = B·(A ⊙ E)·α/(ranknum + 1e-5)   the SVD form P Λ Q: lora_B (out, r) = P, lora_E (r, 1) = Λ,
 *                                        lora_A (r, in) = Q; ranknum = init_r (as PEFT, while training)
 *   importance   I = |w · ∂L/∂w| per element; Ī ← β1·Ī + (1−β1)·I;  Ū ← β2·Ū + (1−β2)·|I − Ī|;  s = Ī·Ū
 *   triplet i    S_i = s(E_i) + mean_k s(A_ik) + mean_j s(B_ji)
 *   budget b(t)  init_bgt (t ≤ tinit); target_bgt (t > T − tfinal); else
 *                target + (init − target)·(1 − (t − tinit)/(T − tfinal − tinit))³, masked every deltaT steps
 *   masking      E_i = 0 for the init_bgt − b(t) lowest S_i over all projections (ties at the threshold too)
 *   regulariser  loss += orth_reg_weight · Σ_P ‖P Pᵀ − I‖_F / n_P   over every lora_A (A Aᵀ) and lora_B (Bᵀ B)
 *
 * The trainer runs it as a `StepExtension`: the penalty joins the loss; after each optimizer
 * update (PEFT's `update_and_allocate(global_step)`) the scores are updated and E masked. The
 * scores are host f64 arithmetic (no transcendental functions), so every runtime gets the same
 * bits; `state()` carries them (and the mask) for a bit-identical resume.
 *
 * The adapter file is PEFT's: `base_model.model.<module>.lora_A` / `lora_E` / `lora_B` (no
 * `.weight`: PEFT keeps them in ParameterDicts) resized to the kept triplets, and `rank_pattern`
 * in adapter_config.json listing, per module, which of the init_r triplets are kept.
 */
import type { Ptr } from '../backend/backend.js';
import { matmul } from '../autograd/ops/linear.js';
import { add, mul } from '../autograd/ops/elementwise.js';
import { checkArgs, recordOp } from '../autograd/ops/common.js';
import type { JsonObject } from '../io/checkpoint.js';
import type { Heap } from '../tensor/heap.js';
import type { ParameterSet } from '../tensor/parameters.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Rng } from '../util/rng.js';
import { type LoraConfig, type LoraConfigJSON, PeftConfigError, resolveLoraConfig } from './config.js';

/** `adapter_config.json` of an AdaLoRA adapter: LoraConfig's keys plus AdaLoraConfig's. */
export interface AdaLoraConfigJSON extends Omit<LoraConfigJSON, 'rank_pattern'> {
  target_r?: number;
  init_r?: number;
  tinit?: number;
  tfinal?: number;
  deltaT?: number;
  beta1?: number;
  beta2?: number;
  orth_reg_weight?: number;
  total_step?: number | null;
  /** Saved adapters: per module (`base_model.model.<module>.lora_E`), which of the init_r triplets are kept. */
  rank_pattern?: Record<string, unknown>;
}

/** AdaLoRA's own settings (the LoRA part — targets, alpha, dropout — is a `LoraConfig` with r = init_r). */
export interface AdaLoraSettings {
  initR: number;
  targetR: number;
  tinit: number;
  tfinal: number;
  deltaT: number;
  beta1: number;
  beta2: number;
  orthRegWeight: number;
  /** T, the run's total steps (PEFT requires it; the CLI sets it from --iters). */
  totalStep: number;
}

const ADA_KEYS = ['target_r', 'init_r', 'tinit', 'tfinal', 'deltaT', 'beta1', 'beta2', 'orth_reg_weight', 'total_step', 'rank_pattern'] as const;

/**
 * Validate an AdaLoRA config (PEFT's defaults: init_r 12, target_r 8, tinit 0, tfinal 0, deltaT 1,
 * beta1 = beta2 = 0.85, orth_reg_weight 0.5, lora_alpha 8). `totalStep` fills `total_step` when
 * the JSON has none. Throws `PeftConfigError` naming the key.
 */
export function resolveAdaLoraConfig(json: AdaLoraConfigJSON, totalStep: number | null, where = 'AdaLoRA config'): { lora: LoraConfig; ada: AdaLoraSettings } {
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new PeftConfigError(`${where}: expected a JSON object, got ${JSON.stringify(json)}`);
  if (json.peft_type !== undefined && json.peft_type !== 'ADALORA') throw new PeftConfigError(`${where}: peft_type is ${JSON.stringify(json.peft_type)}, expected "ADALORA"`);
  const int = (key: string, v: unknown, min: number): number => {
    if (!(typeof v === 'number' && Number.isInteger(v) && v >= min)) throw new PeftConfigError(`${where}: ${key} must be an integer >= ${min}, got ${JSON.stringify(v)}`);
    return v;
  };
  const unit = (key: string, v: unknown): number => {
    if (!(typeof v === 'number' && v > 0 && v < 1)) throw new PeftConfigError(`${where}: ${key} must be in (0, 1), got ${JSON.stringify(v)}`);
    return v;
  };
  const initR = int('init_r', json.init_r ?? 12, 1);
  const targetR = int('target_r', json.target_r ?? 8, 1);
  if (targetR > initR) throw new PeftConfigError(`${where}: target_r ${targetR} is larger than init_r ${initR}; the budget only shrinks`);
  const tinit = int('tinit', json.tinit ?? 0, 0);
  const tfinal = int('tfinal', json.tfinal ?? 0, 0);
  const deltaT = int('deltaT', json.deltaT ?? 1, 1);
  const beta1 = unit('beta1', json.beta1 ?? 0.85);
  const beta2 = unit('beta2', json.beta2 ?? 0.85);
  const orthRegWeight = json.orth_reg_weight ?? 0.5;
  if (!(typeof orthRegWeight === 'number' && Number.isFinite(orthRegWeight) && orthRegWeight >= 0)) throw new PeftConfigError(`${where}: orth_reg_weight must be a number >= 0, got ${JSON.stringify(orthRegWeight)}`);
  const T = json.total_step ?? totalStep;
  if (T === null || T === undefined) throw new PeftConfigError(`${where}: total_step is needed (the run's steps; the budget schedule ends there)`);
  int('total_step', T, 1);
  if (tinit + tfinal >= T) throw new PeftConfigError(`${where}: tinit ${tinit} + tfinal ${tfinal} must be less than total_step ${T}, to leave steps for the budget to shrink`);
  // the LoRA part: r is init_r; rank_pattern here is AdaLoRA's mask (not LoRA's ranks)
  const loraJson = { ...json, r: initR } as Record<string, unknown>;
  delete loraJson.peft_type;
  for (const k of ADA_KEYS) delete loraJson[k];
  const lora = resolveLoraConfig(loraJson as LoraConfigJSON, where);
  return { lora, ada: { initR, targetR, tinit, tfinal, deltaT, beta1, beta2, orthRegWeight, totalStep: T } };
}

/** The rank budget at `step` and whether to mask then (PEFT's `budget_schedule`). */
export function adaLoraBudget(ada: AdaLoraSettings, initBudget: number, targetBudget: number, step: number): { budget: number; mask: boolean } {
  const { tinit, tfinal, totalStep: T, deltaT } = ada;
  if (step <= tinit) return { budget: initBudget, mask: false };
  if (step > T - tfinal) return { budget: targetBudget, mask: true };
  const c = 1 - (step - tinit) / (T - tfinal - tinit);
  return { budget: Math.trunc((initBudget - targetBudget) * c ** 3 + targetBudget), mask: step % deltaT === 0 };
}

// ---- ops ------------------------------------------------------------------------------------

/**
 * `A ⊙ E` of the SVD form: A (r, K) with row i scaled by E_i, E (r, 1). Built from existing ops:
 * `mul(A, E·1ᵀ)` (the broadcast as a rank-1 matmul with a ones row), so both get gradients.
 */
export function svdScaledRows(A: Tensor, E: Tensor): Tensor {
  const heap = checkArgs('svdScaledRows', { A, E });
  const K = A.shape[1]!;
  const ones = heap.empty([1, K]);
  heap.backend.fill(ones.offset, K, 1);
  return mul(A, matmul(E, ones));
}

/** One matrix of the orthogonality regulariser: `‖P Pᵀ − I‖_F` (lora_A, rows) or `‖Pᵀ P − I‖_F` (lora_B, columns). */
export interface OrthTerm {
  P: Tensor;
  /** `'rows'` for lora_A (r, in): A Aᵀ; `'cols'` for lora_B (out, r): Bᵀ B. */
  side: 'rows' | 'cols';
}

/**
 * `weight · Σ ‖G_P − I‖_F / n` over the terms (PEFT's `orth_reg_weight · regu_loss / num_param`),
 * a scalar. Backward: dP += coef·2·(G − I)·P (rows) or 2·P·(G − I) (cols), coef = weight·dout/(n·‖G − I‖).
 * The norms are read back (one readSync of n floats), so this op runs on CPU backends.
 */
export function orthogonalityPenalty(terms: readonly OrthTerm[], weight: number): Tensor {
  const op = 'orthogonalityPenalty';
  if (terms.length === 0) throw new Error(`${op}: no matrices`);
  const heap: Heap = terms[0]!.P.heap;
  const be = heap.backend;
  const n = terms.length;
  const sums = heap.alloc(n);
  const parts = terms.map(({ P, side }, i) => {
    heap.check(P, op, `term ${i}`);
    const [M, N] = P.shape as [number, number];
    const r = side === 'rows' ? M : N;
    const D = heap.alloc(r * r);
    // rows: D = P·Pᵀ (r×r over N); cols: D = Pᵀ·P (r×r over M); then D -= I
    if (side === 'rows') be.gemm('nt', D, P.offset, P.offset, r, r, N, false);
    else be.gemm('tn', D, P.offset, P.offset, r, r, M, false);
    be.axpy(D, -1, identity(heap, r), r * r);
    be.sumSquares(sums + i, D, r * r);
    return { P, side, D, r, M, N };
  });
  const norms = Array.from(be.readSync(sums, n), (s) => Math.sqrt(s));
  const out = heap.empty([]);
  be.write(out.offset, [(weight * norms.reduce((a, b) => a + b, 0)) / n]);
  recordOp(op, terms.map((t) => t.P), out, () => {
    const dout = be.readSync(out.gradPtr, 1)[0]!;
    parts.forEach(({ P, side, D, r, M, N }, i) => {
      if (!P.requiresGrad || norms[i] === 0) return;
      const coef = (2 * weight * dout) / (n * norms[i]!);
      const tmp = heap.alloc(M * N);
      // forward: ‖P·Pᵀ − I‖ (rows), so dP = (D + Dᵀ)·P/‖D‖ = 2·D·P/‖D‖ (D symmetric); cols: 2·P·D/‖D‖
      if (side === 'rows') be.gemm('nn', tmp, D, P.offset, r, N, r, false);
      else be.gemm('nn', tmp, P.offset, D, M, r, r, false);
      be.axpy(heap.gradOf(P), coef, tmp, M * N);
    });
  });
  return out;
}

/** The r×r identity in this step's arena (one per size and step). */
function identity(heap: Heap, r: number): Ptr {
  let cache = identityCache.get(heap);
  if (!cache || cache.generation !== heap.generation) identityCache.set(heap, (cache = { generation: heap.generation, byR: new Map() }));
  let p = cache.byR.get(r);
  if (p === undefined) {
    const v = new Float32Array(r * r);
    for (let d = 0; d < r; d++) v[d * r + d] = 1;
    p = heap.alloc(r * r);
    heap.backend.write(p, v);
    cache.byR.set(r, p);
  }
  return p;
}
const identityCache = new WeakMap<Heap, { generation: number; byR: Map<number, Ptr> }>();

// ---- the rank allocator ---------------------------------------------------------------------

/** One adapted projection part in SVD form. */
export interface SvdAdapter {
  /** The projection's name, e.g. `model.layers.0.self_attn.q_proj`. */
  name: string;
  A: Tensor;
  E: Tensor;
  B: Tensor;
}

/** Element scores of one tensor: the importance EMA Ī and the uncertainty EMA Ū. */
interface Scores {
  ipt: Float64Array;
  unc: Float64Array;
}

/**
 * PEFT's `RankAllocator`: sensitivity scores with EMAs, the cubic budget schedule, and masking of
 * the least important triplets' E. `update(step)` is `update_and_allocate(step)`.
 */
export class RankAllocator {
  readonly ada: AdaLoraSettings;
  readonly adapters: readonly SvdAdapter[];
  readonly initBudget: number;
  readonly targetBudget: number;
  /** Per adapter, which triplets are kept (all true until the first mask). */
  readonly kept: boolean[][];
  private readonly scores = new Map<Tensor, Scores>();
  /** The budget of the last masking (initBudget before any). */
  budget: number;

  constructor(adapters: readonly SvdAdapter[], ada: AdaLoraSettings) {
    if (adapters.length === 0) throw new PeftConfigError('AdaLoRA: no adapted projection');
    this.ada = ada;
    this.adapters = adapters;
    this.initBudget = adapters.reduce((s, a) => s + a.E.shape[0]!, 0);
    this.targetBudget = ada.targetR * adapters.length;
    this.budget = this.initBudget;
    this.kept = adapters.map((a) => Array.from({ length: a.E.shape[0]! }, () => true));
  }

  /** The rank of each adapter now (kept triplets), by projection name. */
  ranks(): Map<string, number> {
    return new Map(this.adapters.map((a, i) => [a.name, this.kept[i]!.filter(Boolean).length]));
  }

  /** After the optimizer update of `step` (gradients still in place): update the scores, then mask by the budget. */
  update(step: number): { budget: number; masked: boolean } {
    const { totalStep: T, tfinal } = this.ada;
    if (step < T - tfinal) this.updateScores();
    const { budget, mask } = adaLoraBudget(this.ada, this.initBudget, this.targetBudget, step);
    if (mask) this.maskToBudget(budget);
    return { budget, masked: mask };
  }

  private updateScores(): void {
    const { beta1, beta2 } = this.ada;
    for (const a of this.adapters) {
      for (const t of [a.A, a.E, a.B]) {
        const be = t.heap.backend;
        const w = be.readSync(t.offset, t.size);
        const g = be.readSync(t.gradPtr, t.size);
        let s = this.scores.get(t);
        if (!s) this.scores.set(t, (s = { ipt: new Float64Array(t.size), unc: new Float64Array(t.size) }));
        for (let i = 0; i < t.size; i++) {
          const ipt = Math.abs(w[i]! * g[i]!);
          s.ipt[i] = beta1 * s.ipt[i]! + (1 - beta1) * ipt;
          s.unc[i] = beta2 * s.unc[i]! + (1 - beta2) * Math.abs(ipt - s.ipt[i]!);
        }
      }
    }
  }

  /** S_i of every triplet of every adapter (PEFT's `_combine_ipt` of the element scores). */
  tripletScores(): Float64Array[] {
    return this.adapters.map((a) => {
      const r = a.E.shape[0]!;
      const K = a.A.shape[1]!;
      const R = a.B.shape[0]!;
      const sc = (t: Tensor, i: number) => {
        const s = this.scores.get(t);
        return s ? s.ipt[i]! * s.unc[i]! : 0;
      };
      const out = new Float64Array(r);
      for (let i = 0; i < r; i++) {
        let mA = 0;
        for (let k = 0; k < K; k++) mA += sc(a.A, i * K + k);
        let mB = 0;
        for (let j = 0; j < R; j++) mB += sc(a.B, j * r + i);
        out[i] = sc(a.E, i) + mA / K + mB / R;
      }
      return out;
    });
  }

  /** Zero the E of the initBudget − budget least important triplets (all at or below the threshold, as PEFT). */
  maskToBudget(budget: number): void {
    this.budget = budget;
    const k = this.initBudget - budget;
    const scores = this.tripletScores();
    if (k <= 0) {
      this.kept.forEach((row) => row.fill(true));
      return;
    }
    const all = Float64Array.from(scores.flatMap((s) => Array.from(s))).sort();
    const threshold = all[k - 1]!;
    this.adapters.forEach((a, i) => {
      const e = Float64Array.from(a.E.heap.backend.readSync(a.E.offset, a.E.size));
      const keep = Array.from(scores[i]!, (s) => !(s <= threshold));
      keep.forEach((kk, j) => {
        if (!kk) e[j] = 0;
      });
      this.kept[i] = keep;
      a.E.heap.backend.write(a.E.offset, e);
    });
  }

  /** Scores and mask for trainer.json (base64 f64), so a resumed run continues bit for bit. */
  state(): JsonObject {
    const tensors: JsonObject[] = [];
    this.adapters.forEach((a) => {
      for (const [part, t] of [['A', a.A], ['E', a.E], ['B', a.B]] as const) {
        const s = this.scores.get(t);
        if (s) tensors.push({ name: a.name, part, ipt: f64ToBase64(s.ipt), unc: f64ToBase64(s.unc) });
      }
    });
    return { budget: this.budget, kept: this.kept.map((row) => row.map((k) => (k ? 1 : 0)).join('')), scores: tensors };
  }

  restore(state: JsonObject | undefined, source: string): void {
    if (!state) return;
    const s = state as { budget?: number; kept?: string[]; scores?: { name: string; part: 'A' | 'E' | 'B'; ipt: string; unc: string }[] };
    if (!Array.isArray(s.kept) || s.kept.length !== this.adapters.length || typeof s.budget !== 'number') throw new Error(`${source}: AdaLoRA state does not match this model's ${this.adapters.length} adapters`);
    this.budget = s.budget;
    s.kept.forEach((row, i) => (this.kept[i] = [...row].map((c) => c === '1')));
    this.scores.clear();
    for (const e of s.scores ?? []) {
      const a = this.adapters.find((x) => x.name === e.name);
      if (!a) throw new Error(`${source}: AdaLoRA state names ${e.name}, which this model does not adapt`);
      const t = e.part === 'A' ? a.A : e.part === 'E' ? a.E : a.B;
      this.scores.set(t, { ipt: base64ToF64(e.ipt, t.size, source), unc: base64ToF64(e.unc, t.size, source) });
    }
  }
}

function f64ToBase64(a: Float64Array): string {
  const bytes = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

function base64ToF64(b64: string, n: number, source: string): Float64Array {
  const s = atob(b64);
  if (s.length !== n * 8) throw new Error(`${source}: AdaLoRA score array of ${s.length / 8} values, expected ${n}`);
  const bytes = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) bytes[i] = s.charCodeAt(i);
  return new Float64Array(bytes.buffer);
}

// ---- initialisation and files ----------------------------------------------------------------

/** PEFT's init: A, B ~ N(0, 0.02²), E = 0 (so training starts at the base). */
export function initSvdAdapters(adapters: readonly SvdAdapter[], rng: Rng): void {
  for (const a of adapters) {
    for (const t of [a.A, a.B]) {
      const v = new Float64Array(t.size);
      rng.fillNormal(v, 0, 0.02);
      t.heap.backend.write(t.offset, v);
    }
    a.E.heap.backend.fill(a.E.offset, a.E.size, 0);
  }
}

/** PEFT's AdaLoRA scale α/(ranknum + 1e-5), ranknum = init_r (`lora_alpha` 0 means r, as PEFT). */
export function adaLoraScale(alpha: number, initR: number): number {
  return (alpha > 0 ? alpha : initR) / (initR + 1e-5);
}

/** The saved tensors in PEFT's keys, resized to the kept triplets, and the rank_pattern for adapter_config.json. */
export function adaLoraFileTensors(allocator: RankAllocator, prefix = 'base_model.model.'): { tensors: Map<string, { shape: number[]; data: Float32Array }>; rankPattern: Record<string, boolean[]> } {
  const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
  const rankPattern: Record<string, boolean[]> = {};
  allocator.adapters.forEach((a, i) => {
    const keep = allocator.kept[i]!;
    const rows = keep.flatMap((k, j) => (k ? [j] : []));
    const r = a.E.shape[0]!, K = a.A.shape[1]!, R = a.B.shape[0]!;
    const be = a.A.heap.backend;
    const Av = be.readSync(a.A.offset, a.A.size), Ev = be.readSync(a.E.offset, a.E.size), Bv = be.readSync(a.B.offset, a.B.size);
    const k = rows.length;
    const A = new Float32Array(k * K), E = new Float32Array(k), B = new Float32Array(R * k);
    rows.forEach((j, q) => {
      A.set(Av.subarray(j * K, (j + 1) * K), q * K);
      E[q] = Ev[j]!;
      for (let o = 0; o < R; o++) B[o * k + q] = Bv[o * r + j]!;
    });
    tensors.set(`${prefix}${a.name}.lora_A`, { shape: [k, K], data: A });
    tensors.set(`${prefix}${a.name}.lora_E`, { shape: [k, 1], data: E });
    tensors.set(`${prefix}${a.name}.lora_B`, { shape: [R, k], data: B });
    rankPattern[`${prefix}${a.name}.lora_E`] = [...keep];
  });
  return { tensors, rankPattern };
}

/**
 * Load PEFT-format AdaLoRA tensors (resized by `rank_pattern`) into init_r-sized adapters: kept
 * triplets go back to their slots, the others get E = 0. Unknown keys and other shapes are refused
 * by name before anything is written.
 */
export function loadAdaLoraTensors(allocator: RankAllocator, tensors: ReadonlyMap<string, { shape: readonly number[]; data: ArrayLike<number> }>, rankPattern: Record<string, unknown>, prefix = 'base_model.model.'): void {
  const byKey = new Map<string, { a: SvdAdapter; i: number; part: 'A' | 'E' | 'B' }>();
  allocator.adapters.forEach((a, i) => (['A', 'E', 'B'] as const).forEach((part) => byKey.set(`${prefix}${a.name}.lora_${part}`, { a, i, part })));
  for (const key of tensors.keys()) {
    if (!byKey.has(key)) throw new PeftConfigError(`AdaLoRA adapter: unknown tensor ${key}; keys look like ${prefix}${allocator.adapters[0]!.name}.lora_A / lora_E / lora_B`);
  }
  const plans = allocator.adapters.map((a, i) => {
    const r = a.E.shape[0]!, K = a.A.shape[1]!, R = a.B.shape[0]!;
    const pat = rankPattern[`${prefix}${a.name}.lora_E`];
    const keep = pat === undefined ? Array.from({ length: r }, () => true) : pat;
    if (!Array.isArray(keep) || keep.length !== r || keep.some((x) => typeof x !== 'boolean')) {
      throw new PeftConfigError(`AdaLoRA adapter: rank_pattern of ${a.name} must list ${r} booleans (init_r), got ${JSON.stringify(pat)}`);
    }
    const k = keep.filter(Boolean).length;
    const get = (part: 'A' | 'E' | 'B', shape: number[]) => {
      const t = tensors.get(`${prefix}${a.name}.lora_${part}`);
      if (!t) throw new PeftConfigError(`AdaLoRA adapter: missing ${prefix}${a.name}.lora_${part}`);
      if (t.shape.length !== 2 || t.shape[0] !== shape[0] || t.shape[1] !== shape[1]) {
        throw new PeftConfigError(`AdaLoRA adapter: ${a.name}.lora_${part} has shape (${t.shape.join(', ')}) but this model needs (${shape.join(', ')}); the adapter is of another base (or another rank_pattern)`);
      }
      if (t.data.length !== shape[0]! * shape[1]!) throw new PeftConfigError(`AdaLoRA adapter: ${a.name}.lora_${part} holds ${t.data.length} values for shape (${shape.join(', ')}); the file is damaged or of another base`);
      return t.data;
    };
    return { a, i, keep: keep as boolean[], A: get('A', [k, K]), E: get('E', [k, 1]), B: get('B', [R, k]), r, K, R, k };
  });
  for (const { a, i, keep, A, E, B, r, K, R, k } of plans) {
    const Av = new Float32Array(r * K), Ev = new Float32Array(r), Bv = new Float32Array(R * r);
    let q = 0;
    keep.forEach((kk, j) => {
      if (!kk) return;
      for (let c = 0; c < K; c++) Av[j * K + c] = A[q * K + c]!;
      Ev[j] = E[q]!;
      for (let o = 0; o < R; o++) Bv[o * r + j] = B[o * k + q]!;
      q++;
    });
    const be = a.A.heap.backend;
    be.write(a.A.offset, Av);
    be.write(a.E.offset, Ev);
    be.write(a.B.offset, Bv);
    allocator.kept[i] = [...keep];
  }
}

/** adapter_config.json of an AdaLoRA adapter: the LoraConfig JSON with peft_type ADALORA and AdaLoraConfig's keys. */
export function adaLoraConfigJSON(loraJson: LoraConfigJSON, ada: AdaLoraSettings, rankPattern: Record<string, boolean[]>): AdaLoraConfigJSON {
  const { rank_pattern: _loraRanks, ...rest } = loraJson;
  return {
    ...rest,
    peft_type: 'ADALORA',
    r: ada.initR,
    init_r: ada.initR,
    target_r: ada.targetR,
    tinit: ada.tinit,
    tfinal: ada.tfinal,
    deltaT: ada.deltaT,
    beta1: ada.beta1,
    beta2: ada.beta2,
    orth_reg_weight: ada.orthRegWeight,
    total_step: ada.totalStep,
    rank_pattern: rankPattern,
  };
}

/** The loss with AdaLoRA's regulariser: `loss + orth_reg_weight · Σ‖·‖_F / n` (no term when the weight is 0). */
export function adaLoraLoss(loss: Tensor, adapters: readonly SvdAdapter[], orthRegWeight: number): Tensor {
  if (orthRegWeight === 0) return loss;
  const terms: OrthTerm[] = adapters.flatMap((a) => [{ P: a.A, side: 'rows' as const }, { P: a.B, side: 'cols' as const }]);
  return add(loss, orthogonalityPenalty(terms, orthRegWeight));
}

// ---- on a PeftModel --------------------------------------------------------------------------

/**
 * AdaLoRA on a `PeftModel` built with the LoRA part (r = init_r): `attach` before `materialize`
 * registers every adapter's `lora_E` (r, 1) in the trainable set and sets PEFT's scale; `init`
 * after it sets A, B ~ N(0, 0.02²), E = 0; `extension()` is the trainer's hook (the penalty in
 * the loss, the rank allocation after each update, the scores in checkpoints).
 *
 * @example
 * const { lora, ada } = resolveAdaLoraConfig({ init_r: 12, target_r: 8, target_modules: 'all-linear' }, iters);
 * const peft = PeftModel.build({ model, lora });
 * const adalora = AdaLora.attach(peft, ada);
 * peft.materialize(heap, rng); adalora.init(rng);
 * new Trainer({ model: peft, ..., options: { ..., extension: adalora.extension() } });
 */
export class AdaLora {
  readonly ada: AdaLoraSettings;
  readonly adapters: readonly SvdAdapter[];
  readonly allocator: RankAllocator;
  private readonly peft: AdaLoraHost;

  private constructor(peft: AdaLoraHost, ada: AdaLoraSettings, adapters: SvdAdapter[]) {
    this.peft = peft;
    this.ada = ada;
    this.adapters = adapters;
    this.allocator = new RankAllocator(adapters, ada);
  }

  /** Register lora_E for every adapter of `peft` (not yet materialized) and switch the adapters to the SVD form. */
  static attach(peft: AdaLoraHost, ada: AdaLoraSettings): AdaLora {
    if (peft.params.materialized) throw new PeftConfigError('AdaLoRA.attach: the PeftModel is already materialized; attach before materialize(heap, rng)');
    const adapters: SvdAdapter[] = [];
    for (const layer of peft.layers) {
      for (const a of layer.adapters) {
        if (a.A.shape[0] !== ada.initR) throw new PeftConfigError(`AdaLoRA: ${a.name} has rank ${a.A.shape[0]} but init_r is ${ada.initR} (rank_pattern/alpha_pattern do not apply to AdaLoRA)`);
        const E = peft.params.register(`${a.name}.lora_E`, [ada.initR, 1], { init: { kind: 'zeros' }, decay: true });
        a.E = E;
        a.scale = adaLoraScale(a.alpha, ada.initR);
        adapters.push({ name: a.name, A: a.A, E, B: a.B });
      }
    }
    return new AdaLora(peft, ada, adapters);
  }

  /** PEFT's initialisation of A, B and E (after `peft.materialize`). */
  init(rng: Rng): this {
    initSvdAdapters(this.adapters, rng);
    return this;
  }

  /** The trainer's hook: dropout seeds of the step, the regularised loss, the rank allocation, checkpoint state. */
  extension(): { beforeStep(step: number): void; loss(tokens: Tensor, targets: Tensor, step: number): Tensor; afterUpdate(step: number): void; state(): JsonObject; restore(state: JsonObject | undefined, source: string): void } {
    return {
      beforeStep: (step) => this.peft.beginStep(step),
      loss: (tokens, targets) => {
        const { loss } = this.peft.forward(tokens, targets);
        if (!loss) throw new Error('AdaLoRA: the model returned no loss');
        return adaLoraLoss(loss, this.adapters, this.ada.orthRegWeight);
      },
      afterUpdate: (step) => {
        this.allocator.update(step);
      },
      state: () => this.allocator.state(),
      restore: (state, source) => this.allocator.restore(state, source),
    };
  }
}

/** What AdaLoRA needs of a `PeftModel` (its trainable set, adapted projections, forward and step seeds). */
export interface AdaLoraHost {
  readonly params: ParameterSet;
  readonly layers: readonly { readonly adapters: readonly { name: string; A: Tensor; B: Tensor; alpha: number; scale: number; E?: Tensor }[] }[];
  forward(tokens: Tensor, targets?: Tensor): { loss?: Tensor };
  beginStep(step: number): void;
}
