// Transformer building blocks against float64 TypeScript references on random inputs. Tolerances: the
// kernels accumulate reductions in f64 and round once, so results sit within a few f32 ulps; attention
// sums f32 dot products of head_dim terms, hence its 1e-5 absolute slack.
import assert from 'node:assert/strict';
import { addBias, attention, crossEntropy, embedding, gelu, geluTanh, InvalidArgumentError, layerNorm, relu, rmsNorm, rope, ropeInverseFrequencies, scatterAdd, ShapeMismatchError, silu, siluMul, Tensor, } from '../lib/index.js';
import { assertClose, forEachKernelVariant, randomF32, rng } from './helpers.js';
const t32 = (values, shape) => Tensor.fromTypedArray(values, shape);
const F32_TOL = { atol: 1e-6, rtol: 1e-5 };
describe('transformer building blocks', () => {
    it('embedding gathers rows and rejects ids outside the vocabulary', () => {
        const table = t32(randomF32(7 * 5, rng(1)), [7, 5]);
        const ids = Tensor.fromTypedArray(new Int32Array([6, 0, 3, 3]), [2, 2]);
        const out = embedding(table, ids);
        assert.deepEqual(out.shape, [2, 2, 5]);
        const rows = table.data;
        assert.deepEqual([...out.data], [6, 0, 3, 3].flatMap((id) => [...rows.subarray(id * 5, id * 5 + 5)]));
        assert.throws(() => embedding(table, Tensor.fromTypedArray(new Int32Array([7]))), (e) => e instanceof InvalidArgumentError && /token id 7 at position 0/.test(e.message));
    });
    for (const dim of [1, 7, 129]) {
        it(`rmsNorm and layerNorm match float64 (row length ${dim})`, () => {
            const random = rng(dim);
            const rows = 5;
            const x = randomF32(rows * dim, random);
            const w = randomF32(dim, random);
            const b = randomF32(dim, random);
            const rms = rmsNorm(t32(x, [rows, dim]), t32(w, [dim]), 1e-5).data;
            const ln = layerNorm(t32(x, [rows, dim]), t32(w, [dim]), t32(b, [dim]), 1e-5).data;
            const expectedRms = new Float64Array(rows * dim);
            const expectedLn = new Float64Array(rows * dim);
            for (let r = 0; r < rows; ++r) {
                const row = x.subarray(r * dim, (r + 1) * dim);
                const meanSquare = row.reduce((s, v) => s + v * v, 0) / dim;
                const mean = row.reduce((s, v) => s + v, 0) / dim;
                const variance = row.reduce((s, v) => s + (v - mean) ** 2, 0) / dim;
                for (let c = 0; c < dim; ++c) {
                    expectedRms[r * dim + c] = (row[c] / Math.sqrt(meanSquare + 1e-5)) * w[c];
                    expectedLn[r * dim + c] = ((row[c] - mean) / Math.sqrt(variance + 1e-5)) * w[c] + b[c];
                }
            }
            assertClose(rms, expectedRms, F32_TOL, 'rmsNorm');
            assertClose(ln, expectedLn, { atol: 1e-5, rtol: 1e-5 }, 'layerNorm');
        });
    }
    it('rope rotates each (i, i + d/2) pair by position · frequency, in place', () => {
        const tokens = 5, heads = 3, dim = 8;
        const x = randomF32(tokens * heads * dim, rng(3));
        const original = Float64Array.from(x);
        const positions = new Int32Array([0, 1, 7, 30, 2]);
        const invFreq = ropeInverseFrequencies(dim, 10000);
        rope(t32(x, [tokens, heads, dim]), Tensor.fromTypedArray(positions), Tensor.fromTypedArray(invFreq));
        const expected = new Float64Array(x.length);
        for (let t = 0; t < tokens; ++t) {
            for (let h = 0; h < heads; ++h) {
                for (let i = 0; i < dim / 2; ++i) {
                    const base = (t * heads + h) * dim;
                    const angle = Math.fround(positions[t] * invFreq[i]);
                    const [a, b] = [original[base + i], original[base + i + dim / 2]];
                    expected[base + i] = a * Math.cos(angle) - b * Math.sin(angle);
                    expected[base + i + dim / 2] = b * Math.cos(angle) + a * Math.sin(angle);
                }
            }
        }
        assertClose(x, expected, F32_TOL, 'rope');
    });
    it('computes Llama-3 frequency bands: high kept, low divided by the factor, middle blended', () => {
        const plain = ropeInverseFrequencies(32, 500000);
        const scaled = ropeInverseFrequencies(32, 500000, { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 64 });
        const bands = [...plain].map((f, i) => {
            const wavelength = (2 * Math.PI) / f;
            if (wavelength < 64 / 4)
                return scaled[i] === f ? 'high' : 'wrong';
            if (wavelength > 64)
                return Math.abs(scaled[i] - f / 8) < 1e-12 * f + 1e-30 ? 'low' : 'wrong';
            return scaled[i] < f && scaled[i] > f / 8 ? 'middle' : 'wrong';
        });
        assert.ok(!bands.includes('wrong'), bands.join(' '));
        assert.ok(bands.includes('high') && bands.includes('middle') && bands.includes('low'), bands.join(' '));
        const linear = ropeInverseFrequencies(32, 10000, { type: 'linear', factor: 4 });
        assertClose(linear, ropeInverseFrequencies(32, 10000).map((f) => f / 4), { atol: 0, rtol: 1e-7 }, 'linear');
    });
    for (const [tokens, keys, headsQ, headsKV, dim] of [
        [1, 1, 1, 1, 1],
        [7, 7, 4, 2, 16],
        [5, 9, 6, 1, 8],
        [33, 33, 2, 2, 64],
        [70, 150, 4, 2, 24],
        [60, 130, 2, 1, 8], // the BLAS path with grouped heads
        [100, 12000, 1, 1, 4], // several query blocks of scores in the BLAS path
    ]) {
        it(`attention matches softmax(q·kᵀ/√d)·v in every kernel variant, causal and not (T=${tokens}, S=${keys}, ${headsQ}/${headsKV} heads, d=${dim})`, () => {
            const random = rng(tokens * 100 + keys);
            const q = randomF32(tokens * headsQ * dim, random);
            const k = randomF32(keys * headsKV * dim, random);
            const v = randomF32(keys * headsKV * dim, random);
            for (const causal of [true, false]) {
                const outputs = [];
                forEachKernelVariant((variant) => {
                    outputs.push([variant, attention(t32(q, [tokens, headsQ, dim]), t32(k, [keys, headsKV, dim]), t32(v, [keys, headsKV, dim]), { causal }).data]);
                });
                const out = outputs[0][1];
                const expected = new Float64Array(out.length);
                const scale = 1 / Math.sqrt(dim);
                for (let t = 0; t < tokens; ++t) {
                    for (let h = 0; h < headsQ; ++h) {
                        const hk = Math.floor(h / (headsQ / headsKV));
                        const visible = causal ? t + (keys - tokens) + 1 : keys;
                        const scores = [];
                        for (let j = 0; j < visible; ++j) {
                            let dot = 0;
                            for (let c = 0; c < dim; ++c)
                                dot += q[(t * headsQ + h) * dim + c] * k[(j * headsKV + hk) * dim + c];
                            scores.push(dot * scale);
                        }
                        const max = Math.max(...scores);
                        const weights = scores.map((s) => Math.exp(s - max));
                        const total = weights.reduce((a, b) => a + b, 0);
                        for (let c = 0; c < dim; ++c) {
                            let acc = 0;
                            for (let j = 0; j < visible; ++j)
                                acc += weights[j] * v[(j * headsKV + hk) * dim + c];
                            expected[(t * headsQ + h) * dim + c] = acc / total;
                        }
                    }
                }
                for (const [variant, result] of outputs)
                    assertClose(result, expected, { atol: 1e-5, rtol: 1e-5 }, `${variant} causal=${causal}`);
            }
        });
    }
    it('attention rejects head counts that do not group', () => {
        assert.throws(() => attention(Tensor.zeros([2, 3, 4]), Tensor.zeros([2, 2, 4]), Tensor.zeros([2, 2, 4])), ShapeMismatchError);
    });
    it('siluMul, addBias and the activations match float64, in every kernel variant', () => {
        const n = 1001;
        const x = randomF32(n, rng(9)).map((v) => v * 4);
        const up = randomF32(n, rng(10));
        const xs = [...x];
        const sig = (v) => 1 / (1 + Math.exp(-v));
        // Maclaurin series of erf: accurate to double rounding for |z| ≤ 2.2, which covers |x| ≤ 3 below.
        const erf = (z) => {
            let sum = 0;
            let term = z;
            for (let k = 0; k < 200 && Math.abs(term) > 1e-18; ++k) {
                sum += term / (2 * k + 1);
                term *= (-z * z) / (k + 1);
            }
            return (2 / Math.sqrt(Math.PI)) * sum;
        };
        forEachKernelVariant((variant) => {
            const X = t32(x, [n]);
            assertClose(siluMul(X, t32(up, [n])).data, xs.map((v, i) => v * sig(v) * up[i]), F32_TOL, `${variant} siluMul`);
            assertClose(silu(X).data, xs.map((v) => v * sig(v)), F32_TOL, `${variant} silu`);
            assertClose(relu(X).data, xs.map((v) => Math.max(v, 0)), { atol: 0, rtol: 0 }, `${variant} relu`);
            const clipped = Float32Array.from(x, (v) => Math.max(-3, Math.min(3, v)));
            assertClose(gelu(t32(clipped, [n])).data, [...clipped].map((v) => 0.5 * v * (1 + erf(v / Math.SQRT2))), F32_TOL, `${variant} gelu`);
            // Tails: gelu(x) meets relu(x) within 1e-7 beyond |x| = 6.
            const tails = t32(new Float32Array([-40, -8, 8, 40]), [4]);
            assertClose(gelu(tails).data, [0, 0, 8, 40], { atol: 1e-7, rtol: 0 }, `${variant} gelu tails`);
            assertClose(geluTanh(X).data, xs.map((v) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)))), F32_TOL, `${variant} geluTanh`);
        });
        const m = t32(Float32Array.from({ length: 6 }, (_, i) => i), [2, 3]);
        addBias(m, t32(new Float32Array([10, 20, 30]), [3]));
        assert.deepEqual([...m.data], [10, 21, 32, 13, 24, 35]);
    });
    it('scatterAdd adds weighted rows into their targets, repeated targets included', () => {
        const out = t32(Float32Array.from({ length: 4 * 3 }, (_, i) => i), [4, 3]);
        const rows = t32(new Float32Array([1, 1, 1, 2, 2, 2, 10, 20, 30]), [3, 3]);
        scatterAdd(out, rows, Tensor.fromTypedArray(new Int32Array([3, 0, 3])), t32(new Float32Array([0.5, 2, 0.1]), [3]));
        assert.deepEqual([...out.data], [4, 5, 6, 3, 4, 5, 6, 7, 8, 9 + 0.5 + 1, 10 + 0.5 + 2, 11 + 0.5 + 3].map(Math.fround));
        assert.throws(() => scatterAdd(out, rows, Tensor.fromTypedArray(new Int32Array([0, 4, 1])), t32(new Float32Array(3), [3])), /index 4 at row 1/);
    });
    it('crossEntropy gives each row logsumexp − target logit, and rejects bad targets', () => {
        const rows = 6, vocab = 129;
        const logits = randomF32(rows * vocab, rng(12)).map((v) => v * 10);
        const targets = new Int32Array([0, 128, 5, 64, 64, 1]);
        const nll = crossEntropy(t32(logits, [rows, vocab]), Tensor.fromTypedArray(targets)).data;
        const expected = [...targets].map((target, r) => {
            const row = [...logits.subarray(r * vocab, (r + 1) * vocab)];
            const max = Math.max(...row);
            return max + Math.log(row.reduce((s, v) => s + Math.exp(v - max), 0)) - row[target];
        });
        assertClose(nll, expected, F32_TOL, 'nll');
        assert.throws(() => crossEntropy(t32(logits, [rows, vocab]), Tensor.fromTypedArray(new Int32Array([0, 0, 0, 0, 0, 129]))), /target 129 at row 5/);
    });
});
//# sourceMappingURL=nn.test.js.map