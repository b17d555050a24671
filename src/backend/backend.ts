/**
 * The `Backend` interface: a set of kernels over one flat memory the backend owns.
 *
 * Every kernel addresses that memory by element offset (`Ptr`): element `p` is the
 * `p`-th float (f32 in the wasm backend, f32 or f64 in the js backend). Pointer `0`
 * is reserved and means "absent" (an optional bias, a missing position table).
 * Integer inputs (token ids, targets) are stored one per element slot with
 * `writeIndices` and read back by kernels as integers.
 *
 * Conventions, as in llm.c:
 * - forward kernels overwrite their outputs;
 * - backward kernels ACCUMULATE (`+=`) into every gradient they write, so a
 *   parameter used twice (tied embeddings) simply receives both contributions;
 * - kernels never allocate; the caller passes every buffer, including the
 *   scratch a forward saves for its backward (`mean`, `rstd`, `att`, `probs`).
 *
 * Shapes are given once, in the doc comment of each kernel, with the names
 * B (batch), T (time), C (channels), NH (heads), V (vocabulary), N (rows).
 */

/** Element offset into a backend's memory. `0` means "absent". */
export type Ptr = number;

/** A copy of backend memory. f64 only from a js backend created with `dtype: 'f64'`. */
export type Floats = Float32Array | Float64Array;

/** The three matrix layouts training needs. C is (M, N) in every layout.
 * - `nn`: C (+)= A·B,   A is (M, K), B is (K, N)   (linear backward: dX = dY·W)
 * - `nt`: C (+)= A·Bᵀ,  A is (M, K), B is (N, K)   (linear forward: Y = X·Wᵀ)
 * - `tn`: C (+)= Aᵀ·B,  A is (K, M), B is (K, N)   (linear backward: dW = dYᵀ·X)
 */
export type GemmLayout = 'nn' | 'nt' | 'tn';

export interface AdamWParams {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** 1-based step count, for bias correction. */
  step: number;
}

/**
 * 8-bit blockwise AdamW state of n elements in backend memory (`Backend.adamw8bitStep`):
 * `mCodes`, `vCodes` (n bytes each, in `byteSlots(n)` elements), `mAbsmax`, `vAbsmax`
 * (ceil(n/256) f32), `signedMap`, `unsignedMap` (256 f32 each, sorted ascending: the dynamic maps
 * of src/quant/dynamic-map.ts), `searchTables` (16392 bytes: `codeSearchTable` of the signed map,
 * then of the unsigned one; where the wasm kernel starts each nearest-code search — the js and
 * webgpu kernels search the maps directly and find the same codes). Element i of m is
 * `signedMap[mCodes[i]] * mAbsmax[i / 256]`.
 */
export interface AdamW8bitBuffers {
  mCodes: Ptr;
  vCodes: Ptr;
  mAbsmax: Ptr;
  vAbsmax: Ptr;
  signedMap: Ptr;
  unsignedMap: Ptr;
  searchTables: Ptr;
}

/** A RoPE scaling (Hugging Face `rope_scaling`): `linear`, or Llama 3.1's `llama3` (see `Backend.ropeTableScaled`). */
export type RopeScaling =
  | { kind: 'linear'; factor: number }
  | { kind: 'llama3'; factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPositions: number };

export interface Backend {
  /** `'wasm'`, `'js'`, ... */
  readonly name: string;
  /** `'f32'` or `'f64'`: the element type of this backend's memory. */
  readonly dtype: 'f32' | 'f64';
  /** Number of elements currently addressable. */
  readonly capacity: number;
  /** First element callers may allocate; `[0, base)` is reserved (pointer 0 means absent; kernel constants). */
  readonly base: Ptr;

  // ---- memory -------------------------------------------------------------

  /** Grow memory so that elements `[0, n)` are addressable; contents are kept. */
  reserve(n: number): void;
  /** Copy `n` elements starting at `p` out of backend memory (synchronous; CPU backends). */
  readSync(p: Ptr, n: number): Floats;
  /** Copy `n` elements starting at `p` out of backend memory. */
  read(p: Ptr, n: number): Promise<Floats>;
  /** Copy `data` into backend memory at `p`. */
  write(p: Ptr, data: ArrayLike<number>): void;
  /** Store integers (token ids, targets) one per element slot at `p`. */
  writeIndices(p: Ptr, data: Int32Array): void;
  /** Read back `n` integers stored with `writeIndices`. */
  readIndices(p: Ptr, n: number): Int32Array;
  /** Set `n` elements at `p` to `value`. */
  fill(p: Ptr, n: number, value: number): void;
  /** Copy `n` elements from `src` to `dst` (regions must not overlap). */
  copy(dst: Ptr, src: Ptr, n: number): void;
  /** Release resources (worker threads, GPU buffers). The backend is unusable afterwards. */
  dispose(): void;

  // ---- matrix multiply ----------------------------------------------------

  /** `out (M,N) = op(A)·op(B)` (or `+=` when `accumulate`), see `GemmLayout`. */
  gemm(layout: GemmLayout, out: Ptr, a: Ptr, b: Ptr, M: number, N: number, K: number, accumulate: boolean): void;
  /** `out (N,C) += bias (C)` broadcast over rows. */
  addBias(out: Ptr, bias: Ptr, N: number, C: number): void;
  /** `dbias (C) += sum over rows of dout (N,C)`. */
  biasBackward(dbias: Ptr, dout: Ptr, N: number, C: number): void;

  // ---- elementwise and reductions -------------------------------------------

  /** `out = a + b` over `n` elements (residual add). */
  add(out: Ptr, a: Ptr, b: Ptr, n: number): void;
  /** `out = a * b` over `n` elements. */
  mul(out: Ptr, a: Ptr, b: Ptr, n: number): void;
  /** `out = s * a` over `n` elements. */
  scale(out: Ptr, a: Ptr, s: number, n: number): void;
  /** `y += alpha * x` over `n` elements (gradient accumulation). */
  axpy(y: Ptr, alpha: number, x: Ptr, n: number): void;
  /** `y += a * b` over `n` elements (mul backward). */
  mulAccumulate(y: Ptr, a: Ptr, b: Ptr, n: number): void;
  /** `out[0] = sum(x[0..n))`, summed in fixed-size chunks in a fixed order (deterministic). */
  sum(out: Ptr, x: Ptr, n: number): void;
  /** `out[0] = sum(x[i]^2)`, same chunking as `sum`. */
  sumSquares(out: Ptr, x: Ptr, n: number): void;

  // ---- normalisation ------------------------------------------------------

  /** LayerNorm over the last dim. inp, out (N,C); weight, bias (C) (bias may be 0); mean, rstd (N) saved for backward. */
  layerNormForward(out: Ptr, mean: Ptr, rstd: Ptr, inp: Ptr, weight: Ptr, bias: Ptr, N: number, C: number, eps: number): void;
  /** Accumulates into dinp (N,C), dweight (C), dbias (C) (dbias may be 0). */
  layerNormBackward(dinp: Ptr, dweight: Ptr, dbias: Ptr, dout: Ptr, inp: Ptr, weight: Ptr, mean: Ptr, rstd: Ptr, N: number, C: number): void;
  /** RMSNorm over the last dim: out = inp * rstd * weight, rstd = 1/sqrt(mean(inp^2)+eps). weight may be 0 (no affine). */
  rmsNormForward(out: Ptr, rstd: Ptr, inp: Ptr, weight: Ptr, N: number, C: number, eps: number): void;
  /** Accumulates into dinp (N,C) and dweight (C) (dweight 0 when weight was 0). */
  rmsNormBackward(dinp: Ptr, dweight: Ptr, dout: Ptr, inp: Ptr, weight: Ptr, rstd: Ptr, N: number, C: number): void;

  // ---- activations ----------------------------------------------------------

  /** GELU, tanh approximation: 0.5x(1+tanh(sqrt(2/pi)(x+0.044715x^3))). */
  geluForward(out: Ptr, inp: Ptr, n: number): void;
  /** `dinp += gelu'(inp) * dout`. */
  geluBackward(dinp: Ptr, inp: Ptr, dout: Ptr, n: number): void;
  /** SiLU: x * sigmoid(x). */
  siluForward(out: Ptr, inp: Ptr, n: number): void;
  /** `dinp += silu'(inp) * dout`. */
  siluBackward(dinp: Ptr, inp: Ptr, dout: Ptr, n: number): void;
  /** tanh (the prefix-tuning MLP's activation, src/peft/prefix.ts). */
  tanhForward(out: Ptr, inp: Ptr, n: number): void;
  /** `dinp += (1 - out^2) * dout`, from the forward's output `out`. */
  tanhBackward(dinp: Ptr, out: Ptr, dout: Ptr, n: number): void;

  // ---- attention ------------------------------------------------------------

  /**
   * Causal multi-head self-attention (llm.c layout).
   * inp (B,T,3C) holds q,k,v side by side per token; out (B,T,C);
   * preatt, att (B,NH,T,T) are saved for backward (entries above the diagonal are unspecified).
   * Scores are scaled by 1/sqrt(C/NH).
   */
  attentionForward(out: Ptr, preatt: Ptr, att: Ptr, inp: Ptr, B: number, T: number, C: number, NH: number): void;
  /** Accumulates into dinp (B,T,3C). dpreatt, datt (B,NH,T,T) are scratch, overwritten. */
  attentionBackward(dinp: Ptr, dpreatt: Ptr, datt: Ptr, dout: Ptr, inp: Ptr, att: Ptr, B: number, T: number, C: number, NH: number): void;
  /**
   * Causal grouped-query self-attention over separate q, k, v buffers (LLaMA / BitNet families):
   * q (B,T,·) has rows of `qs` elements holding NH query heads of `hs` at the start of each row;
   * k and v have rows of `kvs` elements holding NKV key/value heads (NH % NKV == 0); query head h
   * attends with kv head floor(h / (NH/NKV)) (Hugging Face's `repeat_kv`). out (B,T,NH·hs);
   * preatt, att (B,NH,T,T) as in `attentionForward`. Scores are scaled by 1/sqrt(hs).
   * `attentionForward` is the case k = inp + C, v = inp + 2C, qs = kvs = 3C, NKV = NH, same bits.
   */
  groupedAttentionForward(out: Ptr, preatt: Ptr, att: Ptr, q: Ptr, k: Ptr, v: Ptr, B: number, T: number, NH: number, NKV: number, hs: number, qs: number, kvs: number): void;
  /** Accumulates into dq (rows of qs), dk and dv (rows of kvs). dpreatt, datt (B,NH,T,T) are scratch, overwritten. */
  groupedAttentionBackward(dq: Ptr, dk: Ptr, dv: Ptr, dpreatt: Ptr, datt: Ptr, dout: Ptr, q: Ptr, k: Ptr, v: Ptr, att: Ptr, B: number, T: number, NH: number, NKV: number, hs: number, qs: number, kvs: number): void;

  // ---- embedding -----------------------------------------------------------

  /** out (B,T,C) = wte[tokens[b,t]] + wpe[t]; tokens (B,T) indices; wte (V,C); wpe (maxT,C) or 0. */
  embeddingForward(out: Ptr, tokens: Ptr, wte: Ptr, wpe: Ptr, B: number, T: number, C: number): void;
  /** Scatter-add: dwte[tokens[b,t]] += dout[b,t]; dwpe[t] += dout[b,t] (dwpe may be 0). */
  embeddingBackward(dwte: Ptr, dwpe: Ptr, dout: Ptr, tokens: Ptr, B: number, T: number, C: number): void;

  // ---- loss -----------------------------------------------------------------

  /**
   * Fused softmax + cross-entropy. logits, probs (N,V); targets (N) indices;
   * losses (N) per-row -log p[target]; probs saved for backward.
   */
  crossEntropyForward(losses: Ptr, probs: Ptr, logits: Ptr, targets: Ptr, N: number, V: number): void;
  /** `dlogits += (probs - onehot(targets)) * dlosses[row]`, dlosses (N). */
  crossEntropyBackward(dlogits: Ptr, probs: Ptr, targets: Ptr, dlosses: Ptr, N: number, V: number): void;

  // ---- optimizer -----------------------------------------------------------

  /**
   * AdamW over flat arrays of n elements: params, grads, m, v.
   * Decoupled weight decay (p -= lr*wd*p), bias correction with `step`.
   * Gradients are multiplied by `gradScale[0]` first when gradScale != 0 (clipping, fused).
   */
  adamwStep(params: Ptr, grads: Ptr, m: Ptr, v: Ptr, n: number, hp: AdamWParams, gradScale: Ptr): void;
  /**
   * Global-norm clipping factor: reads sumsq[0] (a sum of squares written by sumSquares)
   * and writes out[0] = min(1, maxNorm / (sqrt(sumsq[0]) + 1e-6)).
   */
  clipScale(out: Ptr, sumsq: Ptr, maxNorm: number): void;
  /**
   * 8-bit blockwise AdamW (bitsandbytes' blockwise 8-bit Adam; src/optim/adamw8bit.ts) over n
   * elements: params, grads (n) f32; m and v as codes into two 256-entry dynamic maps with one f32
   * absmax per block of 256 (layout: {@link AdamW8bitBuffers}). Per block: dequantise, the AdamW
   * update of `adamwStep` from the f32 moments, then the block's new absmax and requantisation
   * (nearest code; a non-zero m never gets a code of the other sign or zero). Computed in f32
   * arithmetic on every backend; the wasm and js backends give the same bits.
   */
  adamw8bitStep(params: Ptr, grads: Ptr, state: AdamW8bitBuffers, n: number, hp: AdamWParams, gradScale: Ptr): void;

  // ---- BitNet b1.58: quantizers and packed ternary matmuls (BitLinear) ------------------
  //
  // Numerics and layouts: src/quant/README.md. Byte buffers (int8 activations `xq`, 2-bit packed
  // weights, kernel scratch) live in element slots too: a buffer of `bytes` bytes takes
  // `byteSlots(bytes)` elements, and its pointer is the element offset of its first slot.
  // Shapes: x (M,K) f32 activations, one row per token; xq (M,K8) int8 with K8 = (K+7)&~7;
  // sx (M) f32 activation scales; W (N,K) f32 latent weights; packed (ceil(N/4), K) bytes;
  // scales (N*K/group) f32 weight scales (multipliers: dequantised W = Wq / s), see `group` in
  // src/quant/layout.ts (N*K per tensor, K per channel, G per group, R*K per block of rows).

  /** Elements a buffer of `bytes` bytes occupies: `ceil(bytes/4)` in wasm (f32 slots), `bytes` in js (a byte per slot). */
  byteSlots(bytes: number): number;
  /**
   * Elements of per-thread scratch `ternaryForward` (`kernel = 'forward'`) or
   * `ternaryBackwardDx` (`'backwardDx'`) needs for W (N,K), for every thread of this backend
   * (0 when the backend needs none). Allocate it per call (an arena buffer); it is overwritten.
   */
  ternaryScratchSlots(kernel: 'forward' | 'backwardDx', N: number, K: number): number;
  /** Absmean weight scales: `scales[g] = 1 / max(mean|w| over the g-th run of group elements, 1e-5)`; w (count), scales (count/group). */
  absmeanScales(scales: Ptr, w: Ptr, count: number, group: number): void;
  /** Quantise W (N,K) with `scales` to {-1,0,1} (`clamp(round(W*s),-1,1)`, ties to even) and pack it, 2 bits a weight. */
  ternaryPack(packed: Ptr, w: Ptr, scales: Ptr, N: number, K: number, group: number): void;
  /** out (N,K) = f32(Wq / s), the dequantised ternary weights of `packed`. */
  ternaryDequantize(out: Ptr, packed: Ptr, scales: Ptr, N: number, K: number, group: number): void;
  /** Absmax int8 per row: `sx[m] = 127 / max(max|x[m,:]|, 1e-5)`, `xq = clamp(round(x*sx), -128, 127)`. */
  quantizeActivations(xq: Ptr, sx: Ptr, x: Ptr, M: number, K: number): void;
  /** out (M,K) = f32(xq / sx[m]): the dequantised activations (for dW = dYᵀ·out). */
  dequantizeActivations(out: Ptr, xq: Ptr, sx: Ptr, M: number, K: number): void;
  /**
   * out (M,N) = rescaled int8 × ternary product: `acc = Σ_k xq[m,k]·Wq[n,k]` exactly (int32),
   * `out = f32(acc) / f32(sx[m]·sw[n])` (per group: summed over the K/G segments). Overwrites out.
   * Per-group scales need G % 16 == 0. `scratch` holds `ternaryScratchSlots('forward', N, K)` elements.
   */
  ternaryForward(out: Ptr, xq: Ptr, sx: Ptr, packed: Ptr, sw: Ptr, scratch: Ptr, M: number, N: number, K: number, group: number): void;
  /**
   * dx (M,K) += dy (M,N) · (Wq / sw): the f32 × ternary product of the BitLinear backward.
   * `scratch` holds `ternaryScratchSlots('backwardDx', N, K)` elements.
   */
  ternaryBackwardDx(dx: Ptr, dy: Ptr, packed: Ptr, sw: Ptr, scratch: Ptr, M: number, N: number, K: number, group: number): void;
  /** Clipped STE for weights: `dw (N,K) += dwq` where `|f32(w*s)| <= 1`, `+= 0` elsewhere. */
  steClippedWeights(dw: Ptr, dwq: Ptr, w: Ptr, scales: Ptr, N: number, K: number, group: number): void;
  /** Clipped STE for activations: `dx (M,K) += dxq` where `-128 <= f32(x*sx[m]) <= 127`, `+= 0` elsewhere. */
  steClippedActivations(dx: Ptr, dxq: Ptr, x: Ptr, sx: Ptr, M: number, K: number): void;

  // ---- squared ReLU and rotary position embedding (model options mlp: 'relu2', pos: 'rope') ----

  /** Squared ReLU (BitNet b1.58 2B4T's MLP activation): `out = max(x, 0)^2` over `n` elements. */
  relu2Forward(out: Ptr, inp: Ptr, n: number): void;
  /** `dinp += 2 max(inp, 0) * dout`. */
  relu2Backward(dinp: Ptr, inp: Ptr, dout: Ptr, n: number): void;
  /**
   * The RoPE cos/sin table, table (T, hs): row t holds `cos(t·θ_i)` for i < hs/2, then
   * `sin(t·θ_i)`, with `θ_i = theta^(-2i/hs)` (LLaMA: theta = 10000). hs must be even. Angles
   * and cos/sin are computed in f64 (inside wasm in the wasm backend) and stored in the
   * backend's dtype. Overwrites the table.
   */
  ropeTable(table: Ptr, T: number, hs: number, theta: number): void;
  /**
   * The table of a scaled RoPE (Hugging Face `rope_scaling`), layout as `ropeTable`: each inverse
   * frequency θ_i is rescaled first — `linear`: θ_i / factor; `llama3` (Llama 3.1+): with
   * wavelength λ = 2π/θ_i, θ_i / factor where λ > originalMaxPositions / lowFreqFactor, θ_i where
   * λ < originalMaxPositions / highFreqFactor, and between them (1 − s)·θ_i/factor + s·θ_i,
   * s = (originalMaxPositions/λ − lowFreqFactor) / (highFreqFactor − lowFreqFactor). f64 as `ropeTable`.
   */
  ropeTableScaled(table: Ptr, T: number, hs: number, theta: number, scaling: RopeScaling): void;
  /**
   * Rotary position embedding on a fused qkv, LLaMA convention (HF `rotate_half`): in every
   * head of q and k, element i pairs with i + hs/2 and the pair is rotated by the angle of
   * position t from `table` (see `ropeTable`, at least T rows): `y1 = x1 cos - x2 sin`,
   * `y2 = x2 cos + x1 sin`. inp, out (B,T,3C) as in `attentionForward`; hs = C/NH, even;
   * v is copied unchanged. Out of place, or in place with `out = inp`.
   */
  ropeForward(out: Ptr, inp: Ptr, table: Ptr, B: number, T: number, C: number, NH: number): void;
  /**
   * Accumulates into dinp (B,T,3C): the inverse rotation (by −angle) of dout's q and k parts,
   * and dout's v part unchanged. dinp must not overlap dout.
   */
  ropeBackward(dinp: Ptr, dout: Ptr, table: Ptr, B: number, T: number, C: number, NH: number): void;
  /**
   * RoPE on the first `heads` heads of every row: inp, out (B,T,·) rows of `stride` elements;
   * heads of `hs` (even) at the start of each row rotate as in `ropeForward`, the rest of the row
   * (`stride - heads·hs` elements) is copied. A separate q or k tensor (B,T,H·hs) is stride H·hs,
   * heads H; `ropeForward` is stride 3C, heads 2·NH. Out of place, or in place with `out = inp`.
   */
  ropeHeadsForward(out: Ptr, inp: Ptr, table: Ptr, B: number, T: number, stride: number, heads: number, hs: number): void;
  /** Accumulates into dinp: the inverse rotation of dout's rotated heads, the rest unchanged. dinp must not overlap dout. */
  ropeHeadsBackward(dinp: Ptr, dout: Ptr, table: Ptr, B: number, T: number, stride: number, heads: number, hs: number): void;

  // ---- QAT: quantisation-aware training (src/qat/README.md; kernels assembly/qat.ts) ----------
  //
  // `blend` carries progressive quantisation and quantisation noise: element i (flat index in the
  // tensor) gets lambda_i = blend.lambda where the noise mask `hash(seed, i) >>> 8 < floor(p·2^24)`
  // is on (every element for p >= 1), 0 elsewhere. W (N,K) and its `scales` / `group` as above.

  /** `out (n) = a + λ_i (b − a)` elementwise; λ_i = 0 copies a and λ_i = 1 copies b exactly. */
  qatLerp(out: Ptr, a: Ptr, b: Ptr, n: number, blend: QatBlend): void;
  /**
   * Weight STE with progressive blend: `dw (N,K) += dwq · ((1 − λ_i) + λ_i·g(u))`, `u = f32(w·s)`;
   * g = 1 (`'identity'`), `[|u| ≤ 1]` (`'clipped'`), or `[|u| ≤ 1]·s'_T(u)` (`'soft'`: the slope of
   * tanh soft rounding at temperature T, see src/qat/README.md).
   */
  qatSteWeights(dw: Ptr, dwq: Ptr, w: Ptr, scales: Ptr, N: number, K: number, group: number, surrogate: QatSurrogate, temperature: number, blend: QatBlend): void;
  /**
   * LSQ step sizes to multipliers, per group (count of them): `sw = 1/max(step, 1e-5)` where step > 0;
   * where step ≤ 0 (not initialised) `step = 1/absmean` and `sw = absmean` (absmeanScales' output).
   */
  qatLsqScales(sw: Ptr, step: Ptr, absmean: Ptr, count: number): void;
  /**
   * LSQ step-size gradient: `dstep[g] += gradScale · Σ_{i∈g} λ_i·dwq_i·∂Ŵ_i/∂Δ` with
   * `∂Ŵ/∂Δ = −1 (u ≤ −1), +1 (u ≥ 1), round(u) − u` otherwise; w, dwq (count), sw (count/group).
   */
  qatLsqStepGrad(dstep: Ptr, dwq: Ptr, w: Ptr, sw: Ptr, count: number, group: number, gradScale: number, blend: QatBlend): void;
  /**
   * Int8 activations with a static (calibrated) clip value: every row gets `sx = 127/max(clip[0], 1e-5)`
   * (per-row absmax when clip[0] ≤ 0: not calibrated), `xq = clamp(round(x·sx), −128, 127)`. Layouts as quantizeActivations.
   */
  qatQuantizeActivationsStatic(xq: Ptr, sx: Ptr, x: Ptr, clip: Ptr, M: number, K: number): void;
  /** `dst (M,dstCols)[:, dstCol0..+n) (+)= src (M,srcCols)[:, srcCol0..+n)` (a column block of a matrix). */
  qatCopyColumns(dst: Ptr, dstCols: number, dstCol0: number, src: Ptr, srcCols: number, srcCol0: number, M: number, n: number, accumulate: boolean): void;
  /**
   * Distillation loss per row: `losses[r] = α·CE(z_r, target_r) + (1−α)·T²·KL(softmax(t_r/T) ‖ softmax(z_r/T))`.
   * logits z, teacher t, probs, probsT, teacherT (N,V); targets (N) indices; probs = softmax(z),
   * probsT = softmax(z/T), teacherT = softmax(t/T) are saved for backward.
   */
  kdForward(losses: Ptr, probs: Ptr, probsT: Ptr, teacherT: Ptr, logits: Ptr, teacher: Ptr, targets: Ptr, N: number, V: number, temperature: number, alpha: number): void;
  /** `dlogits += dlosses[r] · (α(probs − onehot) + (1−α)·T·(probsT − teacherT))`. */
  kdBackward(dlogits: Ptr, probs: Ptr, probsT: Ptr, teacherT: Ptr, targets: Ptr, dlosses: Ptr, N: number, V: number, temperature: number, alpha: number): void;
  /** Distance to the ternary grid per row: `rowsum (N) = Σ_k (u − q(u))²`, `u = f32(w·s)`, `q = clamp(round(u), −1, 1)`. */
  qatGridPenalty(rowsum: Ptr, w: Ptr, scales: Ptr, N: number, K: number, group: number): void;
  /** `dw (N,K) += dout[0]·coef·(u − q(u))·s` (s and q(u) held constant). */
  qatGridPenaltyBackward(dw: Ptr, w: Ptr, scales: Ptr, dout: Ptr, coef: number, N: number, K: number, group: number): void;
  /** Latent-weight clamp in place: `w = clamp(w, −bound/s, bound/s)` per scale group. */
  qatClampWeights(w: Ptr, scales: Ptr, N: number, K: number, group: number, bound: number): void;

  // ---- QLoRA: NF4 weights dequantised inside the matmul (src/peft/nf4.ts; kernels assembly/nf4.ts) ----

  /** Elements of per-thread scratch `nf4Forward` (`'forward'`) or `nf4BackwardDx` needs for W (N,K), for every thread (0: none). */
  nf4ScratchSlots(kernel: 'forward' | 'backwardDx', N: number, K: number): number;
  /** out (M,N) = x (M,K) · deq(W)ᵀ for NF4 weights W (N,K), K % 64 == 0 (layout: src/peft/nf4.ts). Overwrites out. */
  nf4Forward(out: Ptr, x: Ptr, w: Nf4Weight, scratch: Ptr, M: number, N: number, K: number): void;
  /** dx (M,K) += dy (M,N) · deq(W). */
  nf4BackwardDx(dx: Ptr, dy: Ptr, w: Nf4Weight, scratch: Ptr, M: number, N: number, K: number): void;
}

/**
 * NF4 weights in backend memory (src/peft/nf4.ts): `codes` (N·K/2 bytes, two a byte, high nibble
 * first), `absmaxCodes` (N·K/64 bytes), `absmaxScales` (ceil(N·K/16384) f32), `table` (256 f32,
 * the 8-bit dynamic map) and the absmax `offset`: w = NF4[code]·(table[q]·absmaxScales[b/256] + offset).
 */
export interface Nf4Weight {
  codes: Ptr;
  absmaxCodes: Ptr;
  absmaxScales: Ptr;
  table: Ptr;
  offset: number;
}

/** Progressive quantisation and noise of a QAT kernel: λ, the noise fraction p (1: no noise) and its seed (u32). */
export interface QatBlend {
  lambda: number;
  p: number;
  seed: number;
}

/** The gradient surrogate of a weight quantiser (see `Backend.qatSteWeights`). */
export type QatSurrogate = 'identity' | 'clipped' | 'soft';

/** Thrown by a backend for an argument it cannot honour (out of memory, bad pointer). */
export class BackendError extends Error {
  override name = 'BackendError';
}
