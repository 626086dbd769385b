// SparseGPT (Frantar & Alistarh, 2023): minimize ‖WX − ŴX‖² under the mask, one layer at a time, by
// pruning columns left to right and moving each pruned weight's error onto the columns not yet visited
// (the optimal brain surgeon update, through the inverse Hessian's Cholesky factor).
//   dead inputs     H_jj = 0  →  H_jj = 1, W[:, j] = 0
//   damping         H + λI, λ = damp·mean(diag H) (raised ×10 while H is not positive definite)
//   U               upper Cholesky factor of (H + λI)⁻¹
//   per column j    e = (w_j − q_j)/U_jj;  W[:, j+1:] −= e·U[j, j+1:]   (lazily, in blocks of B columns)
//   mask            unstructured: per block, the lowest w²/U_jj² over all rows × B columns (adaptive);
//                   N:M: the M − N lowest w²/U_jj² of each group of M inputs in a row
// The column sweep is native (sparsegptSweep); this file prepares H and reports the damping.
import { InvalidArgumentError } from '../errors.js';
import { choleskyAsync, choleskyInverseAsync, sparsegptSweepAsync } from '../ops.js';
import { checkInteger, checkNumber } from '../validate.js';
import { rejectUnknownOptions, type CompressionMethod } from './method.js';

export interface SparsegptOptions {
  /** λ relative to mean(diag H) (default 0.01). */
  damp: number;
  /** Columns per lazy-update block (default 128). */
  blockSize: number;
}

export const sparsegpt: CompressionMethod<SparsegptOptions> = {
  name: 'sparsegpt',
  summary: 'prune column by column, updating the remaining weights through the inverse Hessian',
  needsCalibration: true,
  parseOptions(raw, where) {
    rejectUnknownOptions(raw, ['damp', 'blockSize'], where, 'sparsegpt');
    return {
      damp: checkNumber(`${where}.damp`, raw.damp ?? 0.01, { min: 0 }),
      blockSize: checkInteger(`${where}.blockSize`, raw.blockSize ?? 128, 1, 65536),
    };
  },
  async compress({ name, weight, pattern, stats, options, signal }) {
    if (!stats) throw new InvalidArgumentError(`${name}: sparsegpt needs calibration data`);
    const [rows, inputs] = weight.shape;
    const hessian = stats.hessian.clone();
    const h = hessian.data as Float32Array;
    const w = weight.data as Float32Array;
    let deadInputs = 0;
    for (let j = 0; j < inputs; ++j) {
      if (h[j * inputs + j] !== 0) continue;
      deadInputs += 1;
      h[j * inputs + j] = 1;
      for (let r = 0; r < rows; ++r) w[r * inputs + j] = 0;
    }
    const { inverse, damping } = await choleskyInverseAsync(hessian, { damp: options.damp, signal });
    const { factor } = await choleskyAsync(inverse, { upper: true, signal });
    await sparsegptSweepAsync(weight, factor, { pattern, blockSize: options.blockSize, signal });
    return {
      weight,
      details: { damping: damping.relative, dampingAbsolute: damping.absolute, dampingAttempts: damping.attempts, deadInputs },
    };
  },
};
