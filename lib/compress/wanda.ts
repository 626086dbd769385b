// Wanda (Sun et al., 2024): prune by |W_ij|·‖X_j‖₂, the weight times its input's norm over the
// calibration tokens, compared within each output row.
//   unstructured  in every row, zero the round(p·in) lowest scores
//   N:M           in every M consecutive inputs of a row, keep the N highest scores
// No weight update. ‖X_j‖₂ = √(T·H_jj/2); the constant factor does not change a row's ranking, so √H_jj is used.
import { InvalidArgumentError } from '../errors.js';
import { abs, applyMaskAsync, nmMaskAsync, scaleColumns, topkMaskAsync } from '../ops.js';
import { Tensor } from '../tensor.js';
import { rejectUnknownOptions, type CompressionMethod } from './method.js';

export const wanda: CompressionMethod<Record<string, never>> = {
  name: 'wanda',
  summary: 'prune by |W|·‖X‖ within each output row (no weight update)',
  needsCalibration: true,
  parseOptions(raw, where) {
    rejectUnknownOptions(raw, [], where, 'wanda');
    return {};
  },
  async compress({ name, weight, pattern, stats, signal }) {
    if (!stats) throw new InvalidArgumentError(`${name}: wanda needs calibration data`);
    const inputs = weight.shape[1];
    const h = stats.hessian.data as Float32Array;
    const inputNorms = new Float32Array(inputs);
    for (let j = 0; j < inputs; ++j) inputNorms[j] = Math.sqrt(Math.max(0, h[j * inputs + j]));
    const scores = scaleColumns(abs(weight), Tensor.fromTypedArray(inputNorms), { inPlace: true });
    const keep =
      pattern.kind === 'nm'
        ? await nmMaskAsync(scores, pattern.n, pattern.m, { largest: true, signal })
        : await topkMaskAsync(scores, inputs - Math.round(pattern.sparsity * inputs), { largest: true, signal });
    return { weight: await applyMaskAsync(weight, keep, { inPlace: true, signal }) };
  },
};
