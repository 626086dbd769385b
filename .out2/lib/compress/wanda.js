// Wanda (Sun et al., 2024): prune by |W_ij|·‖X_j‖₂, the weight times its input's norm over the
// calibration tokens, compared within each output row.
//   unstructured  in every row, zero the round(p·in) lowest scores
//   N:M           in every M consecutive inputs of a row, keep the N highest scores
// No weight update. Needs only ‖X_j‖² = Σ_t x_tj² (O(T·in) to gather, no Hessian).
import { InvalidArgumentError } from '../errors.js';
import { applyMaskAsync, nmMaskAsync, scaleColumnsAsync, topkMaskAsync, unaryAsync } from '../tensor/ops.js';
import { Tensor } from '../tensor/tensor.js';
import { rejectUnknownOptions, requireStatistic } from './method.js';
import { keptCount } from './pattern.js';
export const wanda = {
    name: 'wanda',
    summary: 'prune by |W|·‖X‖ within each output row (no weight update)',
    needs: { inputSquares: true },
    scope: 'linear',
    prunes: true,
    requiresSparsity: true,
    quantizes: () => false,
    fallback: 'magnitude',
    parseOptions(raw, where) {
        rejectUnknownOptions(raw, [], where, 'wanda');
        return {};
    },
    async compress(request) {
        const { name, weight, pattern, signal } = request;
        if (!pattern)
            throw new InvalidArgumentError(`${name}: wanda needs a sparsity`);
        const squares = requireStatistic(request, 'wanda', 'inputSquares').data;
        const inputs = weight.shape[1];
        const inputNorms = Float32Array.from(squares, (s) => Math.sqrt(Math.max(0, s)));
        const scores = await scaleColumnsAsync(await unaryAsync('abs', weight, { signal }), Tensor.fromTypedArray(inputNorms), { inPlace: true, signal });
        const keep = pattern.kind === 'nm'
            ? await nmMaskAsync(scores, pattern.n, pattern.m, { largest: true, signal })
            : await topkMaskAsync(scores, keptCount(pattern, inputs), { largest: true, signal });
        return { weight: await applyMaskAsync(weight, keep, { inPlace: true, signal }), mask: keep };
    },
};
//# sourceMappingURL=wanda.js.map