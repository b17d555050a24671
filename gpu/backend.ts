/**
 * The `webgpu` backend: every `Backend` kernel in WGSL (gpu/kernels/) over one GPU storage
 * buffer (gpu/arena.ts). Elements are f32; pointers are element offsets. Arguments are checked on
 * the host before anything is recorded, with the same validators as the CPU backends.
 *
 * Reads are asynchronous (`read`): GPU memory cannot be mapped synchronously, so `readSync` and
 * `readIndices` throw a BackendError that says to `await read()`. Results repeat bit for bit on one
 * adapter (fixed reduction orders, no float atomics); they agree with the `js` reference within
 * the tolerances of test/webgpu-kernels.test.ts, not bit for bit.
 */
import { BackendError, type AdamW8bitBuffers, type AdamWParams, type Backend, type Floats, type GemmLayout, type Nf4Weight, type Ptr, type QatBlend, type QatSurrogate, type RopeScaling } from '../src/backend/backend.js';
import { checkNf4 } from '../src/backend/checks-nf4.js';
import * as check from '../src/backend/checks.js';
import * as jsRope from '../src/backend/js/rope.js';
import * as qcheck from '../src/backend/checks-quant.js';
import * as qatcheck from '../src/backend/checks-qat.js';
import { GpuArena, PARTIALS } from './arena.js';
import { requestGpuContext, type GpuContext } from './device.js';
import { ELEMENTWISE, SUM_CHUNK, SUM_FINAL, SUM_PARTIALS } from './kernels/elementwise.js';
import { DENSE, GEMM } from './kernels/dense.js';
import { QUANT, ternaryForwardWgsl } from './kernels/quant.js';
import { OPTIM8BIT, biasCorrection } from './kernels/optim8bit.js';
import { WG } from './kernels/prelude.js';
import { IndexShadow } from './index-shadow.js';

/** Options of {@link createWebGpuBackend}. */
export interface WebGpuBackendOptions {
  /** Elements addressable from the start (default 65536); `reserve` grows the buffer. */
  initialCapacity?: number;
  /**
   * Use WGSL's `dot4I8Packed` in the ternary forward (default: when the adapter has the
   * packed_4x8_integer_dot_product language feature). `false` forces the byte-by-byte kernel.
   */
  packedDot?: boolean;
}

const KERNELS: Record<string, string> = { ...ELEMENTWISE, ...DENSE, ...QUANT, ...OPTIM8BIT, gemm: GEMM, sum_partials: SUM_PARTIALS, sum_final: SUM_FINAL };
const groups = (n: number): number => Math.ceil(n / WG);

/** `floor(f32(p)·2^24)` clamped to [0, 2^24] (the QAT noise threshold, as src/qat/README.md). */
function noiseThreshold(p: number): number {
  const pf = Math.fround(p);
  if (pf >= 1) return 1 << 24;
  if (!(pf > 0)) return 0;
  return Math.floor(pf * 16777216);
}

/**
 * WebGPU implementation of {@link Backend}. Create it with {@link createWebGpuBackend}
 * (or `createBackend('webgpu')`).
 *
 * @example
 * const be = await createWebGpuBackend();
 * be.reserve(be.base + 8);
 * be.write(be.base, [1, 2, 3, 4]);
 * be.add(be.base + 4, be.base, be.base, 4);
 * await be.read(be.base + 4, 4); // Float32Array [2, 4, 6, 8]
 */
export class WebGpuBackend implements Backend {
  readonly name = 'webgpu';
  readonly dtype = 'f32' as const;
  readonly base: Ptr = 64;
  /** The adapter in words ("google swiftshader ... (SwiftShader driver 5.0.0)"). */
  readonly adapter: string;
  /** Whether the ternary forward uses `dot4I8Packed`. */
  readonly packedDot: boolean;
  disposed = false;
  private readonly gpu: GpuArena;
  private readonly indices = new IndexShadow();
  private readonly ternaryForwardKernel: string;

  /** @internal Use {@link createWebGpuBackend}. */
  constructor(ctx: GpuContext, opts: WebGpuBackendOptions = {}) {
    this.adapter = ctx.adapter;
    if (opts.packedDot && !ctx.packedDot) throw new BackendError(`webgpu backend: packedDot was requested but adapter ${ctx.adapter} lacks the WGSL feature packed_4x8_integer_dot_product`);
    this.packedDot = opts.packedDot ?? ctx.packedDot;
    this.ternaryForwardKernel = ternaryForwardWgsl(this.packedDot);
    this.gpu = new GpuArena(ctx, Math.max(this.base, opts.initialCapacity ?? 65536));
  }

  get capacity(): number {
    return this.gpu.capacity;
  }

  private run(kernel: string, grid: number | [number, number], u: number[], f: number[] = []): void {
    const wgsl = kernel === 'ternary_forward' ? this.ternaryForwardKernel : KERNELS[kernel];
    if (!wgsl) throw new Error(`webgpu backend: no kernel ${kernel}`);
    this.gpu.dispatch(kernel, wgsl, grid, u, f);
  }

  /** GPU buffers this backend created so far (a test of "no per-step allocation"). */
  get buffersCreated(): number {
    return this.gpu.buffersCreated;
  }

  /** Wait until the GPU has run everything recorded (benchmarks; reads wait by themselves). */
  finish(): Promise<void> {
    return this.gpu.finish();
  }

  /** Shader compilation errors of every kernel (empty when all compile): a test hook. */
  async compileAll(): Promise<string[]> {
    const all = { ...KERNELS, ternary_forward: this.ternaryForwardKernel };
    const errs: string[] = [];
    for (const [name, code] of Object.entries(all)) errs.push(...(await this.gpu.compilationErrors(name, code)));
    return errs;
  }

  // ---- memory -------------------------------------------------------------

  reserve(n: number): void {
    check.checkAlive(this, 'reserve');
    check.checkDim(this, 'reserve', 'n', n, true);
    if (n <= this.capacity) return;
    this.gpu.grow(Math.max(n, Math.floor(this.capacity * 1.5)));
  }

  readSync(p: Ptr, n: number): Floats {
    check.checkSpan(this, 'readSync', 'p', p, n, '(n)');
    throw new BackendError(`webgpu backend readSync: GPU memory cannot be read synchronously; use \`await backend.read(p, n)\` (Tensor.data()/item(), ParameterSet.exportValues(), Trainer.train())`);
  }

  async read(p: Ptr, n: number): Promise<Floats> {
    check.checkSpan(this, 'read', 'p', p, n, '(n)');
    const words = await this.gpu.read(p, n);
    return new Float32Array(words.buffer, words.byteOffset, n);
  }

  write(p: Ptr, data: ArrayLike<number>): void {
    check.checkSpan(this, 'write', 'p', p, data.length, '(data.length)');
    if (data.length === 0) return;
    this.indices.forget(p, data.length);
    this.gpu.write(p, data instanceof Float32Array ? data : Float32Array.from(data));
  }

  writeIndices(p: Ptr, data: Int32Array): void {
    check.checkSpan(this, 'writeIndices', 'p', p, data.length, '(data.length)');
    check.checkIndicesToWrite(this, data, true);
    if (data.length === 0) return;
    this.gpu.write(p, Float32Array.from(data));
    this.indices.remember(p, data);
  }

  readIndices(p: Ptr, n: number): Int32Array {
    check.checkSpan(this, 'readIndices', 'p', p, n, '(n)');
    throw new BackendError(`webgpu backend readIndices: GPU memory cannot be read synchronously; use \`await backend.read(p, n)\` (index slots hold integer-valued floats)`);
  }

  fill(p: Ptr, n: number, value: number): void {
    check.checkSpan(this, 'fill', 'p', p, n, '(n)');
    this.indices.forget(p, n);
    this.run('fill', groups(n), [n, p], [value]);
  }

  copy(dst: Ptr, src: Ptr, n: number): void {
    check.checkSpan(this, 'copy', 'src', src, n, '(n)');
    check.checkSpan(this, 'copy', 'dst', dst, n, '(n)');
    this.indices.copy(dst, src, n);
    this.run('copy', groups(n), [n, dst, src]);
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.gpu.destroy();
  }

  // ---- matrix multiply ----------------------------------------------------

  gemm(layout: GemmLayout, out: Ptr, a: Ptr, b: Ptr, M: number, N: number, K: number, accumulate: boolean): void {
    check.checkGemm(this, layout, out, a, b, M, N, K);
    // A(i,k) = a[i*sai + k*sak], B(k,j) = b[k*sbk + j*sbj]
    const [sai, sak] = layout === 'tn' ? [1, M] : [K, 1];
    const [sbk, sbj] = layout === 'nt' ? [1, K] : [N, 1];
    this.run('gemm', [Math.ceil(N / 32), Math.ceil(M / 32)], [M, N, K, out, a, b, sai, sak, sbk, sbj, accumulate ? 1 : 0]);
  }

  addBias(out: Ptr, bias: Ptr, N: number, C: number): void {
    check.checkBias(this, 'addBias', 'out', out, 'bias', bias, N, C);
    this.run('add_bias', groups(N * C), [N * C, out, bias, C]);
  }

  biasBackward(dbias: Ptr, dout: Ptr, N: number, C: number): void {
    check.checkBias(this, 'biasBackward', 'dout', dout, 'dbias', dbias, N, C);
    this.run('bias_backward', groups(C), [C, dbias, dout, N]);
  }

  // ---- elementwise and reductions -------------------------------------------

  add(out: Ptr, a: Ptr, b: Ptr, n: number): void {
    check.checkElementwise(this, 'add', n, 'out', out, 'a', a, 'b', b);
    this.run('add', groups(n), [n, out, a, b]);
  }

  mul(out: Ptr, a: Ptr, b: Ptr, n: number): void {
    check.checkElementwise(this, 'mul', n, 'out', out, 'a', a, 'b', b);
    this.run('mul', groups(n), [n, out, a, b]);
  }

  scale(out: Ptr, a: Ptr, s: number, n: number): void {
    check.checkElementwise(this, 'scale', n, 'out', out, 'a', a);
    this.run('scale', groups(n), [n, out, a], [s]);
  }

  axpy(y: Ptr, alpha: number, x: Ptr, n: number): void {
    check.checkElementwise(this, 'axpy', n, 'y', y, 'x', x);
    this.run('axpy', groups(n), [n, y, x], [alpha]);
  }

  mulAccumulate(y: Ptr, a: Ptr, b: Ptr, n: number): void {
    check.checkElementwise(this, 'mulAccumulate', n, 'y', y, 'a', a, 'b', b);
    this.run('mul_accumulate', groups(n), [n, y, a, b]);
  }

  /** Two passes: chunk partials (4096 elements each) into the scratch buffer, then their sum in order. */
  private reduce(out: Ptr, x: Ptr, n: number, squares: boolean): void {
    const chunks = Math.ceil(n / SUM_CHUNK);
    if (chunks > PARTIALS) throw new BackendError(`webgpu backend ${squares ? 'sumSquares' : 'sum'}: n = ${n} exceeds ${PARTIALS * SUM_CHUNK} elements`);
    this.run('sum_partials', chunks, [chunks, x, n, squares ? 1 : 0]);
    this.run('sum_final', 1, [chunks, out]);
  }

  sum(out: Ptr, x: Ptr, n: number): void {
    check.checkReduction(this, 'sum', out, x, n);
    this.reduce(out, x, n, false);
  }

  sumSquares(out: Ptr, x: Ptr, n: number): void {
    check.checkReduction(this, 'sumSquares', out, x, n);
    this.reduce(out, x, n, true);
  }

  // ---- normalisation ------------------------------------------------------

  layerNormForward(out: Ptr, mean: Ptr, rstd: Ptr, inp: Ptr, weight: Ptr, bias: Ptr, N: number, C: number, eps: number): void {
    check.checkLayerNormForward(this, out, mean, rstd, inp, weight, bias, N, C);
    this.run('layernorm_forward', N, [N, out, mean, rstd, inp, weight, bias, C], [eps]);
  }

  layerNormBackward(dinp: Ptr, dweight: Ptr, dbias: Ptr, dout: Ptr, inp: Ptr, weight: Ptr, mean: Ptr, rstd: Ptr, N: number, C: number): void {
    check.checkLayerNormBackward(this, dinp, dweight, dbias, dout, inp, weight, mean, rstd, N, C);
    this.run('layernorm_backward_dinp', N, [N, dinp, dout, inp, weight, mean, rstd, C]);
    this.run('layernorm_backward_dparams', groups(C), [C, dweight, dbias, dout, inp, mean, rstd, N]);
  }

  rmsNormForward(out: Ptr, rstd: Ptr, inp: Ptr, weight: Ptr, N: number, C: number, eps: number): void {
    check.checkRmsNormForward(this, out, rstd, inp, weight, N, C);
    this.run('rmsnorm_forward', N, [N, out, rstd, inp, weight, C], [eps]);
  }

  rmsNormBackward(dinp: Ptr, dweight: Ptr, dout: Ptr, inp: Ptr, weight: Ptr, rstd: Ptr, N: number, C: number): void {
    check.checkRmsNormBackward(this, dinp, dweight, dout, inp, weight, rstd, N, C);
    this.run('rmsnorm_backward_dinp', N, [N, dinp, dout, inp, weight, rstd, C]);
    if (dweight) this.run('rmsnorm_backward_dweight', groups(C), [C, dweight, dout, inp, rstd, N]);
  }

  // ---- activations ----------------------------------------------------------

  geluForward(out: Ptr, inp: Ptr, n: number): void {
    check.checkElementwise(this, 'geluForward', n, 'out', out, 'inp', inp);
    this.run('gelu_forward', groups(n), [n, out, inp]);
  }

  geluBackward(dinp: Ptr, inp: Ptr, dout: Ptr, n: number): void {
    check.checkElementwise(this, 'geluBackward', n, 'dinp', dinp, 'inp', inp, 'dout', dout);
    this.run('gelu_backward', groups(n), [n, dinp, inp, dout]);
  }

  siluForward(out: Ptr, inp: Ptr, n: number): void {
    check.checkElementwise(this, 'siluForward', n, 'out', out, 'inp', inp);
    this.run('silu_forward', groups(n), [n, out, inp]);
  }

  siluBackward(dinp: Ptr, inp: Ptr, dout: Ptr, n: number): void {
    check.checkElementwise(this, 'siluBackward', n, 'dinp', dinp, 'inp', inp, 'dout', dout);
    this.run('silu_backward', groups(n), [n, dinp, inp, dout]);
  }

  relu2Forward(out: Ptr, inp: Ptr, n: number): void {
    check.checkElementwise(this, 'relu2Forward', n, 'out', out, 'inp', inp);
    this.run('relu2_forward', groups(n), [n, out, inp]);
  }

  relu2Backward(dinp: Ptr, inp: Ptr, dout: Ptr, n: number): void {
    check.checkElementwise(this, 'relu2Backward', n, 'dinp', dinp, 'inp', inp, 'dout', dout);
    this.run('relu2_backward', groups(n), [n, dinp, inp, dout]);
  }

  tanhForward(out: Ptr, inp: Ptr, n: number): void {
    check.checkElementwise(this, 'tanhForward', n, 'out', out, 'inp', inp);
    this.run('tanh_forward', groups(n), [n, out, inp]);
  }

  tanhBackward(dinp: Ptr, out: Ptr, dout: Ptr, n: number): void {
    check.checkElementwise(this, 'tanhBackward', n, 'dinp', dinp, 'out', out, 'dout', dout);
    this.run('tanh_backward', groups(n), [n, dinp, out, dout]);
  }

  // ---- attention ------------------------------------------------------------

  private attentionFwd(out: Ptr, preatt: Ptr, att: Ptr, q: Ptr, k: Ptr, v: Ptr, B: number, T: number, NH: number, NKV: number, hs: number, qs: number, kvs: number): void {
    const n = B * NH * T;
    this.run('attention_forward', groups(n), [n, out, preatt, att, q, k, v, T, NH, NKV, hs, qs, kvs], [1 / Math.sqrt(hs)]);
  }

  private attentionBwd(dq: Ptr, dk: Ptr, dv: Ptr, dpreatt: Ptr, datt: Ptr, dout: Ptr, q: Ptr, k: Ptr, v: Ptr, att: Ptr,
    B: number, T: number, NH: number, NKV: number, hs: number, qs: number, kvs: number): void {
    const scale = 1 / Math.sqrt(hs);
    const nq = B * NH * T;
    this.run('attention_backward_query', groups(nq), [nq, dq, dpreatt, datt, dout, q, k, v, att, T, NH, NKV, hs, qs, kvs], [scale]);
    const nkv = B * NKV * T * hs;
    this.run('attention_backward_kv', groups(nkv), [nkv, dk, dv, dpreatt, dout, q, att, T, NH, NKV, hs, qs, kvs], [scale]);
  }

  attentionForward(out: Ptr, preatt: Ptr, att: Ptr, inp: Ptr, B: number, T: number, C: number, NH: number): void {
    check.checkAttentionForward(this, out, preatt, att, inp, B, T, C, NH);
    this.attentionFwd(out, preatt, att, inp, inp + C, inp + 2 * C, B, T, NH, NH, C / NH, 3 * C, 3 * C);
  }

  attentionBackward(dinp: Ptr, dpreatt: Ptr, datt: Ptr, dout: Ptr, inp: Ptr, att: Ptr, B: number, T: number, C: number, NH: number): void {
    check.checkAttentionBackward(this, dinp, dpreatt, datt, dout, inp, att, B, T, C, NH);
    this.attentionBwd(dinp, dinp + C, dinp + 2 * C, dpreatt, datt, dout, inp, inp + C, inp + 2 * C, att, B, T, NH, NH, C / NH, 3 * C, 3 * C);
  }

  groupedAttentionForward(out: Ptr, preatt: Ptr, att: Ptr, q: Ptr, k: Ptr, v: Ptr, B: number, T: number, NH: number, NKV: number, hs: number, qs: number, kvs: number): void {
    check.checkGroupedAttentionForward(this, out, preatt, att, q, k, v, B, T, NH, NKV, hs, qs, kvs);
    this.attentionFwd(out, preatt, att, q, k, v, B, T, NH, NKV, hs, qs, kvs);
  }

  groupedAttentionBackward(dq: Ptr, dk: Ptr, dv: Ptr, dpreatt: Ptr, datt: Ptr, dout: Ptr, q: Ptr, k: Ptr, v: Ptr, att: Ptr,
    B: number, T: number, NH: number, NKV: number, hs: number, qs: number, kvs: number): void {
    check.checkGroupedAttentionBackward(this, dq, dk, dv, dpreatt, datt, dout, q, k, v, att, B, T, NH, NKV, hs, qs, kvs);
    this.attentionBwd(dq, dk, dv, dpreatt, datt, dout, q, k, v, att, B, T, NH, NKV, hs, qs, kvs);
  }

  // ---- embedding -----------------------------------------------------------

  embeddingForward(out: Ptr, tokens: Ptr, wte: Ptr, wpe: Ptr, B: number, T: number, C: number): void {
    check.checkEmbedding(this, 'embeddingForward', this.indices.view, 'out', out, tokens, 'wte', wte, 'wpe', wpe, B, T, C);
    this.run('embedding_forward', groups(B * T * C), [B * T * C, out, tokens, wte, wpe, T, C]);
  }

  embeddingBackward(dwte: Ptr, dwpe: Ptr, dout: Ptr, tokens: Ptr, B: number, T: number, C: number): void {
    check.checkEmbedding(this, 'embeddingBackward', this.indices.view, 'dout', dout, tokens, 'dwte', dwte, 'dwpe', dwpe, B, T, C);
    this.run('embedding_backward_wte', groups(C), [C, dwte, dout, tokens, B * T]);
    if (dwpe) this.run('embedding_backward_wpe', groups(T * C), [T * C, dwpe, dout, B, T * C]);
  }

  // ---- loss -----------------------------------------------------------------

  crossEntropyForward(losses: Ptr, probs: Ptr, logits: Ptr, targets: Ptr, N: number, V: number): void {
    check.checkCrossEntropy(this, 'crossEntropyForward', this.indices.view, 'probs', probs, 'logits', logits, 'losses', losses, targets, N, V);
    this.run('cross_entropy_forward', N, [N, losses, probs, logits, targets, V]);
  }

  crossEntropyBackward(dlogits: Ptr, probs: Ptr, targets: Ptr, dlosses: Ptr, N: number, V: number): void {
    check.checkCrossEntropy(this, 'crossEntropyBackward', this.indices.view, 'dlogits', dlogits, 'probs', probs, 'dlosses', dlosses, targets, N, V);
    this.run('cross_entropy_backward', groups(N * V), [N * V, dlogits, probs, targets, dlosses, V]);
  }

  // ---- optimizer -----------------------------------------------------------

  adamwStep(params: Ptr, grads: Ptr, m: Ptr, v: Ptr, n: number, hp: AdamWParams, gradScale: Ptr): void {
    check.checkAdamW(this, params, grads, m, v, n, hp.step, gradScale);
    const bc1 = 1 - Math.pow(hp.beta1, hp.step);
    const bc2 = 1 - Math.pow(hp.beta2, hp.step);
    this.run('adamw', groups(n), [n, params, grads, m, v, gradScale], [hp.lr, hp.beta1, hp.beta2, hp.eps, hp.weightDecay, bc1, bc2]);
  }

  clipScale(out: Ptr, sumsq: Ptr, maxNorm: number): void {
    check.checkClipScale(this, out, sumsq);
    this.run('clip_scale', 1, [1, out, sumsq], [maxNorm]);
  }

  adamw8bitStep(params: Ptr, grads: Ptr, state: AdamW8bitBuffers, n: number, hp: AdamWParams, gradScale: Ptr): void {
    check.checkAdamW8bit(this, params, grads, state, n, hp.step, gradScale);
    if (n === 0) return;
    const blocks = Math.ceil(n / 256);
    const s = state;
    const bc1 = biasCorrection(hp.beta1, hp.step);
    const bc2 = biasCorrection(hp.beta2, hp.step);
    this.run('adamw8bit_step', blocks, [blocks, params, grads, s.mCodes, s.vCodes, s.mAbsmax, s.vAbsmax, s.signedMap, s.unsignedMap, gradScale, n],
      [hp.lr, hp.beta1, hp.beta2, hp.eps, hp.weightDecay, bc1, bc2]);
  }

  // ---- BitNet b1.58: quantizers and packed ternary matmuls ----------------------------------
  // Byte buffers pack 4 bytes a slot (as in wasm); the packed kernels need no scratch.

  byteSlots(bytes: number): number {
    qcheck.checkByteCount(this, bytes);
    return Math.ceil(bytes / 4);
  }

  ternaryScratchSlots(kernel: 'forward' | 'backwardDx', N: number, K: number): number {
    void kernel; void N; void K;
    return 0;
  }

  absmeanScales(scales: Ptr, w: Ptr, count: number, group: number): void {
    qcheck.checkAbsmeanScales(this, scales, w, count, group);
    const g = count / group;
    this.run('absmean_scales', g, [g, scales, w, group]);
  }

  ternaryPack(packed: Ptr, w: Ptr, scales: Ptr, N: number, K: number, group: number): void {
    qcheck.checkTernaryPack(this, packed, w, scales, N, K, group);
    const R = (N + 3) >> 2;
    const slots = Math.ceil((R * K) / 4);
    this.run('ternary_pack', groups(slots), [slots, packed, w, scales, N, K, group, R]);
  }

  ternaryDequantize(out: Ptr, packed: Ptr, scales: Ptr, N: number, K: number, group: number): void {
    qcheck.checkTernaryDequantize(this, out, packed, scales, N, K, group);
    this.run('ternary_dequantize', groups(N * K), [N * K, out, packed, scales, N, K, group, (N + 3) >> 2]);
  }

  quantizeActivations(xq: Ptr, sx: Ptr, x: Ptr, M: number, K: number): void {
    qcheck.checkActivationQuant(this, 'quantizeActivations', 'x', x, xq, sx, M, K);
    this.run('quantize_activations', M, [M, xq, sx, x, K, 0, 0]);
  }

  dequantizeActivations(out: Ptr, xq: Ptr, sx: Ptr, M: number, K: number): void {
    qcheck.checkActivationQuant(this, 'dequantizeActivations', 'out', out, xq, sx, M, K);
    this.run('dequantize_activations', groups(M * K), [M * K, out, xq, sx, K]);
  }

  ternaryForward(out: Ptr, xq: Ptr, sx: Ptr, packed: Ptr, sw: Ptr, scratch: Ptr, M: number, N: number, K: number, group: number): void {
    qcheck.checkTernaryForward(this, out, xq, sx, packed, sw, scratch, 0, M, N, K, group);
    const R = (N + 3) >> 2;
    this.run('ternary_forward', groups(M * R), [M * R, out, xq, sx, packed, sw, N, K, group, R]);
  }

  ternaryBackwardDx(dx: Ptr, dy: Ptr, packed: Ptr, sw: Ptr, scratch: Ptr, M: number, N: number, K: number, group: number): void {
    qcheck.checkTernaryBackwardDx(this, dx, dy, packed, sw, scratch, 0, M, N, K, group);
    const lanes = M * Math.ceil(K / 4);
    this.run('ternary_backward_dx', groups(lanes), [lanes, dx, dy, packed, sw, N, K, group, (N + 3) >> 2]);
  }

  steClippedWeights(dw: Ptr, dwq: Ptr, w: Ptr, scales: Ptr, N: number, K: number, group: number): void {
    qcheck.checkSteClippedWeights(this, dw, dwq, w, scales, N, K, group);
    this.run('ste_clipped_weights', groups(N * K), [N * K, dw, dwq, w, scales, K, group]);
  }

  steClippedActivations(dx: Ptr, dxq: Ptr, x: Ptr, sx: Ptr, M: number, K: number): void {
    qcheck.checkSteClippedActivations(this, dx, dxq, x, sx, M, K);
    this.run('ste_clipped_activations', groups(M * K), [M * K, dx, dxq, x, sx, K]);
  }

  // ---- rotary position embedding ----------------------------------------------------------

  /**
   * The table is computed on the host in f64 (the js reference's `ropeTable`) and uploaded, as the
   * other backends compute it in f64: WGSL has no f64, and its f32 cos/sin are accurate to 2^-11
   * only. A one-off per model, not a per-step kernel.
   */
  ropeTable(table: Ptr, T: number, hs: number, theta: number): void {
    check.checkRopeTable(this, table, T, hs, theta);
    const rows = new Float32Array(T * hs);
    jsRope.ropeTable(rows, 0, T, hs, theta);
    this.write(table, rows);
  }

  /** The scaled table (`Backend.ropeTableScaled`), on the host in f64 as `ropeTable` (the js reference's). */
  ropeTableScaled(table: Ptr, T: number, hs: number, theta: number, scaling: RopeScaling): void {
    check.checkRopeScaling(this, table, T, hs, theta, scaling);
    const rows = new Float32Array(T * hs);
    jsRope.ropeTableScaled(rows, 0, T, hs, theta, scaling);
    this.write(table, rows);
  }

  private rope(out: Ptr, inp: Ptr, table: Ptr, B: number, T: number, stride: number, heads: number, hs: number, backward: boolean): void {
    const pairs = B * T * heads * (hs / 2);
    this.run('rope_pairs', groups(pairs), [pairs, out, inp, table, T, stride, heads, hs, backward ? 1 : 0]);
    const rest = stride - heads * hs;
    if (rest > 0 && (backward || out !== inp)) this.run('rope_rest', groups(B * T * rest), [B * T * rest, out, inp, rest, stride, heads * hs, backward ? 1 : 0]);
  }

  ropeForward(out: Ptr, inp: Ptr, table: Ptr, B: number, T: number, C: number, NH: number): void {
    check.checkRopeForward(this, out, inp, table, B, T, C, NH);
    this.rope(out, inp, table, B, T, 3 * C, 2 * NH, C / NH, false);
  }

  ropeBackward(dinp: Ptr, dout: Ptr, table: Ptr, B: number, T: number, C: number, NH: number): void {
    check.checkRopeBackward(this, dinp, dout, table, B, T, C, NH);
    this.rope(dinp, dout, table, B, T, 3 * C, 2 * NH, C / NH, true);
  }

  ropeHeadsForward(out: Ptr, inp: Ptr, table: Ptr, B: number, T: number, stride: number, heads: number, hs: number): void {
    check.checkRopeHeadsForward(this, out, inp, table, B, T, stride, heads, hs);
    this.rope(out, inp, table, B, T, stride, heads, hs, false);
  }

  ropeHeadsBackward(dinp: Ptr, dout: Ptr, table: Ptr, B: number, T: number, stride: number, heads: number, hs: number): void {
    check.checkRopeHeadsBackward(this, dinp, dout, table, B, T, stride, heads, hs);
    this.rope(dinp, dout, table, B, T, stride, heads, hs, true);
  }

  // ---- QAT ------------------------------------------------------------------------------------

  qatLerp(out: Ptr, a: Ptr, b: Ptr, n: number, blend: QatBlend): void {
    qatcheck.checkQatLerp(this, out, a, b, n, blend);
    this.run('qat_lerp', groups(n), [n, out, a, b, noiseThreshold(blend.p), blend.seed >>> 0], [blend.lambda]);
  }

  qatSteWeights(dw: Ptr, dwq: Ptr, w: Ptr, scales: Ptr, N: number, K: number, group: number, surrogate: QatSurrogate, temperature: number, blend: QatBlend): void {
    qatcheck.checkQatSteWeights(this, dw, dwq, w, scales, N, K, group, surrogate, temperature, blend);
    const mode = surrogate === 'identity' ? 0 : surrogate === 'clipped' ? 1 : 2;
    this.run('qat_ste_weights', groups(N * K), [N * K, dw, dwq, w, scales, K, group, mode, noiseThreshold(blend.p), blend.seed >>> 0],
      [mode === 2 ? 1 / temperature : 0, blend.lambda]);
  }

  qatLsqScales(sw: Ptr, step: Ptr, absmean: Ptr, count: number): void {
    qatcheck.checkQatLsqScales(this, sw, step, absmean, count);
    this.run('qat_lsq_scales', groups(count), [count, sw, step, absmean]);
  }

  qatLsqStepGrad(dstep: Ptr, dwq: Ptr, w: Ptr, sw: Ptr, count: number, group: number, gradScale: number, blend: QatBlend): void {
    qatcheck.checkQatLsqStepGrad(this, dstep, dwq, w, sw, count, group, gradScale, blend);
    const g = count / group;
    this.run('qat_lsq_step_grad', g, [g, dstep, dwq, w, sw, group, noiseThreshold(blend.p), blend.seed >>> 0], [blend.lambda, gradScale]);
  }

  qatQuantizeActivationsStatic(xq: Ptr, sx: Ptr, x: Ptr, clip: Ptr, M: number, K: number): void {
    qatcheck.checkQatQuantizeActivationsStatic(this, xq, sx, x, clip, M, K);
    this.run('quantize_activations', M, [M, xq, sx, x, K, 1, clip]);
  }

  qatCopyColumns(dst: Ptr, dstCols: number, dstCol0: number, src: Ptr, srcCols: number, srcCol0: number, M: number, n: number, accumulate: boolean): void {
    qatcheck.checkQatCopyColumns(this, dst, dstCols, dstCol0, src, srcCols, srcCol0, M, n);
    this.run('qat_copy_columns', groups(M * n), [M * n, dst, dstCols, dstCol0, src, srcCols, srcCol0, n, accumulate ? 1 : 0]);
  }

  kdForward(losses: Ptr, probs: Ptr, probsT: Ptr, teacherT: Ptr, logits: Ptr, teacher: Ptr, targets: Ptr, N: number, V: number, temperature: number, alpha: number): void {
    qatcheck.checkKd(this, 'kdForward', this.indices.view, [['probs', probs], ['probsT', probsT], ['teacherT', teacherT], ['logits', logits], ['teacher', teacher]],
      targets, ['losses', losses], N, V, temperature, alpha);
    this.run('kd_forward', N, [N, losses, probs, probsT, teacherT, logits, teacher, targets, V], [temperature, alpha]);
  }

  kdBackward(dlogits: Ptr, probs: Ptr, probsT: Ptr, teacherT: Ptr, targets: Ptr, dlosses: Ptr, N: number, V: number, temperature: number, alpha: number): void {
    qatcheck.checkKd(this, 'kdBackward', this.indices.view, [['dlogits', dlogits], ['probs', probs], ['probsT', probsT], ['teacherT', teacherT]],
      targets, ['dlosses', dlosses], N, V, temperature, alpha);
    const a = Math.fround(alpha);
    this.run('kd_backward', groups(N * V), [N * V, dlogits, probs, probsT, teacherT, targets, dlosses, V], [a, Math.fround(1 - a) * Math.fround(temperature)]);
  }

  qatGridPenalty(rowsum: Ptr, w: Ptr, scales: Ptr, N: number, K: number, group: number): void {
    qatcheck.checkQatGrid(this, 'qatGridPenalty', [['rowsum', rowsum, 'N'], ['w', w, 'NK']], scales, N, K, group);
    this.run('qat_grid_penalty', N, [N, rowsum, w, scales, K, group]);
  }

  qatGridPenaltyBackward(dw: Ptr, w: Ptr, scales: Ptr, dout: Ptr, coef: number, N: number, K: number, group: number): void {
    qatcheck.checkQatGrid(this, 'qatGridPenaltyBackward', [['dw', dw, 'NK'], ['w', w, 'NK'], ['dout', dout, '1']], scales, N, K, group);
    this.run('qat_grid_penalty_backward', groups(N * K), [N * K, dw, w, scales, dout, K, group], [coef]);
  }

  qatClampWeights(w: Ptr, scales: Ptr, N: number, K: number, group: number, bound: number): void {
    qatcheck.checkQatGrid(this, 'qatClampWeights', [['w', w, 'NK']], scales, N, K, group);
    this.run('qat_clamp_weights', groups(N * K), [N * K, w, scales, K, group], [bound]);
  }

  // ---- QLoRA: NF4 ----------------------------------------------------------------------------

  nf4ScratchSlots(kernel: 'forward' | 'backwardDx', N: number, K: number): number {
    void kernel; void N; void K;
    return 0;
  }

  nf4Forward(out: Ptr, x: Ptr, w: Nf4Weight, scratch: Ptr, M: number, N: number, K: number): void {
    void scratch;
    checkNf4(this, 'nf4Forward', 'out', out, 'x', x, w, M, N, K);
    this.run('nf4_forward', groups(M * N), [M * N, out, x, w.codes, w.absmaxCodes, w.absmaxScales, w.table, N, K], [w.offset]);
  }

  nf4BackwardDx(dx: Ptr, dy: Ptr, w: Nf4Weight, scratch: Ptr, M: number, N: number, K: number): void {
    void scratch;
    checkNf4(this, 'nf4BackwardDx', 'dy', dy, 'dx', dx, w, M, N, K);
    this.run('nf4_backward_dx', groups(M * K), [M * K, dx, dy, w.codes, w.absmaxCodes, w.absmaxScales, w.table, N, K], [w.offset]);
  }
}

/**
 * Create the webgpu backend: finds an adapter (navigator.gpu, or the `webgpu` npm package in
 * Node), requests a device with the adapter's largest buffer limits and allocates the arena.
 * Throws a BackendError naming the adapter (or its absence) and the CPU alternative.
 */
export async function createWebGpuBackend(opts: WebGpuBackendOptions = {}): Promise<WebGpuBackend> {
  const ctx = await requestGpuContext();
  return new WebGpuBackend(ctx, opts);
}

