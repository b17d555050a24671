/**
 * Decoding generated ids as they arrive. Decoding one id at a time is wrong for most tokenizers:
 * a byte-level or byte tokenizer splits a multi-byte character over several ids, and
 * SentencePiece-style decoders drop the space in front of the first token of a call. The stream
 * decodes the prompt plus everything generated and emits what is new, holding back a trailing
 * U+FFFD (an incomplete character) until the next id completes it.
 */
import type { Tokenizer } from './tokenizer.js';

/** `push(id)` returns the new text (maybe ''); `flush()` whatever was held back. */
export interface TextStream {
  push(id: number): string;
  flush(): string;
}

/** A text stream after `prefix` (the prompt's ids), for `tokenizer`. */
export function createTextStream(tokenizer: Tokenizer, prefix: ArrayLike<number> = []): TextStream {
  const ids = Array.from(prefix);
  let emitted = tokenizer.decode(ids).length;
  const take = (all: string, holdBack: boolean): string => {
    let end = all.length;
    if (holdBack) while (end > emitted && all.charCodeAt(end - 1) === 0xfffd) end--;
    if (end <= emitted) return '';
    const out = all.slice(emitted, end);
    emitted = end;
    return out;
  };
  return {
    push(id: number) {
      ids.push(id);
      return take(tokenizer.decode(ids), true);
    },
    flush() {
      return take(tokenizer.decode(ids), false);
    },
  };
}
