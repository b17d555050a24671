/**
 * CRC-32C (Castagnoli) of checkpoint files, recorded in trainer.json and verified on load.
 *
 * Computed with hash-wasm's CRC-32 (the Castagnoli polynomial, WebAssembly, ~1.5 GB/s here) where
 * that package can be imported — Node, Deno, Bun, a bundled page — and with the table-driven
 * slicing-by-8 loop below where it cannot (a page that imports `dist/` unbundled: a module worker
 * has no import map for the bare specifier). Both give the same value, so a checkpoint written in
 * one runtime is verified in any other. Cost on a 500 MB checkpoint: `bench/checksum.bench.mjs`.
 *
 * CRC-32C rather than a cryptographic hash: it guards against corruption (bit rot, a torn copy,
 * a stray write), not against someone forging a checkpoint.
 */

/** The name trainer.json records the checksum under (`files[name].crc32c`). */
export const CHECKSUM_KIND = 'crc32c';

/** Reflected form of the Castagnoli polynomial 0x1EDC6F41. */
const CASTAGNOLI = 0x82f63b78;

/** A CRC-32C over bytes as 8 lowercase hex digits. */
export type Checksum = (data: Uint8Array) => string;

let shared: Promise<Checksum> | undefined;

/** The CRC-32C function: hash-wasm's when it loads, else the portable JavaScript one (same values). */
export function loadChecksum(): Promise<Checksum> {
  shared ??= (async (): Promise<Checksum> => {
    try {
      const { createCRC32 } = await import('hash-wasm');
      const hasher = await createCRC32(CASTAGNOLI);
      return (data) => hasher.init().update(data).digest('hex');
    } catch {
      return crc32cHex; // no WebAssembly hasher here: the portable loop, same values
    }
  })();
  return shared;
}

/** CRC-32C of `data` in JavaScript (slicing-by-8), as 8 lowercase hex digits. */
export function crc32cHex(data: Uint8Array): string {
  return crc32cJs(data).toString(16).padStart(8, '0');
}

let tables: Uint32Array[] | undefined;

/** The 8 slicing tables: T[0] is the byte-at-a-time table, T[k][b] = T[0][T[k-1][b] & 0xff] ^ (T[k-1][b] >>> 8). */
function slicingTables(): Uint32Array[] {
  if (tables) return tables;
  const t = Array.from({ length: 8 }, () => new Uint32Array(256));
  for (let b = 0; b < 256; b++) {
    let c = b;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ CASTAGNOLI : c >>> 1;
    t[0]![b] = c >>> 0;
  }
  for (let k = 1; k < 8; k++) for (let b = 0; b < 256; b++) t[k]![b] = (t[0]![t[k - 1]![b]! & 0xff]! ^ (t[k - 1]![b]! >>> 8)) >>> 0;
  tables = t;
  return t;
}

/** CRC-32C of `data` as an unsigned 32-bit number (init and final xor 0xffffffff, as iSCSI/ext4). */
export function crc32cJs(data: Uint8Array): number {
  const [t0, t1, t2, t3, t4, t5, t6, t7] = slicingTables() as [Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array];
  let crc = 0xffffffff;
  let i = 0;
  const n = data.length;
  for (; i + 8 <= n; i += 8) {
    const lo = (crc ^ (data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24))) >>> 0;
    crc = t7[lo & 0xff]! ^ t6[(lo >>> 8) & 0xff]! ^ t5[(lo >>> 16) & 0xff]! ^ t4[lo >>> 24]! ^
      t3[data[i + 4]!]! ^ t2[data[i + 5]!]! ^ t1[data[i + 6]!]! ^ t0[data[i + 7]!]!;
  }
  for (; i < n; i++) crc = t0[(crc ^ data[i]!) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}
