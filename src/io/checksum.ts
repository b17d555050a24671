/**
 * XXH64 (seed 0) of checkpoint files, recorded in trainer.json and verified on load.
 *
 * Computed with hash-wasm's xxhash64 (WebAssembly; ~4.5 GB/s on a quiet core here, 4.6x its
 * CRC-32C in the same run) where that package can be imported — Node, Deno, Bun, a bundled page —
 * and with the BigInt implementation below where it cannot (a page that imports `dist/`
 * unbundled: a module worker has no import map for the bare specifier; slower, tens of MB/s,
 * plenty for a browser-sized checkpoint). Both give the same value, so a checkpoint written in one
 * runtime is verified in any other. Cost on a 500 MB checkpoint: `bench/checksum.bench.mjs`.
 *
 * A non-cryptographic hash: it guards against corruption (bit rot, a torn copy, a stray write),
 * not against someone forging a checkpoint.
 */

/** The name trainer.json records the checksum under (`files[name].xxh64`, 16 hex digits). */
export const CHECKSUM_KIND = 'xxh64';

/** A checksum of bytes as 16 lowercase hex digits. */
export type Checksum = (data: Uint8Array) => string;

let shared: Promise<Checksum> | undefined;

/** The XXH64 function: hash-wasm's when it loads, else the portable JavaScript one (same values). */
export function loadChecksum(): Promise<Checksum> {
  shared ??= (async (): Promise<Checksum> => {
    try {
      const { createXXHash64 } = await import('hash-wasm');
      const hasher = await createXXHash64();
      return (data) => hasher.init().update(data).digest('hex');
    } catch {
      return xxh64Hex; // no WebAssembly hasher here: the portable implementation, same values
    }
  })();
  return shared;
}

const MASK = (1n << 64n) - 1n;
const P1 = 11400714785074694791n;
const P2 = 14029467366897019727n;
const P3 = 1609587929392839161n;
const P4 = 9650029242287828579n;
const P5 = 2870177450012600261n;

const rotl = (x: bigint, r: bigint): bigint => ((x << r) | (x >> (64n - r))) & MASK;
const round = (acc: bigint, lane: bigint): bigint => (rotl((acc + lane * P2) & MASK, 31n) * P1) & MASK;
const merge = (acc: bigint, v: bigint): bigint => (((acc ^ round(0n, v)) * P1) & MASK) + P4 & MASK;

/** XXH64 of `data` with seed 0 (the reference algorithm, in BigInt), as 16 lowercase hex digits. */
export function xxh64Hex(data: Uint8Array): string {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const n = data.length;
  const u64 = (i: number): bigint => view.getBigUint64(i, true);
  let i = 0;
  let h: bigint;
  if (n >= 32) {
    let v1 = (P1 + P2) & MASK;
    let v2 = P2;
    let v3 = 0n;
    let v4 = (0n - P1) & MASK;
    for (; i + 32 <= n; i += 32) {
      v1 = round(v1, u64(i));
      v2 = round(v2, u64(i + 8));
      v3 = round(v3, u64(i + 16));
      v4 = round(v4, u64(i + 24));
    }
    h = (rotl(v1, 1n) + rotl(v2, 7n) + rotl(v3, 12n) + rotl(v4, 18n)) & MASK;
    h = merge(h, v1);
    h = merge(h, v2);
    h = merge(h, v3);
    h = merge(h, v4);
  } else {
    h = P5;
  }
  h = (h + BigInt(n)) & MASK;
  for (; i + 8 <= n; i += 8) h = ((rotl(h ^ round(0n, u64(i)), 27n) * P1) & MASK) + P4 & MASK;
  if (i + 4 <= n) {
    h = ((rotl(h ^ ((BigInt(view.getUint32(i, true)) * P1) & MASK), 23n) * P2) & MASK) + P3 & MASK;
    i += 4;
  }
  for (; i < n; i++) h = (rotl(h ^ ((BigInt(data[i]!) * P5) & MASK), 11n) * P1) & MASK;
  h ^= h >> 33n;
  h = (h * P2) & MASK;
  h ^= h >> 29n;
  h = (h * P3) & MASK;
  h ^= h >> 32n;
  return h.toString(16).padStart(16, '0');
}
