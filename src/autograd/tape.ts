/**
 * The op tape (DESIGN.md decision 3): every recorded op appends `{ name, backward }`;
 * `loss.backward()` runs the entries in reverse. Ops are layer-sized (linear, attention,
 * layerNorm, ...), so a step records a few dozen entries and JS overhead stays negligible.
 */

/** One recorded op: its name (for messages and profiling) and the closure that runs its backward. */
export interface TapeEntry {
  readonly name: string;
  readonly backward: () => void;
}

export class Tape {
  private list: TapeEntry[] = [];

  /** Append an entry (ops call this through `recordOp`). */
  record(entry: TapeEntry): void {
    this.list.push(entry);
  }

  /** Number of entries recorded since the last `backward()` or arena reset. */
  get length(): number {
    return this.list.length;
  }

  /** Entry names, oldest first (for tests and profiling). */
  names(): string[] {
    return this.list.map((e) => e.name);
  }

  /** Remove and return all entries, newest first. */
  drainReversed(): TapeEntry[] {
    const out = this.list.reverse();
    this.list = [];
    return out;
  }

  /** Drop the entries recorded after the first `length` (gradient checkpointing discards a block's). */
  truncate(length: number): void {
    if (!(Number.isInteger(length) && length >= 0 && length <= this.list.length)) throw new Error(`Tape.truncate: length ${length} is not in [0, ${this.list.length}]`);
    this.list.length = length;
  }

  /** Forget every entry (the arena they point into is being reset). */
  clear(): void {
    this.list = [];
  }
}

let gradEnabled = true;

/** Whether ops record onto the tape right now (false inside `noGrad`). */
export function isGradEnabled(): boolean {
  return gradEnabled;
}

/**
 * Run `fn` without recording: ops compute their outputs only, allocate no gradients and
 * build no backward closures. Use it for evaluation and sampling. `fn` must be synchronous
 * (recording is synchronous; read values with `await t.data()` after `noGrad` returns).
 *
 * @example
 * const val = noGrad(() => model.forward(tokens, targets).loss!);
 * const loss = await val.item();
 */
export function noGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = false;
  let result: T;
  try {
    result = fn();
  } finally {
    gradEnabled = prev;
  }
  if (result !== null && typeof result === 'object' && typeof (result as { then?: unknown }).then === 'function') {
    throw new Error('noGrad: fn returned a Promise; noGrad only covers synchronous code — record the ops inside fn and await t.data() outside it');
  }
  return result;
}
