import { parameterPlan } from '../models/parameters.js';
import { seededRandom } from '../pipeline/calibration.js';
import { shapeNumel, Tensor } from '../tensor/tensor.js';
/** Initial values for a planned parameter: see the file comment. */
export function initialValue(tensor, options) {
    const values = new Float32Array(shapeNumel(tensor.shape));
    if (tensor.isNorm)
        values.fill(1);
    else if (tensor.shape.length === 2) {
        // Box–Muller from the seeded uniform stream.
        for (let i = 0; i < values.length; i += 2) {
            const radius = Math.sqrt(-2 * Math.log(1 - options.random())) * options.std;
            const angle = 2 * Math.PI * options.random();
            values[i] = radius * Math.cos(angle);
            if (i + 1 < values.length)
                values[i + 1] = radius * Math.sin(angle);
        }
    }
    return Tensor.fromTypedArray(values, tensor.shape);
}
/** Every parameter of a new model, by name, in checkpoint order. */
export function initialParameters(config, options = {}) {
    const integers = seededRandom(options.seed ?? 0);
    const random = () => integers(2 ** 32) / 2 ** 32;
    const parameters = new Map();
    for (const t of parameterPlan(config))
        parameters.set(t.name, initialValue(t, { std: options.std ?? 0.02, random }));
    return parameters;
}
//# sourceMappingURL=init.js.map