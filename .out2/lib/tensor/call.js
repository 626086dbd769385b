// The machinery every op module shares: a prepared native call, run synchronously or on a worker.
import { DeviceMismatchError } from '../errors.js';
import { callAsync, callSync } from './native.js';
import { formatShape, Tensor } from './tensor.js';
import { invalid } from '../validate.js';
export function runSync(call) {
    return call.result(callSync(call.device, call.name, call.args));
}
export async function runAsync(call, options = {}) {
    return call.result(await callAsync(call.device, call.name, call.args, options.signal));
}
export function checkTensor(param, value) {
    if (!(value instanceof Tensor))
        invalid(param, 'a Tensor', value);
    return value;
}
export function commonDevice(tensors) {
    const entries = Object.entries(tensors);
    const [firstName, first] = entries[0];
    for (const [name, t] of entries) {
        if (t.device !== first.device) {
            throw new DeviceMismatchError(`${name} is on ${t.device} but ${firstName} is on ${first.device}; move them to one device first`);
        }
    }
    return first.device;
}
export function checkMatrix(param, t) {
    if (t.ndim !== 2)
        invalid(param, 'a 2-D matrix', `shape ${formatShape(t.shape)}`);
}
/** An f32 input as a contiguous tensor (a strided view is copied). */
export function f32Input(param, t) {
    checkTensor(param, t);
    if (t.dtype !== 'f32')
        invalid(param, 'an f32 tensor', `${t.dtype} tensor`);
    return t.contiguous();
}
/** An i32 input (token ids, positions, indices) as a contiguous tensor. */
export function i32Input(param, t) {
    checkTensor(param, t);
    if (t.dtype !== 'i32')
        invalid(param, 'an i32 tensor', `${t.dtype} tensor`);
    return t.contiguous();
}
/** The empty f32 tensor an optional argument (a missing bias) is passed as. */
export const emptyF32 = () => Tensor.zeros([0], 'f32');
//# sourceMappingURL=call.js.map