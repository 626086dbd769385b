// Sparsity patterns as users write them ("0.5", "50%", "2:4") and the fraction of zeros a matrix has.
import { InvalidArgumentError } from '../errors.js';
import { abs, thresholdMask, thresholdMaskAsync, unaryAsync } from '../tensor/ops.js';
/**
 * "0.5" or "50%" → unstructured; "N:M" → keep N of every M consecutive inputs of a row (2:4 keeps half).
 * Numbers are fractions of zeros. `where` names the option or recipe field in errors.
 */
export function parsePattern(value, where) {
    if (typeof value === 'number')
        return unstructured(value, where, String(value));
    if (typeof value !== 'string')
        throw new InvalidArgumentError(`${where}: expected a sparsity such as 0.5, "50%" or "2:4", got ${JSON.stringify(value)}`);
    const text = value.trim();
    const nm = /^(\d+):(\d+)$/.exec(text);
    if (nm) {
        const n = Number(nm[1]);
        const m = Number(nm[2]);
        if (!(m >= 2 && m <= 32 && n >= 1 && n < m)) {
            throw new InvalidArgumentError(`${where}: N:M sparsity keeps N of every M inputs and needs 1 <= N < M <= 32, got ${text}`);
        }
        return { kind: 'nm', n, m };
    }
    const percent = /^([0-9.]+)%$/.exec(text);
    if (percent)
        return unstructured(Number(percent[1]) / 100, where, text);
    if (/^[0-9.eE+-]+$/.test(text))
        return unstructured(Number(text), where, text);
    throw new InvalidArgumentError(`${where}: expected a sparsity such as 0.5, "50%" or "2:4", got "${text}"`);
}
function unstructured(sparsity, where, text) {
    if (!Number.isFinite(sparsity) || sparsity <= 0 || sparsity >= 1) {
        throw new InvalidArgumentError(`${where}: sparsity must be a fraction of zeros strictly between 0 and 1 (e.g. 0.5 or 50%), got ${text}`);
    }
    return { kind: 'unstructured', sparsity };
}
export function formatPattern(pattern) {
    return pattern.kind === 'nm' ? `${pattern.n}:${pattern.m}` : `${+(pattern.sparsity * 100).toFixed(4)}%`;
}
/** The fraction of zeros the pattern asks for. */
export function patternSparsity(pattern) {
    return pattern.kind === 'nm' ? 1 - pattern.n / pattern.m : pattern.sparsity;
}
/**
 * How many of `total` weights the pattern keeps: total − round(p·total) for a fraction p of zeros (the
 * rule every method uses, over a matrix or within a row), total·n/m for N:M.
 */
export function keptCount(pattern, total) {
    return pattern.kind === 'nm' ? (total / pattern.m) * pattern.n : total - Math.round(pattern.sparsity * total);
}
/** Throws if a [out, in] weight cannot take the pattern (N:M needs `in` to be a multiple of M). */
export function checkPatternFits(pattern, shape, name) {
    if (pattern.kind === 'nm' && shape[1] % pattern.m !== 0) {
        throw new InvalidArgumentError(`${name}: ${formatPattern(pattern)} groups inputs by ${pattern.m}, but its input size ${shape[1]} is not a multiple of ${pattern.m}; ignore this layer or pick another pattern`);
    }
}
/** Exact zeros in a tensor. */
export function countZeros(t) {
    const nonzero = thresholdMask(abs(t).reshape([1, -1]), 0).data;
    let kept = 0;
    for (let i = 0; i < nonzero.length; ++i)
        kept += nonzero[i];
    return t.numel - kept;
}
/** countZeros with the elementwise work on a worker thread and the count in chunks between event-loop turns. */
export async function countZerosAsync(t, signal) {
    const magnitudes = await unaryAsync('abs', t, { signal });
    const nonzero = (await thresholdMaskAsync(magnitudes.reshape([1, -1]), 0, { signal })).data;
    let kept = 0;
    for (let start = 0; start < nonzero.length; start += 1 << 22) {
        const end = Math.min(nonzero.length, start + (1 << 22));
        for (let i = start; i < end; ++i)
            kept += nonzero[i];
        if (end < nonzero.length)
            await new Promise((resolve) => setImmediate(resolve));
    }
    return t.numel - kept;
}
//# sourceMappingURL=pattern.js.map