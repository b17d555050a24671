/**
 * Characters of a corpus that a fixed tokenizer (a base model's, when fine-tuning) cannot encode:
 * counted over the whole corpus and reported in one error, or dropped / replaced when asked
 * (`--unknown-chars drop|replace=X|error`).
 */
import type { Tokenizer } from './tokenizer.js';

/** What to do with characters the tokenizer cannot encode. */
export type UnknownCharsPolicy = { action: 'error' } | { action: 'drop' } | { action: 'replace'; with: string };

/** Parse `error`, `drop` or `replace=X` (X one character, default `?`). */
export function parseUnknownChars(text: string): UnknownCharsPolicy {
  if (text === 'error' || text === 'drop') return { action: text };
  const m = /^replace(?:=(.*))?$/su.exec(text);
  if (m) {
    const w = m[1] ?? '?';
    if ([...w].length !== 1) throw new Error(`--unknown-chars: replace=X takes one character, got ${JSON.stringify(w)}`);
    return { action: 'replace', with: w };
  }
  throw new Error(`--unknown-chars: expected error, drop or replace=X, got ${JSON.stringify(text)}`);
}

/** "'x' (U+0078)". */
export function describeCodePoint(cp: number): string {
  return `${JSON.stringify(String.fromCodePoint(cp))} (U+${cp.toString(16).toUpperCase().padStart(4, '0')})`;
}

/**
 * Finds (and optionally drops or replaces) the characters `tokenizer.canEncode` refuses, piece by
 * piece; remembers the answer per code point, so a corpus costs one table lookup a character.
 */
export class UnknownChars {
  /** Occurrences of each refused code point. */
  readonly counts = new Map<number, number>();
  private readonly bmp = new Uint8Array(65536); // 0 unknown yet, 1 encodable, 2 not
  private readonly astral = new Map<number, boolean>();

  constructor(private readonly tokenizer: Tokenizer, readonly policy: UnknownCharsPolicy) {
    if (policy.action === 'replace' && !this.ok(policy.with.codePointAt(0)!)) {
      throw new Error(`--unknown-chars replace=${policy.with}: ${describeCodePoint(policy.with.codePointAt(0)!)} is not encodable by the tokenizer either; pick a character it has (e.g. a space)`);
    }
  }

  private ok(cp: number): boolean {
    if (cp < 65536) {
      const s = this.bmp[cp]!;
      if (s !== 0) return s === 1;
      const yes = this.tokenizer.canEncode ? this.tokenizer.canEncode(String.fromCharCode(cp)) : true;
      this.bmp[cp] = yes ? 1 : 2;
      return yes;
    }
    let yes = this.astral.get(cp);
    if (yes === undefined) {
      yes = this.tokenizer.canEncode ? this.tokenizer.canEncode(String.fromCodePoint(cp)) : true;
      this.astral.set(cp, yes);
    }
    return yes;
  }

  /** Count the refused characters of `text` and return it cleaned as the policy says (unchanged for `error`). */
  filter(text: string): string {
    let out: string[] | null = null;
    let from = 0;
    for (let i = 0; i < text.length; i++) {
      let cp = text.charCodeAt(i);
      let width = 1;
      if (cp >= 0xd800 && cp <= 0xdbff && i + 1 < text.length) {
        const full = text.codePointAt(i)!;
        if (full > 0xffff) {
          cp = full;
          width = 2;
        }
      }
      if (!this.ok(cp)) {
        this.counts.set(cp, (this.counts.get(cp) ?? 0) + 1);
        if (this.policy.action !== 'error') {
          out ??= [];
          out.push(text.slice(from, i));
          if (this.policy.action === 'replace') out.push(this.policy.with);
          from = i + width;
        }
      }
      i += width - 1;
    }
    if (out === null) return text;
    out.push(text.slice(from));
    return out.join('');
  }

  /** Total refused characters. */
  get total(): number {
    let n = 0;
    for (const c of this.counts.values()) n += c;
    return n;
  }

  /**
   * The error for `source` when characters were refused and the policy is `error`: lists them,
   * most frequent first, with counts, and names the flag.
   */
  error(source: string): Error | null {
    if (this.counts.size === 0 || this.policy.action !== 'error') return null;
    const list = [...this.counts].sort((a, b) => b[1] - a[1] || a[0] - b[0]);
    const shown = list.slice(0, 20).map(([cp, n]) => `${describeCodePoint(cp)} ×${n}`).join(', ');
    const more = list.length > 20 ? `, and ${list.length - 20} more` : '';
    return new Error(
      `${source}: ${this.total} characters (${list.length} distinct) are not in the tokenizer's vocabulary: ${shown}${more}. ` +
        'Drop them with --unknown-chars drop, replace them with --unknown-chars replace=X (X a character the tokenizer has), or clean the file',
    );
  }
}
