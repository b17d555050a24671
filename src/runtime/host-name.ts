/**
 * The machine's name, for file names that say where they were written (TensorBoard event
 * files: `events.out.tfevents.<time>.<host>`). node:os in Node and Bun, `Deno.hostname()` in
 * Deno, the page's host name (else 'browser') in a browser.
 */

const NODE_OS_SPECIFIER = 'node:os';

let cached: Promise<string> | undefined;

/** The host name, or a stand-in ('localhost', 'browser') where the runtime does not tell. */
export function hostName(): Promise<string> {
  cached ??= (async () => {
    const g = globalThis as { Deno?: { hostname?: () => string }; process?: { versions?: { node?: string } }; location?: { hostname?: string } };
    try {
      if (typeof g.Deno?.hostname === 'function') return g.Deno.hostname();
      if (typeof g.process?.versions?.node === 'string') {
        const os = (await import(/* @vite-ignore */ NODE_OS_SPECIFIER)) as { hostname(): string };
        return os.hostname();
      }
    } catch {
      return 'localhost'; // Deno without --allow-sys: the name is not essential
    }
    return g.location?.hostname || 'browser';
  })();
  return cached;
}
