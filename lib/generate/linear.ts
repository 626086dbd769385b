// The linear layers of the generating decoder. Every projection (q, k, v, o, gate/up/down, OPT's
// fc1/fc2, the router, each expert's, lm_head) is a LinearWeight: whatever its storage, it maps x [T, in]
// to y = x·Wᵀ + b [T, out]. Today there is one implementation, dense f32 weights through gemm; packed
// formats (INT4 codes, 2:4, block-sparse) are meant to be further implementations of the same interface,
// chosen in `loadLinear` from how the checkpoint stores the layer.
import { dotAsync, gemm, gemmAsync } from '../tensor/ops.js';
import { INLINE_MULTIPLY_ADDS } from './inline.js';
import { addBias } from '../tensor/nn.js';
import { CtCheckpoint, decodeCtStoredLinear, type CtStoredLinear } from '../io/compressed-tensors.js';
import type { DecoderModel } from '../models/decoder.js';
import { NonFiniteError, ShapeMismatchError } from '../errors.js';
import type { Tensor } from '../tensor/tensor.js';

/** A linear layer y = x·Wᵀ (+ b), however its weight is stored. */
export interface LinearWeight {
  readonly inFeatures: number;
  readonly outFeatures: number;
  /** How the weight is held (reported by `sparq generate`), e.g. 'dense-f32'. */
  readonly format: string;
  /**
   * Writes x·Wᵀ + b into `out`. x is f32 [T, inFeatures], contiguous; out is f32 [T, outFeatures],
   * contiguous and zero-filled; neither is kept after the promise settles. Long work must not block the
   * event loop (run it on the native async ops) and should stop early when `signal` aborts.
   */
  forward(x: Tensor, out: Tensor, signal?: AbortSignal): Promise<void>;
}

/** A dense f32 weight [out, in] (and bias [out]), applied with gemm (transB: W is stored row per output). */
export class DenseLinear implements LinearWeight {
  readonly inFeatures: number;
  readonly outFeatures: number;

  constructor(
    readonly weight: Tensor,
    readonly bias?: Tensor,
    /** What the checkpoint stored, when it was decoded into this dense weight. */
    readonly format: string = 'dense-f32',
  ) {
    [this.outFeatures, this.inFeatures] = weight.shape;
    if (weight.dtype !== 'f32' || weight.ndim !== 2) throw new ShapeMismatchError(`a dense linear weight must be f32 [out, in], received ${weight.dtype} [${weight.shape.join(', ')}]`);
    if (bias && (bias.ndim !== 1 || bias.shape[0] !== this.outFeatures)) throw new ShapeMismatchError(`a linear bias must be [${this.outFeatures}], received [${bias.shape.join(', ')}]`);
  }

  async forward(x: Tensor, out: Tensor, signal?: AbortSignal): Promise<void> {
    if (x.shape[0] * this.inFeatures * this.outFeatures <= INLINE_MULTIPLY_ADDS) gemm(x, this.weight, { transB: true, out });
    else await gemmAsync(x, this.weight, { transB: true, out, signal });
    if (this.bias) addBias(out, this.bias);
  }
}

/** How a checkpoint stores one linear layer, as read from the model folder (nothing decoded yet). */
export type StoredLinear =
  | { format: 'dense'; name: string; weight: Tensor; bias?: Tensor }
  | { format: 'pack-quantized'; name: string; quantized: CtStoredLinear; bias?: Tensor };

/**
 * The LinearWeight for a stored linear layer. This is the one place that decides how each storage format
 * runs: a new packed kernel adds a case here (or replaces the dequantizing one).
 */
export async function loadLinear(stored: StoredLinear, signal?: AbortSignal): Promise<LinearWeight> {
  switch (stored.format) {
    case 'dense':
      return new DenseLinear(stored.weight, stored.bias);
    case 'pack-quantized':
      return dequantizePackQuantizedToDense(stored.name, stored.quantized, stored.bias, signal);
  }
}

/**
 * A compressed-tensors pack-quantized linear decoded at load time into a dense f32 weight, exactly as
 * compressed-tensors decodes it — a stand-in until an INT4 kernel runs the packed codes directly.
 */
export async function dequantizePackQuantizedToDense(name: string, quantized: CtStoredLinear, bias: Tensor | undefined, signal?: AbortSignal): Promise<DenseLinear> {
  const weight = await decodeCtStoredLinear(quantized, signal);
  // Scales are the only floats stored; a NaN or infinite one poisons every output of the layer.
  if (!Number.isFinite(await dotAsync(weight, weight, { signal }))) {
    throw new NonFiniteError(`${name} decodes to NaN or infinite weights (in ${quantized.where}); the model cannot be run`);
  }
  return new DenseLinear(weight, bias, 'pack-quantized (decoded to dense-f32)');
}

/**
 * Reads one linear layer (module name `name`, e.g. model.layers.0.self_attn.q_proj) of an opened model as
 * the checkpoint stores it: a dense weight as f32 (NaN and infinities refused by name), or a compressed-
 * tensors pack-quantized layer's packed codes, scales and zero points; its bias, if any, as f32.
 */
export async function readStoredLinear(model: DecoderModel, name: string): Promise<StoredLinear> {
  const source = model.checkpoint;
  const bias = source.has(`${name}.bias`) ? await model.read(`${name}.bias`) : undefined;
  if (source instanceof CtCheckpoint && source.quantized.has(name)) return { format: 'pack-quantized', name, quantized: await source.readQuantized(name), bias };
  return { format: 'dense', name, weight: await model.read(`${name}.weight`), bias };
}
