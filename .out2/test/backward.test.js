// Backward kernels (nn-backward.ts) against gradients of float64 forward references by central finite
// differences: for L = Σ gradOut·f(inputs) with a random gradOut, ∂L/∂x_i ≈ (L(x + h·e_i) − L(x − h·e_i)) / 2h,
// h = 1e-6·max(1, |x_i|), everything in float64. The native kernels run on the f32 copies of the same inputs.
//
// Tolerance: |native − fd| ≤ 1e-5 + 1e-4·max|fd| per element (GRAD_TOL). The finite differences themselves
// are good to ~1e-9 (truncation O(h²), rounding ~1e-16·|L|/h); the kernels work in f32 with f64 reductions
// (f32 GEMMs for attention), so they sit within ~1e-6 of the gradient's scale. The slack is ~10× that, and
// still ~1000× below what a wrong or missing term produces (an error of the order of max|fd|).
// Accumulated outputs start from random values and the increment (after − before) is compared. Overwritten
// outputs are passed in poisoned with NaN, so an element a kernel forgets to write fails the check.
import assert from 'node:assert/strict';
import { activationBackward, adamwStep, attention, attentionBackward, attentionBackwardAsync, columnSums, crossEntropyBackward, embeddingBackward, InvalidArgumentError, normBackward, ropeBackward, ropeInverseFrequencies, scatterAddBackward, ShapeMismatchError, siluMulBackward, Tensor, } from '../lib/index.js';
import { assertClose, randomF32, rng } from './helpers.js';
const t32 = (values, shape) => Tensor.fromTypedArray(values, [...shape]);
const i32 = (values, shape) => Tensor.fromTypedArray(Int32Array.from(values), shape ?? [values.length]);
const f64 = (a) => Float64Array.from(a);
const nanTensor = (shape) => t32(new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(NaN), [...shape]);
const data = (t) => t.data;
/** ∂(Σ gradOut·f(inputs)) / ∂inputs[which] by central differences, in float64. */
function numericGrad(f, inputs, gradOut, which) {
    const x = inputs[which];
    const grad = new Float64Array(x.length);
    const loss = () => {
        const y = f(inputs);
        let sum = 0;
        for (let i = 0; i < y.length; ++i)
            sum += gradOut[i] * y[i];
        return sum;
    };
    for (let i = 0; i < x.length; ++i) {
        const v = x[i];
        const h = 1e-6 * Math.max(1, Math.abs(v));
        x[i] = v + h;
        const plus = loss();
        x[i] = v - h;
        const minus = loss();
        x[i] = v;
        grad[i] = (plus - minus) / (2 * h);
    }
    return grad;
}
function assertGrad(actual, expected, what) {
    let scale = 0;
    for (let i = 0; i < expected.length; ++i)
        scale = Math.max(scale, Math.abs(expected[i]));
    assertClose(actual, expected, { atol: 1e-5 + 1e-4 * scale, rtol: 0 }, what);
}
/** after − before, elementwise, in float64. */
function increment(after, before) {
    return Float64Array.from(after, (v, i) => v - before[i]);
}
// ---- float64 forward references ----
function normRef(kind, rows, dim, eps, withBias) {
    return ([x, w, b]) => {
        const out = new Float64Array(rows * dim);
        for (let r = 0; r < rows; ++r) {
            const row = x.subarray(r * dim, (r + 1) * dim);
            const mean = kind === 'layer' ? row.reduce((s, v) => s + v, 0) / dim : 0;
            const variance = row.reduce((s, v) => s + (v - mean) ** 2, 0) / dim;
            const inverse = 1 / Math.sqrt(variance + eps);
            for (let c = 0; c < dim; ++c)
                out[r * dim + c] = (row[c] - mean) * inverse * w[c] + (withBias ? b[c] : 0);
        }
        return out;
    };
}
function ropeRef(tokens, heads, dim, positions, invFreq) {
    const half = dim / 2;
    return ([x]) => {
        const out = new Float64Array(x.length);
        for (let t = 0; t < tokens; ++t) {
            for (let h = 0; h < heads; ++h) {
                for (let i = 0; i < half; ++i) {
                    const angle = Math.fround(positions[t] * invFreq[i]);
                    const at = (t * heads + h) * dim;
                    const a = x[at + i];
                    const b = x[at + i + half];
                    out[at + i] = a * Math.cos(angle) - b * Math.sin(angle);
                    out[at + i + half] = b * Math.cos(angle) + a * Math.sin(angle);
                }
            }
        }
        return out;
    };
}
function attentionRef(s) {
    const { T, S, Hq, Hkv, d, causal, scale } = s;
    return ([q, k, v]) => {
        const out = new Float64Array(T * Hq * d);
        const p = new Float64Array(S);
        for (let t = 0; t < T; ++t) {
            const visible = causal ? Math.min(S, t + S - T + 1) : S;
            for (let h = 0; h < Hq; ++h) {
                const hk = Math.floor(h / (Hq / Hkv));
                let max = -Infinity;
                for (let j = 0; j < visible; ++j) {
                    let dot = 0;
                    for (let c = 0; c < d; ++c)
                        dot += q[(t * Hq + h) * d + c] * k[(j * Hkv + hk) * d + c];
                    p[j] = dot * scale;
                    max = Math.max(max, p[j]);
                }
                let sum = 0;
                for (let j = 0; j < visible; ++j)
                    sum += p[j] = Math.exp(p[j] - max);
                for (let j = 0; j < visible; ++j) {
                    for (let c = 0; c < d; ++c)
                        out[(t * Hq + h) * d + c] += (p[j] / sum) * v[(j * Hkv + hk) * d + c];
                }
            }
        }
        return out;
    };
}
/** The textbook attention backward in float64 (for shapes too large for finite differences). */
function attentionBackwardRef(s, q, k, v, gradOut) {
    const { T, S, Hq, Hkv, d, causal, scale } = s;
    const dq = new Float64Array(q.length);
    const dk = new Float64Array(k.length);
    const dv = new Float64Array(v.length);
    const p = new Float64Array(S);
    const dp = new Float64Array(S);
    for (let t = 0; t < T; ++t) {
        const visible = causal ? Math.min(S, t + S - T + 1) : S;
        for (let h = 0; h < Hq; ++h) {
            const hk = Math.floor(h / (Hq / Hkv));
            const qo = (t * Hq + h) * d;
            let max = -Infinity;
            for (let j = 0; j < visible; ++j) {
                let dot = 0;
                for (let c = 0; c < d; ++c)
                    dot += q[qo + c] * k[(j * Hkv + hk) * d + c];
                p[j] = dot * scale;
                max = Math.max(max, p[j]);
            }
            let sum = 0;
            for (let j = 0; j < visible; ++j)
                sum += p[j] = Math.exp(p[j] - max);
            let rowDot = 0;
            for (let j = 0; j < visible; ++j) {
                p[j] /= sum;
                let dot = 0;
                for (let c = 0; c < d; ++c)
                    dot += gradOut[qo + c] * v[(j * Hkv + hk) * d + c];
                dp[j] = dot;
                rowDot += p[j] * dot;
            }
            for (let j = 0; j < visible; ++j) {
                const ds = p[j] * (dp[j] - rowDot) * scale;
                const ko = (j * Hkv + hk) * d;
                for (let c = 0; c < d; ++c) {
                    dv[ko + c] += p[j] * gradOut[qo + c];
                    dq[qo + c] += ds * k[ko + c];
                    dk[ko + c] += ds * q[qo + c];
                }
            }
        }
    }
    return { dq, dk, dv };
}
const sigmoid = (x) => 1 / (1 + Math.exp(-x));
// erf to ~1e-13 (JavaScript has none): its Taylor series for |x| ≤ 3, erfc's asymptotic series beyond.
const erf = (x) => {
    if (Math.abs(x) > 3) {
        const z = Math.abs(x);
        let term = 1;
        let sum = 1;
        for (let n = 1; n < 12; ++n) {
            term *= -(2 * n - 1) / (2 * z * z);
            sum += term;
        }
        const erfc = (Math.exp(-z * z) / (z * Math.sqrt(Math.PI))) * sum;
        return Math.sign(x) * (1 - erfc);
    }
    let term = x;
    let sum = x;
    for (let n = 1; n < 80; ++n) {
        term *= (-x * x) / n;
        sum += term / (2 * n + 1);
    }
    return (2 / Math.sqrt(Math.PI)) * sum;
};
const ACTIVATIONS = {
    relu: (x) => Math.max(x, 0),
    silu: (x) => x * sigmoid(x),
    gelu: (x) => 0.5 * x * (1 + erf(x / Math.SQRT2)),
    geluTanh: (x) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3))),
};
describe('backward kernels', () => {
    it('embeddingBackward accumulates rows, repeated ids included', () => {
        const random = rng(11);
        for (const dim of [1, 7, 13]) {
            const vocab = 6;
            const ids = [4, 0, 4, 2, 4, 5];
            const gradOut = randomF32(ids.length * dim, random);
            const table = randomF32(vocab * dim, random);
            const before = table.slice();
            const result = embeddingBackward(t32(gradOut, [2, 3, dim]), i32(ids, [2, 3]), t32(table, [vocab, dim]));
            assert.equal(result.data, table);
            const forward = ([w]) => Float64Array.from(ids.flatMap((id) => [...w.subarray(id * dim, (id + 1) * dim)]));
            assertGrad(increment(table, before), numericGrad(forward, [f64(before)], gradOut, 0), `gradTable (D=${dim})`);
        }
    });
    for (const [kind, withBias] of [['rms', false], ['layer', false], ['layer', true]]) {
        for (const dim of [1, 7, 13]) {
            it(`normBackward ${kind}${withBias ? ' with bias' : ''} matches finite differences (D=${dim}, [T, H, d] input)`, () => {
                const random = rng(dim * 10 + (kind === 'rms' ? 1 : 2) + (withBias ? 4 : 0));
                const shape = [3, 2, dim];
                const rows = 6;
                const eps = 1e-5;
                const x = randomF32(rows * dim, random);
                const w = randomF32(dim, random);
                const b = randomF32(dim, random);
                const gradOut = randomF32(rows * dim, random);
                const gw = randomF32(dim, random);
                const gb = randomF32(dim, random);
                const gwBefore = gw.slice();
                const gbBefore = gb.slice();
                const out = nanTensor(shape);
                const gx = normBackward(kind, t32(x, shape), t32(w, [dim]), t32(gradOut, shape), eps, t32(gw, [dim]), withBias ? t32(gb, [dim]) : undefined, { out });
                assert.equal(gx, out);
                const inputs = [f64(x), f64(w), f64(b)];
                const forward = normRef(kind, rows, dim, eps, withBias);
                assertGrad(data(gx), numericGrad(forward, inputs, gradOut, 0), 'gradX');
                assertGrad(increment(gw, gwBefore), numericGrad(forward, inputs, gradOut, 1), 'gradWeight');
                if (withBias)
                    assertGrad(increment(gb, gbBefore), numericGrad(forward, inputs, gradOut, 2), 'gradBias');
            });
        }
    }
    it('ropeBackward is the transpose of rope', () => {
        const random = rng(21);
        const [tokens, heads, dim] = [5, 3, 8];
        const positions = [0, 3, 17, 4095, 100000];
        const invFreq = ropeInverseFrequencies(dim, 10000);
        const grad = randomF32(tokens * heads * dim, random);
        const expected = numericGrad(ropeRef(tokens, heads, dim, positions, invFreq), [new Float64Array(grad.length).map(() => random() - 0.5)], grad, 0);
        const result = ropeBackward(t32(grad, [tokens, heads, dim]), i32(positions), Tensor.fromTypedArray(invFreq));
        assert.equal(result.data, grad);
        assertGrad(grad, expected, 'rope gradient');
    });
    const attentionCases = [
        { T: 5, S: 5, Hq: 4, Hkv: 2, d: 6, causal: true },
        { T: 5, S: 5, Hq: 4, Hkv: 2, d: 6, causal: false },
        { T: 3, S: 7, Hq: 4, Hkv: 1, d: 8, causal: true },
        { T: 4, S: 7, Hq: 2, Hkv: 2, d: 8, causal: false, scale: 0.7 },
        { T: 7, S: 7, Hq: 4, Hkv: 4, d: 6, causal: true },
        { T: 1, S: 1, Hq: 2, Hkv: 1, d: 6, causal: true },
    ];
    for (const c of attentionCases) {
        it(`attentionBackward matches finite differences (T=${c.T}, S=${c.S}, Hq=${c.Hq}, Hkv=${c.Hkv}, d=${c.d}, ${c.causal ? 'causal' : 'non-causal'})`, () => {
            const random = rng(c.T * 100 + c.S * 10 + c.Hkv + (c.causal ? 1000 : 0));
            const shape = { ...c, scale: c.scale ?? 1 / Math.sqrt(c.d) };
            const q = randomF32(c.T * c.Hq * c.d, random);
            const k = randomF32(c.S * c.Hkv * c.d, random);
            const v = randomF32(c.S * c.Hkv * c.d, random);
            const gradOut = randomF32(c.T * c.Hq * c.d, random);
            const [qt, kt, vt] = [t32(q, [c.T, c.Hq, c.d]), t32(k, [c.S, c.Hkv, c.d]), t32(v, [c.S, c.Hkv, c.d])];
            const out = attention(qt, kt, vt, { scale: shape.scale, causal: c.causal });
            const outQ = nanTensor(qt.shape);
            const outK = nanTensor(kt.shape);
            const outV = nanTensor(vt.shape);
            const grads = attentionBackward(qt, kt, vt, out, t32(gradOut, qt.shape), { scale: shape.scale, causal: c.causal, outQ, outK, outV });
            assert.equal(grads.q, outQ);
            assert.equal(grads.k, outK);
            assert.equal(grads.v, outV);
            const inputs = [f64(q), f64(k), f64(v)];
            const forward = attentionRef(shape);
            assertGrad(data(grads.q), numericGrad(forward, inputs, gradOut, 0), 'gradQ');
            assertGrad(data(grads.k), numericGrad(forward, inputs, gradOut, 1), 'gradK');
            assertGrad(data(grads.v), numericGrad(forward, inputs, gradOut, 2), 'gradV');
        });
    }
    it('attentionBackward matches a float64 backward on a long causal sequence (several query blocks)', async () => {
        const random = rng(300);
        const s = { T: 300, S: 300, Hq: 4, Hkv: 2, d: 16, causal: true, scale: 0.25 };
        const q = randomF32(s.T * s.Hq * s.d, random);
        const k = randomF32(s.S * s.Hkv * s.d, random);
        const v = randomF32(s.S * s.Hkv * s.d, random);
        const gradOut = randomF32(s.T * s.Hq * s.d, random);
        const [qt, kt, vt] = [t32(q, [s.T, s.Hq, s.d]), t32(k, [s.S, s.Hkv, s.d]), t32(v, [s.S, s.Hkv, s.d])];
        const out = attention(qt, kt, vt, { scale: s.scale });
        const grads = await attentionBackwardAsync(qt, kt, vt, out, t32(gradOut, qt.shape), { scale: s.scale, outQ: nanTensor(qt.shape), outK: nanTensor(kt.shape), outV: nanTensor(vt.shape) });
        const expected = attentionBackwardRef(s, f64(q), f64(k), f64(v), f64(gradOut));
        assertGrad(data(grads.q), expected.dq, 'gradQ');
        assertGrad(data(grads.k), expected.dk, 'gradK');
        assertGrad(data(grads.v), expected.dv, 'gradV');
    });
    it('siluMulBackward matches finite differences', () => {
        const random = rng(31);
        const n = 23;
        const gate = randomF32(n, random).map((x) => 3 * x);
        const up = randomF32(n, random);
        const gradOut = randomF32(n, random);
        const outGate = nanTensor([n]);
        const outUp = nanTensor([n]);
        const grads = siluMulBackward(t32(gate, [n]), t32(up, [n]), t32(gradOut, [n]), { outGate, outUp });
        assert.equal(grads.gate, outGate);
        assert.equal(grads.up, outUp);
        const forward = ([g, u]) => g.map((x, i) => ACTIVATIONS.silu(x) * u[i]);
        const inputs = [f64(gate), f64(up)];
        assertGrad(data(grads.gate), numericGrad(forward, inputs, gradOut, 0), 'gradGate');
        assertGrad(data(grads.up), numericGrad(forward, inputs, gradOut, 1), 'gradUp');
    });
    for (const op of ['relu', 'silu', 'gelu', 'geluTanh']) {
        it(`activationBackward ${op} matches finite differences (0 and negatives included)`, () => {
            const random = rng(op.length * 7);
            const x = Float32Array.from([0, -0.5, -2, -4.5, 0.25, 1, 3.5, ...randomF32(17, random).map((v) => 2 * v)]);
            if (op === 'relu')
                x[0] = 1e-3; // the central difference of relu at 0 is 1/2; 0 is checked below
            const gradOut = randomF32(x.length, random);
            const out = nanTensor([x.length]);
            const result = activationBackward(op, t32(x, [x.length]), t32(gradOut, [x.length]), { out });
            assert.equal(result, out);
            const f = ACTIVATIONS[op];
            assertGrad(data(result), numericGrad(([v]) => v.map(f), [f64(x)], gradOut, 0), `${op}'`);
        });
    }
    it("activationBackward: relu'(0) = 0, gelu'(0) = 1/2", () => {
        const x = t32(new Float32Array([0, 0]), [2]);
        const ones = t32(new Float32Array([1, 1]), [2]);
        assert.deepEqual([...data(activationBackward('relu', x, ones))], [0, 0]);
        assert.deepEqual([...data(activationBackward('gelu', x, ones))], [0.5, 0.5]);
        assert.deepEqual([...data(activationBackward('geluTanh', x, ones))], [0.5, 0.5]);
        assert.deepEqual([...data(activationBackward('silu', x, ones))], [0.5, 0.5]);
    });
    it('columnSums accumulates the gradient of a bias add over all leading dimensions', () => {
        const random = rng(41);
        for (const cols of [1, 7]) {
            const gradOut = randomF32(2 * 3 * cols, random);
            const y = randomF32(2 * 3 * cols, random);
            const out = randomF32(cols, random);
            const before = out.slice();
            const result = columnSums(t32(gradOut, [2, 3, cols]), t32(out, [cols]));
            assert.equal(result.data, out);
            // The forward: y[..., c] + bias[c].
            const forward = ([bias]) => Float64Array.from(y, (value, i) => value + bias[i % cols]);
            assertGrad(increment(out, before), numericGrad(forward, [f64(randomF32(cols, random))], gradOut, 0), `column sums (C=${cols})`);
        }
    });
    it('crossEntropyBackward matches finite differences, large logits included, and works in place', () => {
        const random = rng(51);
        const [rows, vocab] = [4, 9];
        const logits = randomF32(rows * vocab, random);
        for (let c = 0; c < vocab; ++c)
            logits[3 * vocab + c] *= 60; // a row of logits in the hundreds
        logits[2 * vocab + 5] = 80;
        const targets = [5, 0, 5, 8];
        const gradNll = randomF32(rows, random);
        const forward = ([l]) => {
            const nll = new Float64Array(rows);
            for (let r = 0; r < rows; ++r) {
                const row = l.subarray(r * vocab, (r + 1) * vocab);
                const max = Math.max(...row);
                nll[r] = max + Math.log(row.reduce((s, v) => s + Math.exp(v - max), 0)) - row[targets[r]];
            }
            return nll;
        };
        const expected = numericGrad(forward, [f64(logits)], gradNll, 0);
        const out = nanTensor([2, 2, vocab]);
        const result = crossEntropyBackward(t32(logits, [2, 2, vocab]), i32(targets), t32(gradNll, [rows]), { out });
        assert.equal(result, out);
        assertGrad(data(result), expected, 'gradLogits');
        const inPlace = logits.slice();
        const same = crossEntropyBackward(t32(inPlace, [rows, vocab]), i32(targets), t32(gradNll, [rows]), { inPlace: true });
        assert.equal(same.data, inPlace);
        assertGrad(inPlace, expected, 'gradLogits in place');
    });
    it('scatterAddBackward matches finite differences with repeated indices', () => {
        const random = rng(61);
        const [targets, dim] = [4, 7];
        const indices = [2, 0, 2, 3, 2];
        const count = indices.length;
        const rows = randomF32(count * dim, random);
        const weights = randomF32(count, random);
        const gradOut = randomF32(targets * dim, random);
        const base = randomF32(targets * dim, random);
        const forward = ([r, w]) => {
            const out = f64(base);
            indices.forEach((index, i) => {
                for (let c = 0; c < dim; ++c)
                    out[index * dim + c] += w[i] * r[i * dim + c];
            });
            return out;
        };
        const outRows = nanTensor([count, dim]);
        const outWeights = nanTensor([count]);
        const grads = scatterAddBackward(t32(gradOut, [targets, dim]), t32(rows, [count, dim]), i32(indices), t32(weights, [count]), { outRows, outWeights });
        assert.equal(grads.rows, outRows);
        assert.equal(grads.weights, outWeights);
        const inputs = [f64(rows), f64(weights)];
        assertGrad(data(grads.rows), numericGrad(forward, inputs, gradOut, 0), 'gradRows');
        assertGrad(data(grads.weights), numericGrad(forward, inputs, gradOut, 1), 'gradWeights');
    });
    it('adamwStep follows torch.optim.AdamW over three steps', () => {
        const random = rng(71);
        const n = 37;
        const options = { lr: 0.01, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.1 };
        const param = randomF32(n, random);
        const m = new Float32Array(n);
        const v = new Float32Array(n);
        const [p64, m64, v64] = [f64(param), new Float64Array(n), new Float64Array(n)];
        for (let step = 1; step <= 3; ++step) {
            const grad = randomF32(n, random);
            adamwStep(t32(param, [n]), t32(grad, [n]), t32(m, [n]), t32(v, [n]), { ...options, step });
            const stepSize = options.lr / (1 - options.beta1 ** step);
            const correction2 = Math.sqrt(1 - options.beta2 ** step);
            for (let i = 0; i < n; ++i) {
                p64[i] *= 1 - options.lr * options.weightDecay;
                m64[i] = options.beta1 * m64[i] + (1 - options.beta1) * grad[i];
                v64[i] = options.beta2 * v64[i] + (1 - options.beta2) * grad[i] ** 2;
                p64[i] -= (stepSize * m64[i]) / (Math.sqrt(v64[i]) / correction2 + options.eps);
            }
            assertClose(param, p64, { atol: 1e-6, rtol: 1e-5 }, `param after step ${step}`);
            assertClose(m, m64, { atol: 1e-7, rtol: 1e-5 }, `m after step ${step}`);
            assertClose(v, v64, { atol: 1e-8, rtol: 1e-5 }, `v after step ${step}`);
        }
        assert.throws(() => adamwStep(t32(param, [n]), t32(param, [n]), t32(m, [n]), t32(v, [n]), { ...options, step: 0 }), InvalidArgumentError);
    });
    it('reject shape mismatches and out-of-range ids with typed errors, before writing anything', () => {
        const table = new Float32Array(6 * 4).fill(1);
        assert.throws(() => embeddingBackward(t32(new Float32Array(8), [2, 4]), i32([1, 6]), t32(table, [6, 4])), (e) => e instanceof InvalidArgumentError && /embeddingBackward: token id 6 at position 1/.test(e.message));
        assert.ok(table.every((value) => value === 1), 'gradTable untouched');
        assert.throws(() => embeddingBackward(t32(new Float32Array(8), [2, 4]), i32([1, 2]), t32(table, [4, 6])), ShapeMismatchError);
        assert.throws(() => crossEntropyBackward(Tensor.zeros([2, 3]), i32([0, 3]), Tensor.zeros([2])), (e) => e instanceof InvalidArgumentError && /crossEntropyBackward: target 3 at position 1/.test(e.message));
        assert.throws(() => scatterAddBackward(Tensor.zeros([2, 3]), Tensor.zeros([2, 3]), i32([0, -1]), Tensor.zeros([2])), InvalidArgumentError);
        const [q, k] = [Tensor.zeros([3, 4, 8]), Tensor.zeros([3, 2, 8])];
        assert.throws(() => attentionBackward(q, k, k, q, Tensor.zeros([3, 4, 6])), (e) => e instanceof ShapeMismatchError && /attentionBackward: gradOut must have q's shape/.test(e.message));
        assert.throws(() => attentionBackward(q, Tensor.zeros([3, 3, 8]), Tensor.zeros([3, 3, 8]), q, q), ShapeMismatchError);
        assert.throws(() => normBackward('layer', Tensor.zeros([2, 5]), Tensor.zeros([5]), Tensor.zeros([2, 5]), 1e-5, Tensor.zeros([4])), (e) => e instanceof ShapeMismatchError && /normBackward: gradWeight/.test(e.message));
        assert.throws(() => normBackward('rms', Tensor.zeros([2, 5]), Tensor.zeros([5]), Tensor.zeros([2, 5]), 1e-5, Tensor.zeros([5]), Tensor.zeros([5])), InvalidArgumentError);
        assert.throws(() => siluMulBackward(Tensor.zeros([4]), Tensor.zeros([5]), Tensor.zeros([4])), ShapeMismatchError);
        assert.throws(() => columnSums(Tensor.zeros([3, 4]), Tensor.zeros([3])), ShapeMismatchError);
        assert.throws(() => ropeBackward(Tensor.zeros([2, 1, 4]), i32([0, 1, 2]), Tensor.zeros([2])), ShapeMismatchError);
    });
});
//# sourceMappingURL=backward.test.js.map