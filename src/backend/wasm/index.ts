/**
 * The `wasm` backend: the AssemblyScript SIMD kernels (assembly/) over one `WebAssembly.Memory`.
 * Elements are f32; pointers are element offsets, converted to byte offsets at the call.
 * Every kernel call goes through `run` (host.ts), which gives the kernel its range of output
 * rows and, with `threads > 1`, splits that range over a thread pool; the kernels make any split
 * give the same bits.
 */
import { type AdamW8bitBuffers, type AdamWParams, type Backend, type Floats, type GemmLayout, type Nf4Weight, type Ptr, type QatBlend, type QatSurrogate, type RopeScaling } from '../backend.js';
import { checkNf4 } from '../checks-nf4.js';
import * as check from '../checks.js';
import * as qcheck from '../checks-quant.js';
import * as qatcheck from '../checks-qat.js';
import { ternaryBackwardDxScratchBytes, ternaryForwardScratchBytes } from '../../quant/layout.js';
import { resolveThreads } from '../../runtime/threads.js';
import { WasmKernelHost, loadKernels, loadKernelsSync, type WasmBackendOptions } from './host.js';

export type { WasmBackendOptions } from './host.js';

/**
 * The WebAssembly SIMD backend. Create it with {@link createWasmBackend} (or `WasmBackend.createSync()`
 * where synchronous compilation is allowed: Node, Deno, Bun, workers).
 *
 * @example
 * const be = await createWasmBackend();
 * be.reserve(be.base + 8);
 * be.write(be.base, [1, 2, 3, 4]);
 * be.add(be.base + 4, be.base, be.base, 4);
 */
export class WasmBackend extends WasmKernelHost implements Backend {
  /** Compile and instantiate synchronously (not allowed for large modules on a browser's main thread). */
  static createSync(opts: WasmBackendOptions = {}): WasmBackend {
    if ((opts.threads ?? 1) > 1) throw new Error('WasmBackend.createSync: threads > 1 needs the asynchronous createWasmBackend({ threads })');
    const { module, instance, memory } = loadKernelsSync(opts.relaxedSimd ?? true);
    return new WasmBackend(module, instance, memory, opts);
  }

  /** @internal Used by {@link createWasmBackend}. */
  static async create(opts: WasmBackendOptions = {}): Promise<WasmBackend> {
    const threads = await resolveThreads(opts.threads ?? 1, 'wasm backend');
    const { module, instance, memory } = await loadKernels(threads > 1, opts.maxSharedBytes, opts.relaxedSimd ?? true);
    const backend = new WasmBackend(module, instance, memory, opts);
    if (threads > 1) await backend.startPool(threads);
    return backend;
  }

  // ---- matrix multiply ----------------------------------------------------

  gemm(layout: GemmLayout, out: Ptr, a: Ptr, b: Ptr, M: number, N: number, K: number, accumulate: boolean): void {
    check.checkGemm(this, layout, out, a, b, M, N, K);
    this.run(`gemm_${layout}`, M, [out * 4, a * 4, b * 4, M, N, K, accumulate ? 1 : 0], M * N * K);
  }

  addBias(out: Ptr, bias: Ptr, N: number, C: number): void {
    check.checkBias(this, 'addBias', 'out', out, 'bias', bias, N, C);
    this.run('add_bias', N, [out * 4, bias * 4, N, C], N * C);
  }

  biasBackward(dbias: Ptr, dout: Ptr, N: number, C: number): void {
    check.checkBias(this, 'biasBackward', 'dout', dout, 'dbias', dbias, N, C);
    this.run('bias_backward', C, [dbias * 4, dout * 4, N, C], N * C);
  }

  // ---- elementwise and reductions -------------------------------------------

  add(out: Ptr, a: Ptr, b: Ptr, n: number): void {
    check.checkElementwise(this, 'add', n, 'out', out, 'a', a, 'b', b);
    this.run('add_f32', n, [out * 4, a * 4, b * 4]);
  }

  mul(out: Ptr, a: Ptr, b: Ptr, n: number): void {
    check.checkElementwise(this, 'mul', n, 'out', out, 'a', a, 'b', b);
    this.run('mul_f32', n, [out * 4, a * 4, b * 4]);
  }

  scale(out: Ptr, a: Ptr, s: number, n: number): void {
    check.checkElementwise(this, 'scale', n, 'out', out, 'a', a);
    this.run('scale_f32', n, [out * 4, a * 4, s]);
  }

  axpy(y: Ptr, alpha: number, x: Ptr, n: number): void {
    check.checkElementwise(this, 'axpy', n, 'y', y, 'x', x);
    this.run('axpy_f32', n, [y * 4, alpha, x * 4]);
  }

  mulAccumulate(y: Ptr, a: Ptr, b: Ptr, n: number): void {
    check.checkElementwise(this, 'mulAccumulate', n, 'y', y, 'a', a, 'b', b);
    this.run('mul_accumulate_f32', n, [y * 4, a * 4, b * 4]);
  }

  sum(out: Ptr, x: Ptr, n: number): void {
    check.checkReduction(this, 'sum', out, x, n);
    this.reduce('sum_chunks', out, x, n);
  }

  sumSquares(out: Ptr, x: Ptr, n: number): void {
    check.checkReduction(this, 'sumSquares', out, x, n);
    this.reduce('sum_squares_chunks', out, x, n);
  }

  // ---- normalisation ------------------------------------------------------

  layerNormForward(out: Ptr, mean: Ptr, rstd: Ptr, inp: Ptr, weight: Ptr, bias: Ptr, N: number, C: number, eps: number): void {
    check.checkLayerNormForward(this, out, mean, rstd, inp, weight, bias, N, C);
    this.run('layernorm_forward', N, [out * 4, mean * 4, rstd * 4, inp * 4, weight * 4, bias * 4, N, C, eps], N * C);
  }

  layerNormBackward(dinp: Ptr, dweight: Ptr, dbias: Ptr, dout: Ptr, inp: Ptr, weight: Ptr, mean: Ptr, rstd: Ptr, N: number, C: number): void {
    check.checkLayerNormBackward(this, dinp, dweight, dbias, dout, inp, weight, mean, rstd, N, C);
    this.run('layernorm_backward_dinp', N, [dinp * 4, dout * 4, inp * 4, weight * 4, mean * 4, rstd * 4, N, C], N * C);
    this.run('layernorm_backward_dparams', C, [dweight * 4, dbias * 4, dout * 4, inp * 4, mean * 4, rstd * 4, N, C], N * C);
  }

  rmsNormForward(out: Ptr, rstd: Ptr, inp: Ptr, weight: Ptr, N: number, C: number, eps: number): void {
    check.checkRmsNormForward(this, out, rstd, inp, weight, N, C);
    this.run('rmsnorm_forward', N, [out * 4, rstd * 4, inp * 4, weight * 4, N, C, eps], N * C);
  }

  rmsNormBackward(dinp: Ptr, dweight: Ptr, dout: Ptr, inp: Ptr, weight: Ptr, rstd: Ptr, N: number, C: number): void {
    check.checkRmsNormBackward(this, dinp, dweight, dout, inp, weight, rstd, N, C);
    this.run('rmsnorm_backward_dinp', N, [dinp * 4, dout * 4, inp * 4, weight * 4, rstd * 4, N, C], N * C);
    if (dweight) this.run('rmsnorm_backward_dweight', C, [dweight * 4, dout * 4, inp * 4, rstd * 4, N, C], N * C);
  }

  // ---- activations ----------------------------------------------------------

  geluForward(out: Ptr, inp: Ptr, n: number): void {
    check.checkElementwise(this, 'geluForward', n, 'out', out, 'inp', inp);
    this.run('gelu_forward', n, [out * 4, inp * 4]);
  }

  geluBackward(dinp: Ptr, inp: Ptr, dout: Ptr, n: number): void {
    check.checkElementwise(this, 'geluBackward', n, 'dinp', dinp, 'inp', inp, 'dout', dout);
    this.run('gelu_backward', n, [dinp * 4, inp * 4, dout * 4]);
  }

  siluForward(out: Ptr, inp: Ptr, n: number): void {
    check.checkElementwise(this, 'siluForward', n, 'out', out, 'inp', inp);
    this.run('silu_forward', n, [out * 4, inp * 4]);
  }

  siluBackward(dinp: Ptr, inp: Ptr, dout: Ptr, n: number): void {
    check.checkElementwise(this, 'siluBackward', n, 'dinp', dinp, 'inp', inp, 'dout', dout);
    this.run('silu_backward', n, [dinp * 4, inp * 4, dout * 4]);
  }

  tanhForward(out: Ptr, inp: Ptr, n: number): void {
    check.checkElementwise(this, 'tanhForward', n, 'out', out, 'inp', inp);
    this.run('tanh_forward', n, [out * 4, inp * 4]);
  }

  tanhBackward(dinp: Ptr, out: Ptr, dout: Ptr, n: number): void {
    check.checkElementwise(this, 'tanhBackward', n, 'dinp', dinp, 'out', out, 'dout', dout);
    this.run('tanh_backward', n, [dinp * 4, out * 4, dout * 4]);
  }

  // ---- attention ------------------------------------------------------------

  attentionForward(out: Ptr, preatt: Ptr, att: Ptr, inp: Ptr, B: number, T: number, C: number, NH: number): void {
    check.checkAttentionForward(this, out, preatt, att, inp, B, T, C, NH);
    this.run('attention_forward', B * NH * T, [out * 4, preatt * 4, att * 4, inp * 4, (inp + C) * 4, (inp + 2 * C) * 4, B, T, NH, NH, C / NH, 3 * C, 3 * C], B * T * T * C);
  }

  attentionBackward(dinp: Ptr, dpreatt: Ptr, datt: Ptr, dout: Ptr, inp: Ptr, att: Ptr, B: number, T: number, C: number, NH: number): void {
    check.checkAttentionBackward(this, dinp, dpreatt, datt, dout, inp, att, B, T, C, NH);
    this.run('attention_backward', B * NH, [dinp * 4, (dinp + C) * 4, (dinp + 2 * C) * 4, dpreatt * 4, datt * 4, dout * 4, inp * 4, (inp + C) * 4, (inp + 2 * C) * 4, att * 4, B, T, NH, NH, C / NH, 3 * C, 3 * C], 2 * B * T * T * C);
  }

  groupedAttentionForward(out: Ptr, preatt: Ptr, att: Ptr, q: Ptr, k: Ptr, v: Ptr, B: number, T: number, NH: number, NKV: number, hs: number, qs: number, kvs: number): void {
    check.checkGroupedAttentionForward(this, out, preatt, att, q, k, v, B, T, NH, NKV, hs, qs, kvs);
    this.run('attention_forward', B * NH * T, [out * 4, preatt * 4, att * 4, q * 4, k * 4, v * 4, B, T, NH, NKV, hs, qs, kvs], B * T * T * NH * hs);
  }

  // split over the (B, NKV) kv groups: a group's query heads all feed its dk, dv
  groupedAttentionBackward(dq: Ptr, dk: Ptr, dv: Ptr, dpreatt: Ptr, datt: Ptr, dout: Ptr, q: Ptr, k: Ptr, v: Ptr, att: Ptr, B: number, T: number, NH: number, NKV: number, hs: number, qs: number, kvs: number): void {
    check.checkGroupedAttentionBackward(this, dq, dk, dv, dpreatt, datt, dout, q, k, v, att, B, T, NH, NKV, hs, qs, kvs);
    this.run('attention_backward', B * NKV, [dq * 4, dk * 4, dv * 4, dpreatt * 4, datt * 4, dout * 4, q * 4, k * 4, v * 4, att * 4, B, T, NH, NKV, hs, qs, kvs], 2 * B * T * T * NH * hs);
  }

  // ---- embedding -----------------------------------------------------------

  embeddingForward(out: Ptr, tokens: Ptr, wte: Ptr, wpe: Ptr, B: number, T: number, C: number): void {
    check.checkEmbedding(this, 'embeddingForward', this.f32, 'out', out, tokens, 'wte', wte, 'wpe', wpe, B, T, C);
    this.run('embedding_forward', B * T, [out * 4, tokens * 4, wte * 4, wpe * 4, B, T, C], B * T * C);
  }

  embeddingBackward(dwte: Ptr, dwpe: Ptr, dout: Ptr, tokens: Ptr, B: number, T: number, C: number): void {
    check.checkEmbedding(this, 'embeddingBackward', this.f32, 'dout', dout, tokens, 'dwte', dwte, 'dwpe', dwpe, B, T, C);
    this.run('embedding_backward', C, [dwte * 4, dwpe * 4, dout * 4, tokens * 4, B, T, C], B * T * C);
  }

  // ---- loss -----------------------------------------------------------------

  crossEntropyForward(losses: Ptr, probs: Ptr, logits: Ptr, targets: Ptr, N: number, V: number): void {
    check.checkCrossEntropy(this, 'crossEntropyForward', this.f32, 'probs', probs, 'logits', logits, 'losses', losses, targets, N, V);
    this.run('crossentropy_forward', N, [losses * 4, probs * 4, logits * 4, targets * 4, N, V], N * V);
  }

  crossEntropyBackward(dlogits: Ptr, probs: Ptr, targets: Ptr, dlosses: Ptr, N: number, V: number): void {
    check.checkCrossEntropy(this, 'crossEntropyBackward', this.f32, 'dlogits', dlogits, 'probs', probs, 'dlosses', dlosses, targets, N, V);
    this.run('crossentropy_backward', N, [dlogits * 4, probs * 4, targets * 4, dlosses * 4, N, V], N * V);
  }

  // ---- optimizer -----------------------------------------------------------

  adamwStep(params: Ptr, grads: Ptr, m: Ptr, v: Ptr, n: number, hp: AdamWParams, gradScale: Ptr): void {
    check.checkAdamW(this, params, grads, m, v, n, hp.step, gradScale);
    this.run('adamw_step', n, [params * 4, grads * 4, m * 4, v * 4, hp.lr, hp.beta1, hp.beta2, hp.eps, hp.weightDecay, hp.step, gradScale * 4]);
  }

  clipScale(out: Ptr, sumsq: Ptr, maxNorm: number): void {
    check.checkClipScale(this, out, sumsq);
    this.run('clip_scale', 1, [out * 4, sumsq * 4, maxNorm]);
  }

  adamw8bitStep(params: Ptr, grads: Ptr, state: AdamW8bitBuffers, n: number, hp: AdamWParams, gradScale: Ptr): void {
    check.checkAdamW8bit(this, params, grads, state, n, hp.step, gradScale);
    const s = state;
    // split over threads by whole blocks of 256 (each block's absmax is its own): any split, same bits
    this.run('adamw8bit_step', Math.ceil(n / 256), [params * 4, grads * 4, s.mCodes * 4, s.vCodes * 4, s.mAbsmax * 4, s.vAbsmax * 4,
      s.signedMap * 4, s.unsignedMap * 4, s.searchTables * 4, hp.lr, hp.beta1, hp.beta2, hp.eps, hp.weightDecay, hp.step, gradScale * 4, n], 40 * n);
  }

  // ---- BitNet b1.58: quantizers and packed ternary matmuls ----------------------------------
  // Byte buffers take ceil(bytes/4) f32 slots; a pointer p is byte 4p. The packed matmuls get
  // one scratch region per thread (`perThread`), 64-byte aligned, sized by ternaryScratchSlots.

  byteSlots(bytes: number): number {
    qcheck.checkByteCount(this, bytes);
    return Math.ceil(bytes / 4);
  }

  /** Bytes between consecutive threads' scratch regions. */
  private scratchStride(kernel: 'forward' | 'backwardDx', N: number, K: number): number {
    const bytes = kernel === 'forward' ? ternaryForwardScratchBytes(K) : ternaryBackwardDxScratchBytes(N);
    return Math.ceil(bytes / 64) * 64;
  }

  ternaryScratchSlots(kernel: 'forward' | 'backwardDx', N: number, K: number): number {
    return (this.threads * this.scratchStride(kernel, N, K)) / 4;
  }

  absmeanScales(scales: Ptr, w: Ptr, count: number, group: number): void {
    qcheck.checkAbsmeanScales(this, scales, w, count, group);
    this.run('absmean_scales', count / group, [scales * 4, w * 4, count, group], count);
  }

  ternaryPack(packed: Ptr, w: Ptr, scales: Ptr, N: number, K: number, group: number): void {
    qcheck.checkTernaryPack(this, packed, w, scales, N, K, group);
    this.run('ternary_pack', (N + 3) >> 2, [packed * 4, w * 4, scales * 4, N, K, group], N * K);
  }

  ternaryDequantize(out: Ptr, packed: Ptr, scales: Ptr, N: number, K: number, group: number): void {
    qcheck.checkTernaryDequantize(this, out, packed, scales, N, K, group);
    this.run('ternary_dequantize', N, [out * 4, packed * 4, scales * 4, N, K, group], N * K);
  }

  quantizeActivations(xq: Ptr, sx: Ptr, x: Ptr, M: number, K: number): void {
    qcheck.checkActivationQuant(this, 'quantizeActivations', 'x', x, xq, sx, M, K);
    this.run('quantize_activations', M, [xq * 4, sx * 4, x * 4, M, K], 2 * M * K);
  }

  dequantizeActivations(out: Ptr, xq: Ptr, sx: Ptr, M: number, K: number): void {
    qcheck.checkActivationQuant(this, 'dequantizeActivations', 'out', out, xq, sx, M, K);
    this.run('dequantize_activations', M, [out * 4, xq * 4, sx * 4, M, K], M * K);
  }

  ternaryForward(out: Ptr, xq: Ptr, sx: Ptr, packed: Ptr, sw: Ptr, scratch: Ptr, M: number, N: number, K: number, group: number): void {
    qcheck.checkTernaryForward(this, out, xq, sx, packed, sw, scratch, this.ternaryScratchSlots('forward', N, K), M, N, K, group);
    const stride = this.scratchStride('forward', N, K);
    this.run('ternary_forward', M, [out * 4, xq * 4, sx * 4, packed * 4, sw * 4, scratch * 4, M, N, K, group], M * N * K, { index: 5, stride });
  }

  ternaryBackwardDx(dx: Ptr, dy: Ptr, packed: Ptr, sw: Ptr, scratch: Ptr, M: number, N: number, K: number, group: number): void {
    qcheck.checkTernaryBackwardDx(this, dx, dy, packed, sw, scratch, this.ternaryScratchSlots('backwardDx', N, K), M, N, K, group);
    const stride = this.scratchStride('backwardDx', N, K);
    this.run('ternary_backward_dx', M, [dx * 4, dy * 4, packed * 4, sw * 4, scratch * 4, M, N, K, group], M * N * K, { index: 4, stride });
  }

  steClippedWeights(dw: Ptr, dwq: Ptr, w: Ptr, scales: Ptr, N: number, K: number, group: number): void {
    qcheck.checkSteClippedWeights(this, dw, dwq, w, scales, N, K, group);
    this.run('ste_clipped_weights', N, [dw * 4, dwq * 4, w * 4, scales * 4, N, K, group], N * K);
  }

  steClippedActivations(dx: Ptr, dxq: Ptr, x: Ptr, sx: Ptr, M: number, K: number): void {
    qcheck.checkSteClippedActivations(this, dx, dxq, x, sx, M, K);
    this.run('ste_clipped_activations', M, [dx * 4, dxq * 4, x * 4, sx * 4, M, K], M * K);
  }

  // ---- squared ReLU and rotary position embedding (mlp: 'relu2', pos: 'rope') ----

  relu2Forward(out: Ptr, inp: Ptr, n: number): void {
    check.checkElementwise(this, 'relu2Forward', n, 'out', out, 'inp', inp);
    this.run('relu2_forward', n, [out * 4, inp * 4]);
  }

  relu2Backward(dinp: Ptr, inp: Ptr, dout: Ptr, n: number): void {
    check.checkElementwise(this, 'relu2Backward', n, 'dinp', dinp, 'inp', inp, 'dout', dout);
    this.run('relu2_backward', n, [dinp * 4, inp * 4, dout * 4]);
  }

  ropeTable(table: Ptr, T: number, hs: number, theta: number): void {
    check.checkRopeTable(this, table, T, hs, theta);
    // a pow, a cos and a sin in f64 per pair: ~100 scalar operations each
    this.run('rope_table', T, [table * 4, hs, theta], 50 * T * hs);
  }

  ropeTableScaled(table: Ptr, T: number, hs: number, theta: number, scaling: RopeScaling): void {
    check.checkRopeScaling(this, table, T, hs, theta, scaling);
    const [kind, lo, hi, old] = scaling.kind === 'linear' ? [1, 1, 2, 1] : [2, scaling.lowFreqFactor, scaling.highFreqFactor, scaling.originalMaxPositions];
    this.run('rope_table_scaled', T, [table * 4, hs, theta, kind, scaling.factor, lo, hi, old], 50 * T * hs);
  }

  ropeForward(out: Ptr, inp: Ptr, table: Ptr, B: number, T: number, C: number, NH: number): void {
    check.checkRopeForward(this, out, inp, table, B, T, C, NH);
    this.run('rope_forward', B * T, [out * 4, inp * 4, table * 4, B, T, 3 * C, 2 * NH, C / NH], 3 * B * T * C);
  }

  ropeBackward(dinp: Ptr, dout: Ptr, table: Ptr, B: number, T: number, C: number, NH: number): void {
    check.checkRopeBackward(this, dinp, dout, table, B, T, C, NH);
    this.run('rope_backward', B * T, [dinp * 4, dout * 4, table * 4, B, T, 3 * C, 2 * NH, C / NH], 3 * B * T * C);
  }

  ropeHeadsForward(out: Ptr, inp: Ptr, table: Ptr, B: number, T: number, stride: number, heads: number, hs: number): void {
    check.checkRopeHeadsForward(this, out, inp, table, B, T, stride, heads, hs);
    this.run('rope_forward', B * T, [out * 4, inp * 4, table * 4, B, T, stride, heads, hs], B * T * stride);
  }

  ropeHeadsBackward(dinp: Ptr, dout: Ptr, table: Ptr, B: number, T: number, stride: number, heads: number, hs: number): void {
    check.checkRopeHeadsBackward(this, dinp, dout, table, B, T, stride, heads, hs);
    this.run('rope_backward', B * T, [dinp * 4, dout * 4, table * 4, B, T, stride, heads, hs], B * T * stride);
  }

  // ---- QAT: quantisation-aware training (src/qat/README.md; assembly/qat.ts) -------------------

  qatLerp(out: Ptr, a: Ptr, b: Ptr, n: number, blend: QatBlend): void {
    qatcheck.checkQatLerp(this, out, a, b, n, blend);
    this.run('qat_lerp', n, [out * 4, a * 4, b * 4, n, blend.lambda, blend.p, blend.seed >>> 0], 4 * n);
  }

  qatSteWeights(dw: Ptr, dwq: Ptr, w: Ptr, scales: Ptr, N: number, K: number, group: number, surrogate: QatSurrogate, temperature: number, blend: QatBlend): void {
    qatcheck.checkQatSteWeights(this, dw, dwq, w, scales, N, K, group, surrogate, temperature, blend);
    const mode = surrogate === 'identity' ? 0 : surrogate === 'clipped' ? 1 : 2;
    const args = [dw * 4, dwq * 4, w * 4, scales * 4, N, K, group, mode, mode === 2 ? 1 / temperature : 0, blend.lambda, blend.p, blend.seed >>> 0];
    this.run('qat_ste_weights', N, args, (mode === 2 ? 40 : 8) * N * K);
  }

  qatLsqScales(sw: Ptr, step: Ptr, absmean: Ptr, count: number): void {
    qatcheck.checkQatLsqScales(this, sw, step, absmean, count);
    this.run('qat_lsq_scales', count, [sw * 4, step * 4, absmean * 4, count]);
  }

  qatLsqStepGrad(dstep: Ptr, dwq: Ptr, w: Ptr, sw: Ptr, count: number, group: number, gradScale: number, blend: QatBlend): void {
    qatcheck.checkQatLsqStepGrad(this, dstep, dwq, w, sw, count, group, gradScale, blend);
    this.run('qat_lsq_step_grad', count / group, [dstep * 4, dwq * 4, w * 4, sw * 4, count, group, blend.lambda, blend.p, blend.seed >>> 0, gradScale], 8 * count);
  }

  qatQuantizeActivationsStatic(xq: Ptr, sx: Ptr, x: Ptr, clip: Ptr, M: number, K: number): void {
    qatcheck.checkQatQuantizeActivationsStatic(this, xq, sx, x, clip, M, K);
    this.run('qat_quantize_activations_static', M, [xq * 4, sx * 4, x * 4, clip * 4, M, K], 4 * M * K);
  }

  qatCopyColumns(dst: Ptr, dstCols: number, dstCol0: number, src: Ptr, srcCols: number, srcCol0: number, M: number, n: number, accumulate: boolean): void {
    qatcheck.checkQatCopyColumns(this, dst, dstCols, dstCol0, src, srcCols, srcCol0, M, n);
    this.run('qat_copy_columns', M, [dst * 4, dstCols, dstCol0, src * 4, srcCols, srcCol0, M, n, accumulate ? 1 : 0], M * n);
  }

  kdForward(losses: Ptr, probs: Ptr, probsT: Ptr, teacherT: Ptr, logits: Ptr, teacher: Ptr, targets: Ptr, N: number, V: number, temperature: number, alpha: number): void {
    qatcheck.checkKd(this, 'kdForward', this.f32, [['probs', probs], ['probsT', probsT], ['teacherT', teacherT], ['logits', logits], ['teacher', teacher]],
      targets, ['losses', losses], N, V, temperature, alpha);
    this.run('kd_forward', N, [losses * 4, probs * 4, probsT * 4, teacherT * 4, logits * 4, teacher * 4, targets * 4, N, V, temperature, alpha], 60 * N * V);
  }

  kdBackward(dlogits: Ptr, probs: Ptr, probsT: Ptr, teacherT: Ptr, targets: Ptr, dlosses: Ptr, N: number, V: number, temperature: number, alpha: number): void {
    qatcheck.checkKd(this, 'kdBackward', this.f32, [['dlogits', dlogits], ['probs', probs], ['probsT', probsT], ['teacherT', teacherT]],
      targets, ['dlosses', dlosses], N, V, temperature, alpha);
    this.run('kd_backward', N, [dlogits * 4, probs * 4, probsT * 4, teacherT * 4, targets * 4, dlosses * 4, N, V, temperature, alpha], 6 * N * V);
  }

  qatGridPenalty(rowsum: Ptr, w: Ptr, scales: Ptr, N: number, K: number, group: number): void {
    qatcheck.checkQatGrid(this, 'qatGridPenalty', [['rowsum', rowsum, 'N'], ['w', w, 'NK']], scales, N, K, group);
    this.run('qat_grid_penalty', N, [rowsum * 4, w * 4, scales * 4, N, K, group], 6 * N * K);
  }

  qatGridPenaltyBackward(dw: Ptr, w: Ptr, scales: Ptr, dout: Ptr, coef: number, N: number, K: number, group: number): void {
    qatcheck.checkQatGrid(this, 'qatGridPenaltyBackward', [['dw', dw, 'NK'], ['w', w, 'NK'], ['dout', dout, '1']], scales, N, K, group);
    this.run('qat_grid_penalty_backward', N, [dw * 4, w * 4, scales * 4, dout * 4, coef, N, K, group], 6 * N * K);
  }

  qatClampWeights(w: Ptr, scales: Ptr, N: number, K: number, group: number, bound: number): void {
    qatcheck.checkQatGrid(this, 'qatClampWeights', [['w', w, 'NK']], scales, N, K, group);
    this.run('qat_clamp_weights', N, [w * 4, scales * 4, N, K, group, bound], 4 * N * K);
  }

  // ---- QLoRA: NF4 matmuls (assembly/nf4.ts); scratch per thread, 64-byte aligned ----

  private nf4Stride(kernel: 'forward' | 'backwardDx', N: number, K: number): number {
    return Math.ceil((kernel === 'forward' ? 4 * 4 * K : 4 * 64 * N) / 64) * 64;
  }

  nf4ScratchSlots(kernel: 'forward' | 'backwardDx', N: number, K: number): number {
    return (this.threads * this.nf4Stride(kernel, N, K)) / 4;
  }

  nf4Forward(out: Ptr, x: Ptr, w: Nf4Weight, scratch: Ptr, M: number, N: number, K: number): void {
    checkNf4(this, 'nf4Forward', 'out', out, 'x', x, w, M, N, K);
    check.checkSpan(this, 'nf4Forward', 'scratch', scratch, this.nf4ScratchSlots('forward', N, K), '(nf4ScratchSlots)');
    this.run('nf4_forward', M, [out * 4, x * 4, w.codes * 4, w.absmaxCodes * 4, w.absmaxScales * 4, w.table * 4, w.offset, scratch * 4, M, N, K], M * N * K, { index: 7, stride: this.nf4Stride('forward', N, K) });
  }

  nf4BackwardDx(dx: Ptr, dy: Ptr, w: Nf4Weight, scratch: Ptr, M: number, N: number, K: number): void {
    checkNf4(this, 'nf4BackwardDx', 'dy', dy, 'dx', dx, w, M, N, K);
    check.checkSpan(this, 'nf4BackwardDx', 'scratch', scratch, this.nf4ScratchSlots('backwardDx', N, K), '(nf4ScratchSlots)');
    this.run('nf4_backward_dx', M, [dx * 4, dy * 4, w.codes * 4, w.absmaxCodes * 4, w.absmaxScales * 4, w.table * 4, w.offset, scratch * 4, M, N, K], M * N * K, { index: 7, stride: this.nf4Stride('backwardDx', N, K) });
  }
}

/**
 * Compile the embedded kernels and create a wasm backend (asynchronous compilation works on a
 * browser's main thread too).
 */
export function createWasmBackend(opts: WasmBackendOptions = {}): Promise<WasmBackend> {
  return WasmBackend.create(opts);
}
