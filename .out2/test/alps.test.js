// ALPS and its native pieces: the f64 eigendecomposition, masked conjugate gradient against direct
// solves of each row's restricted system, the fused ADMM iteration against the separate ops it replaces
// (bit for bit) and against a float64 reference, and, on real layers of stories260K, a lower reconstruction
// error than SparseGPT at 70/80/90% and 2:4 with exactly the requested pattern and a CG step that never
// increases the objective.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { alpsAdmmStep, alpsAdmmStepAsync, applyMask, axpy, countZeros, eigh, gemm, getMethod, HessianAccumulator, maskedCg, nmMask, parsePattern, parseRecipe, prune, scaleColumns, square, Tensor, topkMask, } from '../lib/index.js';
import { assertClose, fixturePath, forEachKernelVariant, matmulRef, poison, randomF32, rng, sharedDir } from './helpers.js';
function randomSpd(n, random) {
    const acc = new HessianAccumulator(n);
    acc.add(Tensor.fromTypedArray(randomF32(3 * n * n + 8 * n, random), [3 * n + 8, n]));
    const h = acc.hessian;
    const d = h.data;
    for (let j = 0; j < n; ++j)
        d[j * n + j] += 0.05;
    return h;
}
/** Solves the symmetric positive definite system a·x = b (float64, Cholesky). */
function solveRef(a, b) {
    const n = b.length;
    const l = a.map(() => new Array(n).fill(0));
    for (let j = 0; j < n; ++j) {
        let s = a[j][j];
        for (let k = 0; k < j; ++k)
            s -= l[j][k] ** 2;
        l[j][j] = Math.sqrt(s);
        for (let i = j + 1; i < n; ++i) {
            let t = a[i][j];
            for (let k = 0; k < j; ++k)
                t -= l[i][k] * l[j][k];
            l[i][j] = t / l[j][j];
        }
    }
    const y = new Array(n).fill(0);
    for (let i = 0; i < n; ++i) {
        let s = b[i];
        for (let k = 0; k < i; ++k)
            s -= l[i][k] * y[k];
        y[i] = s / l[i][i];
    }
    const x = new Array(n).fill(0);
    for (let i = n - 1; i >= 0; --i) {
        let s = y[i];
        for (let k = i + 1; k < n; ++k)
            s -= l[k][i] * x[k];
        x[i] = s / l[i][i];
    }
    return x;
}
describe('eigh', () => {
    for (const n of [1, 7, 129]) {
        it(`decomposes a symmetric ${n}×${n} matrix: ascending values, orthonormal rows, A = VᵀΛV to 1e-10`, () => {
            const random = rng(n);
            const a = new Float64Array(n * n);
            for (let i = 0; i < n; ++i)
                for (let j = 0; j <= i; ++j)
                    a[i * n + j] = a[j * n + i] = random() * 2 - 1;
            const { values, vectors } = eigh(Tensor.fromTypedArray(a, [n, n]));
            const lambda = values.data;
            const v = vectors.data;
            for (let i = 1; i < n; ++i)
                assert.ok(lambda[i] >= lambda[i - 1]);
            const rebuilt = new Float64Array(n * n);
            const gram = new Float64Array(n * n);
            for (let i = 0; i < n; ++i) {
                for (let j = 0; j < n; ++j) {
                    let s = 0;
                    let g = 0;
                    for (let k = 0; k < n; ++k) {
                        s += v[k * n + i] * lambda[k] * v[k * n + j];
                        g += v[i * n + k] * v[j * n + k];
                    }
                    rebuilt[i * n + j] = s;
                    gram[i * n + j] = g;
                }
            }
            assertClose(rebuilt, a, { atol: 1e-10, rtol: 0 }, 'VᵀΛV');
            assertClose(gram, Float64Array.from({ length: n * n }, (_, i) => (i % (n + 1) === 0 ? 1 : 0)), { atol: 1e-10, rtol: 0 }, 'VVᵀ');
        });
    }
    it('refuses f32 and non-square input', () => {
        assert.throws(() => eigh(Tensor.zeros([3, 3])), /f64/);
        assert.throws(() => eigh(Tensor.zeros([3, 4], 'f64')), /square/);
    });
});
describe('maskedCg', () => {
    it('solves each row on its support, zeroes the other entries, and never increases the objective', () => {
        const random = rng(42);
        const n = 37;
        const rows = 6;
        const h = randomSpd(n, random);
        const hd = h.data;
        const g = randomF32(rows * n, random);
        const mask = Uint8Array.from({ length: rows * n }, () => (random() < 0.6 ? 1 : 0));
        const start = Float32Array.from(randomF32(rows * n, random), (v, i) => (mask[i] ? v : 0.25));
        const objective = (x) => {
            let f = 0;
            for (let r = 0; r < rows; ++r) {
                for (let i = 0; i < n; ++i) {
                    if (!mask[r * n + i])
                        continue;
                    let hx = 0;
                    for (let j = 0; j < n; ++j)
                        if (mask[r * n + j])
                            hx += hd[i * n + j] * x[r * n + j];
                    f += 0.5 * x[r * n + i] * hx - g[r * n + i] * x[r * n + i];
                }
            }
            return f;
        };
        let previous = objective(start);
        for (const iterations of [1, 2, 4, 8]) {
            const x = Tensor.fromTypedArray(start.slice(), [rows, n]);
            maskedCg(h, Tensor.fromTypedArray(g, [rows, n]), Tensor.fromTypedArray(mask, [rows, n], 'u8'), x, { maxIterations: iterations, rtol: 0 });
            const f = objective(x.data);
            assert.ok(f <= previous + 1e-6 * Math.abs(previous), `${iterations} iterations: ${f} > ${previous}`);
            previous = f;
        }
        const x = Tensor.fromTypedArray(start.slice(), [rows, n]);
        const report = maskedCg(h, Tensor.fromTypedArray(g, [rows, n]), Tensor.fromTypedArray(mask, [rows, n], 'u8'), x, { maxIterations: 200, rtol: 1e-6 });
        assert.ok(report.converged);
        const xs = x.data;
        for (let r = 0; r < rows; ++r) {
            const support = [...Array(n).keys()].filter((j) => mask[r * n + j]);
            const expected = solveRef(support.map((i) => support.map((j) => hd[i * n + j])), support.map((j) => g[r * n + j]));
            assertClose(support.map((j) => xs[r * n + j]), expected, { atol: 1e-3, rtol: 1e-3 }, `row ${r}`);
            for (let j = 0; j < n; ++j)
                if (!mask[r * n + j])
                    assert.equal(xs[r * n + j], 0, `row ${r} entry ${j} off the support`);
        }
    });
});
/** The iteration as lib/compress/alps.ts ran it before alpsAdmmStep: one op per step. */
function stepBySeparateOps(g, inverse, factors, back, rho, c, v, z, previous) {
    const right = g.clone();
    axpy(-1, v, right);
    axpy(rho, z, right);
    const b = factors && back ? gemm(scaleColumns(gemm(right, inverse), factors, { inPlace: true }), back) : gemm(right, inverse);
    const target = b.clone();
    axpy(1 / rho, v, target);
    const scores = square(target);
    const support = c.m ? nmMask(scores, c.n, c.m) : topkMask(scores.reshape([1, -1]), c.kept).reshape(g.shape);
    const zNext = applyMask(target, support);
    const vNext = v.clone();
    axpy(rho, b, vNext);
    axpy(-rho, zNext, vNext);
    const s = support.data;
    const p = previous.data;
    let changes = 0;
    for (let i = 0; i < s.length; ++i)
        changes += s[i] !== p[i] ? 1 : 0;
    return { b, z: zNext, v: vNext, support, changes };
}
/** Random inputs of one step; `exactB` makes B = G exactly (identity inverse, V = Z = 0) from a few values, so U² ties. */
function stepInputs(c, seed, exactB = false) {
    const random = rng(seed);
    const { rows, cols } = c;
    const numel = rows * cols;
    const matrix = (a) => Tensor.fromTypedArray(a, [rows, cols]);
    const g = matrix(exactB ? Float32Array.from({ length: numel }, () => [-2, -1, 1, 2, 0.5][Math.floor(random() * 5)]) : randomF32(numel, random));
    const identity = new Float32Array(cols * cols);
    for (let j = 0; j < cols; ++j)
        identity[j * cols + j] = 1;
    const inverse = Tensor.fromTypedArray(exactB ? identity : randomF32(cols * cols, random).map((x) => x / Math.sqrt(cols)), [cols, cols]);
    const factors = c.factors ? Tensor.fromTypedArray(Float32Array.from({ length: cols }, () => 0.1 + random())) : undefined;
    const back = c.factors ? Tensor.fromTypedArray(randomF32(cols * cols, random).map((x) => x / Math.sqrt(cols)), [cols, cols]) : undefined;
    const v = matrix(exactB ? new Float32Array(numel) : randomF32(numel, random).map((x) => 0.1 * x));
    const z = matrix(exactB ? new Float32Array(numel) : randomF32(numel, random).map((x) => (random() < 0.5 ? 0 : x)));
    const previous = Tensor.fromTypedArray(Uint8Array.from({ length: numel }, () => (random() < 0.4 ? 1 : 0)), [rows, cols], 'u8');
    return { g, inverse, factors, back, v, z, previous, rho: 0.05 + 2 * random() };
}
function runFused(c, inputs) {
    const { rows, cols } = c;
    const state = {
        v: inputs.v.clone(),
        z: inputs.z.clone(),
        b: Tensor.fromTypedArray(poison(new Float32Array(rows * cols)), [rows, cols]),
        work: Tensor.fromTypedArray(poison(new Float32Array(rows * cols)), [rows, cols]),
        support: Tensor.fromTypedArray(poison(new Uint8Array(rows * cols)), [rows, cols], 'u8'),
        previous: inputs.previous.clone(),
    };
    const projection = c.m ? { n: c.n, m: c.m } : { kept: c.kept };
    const changes = alpsAdmmStep(inputs.g, state, { rho: inputs.rho, inverse: inputs.inverse, factors: inputs.factors, back: inputs.back, ...projection });
    return { ...state, changes };
}
function assertSameBits(actual, expected, what) {
    const a = Buffer.from(actual.data.buffer, actual.data.byteOffset, actual.data.byteLength);
    const e = Buffer.from(expected.data.buffer, expected.data.byteOffset, expected.data.byteLength);
    if (a.equals(e))
        return;
    const width = actual.dtype === 'u8' ? 1 : 4;
    let first = 0;
    while (a[first] === e[first])
        ++first;
    const index = Math.floor(first / width);
    assert.fail(`${what}: element ${index} is ${actual.data[index]}, expected ${expected.data[index]}`);
}
describe('alpsAdmmStep', () => {
    // Odd sizes; 300×257 spans two of the kernel's stripes of 65,536 entries, so ties cross a stripe edge.
    const cases = [
        { rows: 1, cols: 1, kept: 1 },
        { rows: 7, cols: 13, kept: 30 },
        { rows: 7, cols: 13, kept: 0 },
        { rows: 7, cols: 13, kept: 91 },
        { rows: 33, cols: 129, kept: 1277, factors: true },
        { rows: 300, cols: 257, kept: 23130 },
        { rows: 300, cols: 257, kept: 61001, factors: true },
        { rows: 9, cols: 28, n: 2, m: 4 },
        { rows: 5, cols: 24, n: 3, m: 8, factors: true },
        { rows: 70, cols: 1000, n: 2, m: 4 },
    ];
    const describeCase = (c) => `${c.rows}×${c.cols}, ${c.m ? `${c.n}:${c.m}` : `kept ${c.kept}`}${c.factors ? ', through factors' : ''}`;
    for (const c of cases) {
        it(`matches the separate ops bit for bit on every kernel variant: ${describeCase(c)}`, () => {
            forEachKernelVariant((variant) => {
                const inputs = stepInputs(c, c.rows * 1000 + c.cols);
                const expected = stepBySeparateOps(inputs.g, inputs.inverse, inputs.factors, inputs.back, inputs.rho, c, inputs.v, inputs.z, inputs.previous);
                const fused = runFused(c, inputs);
                for (const key of ['b', 'z', 'v', 'support'])
                    assertSameBits(fused[key], expected[key], `${variant} ${key}`);
                assert.equal(fused.changes, expected.changes, `${variant} changes`);
            });
        });
    }
    it('selects ties at the threshold in index order across stripes, as topkMask and nmMask do', () => {
        forEachKernelVariant((variant) => {
            for (const c of [
                { rows: 300, cols: 257, kept: 20000 },
                { rows: 300, cols: 257, kept: 45001 },
                { rows: 300, cols: 257, kept: 59000 },
                { rows: 300, cols: 256, n: 2, m: 4 },
            ]) {
                const inputs = stepInputs(c, 5, true);
                const expected = stepBySeparateOps(inputs.g, inputs.inverse, undefined, undefined, inputs.rho, c, inputs.v, inputs.z, inputs.previous);
                const fused = runFused(c, inputs);
                assertSameBits(fused.support, expected.support, `${variant} ${describeCase(c)} support`);
                assertSameBits(fused.z, expected.z, `${variant} ${describeCase(c)} z`);
            }
        });
    });
    for (const c of [cases[1], cases[4], cases[8]]) {
        it(`agrees with a float64 reference of the iteration: ${describeCase(c)}`, async () => {
            const inputs = stepInputs(c, 99);
            const { rows, cols } = c;
            const numel = rows * cols;
            const state = {
                v: inputs.v.clone(),
                z: inputs.z.clone(),
                b: Tensor.fromTypedArray(poison(new Float32Array(numel)), [rows, cols]),
                work: Tensor.fromTypedArray(poison(new Float32Array(numel)), [rows, cols]),
                support: Tensor.fromTypedArray(poison(new Uint8Array(numel)), [rows, cols], 'u8'),
                previous: inputs.previous.clone(),
            };
            const projection = c.m ? { n: c.n, m: c.m } : { kept: c.kept };
            const changes = await alpsAdmmStepAsync(inputs.g, state, { rho: inputs.rho, inverse: inputs.inverse, factors: inputs.factors, back: inputs.back, ...projection });
            const rho = inputs.rho;
            const g = inputs.g.data;
            const v0 = inputs.v.data;
            const z0 = inputs.z.data;
            const right = Float64Array.from(g, (x, i) => x - v0[i] + rho * z0[i]);
            let expectedB = matmulRef(right, rows, cols, false, inputs.inverse.data, cols, cols, false);
            if (inputs.factors && inputs.back) {
                const f = inputs.factors.data;
                expectedB = matmulRef(expectedB.map((x, i) => x * f[i % cols]), rows, cols, false, inputs.back.data, cols, cols, false);
            }
            // B: f32 sums of cols products against float64 ones.
            assertClose(state.b.data, expectedB, { atol: 1e-4, rtol: 1e-4 }, 'b');
            // The rest from the B the op wrote: U = B + V/ρ and its projection, in float64. U's f32 rounding
            // (relative 2⁻²⁴) is the only difference: selected and dropped |U| may overlap by that much.
            const b = state.b.data;
            const u = Float64Array.from(b, (x, i) => x + v0[i] / rho);
            const s = state.support.data;
            const groups = c.m ? numel / c.m : 1;
            const groupSize = c.m ?? numel;
            for (let gi = 0; gi < groups; ++gi) {
                let count = 0;
                let minKept = Infinity;
                let maxDropped = 0;
                for (let i = gi * groupSize; i < (gi + 1) * groupSize; ++i) {
                    assert.ok(s[i] === 0 || s[i] === 1, `support[${i}] = ${s[i]}`);
                    if (s[i]) {
                        ++count;
                        minKept = Math.min(minKept, Math.abs(u[i]));
                    }
                    else {
                        maxDropped = Math.max(maxDropped, Math.abs(u[i]));
                    }
                }
                assert.equal(count, c.m ? c.n : c.kept, `group ${gi}: kept entries`);
                assert.ok(maxDropped <= minKept * (1 + 1e-6), `group ${gi}: a dropped |u| ${maxDropped} exceeds a kept one ${minKept}`);
            }
            const expectedZ = Float64Array.from(u, (x, i) => (s[i] ? x : 0));
            assertClose(state.z.data, expectedZ, { atol: 0, rtol: 1e-6 }, 'z (one f32 rounding of U)');
            assertClose(state.v.data, Float64Array.from(v0, (x, i) => x + rho * (b[i] - expectedZ[i])), { atol: 1e-5, rtol: 1e-5 }, 'v (two f32 roundings)');
            const p = inputs.previous.data;
            assert.equal(changes, s.reduce((sum, x, i) => sum + (x !== p[i] ? 1 : 0), 0));
        });
    }
    it('refuses NaN, mismatched shapes and a bad pattern', () => {
        const c = { rows: 4, cols: 8, kept: 10 };
        const inputs = stepInputs(c, 3);
        inputs.g.data[5] = NaN;
        assert.throws(() => runFused(c, inputs), /NaN/);
        assert.throws(() => runFused({ rows: 4, cols: 8, n: 2, m: 4 }, inputs), /NaN/);
        const ok = stepInputs(c, 4);
        const state = runFused(c, ok);
        assert.throws(() => alpsAdmmStep(ok.g, state, { rho: 1, inverse: Tensor.zeros([7, 7]), kept: 3 }), /inverse/);
        assert.throws(() => alpsAdmmStep(ok.g, { ...state, v: Tensor.zeros([4, 9]) }, { rho: 1, inverse: ok.inverse, kept: 3 }), /v/);
        assert.throws(() => alpsAdmmStep(ok.g, state, { rho: 1, inverse: ok.inverse, kept: 33 }), /kept/);
        assert.throws(() => alpsAdmmStep(ok.g, state, { rho: 1, inverse: ok.inverse, n: 2, m: 3 }), /multiple of m/);
        assert.throws(() => alpsAdmmStep(ok.g, state, { rho: 0, inverse: ok.inverse, kept: 3 }), /rho/);
        assert.throws(() => alpsAdmmStep(ok.g, state, { rho: 1, inverse: ok.inverse, factors: Tensor.zeros([8]), kept: 3 }), /factors/);
    });
});
describe('alps on a wide layer', () => {
    // out ≤ in/3 takes the path that applies the eigenvector factors each iteration instead of an inverse.
    it('beats SparseGPT on reconstruction with few outputs and many inputs, with the exact pattern', async () => {
        const random = rng(77);
        const rows = 12;
        const inputs = 48;
        const hessian = randomSpd(inputs, random);
        const weight = Tensor.fromTypedArray(randomF32(rows * inputs, random), [rows, inputs]);
        const objective = (w) => {
            const h = hessian.data;
            const a = weight.data;
            const b = w.data;
            let num = 0;
            let den = 0;
            for (let r = 0; r < rows; ++r) {
                for (let i = 0; i < inputs; ++i) {
                    for (let j = 0; j < inputs; ++j) {
                        num += (a[r * inputs + i] - b[r * inputs + i]) * h[i * inputs + j] * (a[r * inputs + j] - b[r * inputs + j]);
                        den += a[r * inputs + i] * h[i * inputs + j] * a[r * inputs + j];
                    }
                }
            }
            return num / den;
        };
        for (const sparsity of ['0.8', '2:4']) {
            const pattern = parsePattern(sparsity, 'test');
            const results = {};
            for (const name of ['alps', 'sparsegpt']) {
                const method = getMethod(name);
                ({ weight: results[name] } = await method.compress({ name: 'wide', weight: weight.clone(), pattern, stats: { hessian, tokens: 200 }, options: method.parseOptions({}, 'o') }));
            }
            assert.ok(objective(results.alps) < objective(results.sparsegpt), `${sparsity}: alps ${objective(results.alps)} vs sparsegpt ${objective(results.sparsegpt)}`);
            assert.equal(countZeros(results.alps), sparsity === '2:4' ? rows * inputs / 2 : Math.round(0.8 * rows * inputs));
        }
    });
});
describe('alps on real layers', function () {
    this.timeout(300_000);
    const work = mkdtempSync(join(tmpdir(), 'sparq-alps-'));
    after(() => rmSync(work, { recursive: true, force: true }));
    // Block 0 sees the same calibration inputs in every run, so its layers compare method against method.
    const run = (method, sparsity) => prune({
        model: fixturePath('stories260K'),
        out: join(work, `${method}-${sparsity.replace(':', '-')}`),
        recipe: parseRecipe({ method, sparsity, targets: ['model.layers.0.*'] }),
        calibrationFile: join(sharedDir(), 'data', 'tinystories_calib.txt'),
        nsamples: 32,
        seqLen: 128,
    });
    for (const sparsity of ['0.7', '0.8', '0.9', '2:4']) {
        it(`has lower reconstruction error than SparseGPT at ${sparsity}, the exact pattern, and CG never worsens the objective`, async () => {
            const [alpsReport, sparsegptReport] = [await run('alps', sparsity), await run('sparsegpt', sparsity)];
            assert.equal(alpsReport.linears.length, 7);
            for (const [i, layer] of alpsReport.linears.entries()) {
                const baseline = sparsegptReport.linears[i];
                assert.equal(layer.name, baseline.name);
                assert.ok(layer.relativeError < baseline.relativeError, `${layer.name}: alps ${layer.relativeError} vs sparsegpt ${baseline.relativeError}`);
                const expected = sparsity === '2:4' ? 0.5 : Math.round(Number(sparsity) * layer.shape[0] * layer.shape[1]) / (layer.shape[0] * layer.shape[1]);
                assert.equal(layer.sparsity, expected, layer.name);
                const d = layer.details;
                assert.ok(d.errorAfterCg <= d.errorBeforeCg * (1 + 1e-6), `${layer.name}: CG raised the objective ${d.errorBeforeCg} → ${d.errorAfterCg}`);
                assert.ok(d.iterations >= 3);
            }
        });
    }
});
//# sourceMappingURL=alps.test.js.map