/**
 * Merging a LoRA adapter into its base's weights: `W' = W + s·B·A` for every adapted part.
 *
 * - Dense bases: exact (the merged model computes what the adapted one does, up to f32 rounding).
 * - BitLinear bases: the sum goes into the f32 latent and is re-quantised by the forward
 *   (absmean ternary), so codes may flip; `mergeAdapter` reports per projection the fraction of
 *   ternary codes that changed. An adapter trained in the quantisation-aware mode learned through
 *   that quantiser on `W + s·B·A`, so its merged model is the trained model.
 * - QLoRA (NF4) adapters merge into the dense base they were quantised from.
 *
 * The result is a new tensor map; the base's own files are never written (the CLI refuses an
 * output directory equal to the base).
 */
import type { LoraConfig } from './config.js';
import { loraScale } from './config.js';
import { adapterShape } from './targets.js';

/** One merged projection part: its name and the fraction of ternary codes that flipped (BitLinear bases; null for dense). */
export interface MergedProjection {
  name: string;
  r: number;
  flipFraction: number | null;
}

/** Absmean ternary codes of W (R,K) with one scale (per tensor, as BitLinear's default per part). */
function ternaryCodes(w: Float32Array): Int8Array {
  let sum = 0;
  for (let i = 0; i < w.length; i++) sum += Math.abs(w[i]!);
  const s = 1 / Math.max(Math.fround(sum / w.length), 1e-5);
  const out = new Int8Array(w.length);
  for (let i = 0; i < w.length; i++) {
    const u = Math.fround(w[i]! * s);
    const r = Math.round(u);
    const q = Math.abs(u - Math.trunc(u)) === 0.5 ? 2 * Math.round(u / 2) : r; // ties to even
    out[i] = Math.max(-1, Math.min(1, q));
  }
  return out;
}

/**
 * `W + s·B·A` for every adapter in `adapter` (this library's names: `<proj>.lora_A.weight` ...),
 * over `base` (name → f32 values with shapes). `ternary`: the base is BitLinear (report flips).
 * Returns the merged tensors (base tensors not adapted are passed through; trained biases and
 * modules_to_save replace theirs).
 */
export function mergeAdapter(
  base: ReadonlyMap<string, { shape: readonly number[]; data: Float32Array }>,
  adapter: ReadonlyMap<string, { shape: readonly number[]; data: Float32Array }>,
  lora: LoraConfig,
  ternary: boolean,
): { tensors: Map<string, { shape: number[]; data: Float32Array }>; projections: MergedProjection[] } {
  const out = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [k, v] of base) out.set(k, { shape: [...v.shape], data: v.data });
  const projections: MergedProjection[] = [];
  for (const [name, t] of adapter) {
    if (name.endsWith('.lora_B.weight')) continue;
    if (!name.endsWith('.lora_A.weight')) {
      // a trained bias or a modules_to_save tensor: replaces the base's
      if (!base.has(name)) throw new Error(`merge: the adapter's ${name} is not a tensor of the base`);
      out.set(name, { shape: [...t.shape], data: t.data });
      continue;
    }
    const proj = name.slice(0, -'.lora_A.weight'.length);
    const B = adapter.get(`${proj}.lora_B.weight`);
    const W = base.get(`${proj}.weight`);
    if (!B) throw new Error(`merge: the adapter has ${name} but no ${proj}.lora_B.weight`);
    if (!W) throw new Error(`merge: the base has no ${proj}.weight for the adapter's ${proj}`);
    const [R, K] = W.shape as [number, number];
    const r = t.shape[0]!;
    if (t.shape[1] !== K || B.shape[0] !== R || B.shape[1] !== r) {
      throw new Error(`merge: ${proj}: lora_A (${t.shape.join(',')}) and lora_B (${B.shape.join(',')}) do not fit the base weight (${R},${K}); the adapter is of another base`);
    }
    const { alpha } = adapterShape({ ...lora, rankPattern: { ...lora.rankPattern, [escape(proj)]: r } }, proj, K, R);
    const s = loraScale(lora, r, alpha);
    const merged = new Float32Array(R * K);
    const A = t.data;
    for (let i = 0; i < R; i++) {
      for (let j = 0; j < K; j++) {
        let acc = 0;
        for (let q = 0; q < r; q++) acc += B.data[i * r + q]! * A[q * K + j]!;
        merged[i * K + j] = W.data[i * K + j]! + s * acc;
      }
    }
    let flipFraction: number | null = null;
    if (ternary) {
      const before = ternaryCodes(W.data);
      const after = ternaryCodes(merged);
      let flips = 0;
      for (let i = 0; i < before.length; i++) if (before[i] !== after[i]) flips++;
      flipFraction = flips / before.length;
    }
    out.set(`${proj}.weight`, { shape: [R, K], data: merged });
    projections.push({ name: proj, r, flipFraction });
  }
  return { tensors: out, projections };
}

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
