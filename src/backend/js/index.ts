/**
 * The `js` backend: every kernel as a plain TypeScript loop over one growable typed array.
 * It is the test oracle for the wasm backend (with `dtype: 'f64'`) and the fallback where
 * WebAssembly SIMD is missing (with the default `dtype: 'f32'`).
 */
import { BackendError, type AdamW8bitBuffers, type AdamWParams, type Backend, type Floats, type GemmLayout, type Nf4Weight, type Ptr, type QatBlend, type QatSurrogate, type RopeScaling } from '../backend.js';
import * as check from '../checks.js';
import * as act from './activation.js';
import * as attn from './attention.js';
import * as elt from './elementwise.js';
import * as emb from './embedding.js';
import { gemmReference } from './gemm.js';
import * as loss from './loss.js';
import * as norm from './norm.js';
import * as optim from './optim.js';
import * as adamw8bit from './adamw8bit.js';
// BitNet b1.58 quantizers and packed ternary matmuls
import * as quant from './quant.js';
import * as ternary from './ternary.js';
import * as qcheck from '../checks-quant.js';
import * as rope from './rope.js';
// QAT
import * as qat from './qat.js';
import * as qatcheck from '../checks-qat.js';
import * as nf4 from './nf4.js';
import { checkNf4 } from '../checks-nf4.js';

/** Options for {@link JsBackend}. */
export interface JsBackendOptions {
  /** Element type of the memory: `'f32'` (default, same storage as wasm) or `'f64'` (the oracle). */
  dtype?: 'f32' | 'f64';
  /** Elements addressable from the start (default 65536); `reserve` grows it. */
  initialCapacity?: number;
}

/**
 * Plain-loop implementation of {@link Backend}.
 *
 * @example
 * const be = new JsBackend({ dtype: 'f64' });
 * be.reserve(be.base + 8);
 * be.write(be.base, [1, 2, 3, 4]);
 * be.add(be.base + 4, be.base, be.base, 4); // elements base+4.. = 2, 4, 6, 8
 */
export class JsBackend implements Backend {
  readonly name = 'js';
  readonly dtype: 'f32' | 'f64';
  readonly base: Ptr = 16;
  private mem: Floats;
  /** True once `dispose()` ran; every method then throws. */
  disposed = false;

  constructor(opts: JsBackendOptions = {}) {
    this.dtype = opts.dtype ?? 'f32';
    if (this.dtype !== 'f32' && this.dtype !== 'f64') throw new BackendError(`js backend: dtype must be 'f32' or 'f64', got ${String(this.dtype)}`);
    const n = Math.max(this.base, opts.initialCapacity ?? 65536);
    this.mem = this.dtype === 'f64' ? new Float64Array(n) : new Float32Array(n);
  }

  get capacity(): number {
    return this.mem.length;
  }

  /** The live memory view (tests and same-backend helpers only; invalidated by `reserve`). */
  get memory(): Floats {
    return this.mem;
  }

  // ---- memory -------------------------------------------------------------

  reserve(n: number): void {
    check.checkAlive(this, 'reserve');
    check.checkDim(this, 'reserve', 'n', n, true);
    if (n <= this.mem.length) return;
    // grow by at least half again, so a sequence of small reserves costs amortised O(n)
    const size = Math.max(n, Math.floor(this.mem.length * 1.5));
    let next: Floats;
    try {
      next = this.dtype === 'f64' ? new Float64Array(size) : new Float32Array(size);
    } catch (e) {
      throw new BackendError(`js backend reserve: cannot allocate ${size} ${this.dtype} elements (${(e as Error).message})`);
    }
    next.set(this.mem);
    this.mem = next;
  }

  readSync(p: Ptr, n: number): Floats {
    check.checkSpan(this, 'readSync', 'p', p, n, '(n)');
    return this.mem.slice(p, p + n);
  }

  read(p: Ptr, n: number): Promise<Floats> {
    try {
      return Promise.resolve(this.readSync(p, n));
    } catch (e) {
      return Promise.reject(e);
    }
  }

  write(p: Ptr, data: ArrayLike<number>): void {
    check.checkSpan(this, 'write', 'p', p, data.length, '(data.length)');
    this.mem.set(data, p);
  }

  writeIndices(p: Ptr, data: Int32Array): void {
    check.checkSpan(this, 'writeIndices', 'p', p, data.length, '(data.length)');
    check.checkIndicesToWrite(this, data, this.dtype === 'f32');
    this.mem.set(data, p);
  }

  readIndices(p: Ptr, n: number): Int32Array {
    check.checkSpan(this, 'readIndices', 'p', p, n, '(n)');
    return Int32Array.from(this.mem.subarray(p, p + n));
  }

  fill(p: Ptr, n: number, value: number): void {
    check.checkSpan(this, 'fill', 'p', p, n, '(n)');
    this.mem.fill(value, p, p + n);
  }

  copy(dst: Ptr, src: Ptr, n: number): void {
    check.checkSpan(this, 'copy', 'src', src, n, '(n)');
    check.checkSpan(this, 'copy', 'dst', dst, n, '(n)');
    this.mem.copyWithin(dst, src, src + n);
  }

  dispose(): void {
    this.disposed = true;
    this.mem = new Float32Array(0);
  }

  // ---- matrix multiply ----------------------------------------------------

  gemm(layout: GemmLayout, out: Ptr, a: Ptr, b: Ptr, M: number, N: number, K: number, accumulate: boolean): void {
    check.checkGemm(this, layout, out, a, b, M, N, K);
    gemmReference(layout, this.mem, out, a, b, M, N, K, accumulate);
  }

  addBias(out: Ptr, bias: Ptr, N: number, C: number): void {
    check.checkBias(this, 'addBias', 'out', out, 'bias', bias, N, C);
    elt.addBias(this.mem, out, bias, N, C);
  }

  biasBackward(dbias: Ptr, dout: Ptr, N: number, C: number): void {
    check.checkBias(this, 'biasBackward', 'dout', dout, 'dbias', dbias, N, C);
    elt.biasBackward(this.mem, dbias, dout, N, C);
  }

  // ---- elementwise and reductions -------------------------------------------

  add(out: Ptr, a: Ptr, b: Ptr, n: number): void {
    check.checkElementwise(this, 'add', n, 'out', out, 'a', a, 'b', b);
    elt.add(this.mem, out, a, b, n);
  }

  mul(out: Ptr, a: Ptr, b: Ptr, n: number): void {
    check.checkElementwise(this, 'mul', n, 'out', out, 'a', a, 'b', b);
    elt.mul(this.mem, out, a, b, n);
  }

  scale(out: Ptr, a: Ptr, s: number, n: number): void {
    check.checkElementwise(this, 'scale', n, 'out', out, 'a', a);
    elt.scale(this.mem, out, a, s, n);
  }

  axpy(y: Ptr, alpha: number, x: Ptr, n: number): void {
    check.checkElementwise(this, 'axpy', n, 'y', y, 'x', x);
    elt.axpy(this.mem, y, alpha, x, n);
  }

  mulAccumulate(y: Ptr, a: Ptr, b: Ptr, n: number): void {
    check.checkElementwise(this, 'mulAccumulate', n, 'y', y, 'a', a, 'b', b);
    elt.mulAccumulate(this.mem, y, a, b, n);
  }

  sum(out: Ptr, x: Ptr, n: number): void {
    check.checkReduction(this, 'sum', out, x, n);
    elt.sum(this.mem, out, x, n);
  }

  sumSquares(out: Ptr, x: Ptr, n: number): void {
    check.checkReduction(this, 'sumSquares', out, x, n);
    elt.sumSquares(this.mem, out, x, n);
  }

  // ---- normalisation ------------------------------------------------------

  layerNormForward(out: Ptr, mean: Ptr, rstd: Ptr, inp: Ptr, weight: Ptr, bias: Ptr, N: number, C: number, eps: number): void {
    check.checkLayerNormForward(this, out, mean, rstd, inp, weight, bias, N, C);
    norm.layerNormForward(this.mem, out, mean, rstd, inp, weight, bias, N, C, eps);
  }

  layerNormBackward(dinp: Ptr, dweight: Ptr, dbias: Ptr, dout: Ptr, inp: Ptr, weight: Ptr, mean: Ptr, rstd: Ptr, N: number, C: number): void {
    check.checkLayerNormBackward(this, dinp, dweight, dbias, dout, inp, weight, mean, rstd, N, C);
    norm.layerNormBackward(this.mem, dinp, dweight, dbias, dout, inp, weight, mean, rstd, N, C);
  }

  rmsNormForward(out: Ptr, rstd: Ptr, inp: Ptr, weight: Ptr, N: number, C: number, eps: number): void {
    check.checkRmsNormForward(this, out, rstd, inp, weight, N, C);
    norm.rmsNormForward(this.mem, out, rstd, inp, weight, N, C, eps);
  }

  rmsNormBackward(dinp: Ptr, dweight: Ptr, dout: Ptr, inp: Ptr, weight: Ptr, rstd: Ptr, N: number, C: number): void {
    check.checkRmsNormBackward(this, dinp, dweight, dout, inp, weight, rstd, N, C);
    norm.rmsNormBackward(this.mem, dinp, dweight, dout, inp, weight, rstd, N, C);
  }

  // ---- activations ----------------------------------------------------------

  geluForward(out: Ptr, inp: Ptr, n: number): void {
    check.checkElementwise(this, 'geluForward', n, 'out', out, 'inp', inp);
    act.geluForward(this.mem, out, inp, n);
  }

  geluBackward(dinp: Ptr, inp: Ptr, dout: Ptr, n: number): void {
    check.checkElementwise(this, 'geluBackward', n, 'dinp', dinp, 'inp', inp, 'dout', dout);
    act.geluBackward(this.mem, dinp, inp, dout, n);
  }

  siluForward(out: Ptr, inp: Ptr, n: number): void {
    check.checkElementwise(this, 'siluForward', n, 'out', out, 'inp', inp);
    act.siluForward(this.mem, out, inp, n);
  }

  siluBackward(dinp: Ptr, inp: Ptr, dout: Ptr, n: number): void {
    check.checkElementwise(this, 'siluBackward', n, 'dinp', dinp, 'inp', inp, 'dout', dout);
    act.siluBackward(this.mem, dinp, inp, dout, n);
  }

  tanhForward(out: Ptr, inp: Ptr, n: number): void {
    check.checkElementwise(this, 'tanhForward', n, 'out', out, 'inp', inp);
    for (let i = 0; i < n; i++) this.mem[out + i] = Math.tanh(this.mem[inp + i]!);
  }

  // in the forward pass: out = tanh(inp); tanh' = 1 - tanh^2
  tanhBackward(dinp: Ptr, out: Ptr, dout: Ptr, n: number): void {
    check.checkElementwise(this, 'tanhBackward', n, 'dinp', dinp, 'out', out, 'dout', dout);
    for (let i = 0; i < n; i++) {
      const y = this.mem[out + i]!;
      this.mem[dinp + i] += (1 - y * y) * this.mem[dout + i]!;
    }
  }

  // ---- attention ------------------------------------------------------------

  attentionForward(out: Ptr, preatt: Ptr, att: Ptr, inp: Ptr, B: number, T: number, C: number, NH: number): void {
    check.checkAttentionForward(this, out, preatt, att, inp, B, T, C, NH);
    attn.attentionForward(this.mem, out, preatt, att, inp, inp + C, inp + 2 * C, B, T, NH, NH, C / NH, 3 * C, 3 * C);
  }

  attentionBackward(dinp: Ptr, dpreatt: Ptr, datt: Ptr, dout: Ptr, inp: Ptr, att: Ptr, B: number, T: number, C: number, NH: number): void {
    check.checkAttentionBackward(this, dinp, dpreatt, datt, dout, inp, att, B, T, C, NH);
    attn.attentionBackward(this.mem, dinp, dinp + C, dinp + 2 * C, dpreatt, datt, dout, inp, inp + C, inp + 2 * C, att, B, T, NH, NH, C / NH, 3 * C, 3 * C);
  }

  groupedAttentionForward(out: Ptr, preatt: Ptr, att: Ptr, q: Ptr, k: Ptr, v: Ptr, B: number, T: number, NH: number, NKV: number, hs: number, qs: number, kvs: number): void {
    check.checkGroupedAttentionForward(this, out, preatt, att, q, k, v, B, T, NH, NKV, hs, qs, kvs);
    attn.attentionForward(this.mem, out, preatt, att, q, k, v, B, T, NH, NKV, hs, qs, kvs);
  }

  groupedAttentionBackward(dq: Ptr, dk: Ptr, dv: Ptr, dpreatt: Ptr, datt: Ptr, dout: Ptr, q: Ptr, k: Ptr, v: Ptr, att: Ptr, B: number, T: number, NH: number, NKV: number, hs: number, qs: number, kvs: number): void {
    check.checkGroupedAttentionBackward(this, dq, dk, dv, dpreatt, datt, dout, q, k, v, att, B, T, NH, NKV, hs, qs, kvs);
    attn.attentionBackward(this.mem, dq, dk, dv, dpreatt, datt, dout, q, k, v, att, B, T, NH, NKV, hs, qs, kvs);
  }

  // ---- embedding -----------------------------------------------------------

  embeddingForward(out: Ptr, tokens: Ptr, wte: Ptr, wpe: Ptr, B: number, T: number, C: number): void {
    check.checkEmbedding(this, 'embeddingForward', this.mem, 'out', out, tokens, 'wte', wte, 'wpe', wpe, B, T, C);
    emb.embeddingForward(this.mem, out, tokens, wte, wpe, B, T, C);
  }

  embeddingBackward(dwte: Ptr, dwpe: Ptr, dout: Ptr, tokens: Ptr, B: number, T: number, C: number): void {
    check.checkEmbedding(this, 'embeddingBackward', this.mem, 'dout', dout, tokens, 'dwte', dwte, 'dwpe', dwpe, B, T, C);
    emb.embeddingBackward(this.mem, dwte, dwpe, dout, tokens, B, T, C);
  }

  // ---- loss -----------------------------------------------------------------

  crossEntropyForward(losses: Ptr, probs: Ptr, logits: Ptr, targets: Ptr, N: number, V: number): void {
    check.checkCrossEntropy(this, 'crossEntropyForward', this.mem, 'probs', probs, 'logits', logits, 'losses', losses, targets, N, V);
    loss.crossEntropyForward(this.mem, losses, probs, logits, targets, N, V);
  }

  crossEntropyBackward(dlogits: Ptr, probs: Ptr, targets: Ptr, dlosses: Ptr, N: number, V: number): void {
    check.checkCrossEntropy(this, 'crossEntropyBackward', this.mem, 'dlogits', dlogits, 'probs', probs, 'dlosses', dlosses, targets, N, V);
    loss.crossEntropyBackward(this.mem, dlogits, probs, targets, dlosses, N, V);
  }

  // ---- optimizer -----------------------------------------------------------

  adamwStep(params: Ptr, grads: Ptr, m: Ptr, v: Ptr, n: number, hp: AdamWParams, gradScale: Ptr): void {
    check.checkAdamW(this, params, grads, m, v, n, hp.step, gradScale);
    optim.adamwStep(this.mem, params, grads, m, v, n, hp, gradScale);
  }

  clipScale(out: Ptr, sumsq: Ptr, maxNorm: number): void {
    check.checkClipScale(this, out, sumsq);
    optim.clipScale(this.mem, out, sumsq, maxNorm);
  }

  adamw8bitStep(params: Ptr, grads: Ptr, state: AdamW8bitBuffers, n: number, hp: AdamWParams, gradScale: Ptr): void {
    check.checkAdamW8bit(this, params, grads, state, n, hp.step, gradScale);
    adamw8bit.adamw8bitStep(this.mem, params, grads, state, n, hp, gradScale);
  }

  // ---- BitNet b1.58: quantizers and packed ternary matmuls ----------------------------------
  // One byte (int8 activation, packed weight byte) per element slot; the kernels take views
  // whose element 0 is the buffer start. The packed matmuls need no scratch here.

  byteSlots(bytes: number): number {
    qcheck.checkByteCount(this, bytes);
    return bytes;
  }

  ternaryScratchSlots(kernel: 'forward' | 'backwardDx', N: number, K: number): number {
    void kernel; void N; void K;
    return 0;
  }

  private view(p: Ptr): Floats {
    return this.mem.subarray(p);
  }

  absmeanScales(scales: Ptr, w: Ptr, count: number, group: number): void {
    qcheck.checkAbsmeanScales(this, scales, w, count, group);
    quant.absmeanScales(this.view(scales), this.view(w), count, group, 0, count / group);
  }

  ternaryPack(packed: Ptr, w: Ptr, scales: Ptr, N: number, K: number, group: number): void {
    qcheck.checkTernaryPack(this, packed, w, scales, N, K, group);
    quant.ternaryPack(this.view(packed), this.view(w), this.view(scales), N, K, group, 0, (N + 3) >> 2);
  }

  ternaryDequantize(out: Ptr, packed: Ptr, scales: Ptr, N: number, K: number, group: number): void {
    qcheck.checkTernaryDequantize(this, out, packed, scales, N, K, group);
    quant.ternaryDequantize(this.view(out), this.view(packed), this.view(scales), N, K, group, 0, N);
  }

  quantizeActivations(xq: Ptr, sx: Ptr, x: Ptr, M: number, K: number): void {
    qcheck.checkActivationQuant(this, 'quantizeActivations', 'x', x, xq, sx, M, K);
    quant.quantizeActivations(this.view(xq), this.view(sx), this.view(x), M, K, 0, M);
  }

  dequantizeActivations(out: Ptr, xq: Ptr, sx: Ptr, M: number, K: number): void {
    qcheck.checkActivationQuant(this, 'dequantizeActivations', 'out', out, xq, sx, M, K);
    quant.dequantizeActivations(this.view(out), this.view(xq), this.view(sx), M, K, 0, M);
  }

  ternaryForward(out: Ptr, xq: Ptr, sx: Ptr, packed: Ptr, sw: Ptr, scratch: Ptr, M: number, N: number, K: number, group: number): void {
    qcheck.checkTernaryForward(this, out, xq, sx, packed, sw, scratch, 0, M, N, K, group);
    ternary.ternaryForward(this.view(out), this.view(xq), this.view(sx), this.view(packed), this.view(sw), M, N, K, group, 0, M);
  }

  ternaryBackwardDx(dx: Ptr, dy: Ptr, packed: Ptr, sw: Ptr, scratch: Ptr, M: number, N: number, K: number, group: number): void {
    qcheck.checkTernaryBackwardDx(this, dx, dy, packed, sw, scratch, 0, M, N, K, group);
    ternary.ternaryBackwardDx(this.view(dx), this.view(dy), this.view(packed), this.view(sw), M, N, K, group, 0, M);
  }

  steClippedWeights(dw: Ptr, dwq: Ptr, w: Ptr, scales: Ptr, N: number, K: number, group: number): void {
    qcheck.checkSteClippedWeights(this, dw, dwq, w, scales, N, K, group);
    quant.steClippedWeights(this.view(dw), this.view(dwq), this.view(w), this.view(scales), N, K, group, 0, N);
  }

  steClippedActivations(dx: Ptr, dxq: Ptr, x: Ptr, sx: Ptr, M: number, K: number): void {
    qcheck.checkSteClippedActivations(this, dx, dxq, x, sx, M, K);
    quant.steClippedActivations(this.view(dx), this.view(dxq), this.view(x), this.view(sx), M, K, 0, M);
  }

  // ---- squared ReLU and rotary position embedding (mlp: 'relu2', pos: 'rope') ----

  relu2Forward(out: Ptr, inp: Ptr, n: number): void {
    check.checkElementwise(this, 'relu2Forward', n, 'out', out, 'inp', inp);
    act.relu2Forward(this.mem, out, inp, n);
  }

  relu2Backward(dinp: Ptr, inp: Ptr, dout: Ptr, n: number): void {
    check.checkElementwise(this, 'relu2Backward', n, 'dinp', dinp, 'inp', inp, 'dout', dout);
    act.relu2Backward(this.mem, dinp, inp, dout, n);
  }

  ropeTable(table: Ptr, T: number, hs: number, theta: number): void {
    check.checkRopeTable(this, table, T, hs, theta);
    rope.ropeTable(this.mem, table, T, hs, theta);
  }

  ropeTableScaled(table: Ptr, T: number, hs: number, theta: number, scaling: RopeScaling): void {
    check.checkRopeScaling(this, table, T, hs, theta, scaling);
    rope.ropeTableScaled(this.mem, table, T, hs, theta, scaling);
  }

  ropeForward(out: Ptr, inp: Ptr, table: Ptr, B: number, T: number, C: number, NH: number): void {
    check.checkRopeForward(this, out, inp, table, B, T, C, NH);
    rope.ropeForward(this.mem, out, inp, table, B, T, 3 * C, 2 * NH, C / NH);
  }

  ropeBackward(dinp: Ptr, dout: Ptr, table: Ptr, B: number, T: number, C: number, NH: number): void {
    check.checkRopeBackward(this, dinp, dout, table, B, T, C, NH);
    rope.ropeBackward(this.mem, dinp, dout, table, B, T, 3 * C, 2 * NH, C / NH);
  }

  ropeHeadsForward(out: Ptr, inp: Ptr, table: Ptr, B: number, T: number, stride: number, heads: number, hs: number): void {
    check.checkRopeHeadsForward(this, out, inp, table, B, T, stride, heads, hs);
    rope.ropeForward(this.mem, out, inp, table, B, T, stride, heads, hs);
  }

  ropeHeadsBackward(dinp: Ptr, dout: Ptr, table: Ptr, B: number, T: number, stride: number, heads: number, hs: number): void {
    check.checkRopeHeadsBackward(this, dinp, dout, table, B, T, stride, heads, hs);
    rope.ropeBackward(this.mem, dinp, dout, table, B, T, stride, heads, hs);
  }

  // ---- QAT: quantisation-aware training (src/qat/README.md) ----------------------------------

  qatLerp(out: Ptr, a: Ptr, b: Ptr, n: number, blend: QatBlend): void {
    qatcheck.checkQatLerp(this, out, a, b, n, blend);
    qat.qatLerp(this.mem, out, a, b, n, blend.lambda, blend.p, blend.seed);
  }

  qatSteWeights(dw: Ptr, dwq: Ptr, w: Ptr, scales: Ptr, N: number, K: number, group: number, surrogate: QatSurrogate, temperature: number, blend: QatBlend): void {
    qatcheck.checkQatSteWeights(this, dw, dwq, w, scales, N, K, group, surrogate, temperature, blend);
    const mode = surrogate === 'identity' ? 0 : surrogate === 'clipped' ? 1 : 2;
    qat.qatSteWeights(this.mem, dw, dwq, w, scales, N, K, group, mode, mode === 2 ? 1 / temperature : 0, blend.lambda, blend.p, blend.seed);
  }

  qatLsqScales(sw: Ptr, step: Ptr, absmean: Ptr, count: number): void {
    qatcheck.checkQatLsqScales(this, sw, step, absmean, count);
    qat.qatLsqScales(this.mem, sw, step, absmean, count);
  }

  qatLsqStepGrad(dstep: Ptr, dwq: Ptr, w: Ptr, sw: Ptr, count: number, group: number, gradScale: number, blend: QatBlend): void {
    qatcheck.checkQatLsqStepGrad(this, dstep, dwq, w, sw, count, group, gradScale, blend);
    qat.qatLsqStepGrad(this.mem, dstep, dwq, w, sw, count, group, blend.lambda, blend.p, blend.seed, gradScale);
  }

  qatQuantizeActivationsStatic(xq: Ptr, sx: Ptr, x: Ptr, clip: Ptr, M: number, K: number): void {
    qatcheck.checkQatQuantizeActivationsStatic(this, xq, sx, x, clip, M, K);
    qat.qatQuantizeActivationsStatic(this.mem, xq, sx, x, clip, M, K);
  }

  qatCopyColumns(dst: Ptr, dstCols: number, dstCol0: number, src: Ptr, srcCols: number, srcCol0: number, M: number, n: number, accumulate: boolean): void {
    qatcheck.checkQatCopyColumns(this, dst, dstCols, dstCol0, src, srcCols, srcCol0, M, n);
    qat.qatCopyColumns(this.mem, dst, dstCols, dstCol0, src, srcCols, srcCol0, M, n, accumulate);
  }

  kdForward(losses: Ptr, probs: Ptr, probsT: Ptr, teacherT: Ptr, logits: Ptr, teacher: Ptr, targets: Ptr, N: number, V: number, temperature: number, alpha: number): void {
    qatcheck.checkKd(this, 'kdForward', this.mem, [['probs', probs], ['probsT', probsT], ['teacherT', teacherT], ['logits', logits], ['teacher', teacher]],
      targets, ['losses', losses], N, V, temperature, alpha);
    qat.kdForward(this.mem, losses, probs, probsT, teacherT, logits, teacher, targets, N, V, temperature, alpha);
  }

  kdBackward(dlogits: Ptr, probs: Ptr, probsT: Ptr, teacherT: Ptr, targets: Ptr, dlosses: Ptr, N: number, V: number, temperature: number, alpha: number): void {
    qatcheck.checkKd(this, 'kdBackward', this.mem, [['dlogits', dlogits], ['probs', probs], ['probsT', probsT], ['teacherT', teacherT]],
      targets, ['dlosses', dlosses], N, V, temperature, alpha);
    qat.kdBackward(this.mem, dlogits, probs, probsT, teacherT, targets, dlosses, N, V, temperature, alpha);
  }

  qatGridPenalty(rowsum: Ptr, w: Ptr, scales: Ptr, N: number, K: number, group: number): void {
    qatcheck.checkQatGrid(this, 'qatGridPenalty', [['rowsum', rowsum, 'N'], ['w', w, 'NK']], scales, N, K, group);
    qat.qatGridPenalty(this.mem, rowsum, w, scales, N, K, group);
  }

  qatGridPenaltyBackward(dw: Ptr, w: Ptr, scales: Ptr, dout: Ptr, coef: number, N: number, K: number, group: number): void {
    qatcheck.checkQatGrid(this, 'qatGridPenaltyBackward', [['dw', dw, 'NK'], ['w', w, 'NK'], ['dout', dout, '1']], scales, N, K, group);
    qat.qatGridPenaltyBackward(this.mem, dw, w, scales, dout, coef, N, K, group);
  }

  qatClampWeights(w: Ptr, scales: Ptr, N: number, K: number, group: number, bound: number): void {
    qatcheck.checkQatGrid(this, 'qatClampWeights', [['w', w, 'NK']], scales, N, K, group);
    qat.qatClampWeights(this.mem, w, scales, N, K, group, bound);
  }

  // ---- QLoRA: NF4 (src/backend/js/nf4.ts) ----

  nf4ScratchSlots(kernel: 'forward' | 'backwardDx', N: number, K: number): number {
    void kernel; void N; void K;
    return 0;
  }

  nf4Forward(out: Ptr, x: Ptr, w: Nf4Weight, scratch: Ptr, M: number, N: number, K: number): void {
    void scratch;
    checkNf4(this, 'nf4Forward', 'out', out, 'x', x, w, M, N, K);
    nf4.nf4Forward(this.mem, out, x, w, M, N, K);
  }

  nf4BackwardDx(dx: Ptr, dy: Ptr, w: Nf4Weight, scratch: Ptr, M: number, N: number, K: number): void {
    void scratch;
    checkNf4(this, 'nf4BackwardDx', 'dy', dy, 'dx', dx, w, M, N, K);
    nf4.nf4BackwardDx(this.mem, dx, dy, w, M, N, K);
  }
}
