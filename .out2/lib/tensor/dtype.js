// Element types. The numeric codes match native/core/dtype.h.
const DTYPES = {
    f32: { code: 0, size: 4, floating: true, array: Float32Array },
    f16: { code: 1, size: 2, floating: true, array: Uint16Array },
    bf16: { code: 2, size: 2, floating: true, array: Uint16Array },
    i8: { code: 3, size: 1, floating: false, array: Int8Array },
    u8: { code: 4, size: 1, floating: false, array: Uint8Array },
    i32: { code: 5, size: 4, floating: false, array: Int32Array },
    i64: { code: 6, size: 8, floating: false, array: BigInt64Array },
    f64: { code: 7, size: 8, floating: true, array: Float64Array },
};
export const ALL_DTYPES = Object.keys(DTYPES);
export function isDType(value) {
    return typeof value === 'string' && Object.prototype.hasOwnProperty.call(DTYPES, value);
}
export function dtypeCode(dtype) {
    return DTYPES[dtype].code;
}
export function dtypeSize(dtype) {
    return DTYPES[dtype].size;
}
export function isFloatingDType(dtype) {
    return DTYPES[dtype].floating;
}
export function arrayTypeFor(dtype) {
    return DTYPES[dtype].array;
}
/** The dtype a TypedArray holds when the caller does not say; Uint16Array is ambiguous (f16 or bf16). */
export function dtypeOfArray(data) {
    if (data instanceof Float32Array)
        return 'f32';
    if (data instanceof Float64Array)
        return 'f64';
    if (data instanceof Int8Array)
        return 'i8';
    if (data instanceof Uint8Array)
        return 'u8';
    if (data instanceof Int32Array)
        return 'i32';
    if (data instanceof BigInt64Array)
        return 'i64';
    return undefined;
}
//# sourceMappingURL=dtype.js.map