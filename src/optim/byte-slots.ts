/**
 * Raw bytes in a backend's byte slots (`Backend.byteSlots`): the wasm and webgpu backends pack 4
 * bytes an f32 slot (copied bit for bit as typed arrays, never through a JS number, which could
 * quiet a NaN pattern), the js backend holds one byte a slot.
 */
import type { Backend, Ptr } from '../backend/backend.js';

/** Whether `be` packs 4 bytes a slot (wasm, webgpu) rather than one (js). */
function packsFour(be: Backend): boolean {
  return be.byteSlots(4) === 1;
}

/** Write `bytes` into the byte slots at `p` (the last slot's unused bytes become 0). */
export function writeByteSlots(be: Backend, p: Ptr, bytes: Uint8Array): void {
  if (bytes.length === 0) return;
  if (!packsFour(be)) {
    be.write(p, bytes);
    return;
  }
  const padded = new Uint8Array(Math.ceil(bytes.length / 4) * 4);
  padded.set(bytes);
  be.write(p, new Float32Array(padded.buffer));
}

/** The first `n` bytes of the byte slots at `p`, read back (`await`: the webgpu backend reads asynchronously). */
export async function readByteSlots(be: Backend, p: Ptr, n: number): Promise<Uint8Array> {
  if (n === 0) return new Uint8Array(0);
  const slots = await be.read(p, be.byteSlots(n));
  if (!packsFour(be)) return Uint8Array.from(slots);
  const copy = slots instanceof Float32Array ? slots : Float32Array.from(slots);
  return new Uint8Array(copy.buffer, copy.byteOffset, n).slice();
}
