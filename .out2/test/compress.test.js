// The pruning methods on single layers: SparseGPT against a plain float64 implementation of the
// algorithm, exact sparsity and valid N:M groups, Wanda's and magnitude's per-row / per-matrix rules,
// and the small native ops they use (dot, scaleColumns).
import assert from 'node:assert/strict';
import { countZeros, dot, getMethod, HessianAccumulator, parsePattern, scaleColumns, sparsegptSweep, Tensor } from '../lib/index.js';
import { assertClose, forEachKernelVariant, randomF32, rng } from './helpers.js';
/** H = (2/T)·XᵀX of random inputs, with some columns dead (all-zero inputs) and correlated ones. */
function randomHessian(features, tokens, random, dead = []) {
    const x = randomF32(tokens * features, random);
    for (let t = 0; t < tokens; ++t) {
        for (const j of dead)
            x[t * features + j] = 0;
        if (features > 3)
            x[t * features + 3] = 0.9 * x[t * features + 2] + 0.1 * x[t * features + 3];
    }
    const acc = new HessianAccumulator(features);
    acc.add(Tensor.fromTypedArray(x, [tokens, features]));
    return acc.hessian;
}
/** Lower Cholesky factor of a symmetric positive definite matrix (float64). */
function choleskyRef(a, n) {
    const l = new Float64Array(n * n);
    for (let j = 0; j < n; ++j) {
        let d = a[j * n + j];
        for (let k = 0; k < j; ++k)
            d -= l[j * n + k] ** 2;
        assert.ok(d > 0, 'reference Cholesky: not positive definite');
        l[j * n + j] = Math.sqrt(d);
        for (let i = j + 1; i < n; ++i) {
            let s = a[i * n + j];
            for (let k = 0; k < j; ++k)
                s -= l[i * n + k] * l[j * n + k];
            l[i * n + j] = s / l[j * n + j];
        }
    }
    return l;
}
/** A⁻¹ through A = LLᵀ: solve column by column (float64). */
function inverseRef(a, n) {
    const l = choleskyRef(a, n);
    const inv = new Float64Array(n * n);
    for (let c = 0; c < n; ++c) {
        const y = new Float64Array(n);
        for (let i = 0; i < n; ++i) {
            let s = i === c ? 1 : 0;
            for (let k = 0; k < i; ++k)
                s -= l[i * n + k] * y[k];
            y[i] = s / l[i * n + i];
        }
        for (let i = n - 1; i >= 0; --i) {
            let s = y[i];
            for (let k = i + 1; k < n; ++k)
                s -= l[k * n + i] * inv[k * n + c];
            inv[i * n + c] = s / l[i * n + i];
        }
    }
    return inv;
}
/** The SparseGPT algorithm as the paper states it, in float64, one column at a time. */
function sparsegptRef(weight, rows, cols, hessian, pattern, damp, blockSize) {
    const w = Float64Array.from(weight);
    const h = Float64Array.from(hessian);
    for (let j = 0; j < cols; ++j) {
        if (h[j * cols + j] === 0) {
            h[j * cols + j] = 1;
            for (let r = 0; r < rows; ++r)
                w[r * cols + j] = 0;
        }
    }
    let meanDiag = 0;
    for (let j = 0; j < cols; ++j)
        meanDiag += h[j * cols + j] / cols;
    for (let j = 0; j < cols; ++j)
        h[j * cols + j] += damp * meanDiag;
    const lowerOfInverse = choleskyRef(inverseRef(h, cols), cols);
    const u = (i, j) => lowerOfInverse[j * cols + i]; // U = Lᵀ
    const block = pattern.kind === 'nm' ? Math.max(pattern.m, Math.floor(blockSize / pattern.m) * pattern.m) : blockSize;
    const prunedBefore = (c) => (pattern.kind === 'nm' ? 0 : Math.round(pattern.sparsity * rows * c));
    const prune = new Uint8Array(rows * cols);
    for (let start = 0; start < cols; start += block) {
        const end = Math.min(cols, start + block);
        if (pattern.kind === 'unstructured') {
            const entries = [];
            for (let r = 0; r < rows; ++r) {
                for (let j = start; j < end; ++j)
                    entries.push({ score: w[r * cols + j] ** 2 / u(j, j) ** 2, index: r * cols + j });
            }
            // Flattened block order (row, then column) breaks ties, as the native top-k does.
            entries.sort((a, b) => a.score - b.score || a.index - b.index);
            const count = prunedBefore(end) - prunedBefore(start);
            for (let i = 0; i < count; ++i)
                prune[entries[i].index] = 1;
        }
        const errors = new Float64Array(rows * (end - start));
        for (let j = start; j < end; ++j) {
            for (let r = 0; r < rows; ++r) {
                if (pattern.kind === 'nm' && (j - start) % pattern.m === 0) {
                    const group = [...Array(pattern.m).keys()].map((t) => ({ t, score: w[r * cols + j + t] ** 2 / u(j + t, j + t) ** 2 }));
                    group.sort((a, b) => a.score - b.score || a.t - b.t);
                    for (let i = 0; i < pattern.m - pattern.n; ++i)
                        prune[r * cols + j + group[i].t] = 1;
                }
                const value = w[r * cols + j];
                const q = prune[r * cols + j] ? 0 : value;
                const e = (value - q) / u(j, j);
                errors[r * (end - start) + j - start] = e;
                w[r * cols + j] = q; // = w_j − e·U_jj, written exactly
                for (let k = j + 1; k < end; ++k)
                    w[r * cols + k] -= e * u(j, k);
            }
        }
        for (let r = 0; r < rows; ++r) {
            for (let k = end; k < cols; ++k) {
                let s = 0;
                for (let j = start; j < end; ++j)
                    s += errors[r * (end - start) + j - start] * u(j, k);
                w[r * cols + k] -= s;
            }
        }
    }
    return w;
}
describe('sparsegpt', () => {
    const cases = [
        { rows: 37, cols: 96, pattern: '0.5', block: 32, dead: [5, 40] },
        { rows: 13, cols: 70, pattern: '0.7', block: 16 },
        { rows: 29, cols: 96, pattern: '2:4', block: 32, dead: [7] },
        { rows: 11, cols: 64, pattern: '4:8', block: 20 },
        { rows: 9, cols: 60, pattern: '1:3', block: 128 },
    ];
    for (const c of cases) {
        it(`equals the float64 reference of the algorithm: ${c.rows}×${c.cols}, ${c.pattern}, block ${c.block}${c.dead ? ', dead inputs' : ''}`, async () => {
            const random = rng(c.rows * 1000 + c.cols);
            const pattern = parsePattern(c.pattern, 'test');
            const hessian = randomHessian(c.cols, 3 * c.cols, random, c.dead);
            const weight = randomF32(c.rows * c.cols, random);
            const expected = sparsegptRef(weight, c.rows, c.cols, hessian.data, pattern, 0.01, c.block);
            const method = getMethod('sparsegpt');
            const result = await method.compress({
                name: 'layer',
                weight: Tensor.fromTypedArray(weight.slice(), [c.rows, c.cols]),
                pattern,
                stats: { hessian, tokens: 3 * c.cols },
                options: method.parseOptions({ blockSize: c.block }, 'options'),
            });
            const actual = result.weight.data;
            // The same entries are pruned, and the compensated weights agree to float32 accuracy.
            for (let i = 0; i < actual.length; ++i)
                assert.equal(actual[i] === 0, expected[i] === 0, `entry ${i}: zero in one result only`);
            assertClose(actual, expected, { atol: 2e-4, rtol: 2e-4 }, 'pruned weight');
            assert.equal(result.details?.deadInputs, c.dead?.length ?? 0);
        });
    }
    it('gives the same result in every kernel variant', () => {
        const random = rng(99);
        const hessian = randomHessian(48, 100, random);
        const weight = randomF32(21 * 48, random);
        const results = [];
        const factor = Tensor.fromTypedArray(Float32Array.from(choleskyRef(inverseRef(Float64Array.from(hessian.data).map((v, i) => (i % 49 === 0 ? v + 0.05 : v)), 48), 48)), [48, 48]).transpose().contiguous();
        forEachKernelVariant(() => {
            for (const pattern of ['0.5', '2:4']) {
                const w = Tensor.fromTypedArray(weight.slice(), [21, 48]);
                sparsegptSweep(w, factor, { pattern: parsePattern(pattern, 'test'), blockSize: 16 });
                results.push(w.data);
            }
        });
        for (let i = 2; i < results.length; ++i)
            assertClose(results[i], results[i % 2], { atol: 1e-5, rtol: 1e-5 }, `variant ${i >> 1}`);
    });
    it('prunes exactly the requested count per matrix, and keeps n of every m', async () => {
        const random = rng(5);
        const method = getMethod('sparsegpt');
        for (const [rows, cols, text] of [[64, 200, '0.5'], [33, 130, '0.6'], [40, 256, '2:4'], [16, 128, '4:8']]) {
            const pattern = parsePattern(text, 'test');
            const weight = Tensor.fromTypedArray(randomF32(rows * cols, random), [rows, cols]);
            const { weight: pruned } = await method.compress({
                name: 'layer',
                weight,
                pattern,
                stats: { hessian: randomHessian(cols, 2 * cols, random), tokens: 2 * cols },
                options: method.parseOptions({}, 'options'),
            });
            const w = pruned.data;
            if (pattern.kind === 'unstructured') {
                assert.equal(countZeros(pruned), Math.round(pattern.sparsity * rows * cols), `${text} on ${rows}×${cols}`);
            }
            else {
                for (let g = 0; g < w.length; g += pattern.m) {
                    let nonzero = 0;
                    for (let t = 0; t < pattern.m; ++t)
                        nonzero += w[g + t] !== 0 ? 1 : 0;
                    assert.equal(nonzero, pattern.n, `group at ${g} of ${text}`);
                }
            }
        }
    });
    it('refuses N:M when the input size is not a multiple of M, and needs calibration', async () => {
        const method = getMethod('sparsegpt');
        const random = rng(3);
        await assert.rejects(method.compress({ name: 'l', weight: Tensor.zeros([4, 10]), pattern: parsePattern('2:4', 't'), stats: { hessian: randomHessian(10, 20, random), tokens: 20 }, options: method.parseOptions({}, 'o') }), /multiple of 4/);
        await assert.rejects(method.compress({ name: 'l', weight: Tensor.zeros([4, 8]), pattern: parsePattern('0.5', 't'), options: method.parseOptions({}, 'o') }), /needs calibration/);
        assert.throws(() => method.parseOptions({ dampp: 1 }, 'recipe.options'), /recipe.options: sparsegpt has no option 'dampp'/);
    });
});
describe('wanda and magnitude', () => {
    it('wanda prunes the round(p·in) lowest |W|·‖X_j‖ of every row', async () => {
        const random = rng(11);
        const rows = 17;
        const cols = 53;
        const hessian = randomHessian(cols, 80, random, [3]);
        const weight = randomF32(rows * cols, random);
        const method = getMethod('wanda');
        const h = hessian.data;
        // Wanda reads only Σ_t x_tj² (here the Hessian's diagonal, the same ranking up to a constant factor).
        const inputSquares = Tensor.fromTypedArray(Float32Array.from({ length: cols }, (_, j) => h[j * cols + j]));
        const { weight: pruned } = await method.compress({ name: 'l', weight: Tensor.fromTypedArray(weight.slice(), [rows, cols]), pattern: parsePattern('0.3', 't'), stats: { inputSquares, tokens: 80 }, options: {} });
        const w = pruned.data;
        const perRow = Math.round(0.3 * cols);
        for (let r = 0; r < rows; ++r) {
            const scores = [...Array(cols).keys()].map((j) => ({ j, s: Math.abs(weight[r * cols + j]) * Math.sqrt(h[j * cols + j]) }));
            scores.sort((a, b) => a.s - b.s || b.j - a.j);
            const pruneSet = new Set(scores.slice(0, perRow).map((e) => e.j));
            for (let j = 0; j < cols; ++j) {
                assert.equal(w[r * cols + j], pruneSet.has(j) ? 0 : weight[r * cols + j], `row ${r} column ${j}`);
            }
        }
    });
    it('wanda and magnitude N:M keep the n highest scores of every group', async () => {
        const random = rng(12);
        const rows = 9;
        const cols = 64;
        const hessian = randomHessian(cols, 70, random);
        const h = hessian.data;
        const weight = randomF32(rows * cols, random);
        for (const name of ['wanda', 'magnitude']) {
            const { weight: pruned } = await getMethod(name).compress({ name: 'l', weight: Tensor.fromTypedArray(weight.slice(), [rows, cols]), pattern: parsePattern('2:4', 't'), stats: { hessian, inputSquares: Tensor.fromTypedArray(Float32Array.from({ length: cols }, (_, j) => h[j * cols + j])), tokens: 70 }, options: {} });
            const w = pruned.data;
            for (let g = 0; g < w.length; g += 4) {
                const score = (i) => Math.abs(weight[i]) * (name === 'wanda' ? Math.sqrt(h[i % cols * cols + (i % cols)]) : 1);
                const order = [0, 1, 2, 3].sort((a, b) => score(g + b) - score(g + a) || a - b);
                for (const [rank, t] of order.entries())
                    assert.equal(w[g + t], rank < 2 ? weight[g + t] : 0, `${name} group ${g}`);
            }
        }
    });
    it('magnitude prunes the smallest |W| over the whole matrix', async () => {
        const random = rng(13);
        const weight = randomF32(31 * 47, random);
        const { weight: pruned } = await getMethod('magnitude').compress({ name: 'l', weight: Tensor.fromTypedArray(weight.slice(), [31, 47]), pattern: parsePattern('65%', 't'), options: {} });
        const w = pruned.data;
        const sorted = [...weight].map(Math.abs).sort((a, b) => a - b);
        const count = Math.round(0.65 * weight.length);
        const threshold = sorted[count - 1];
        assert.equal(countZeros(pruned), count);
        for (let i = 0; i < w.length; ++i)
            assert.equal(w[i], Math.abs(weight[i]) <= threshold ? 0 : weight[i]);
    });
    it('parses patterns and refuses impossible ones by name', () => {
        assert.deepEqual(parsePattern('50%', 'x'), { kind: 'unstructured', sparsity: 0.5 });
        assert.deepEqual(parsePattern(0.25, 'x'), { kind: 'unstructured', sparsity: 0.25 });
        assert.deepEqual(parsePattern('2:4', 'x'), { kind: 'nm', n: 2, m: 4 });
        for (const bad of ['1.5', '0', '100%', '4:2', '0:4', '2:64', 'half', '-0.1'])
            assert.throws(() => parsePattern(bad, '--sparsity'), /--sparsity/, bad);
    });
});
describe('dot and scaleColumns', () => {
    it('dot accumulates in float64 over odd lengths and propagates NaN', () => {
        const random = rng(21);
        forEachKernelVariant(() => {
            for (const n of [1, 7, 129, 100003]) {
                const a = randomF32(n, random);
                const b = randomF32(n, random);
                let expected = 0;
                for (let i = 0; i < n; ++i)
                    expected += a[i] * b[i];
                assertClose([dot(Tensor.fromTypedArray(a), Tensor.fromTypedArray(b))], [expected], { atol: 1e-9, rtol: 1e-12 }, `dot ${n}`);
            }
            const withNaN = new Float32Array([1, NaN, 2]);
            assert.ok(Number.isNaN(dot(Tensor.fromTypedArray(withNaN), Tensor.fromTypedArray(withNaN))));
        });
    });
    it('scaleColumns multiplies each column by its factor (random nonzero factors: an unwritten zero fails)', () => {
        const random = rng(22);
        forEachKernelVariant(() => {
            for (const [rows, cols] of [[1, 1], [7, 129], [130, 33]]) {
                const x = randomF32(rows * cols, random);
                const s = randomF32(cols, random);
                const result = scaleColumns(Tensor.fromTypedArray(x, [rows, cols]), Tensor.fromTypedArray(s));
                const expected = x.map((v, i) => v * s[i % cols]);
                assertClose(result.data, expected, { atol: 0, rtol: 1e-7 }, 'scaleColumns');
            }
        });
        assert.throws(() => scaleColumns(Tensor.zeros([2, 3]), Tensor.zeros([2])), /scale/);
    });
});
//# sourceMappingURL=compress.test.js.map