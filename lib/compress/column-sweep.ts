// The optimal-brain-surgeon column sweep as SparseGPT and GPTQ run it, around the one native loop
// (ops.columnSweep): prepare H (hessian.ts), choose the column order and the groups' grids, sweep, and
// put the columns back in input order.
//   order    natural, or activation order: columns by descending diag H (GPTQ's act_order)
//   grids    'static': every group's scale and zero point fitted before the sweep from the original
//            weights (llm-compressor, what compressed-tensors checkpoints come from); 'refit': fitted when
//            the sweep reaches the group, from the weights as updated so far (the GPTQ reference)
//   groups   consecutive inputs; with activation order 'group', consecutive in the sweep's order
import { InvalidArgumentError } from '../errors.js';
import { columnSweepAsync } from '../tensor/ops.js';
import { quantizeRtnAsync } from '../tensor/quant.js';
import { Tensor } from '../tensor/tensor.js';
import { fixDeadInputs, hessianDetails, inverseFactor } from './hessian.js';
import type { CompressedLinear } from './method.js';
import type { SparsityPattern } from './pattern.js';
import { gridOf, groupColumns, type QuantizationScheme } from './quantizer.js';

export type GridFit = 'static' | 'refit';

export interface SweepRequest {
  name: string;
  /** f32 [out, in], owned (overwritten). */
  weight: Tensor;
  hessian: Tensor;
  damp: number;
  blockSize: number;
  pattern?: SparsityPattern;
  quantization?: { scheme: QuantizationScheme; storageDType: string; grids: GridFit };
  /** u8 [out, in]: weights kept exactly (outliers stored apart): no error moves on, left out of the grids. */
  keep?: Tensor;
  signal?: AbortSignal;
}

const breathe = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Columns by descending diagonal (ties to the lower index): the activation order. */
function activationOrder(hessian: Tensor): Int32Array {
  const n = hessian.shape[0];
  const h = hessian.data as Float32Array;
  return Int32Array.from({ length: n }, (_, j) => j).sort((a, b) => h[b * n + b] - h[a * n + a] || a - b);
}

/**
 * Columns of a [rows, cols] matrix put in `order` (out[:, j] = x[:, order[j]]) or back from it
 * (out[:, order[j]] = x[:, j]); rows in chunks, yielding to the event loop.
 */
async function permuteColumns(x: Tensor, order: Int32Array, direction: 'gather' | 'scatter'): Promise<Tensor> {
  const [rows, cols] = x.shape;
  const out = Tensor.zeros([rows, cols], x.dtype);
  const src = x.data as Float32Array | Int8Array | Uint8Array;
  const dst = out.data as Float32Array | Int8Array | Uint8Array;
  for (let r = 0; r < rows; ++r) {
    const base = r * cols;
    if (direction === 'gather') for (let j = 0; j < cols; ++j) dst[base + j] = src[base + order[j]];
    else for (let j = 0; j < cols; ++j) dst[base + order[j]] = src[base + j];
    if (r % 256 === 255) await breathe();
  }
  return out;
}

/** H[order][:, order] of a square matrix (rows in chunks, yielding to the event loop). */
async function permuteSymmetric(h: Tensor, order: Int32Array): Promise<Tensor> {
  const n = h.shape[0];
  const rows = await permuteColumns(h, order, 'gather');
  const out = Tensor.zeros([n, n]);
  const src = rows.data as Float32Array;
  const dst = out.data as Float32Array;
  for (let i = 0; i < n; ++i) {
    dst.set(src.subarray(order[i] * n, order[i] * n + n), i * n);
    if (i % 256 === 255) await breathe();
  }
  return out;
}

export async function sweepColumns(request: SweepRequest): Promise<CompressedLinear> {
  const { weight, pattern, quantization: q, signal } = request;
  const [, inputs] = weight.shape;
  const scheme = q?.scheme;
  if (scheme?.actOrder && pattern?.kind === 'nm') {
    throw new InvalidArgumentError(`${request.name}: activation order permutes the inputs, so ${pattern.n}:${pattern.m} groups would not be consecutive; drop actOrder or use unstructured sparsity`);
  }
  if (q?.grids === 'refit' && scheme?.actOrder === 'static') {
    throw new InvalidArgumentError(`${request.name}: refitting grids during the sweep needs groups that are consecutive in the sweep's order; use actOrder 'group', or grids 'static'`);
  }
  const order = scheme?.actOrder ? activationOrder(request.hessian) : undefined;
  const grid = q ? gridOf(q.scheme, inputs, q.storageDType) : undefined;
  const columns = scheme ? groupColumns(scheme, inputs) : inputs;

  // Static grids come from the original weights, before dead inputs are zeroed (as llm-compressor does);
  // with activation order 'group', from the weights in the sweep's order.
  let scales: Tensor | undefined;
  let zeros: Tensor | undefined;
  if (q && grid && q.grids === 'static') {
    let source = scheme!.actOrder === 'group' ? await permuteColumns(weight, order!, 'gather') : weight;
    if (request.keep) {
      // A grid's range always includes 0, so zeroing the kept weights leaves them out of the fit.
      const keepOrdered = scheme!.actOrder === 'group' ? await permuteColumns(request.keep, order!, 'gather') : request.keep;
      source = await source.cloneAsync({ signal });
      const s = source.data as Float32Array;
      const k = keepOrdered.data as Uint8Array;
      for (let i = 0; i < k.length; ++i) if (k[i]) s[i] = 0;
    }
    const rounded = await quantizeRtnAsync(source, grid, { signal });
    scales = rounded.scales;
    zeros = scheme!.symmetric ? undefined : rounded.zeros;
  }
  const { hessian: fixed, deadInputs } = await fixDeadInputs(request.hessian, weight, signal);
  const sweepWeight = order ? await permuteColumns(weight, order, 'gather') : weight;
  const hessian = order ? await permuteSymmetric(fixed, order) : fixed;
  const { factor, report } = await inverseFactor(hessian, request.damp, deadInputs, signal);
  // With activation order 'static' the groups stay consecutive inputs: the swept column j belongs to the
  // group of input order[j].
  const groupOf = order && scheme?.actOrder === 'static' ? Tensor.fromTypedArray(Int32Array.from(order, (c) => Math.floor(c / columns))) : undefined;
  const result = await columnSweepAsync(sweepWeight, factor, {
    pattern,
    blockSize: request.blockSize,
    quantization: grid ? { grid, scales, zeros, groupOf } : undefined,
    ...(request.keep ? { keep: order ? await permuteColumns(request.keep, order, 'gather') : request.keep } : {}),
    signal,
  });
  const details = hessianDetails(report);
  const swept = order ? await permuteColumns(result.weight, order, 'scatter') : result.weight;
  if (!q || !result.codes || !result.scales) return { weight: swept, details };
  const codes = order ? await permuteColumns(result.codes, order, 'scatter') : result.codes;
  // With activation order 'group', input c belongs to the group of its position in the sweep.
  let groupIndex: Tensor | undefined;
  if (order && scheme!.actOrder === 'group') {
    const index = new Int32Array(inputs);
    order.forEach((c, j) => (index[c] = Math.floor(j / columns)));
    groupIndex = Tensor.fromTypedArray(index);
  }
  return {
    weight: swept,
    quantized: { scheme: q.scheme, codes, scales: result.scales, ...(result.zeros ? { zeros: result.zeros } : {}), ...(groupIndex ? { groupIndex } : {}) },
    details,
  };
}
