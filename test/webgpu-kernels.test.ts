// Every WGSL kernel of the webgpu backend (gpu/) against the js reference (f64) on the same f32
// inputs, on odd shapes (not multiples of 4, 32 or 64; rows longer than a 64-lane workgroup).
// Runs on whatever adapter Dawn finds (here SwiftShader, a CPU Vulkan driver); skipped with the
// reason printed only where there is none, and never under CI=true.
//
// Tolerances (|webgpu - js| <= atol + rtol*|js|):
//   elementwise, bias, copies, embedding, column sums: rtol 1e-6 (one or two f32 roundings)
//   GEMM: rtol 1e-5, atol 1e-5 (f32 sums over K <= 41 in another order than the f64 oracle)
//   reductions, norms, activations, attention, softmax/CE/KD, AdamW, RoPE, QAT sums: rtol 1e-4,
//   atol 1e-5 (f32 accumulation; WGSL exp/log/sqrt/division are accurate to a few ulp only)
//   quantisers and packed kernels: codes and integer sums exact; the scaled f32 results rtol 1e-6
//   (WGSL's f32 division: 2.5 ulp); activation codes may differ by 1 where x*s lies within an
//   ulp of a rounding tie (none occur with these inputs).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Backend } from '../src/backend/backend.js';
import { Rng } from '../src/util/rng.js';
import { dynamicMap } from '../src/quant/dynamic-map.js';
import { BACKEND_METHODS } from './portable/webgpu-methods.js';
import { Pair, expectClose, webgpuOrReason } from './portable/webgpu-harness.js';
import type { WebGpuBackend } from '../gpu/index.js';

const found = await webgpuOrReason();
if (!found.gpu) console.warn(`webgpu: SKIPPING the webgpu kernel tests: ${found.reason}`);

describe.skipIf(!found.gpu)(`webgpu kernels vs the js reference (${found.gpu?.adapter ?? 'no adapter'})`, () => {
  const gpu = found.gpu as WebGpuBackend;
  const rng = new Rng(42);
  const normal = () => rng.normal();
  let pair: Pair;
  beforeAll(() => { pair = new Pair(gpu); });
  afterAll(() => gpu?.dispose());

  it('implements every Backend method, with no placeholder left', async () => {
    const missing = BACKEND_METHODS.filter((m) => typeof (gpu as unknown as Record<string, unknown>)[m] !== 'function');
    expect(missing).toEqual([]);
    const placeholders = BACKEND_METHODS.filter((m) => /not implemented yet/.test(String((gpu as unknown as Record<string, () => void>)[m])));
    expect(placeholders).toEqual([]);
    expect(await gpu.compileAll()).toEqual([]);
  });

  it('gemm nn, nt, tn, overwrite and accumulate, 4x4 blocks cut at every edge (M=37, N=29, K=41)', async () => {
    const M = 37, N = 29, K = 41;
    pair.alloc('ga', M * K).alloc('gb', K * N).alloc('gc', M * N);
    pair.random('ga', normal); pair.random('gb', normal);
    for (const layout of ['nn', 'nt', 'tn'] as const) {
      for (const acc of [false, true]) {
        pair.random('gc', normal);
        pair.run((be, p) => be.gemm(layout, p('gc'), p('ga'), p('gb'), M, N, K, acc));
        await pair.check('gc', 1e-5, 1e-5);
      }
    }
  });

  it('elementwise, bias, fill, copy, sum and sumSquares (n = 10007, two reduction passes)', async () => {
    const n = 10007, N = 7, C = 131;
    pair.alloc('ea', n).alloc('eb', n).alloc('ec', n).alloc('es', 2).alloc('bias', C);
    pair.random('ea', normal); pair.random('eb', normal); pair.random('bias', normal);
    const ops: [string, (be: Backend, p: (s: string) => number) => void][] = [
      ['add', (be, p) => be.add(p('ec'), p('ea'), p('eb'), n)],
      ['mul', (be, p) => be.mul(p('ec'), p('ea'), p('eb'), n)],
      ['scale', (be, p) => be.scale(p('ec'), p('ea'), -0.37, n)],
      ['axpy', (be, p) => be.axpy(p('ec'), 1.5, p('ea'), n)],
      ['mulAccumulate', (be, p) => be.mulAccumulate(p('ec'), p('ea'), p('eb'), n)],
      ['addBias', (be, p) => be.addBias(p('ec'), p('bias'), N, C)],
      ['fill', (be, p) => be.fill(p('ec') + 3, 101, -2.5)],
      ['copy', (be, p) => be.copy(p('ec') + 1, p('ea') + 7, 999)],
    ];
    for (const [name, op] of ops) {
      pair.run(op);
      await pair.check('ec', 1e-6, 1e-6).catch((e) => { throw new Error(`${name}: ${(e as Error).message}`); });
    }
    pair.run((be, p) => be.biasBackward(p('bias'), p('ea'), N, C));
    await pair.check('bias', 1e-5, 1e-6);
    pair.run((be, p) => { be.sum(p('es'), p('ea'), n); be.sumSquares(p('es') + 1, p('ea'), n); });
    await pair.check('es', 1e-5, 1e-4);
  });

  it('layerNorm and rmsNorm forward and backward (rows of 131 > 64 lanes; no bias, no weight)', async () => {
    const N = 5, C = 131;
    pair.alloc('nx', N * C).alloc('ny', N * C).alloc('nw', C).alloc('nb', C).alloc('nm', N).alloc('nr', N)
      .alloc('ndy', N * C).alloc('ndx', N * C).alloc('ndw', C).alloc('ndb', C);
    for (const n of ['nx', 'nw', 'nb', 'ndy', 'ndx', 'ndw', 'ndb']) pair.random(n, normal);
    for (const bias of ['nb', '0']) {
      pair.run((be, p) => {
        be.layerNormForward(p('ny'), p('nm'), p('nr'), p('nx'), p('nw'), p(bias), N, C, 1e-5);
        be.layerNormBackward(p('ndx'), p('ndw'), p(bias === '0' ? '0' : 'ndb'), p('ndy'), p('nx'), p('nw'), p('nm'), p('nr'), N, C);
      });
      for (const n of ['ny', 'nm', 'nr', 'ndx', 'ndw', 'ndb']) await pair.check(n, 1e-4, 1e-5);
    }
    for (const w of ['nw', '0']) {
      pair.run((be, p) => {
        be.rmsNormForward(p('ny'), p('nr'), p('nx'), p(w), N, C, 1e-6);
        be.rmsNormBackward(p('ndx'), p(w === '0' ? '0' : 'ndw'), p('ndy'), p('nx'), p(w), p('nr'), N, C);
      });
      for (const n of ['ny', 'nr', 'ndx', 'ndw']) await pair.check(n, 1e-4, 1e-5);
    }
  });

  it('GELU, SiLU, squared ReLU and tanh forward and backward, including |x| = 30', async () => {
    const n = 1001;
    pair.alloc('ax', n).alloc('ay', n).alloc('ad', n).alloc('ag', n);
    const x = pair.random('ax', normal, 3);
    x[0] = 30; x[1] = -30; x[2] = 0; x[3] = 1e-4;
    pair.write('ax', x);
    pair.random('ad', normal);
    for (const [f, b] of [['geluForward', 'geluBackward'], ['siluForward', 'siluBackward'], ['relu2Forward', 'relu2Backward']] as const) {
      pair.random('ag', normal);
      pair.run((be, p) => { be[f](p('ay'), p('ax'), n); be[b](p('ag'), p('ax'), p('ad'), n); });
      await pair.check('ay', 1e-5, 1e-6);
      await pair.check('ag', 1e-4, 1e-5);
    }
    pair.run((be, p) => { be.tanhForward(p('ay'), p('ax'), n); be.tanhBackward(p('ag'), p('ay'), p('ad'), n); });
    await pair.check('ay', 1e-5, 1e-6);
    await pair.check('ag', 1e-4, 1e-5);
  });

  it('multi-head and grouped-query attention forward and backward (T = 7, hs = 6 and 4)', async () => {
    const B = 2, T = 7, C = 18, NH = 3;
    pair.alloc('qkv', B * T * 3 * C).alloc('ao', B * T * C).alloc('pre', B * NH * T * T).alloc('att', B * NH * T * T)
      .alloc('dqkv', B * T * 3 * C).alloc('dao', B * T * C).alloc('dpre', B * NH * T * T).alloc('datt', B * NH * T * T);
    for (const n of ['qkv', 'dqkv', 'dao']) pair.random(n, normal);
    pair.run((be, p) => {
      be.attentionForward(p('ao'), p('pre'), p('att'), p('qkv'), B, T, C, NH);
      be.attentionBackward(p('dqkv'), p('dpre'), p('datt'), p('dao'), p('qkv'), p('att'), B, T, C, NH);
    });
    await pair.check('ao', 1e-4, 1e-5);
    await pair.check('dqkv', 1e-4, 1e-5);
    // GQA: NH = 4 query heads of 4 share NKV = 2 kv heads; q rows padded (qs > NH*hs), k/v in one buffer
    const H = 4, NKV = 2, hs = 4, qs = 19, kvs = 2 * NKV * hs + 1;
    pair.alloc('gq', B * T * qs).alloc('gkv', B * T * kvs).alloc('go', B * T * H * hs).alloc('gpre', B * H * T * T).alloc('gatt', B * H * T * T)
      .alloc('gdq', B * T * qs).alloc('gdkv', B * T * kvs).alloc('gdo', B * T * H * hs).alloc('gdpre', B * H * T * T).alloc('gdatt', B * H * T * T);
    for (const n of ['gq', 'gkv', 'gdq', 'gdkv', 'gdo']) pair.random(n, normal);
    pair.run((be, p) => {
      const k = p('gkv'), v = p('gkv') + NKV * hs;
      be.groupedAttentionForward(p('go'), p('gpre'), p('gatt'), p('gq'), k, v, B, T, H, NKV, hs, qs, kvs);
      be.groupedAttentionBackward(p('gdq'), p('gdkv'), p('gdkv') + NKV * hs, p('gdpre'), p('gdatt'), p('gdo'), p('gq'), k, v, p('gatt'), B, T, H, NKV, hs, qs, kvs);
    });
    await pair.check('go', 1e-4, 1e-5);
    await pair.check('gdq', 1e-4, 1e-5);
    await pair.check('gdkv', 1e-4, 1e-5);
  });

  it('RoPE: table (uploaded from f64), fused-qkv and per-tensor heads, in place and backward', async () => {
    const B = 2, T = 5, C = 12, NH = 2, hs = 6;
    pair.alloc('rt', T * hs).alloc('rx', B * T * 3 * C).alloc('ry', B * T * 3 * C).alloc('rd', B * T * 3 * C);
    pair.random('rx', normal); pair.random('rd', normal);
    pair.run((be, p) => {
      be.ropeTable(p('rt'), T, hs, 10000);
      be.ropeForward(p('ry'), p('rx'), p('rt'), B, T, C, NH);
      be.ropeBackward(p('rd'), p('rx'), p('rt'), B, T, C, NH);
    });
    await pair.check('rt', 1e-7, 1e-7);
    await pair.check('ry', 1e-5, 1e-6);
    await pair.check('rd', 1e-5, 1e-6);
    pair.run((be, p) => {
      be.ropeHeadsForward(p('rx'), p('rx'), p('rt'), B, T, 3 * hs + 1, 3, hs); // in place, one extra column per row
      be.ropeHeadsBackward(p('rd'), p('ry'), p('rt'), B, T, 3 * hs + 1, 3, hs);
    });
    await pair.check('rx', 1e-5, 1e-6);
    await pair.check('rd', 1e-5, 1e-6);
  });

  it('embedding forward and backward (repeated tokens scatter in order), with and without positions', async () => {
    const B = 2, T = 3, C = 5, V = 7;
    pair.alloc('tok', B * T).alloc('wte', V * C).alloc('wpe', T * C).alloc('eo', B * T * C).alloc('dwte', V * C).alloc('dwpe', T * C);
    pair.indices('tok', [3, 3, 0, 6, 3, 1]);
    for (const n of ['wte', 'wpe', 'eo', 'dwte', 'dwpe']) pair.random(n, normal);
    for (const pos of ['wpe', '0']) {
      pair.run((be, p) => {
        be.embeddingForward(p('eo'), p('tok'), p('wte'), p(pos), B, T, C);
        be.embeddingBackward(p('dwte'), p(pos === '0' ? '0' : 'dwpe'), p('eo'), p('tok'), B, T, C);
      });
      for (const n of ['eo', 'dwte', 'dwpe']) await pair.check(n, 1e-6, 1e-7);
    }
    pair.indices('tok', [3, 3, 0, 6, 3, 16777216]);
    expect(() => gpu.embeddingForward(pair.p('eo'), pair.p('tok'), pair.p('wte'), 0, B, T, C)).toThrow(/tokens\[5\] = 16777216 is not an index/);
  });

  it('fused softmax + cross-entropy and the distillation loss, forward and backward (V = 77)', async () => {
    const N = 5, V = 77;
    pair.alloc('lg', N * V).alloc('pr', N * V).alloc('tg', N).alloc('ls', N).alloc('dls', N).alloc('dlg', N * V)
      .alloc('te', N * V).alloc('prT', N * V).alloc('teT', N * V);
    pair.random('lg', normal, 3); pair.random('te', normal, 3); pair.random('dls', normal); pair.random('dlg', normal);
    pair.indices('tg', [0, 76, 5, 5, 40]);
    pair.run((be, p) => {
      be.crossEntropyForward(p('ls'), p('pr'), p('lg'), p('tg'), N, V);
      be.crossEntropyBackward(p('dlg'), p('pr'), p('tg'), p('dls'), N, V);
    });
    for (const n of ['ls', 'pr', 'dlg']) await pair.check(n, 1e-4, 1e-6);
    pair.run((be, p) => {
      be.kdForward(p('ls'), p('pr'), p('prT'), p('teT'), p('lg'), p('te'), p('tg'), N, V, 2.5, 0.3);
      be.kdBackward(p('dlg'), p('pr'), p('prT'), p('teT'), p('tg'), p('dls'), N, V, 2.5, 0.3);
    });
    for (const n of ['ls', 'pr', 'prT', 'teT', 'dlg']) await pair.check(n, 1e-4, 1e-6);
  });

  it('AdamW (with and without a gradient scale) and the clipping factor', async () => {
    const n = 1003;
    pair.alloc('op', n).alloc('og', n).alloc('om', n).alloc('ov', n).alloc('osq', 1).alloc('ocl', 1);
    pair.random('op', normal); pair.random('og', normal); pair.random('om', normal, 0.1);
    pair.write('ov', Array.from({ length: n }, () => rng.uniform() * 0.01));
    pair.write('osq', [42.25]);
    pair.run((be, p) => {
      be.clipScale(p('ocl'), p('osq'), 1.3);
      be.adamwStep(p('op'), p('og'), p('om'), p('ov'), n, { lr: 3e-3, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, step: 7 }, p('ocl'));
      be.adamwStep(p('op'), p('og'), p('om'), p('ov'), n, { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, step: 8 }, 0);
    });
    await pair.check('ocl', 1e-6, 0);
    for (const name of ['op', 'om', 'ov']) await pair.check(name, 1e-4, 1e-6);
  });

  it('8-bit blockwise AdamW: 3 steps over n = 1003 (a partial last block), codes within one step of js, weights and absmax close', async () => {
    const n = 1003, blocks = 4;
    const r8 = new Rng(8); // its own stream: the later tests' inputs stay as they were
    const normal8 = () => r8.normal();
    pair.alloc('ep', n).alloc('eg', n).alloc('emc', n).alloc('evc', n).alloc('eam', blocks).alloc('eav', blocks).alloc('esm', 256).alloc('eum', 256).alloc('est', 16392).alloc('ecl', 1);
    pair.random('ep', normal8, 0.05);
    pair.writeBytes('emc', new Uint8Array(n)); pair.writeBytes('evc', new Uint8Array(n));
    pair.write('eam', new Float32Array(blocks)); pair.write('eav', new Float32Array(blocks));
    pair.write('esm', dynamicMap(true)); pair.write('eum', dynamicMap(false)); pair.write('ecl', [0.6]);
    for (let step = 1; step <= 3; step++) {
      pair.write('eg', Array.from({ length: n }, () => normal8() * 10 ** (-3 * r8.uniform())));
      pair.run((be, p) => be.adamw8bitStep(p('ep'), p('eg'), { mCodes: p('emc'), vCodes: p('evc'), mAbsmax: p('eam'), vAbsmax: p('eav'), signedMap: p('esm'), unsignedMap: p('eum'), searchTables: p('est') },
        n, { lr: 3e-3, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: step === 2 ? 0 : 0.1, step }, step === 3 ? p('ecl') : 0));
    }
    await pair.check('ep', 1e-4, 1e-6);
    for (const name of ['eam', 'eav']) await pair.check(name, 1e-4, 0);
    for (const name of ['emc', 'evc']) {
      const [g, j] = await pair.bytes(name, n, false);
      const off = g.filter((c, i) => Math.abs(c - j[i]!) > 0);
      expect(g.every((c, i) => Math.abs(c - j[i]!) <= 1), name).toBe(true);
      expect(off.length, `${name}: codes one step from js`).toBeLessThanOrEqual(n / 100);
    }
  });

  it('BitNet quantisers and packed int8 x ternary forward / dX, per tensor, channel and group of 16 (N=13, K=48)', async () => {
    const M = 5, N = 13, K = 48, K8 = 48, R = 4;
    pair.alloc('qw', N * K).alloc('qs', N * K).alloc('qpk', R * K).alloc('qdq', N * K).alloc('qx', M * K).alloc('qxq', M * K8)
      .alloc('qsx', M).alloc('qxd', M * K).alloc('qy', M * N).alloc('qdy', M * N).alloc('qdx', M * K).alloc('qdw', N * K).alloc('qdwq', N * K);
    pair.random('qw', normal, 0.05); pair.random('qx', normal); pair.random('qdy', normal); pair.random('qdx', normal);
    pair.random('qdw', normal); pair.random('qdwq', normal);
    for (const group of [N * K, K, 16]) {
      // absmean scales: f32 sums on the GPU vs f64 in js
      pair.run((be, p) => be.absmeanScales(p('qs'), p('qw'), N * K, group));
      const { gpu: sg, js: sj } = await pair.read('qs');
      expectClose(sg.subarray(0, (N * K) / group), sj.subarray(0, (N * K) / group), 1e-5, 0, `absmeanScales group ${group}`);
      pair.write('qs', Array.from(sj)); // the same scales in both, so codes must agree exactly
      pair.run((be, p) => {
        be.ternaryPack(p('qpk'), p('qw'), p('qs'), N, K, group);
        be.ternaryDequantize(p('qdq'), p('qpk'), p('qs'), N, K, group);
        be.steClippedWeights(p('qdw'), p('qdwq'), p('qw'), p('qs'), N, K, group);
      });
      const [pg, pj] = await pair.bytes('qpk', R * K, false);
      expect(pg, `packed codes, group ${group}`).toEqual(pj);
      await pair.check('qdq', 1e-6, 0);
      await pair.check('qdw', 1e-6, 1e-7);
      pair.run((be, p) => {
        be.quantizeActivations(p('qxq'), p('qsx'), p('qx'), M, K);
        be.dequantizeActivations(p('qxd'), p('qxq'), p('qsx'), M, K);
        be.ternaryForward(p('qy'), p('qxq'), p('qsx'), p('qpk'), p('qs'), 0, M, N, K, group);
        be.ternaryBackwardDx(p('qdx'), p('qdy'), p('qpk'), p('qs'), 0, M, N, K, group);
        be.steClippedActivations(p('qdx'), p('qdy'), p('qx'), p('qsx'), M, Math.min(K, N));
      });
      const [xg, xj] = await pair.bytes('qxq', M * K8, true);
      expect(xg, 'int8 activations').toEqual(xj);
      await pair.check('qsx', 1e-6, 0);
      await pair.check('qxd', 1e-6, 0);
      await pair.check('qy', 1e-6, 1e-6);
      await pair.check('qdx', 1e-5, 1e-6);
    }
  });

  it('the ternary forward and dX with odd K (K8 padding, unaligned packed rows) agree with js, the forward with and without dot4I8Packed', async () => {
    const M = 3, N = 6, K = 21, K8 = 24, R = 2;
    const { createWebGpuBackend } = await import('../gpu/index.js');
    const plain = await createWebGpuBackend({ packedDot: false });
    try {
      const p2 = new Pair(plain);
      for (const pp of [pair, p2]) {
        pp.alloc('tw', N * K).alloc('ts', 1).alloc('tpk', R * K).alloc('tx', M * K).alloc('txq', M * K8).alloc('tsx', M).alloc('ty', M * N)
          .alloc('tdx', M * K);
      }
      const w = Array.from({ length: N * K }, () => rng.normal());
      const x = Array.from({ length: M * K }, () => rng.normal());
      for (const pp of [pair, p2]) {
        pp.write('tw', w); pp.write('tx', x);
        pp.run((be, p) => {
          be.absmeanScales(p('ts'), p('tw'), N * K, N * K);
          be.ternaryPack(p('tpk'), p('tw'), p('ts'), N, K, N * K);
          be.quantizeActivations(p('txq'), p('tsx'), p('tx'), M, K);
          be.ternaryForward(p('ty'), p('txq'), p('tsx'), p('tpk'), p('ts'), 0, M, N, K, N * K);
          be.ternaryBackwardDx(p('tdx'), p('ty'), p('tpk'), p('ts'), 0, M, N, K, N * K); // unaligned packed rows, K % 4 != 0
        });
        await pp.check('ty', 1e-5, 1e-6);
        await pp.check('tdx', 1e-5, 1e-6);
      }
      const a = await pair.gpu.read(pair.p('ty'), M * N), b = await plain.read(p2.p('ty'), M * N);
      expect(Array.from(a)).toEqual(Array.from(b));
    } finally {
      plain.dispose();
    }
  });

  it('QAT kernels: lerp with noise, STE surrogates, LSQ, static activations, column copies, grid penalty, clamp', async () => {
    const N = 6, K = 32, M = 4, n = N * K, group = 16, G = n / group;
    pair.alloc('zw', n).alloc('zs', G).alloc('za', n).alloc('zb', n).alloc('zo', n).alloc('zdw', n).alloc('zdwq', n)
      .alloc('zst', G).alloc('zam', G).alloc('zsw', G).alloc('zdst', G).alloc('zclip', 1).alloc('zxq', M * K).alloc('zsx', M)
      .alloc('zrow', N).alloc('zdout', 1);
    pair.random('zw', normal, 0.1); pair.random('za', normal); pair.random('zb', normal); pair.random('zdw', normal); pair.random('zdwq', normal);
    pair.write('zam', Array.from({ length: G }, () => 5 + rng.uniform() * 10));
    pair.write('zst', Array.from({ length: G }, (_, g) => (g % 3 === 0 ? 0 : 0.05 + 0.1 * rng.uniform())));
    pair.random('zdst', normal); pair.write('zdout', [0.7]);
    pair.run((be, p) => be.absmeanScales(p('zs'), p('zw'), n, group));
    pair.write('zs', Array.from((await pair.read('zs')).js));
    const blend = { lambda: 0.6, p: 0.5, seed: 1234567 };
    pair.run((be, p) => be.qatLerp(p('zo'), p('za'), p('zb'), n, blend));
    await pair.check('zo', 1e-6, 1e-7);
    for (const s of ['identity', 'clipped', 'soft'] as const) {
      pair.run((be, p) => be.qatSteWeights(p('zdw'), p('zdwq'), p('zw'), p('zs'), N, K, group, s, 0.2, blend));
      await pair.check('zdw', 1e-4, 1e-5);
    }
    pair.run((be, p) => {
      be.qatLsqScales(p('zsw'), p('zst'), p('zam'), G);
      be.qatLsqStepGrad(p('zdst'), p('zdwq'), p('zw'), p('zsw'), n, group, 0.25, { lambda: 1, p: 1, seed: 0 });
    });
    for (const name of ['zsw', 'zst', 'zdst']) await pair.check(name, 1e-4, 1e-5);
    for (const clip of [2.5, 0]) {
      pair.write('zclip', [clip]);
      pair.run((be, p) => be.qatQuantizeActivationsStatic(p('zxq'), p('zsx'), p('za'), p('zclip'), M, K));
      const [g, j] = await pair.bytes('zxq', M * K, true);
      expect(g, `static activations clip ${clip}`).toEqual(j);
      await pair.check('zsx', 1e-6, 0);
    }
    pair.run((be, p) => {
      be.qatCopyColumns(p('zo'), K, 3, p('za'), K, 5, N, 11, false);
      be.qatCopyColumns(p('zo'), K, 17, p('zb'), K, 0, N, 9, true);
      be.qatGridPenalty(p('zrow'), p('zw'), p('zs'), N, K, group);
      be.qatGridPenaltyBackward(p('zdw'), p('zw'), p('zs'), p('zdout'), 0.3, N, K, group);
      be.qatClampWeights(p('zw'), p('zs'), N, K, group, 0.75);
    });
    await pair.check('zo', 1e-6, 1e-7);
    await pair.check('zrow', 1e-4, 1e-5);
    await pair.check('zdw', 1e-4, 1e-5);
    await pair.check('zw', 1e-6, 0);
  });

  it('NF4 (QLoRA) forward and dX from random codes, absmax codes and table (N = 3, K = 128)', async () => {
    const M = 5, N = 3, K = 128, blocks = (N * K) / 64;
    pair.alloc('fc', (N * K) / 2).alloc('fac', blocks).alloc('fas', 1).alloc('ftab', 256).alloc('fx', M * K).alloc('fy', M * N).alloc('fdy', M * N).alloc('fdx', M * K);
    pair.writeBytes('fc', Array.from({ length: (N * K) / 2 }, () => rng.int(256)));
    pair.writeBytes('fac', Array.from({ length: blocks }, () => rng.int(256)));
    pair.write('fas', [0.37]);
    pair.write('ftab', Array.from({ length: 256 }, (_, i) => i / 255));
    pair.random('fx', normal); pair.random('fdy', normal); pair.random('fdx', normal);
    pair.run((be, p) => {
      const w = { codes: p('fc'), absmaxCodes: p('fac'), absmaxScales: p('fas'), table: p('ftab'), offset: 0.01 };
      be.nf4Forward(p('fy'), p('fx'), w, 0, M, N, K);
      be.nf4BackwardDx(p('fdx'), p('fdy'), w, 0, M, N, K);
    });
    await pair.check('fy', 1e-5, 1e-5);
    await pair.check('fdx', 1e-5, 1e-6);
  });

  it('bad input: memory beyond the adapter limit and a lost device give one error naming the adapter and --backend wasm', async () => {
    expect(() => gpu.reserve(2 ** 31)).toThrow(/exceed the adapter's maxStorageBufferBindingSize\/maxBufferSize of \d+ bytes \(adapter .+\).*--backend wasm/);
    const { createWebGpuBackend } = await import('../gpu/index.js');
    const lost = await createWebGpuBackend({ initialCapacity: 1024 });
    (lost as unknown as { gpu: { device: GPUDevice } }).gpu.device.destroy(); // as a driver reset would
    await new Promise((r) => setTimeout(r, 50));
    expect(() => lost.fill(lost.base, 4, 1)).toThrow(/webgpu backend \(adapter .+\): the GPU device was lost .*--backend wasm/);
    await expect(lost.read(lost.base, 4)).rejects.toThrow(/device was lost/);
  });

  it('bad input: a wrong pointer throws before anything is recorded; synchronous reads name the async ones', () => {
    expect(() => gpu.add(gpu.capacity - 2, gpu.base, gpu.base, 8)).toThrow(/webgpu backend add: out = .* beyond capacity/);
    expect(() => gpu.readSync(gpu.base, 4)).toThrow(/cannot be read synchronously; use `await backend.read/);
    expect(() => gpu.readIndices(gpu.base, 4)).toThrow(/cannot be read synchronously/);
  });
});
