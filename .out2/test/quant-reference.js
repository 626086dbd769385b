// Plain TypeScript references of the quantization grid (native/core/quant.h, in float32 arithmetic through
// Math.fround) and of compressed-tensors' bit packing, shared by the kernel and pipeline tests.
import { Tensor } from '../lib/index.js';
const f = Math.fround;
/** Round half to even. */
export function roundEven(x) {
    const r = Math.round(x);
    return Math.abs(x - Math.trunc(x)) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}
export function roundTo(x, dtype) {
    if (dtype === 'f32')
        return x;
    return Tensor.fromTypedArray(Float32Array.of(x)).to(dtype).to('f32').data[0];
}
const EPS = { f32: 1.1920929e-7, f16: 0.0009765625, bf16: 0.0078125 };
/** The grid of native/core/quant.h, in float32 arithmetic. */
export function paramsRef(values, grid) {
    const lo = Math.min(0, ...values);
    const hi = Math.max(0, ...values);
    const qmin = -(2 ** (grid.bits - 1));
    const qmax = 2 ** (grid.bits - 1) - 1;
    const range = qmax - qmin;
    let scale = grid.symmetric ? f(Math.max(-lo, hi) / f(range / 2)) : f(f(hi - lo) / range);
    scale = roundTo(scale, grid.scaleDType);
    if (scale === 0)
        scale = EPS[grid.scaleDType];
    const zero = grid.symmetric ? 0 : roundEven(Math.min(Math.max(f(qmin - f(lo / scale)), qmin), qmax)) + 0;
    return { scale, zero };
}
export function codeRef(w, scale, zero, bits) {
    return roundEven(Math.min(Math.max(f(f(w / scale) + zero), -(2 ** (bits - 1))), 2 ** (bits - 1) - 1));
}
/** Round to nearest, per row and group. */
export function rtnRef(w, rows, cols, grid, groupOf) {
    const groupIndex = groupOf ?? Int32Array.from({ length: cols }, (_, c) => Math.floor(c / grid.groupSize));
    const groups = Math.max(0, ...groupIndex) + 1;
    const codes = new Int8Array(rows * cols);
    const out = new Float32Array(rows * cols);
    const scales = new Float32Array(rows * groups);
    const zeros = new Int8Array(rows * groups);
    for (let r = 0; r < rows; ++r) {
        for (let g = 0; g < groups; ++g) {
            const members = [];
            for (let c = 0; c < cols; ++c)
                if (groupIndex[c] === g)
                    members.push(w[r * cols + c]);
            const { scale, zero } = paramsRef(members, grid);
            scales[r * groups + g] = scale;
            zeros[r * groups + g] = zero;
        }
        for (let c = 0; c < cols; ++c) {
            const g = groupIndex[c];
            const scale = scales[r * groups + g];
            const zero = zeros[r * groups + g];
            const code = codeRef(w[r * cols + c], scale, zero, grid.bits);
            codes[r * cols + c] = code;
            out[r * cols + c] = f(f(code - zero) * scale) + 0;
        }
    }
    return { codes, out, scales, zeros, groups };
}
/** Packs codes as a bit string: code + 2^(b−1) at bit i·b of the row, words little-endian. */
export function packRef(codes, rows, cols, bits) {
    const words = Math.ceil((cols * bits) / 32);
    const out = new Int32Array(rows * words);
    for (let r = 0; r < rows; ++r) {
        let row = 0n;
        for (let c = cols - 1; c >= 0; --c)
            row = (row << BigInt(bits)) | BigInt(codes[r * cols + c] + 2 ** (bits - 1));
        for (let w = 0; w < words; ++w)
            out[r * words + w] = Number(BigInt.asIntN(32, row >> BigInt(32 * w)));
    }
    return out;
}
//# sourceMappingURL=quant-reference.js.map