/**
 * CRC-32C (Castagnoli, the checksum TFRecord framing uses) through hash-wasm's CRC-32 with the
 * Castagnoli polynomial. Creating the WASM hasher is async (once); each checksum is synchronous.
 */
import { monitorLibraries } from './libraries.js';

/** Reflected form of the Castagnoli polynomial 0x1EDC6F41. */
export const CASTAGNOLI = 0x82f63b78;

/** A synchronous CRC-32C over bytes, as an unsigned 32-bit number. */
export type Crc32c = (data: Uint8Array) => number;

let shared: Promise<Crc32c> | undefined;

/** The CRC-32C function (the WASM hasher is instantiated once and shared). */
export function loadCrc32c(): Promise<Crc32c> {
  shared ??= monitorLibraries().then(({ hashWasm }) => hashWasm.createCRC32(CASTAGNOLI)).then((hasher) => (data: Uint8Array): number => {
    const d = hasher.init().update(data).digest('binary'); // big-endian bytes of the checksum
    return ((d[0]! << 24) | (d[1]! << 16) | (d[2]! << 8) | d[3]!) >>> 0;
  }).catch((err: unknown) => {
    shared = undefined;
    throw new Error(`tensorboard: could not instantiate hash-wasm's CRC-32C (WebAssembly unavailable?): ${(err as Error).message}`);
  });
  return shared;
}

/** TFRecord's masked CRC: rotate right by 15 bits and add 0xa282ead8 (mod 2^32). */
export function maskCrc(crc: number): number {
  return ((((crc >>> 15) | (crc << 17)) >>> 0) + 0xa282ead8) >>> 0;
}
