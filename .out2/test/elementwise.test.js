// Elementwise ops against plain TypeScript, every kernel variant, odd sizes, poisoned outputs.
import assert from 'node:assert/strict';
import { abs, axpy, clamp, copy, InvalidArgumentError, scale, square, Tensor } from '../lib/index.js';
import { dtypeCode } from '../lib/tensor/dtype.js';
import { callSync } from '../lib/tensor/native.js';
import { assertClose, forEachKernelVariant, ODD_SIZES, poison, randomNormal, rng } from './helpers.js';
describe('elementwise ops', () => {
    for (const size of [...ODD_SIZES, 70_001]) {
        for (const dtype of ['f32', 'f64']) {
            it(`${dtype} axpy, copy, abs, square, scale and clamp match TypeScript (size ${size})`, () => {
                const random = rng(size);
                const values = randomNormal(size, random);
                values[0] = -0;
                const x = Tensor.fromTypedArray(dtype === 'f32' ? Float32Array.from(values) : values);
                const xs = x.toFloat64Array();
                const round = dtype === 'f32' ? Math.fround : (v) => v;
                const tol = { atol: 0, rtol: 0 };
                forEachKernelVariant((variant) => {
                    const ops = [
                        [0, 0, 0, (v) => v],
                        [1, 0, 0, (v) => Math.abs(v)],
                        [2, 0, 0, (v) => round(v * v)],
                        [3, -0.75, 0, (v) => round(-0.75 * v)],
                        [4, -0.5, 0.25, (v) => Math.min(Math.max(v, -0.5), 0.25)],
                    ];
                    for (const [code, a, b, f] of ops) {
                        const out = poison(dtype === 'f32' ? new Float32Array(size) : new Float64Array(size));
                        callSync('cpu', 'unary', [code, x.data, dtypeCode(dtype), [size], out, dtypeCode(dtype), [size], a, b]);
                        assertClose(out, xs.map(f), tol, `${variant} unary ${code}`);
                    }
                    const y = Tensor.fromTypedArray(dtype === 'f32' ? Float32Array.from(xs, (v) => v / 3) : xs.map((v) => v / 3));
                    const before = y.toFloat64Array().slice();
                    axpy(2.5, x, y);
                    assertClose(y.toFloat64Array(), before.map((v, i) => round(v + round(2.5 * xs[i]))), { atol: 0, rtol: dtype === 'f32' ? 1.2e-7 : 2.3e-16 }, `${variant} axpy`);
                });
            });
        }
    }
    it('has typed wrappers that allocate or work in place', () => {
        const x = Tensor.fromTypedArray(new Float32Array([-2, 0.5, 3]));
        assert.deepEqual([...abs(x).data], [2, 0.5, 3]);
        assert.deepEqual([...square(x).data], [4, 0.25, 9]);
        assert.deepEqual([...clamp(x, -1, 1).data], [-1, 0.5, 1]);
        assert.deepEqual([...copy(x).data], [-2, 0.5, 3]);
        scale(x, 2, { inPlace: true });
        assert.deepEqual([...x.data], [-4, 1, 6]);
        assert.throws(() => clamp(x, 1, -1), InvalidArgumentError);
        assert.throws(() => axpy(1, x, Tensor.zeros([4])), /as many elements/);
    });
    it('keeps NaN through clamp and abs', () => {
        const x = Tensor.fromTypedArray(new Float32Array([NaN]));
        assert.ok(Number.isNaN(clamp(x, 0, 1).data[0]));
        assert.ok(Number.isNaN(abs(x).data[0]));
    });
});
//# sourceMappingURL=elementwise.test.js.map