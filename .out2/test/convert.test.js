// f16/bf16 <-> f32 conversion: every 16-bit pattern, random and special f32 values, in every kernel
// variant, against a TypeScript reference that rounds by searching the table of representable values
// (independent of the bit tricks in native/core/half.h).
import assert from 'node:assert/strict';
import { dtypeCode } from '../lib/tensor/dtype.js';
import { Tensor } from '../lib/index.js';
import { callSync } from '../lib/tensor/native.js';
import { forEachKernelVariant, ODD_SIZES, rng } from './helpers.js';
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
function bitsOf(x) {
    f32[0] = x;
    return u32[0];
}
function floatOfBits(bits) {
    u32[0] = bits >>> 0;
    return f32[0];
}
function decodeHalf(h) {
    const sign = h & 0x8000 ? -1 : 1;
    const e = (h >> 10) & 0x1f;
    const m = h & 0x3ff;
    if (e === 0x1f)
        return m ? NaN : sign * Infinity;
    if (e === 0)
        return sign * m * 2 ** -24;
    return sign * (1024 + m) * 2 ** (e - 25);
}
function decodeBF16(b) {
    return floatOfBits(b << 16);
}
/** Round-to-nearest-even encoder over a sorted table of the format's non-negative finite values. */
function makeEncoder(decode, maxFinite, overflowValue, nanBits) {
    const table = new Float64Array(maxFinite + 2);
    for (let b = 0; b <= maxFinite; ++b)
        table[b] = decode(b);
    table[maxFinite + 1] = overflowValue; // the next value the format would have; it stands for infinity
    return (x) => {
        if (Number.isNaN(x))
            return nanBits(x);
        const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
        const a = Math.abs(x);
        if (a >= overflowValue)
            return sign | (maxFinite + 1);
        let lo = 0;
        let hi = maxFinite + 1;
        while (hi - lo > 1) {
            const mid = (lo + hi) >> 1;
            if (table[mid] <= a)
                lo = mid;
            else
                hi = mid;
        }
        if (table[lo] === a)
            return sign | lo;
        const below = a - table[lo];
        const above = table[hi] - a;
        const pick = below < above ? lo : above < below ? hi : lo % 2 === 0 ? lo : hi;
        return sign | pick;
    };
}
const encodeHalf = makeEncoder(decodeHalf, 0x7bff, 65536, (x) => {
    const bits = bitsOf(x);
    return ((bits >>> 16) & 0x8000) | 0x7e00 | ((bits & 0x7fffff) >>> 13);
});
const encodeBF16 = makeEncoder(decodeBF16, 0x7f7f, 2 ** 128, (x) => ((bitsOf(x) >>> 16) | 0x40) & 0xffff);
function interestingFloats(count, seed) {
    const random = rng(seed);
    const specials = [
        0, -0, Infinity, -Infinity, NaN, floatOfBits(0x7f800001), floatOfBits(0xffc12345), floatOfBits(0x7fbfffff),
        1, -1, 65504, 65519.99, 65520, 65536, 1e-8, 2 ** -24, 2 ** -25, 3 * 2 ** -26, 2 ** -14, 2 ** -14 - 2 ** -25,
        1 + 2 ** -11, 1 + 3 * 2 ** -11, 1 + 2 ** -8, 1 + 3 * 2 ** -8, floatOfBits(0x00000001), floatOfBits(0x007fffff),
        floatOfBits(0x7f7fffff), floatOfBits(0x7f7f8000), floatOfBits(0x7f7f7fff), floatOfBits(0x00018000),
    ];
    const out = new Float32Array(count);
    for (let i = 0; i < count; ++i) {
        if (i < specials.length)
            out[i] = specials[i];
        else if (i % 3 === 0)
            out[i] = floatOfBits(Math.floor(random() * 2 ** 32)); // any bit pattern
        else
            out[i] = (random() - 0.5) * 2 ** Math.floor(random() * 60 - 30);
    }
    return out;
}
function assertBitsEqual(actual, expected, source, what) {
    for (let i = 0; i < expected.length; ++i) {
        if (actual[i] !== expected[i]) {
            assert.fail(`${what}: element ${i} (f32 bits 0x${bitsOf(source[i]).toString(16)}) gave 0x${actual[i].toString(16)}, expected 0x${expected[i].toString(16)}`);
        }
    }
}
describe('conversions between f32, f16 and bf16', () => {
    const allPatterns = new Uint16Array(65536).map((_, i) => i);
    it('decodes every f16 bit pattern exactly (subnormals, infinities; NaN quieted with its payload)', () => {
        forEachKernelVariant((variant) => {
            const out = Tensor.fromTypedArray(allPatterns, [65536], 'f16').to('f32').data;
            // Read NaNs as raw bits: converting a float32 NaN to a JS number may quiet it.
            const outBits = new Uint32Array(out.buffer, out.byteOffset, out.length);
            for (let h = 0; h < 65536; ++h) {
                const expected = decodeHalf(h);
                if (Number.isNaN(expected)) {
                    const bits = outBits[h];
                    assert.equal(bits, (((h & 0x8000) << 16) | 0x7fc00000 | ((h & 0x3ff) << 13)) >>> 0, `${variant}: NaN 0x${h.toString(16)} comes out quiet`);
                }
                else {
                    assert.ok(Object.is(out[h], expected), `${variant}: f16 0x${h.toString(16)} -> ${out[h]}, expected ${expected}`);
                }
            }
        });
    });
    it('decodes every bf16 bit pattern exactly', () => {
        forEachKernelVariant((variant) => {
            const out = Tensor.fromTypedArray(allPatterns, [65536], 'bf16').to('f32').data;
            const bits = new Uint32Array(out.buffer, out.byteOffset, out.length);
            for (let b = 0; b < 65536; ++b)
                assert.equal(bits[b], (b << 16) >>> 0, `${variant}: bf16 0x${b.toString(16)}`);
        });
    });
    it('round-trips every non-NaN f16 and bf16 pattern through f32 unchanged, and keeps NaN a NaN', () => {
        forEachKernelVariant((variant) => {
            for (const dtype of ['f16', 'bf16']) {
                const back = Tensor.fromTypedArray(allPatterns, [65536], dtype).to('f32').to(dtype).data;
                for (let b = 0; b < 65536; ++b) {
                    const isNaN = dtype === 'f16' ? (b & 0x7c00) === 0x7c00 && (b & 0x3ff) !== 0 : (b & 0x7f80) === 0x7f80 && (b & 0x7f) !== 0;
                    if (isNaN) {
                        const quiet = dtype === 'f16' ? b | 0x0200 : b | 0x0040;
                        assert.equal(back[b], quiet, `${variant} ${dtype}: NaN 0x${b.toString(16)} comes back quieted`);
                    }
                    else {
                        assert.equal(back[b], b, `${variant} ${dtype}: 0x${b.toString(16)}`);
                    }
                }
            }
        });
    });
    for (const size of [...ODD_SIZES, 100_003]) {
        it(`rounds f32 to f16 and bf16 to nearest even (${size} values incl. ties, overflow, subnormals)`, () => {
            const source = interestingFloats(size, size);
            const expectedHalf = new Uint16Array(size).map((_, i) => encodeHalf(source[i]));
            const expectedBF16 = new Uint16Array(size).map((_, i) => encodeBF16(source[i]));
            forEachKernelVariant((variant) => {
                const t = Tensor.fromTypedArray(source);
                assertBitsEqual(t.to('f16').data, expectedHalf, source, `${variant} f32->f16`);
                assertBitsEqual(t.to('bf16').data, expectedBF16, source, `${variant} f32->bf16`);
            });
        });
    }
    it('writes every output element of a poisoned destination, at every tail length', () => {
        forEachKernelVariant((variant) => {
            for (const size of [1, 7, 8, 15, 16, 17, 33, 129]) {
                const source = interestingFloats(size, size + 11);
                const out = new Uint16Array(size).fill(0x7e01);
                callSync('cpu', 'convert', [source, dtypeCode('f32'), [size], out, dtypeCode('f16'), [size]]);
                for (let i = 0; i < size; ++i)
                    assert.equal(out[i], encodeHalf(source[i]), `${variant} size ${size} element ${i}`);
                const back = new Float32Array(size).fill(NaN);
                callSync('cpu', 'convert', [out, dtypeCode('f16'), [size], back, dtypeCode('f32'), [size]]);
                for (let i = 0; i < size; ++i)
                    assert.ok(Object.is(back[i], decodeHalf(out[i])) || Number.isNaN(decodeHalf(out[i])));
            }
        });
    });
    it('rounds f64 once, not through f32 (which would round twice)', () => {
        // 1 + 2^-11 + 2^-40 is just above the f16 tie between 1 and 1 + 2^-10. Rounding to f32 first lands
        // exactly on the tie, which then goes to even (1.0); one rounding gives 1 + 2^-10.
        const d = Tensor.fromTypedArray(new Float64Array([1 + 2 ** -11 + 2 ** -40, -(1 + 2 ** -8 + 2 ** -35), 1e300, -1e-300]));
        assert.deepEqual([...d.to('f16').data], [0x3c01, encodeHalf(-(1 + 2 ** -8)), 0x7c00, 0x8000]);
        assert.deepEqual([...d.to('bf16').data].slice(0, 1), [0x3f80]);
        assert.equal(d.to('bf16').data[1], 0xbf81); // -(1 + 2^-8 + tiny) rounds away from the tie
        assert.equal(d.to('bf16').data[2], 0x7f80);
    });
    it('converts f16 <-> bf16 directly and integers to floats', () => {
        const values = [0, 1, -2.5, 3.140625, 65504, -1e-5];
        forEachKernelVariant((variant) => {
            const viaHalf = Tensor.fromNumbers(values, undefined, 'f16').to('bf16').to('f64').data;
            const expected = values.map((v) => decodeBF16(encodeBF16(decodeHalf(encodeHalf(v)))));
            assert.deepEqual([...viaHalf], expected, variant);
        });
        const ints = Tensor.fromTypedArray(new Int32Array([-3, 0, 7, 2 ** 30 + 1]));
        assert.deepEqual([...ints.to('f64').data], [-3, 0, 7, 2 ** 30 + 1]);
        assert.deepEqual([...ints.to('f32').data], [-3, 0, 7, Math.fround(2 ** 30 + 1)]);
        const bytes = Tensor.fromTypedArray(new Uint8Array([0, 255, 17]));
        assert.deepEqual([...bytes.to('f16').data], [0, encodeHalf(255), encodeHalf(17)]);
    });
});
//# sourceMappingURL=convert.test.js.map