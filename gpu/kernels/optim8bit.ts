/**
 * WGSL of the 8-bit blockwise AdamW step (`Backend.adamw8bitStep`; the wasm kernel is
 * assembly/adam8bit.ts, whose numerics this follows): one workgroup of 64 lanes per block of 256
 * elements, 4 consecutive elements a lane, so each lane owns one u32 word of m codes and one of v
 * codes. The block's new absmax is a workgroup max (exact in any order); the division by it is
 * correctly rounded (`div_rn`), sqrt and the other divisions are WGSL's (a few ulp), so a code may
 * differ from the CPU backends' by one where a value lies within an ulp of a midpoint.
 */
import { perRow } from './prelude.js';

/**
 * `1 - f32(beta)^step` with the power by squaring in f64, as the CPU kernels compute it (only
 * multiplications: the same bits in every runtime). The gpu/ folder imports nothing from the other
 * backends, so this is its own copy of src/backend/js/adamw8bit.ts's `powi`.
 */
export function biasCorrection(beta: number, step: number): number {
  let r = 1;
  let x = Math.fround(beta);
  for (let k = step; k > 0; k >>= 1) {
    if (k & 1) r *= x;
    x *= x;
  }
  return 1 - r;
}

const NEAREST_CODE = /* wgsl */ `
// index of the entry of the sorted 256-entry map at element offset \`map\` nearest to x (ties to the lower)
fn nearest_code(map: u32, x: f32) -> u32 {
  var lo = 0u;
  for (var s = 128u; s > 0u; s = s >> 1u) {
    if (ld(map + lo + s) <= x) { lo = lo + s; }
  }
  if (lo < 255u && abs(ld(map + lo + 1u) - x) < abs(x - ld(map + lo))) { lo = lo + 1u; }
  return lo;
}
`;

export const OPTIM8BIT: Record<string, string> = {
  // P: 0 blocks, 1 params, 2 grads, 3 mCodes, 4 vCodes, 5 mAbsmax, 6 vAbsmax, 7 signedMap,
  // 8 unsignedMap, 9 gradScale (0: none), 10 n; pf: 0 lr, 1 beta1, 2 beta2, 3 eps, 4 weightDecay,
  // 5 1-beta1^step, 6 1-beta2^step (f32 of the f64 powers by squaring, as the CPU kernels)
  adamw8bit_step: perRow(`
  let b = row;
  let n = P[10];
  var gs = 1.0;
  if (P[9] != 0u) { gs = ld(P[9]); }
  let am = ld(P[5] + b); let av = ld(P[6] + b);
  let b1 = pf(1); let b2 = pf(2);
  let word = b * 64u + li;
  let first = b * 256u + li * 4u;
  var mw = 0u; var vw = 0u;
  if (first < n) { mw = mem[P[3] + word]; vw = mem[P[4] + word]; }
  var ms: array<f32, 4>; var vs: array<f32, 4>;
  var lm = 0.0; var lv = 0.0;
  for (var j = 0u; j < 4u; j++) {
    let i = first + j;
    if (i < n) {
      let g = ld(P[2] + i) * gs;
      let m = b1 * (ld(P[7] + ((mw >> (8u * j)) & 0xffu)) * am) + (1.0 - b1) * g;
      let v = b2 * (ld(P[8] + ((vw >> (8u * j)) & 0xffu)) * av) + (1.0 - b2) * (g * g);
      ms[j] = m; vs[j] = v;
      lm = max(lm, abs(m)); lv = max(lv, v);
      let p = ld(P[1] + i);
      st(P[1] + i, p - pf(0) * ((m / pf(5)) / (sqrt(v / pf(6)) + pf(3)) + pf(4) * p));
    }
  }
  let nm = wg_max(li, lm);
  let nv = wg_max(li, lv);
  var mo = 0u; var vo = 0u;
  for (var j = 0u; j < 4u; j++) {
    if (first + j < n) {
      let m = ms[j];
      var cm = nearest_code(P[7], select(0.0, div_rn(m, nm), nm > 0.0));
      let q = ld(P[7] + cm);
      if (m > 0.0 && q <= 0.0) { cm = cm + 1u; } else if (m < 0.0 && q >= 0.0) { cm = cm - 1u; }
      let cv = nearest_code(P[8], select(0.0, div_rn(vs[j], nv), nv > 0.0));
      mo = mo | (cm << (8u * j));
      vo = vo | (cv << (8u * j));
    }
  }
  if (first < n) { mem[P[3] + word] = mo; mem[P[4] + word] = vo; }
  if (li == 0u) { st(P[5] + b, nm); st(P[6] + b, nv); }`, NEAREST_CODE),
};
