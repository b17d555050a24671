/**
 * Histograms of weights for TensorBoard: equal-width buckets over [min, max] (TensorBoard
 * re-bins for display), or one bucket per ternary code.
 */
import type { Histogram } from './event-proto.js';

/** A histogram of `values` in `buckets` equal-width buckets (non-finite values are skipped). */
export function histogramOf(values: ArrayLike<number>, buckets = 30): Histogram {
  let min = Infinity;
  let max = -Infinity;
  let sum = 0;
  let sumSquares = 0;
  let num = 0;
  for (let i = 0; i < values.length; i++) {
    const x = values[i]!;
    if (!Number.isFinite(x)) continue;
    if (x < min) min = x;
    if (x > max) max = x;
    sum += x;
    sumSquares += x * x;
    num++;
  }
  if (num === 0) return { min: 0, max: 0, num: 0, sum: 0, sumSquares: 0, bucketLimit: [], bucket: [] };
  if (min === max) return { min, max, num, sum, sumSquares, bucketLimit: [max], bucket: [num] };
  const width = (max - min) / buckets;
  const bucket = new Array<number>(buckets).fill(0);
  for (let i = 0; i < values.length; i++) {
    const x = values[i]!;
    if (!Number.isFinite(x)) continue;
    // bucket b holds (min + b·width, min + (b+1)·width]; the minimum joins bucket 0
    const b = Math.min(buckets - 1, Math.max(0, Math.ceil((x - min) / width) - 1));
    bucket[b]!++;
  }
  const bucketLimit = bucket.map((_, b) => (b === buckets - 1 ? max : min + (b + 1) * width));
  return { min, max, num, sum, sumSquares, bucketLimit, bucket };
}

/** A histogram of ternary codes: three buckets (−1.5, −0.5], (−0.5, 0.5], (0.5, 1.5] holding −1, 0, +1. */
export function ternaryHistogram(counts: { neg: number; zero: number; pos: number }): Histogram {
  const num = counts.neg + counts.zero + counts.pos;
  return {
    min: counts.neg > 0 ? -1 : counts.zero > 0 ? 0 : 1,
    max: counts.pos > 0 ? 1 : counts.zero > 0 ? 0 : -1,
    num,
    sum: counts.pos - counts.neg,
    sumSquares: counts.pos + counts.neg,
    bucketLimit: [-0.5, 0.5, 1.5],
    bucket: [counts.neg, counts.zero, counts.pos],
  };
}
