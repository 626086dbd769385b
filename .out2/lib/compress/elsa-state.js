// How Elsa keeps its per-weight state: the split z and the scaled dual u of every constrained matrix, and
// Adam's moments m and v of every trained tensor. Elsa keeps all of them in f32 (with x and the gradient:
// about 6 copies of the weights). Elsa-L stores them smaller and decodes one tensor at a time per update:
//   z, u   'bf16': bfloat16 (round to nearest even)
//          'fp8' : FP8 E4M3 codes (±448, 3 mantissa bits, subnormals, no infinities) times one f32 scale per
//                  tensor, scale = max|t|/448, rounded to the nearest code (ties to the even code)
//   m, v   8 bits, block-wise (blocks of 256 consecutive entries, one f32 scale each), as 8-bit Adam does:
//          m: signed linear codes, m ≈ max|m|_block · q/127, rounded to nearest;
//          v: unsigned codes on a fourth-root scale, v ≈ max(v)_block · (q/255)⁴, rounded UP, so a decoded
//             v is never below the true one. With round-to-nearest m (a nonzero code is at most twice the
//             value it stands for) the Adam ratio m/√v stays within 2× of the exact one: no entry whose
//             v rounds to 0 while m does not can take an lr/eps-sized step.
// Every store round-trips through `tensors()`/`restore()` bit for bit, so a resumed run continues exactly.
import { InvalidFileError } from '../errors.js';
import { adamwStepAsync } from '../tensor/nn-backward.js';
import { Tensor } from '../tensor/tensor.js';
export const SPLIT_STORAGE = ['f32', 'bf16', 'fp8'];
export const MOMENT_BITS = [32, 8];
/** Bytes per entry of a z/u store and of the two moments together (scales not counted). */
export const SPLIT_BYTES = { f32: 4, bf16: 2, fp8: 1 };
export const MOMENT_BYTES = { 32: 8, 8: 2 };
/**
 * Reusable decode buffers, one per role, grown to the largest tensor: a decoded value lives only until the
 * next decode of the same role, so Elsa-L never holds more than one tensor's worth of f32 per role (fresh
 * arrays per tensor and step would leave the garbage collector a model's worth to catch up on).
 */
const scratch = new Map();
function scratchTensor(role, shape) {
    const numel = shape.reduce((a, b) => a * b, 1);
    let buffer = scratch.get(role);
    if (!buffer || buffer.length < numel) {
        buffer = new Float32Array(numel);
        scratch.set(role, buffer);
    }
    return Tensor.fromTypedArray(buffer.subarray(0, numel), shape);
}
export function storedTensor(storage, value) {
    const shape = [...value.shape];
    const store = storage === 'f32' ? new F32Store(shape) : storage === 'bf16' ? new Bf16Store(shape) : new Fp8Store(shape);
    store.write(value);
    return store;
}
class F32Store {
    shape;
    value;
    constructor(shape) {
        this.shape = shape;
        this.value = Tensor.zeros(shape);
    }
    read(_role) {
        return this.value;
    }
    write(value) {
        if (value !== this.value)
            this.value.data.set(value.data);
    }
    tensors(prefix) {
        return [[prefix, this.value]];
    }
    restore(get, prefix) {
        this.value = checked(get(prefix), prefix, 'f32', this.value.numel);
    }
}
class Bf16Store {
    shape;
    bits;
    constructor(shape) {
        this.shape = shape;
        this.bits = Tensor.zeros(shape, 'bf16');
    }
    read(role) {
        const out = scratchTensor(role, this.shape);
        const bits = this.bits.data;
        const values = out.data;
        const words = new Uint32Array(values.buffer, values.byteOffset, values.length);
        for (let i = 0; i < bits.length; ++i)
            words[i] = bits[i] << 16; // bf16 is the top half of an f32
        return out;
    }
    write(value) {
        this.bits = value.to('bf16');
    }
    tensors(prefix) {
        return [[prefix, this.bits]];
    }
    restore(get, prefix) {
        this.bits = checked(get(prefix), prefix, 'bf16', this.bits.numel);
    }
}
// ---- FP8 E4M3 (the OCP "E4M3FN" variant: bias 7, no infinities, 0x7f/0xff are NaN, max 448) ----------
/** The 128 non-negative E4M3 values by code (code 127 is NaN and never produced). */
const E4M3 = (() => {
    const values = new Float64Array(128);
    for (let code = 0; code < 128; ++code) {
        const exponent = code >> 3;
        const mantissa = code & 7;
        values[code] = exponent === 0 ? (mantissa / 8) * 2 ** -6 : (1 + mantissa / 8) * 2 ** (exponent - 7);
    }
    values[127] = NaN;
    return values;
})();
export const E4M3_MAX = 448;
/** The E4M3 code nearest to a finite a (|a| ≤ 448 after scaling), ties to the even code. */
export function encodeE4M3(a) {
    const sign = a < 0 || Object.is(a, -0) ? 0x80 : 0;
    const x = Math.min(Math.abs(a), E4M3_MAX);
    // Binary search over the 127 finite magnitudes (increasing with the code).
    let lo = 0;
    let hi = 126;
    while (lo < hi) {
        const mid = (lo + hi + 1) >> 1;
        if (E4M3[mid] <= x)
            lo = mid;
        else
            hi = mid - 1;
    }
    let code = lo;
    if (code < 126) {
        const below = x - E4M3[code];
        const above = E4M3[code + 1] - x;
        if (above < below || (above === below && (code & 1) === 1))
            code += 1;
    }
    return sign | code;
}
export function decodeE4M3(code) {
    const magnitude = E4M3[code & 0x7f];
    return code & 0x80 ? -magnitude : magnitude;
}
class Fp8Store {
    shape;
    codes;
    scale = 0;
    constructor(shape) {
        this.shape = shape;
        this.codes = Tensor.zeros(shape, 'u8');
    }
    read(role) {
        const codes = this.codes.data;
        const result = scratchTensor(role, this.shape);
        const out = result.data;
        const table = new Float32Array(256);
        for (let c = 0; c < 256; ++c)
            table[c] = decodeE4M3(c) * this.scale;
        for (let i = 0; i < codes.length; ++i)
            out[i] = table[codes[i]];
        return result;
    }
    write(value) {
        const data = value.data;
        let max = 0;
        for (let i = 0; i < data.length; ++i)
            max = Math.max(max, Math.abs(data[i]));
        // The scale is kept as the f32 a checkpoint stores, so a resumed run decodes the same values.
        this.scale = Math.fround(max / E4M3_MAX);
        const codes = this.codes.data;
        const inverse = this.scale > 0 ? 1 / this.scale : 0;
        for (let i = 0; i < data.length; ++i)
            codes[i] = encodeE4M3(data[i] * inverse);
    }
    tensors(prefix) {
        return [
            [prefix, this.codes],
            [`${prefix}.scale`, Tensor.fromTypedArray(Float32Array.of(this.scale))],
        ];
    }
    restore(get, prefix) {
        this.codes = checked(get(prefix), prefix, 'u8', this.codes.numel);
        this.scale = checked(get(`${prefix}.scale`), `${prefix}.scale`, 'f32', 1).data[0];
    }
}
export function moments(bits, shape) {
    return bits === 32 ? new F32Moments(shape) : new BlockwiseMoments(shape);
}
class F32Moments {
    m;
    v;
    constructor(shape) {
        this.m = Tensor.zeros(shape);
        this.v = Tensor.zeros(shape);
    }
    step(param, grad, step, s, signal) {
        return adamwStepAsync(param, grad, this.m, this.v, { ...s, step, signal });
    }
    secondMoment() {
        return this.v;
    }
    tensors(prefix) {
        return [
            [`${prefix}.m`, this.m],
            [`${prefix}.v`, this.v],
        ];
    }
    restore(get, prefix) {
        this.m = checked(get(`${prefix}.m`), `${prefix}.m`, 'f32', this.m.numel);
        this.v = checked(get(`${prefix}.v`), `${prefix}.v`, 'f32', this.v.numel);
    }
}
export const MOMENT_BLOCK = 256;
/** Block-wise 8-bit moments (see the file comment). */
class BlockwiseMoments {
    shape;
    mCodes;
    vCodes;
    mScales;
    vScales;
    constructor(shape) {
        this.shape = shape;
        const numel = shape.reduce((a, b) => a * b, 1);
        const blocks = Math.ceil(numel / MOMENT_BLOCK);
        this.mCodes = Tensor.zeros(shape, 'i8');
        this.vCodes = Tensor.zeros(shape, 'u8');
        this.mScales = Tensor.zeros([blocks]);
        this.vScales = Tensor.zeros([blocks]);
    }
    decodeM() {
        const codes = this.mCodes.data;
        const scales = this.mScales.data;
        const result = scratchTensor('adam.m', this.shape);
        const out = result.data;
        for (let i = 0; i < codes.length; ++i)
            out[i] = (scales[(i / MOMENT_BLOCK) | 0] * codes[i]) / 127;
        return result;
    }
    /** Decoded into a shared buffer: valid until the next decode of any 8-bit second moment. */
    secondMoment() {
        const codes = this.vCodes.data;
        const scales = this.vScales.data;
        const result = scratchTensor('adam.v', this.shape);
        const out = result.data;
        for (let i = 0; i < codes.length; ++i) {
            const q = codes[i] / 255;
            out[i] = scales[(i / MOMENT_BLOCK) | 0] * q * q * q * q;
        }
        return result;
    }
    encode(m, v) {
        const md = m.data;
        const vd = v.data;
        const mc = this.mCodes.data;
        const vc = this.vCodes.data;
        const ms = this.mScales.data;
        const vs = this.vScales.data;
        for (let b = 0; b < ms.length; ++b) {
            const start = b * MOMENT_BLOCK;
            const end = Math.min(md.length, start + MOMENT_BLOCK);
            let mMax = 0;
            let vMax = 0;
            for (let i = start; i < end; ++i) {
                mMax = Math.max(mMax, Math.abs(md[i]));
                vMax = Math.max(vMax, vd[i]);
            }
            ms[b] = mMax;
            vs[b] = vMax;
            const mInverse = mMax > 0 ? 127 / ms[b] : 0;
            const vInverse = vMax > 0 ? 1 / vs[b] : 0;
            for (let i = start; i < end; ++i) {
                mc[i] = Math.max(-127, Math.min(127, Math.round(md[i] * mInverse)));
                // Round up on the fourth-root scale; the tiny slack keeps an exact code from rounding one past itself.
                vc[i] = Math.min(255, Math.ceil(255 * Math.sqrt(Math.sqrt(vd[i] * vInverse)) - 1e-9));
            }
        }
    }
    async step(param, grad, step, s, signal) {
        const m = this.decodeM();
        const v = this.secondMoment();
        await adamwStepAsync(param, grad, m, v, { ...s, step, signal });
        this.encode(m, v);
    }
    tensors(prefix) {
        return [
            [`${prefix}.m`, this.mCodes],
            [`${prefix}.m.scale`, this.mScales],
            [`${prefix}.v`, this.vCodes],
            [`${prefix}.v.scale`, this.vScales],
        ];
    }
    restore(get, prefix) {
        this.mCodes = checked(get(`${prefix}.m`), `${prefix}.m`, 'i8', this.mCodes.numel);
        this.mScales = checked(get(`${prefix}.m.scale`), `${prefix}.m.scale`, 'f32', this.mScales.numel);
        this.vCodes = checked(get(`${prefix}.v`), `${prefix}.v`, 'u8', this.vCodes.numel);
        this.vScales = checked(get(`${prefix}.v.scale`), `${prefix}.v.scale`, 'f32', this.vScales.numel);
    }
}
function checked(t, name, dtype, numel) {
    if (t.dtype !== dtype || t.numel !== numel)
        throw new InvalidFileError(`checkpoint tensor ${name}: expected ${dtype} with ${numel} entries, found ${t.dtype} with ${t.numel}`);
    return t;
}
//# sourceMappingURL=elsa-state.js.map