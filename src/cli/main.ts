#!/usr/bin/env node
/**
 * The `bitnet-train` executable (package.json `bin`). Everything it does is in `commands.ts`;
 * this file only connects it to the process: argv, stdout/stderr, the exit status.
 */
import { runCli } from './commands.js';

// dist/cli/main.js → the package root's examples/data/ (present in a repository checkout)
function packageCorpusPath(): string | undefined {
  try {
    const url = new URL('../../examples/data/tinyshakespeare.txt', import.meta.url);
    if (url.protocol !== 'file:') return undefined;
    const path = decodeURIComponent(url.pathname);
    return /^\/[A-Za-z]:\//.test(path) ? path.slice(1) : path; // Windows: /C:/x → C:/x
  } catch {
    return undefined;
  }
}

/** While a training runs: the first Ctrl-C stops it after the current step with a checkpoint, a second quits at once. */
function catchInterrupt(): { signal: AbortSignal; release(): void } {
  const controller = new AbortController();
  const onSigint = (): void => {
    if (controller.signal.aborted) {
      process.stderr.write('\nbitnet-train: interrupted again; quitting without saving the current step\n');
      process.exit(130);
    }
    process.stderr.write('\nbitnet-train: interrupt: finishing the current step and saving a checkpoint (Ctrl-C again to quit at once)\n');
    controller.abort();
  };
  process.on('SIGINT', onSigint);
  return { signal: controller.signal, release: () => void process.off('SIGINT', onSigint) };
}

const status = await runCli(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  packageCorpus: packageCorpusPath(),
  debug: process.env.BITNET_DEBUG === '1',
  catchInterrupt,
});
process.exitCode = status;
