// Magnitude pruning: keep the largest |W|.
//   unstructured  zero the round(p·out·in) smallest |W_ij| of the whole matrix
//   N:M           in every M consecutive inputs of a row, keep the N largest |W_ij|
// No calibration, no weight update. Ties go to the lower index (kept first).
import { abs, applyMaskAsync, nmMaskAsync, topkMaskAsync } from '../ops.js';
import { rejectUnknownOptions, type CompressionMethod } from './method.js';

export const magnitude: CompressionMethod<Record<string, never>> = {
  name: 'magnitude',
  summary: 'keep the largest |W| (per matrix, or N of every M inputs)',
  needsCalibration: false,
  parseOptions(raw, where) {
    rejectUnknownOptions(raw, [], where, 'magnitude');
    return {};
  },
  async compress({ weight, pattern, signal }) {
    const scores = abs(weight);
    let keep;
    if (pattern.kind === 'nm') {
      keep = await nmMaskAsync(scores, pattern.n, pattern.m, { largest: true, signal });
    } else {
      const count = weight.numel - Math.round(pattern.sparsity * weight.numel);
      keep = (await topkMaskAsync(scores.reshape([1, -1]), count, { largest: true, signal })).reshape(weight.shape);
    }
    return { weight: await applyMaskAsync(weight, keep, { inPlace: true, signal }) };
  },
};
