// Dense linear algebra against float64 references in TypeScript. Tolerances: f32 results of sums over
// k terms of unit-variance products carry rounding of about sqrt(k)·2^-24·|terms|, so atol 1e-4·sqrt(k)
// with rtol 1e-4 leaves room without hiding a wrong element; f64 uses 1e-10.
import assert from 'node:assert/strict';
import { cholesky, choleskyInverse, gemm, HessianAccumulator, InvalidArgumentError, NotPositiveDefiniteError, ShapeMismatchError, syrk, Tensor, triangularSolve, } from '../lib/index.js';
import { assertClose, matmulRef, ODD_SIZES, poison, randomNormal, rng } from './helpers.js';
function tensorOf(values, shape, dtype) {
    return Tensor.fromTypedArray(dtype === 'f32' ? Float32Array.from(values) : values, shape);
}
function tolerance(dtype, k) {
    return dtype === 'f32' ? { atol: 1e-4 * Math.sqrt(Math.max(k, 1)), rtol: 1e-4 } : { atol: 1e-10, rtol: 1e-10 };
}
/** A random symmetric positive definite matrix XᵀX/rows + shift·I, in float64. */
function randomSpd(n, random, shift = 0.5) {
    const rows = n + 3;
    const x = randomNormal(rows * n, random);
    const a = matmulRef(x, rows, n, true, x, rows, n, false);
    for (let i = 0; i < n * n; ++i)
        a[i] /= rows;
    for (let i = 0; i < n; ++i)
        a[i * n + i] += shift;
    return a;
}
describe('gemm', () => {
    for (const dtype of ['f32', 'f64']) {
        for (const [m, k, n] of [
            [1, 1, 1],
            [7, 129, 1],
            [129, 7, 33],
            [64, 1000, 7],
            [0, 5, 3],
            [4, 0, 3],
        ]) {
            it(`${dtype} ${m}x${k} · ${k}x${n} matches float64 for every transpose, alpha and beta (poisoned output)`, () => {
                const random = rng(m * 1000 + k * 10 + n);
                for (const transA of [false, true]) {
                    for (const transB of [false, true]) {
                        const a = randomNormal(m * k, random);
                        const b = randomNormal(k * n, random);
                        const aShape = transA ? [k, m] : [m, k];
                        const bShape = transB ? [n, k] : [k, n];
                        const A = tensorOf(a, aShape, dtype);
                        const B = tensorOf(b, bShape, dtype);
                        const expected = matmulRef(A.toFloat64Array(), aShape[0], aShape[1], transA, B.toFloat64Array(), bShape[0], bShape[1], transB);
                        // beta = 0 over a NaN-poisoned output must overwrite, not multiply.
                        const poisoned = Tensor.fromTypedArray(poison(dtype === 'f32' ? new Float32Array(m * n) : new Float64Array(m * n)), [m, n]);
                        const c = gemm(A, B, { transA, transB, alpha: 1.5, beta: 0, out: poisoned });
                        assertClose(c.toFloat64Array(), expected.map((v) => 1.5 * v), tolerance(dtype, k), `${dtype} tA=${transA} tB=${transB}`);
                        // beta ≠ 0 accumulates.
                        const start = randomNormal(m * n, random);
                        const startRounded = tensorOf(start, [m, n], dtype).toFloat64Array().slice();
                        const accumulated = gemm(A, B, { transA, transB, alpha: -1, beta: 0.25, out: tensorOf(start.slice(), [m, n], dtype) });
                        assertClose(accumulated.toFloat64Array(), expected.map((v, i) => -v + 0.25 * startRounded[i]), tolerance(dtype, k), `${dtype} beta`);
                    }
                }
            });
        }
    }
    it('reads a transposed view as the transpose without copying', () => {
        const random = rng(3);
        const a = Tensor.fromTypedArray(Float32Array.from(randomNormal(5 * 7, random)), [5, 7]);
        const b = Tensor.fromTypedArray(Float32Array.from(randomNormal(5 * 3, random)), [5, 3]);
        const viaView = gemm(a.transpose(), b);
        const viaFlag = gemm(a, b, { transA: true });
        assert.deepEqual(viaView.data, viaFlag.data);
    });
    it('rejects mismatched inner dimensions with a typed error naming the shapes', () => {
        const a = Tensor.zeros([2, 3]);
        const b = Tensor.zeros([4, 5]);
        assert.throws(() => gemm(a, b), (e) => e instanceof ShapeMismatchError && /2x3.*4x5/.test(e.message));
    });
});
describe('syrk and the streamed Hessian', () => {
    for (const n of ODD_SIZES.filter((s) => s <= 129)) {
        it(`syrk fills both triangles of alpha·xᵀx + beta·c (n = ${n})`, () => {
            const random = rng(n);
            const rows = 2 * n + 1;
            const x = randomNormal(rows * n, random);
            const X = tensorOf(x, [rows, n], 'f32');
            const expected = matmulRef(X.toFloat64Array(), rows, n, true, X.toFloat64Array(), rows, n, false);
            const out = Tensor.fromTypedArray(poison(new Float32Array(n * n)), [n, n]);
            const c = syrk(X, { alpha: 0.5, beta: 0, out });
            assertClose(c.toFloat64Array(), expected.map((v) => 0.5 * v), tolerance('f32', rows), 'syrk');
        });
    }
    it("syrk with triangle 'lower' writes the lower triangle and leaves the upper one untouched", () => {
        const n = 9;
        const X = tensorOf(randomNormal(4 * n, rng(8)), [4, n], 'f64');
        const expected = matmulRef(X.toFloat64Array(), 4, n, true, X.toFloat64Array(), 4, n, false);
        const out = Tensor.fromTypedArray(poison(new Float64Array(n * n)), [n, n]);
        const c = syrk(X, { out, triangle: 'lower' }).toFloat64Array();
        for (let i = 0; i < n; ++i) {
            for (let j = 0; j < n; ++j) {
                if (j <= i)
                    assertClose([c[i * n + j]], [expected[i * n + j]], { atol: 1e-12, rtol: 1e-12 }, `(${i}, ${j})`);
                else
                    assert.ok(Number.isNaN(c[i * n + j]), `upper (${i}, ${j}) untouched`);
            }
        }
    });
    it('weights batches of different sizes by their row count: H = (2/T)·Σ xᵀx', async () => {
        const random = rng(77);
        const n = 33;
        const sizes = [1, 17, 5, 128, 0, 64];
        const total = sizes.reduce((a, b) => a + b, 0);
        const all = randomNormal(total * n, random);
        for (const dtype of ['f32', 'f64']) {
            const acc = new HessianAccumulator(n, { dtype });
            let offset = 0;
            for (const s of sizes) {
                acc.add(tensorOf(all.slice(offset * n, (offset + s) * n), [s, n], dtype));
                offset += s;
            }
            assert.equal(acc.count, total);
            // The same batches added asynchronously without awaiting each one give the same running mean.
            const concurrent = new HessianAccumulator(n, { dtype });
            let start = 0;
            await Promise.all(sizes.map((s) => {
                const batch = tensorOf(all.slice(start * n, (start + s) * n), [s, n], dtype);
                start += s;
                return concurrent.addAsync(batch);
            }));
            assert.deepEqual(concurrent.hessian.data, acc.hessian.data);
            const X = tensorOf(all, [total, n], dtype).toFloat64Array();
            const expected = matmulRef(X, total, n, true, X, total, n, false).map((v) => (2 / total) * v);
            assertClose(acc.hessian.toFloat64Array(), expected, dtype === 'f32' ? { atol: 1e-5, rtol: 1e-5 } : { atol: 1e-12, rtol: 1e-12 }, `hessian ${dtype}`);
        }
    });
});
describe('cholesky', () => {
    for (const dtype of ['f32', 'f64']) {
        for (const n of [1, 7, 129]) {
            it(`${dtype} n=${n}: L·Lᵀ = A, U = Lᵀ, and the inverse times A is I`, () => {
                const random = rng(n + 99);
                const a = randomSpd(n, random);
                const A = tensorOf(a, [n, n], dtype);
                const a64 = A.toFloat64Array();
                const tol = dtype === 'f32' ? { atol: 2e-4, rtol: 2e-4 } : { atol: 1e-10, rtol: 1e-10 };
                const lower = cholesky(A, { out: Tensor.fromTypedArray(poison(dtype === 'f32' ? new Float32Array(n * n) : new Float64Array(n * n)), [n, n]) });
                assert.equal(lower.damping.attempts, 1);
                assert.equal(lower.damping.absolute, 0);
                const L = lower.factor.toFloat64Array();
                for (let i = 0; i < n; ++i)
                    for (let j = i + 1; j < n; ++j)
                        assert.equal(L[i * n + j], 0, 'upper part of L is zero');
                assertClose(matmulRef(L, n, n, false, L, n, n, true), a64, tol, 'L·Lᵀ');
                const U = cholesky(A, { upper: true }).factor.toFloat64Array();
                for (let i = 0; i < n; ++i)
                    for (let j = 0; j < n; ++j)
                        assert.equal(U[i * n + j], L[j * n + i], 'U = Lᵀ');
                const inverse = choleskyInverse(A).inverse.toFloat64Array();
                const identity = matmulRef(inverse, n, n, false, a64, n, n, false);
                const expected = new Float64Array(n * n);
                for (let i = 0; i < n; ++i)
                    expected[i * n + i] = 1;
                assertClose(identity, expected, dtype === 'f32' ? { atol: 2e-3, rtol: 0 } : { atol: 1e-9, rtol: 0 }, 'A⁻¹·A');
                for (let i = 0; i < n; ++i)
                    for (let j = 0; j < n; ++j)
                        assert.equal(inverse[i * n + j], inverse[j * n + i], 'symmetric');
            });
        }
    }
    it('damps A by damp·mean(diag) and reports it', () => {
        const n = 5;
        const a = randomSpd(n, rng(1));
        const meanDiag = [...Array(n).keys()].reduce((s, i) => s + a[i * n + i], 0) / n;
        const { factor, damping } = cholesky(Tensor.fromTypedArray(a, [n, n]), { damp: 0.01 });
        assert.equal(damping.relative, 0.01);
        assertClose([damping.absolute], [0.01 * meanDiag], { atol: 0, rtol: 1e-12 }, 'absolute damping');
        const L = factor.toFloat64Array();
        const damped = a.map((v, i) => (i % (n + 1) === 0 ? v + 0.01 * meanDiag : v));
        assertClose(matmulRef(L, n, n, false, L, n, n, true), damped, { atol: 1e-12, rtol: 1e-12 }, 'L·Lᵀ = A + λI');
    });
    it('climbs the damping ladder on a singular matrix and reports the damping used', () => {
        // Rank one: xxᵀ is positive semi-definite but singular; it needs damping to factor.
        const n = 16;
        const x = randomNormal(n, rng(2));
        const a = matmulRef(x, n, 1, false, x, n, 1, true);
        a[0] -= 1e-3; // make it indefinite
        const { factor, damping } = cholesky(Tensor.fromTypedArray(a, [n, n]), { damp: 0 });
        assert.ok(damping.attempts > 1, `took ${damping.attempts} attempts`);
        assert.ok(damping.relative >= 1e-6);
        const L = factor.toFloat64Array();
        const damped = a.map((v, i) => (i % (n + 1) === 0 ? v + damping.absolute : v));
        assertClose(matmulRef(L, n, n, false, L, n, n, true), damped, { atol: 1e-9, rtol: 1e-9 }, 'factor of the damped matrix');
    });
    it('throws NotPositiveDefiniteError past the top of the ladder, and a typed error for NaN input', () => {
        const negative = Tensor.fromTypedArray(new Float64Array([-1, 0, 0, -1]), [2, 2]);
        assert.throws(() => cholesky(negative, { damp: 0.01, maxAttempts: 2 }), (e) => e instanceof NotPositiveDefiniteError && /2 attempts/.test(e.message) && /0\.1/.test(e.message));
        const withNaN = Tensor.fromTypedArray(new Float32Array([1, NaN, NaN, 1]), [2, 2]);
        assert.throws(() => cholesky(withNaN), (e) => e instanceof InvalidArgumentError && /row 0, column 1/.test(e.message));
    });
});
describe('triangularSolve', () => {
    for (const dtype of ['f32', 'f64']) {
        it(`${dtype}: solves all side, triangle and transpose combinations`, () => {
            const random = rng(11);
            const n = 33;
            const cols = 7;
            const a = randomSpd(n, random, 1);
            const L = cholesky(tensorOf(a, [n, n], dtype)).factor;
            const L64 = L.toFloat64Array();
            for (const left of [true, false]) {
                for (const lower of [true, false]) {
                    for (const transpose of [false, true]) {
                        const T = lower ? L : L.transpose().contiguous();
                        const T64 = lower ? L64 : matmulRef(L64, n, n, true, eye(n), n, n, false);
                        const bShape = left ? [n, cols] : [cols, n];
                        const b = tensorOf(randomNormal(n * cols, random), bShape, dtype);
                        const x = triangularSolve(T, b, { left, lower, transpose, alpha: 2 });
                        const x64 = x.toFloat64Array();
                        const product = left
                            ? matmulRef(T64, n, n, transpose, x64, n, cols, false)
                            : matmulRef(x64, cols, n, false, T64, n, n, transpose);
                        assertClose(product, b.toFloat64Array().map((v) => 2 * v), dtype === 'f32' ? { atol: 1e-3, rtol: 1e-3 } : { atol: 1e-9, rtol: 1e-9 }, `left=${left} lower=${lower} trans=${transpose}`);
                    }
                }
            }
        });
    }
});
function eye(n) {
    const out = new Float64Array(n * n);
    for (let i = 0; i < n; ++i)
        out[i * n + i] = 1;
    return out;
}
//# sourceMappingURL=linalg.test.js.map