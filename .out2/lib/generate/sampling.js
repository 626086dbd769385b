// Choosing the next token from its logits.
//   greedy (temperature 0):  argmax_i logits_i (the lowest index among ties)
//   temperature T > 0:       p_i = softmax(logits / T)_i, computed in float64
//   top-p (nucleus) P:       keep the most probable tokens, largest first, until their mass reaches P
//                            (at least one), renormalize, and draw from them
// A draw uses one uniform number from a seeded generator, so a seed fixes the whole generation.
import { seededRandom } from '../pipeline/calibration.js';
import { InvalidArgumentError } from '../errors.js';
/** Checks sampling options; every error names the option, what it must be and what it was. */
export function checkSamplingOptions(options) {
    const temperature = options.temperature ?? 0;
    const topP = options.topP ?? 1;
    if (typeof temperature !== 'number' || !Number.isFinite(temperature) || temperature < 0) {
        throw new InvalidArgumentError(`temperature: expected a finite number >= 0, received ${String(temperature)}`);
    }
    if (typeof topP !== 'number' || !(topP > 0 && topP <= 1))
        throw new InvalidArgumentError(`topP: expected a number in (0, 1], received ${String(topP)}`);
    return { temperature, topP };
}
/** Uniform numbers in [0, 1) from a 32-bit seed (the calibration sampler's generator). */
export function uniformRandom(seed) {
    const next = seededRandom(seed);
    return () => next(2 ** 32) / 2 ** 32;
}
/** Index of the largest logit (the first of equal ones). */
export function argmax(logits) {
    let best = 0;
    for (let i = 1; i < logits.length; ++i)
        if (logits[i] > logits[best])
            best = i;
    return best;
}
/** The next token from one row of logits; `random` is only called when sampling (temperature > 0). */
export function sampleToken(logits, options, random) {
    if (options.temperature === 0)
        return argmax(logits);
    const max = logits[argmax(logits)];
    const probabilities = new Float64Array(logits.length);
    let total = 0;
    for (let i = 0; i < logits.length; ++i) {
        probabilities[i] = Math.exp((logits[i] - max) / options.temperature);
        total += probabilities[i];
    }
    // Most probable first (ties by index) for the nucleus; without one, index order spares the sort.
    const order = Array.from(probabilities.keys());
    if (options.topP < 1)
        order.sort((a, b) => probabilities[b] - probabilities[a] || a - b);
    let kept = 0;
    let mass = 0;
    while (kept < order.length && (kept === 0 || mass < options.topP * total))
        mass += probabilities[order[kept++]];
    let target = random() * mass;
    for (let i = 0; i < kept; ++i) {
        target -= probabilities[order[i]];
        if (target < 0)
            return order[i];
    }
    return order[kept - 1];
}
//# sourceMappingURL=sampling.js.map