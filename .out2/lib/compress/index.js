// The compression methods by name.
import { InvalidArgumentError } from '../errors.js';
import { activationAtoms } from './activation-atoms.js';
import { alps } from './alps.js';
import { elsa } from './elsa.js';
import { expertDrop } from './expert-drop.js';
import { heapr } from './heapr.js';
import { gptq } from './gptq.js';
import { gqsa } from './gqsa.js';
import { gwq } from './gwq.js';
import { hwpq } from './hwpq.js';
import { magnitude } from './magnitude.js';
import { rtn } from './rtn.js';
import { sparsegpt } from './sparsegpt.js';
import { wanda } from './wanda.js';
export const METHODS = { magnitude, wanda, sparsegpt, alps, elsa, rtn, gptq, gwq, hwpq, gqsa };
/** Methods that prune routed experts as one model-level decision (expert-pruning.ts). */
export const EXPERT_METHODS = { heapr, 'expert-drop': expertDrop, 'activation-atoms': activationAtoms };
export function getExpertMethod(name, where = 'method') {
    const method = Object.hasOwn(EXPERT_METHODS, name) ? EXPERT_METHODS[name] : undefined;
    if (!method)
        throw new InvalidArgumentError(`${where}: unknown expert-pruning method '${name}' (available: ${Object.keys(EXPERT_METHODS).join(', ')})`);
    return method;
}
export function getMethod(name, where = 'method') {
    const method = Object.hasOwn(METHODS, name) ? METHODS[name] : undefined;
    if (!method && Object.hasOwn(EXPERT_METHODS, name)) {
        throw new InvalidArgumentError(`${where}: ${name} prunes routed experts as one model-level decision, not layer by layer in a recipe; run it with sparq prune --method ${name} (or pruneExperts)`);
    }
    if (!method)
        throw new InvalidArgumentError(`${where}: unknown method '${name}' (available: ${Object.keys(METHODS).join(', ')})`);
    return method;
}
export { needsCalibration } from './method.js';
export { checkPatternFits, countZeros, formatPattern, keptCount, parsePattern, patternSparsity } from './pattern.js';
export { bitsPerWeight, describeScheme, parseQuantization, QUANTIZATION_BITS, roundToNearest } from './quantizer.js';
export { planExpertPruning } from './expert-pruning.js';
//# sourceMappingURL=index.js.map