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

/** The signals that stop a training gracefully, with the exit status of each (128 + its number). */
const STOP_SIGNALS = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 } as const;
type StopSignal = keyof typeof STOP_SIGNALS;

/**
 * While a training runs: the first SIGINT (Ctrl-C), SIGTERM (timeout, systemd, Docker,
 * Kubernetes) or SIGHUP (the terminal closed) stops it after the current step with a checkpoint
 * (`signal.reason` is the signal's name); a second one quits at once.
 */
function catchInterrupt(): { signal: AbortSignal; release(): void } {
  const controller = new AbortController();
  const handlers = (Object.keys(STOP_SIGNALS) as StopSignal[]).map((name) => {
    const handler = (): void => {
      if (controller.signal.aborted) {
        process.stderr.write(`\nbitnet-train: ${name} again; quitting without saving the current step\n`);
        process.exit(STOP_SIGNALS[name]);
      }
      const again = name === 'SIGINT' ? 'Ctrl-C' : name;
      process.stderr.write(`\nbitnet-train: ${name === 'SIGINT' ? 'interrupt' : name}: finishing the current step and saving a checkpoint (${again} again to quit at once)\n`);
      controller.abort(name);
    };
    process.on(name, handler);
    return [name, handler] as const;
  });
  return { signal: controller.signal, release: () => handlers.forEach(([name, h]) => void process.off(name, h)) };
}

// After SIGHUP the terminal is gone: writing progress to it fails with EIO/EPIPE, which must not
// crash the run before it saves (the checkpoint and the log file are what matter then).
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE' && err.code !== 'EIO') throw err;
  });
}

const status = await runCli(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  packageCorpus: packageCorpusPath(),
  debug: process.env.BITNET_DEBUG === '1',
  catchInterrupt,
});
process.exitCode = status;
