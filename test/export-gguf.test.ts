// GGUF v3 writing and the ternary tensor types, checked against their definitions (ggml's
// block_tq1_0 / block_tq2_0 and quantize_row_tq*_0_ref, bitnet.cpp's quantize_i2_s x86 layout,
// the GGUF header layout), byte by byte; and the gpt2 mapping's refusals.
import { describe, expect, it } from 'vitest';
import { planGptGguf } from '../src/io/export/gguf-gpt.js';
import { ggufTokenizerMetadata } from '../src/io/export/gguf-tokenizer.js';
import { ternarize } from '../src/io/export/ternary-weights.js';
import { gguf } from '../src/io/gguf/format.js';
import { bf16BitsToF32, f16BitsToF32, f32ToBf16Bits, f32ToF16Bits } from '../src/io/gguf/half.js';
import { ggufTensorData, parseGguf } from '../src/io/gguf/reader.js';
import { dequantizeI2_S, dequantizeTq1_0, dequantizeTq2_0, packI2_S, packTq1_0, packTq2_0 } from '../src/io/gguf/ternary.js';
import { encodeGguf } from '../src/io/gguf/writer.js';
import type { SafetensorsTensor } from '../src/io/safetensors.js';
import type { ModelConfig } from '../src/train/model.js';
import { Rng } from '../src/util/rng.js';

function randomCodes(n: number, seed: number): Int8Array {
  const rng = new Rng(seed);
  return Int8Array.from({ length: n }, () => Math.floor(rng.uniform() * 3) - 1);
}

describe('GGUF v3 header', () => {
  const content = {
    metadata: [
      ['general.architecture', gguf.str('gpt2')],
      ['gpt2.block_count', gguf.u32(2)],
      ['gpt2.attention.layer_norm_epsilon', gguf.f32(1e-5)],
      ['tokenizer.ggml.add_bos_token', gguf.bool(false)],
      ['tokenizer.ggml.tokens', gguf.array('string', ['a', 'Ġb'])],
      ['tokenizer.ggml.token_type', gguf.array('i32', [1, 3])],
    ] as const,
    tensors: [
      { name: 'a', type: 'F32' as const, ne: [3], data: new Uint8Array(12).fill(1) },
      { name: 'b', type: 'TQ2_0' as const, ne: [256, 2], data: new Uint8Array(132).fill(2) },
    ],
  };
  const bytes = encodeGguf(content);

  it('starts "GGUF", version 3, u64 tensor and metadata counts, then length-prefixed keys', () => {
    const v = new DataView(bytes.buffer);
    expect(new TextDecoder().decode(bytes.subarray(0, 4))).toBe('GGUF');
    expect(v.getUint32(4, true)).toBe(3);
    expect(v.getBigUint64(8, true)).toBe(2n);
    expect(v.getBigUint64(16, true)).toBe(6n);
    expect(v.getBigUint64(24, true)).toBe(BigInt('general.architecture'.length));
    expect(new TextDecoder().decode(bytes.subarray(32, 32 + 20))).toBe('general.architecture');
    expect(v.getUint32(52, true)).toBe(8); // GGUF_TYPE_STRING
  });

  it('reads back every typed value and tensor info; tensor data starts 32-aligned', () => {
    const p = parseGguf(bytes);
    expect(p.metadata.get('gpt2.block_count')).toEqual({ type: 'u32', value: 2 });
    expect(p.metadata.get('gpt2.attention.layer_norm_epsilon')).toEqual({ type: 'f32', value: Math.fround(1e-5) });
    expect(p.metadata.get('tokenizer.ggml.add_bos_token')).toEqual({ type: 'bool', value: false });
    expect(p.metadata.get('tokenizer.ggml.tokens')).toEqual({ type: 'array', itemType: 'string', values: ['a', 'Ġb'] });
    expect(p.metadata.get('tokenizer.ggml.token_type')).toEqual({ type: 'array', itemType: 'i32', values: [1, 3] });
    expect(p.tensors.map((t) => [t.name, t.type, t.ne, t.offset])).toEqual([['a', 'F32', [3], 0], ['b', 'TQ2_0', [256, 2], 32]]);
    expect(p.dataStart % 32).toBe(0);
    expect(Array.from(ggufTensorData(bytes, p, 'b'))).toEqual(new Array(132).fill(2));
  });

  it('refuses data of the wrong size, a duplicate key and an out-of-range u32', () => {
    expect(() => encodeGguf({ metadata: [], tensors: [{ name: 'x', type: 'TQ2_0', ne: [256, 1], data: new Uint8Array(64) }] })).toThrow(/has 64 bytes, its type and dims need 66/);
    expect(() => encodeGguf({ metadata: [['k', gguf.u32(1)], ['k', gguf.u32(2)]], tensors: [] })).toThrow(/key k given twice/);
    expect(() => encodeGguf({ metadata: [['k', gguf.u32(-1)]], tensors: [] })).toThrow(/-1 is not a u32/);
    expect(() => encodeGguf({ metadata: [], tensors: [{ name: 'x', type: 'TQ1_0', ne: [100, 1], data: new Uint8Array(0) }] })).toThrow(/rows of 100 elements are not a multiple of its block of 256/);
  });
});

describe('F16 and BF16 bits (round half to even)', () => {
  it('encodes known values', () => {
    expect(f32ToF16Bits(1)).toBe(0x3c00);
    expect(f32ToF16Bits(-2)).toBe(0xc000);
    expect(f32ToF16Bits(65504)).toBe(0x7bff);
    expect(f32ToF16Bits(65520)).toBe(0x7c00); // rounds up to infinity
    expect(f32ToF16Bits(1 / 3)).toBe(0x3555);
    expect(f32ToF16Bits(2 ** -24)).toBe(0x0001); // smallest subnormal
    expect(f32ToF16Bits(2 ** -25)).toBe(0x0000); // a tie: to even
    expect(f32ToF16Bits(1 + 2 ** -11)).toBe(0x3c00); // a tie: to even
    expect(f32ToF16Bits(1 + 3 * 2 ** -11)).toBe(0x3c02); // a tie: to even (up)
    expect(f16BitsToF32(0x3555)).toBeCloseTo(0.33325, 5);
    expect(f32ToBf16Bits(1)).toBe(0x3f80);
    expect(f32ToBf16Bits(1 + 2 ** -8)).toBe(0x3f80); // tie to even
    expect(f32ToBf16Bits(1 + 3 * 2 ** -8)).toBe(0x3f82);
    expect(bf16BitsToF32(0x4049)).toBeCloseTo(3.140625, 6);
  });
  it('round-trips every f16 value through f32', () => {
    for (let h = 0; h < 0x7c00; h += 7) expect(f32ToF16Bits(f16BitsToF32(h))).toBe(h);
  });
});

describe('TQ2_0 (ggml block_tq2_0: qs[64], d)', () => {
  it('puts value i of a block in byte 32·⌊i/128⌋ + i mod 32, bits 2·⌊(i mod 128)/32⌋, as q + 1', () => {
    for (const i of [0, 1, 31, 32, 63, 64, 127, 128, 159, 200, 255]) {
      const codes = new Int8Array(256); // all 0 → every 2-bit field 1
      codes[i] = 1;
      const b = packTq2_0(codes, 1, 256, 0.5);
      expect(b.length).toBe(66);
      const byte = 32 * Math.floor(i / 128) + (i % 32);
      const shift = 2 * Math.floor((i % 128) / 32);
      for (let j = 0; j < 64; j++) expect(b[j]).toBe(j === byte ? (0x55 & ~(3 << shift)) | (2 << shift) : 0x55);
      expect(b[64] | (b[65]! << 8)).toBe(0x3800); // d = 0.5 as f16
    }
  });
  it('dequantizes (ggml dequantize_row_tq2_0) to code · d, per row scales', () => {
    const codes = randomCodes(3 * 512, 1);
    const d = [0.25, 1, 0.0625];
    const out = dequantizeTq2_0(packTq2_0(codes, 3, 512, d), 3, 512);
    expect(Array.from(out)).toEqual(Array.from(codes, (c, i) => c * d[Math.floor(i / 512)]! + 0));
  });
});

describe('TQ1_0 (ggml block_tq1_0: qs[48], qh[4], d)', () => {
  const POW3 = [1, 3, 9, 27, 81];
  const tritAt = (byte: number, n: number) => ((((byte * POW3[n]!) & 255) * 3) >> 8);
  it('puts value i in the byte and trit position of quantize_row_tq1_0_ref', () => {
    const codes = randomCodes(256, 2);
    const b = packTq1_0(codes, 1, 256, 1);
    expect(b.length).toBe(54);
    for (let i = 0; i < 256; i++) {
      const [byte, n] = i < 160 ? [i % 32, Math.floor(i / 32)] : i < 240 ? [32 + ((i - 160) % 16), Math.floor((i - 160) / 16)] : [48 + ((i - 240) % 4), Math.floor((i - 240) / 4)];
      expect(tritAt(b[byte]!, n) - 1).toBe(codes[i]);
    }
    expect(b[52] | (b[53]! << 8)).toBe(0x3c00);
    // five trits (first most significant) stored as ceil(q·256/243): all +1 → q = 242 → 255
    expect(packTq1_0(new Int8Array(256).fill(1), 1, 256, 1)[0]).toBe(255);
  });
  it('dequantizes (ggml dequantize_row_tq1_0) to code · d', () => {
    const codes = randomCodes(2 * 768, 3);
    expect(Array.from(dequantizeTq1_0(packTq1_0(codes, 2, 768, [2, 0.5]), 2, 768))).toEqual(Array.from(codes, (c, i) => c * (i < 768 ? 2 : 0.5) + 0));
  });
});

describe('I2_S (bitnet.cpp quantize_i2_s, x86 QK_I2_S = 128)', () => {
  it('packs value i at byte 32·⌊i/128⌋ + i mod 32, shift 6 − 2·⌊(i mod 128)/32⌋, codes 0/1/2 for −1/0/+1, then the f32 scale, n/4 + 32 bytes', () => {
    const rows = 4, cols = 128;
    const codes = randomCodes(rows * cols, 4);
    const b = packI2_S(codes, rows, cols, 0.125);
    expect(b.length).toBe((rows * cols) / 4 + 32);
    for (let i = 0; i < rows * cols; i++) {
      const byte = 32 * Math.floor(i / 128) + (i % 32);
      const shift = 6 - 2 * Math.floor((i % 128) / 32);
      expect(((b[byte]! >> shift) & 3) - 1).toBe(codes[i]);
    }
    expect(new DataView(b.buffer).getFloat32((rows * cols) / 4, true)).toBe(0.125);
    expect(Array.from(dequantizeI2_S(b, rows, cols))).toEqual(Array.from(codes, (c) => c * 0.125 + 0));
    expect(() => packI2_S(new Int8Array(100), 1, 100, 1)).toThrow(/not a multiple of the 128-value block/);
  });
});

describe('ternarize: the codes and scale BitLinear computes with', () => {
  it('is absmean per tensor, round half to even', () => {
    const w = Float32Array.from([0.5, -0.25, 0.125, 0, 1.5, -1.5, 0.2, -0.3]);
    const t = ternarize(w, 2, 4);
    const mean = w.reduce((a, x) => a + Math.abs(x), 0) / 8; // 0.546875
    expect(t.scale).toBeCloseTo(mean, 6);
    expect(Array.from(t.codes)).toEqual(Array.from(w, (x) => Math.max(-1, Math.min(1, Math.round(x / mean))) || 0));
  });
});

describe('tokenizer metadata', () => {
  it('spells char tokens as GPT-2 byte-level strings, with merges for multi-byte characters', () => {
    const md = new Map(ggufTokenizerMetadata({ kind: 'char', version: 1, vocab: ['\n', ' ', 'A', 'é'] }, 4));
    expect(md.get('tokenizer.ggml.model')).toEqual({ type: 'string', value: 'gpt2' });
    expect(md.get('tokenizer.ggml.tokens')).toEqual({ type: 'array', itemType: 'string', values: ['Ċ', 'Ġ', 'A', 'Ã©'] });
    expect(md.get('tokenizer.ggml.merges')).toEqual({ type: 'array', itemType: 'string', values: ['Ã ©'] });
    expect(() => ggufTokenizerMetadata({ kind: 'byte', version: 1 }, 65)).toThrow(/256 tokens for a model of vocabulary 65/);
  });
});

describe('the gpt2 mapping refuses what llama.cpp cannot compute', () => {
  const base: ModelConfig = { vocabSize: 16, contextLength: 8, layers: 1, heads: 2, dim: 8, norm: 'layer', mlp: 'gelu', pos: 'learned', bitlinear: true, bitlinearNorm: false, bias: false, tiedHead: false, initStd: 0.02 };
  const none = new Map<string, SafetensorsTensor>();
  it.each([
    [{ norm: 'rms' }, /cannot express RMSNorm/],
    [{ mlp: 'swiglu' }, /a swiglu MLP \(gpt2 has GELU\)/],
    [{ pos: 'rope' }, /rope positions/],
    [{ bitlinearNorm: true }, /BitLinear's built-in RMSNorm before every projection/],
    [{ activationScale: 'static' }, /static calibrated clips/],
    [{ keepInt8: ['model.layers.0.mlp.up_proj'] }, /--keep-int8/],
    [{ ste: 'lsq' }, /LSQ/],
  ] as const)('%j', (change, message) => {
    expect(() => planGptGguf({ ...base, ...change } as ModelConfig, none, undefined, {})).toThrow(message);
  });
  it('refuses --type i2_s (bitnet.cpp) and a missing tensor by name', () => {
    expect(() => planGptGguf(base, none, undefined, { type: 'i2_s' })).toThrow(/I2_S is bitnet\.cpp's type/);
    expect(() => planGptGguf(base, none, undefined, { type: 'f32' })).toThrow(/no tensor model\.embed_tokens\.weight/);
  });
});

describe('--type i2_s: a relu2 BitNet (2B4T) for bitnet.cpp', () => {
  it('writes arch bitnet-b1.58 with I2_S projections whose values are the codes times the scale BitLinear uses', async () => {
    const { planLlamaGguf } = await import('../src/io/export/gguf-llama.js');
    const { LlamaModel, resolveLlamaConfig } = await import('../src/nn/llama.js');
    const { createBackend } = await import('../src/backend/index.js');
    const { Heap } = await import('../src/tensor/heap.js');
    const c = resolveLlamaConfig({ family: 'bitnet', vocabSize: 40, contextLength: 16, layers: 1, heads: 4, kvHeads: 4, dim: 128, hidden: 256 });
    const heap = new Heap(await createBackend('js'));
    const model = new LlamaModel(c).materialize(heap, new Rng(4));
    const values = model.params.exportValuesSync();
    heap.backend.dispose();
    const tensors = new Map([...values].map(([n, v]) => [n, { dtype: 'F32' as const, shape: [...model.params.getParam(n).shape], data: v }]));
    expect(() => planLlamaGguf(c, tensors, undefined, {})).toThrow(/computes SiLU there/);
    const plan = planLlamaGguf(c, tensors, undefined, { type: 'i2_s' });
    const bytes = encodeGguf(plan.content);
    const p = parseGguf(bytes);
    expect(p.metadata.get('general.architecture')).toEqual({ type: 'string', value: 'bitnet-b1.58' });
    expect(p.tensors.some((t) => t.name.endsWith('.scale'))).toBe(false);
    const info = p.tensors.find((t) => t.name === 'blk.0.ffn_down.weight')!;
    expect(info).toMatchObject({ type: 'I2_S', ne: [256, 128], bytes: (256 * 128) / 4 + 32 });
    const t = ternarize(values.get('model.layers.0.mlp.down_proj.weight')!, 128, 256);
    expect(Array.from(dequantizeI2_S(ggufTensorData(bytes, p, 'blk.0.ffn_down.weight'), 128, 256))).toEqual(Array.from(t.codes, (x) => x * t.scale + 0));
  });
});
