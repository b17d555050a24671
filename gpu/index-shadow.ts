/**
 * A host copy of the integers written with `writeIndices` (token ids, targets), so the argument
 * checks of embedding, cross-entropy and distillation can validate index values without a GPU
 * round trip. Regions are dropped when host writes or fills overlap them; index slots the
 * shadow does not know (computed on the GPU) read as 0 and pass the check (the kernels never
 * read outside the arena: WebGPU clamps out-of-bounds accesses).
 */
export class IndexShadow {
  private regions = new Map<number, Int32Array>();

  /** An ArrayLike view over the element space, for `checkIndexValues`. */
  readonly view: ArrayLike<number> = new Proxy({ length: Number.MAX_SAFE_INTEGER } as ArrayLike<number>, {
    get: (target, key) => {
      if (typeof key !== 'string') return undefined;
      if (key === 'length') return target.length;
      const i = Number(key);
      return Number.isInteger(i) ? this.at(i) : undefined;
    },
  });

  private at(i: number): number {
    for (const [p, data] of this.regions) if (i >= p && i < p + data.length) return data[i - p]!;
    return 0;
  }

  remember(p: number, data: Int32Array): void {
    this.forget(p, data.length);
    this.regions.set(p, Int32Array.from(data));
  }

  forget(p: number, n: number): void {
    for (const [q, data] of this.regions) if (q < p + n && p < q + data.length) this.regions.delete(q);
  }

  copy(dst: number, src: number, n: number): void {
    const data = this.regions.get(src);
    this.forget(dst, n);
    if (data && data.length === n) this.regions.set(dst, Int32Array.from(data));
  }
}
