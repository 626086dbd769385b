// Integer quantization kernels: round to nearest on a grid (native/core/quant.h), and the packed layout
// compressed-tensors stores codes in. Each has a sync form and an `...Async` form, like the ops in ops.ts.
import { checkMatrix, checkTensor, commonDevice, runAsync, runSync } from './call.js';
import { gridArgs } from './ops.js';
import { formatShape, Tensor } from './tensor.js';
import { checkInteger, invalid } from '../validate.js';
/** 32-bit words a row of `cols` codes of `bits` bits packs into. */
export function packedWords(cols, bits) {
    return Math.ceil((cols * bits) / 32);
}
function groupsOf(cols, grid, groupOf) {
    if (!groupOf)
        return Math.ceil(cols / grid.groupSize);
    checkTensor('groupOf', groupOf);
    if (groupOf.dtype !== 'i32' || groupOf.ndim !== 1 || groupOf.shape[0] !== cols)
        invalid('groupOf', `i32 [${cols}]`, `${groupOf.dtype} ${formatShape(groupOf.shape)}`);
    let groups = 0;
    for (const g of groupOf.data)
        groups = Math.max(groups, g + 1);
    return groups;
}
function quantizeRtnCall(w, grid, groupOf, inPlace) {
    checkTensor('w', w);
    checkMatrix('w', w);
    if (w.dtype !== 'f32')
        invalid('w', 'an f32 matrix', `${w.dtype} tensor`);
    const [rows, cols] = w.shape;
    const groups = groupsOf(cols, grid, groupOf);
    const input = w.contiguous();
    const codes = Tensor.zeros([rows, cols], 'i8', w.device);
    const scales = Tensor.zeros([rows, groups], 'f32', w.device);
    const zeros = Tensor.zeros([rows, groups], 'i8', w.device);
    const out = inPlace ? input : Tensor.zeros([rows, cols], 'f32', w.device);
    const group = groupOf ? groupOf.contiguous() : Tensor.zeros([0], 'i32', w.device);
    return {
        device: commonDevice(groupOf ? { w, groupOf } : { w }),
        name: 'quantizeRtn',
        args: [...input.nativeArgs('w'), ...gridArgs(grid), ...group.nativeArgs('groupOf'), ...codes.nativeArgs('codes'), ...scales.nativeArgs('scales'), ...zeros.nativeArgs('zeros'), ...out.nativeArgs('out')],
        result: () => ({ weight: out, codes, scales, zeros }),
    };
}
/**
 * Rounds every weight of w [rows, cols] to nearest on the grid: each group's scale and zero point from its
 * range, then codes and decoded weights. `groupOf` (i32 [cols]) assigns columns to groups; by default
 * group g is columns [g·groupSize, (g+1)·groupSize).
 */
export function quantizeRtn(w, grid, options = {}) {
    return runSync(quantizeRtnCall(w, grid, options.groupOf, options.inPlace ?? false));
}
export function quantizeRtnAsync(w, grid, options = {}) {
    return runAsync(quantizeRtnCall(w, grid, options.groupOf, options.inPlace ?? false), options);
}
function packCall(codes, bits) {
    checkTensor('codes', codes);
    checkMatrix('codes', codes);
    if (codes.dtype !== 'i8')
        invalid('codes', 'an i8 matrix', `${codes.dtype} tensor`);
    checkInteger('bits', bits, 1, 8);
    const packed = Tensor.zeros([codes.shape[0], packedWords(codes.shape[1], bits)], 'i32', codes.device);
    return { device: codes.device, name: 'packCodes', args: [...codes.contiguous().nativeArgs('codes'), bits, ...packed.nativeArgs('packed')], result: () => packed };
}
/**
 * Packs signed codes i8 [rows, cols] of `bits` bits into i32 words [rows, ceil(cols·bits/32)] as
 * compressed-tensors stores them: code + 2^(bits−1) at bit i·bits of the row, element 0 in the low bits.
 */
export function packCodes(codes, bits) {
    return runSync(packCall(codes, bits));
}
export function packCodesAsync(codes, bits, options = {}) {
    return runAsync(packCall(codes, bits), options);
}
function unpackCall(packed, bits, cols) {
    checkTensor('packed', packed);
    checkMatrix('packed', packed);
    if (packed.dtype !== 'i32')
        invalid('packed', 'an i32 matrix', `${packed.dtype} tensor`);
    checkInteger('bits', bits, 1, 8);
    checkInteger('cols', cols, 0);
    const codes = Tensor.zeros([packed.shape[0], cols], 'i8', packed.device);
    return { device: packed.device, name: 'unpackCodes', args: [...packed.contiguous().nativeArgs('packed'), bits, ...codes.nativeArgs('codes')], result: () => codes };
}
/** The inverse of packCodes: i32 words → i8 codes [rows, cols]. */
export function unpackCodes(packed, bits, cols) {
    return runSync(unpackCall(packed, bits, cols));
}
export function unpackCodesAsync(packed, bits, cols, options = {}) {
    return runAsync(unpackCall(packed, bits, cols), options);
}
function dequantizeCall(packed, bits, scales, cols, options) {
    checkTensor('packed', packed);
    checkTensor('scales', scales);
    checkMatrix('scales', scales);
    if (scales.dtype !== 'f32')
        invalid('scales', 'an f32 matrix', `${scales.dtype} tensor`);
    const groupSize = checkInteger('groupSize', options.groupSize ?? Math.ceil(cols / Math.max(1, scales.shape[1])), 1);
    const out = Tensor.zeros([packed.shape[0], cols], 'f32', packed.device);
    const zeros = options.zeros ? options.zeros.contiguous() : Tensor.zeros([0], 'i8', packed.device);
    const groupOf = options.groupOf ? options.groupOf.contiguous() : Tensor.zeros([0], 'i32', packed.device);
    return {
        device: packed.device,
        name: 'dequantizePacked',
        args: [...packed.contiguous().nativeArgs('packed'), bits, ...scales.contiguous().nativeArgs('scales'), ...zeros.nativeArgs('zeros'), ...groupOf.nativeArgs('groupOf'), groupSize, ...out.nativeArgs('out')],
        result: () => out,
    };
}
/** Unpacks and decodes in one pass: out f32 [rows, cols] = (code − zero)·scale of each column's group. */
export function dequantizePacked(packed, bits, scales, cols, options = {}) {
    return runSync(dequantizeCall(packed, bits, scales, cols, options));
}
export function dequantizePackedAsync(packed, bits, scales, cols, options = {}) {
    return runAsync(dequantizeCall(packed, bits, scales, cols, options), options);
}
//# sourceMappingURL=quant.js.map