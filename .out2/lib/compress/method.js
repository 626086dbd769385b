// The interface every compression method implements. A method declares what it needs (statistics of its
// linears' calibration inputs) and its scope (one linear at a time, or a structural group of linears);
// the pipeline gathers exactly that, hands the method its weights, and knows nothing about its math.
// A method returns compressed linears: the dense f32 weight the next block runs on, plus whatever the
// writers need to store it compactly (mask, integer codes and their grid, kept rows/columns).
import { InvalidArgumentError } from '../errors.js';
/** Whether a method needs calibration data at all. */
export function needsCalibration(method) {
    return Boolean(method.needs.hessian || method.needs.inputSquares || method.needs.gradients || method.needs.trainingText);
}
/** What a method needs with these options. */
export function needsWith(method, options) {
    return method.needsFor?.(options) ?? method.needs;
}
/** Rejects option keys a method does not know, naming the recipe field. */
export function rejectUnknownOptions(raw, known, where, method) {
    for (const key of Object.keys(raw)) {
        if (!known.includes(key)) {
            throw new InvalidArgumentError(`${where}: ${method} has no option '${key}'${known.length ? ` (options: ${known.join(', ')})` : ' (it takes none)'}`);
        }
    }
}
/** The statistics a method was promised, or an error naming the linear (a pipeline bug or a misuse of the API). */
export function requireStatistic(request, method, statistic) {
    const value = request.stats?.[statistic];
    if (!value)
        throw new InvalidArgumentError(`${request.name}: ${method} needs calibration data (${statistic === 'hessian' ? 'the input Hessian' : 'the input norms'})`);
    return value;
}
//# sourceMappingURL=method.js.map