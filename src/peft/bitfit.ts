/**
 * BitFit (Ben Zaken et al. 2022): fine-tune only the bias terms. BitNet models have no biases —
 * neither the b1.58 projections nor this library's default GPT — so there BitFit trains the
 * norm scales instead: every `input_layernorm`, `post_attention_layernorm`, the final
 * `model.norm`, BitNet's sub-norms (`attn_sub_norm`, `ffn_sub_norm`) and BitLinear's own norm
 * scales where the model has them. `targets: 'auto'` (the default) picks biases when the model
 * has any and norm scales otherwise; `'bias'`, `'norm'` or `'both'` choose explicitly.
 *
 * The trained tensors are copies in the trainable parameter set (so the optimizer sees only
 * them), swapped into the layers in place of the base's (./model-walk.ts). PEFT has no BitFit
 * type: the adapter file holds the trained tensors under the base model's Hugging Face names
 * (`base_model.model.` + name, as PEFT names modules_to_save), which transformers applies with
 * `load_state_dict(strict=False)`; `writeBack` merges them into the base here.
 */
import type { ParameterSet } from '../tensor/parameters.js';
import type { Tensor } from '../tensor/tensor.js';
import { PeftConfigError } from './config.js';
import { layerParameters, rebindTensors } from './model-walk.js';

/** Which tensors BitFit trains. */
export type BitFitTargets = 'auto' | 'bias' | 'norm' | 'both';

const isBias = (name: string) => /\.bias$/.test(name);
const isNormScale = (name: string) => /norm\.weight$/.test(name);
const partNames = (t: Tensor) => t.name.split('+');

/** One trained tensor: the base's (as the layers held it) and its trainable copy. */
export interface BitFitTensor {
  /** Hugging Face names of the parts (one, or q/k/v of a stacked bias). */
  names: string[];
  base: Tensor;
  copy: Tensor;
}

/**
 * The trainable biases (or norm scales) of a model.
 *
 * @example
 * const bitfit = new BitFit(model, trainable);   // registers copies
 * trainable.materialize(heap, rng);
 * bitfit.bind();                                   // copies the values in, swaps them into the layers
 */
export class BitFit {
  readonly tensors: readonly BitFitTensor[];
  /** What was chosen (`auto` resolved). */
  readonly targets: Exclude<BitFitTargets, 'auto'>;
  private readonly model: object;

  constructor(model: object, params: ParameterSet, targets: BitFitTargets = 'auto') {
    this.model = model;
    const all = layerParameters(model).filter((t) => t.name !== '' && !t.name.startsWith('rotary_emb'));
    const biases = all.filter((t) => partNames(t).every(isBias));
    const norms = all.filter((t) => partNames(t).every(isNormScale));
    const chosen = targets === 'auto' ? (biases.length > 0 ? 'bias' : 'norm') : targets;
    this.targets = chosen;
    const picked = chosen === 'bias' ? biases : chosen === 'norm' ? norms : [...biases, ...norms];
    if (picked.length === 0) {
      throw new PeftConfigError(`BitFit: the model has no ${chosen === 'bias' ? 'biases' : chosen === 'norm' ? 'norm scales' : 'biases or norm scales'} to train${chosen === 'bias' ? " (BitNet models have none; use targets 'norm' or 'auto')" : ''}`);
    }
    // a stacked q/k/v bias is one tensor over its parts: register it stacked, under the parts' names
    this.tensors = picked.sort((a, b) => (a.name < b.name ? -1 : 1)).map((base) => {
      const names = partNames(base);
      const partShape = [base.shape[0]! / names.length, ...base.shape.slice(1)];
      const { whole } = params.registerStacked(names, partShape, { init: { kind: 'zeros' }, decay: false });
      return { names, base, copy: whole };
    });
  }

  /** Trainable elements. */
  get count(): number {
    return this.tensors.reduce((n, t) => n + t.copy.size, 0);
  }

  /** After the trainable set is materialized: copy the base values in and swap the copies into the layers. */
  bind(): this {
    for (const t of this.tensors) t.copy.heap.backend.copy(t.copy.offset, t.base.offset, t.base.size);
    const n = rebindTensors(this.model, new Map(this.tensors.map((t) => [t.base, t.copy])));
    if (n < this.tensors.length) throw new Error(`BitFit.bind: only ${n} of ${this.tensors.length} tensors were found in the model's layers`);
    return this;
  }

  /** The trained values by Hugging Face name (stacked biases split into their parts). */
  values(): Map<string, Float32Array> {
    const out = new Map<string, Float32Array>();
    for (const t of this.tensors) {
      const v = t.copy.heap.backend.readSync(t.copy.offset, t.copy.size);
      const n = t.copy.size / t.names.length;
      t.names.forEach((name, i) => out.set(name, Float32Array.from(v.subarray(i * n, (i + 1) * n))));
    }
    return out;
  }

  /** Load trained values by name (e.g. from an adapter file); every trained name must be there, no other. */
  load(values: ReadonlyMap<string, ArrayLike<number>>): void {
    const known = new Set(this.tensors.flatMap((t) => t.names));
    for (const name of values.keys()) if (!known.has(name)) throw new PeftConfigError(`BitFit: unknown tensor ${name}; this model's BitFit trains ${[...known].join(', ')}`);
    // check everything before writing anything
    for (const t of this.tensors) {
      const n = t.copy.size / t.names.length;
      for (const name of t.names) {
        const v = values.get(name);
        if (!v) throw new PeftConfigError(`BitFit: the adapter has no ${name}`);
        if (v.length !== n) throw new PeftConfigError(`BitFit: ${name} has ${v.length} values but the model's needs ${n}; the adapter is of another base`);
      }
    }
    for (const t of this.tensors) {
      const n = t.copy.size / t.names.length;
      t.names.forEach((name, i) => t.copy.heap.backend.write(t.copy.offset + i * n, values.get(name)!));
    }
  }

  /** Merge: write the trained values into the base model's own tensors (its `params` then export them). */
  writeBack(): void {
    for (const t of this.tensors) t.copy.heap.backend.copy(t.base.offset, t.copy.offset, t.base.size);
  }
}
