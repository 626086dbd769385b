// Round to nearest: each group's scale and zero point from its weights' range, q = round(w/s + z), no
// calibration and no error feedback (quantizer.ts). The baseline GPTQ is measured against.
import { InvalidArgumentError } from '../errors.js';
import { rejectUnknownOptions } from './method.js';
import { roundToNearest } from './quantizer.js';
export const rtn = {
    name: 'rtn',
    summary: 'round every weight to the nearest point of its group\'s grid (no calibration)',
    needs: {},
    scope: 'linear',
    prunes: false,
    requiresSparsity: false,
    quantizes: () => true,
    parseOptions(raw, where) {
        rejectUnknownOptions(raw, [], where, 'rtn');
        return {};
    },
    async compress({ name, weight, quantization, storageDType, signal }) {
        if (!quantization)
            throw new InvalidArgumentError(`${name}: rtn needs a quantization scheme`);
        return roundToNearest(weight, quantization, storageDType ?? 'f32', signal);
    },
};
//# sourceMappingURL=rtn.js.map