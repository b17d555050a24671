/**
 * Normalisation layers: `LayerNorm` and `RMSNorm` (weight init 1, bias init 0, no weight decay).
 */
import { layerNorm, rmsNorm } from '../autograd/ops/norm.js';
import type { ParameterSet } from '../tensor/parameters.js';
import type { Tensor } from '../tensor/tensor.js';

/** A normalisation over the last dim with learned parameters. */
export interface NormLayer {
  forward(x: Tensor): Tensor;
}

/** LayerNorm with a learned scale and (optionally) a learned bias; parameters `${name}.weight`, `${name}.bias`. */
export class LayerNorm implements NormLayer {
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  readonly eps: number;

  constructor(params: ParameterSet, name: string, dim: number, options: { bias?: boolean; eps?: number } = {}) {
    this.eps = options.eps ?? 1e-5;
    this.weight = params.register(`${name}.weight`, [dim], { init: { kind: 'ones' }, decay: false });
    this.bias = options.bias ? params.register(`${name}.bias`, [dim], { init: { kind: 'zeros' }, decay: false }) : null;
  }

  forward(x: Tensor): Tensor {
    return layerNorm(x, this.weight, this.bias, this.eps);
  }
}

/** RMSNorm with a learned scale (`${name}.weight`), or none when `affine: false`. */
export class RMSNorm implements NormLayer {
  readonly weight: Tensor | null;
  readonly eps: number;

  constructor(params: ParameterSet, name: string, dim: number, options: { affine?: boolean; eps?: number } = {}) {
    this.eps = options.eps ?? 1e-5;
    this.weight = options.affine === false ? null : params.register(`${name}.weight`, [dim], { init: { kind: 'ones' }, decay: false });
  }

  forward(x: Tensor): Tensor {
    return rmsNorm(x, this.weight, this.eps);
  }
}
