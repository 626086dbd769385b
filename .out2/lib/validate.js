// Argument checks for public functions. Each error names the parameter, what was expected and what was
// received.
import { InvalidArgumentError } from './errors.js';
export function describe(value) {
    if (value === null)
        return 'null';
    if (Array.isArray(value))
        return `array of length ${value.length}`;
    if (ArrayBuffer.isView(value))
        return value.constructor.name;
    if (typeof value === 'object')
        return value.constructor?.name ?? 'object';
    if (typeof value === 'string')
        return JSON.stringify(value);
    return `${typeof value} ${String(value)}`;
}
export function invalid(param, expected, received) {
    throw new InvalidArgumentError(`${param}: expected ${expected}, received ${describe(received)}`);
}
export function checkInteger(param, value, min = -Infinity, max = Infinity) {
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
        const range = max === Infinity ? `>= ${min}` : `in ${min}..${max}`;
        invalid(param, `an integer ${range}`, value);
    }
    return value;
}
export function checkNumber(param, value, options = {}) {
    const { min = -Infinity, finite = true } = options;
    if (typeof value !== 'number' || Number.isNaN(value) || (finite && !Number.isFinite(value)) || value < min) {
        invalid(param, `a ${finite ? 'finite ' : ''}number${min > -Infinity ? ` >= ${min}` : ''}`, value);
    }
    return value;
}
export function checkBoolean(param, value) {
    if (typeof value !== 'boolean')
        invalid(param, 'a boolean', value);
    return value;
}
export function checkOneOf(param, value, allowed) {
    if (typeof value !== 'string' || !allowed.includes(value))
        invalid(param, `one of ${allowed.join(', ')}`, value);
    return value;
}
//# sourceMappingURL=validate.js.map