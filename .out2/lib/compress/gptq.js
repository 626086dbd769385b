// GPTQ (Frantar, Ashkboos, Hoefler & Alistarh, 2022): minimize ‖WX − ŴX‖² with Ŵ on a quantization grid,
// column by column, moving each column's rounding error onto the columns not yet visited through the
// inverse Hessian's Cholesky factor — SparseGPT's sweep with "round to the grid" as the column policy.
//   H             dead inputs fixed, damped by damp·mean(diag H), ladder if needed (hessian.ts)
//   order         natural, or activation order (descending diag H): 'static' keeps groups of consecutive
//                 inputs, 'group' forms them in the sweep's order (compressed-tensors' weight_g_idx)
//   grids         'static' (default): each group's scale and zero point fitted from the original weights
//                 before the sweep (llm-compressor); 'refit': fitted when the sweep reaches the group (the
//                 IST-DASLab reference)
//   per column j  q_j = (round(w_j/s + z) − z)·s;  e = (w_j − q_j)/U_jj;  W[:, j+1:] −= e·U[j, j+1:]
// With a sparsity as well, the same sweep prunes and quantizes (equal to sparsegpt with a scheme).
import { InvalidArgumentError } from '../errors.js';
import { checkInteger, checkNumber, checkOneOf } from '../validate.js';
import { sweepColumns } from './column-sweep.js';
import { rejectUnknownOptions, requireStatistic } from './method.js';
export const gptq = {
    name: 'gptq',
    summary: 'quantize column by column, moving the rounding error onto later columns through the inverse Hessian',
    needs: { hessian: true },
    scope: 'linear',
    prunes: true,
    requiresSparsity: false,
    quantizes: () => true,
    fallback: 'rtn',
    parseOptions(raw, where) {
        rejectUnknownOptions(raw, ['damp', 'blockSize', 'grids'], where, 'gptq');
        return {
            damp: checkNumber(`${where}.damp`, raw.damp ?? 0.01, { min: 0 }),
            blockSize: checkInteger(`${where}.blockSize`, raw.blockSize ?? 128, 1, 65536),
            grids: checkOneOf(`${where}.grids`, raw.grids ?? 'static', ['static', 'refit']),
        };
    },
    async compress(request) {
        const { name, weight, pattern, quantization, storageDType, options, signal } = request;
        if (!quantization)
            throw new InvalidArgumentError(`${name}: gptq needs a quantization scheme`);
        return sweepColumns({
            name,
            weight,
            hessian: requireStatistic(request, 'gptq', 'hessian'),
            damp: options.damp,
            blockSize: options.blockSize,
            pattern,
            quantization: { scheme: quantization, storageDType: storageDType ?? 'f32', grids: options.grids },
            signal,
        });
    },
};
//# sourceMappingURL=gptq.js.map