/**
 * One run at a time per run directory: `<dir>/run.lock/owner.json` names the process that holds it.
 *
 * Taking the lock is one atomic step of the `FileSystem` interface: a directory holding the
 * owner's file is built under a temporary name and renamed to `run.lock`, which fails while
 * another (non-empty) `run.lock` exists (POSIX rename(2), and the memory and OPFS adapters keep
 * that rule). A lock whose owner ran on this machine and is no longer alive (`kill -9`, a crash,
 * a power loss) is stale and taken over; any other is refused with the owner's pid, host and
 * start time. Hosts without process ids (a browser) cannot tell a dead holder from a live one, so
 * there the lock is not taken (a crashed tab would otherwise block its run directory for good).
 */
import { hostName } from '../runtime/host-name.js';
import { isProcessAlive, processId } from '../runtime/process-info.js';
import { type FileSystem, FileSystemError, joinPath, randomSuffix } from '../runtime/fs-types.js';

/** The lock directory's name inside a run directory. */
export const RUN_LOCK_DIR = 'run.lock';
const OWNER_FILE = 'owner.json';

/** Who holds a run directory. */
export interface RunLockOwner {
  /** The holder's process id (absent where the host has none). */
  pid?: number;
  host: string;
  /** ISO time the lock was taken. */
  started: string;
  /** Tells this holder's lock from another's with the same pid. */
  token: string;
}

/** The run directory is locked by a live run (or one this host cannot check). */
export class RunLockError extends Error {
  override readonly name = 'RunLockError';
  constructor(message: string, readonly owner: RunLockOwner | undefined) {
    super(message);
  }
}

/** A held lock; `release()` removes it (only if it is still this holder's). */
export interface RunLock {
  readonly dir: string;
  readonly owner: RunLockOwner;
  /** Whether a stale lock (a dead process's) was taken over; its owner. */
  readonly tookOverFrom?: RunLockOwner;
  release(): Promise<void>;
}

async function readOwner(fs: FileSystem, lockDir: string): Promise<RunLockOwner | undefined> {
  try {
    const o = JSON.parse(await fs.readText(joinPath(lockDir, OWNER_FILE))) as Partial<RunLockOwner>;
    return typeof o.host === 'string' && typeof o.token === 'string' ? (o as RunLockOwner) : undefined;
  } catch {
    return undefined; // being written or removed right now, or damaged
  }
}

/**
 * Lock run directory `dir` (created if missing) for this process. Throws `RunLockError` naming the
 * holder when another live run has it.
 */
export async function acquireRunLock(fs: FileSystem, dir: string): Promise<RunLock> {
  await fs.mkdirp(dir);
  const lockDir = joinPath(dir, RUN_LOCK_DIR);
  const pid = processId();
  if (pid === undefined) return { dir, owner: { host: await hostName(), started: new Date().toISOString(), token: '' }, release: async () => {} };
  const owner: RunLockOwner = { pid, host: await hostName(), started: new Date().toISOString(), token: randomSuffix() };
  let tookOverFrom: RunLockOwner | undefined;
  for (let attempt = 0; attempt < 5; attempt++) {
    const tmp = `${lockDir}.tmp-${randomSuffix()}`;
    await fs.mkdirp(tmp);
    await fs.writeFileAtomic(joinPath(tmp, OWNER_FILE), JSON.stringify(owner) + '\n');
    try {
      await fs.rename(tmp, lockDir);
      return {
        dir, owner, ...(tookOverFrom ? { tookOverFrom } : {}),
        release: async () => {
          const now = await readOwner(fs, lockDir);
          if (now?.token === owner.token) await fs.remove(lockDir, { recursive: true, force: true });
        },
      };
    } catch (err) {
      await fs.remove(tmp, { recursive: true, force: true });
      if (!(err instanceof FileSystemError) || (err.code !== 'ENOTEMPTY' && err.code !== 'EEXIST')) throw err;
    }
    const holder = await readOwner(fs, lockDir);
    if (holder === undefined) {
      // no readable owner: half-removed by its holder, or damaged; wait a moment, then treat as stale
      if (attempt < 2) {
        await new Promise((resolve) => setTimeout(resolve, 50));
        continue;
      }
    } else {
      const alive = holder.pid !== undefined && holder.host === owner.host ? isProcessAlive(holder.pid) : undefined;
      if (alive !== false) {
        const who = holder.pid !== undefined ? `pid ${holder.pid} on ${holder.host}` : `a run on ${holder.host}`;
        const check = alive === undefined ? ' (this host cannot check whether it is alive)' : '';
        throw new RunLockError(
          `run directory ${dir} is in use by ${who}, since ${holder.started}${check}; wait for it to finish or use another --out ` +
            `(if no such run is alive, delete ${lockDir})`,
          holder,
        );
      }
      tookOverFrom = holder;
    }
    // stale: move it aside (atomic, so two runs cannot both take it over), then delete it
    const aside = `${lockDir}.stale-${randomSuffix()}`;
    try {
      await fs.rename(lockDir, aside);
    } catch (err) {
      if (err instanceof FileSystemError && err.code === 'ENOENT') continue; // someone else moved it first
      throw err;
    }
    await fs.remove(aside, { recursive: true, force: true });
  }
  throw new RunLockError(`run directory ${dir}: could not take ${lockDir} after 5 attempts (another run keeps taking it); use another --out`, undefined);
}
