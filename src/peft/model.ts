/**
 * `PeftModel`: a base model with its projections replaced by `LoraProjection`s (DESIGN.md
 * decision 11: PEFT wraps projections through the `LinearFactory` seam; it does not fork models).
 *
 *   base (frozen)   the base GPT's own parameters (embeddings, norms, LM head, dense projection
 *                   weights): no gradient flows to them and no optimizer state exists for them;
 *                   packed bases (ternary codes, NF4) in static buffers of their own
 *   params          the trainable tensors only: lora_A / lora_B, trained biases, modules_to_save
 *                   copies. The optimizer is built over this set, so its m and v cover nothing else.
 *
 * Life cycle: `PeftModel.build` → `materialize(heap, rng)` → `loadBase(tensors)` (or
 * `initBaseRandom`) → train → `adapterTensors()` (PEFT's names, ./format.ts).
 */
import type { Heap } from '../tensor/heap.js';
import { ParameterSet } from '../tensor/parameters.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Rng } from '../util/rng.js';
import { GPT, type GPTConfig } from '../nn/gpt.js';
import { LlamaModel, type LlamaConfig, resolveLlamaConfig } from '../nn/llama.js';
import type { LinearFactory, LinearSpec } from '../nn/linear.js';
import { bitLinearNormName, projectionNames, resolveBitLinearOptions } from '../nn/bitlinear.js';
import { type ModelConfig, bitLinearOptionsOf, createModel } from '../train/model.js';
import { weightScaleGroup } from '../quant/layout.js';
import { type LoraConfig, PeftConfigError, loraScale } from './config.js';
import { adapterShape, selectTargets } from './targets.js';
import { FrozenDense, FrozenTernary, type FrozenTernaryOptions, type PackedBase } from './frozen.js';
import { type LoraAdapter, LoraProjection, type ProjectionBase } from './lora.js';

/** How the frozen base's projections are stored: f32, packed ternary (BitLinear models) or NF4 (QLoRA). */
export type BaseKind = 'dense' | 'ternary' | 'nf4';

/** Builds the packed base of one (stacked) projection for a base kind other than dense/ternary (NF4: ./nf4-base.ts). */
export type PackedBaseFactory = (outFeatures: number, inFeatures: number, names: readonly string[]) => PackedBase;

/**
 * The base model: this library's GPT (a checkpoint's `config.model`), or a Hugging Face
 * LLaMA / BitNet family model (`LlamaConfig`, e.g. from `llamaConfigFromHf`).
 */
export type PeftBaseConfig = { family: 'gpt'; config: ModelConfig } | { family: 'llama'; config: LlamaConfig };

/** What a PEFT model needs of its base model. */
export interface PeftBaseModel {
  readonly params: ParameterSet;
  readonly config: { readonly contextLength: number; readonly vocabSize: number };
  materialize(heap: Heap, rng: Rng): unknown;
  forward(tokens: Tensor, targets?: Tensor): { logits: Tensor; loss?: Tensor };
}

/** Options of {@link PeftModel.build}. */
export interface PeftModelOptions {
  /** The base model: a GPT `ModelConfig` (a checkpoint's `config.model`), or `{ family, config }`. */
  model: ModelConfig | PeftBaseConfig;
  lora: LoraConfig;
  /**
   * Store a dense base's projections in another packed format (QLoRA: NF4). `kind` names it in
   * reports and files. Default: f32 for FP models, packed ternary for BitLinear models.
   */
  quantizedBase?: { kind: BaseKind; create: PackedBaseFactory };
  /**
   * LoRA adapters on the targeted projections (default true). False builds the frozen base alone
   * (packed projections, no adapters) for the methods that train other tensors: prefix and prompt
   * tuning, BitFit (./prefix.ts, ./prompt.ts, ./bitfit.ts register theirs in `params`).
   */
  adapters?: boolean;
}

/** Memory of a PEFT model, in bytes (static memory; activations are the arena's high-water mark). */
export interface PeftMemory {
  /** Frozen base: its f32 tensors plus packed projections. */
  base: number;
  /** Trainable tensors and their gradients. */
  adapters: number;
  /** Arena high-water mark so far (forward + backward of one step). */
  activations: number;
}

/** Trainable copies of whole modules (`modules_to_save`) or biases (`bias: all`), and the frozen tensors they stand in for. */
interface SavedTensor {
  frozen: Tensor;
  trainable: Tensor;
}

const QAT_UNSUPPORTED: (keyof ModelConfig)[] = ['keepFp', 'keepInt8'];

/** The facts of a base config the wrapper needs, for either family. */
function baseFacts(spec: PeftBaseConfig): { bitlinear: boolean; tiedHead: boolean; initStd: number; probe: () => PeftBaseModel; build: (linear: LinearFactory) => PeftBaseModel } {
  if (spec.family === 'llama') {
    const r = resolveLlamaConfig(spec.config);
    return {
      bitlinear: r.bitlinear, tiedHead: r.tiedHead, initStd: r.initStd,
      probe: () => new LlamaModel(spec.config),
      build: (linear) => new LlamaModel({ ...spec.config, linear }),
    };
  }
  const cfg = spec.config;
  return {
    bitlinear: cfg.bitlinear, tiedHead: cfg.tiedHead, initStd: cfg.initStd,
    probe: () => createModel(cfg),
    build: (linear) => {
      const gptConfig: GPTConfig = {
        vocabSize: cfg.vocabSize, contextLength: cfg.contextLength, layers: cfg.layers, heads: cfg.heads, dim: cfg.dim,
        norm: cfg.norm, mlp: cfg.mlp, pos: cfg.pos, bias: cfg.bias, tiedHead: cfg.tiedHead, initStd: cfg.initStd,
        bitlinear: cfg.bitlinear, ...(cfg.bitlinear ? { bitlinearOptions: bitLinearOptionsOf(cfg) } : {}), linear,
      };
      return new GPT(gptConfig);
    },
  };
}

export class PeftModel {
  readonly base: PeftBaseModel;
  /** The trainable tensors (the optimizer's parameter set). */
  readonly params = new ParameterSet();
  readonly lora: LoraConfig;
  /** The base's config as given (JSON-safe; recorded in adapter metadata). */
  readonly modelConfig: ModelConfig | LlamaConfig;
  readonly family: 'gpt' | 'llama';
  private readonly initStd: number;
  private readonly tiedHead: boolean;
  readonly baseKind: BaseKind;
  /** Every projection in the model (HF names), and those with adapters. */
  readonly projections: readonly string[];
  readonly targets: readonly string[];
  readonly layers: LoraProjection[] = [];
  private readonly packed: { base: PackedBase; names: readonly string[]; rows: number }[] = [];
  private readonly saved: SavedTensor[] = [];
  private readonly savedNames: string[] = [];
  private heapRef: Heap | null = null;

  private constructor(opts: PeftModelOptions) {
    const spec: PeftBaseConfig = 'family' in opts.model && (opts.model.family === 'gpt' || opts.model.family === 'llama') && 'config' in opts.model
      ? opts.model as PeftBaseConfig : { family: 'gpt', config: opts.model as ModelConfig };
    const facts = baseFacts(spec);
    this.family = spec.family;
    this.modelConfig = spec.config;
    this.initStd = facts.initStd;
    this.tiedHead = facts.tiedHead;
    const cfg = spec.family === 'gpt' ? spec.config : ({ bitlinear: facts.bitlinear } as Partial<ModelConfig>);
    const lora = (this.lora = opts.lora);
    this.baseKind = opts.quantizedBase?.kind ?? (facts.bitlinear ? 'ternary' : 'dense');
    if (opts.quantizedBase && facts.bitlinear) throw new PeftConfigError(`--peft ${opts.quantizedBase.kind}: the base is a BitLinear model, already ternary; QLoRA quantises full-precision bases (use --peft lora)`);
    if (lora.quantAware && !facts.bitlinear) throw new PeftConfigError('quant_aware LoRA applies to BitLinear bases (it trains through the ternary quantiser); this base is full precision');
    if (facts.bitlinear) {
      for (const k of QAT_UNSUPPORTED) {
        if (Array.isArray(cfg[k]) && (cfg[k] as unknown[]).length > 0) throw new PeftConfigError(`the base keeps projections in mixed precision (${k}); LoRA on it is not supported — fine-tune a base without ${k}`);
      }
      if (cfg.ste === 'lsq' || (cfg.steByLayer && Object.values(cfg.steByLayer).includes('lsq'))) throw new PeftConfigError('the base has learned LSQ step sizes (ste lsq); LoRA on it is not supported');
      if (cfg.activationScale === 'static') throw new PeftConfigError('the base uses static activation clips (activationScale static); LoRA on it is not supported');
    }
    this.projections = projectionNames(facts.probe().params.names());
    const targets = (this.targets = opts.adapters === false ? [] : selectTargets(lora, this.projections));
    const bitOptions = !facts.bitlinear ? null
      : spec.family === 'gpt' ? resolveBitLinearOptions({ normEps: 1e-5, ...bitLinearOptionsOf(spec.config) })
        : resolveBitLinearOptions(resolveLlamaConfig(spec.config).bitlinearOptions);

    const factory: LinearFactory = (spec: LinearSpec) => {
      const { names, inFeatures: K, outFeatures: R } = spec;
      const adapters: LoraAdapter[] = [];
      names.forEach((name, i) => {
        if (!targets.includes(name)) return;
        const { r, alpha } = adapterShape(lora, name, K, R);
        const A = this.params.register(`${name}.lora_A.weight`, [r, K], { init: { kind: 'zeros' }, decay: true });
        const B = this.params.register(`${name}.lora_B.weight`, [R, r], { init: { kind: 'zeros' }, decay: true });
        adapters.push({ name, A, B, r, alpha, scale: loraScale(lora, r, alpha), row0: i * R });
      });
      let bias: Tensor | null = null;
      if (spec.bias) {
        const trainBias = lora.bias === 'all' || (lora.bias === 'lora_only' && adapters.length > 0);
        bias = (trainBias ? this.params : spec.params).registerStacked(names.map((n) => `${n}.bias`), [R], { init: { kind: 'zeros' }, decay: false }).whole;
      }
      const N = R * names.length;
      let base: ProjectionBase;
      if (bitOptions) {
        const group = bitOptions.scale === 'tensor' ? R * K : bitOptions.scale === 'channel' ? K : weightScaleGroup(N, K, 'group', bitOptions.scale.group);
        const normWeight = bitOptions.norm && bitOptions.normAffine
          ? spec.params.register(bitLinearNormName(names), [K], { init: { kind: 'ones' }, decay: false })
          : null;
        const options: FrozenTernaryOptions = { norm: bitOptions.norm, normEps: bitOptions.normEps, normWeight, group };
        if (lora.quantAware && adapters.length > 0) {
          const latent = spec.params.registerStacked(names.map((n) => `${n}.weight`), [R, K], { init: { kind: 'normal', std: spec.initStd }, decay: true }).whole;
          base = { kind: 'quant-aware', latent, options };
        } else {
          const t = new FrozenTernary(N, K, options);
          this.packed.push({ base: t, names, rows: R });
          base = { kind: 'kernel', kernel: t, packed: t };
        }
      } else if (opts.quantizedBase) {
        const t = opts.quantizedBase.create(N, K, names);
        this.packed.push({ base: t, names, rows: R });
        base = { kind: 'kernel', kernel: t, packed: t };
      } else {
        const w = spec.params.registerStacked(names.map((n) => `${n}.weight`), [R, K], { init: { kind: 'normal', std: spec.initStd }, decay: true }).whole;
        base = { kind: 'kernel', kernel: new FrozenDense(w), packed: null };
      }
      const layer = new LoraProjection({ names, inFeatures: K, partRows: R, bias, adapters, base });
      layer.dropout = lora.loraDropout;
      this.layers.push(layer);
      return layer;
    };
    this.base = facts.build(factory);
    this.registerSavedModules();
  }

  /** Build the model `opts` describes (not materialized). Throws `PeftConfigError` for bad settings before any memory is used. */
  static build(opts: PeftModelOptions): PeftModel {
    return new PeftModel(opts);
  }

  /** The base model's resolved config (context length and vocabulary for sampling). */
  get config(): PeftBaseModel['config'] {
    // prefix / prompt tuning (./prefix.ts, ./prompt.ts): P virtual tokens come first, so the model takes P fewer tokens (sampling windows)
    const vt = (this.base as { virtualTokens?: { count: number } | null }).virtualTokens;
    return vt ? { ...this.base.config, contextLength: this.base.config.contextLength - vt.count } : this.base.config;
  }

  /** The heap (after `materialize`). */
  get heap(): Heap {
    if (!this.heapRef) throw new Error('PeftModel: not materialized; call materialize(heap, rng) first');
    return this.heapRef;
  }

  /** `modules_to_save` and (with `bias: all`) the base's other biases: trainable copies under the same names. */
  private registerSavedModules(): void {
    const names = this.base.params.names();
    const isProjection = (n: string) => this.projections.some((p) => n.startsWith(`${p}.`));
    const chosen = new Set<string>();
    for (const m of this.lora.modulesToSave) {
      const prefixes = [m, `model.${m}`];
      if (this.projections.some((p) => prefixes.some((q) => p === q || p.endsWith(`.${m}`)))) {
        throw new PeftConfigError(`modules_to_save: ${m} is a projection; adapt it with target_modules (a frozen projection may be packed, with no f32 weight to train)`);
      }
      if (m === 'lm_head' && this.tiedHead) throw new PeftConfigError('modules_to_save: lm_head is tied to model.embed_tokens in this model; name model.embed_tokens instead');
      const hits = names.filter((n) => prefixes.some((q) => n.startsWith(`${q}.`)));
      if (hits.length === 0) {
        const modules = [...new Set(names.filter((n) => !isProjection(n)).map((n) => n.slice(0, n.lastIndexOf('.'))))];
        throw new PeftConfigError(`modules_to_save: unknown module ${JSON.stringify(m)}; valid modules: ${modules.join(', ')}`);
      }
      hits.forEach((n) => chosen.add(n));
    }
    if (this.lora.bias === 'all') names.filter((n) => n.endsWith('.bias') && !isProjection(n)).forEach((n) => chosen.add(n));
    for (const name of chosen) {
      const frozen = this.base.params.getParam(name);
      const decay = frozen.rank === 2 && !name.includes('embed');
      const trainable = this.params.register(name, frozen.shape, { init: { kind: 'zeros' }, decay });
      this.saved.push({ frozen, trainable });
      this.savedNames.push(name);
    }
  }

  /**
   * Allocate the base's parameters (frozen: no gradient block), the packed bases and the trainable set on `heap`;
   * initialise lora_A as PEFT does (Kaiming-uniform, bound 1/√in) and lora_B to zeros, so the
   * adapted model starts as the base. Returns `this`.
   */
  materialize(heap: Heap, rng: Rng): this {
    this.base.params.freeze(); // no gradient block for the frozen base
    this.base.materialize(heap, rng);
    for (const p of this.packed) p.base.materialize(heap);
    this.params.materialize(heap, rng);
    this.heapRef = heap;
    for (const layer of this.layers) {
      for (const a of layer.adapters) {
        const K = a.A.shape[1]!;
        const bound = 1 / Math.sqrt(K);
        const v = new Float32Array(a.A.size);
        for (let i = 0; i < v.length; i++) v[i] = (2 * rng.uniform() - 1) * bound;
        heap.backend.write(a.A.offset, v);
      }
    }
    for (const s of this.saved) replaceTensor(this.base, s.frozen, s.trainable);
    this.syncSavedModules();
    return this;
  }

  /** Copy the frozen values of modules_to_save / trained biases into their trainable copies. */
  private syncSavedModules(): void {
    const be = this.heap.backend;
    for (const s of this.saved) be.copy(s.trainable.offset, s.frozen.offset, s.frozen.size);
  }

  /** Names of the tensors a base checkpoint must provide: the base parameters and the packed projections' `.weight`s. */
  baseTensorNames(): string[] {
    return [...this.base.params.names(), ...this.packed.flatMap((p) => p.names.map((n) => `${n}.weight`))];
  }

  /**
   * Load the base's weights (f32 values by HF name, as in a checkpoint's model.safetensors): dense
   * tensors into the frozen parameters, packed projections quantised from their f32 (latent)
   * weights. Every tensor must be there with its shape; `source` names the file in errors.
   */
  loadBase(values: ReadonlyMap<string, { shape: readonly number[]; data: ArrayLike<number> }>, source: string): void {
    const heap = this.heap;
    const known = new Set(this.baseTensorNames());
    for (const name of values.keys()) {
      if (!known.has(name) && !/\.(weight_step|input_clip)$/.test(name)) throw new Error(`${source}: tensor ${name} is not part of this base model; the checkpoint is from a different model`);
    }
    const need = (name: string, shape: readonly number[]) => {
      const t = values.get(name);
      if (!t) throw new Error(`${source}: missing tensor ${name} (${shape.join(',')}); it is not this base model's checkpoint`);
      if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
        throw new Error(`${source}: ${name} has shape (${t.shape.join(',')}) but this model's is (${shape.join(',')}); the checkpoint is from a different model shape`);
      }
      return t.data;
    };
    const dense = new Map<string, ArrayLike<number>>();
    for (const [name, t] of this.base.params) dense.set(name, need(name, t.shape));
    this.base.params.importValues(dense);
    for (const p of this.packed) {
      const K = p.base.inFeatures;
      const all = new Float32Array(p.rows * p.names.length * K);
      p.names.forEach((n, i) => all.set(need(`${n}.weight`, [p.rows, K]), i * p.rows * K));
      p.base.load(heap, all);
    }
    this.syncSavedModules();
  }

  /** Random base weights, N(0, initStd²) as the model's init (benchmarks, tests). */
  initBaseRandom(rng: Rng): void {
    for (const p of this.packed) {
      const v = new Float32Array(p.base.outFeatures * p.base.inFeatures);
      rng.fillNormal(v, 0, this.initStd);
      p.base.load(this.heap, v);
    }
    this.syncSavedModules();
  }

  /** Set the dropout masks of step `step` (a function of the step, so a resumed run draws the same). */
  beginStep(step: number): void {
    this.layers.forEach((l, i) => {
      l.dropoutSeed = (Math.imul(step + 1, 0x9e3779b1) ^ Math.imul(i + 1, 0x85ebca77)) >>> 0;
    });
  }

  /** tokens (B,T) → logits, and the loss with targets (the base's forward through the adapted projections). */
  forward(tokens: Tensor, targets?: Tensor): { logits: Tensor; loss?: Tensor } {
    return this.base.forward(tokens, targets);
  }

  /** Parameters of the whole model: the base (packed projections counted by weight) and the trainable tensors. */
  parameterCounts(): { trainable: number; total: number } {
    const packedCount = this.packed.reduce((s, p) => s + p.base.outFeatures * p.base.inFeatures, 0);
    const trainable = this.params.count;
    const savedCopies = this.saved.reduce((s, x) => s + x.frozen.size, 0);
    return { trainable, total: this.base.params.count + packedCount + trainable - savedCopies };
  }

  /** Trainable module copies (modules_to_save, biases) by name. */
  get savedModuleNames(): readonly string[] {
    return this.savedNames;
  }

  /** Static and activation memory in bytes (4 bytes an f32 element). */
  memory(): PeftMemory {
    const heap = this.heap;
    const packed = this.packed.reduce((s, p) => s + p.base.bytes, 0);
    return {
      base: 4 * this.base.params.blockSize + packed,
      adapters: 2 * 4 * this.params.blockSize,
      activations: 4 * heap.stats().arenaHighWater,
    };
  }
}

/** Replace every reference to `from` in the object graph of `root` (a model's modules) by `to`. */
function replaceTensor(root: object, from: Tensor, to: Tensor): void {
  const seen = new Set<object>();
  const visit = (o: object): void => {
    if (seen.has(o) || o instanceof ParameterSet) return;
    seen.add(o);
    for (const key of Object.keys(o)) {
      if (key === 'heap' || key === 'heapRef' || key === 'backend') continue;
      const v = (o as Record<string, unknown>)[key];
      if (v === from) (o as Record<string, unknown>)[key] = to;
      else if (v !== null && typeof v === 'object' && !ArrayBuffer.isView(v) && !(v as { kind?: string; shape?: unknown }).shape) visit(v);
    }
  };
  visit(root);
}

