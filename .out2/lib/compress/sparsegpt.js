// SparseGPT (Frantar & Alistarh, 2023): minimize ‖WX − ŴX‖² under the mask, one layer at a time, by
// pruning columns left to right and moving each pruned weight's error onto the columns not yet visited
// (the optimal brain surgeon update, through the inverse Hessian's Cholesky factor).
//   H             dead inputs fixed, damped by damp·mean(diag H), ladder if needed (hessian.ts)
//   U             upper Cholesky factor of (H + λI)⁻¹
//   per column j  e = (w_j − q_j)/U_jj;  W[:, j+1:] −= e·U[j, j+1:]   (lazily, in blocks of B columns)
//   mask          unstructured: per block, the lowest w²/U_jj² over all rows × B columns (adaptive);
//                 N:M: the M − N lowest w²/U_jj² of each group of M inputs in a row
// With a quantization scheme, q_j is also rounded to the grid: pruning and quantization in one sweep,
// as the paper's joint 2:4 + INT4 (option joint: false leaves quantizing to the pipeline's RTN afterwards).
// The sweep is native (column-sweep.ts, ops.columnSweep).
import { InvalidArgumentError } from '../errors.js';
import { checkBoolean, checkInteger, checkNumber, checkOneOf } from '../validate.js';
import { sweepColumns } from './column-sweep.js';
import { rejectUnknownOptions, requireStatistic } from './method.js';
export const sparsegpt = {
    name: 'sparsegpt',
    summary: 'prune column by column, updating the remaining weights through the inverse Hessian (optionally quantizing in the same sweep)',
    needs: { hessian: true },
    scope: 'linear',
    prunes: true,
    requiresSparsity: true,
    quantizes: (options) => options.joint,
    fallback: 'magnitude',
    parseOptions(raw, where) {
        rejectUnknownOptions(raw, ['damp', 'blockSize', 'joint', 'grids'], where, 'sparsegpt');
        return {
            damp: checkNumber(`${where}.damp`, raw.damp ?? 0.01, { min: 0 }),
            blockSize: checkInteger(`${where}.blockSize`, raw.blockSize ?? 128, 1, 65536),
            joint: checkBoolean(`${where}.joint`, raw.joint ?? true),
            grids: checkOneOf(`${where}.grids`, raw.grids ?? 'refit', ['static', 'refit']),
        };
    },
    async compress(request) {
        const { name, weight, pattern, quantization, storageDType, options, signal } = request;
        if (!pattern)
            throw new InvalidArgumentError(`${name}: sparsegpt needs a sparsity`);
        return sweepColumns({
            name,
            weight,
            hessian: requireStatistic(request, 'sparsegpt', 'hessian'),
            damp: options.damp,
            blockSize: options.blockSize,
            pattern,
            quantization: quantization && options.joint ? { scheme: quantization, storageDType: storageDType ?? 'f32', grids: options.grids } : undefined,
            signal,
        });
    },
};
//# sourceMappingURL=sparsegpt.js.map