/**
 * Which projections get adapters, by PEFT's rules (`check_target_module_exists`):
 *
 * - a list of names matches a module whose name equals an entry or ends with `.${entry}`
 *   (`q_proj`, `self_attn.q_proj`, `model.layers.0.mlp.up_proj`);
 * - a string is a regular expression that must match the whole module name;
 * - `"all-linear"` is every projection of attention and MLP (the LM head is left out, as PEFT does);
 * - `layers_to_transform` then keeps the modules of the listed layer indices (`layers.<i>.` in the name).
 *
 * An entry that matches no projection is an error listing the valid names, before anything is built.
 */
import { closest } from '../train/config.js';
import { type LoraConfig, PeftConfigError, rankAndAlpha } from './config.js';

/** The layer index of a module name (`model.layers.3.mlp.up_proj` → 3), or null. */
export function layerIndexOf(module: string, layersPattern: string | null = null): number | null {
  const pattern = layersPattern ?? '(?:layers|h|blocks|layer)';
  const m = new RegExp(`(?:^|\\.)${pattern}\\.(\\d+)\\.`).exec(module);
  return m ? Number(m[1]) : null;
}

function matchesName(module: string, name: string): boolean {
  return module === name || module.endsWith(`.${name}`);
}

/** The projections `cfg` targets, from the model's projection names; throws naming unknown entries. */
export function selectTargets(cfg: LoraConfig, projections: readonly string[], where = 'target_modules'): string[] {
  const tm = cfg.targetModules;
  let chosen: string[];
  if (tm === 'all-linear') chosen = [...projections];
  else if (Array.isArray(tm)) {
    const names = tm as readonly string[];
    for (const name of names) {
      if (projections.some((p) => matchesName(p, name))) continue;
      if (name === 'lm_head' || name.endsWith('embed_tokens')) {
        throw new PeftConfigError(`${where}: ${name} is not a projection LoRA can adapt here; train it in full with modules_to_save: ["${name}"]`);
      }
      const short = [...new Set(projections.map((p) => p.slice(p.lastIndexOf('.') + 1)))];
      const near = closest(name, [...short, ...projections]);
      throw new PeftConfigError(
        `${where}: unknown module ${JSON.stringify(name)}${near ? ` (did you mean ${JSON.stringify(near)}?)` : ''}; valid names: ${short.join(', ')}, "all-linear", or full names such as ${projections[0]}`,
      );
    }
    chosen = projections.filter((p) => names.some((n) => matchesName(p, n)));
  } else {
    const re = new RegExp(`^(?:${(tm as { regex: string }).regex})$`);
    chosen = projections.filter((p) => re.test(p));
    if (chosen.length === 0) throw new PeftConfigError(`${where}: the regular expression ${JSON.stringify((tm as { regex: string }).regex)} matches no projection; the projections are ${projections.join(', ')}`);
  }
  if (cfg.layersToTransform) {
    const layers = new Set(projections.map((p) => layerIndexOf(p, cfg.layersPattern)).filter((i): i is number => i !== null));
    const missing = cfg.layersToTransform.filter((i) => !layers.has(i));
    if (missing.length > 0) throw new PeftConfigError(`layers_to_transform: the model has no layer ${missing.join(', ')} (its layers are 0..${Math.max(...layers)})`);
    chosen = chosen.filter((p) => {
      const i = layerIndexOf(p, cfg.layersPattern);
      return i !== null && cfg.layersToTransform!.includes(i);
    });
  }
  if (chosen.length === 0) throw new PeftConfigError(`${where}: no projection is left to adapt (check target_modules and layers_to_transform)`);
  return chosen;
}

/** One adapted projection's rank and alpha, checked against its shape (`r` ≤ min(in, out)). */
export function adapterShape(cfg: LoraConfig, module: string, inFeatures: number, outFeatures: number): { r: number; alpha: number } {
  const { r, alpha } = rankAndAlpha(cfg, module);
  const limit = Math.min(inFeatures, outFeatures);
  if (r > limit) {
    throw new PeftConfigError(`r = ${r} for ${module} is larger than the layer allows: it is (${outFeatures}, ${inFeatures}), so r must be at most ${limit}; lower r (or set rank_pattern for this module)`);
  }
  return { r, alpha };
}
