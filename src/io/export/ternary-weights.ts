/**
 * BitLinear latent weights → the ternary codes and scale the model computes with, and those
 * codes in each GGUF tensor type an exporter offers.
 */
import { quantizeTernaryWeights, unpackTernaryI2 } from '../../quant/index.js';
import { encodeF16, encodeF32 } from '../gguf/half.js';
import { QK_I2_S, QK_K, type GgmlTypeName } from '../gguf/format.js';
import { packI2_S, packTq1_0, packTq2_0 } from '../gguf/ternary.js';

/** A projection's ternary form: weight (rows, cols) = codes · scale. */
export interface TernaryWeight {
  codes: Int8Array;
  /** 1/s_w = max(mean|W|, 1e-5) (f32): the value of a +1 code. */
  scale: number;
  rows: number;
  cols: number;
}

/** Absmean-quantise latent weights w (rows, cols) per tensor, exactly as BitLinear's forward does. */
export function ternarize(w: Float32Array, rows: number, cols: number): TernaryWeight {
  const { packed, scales } = quantizeTernaryWeights(w, rows, cols);
  return { codes: unpackTernaryI2(packed, rows, cols), scale: Math.fround(1 / scales[0]!), rows, cols };
}

/** The GGUF types a ternary projection can be written in (`--type`). */
export const TERNARY_GGUF_TYPES = ['tq2_0', 'tq1_0', 'i2_s', 'f16', 'f32'] as const;
export type TernaryGgufType = (typeof TERNARY_GGUF_TYPES)[number];

export const GGML_NAME_OF: Record<TernaryGgufType, GgmlTypeName> = { tq2_0: 'TQ2_0', tq1_0: 'TQ1_0', i2_s: 'I2_S', f16: 'F16', f32: 'F32' };

/** The block a type needs along a row (1: none). */
export function rowBlock(type: TernaryGgufType): number {
  return type === 'tq2_0' || type === 'tq1_0' ? QK_K : type === 'i2_s' ? QK_I2_S : 1;
}

/**
 * The bytes of stacked ternary weights (their rows concatenated) in `type`. `unitScale` writes
 * the codes themselves (d = 1; the exporter stores each scale in a separate tensor), otherwise
 * each part's rows carry its scale (TQ: f16 d per block; F16/F32: code·scale).
 */
export function encodeTernary(parts: readonly TernaryWeight[], type: TernaryGgufType, unitScale: boolean): Uint8Array {
  const cols = parts[0]!.cols;
  const rows = parts.reduce((a, p) => a + p.rows, 0);
  const codes = new Int8Array(rows * cols);
  const rowScale = new Float32Array(rows);
  let r = 0;
  for (const p of parts) {
    codes.set(p.codes, r * cols);
    rowScale.fill(unitScale ? 1 : p.scale, r, r + p.rows);
    r += p.rows;
  }
  switch (type) {
    case 'tq2_0': return packTq2_0(codes, rows, cols, rowScale);
    case 'tq1_0': return packTq1_0(codes, rows, cols, rowScale);
    case 'i2_s':
      if (parts.length !== 1 || unitScale) throw new Error('I2_S holds one tensor with its own scale');
      return packI2_S(codes, rows, cols, parts[0]!.scale);
    case 'f16':
    case 'f32': {
      const values = new Float32Array(rows * cols);
      for (let i = 0; i < values.length; i++) values[i] = codes[i]! * rowScale[Math.floor(i / cols)]!;
      return type === 'f16' ? encodeF16(values) : encodeF32(values);
    }
  }
}
