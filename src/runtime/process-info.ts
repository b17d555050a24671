/**
 * The current process as far as the host tells: its id, and whether another id is alive on this
 * machine (for stale-lock detection). Node, Deno 2 and Bun have `process`; a browser has neither
 * (undefined: the caller cannot tell).
 */

interface HostProcess {
  pid?: number;
  kill?: (pid: number, signal?: number | string) => boolean;
}

function hostProcess(): HostProcess | undefined {
  const p = (globalThis as { process?: HostProcess }).process;
  return typeof p?.pid === 'number' ? p : undefined;
}

/** This process's id, or undefined where the host has no processes (a browser). */
export function processId(): number | undefined {
  return hostProcess()?.pid;
}

/**
 * Whether process `pid` exists on this machine: signal 0 checks without sending anything (EPERM:
 * it exists but belongs to another user). Undefined where the host cannot tell.
 */
export function isProcessAlive(pid: number): boolean | undefined {
  const p = hostProcess();
  if (typeof p?.kill !== 'function') return undefined;
  try {
    p.kill(pid, 0);
    return true;
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === 'ESRCH') return false;
    if (code === 'EPERM') return true;
    return undefined;
  }
}
