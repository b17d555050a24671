/**
 * The parameter tensors a model's layers hold, found by walking its object graph (blocks,
 * projections, norms, a frozen base's options), and rebinding them: BitFit swaps a layer's bias
 * or norm scale for a trainable copy; freezing marks every base tensor as taking no gradient,
 * stacked q/k/v wholes included (they are not in the `ParameterSet`'s by-name list).
 */
import { Heap } from '../tensor/heap.js';
import { ParameterSet } from '../tensor/parameters.js';
import { Tensor } from '../tensor/tensor.js';

function isLeafObject(v: object): boolean {
  return v instanceof Heap || v instanceof ParameterSet || ArrayBuffer.isView(v) || v instanceof ArrayBuffer || v instanceof Map || v instanceof Set
    || (typeof WebAssembly !== 'undefined' && v instanceof WebAssembly.Memory);
}

/** Visit every (holder, key, tensor) reachable from `root`: own properties of objects and arrays, not descending into heaps or parameter sets. */
export function walkTensors(root: object, visit: (holder: Record<string | number, unknown>, key: string | number, t: Tensor) => void): void {
  const seen = new Set<object>();
  const stack: object[] = [root];
  while (stack.length > 0) {
    const o = stack.pop()!;
    if (seen.has(o)) continue;
    seen.add(o);
    for (const key of Object.keys(o)) {
      const v = (o as Record<string, unknown>)[key];
      if (v instanceof Tensor) visit(o as Record<string, unknown>, Array.isArray(o) ? Number(key) : key, v);
      else if (v !== null && typeof v === 'object' && !isLeafObject(v)) stack.push(v);
    }
  }
}

/** Every parameter tensor the model's layers use (each once). */
export function layerParameters(root: object): Tensor[] {
  const found = new Set<Tensor>();
  walkTensors(root, (_h, _k, t) => {
    if (t.kind === 'param') found.add(t);
  });
  return [...found];
}

/** Mark every parameter of `root` (and of its `params` set, when it has one) as taking no gradient. */
export function freezeParameters(root: object & { params?: ParameterSet }): void {
  for (const t of layerParameters(root)) t.requiresGrad = false;
  if (root.params) for (const [, t] of root.params) t.requiresGrad = false;
}

/** Replace every reference to a key of `map` in `root`'s layers by its value. Returns how many references changed. */
export function rebindTensors(root: object, map: ReadonlyMap<Tensor, Tensor>): number {
  let n = 0;
  walkTensors(root, (holder, key, t) => {
    const to = map.get(t);
    if (to) {
      holder[key] = to;
      n++;
    }
  });
  return n;
}
