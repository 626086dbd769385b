// Magnitude pruning: keep the largest |W|.
//   unstructured  zero the round(p·out·in) smallest |W_ij| of the whole matrix
//   N:M           in every M consecutive inputs of a row, keep the N largest |W_ij|
// No calibration, no weight update. Ties go to the lower index (kept first).
import { InvalidArgumentError } from '../errors.js';
import { applyMaskAsync, nmMaskAsync, topkMaskAsync, unaryAsync } from '../tensor/ops.js';
import { rejectUnknownOptions } from './method.js';
import { keptCount } from './pattern.js';
export const magnitude = {
    name: 'magnitude',
    summary: 'keep the largest |W| (per matrix, or N of every M inputs)',
    needs: {},
    scope: 'linear',
    prunes: true,
    requiresSparsity: true,
    quantizes: () => false,
    parseOptions(raw, where) {
        rejectUnknownOptions(raw, [], where, 'magnitude');
        return {};
    },
    async compress({ name, weight, pattern, signal }) {
        if (!pattern)
            throw new InvalidArgumentError(`${name}: magnitude needs a sparsity`);
        const scores = await unaryAsync('abs', weight, { signal });
        const keep = pattern.kind === 'nm'
            ? await nmMaskAsync(scores, pattern.n, pattern.m, { largest: true, signal })
            : (await topkMaskAsync(scores.reshape([1, -1]), keptCount(pattern, weight.numel), { largest: true, signal })).reshape(weight.shape);
        return { weight: await applyMaskAsync(weight, keep, { inPlace: true, signal }), mask: keep };
    },
};
//# sourceMappingURL=magnitude.js.map