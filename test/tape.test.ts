// The reverse-mode tape: gradients of composed ops against float64 finite differences of a float64
// reference of the same function, including the Mixtral routing (softmax → top-k → renormalize) and the
// weighted scatter of expert outputs, which exist only on the tape. Tolerance as in backward.test.ts:
// f32 kernels against float64 differences, |tape − fd| ≤ 1e-5 + 1e-4·max|fd|.
import assert from 'node:assert/strict';
import { InvalidArgumentError, Tape, Tensor } from '../lib/index.js';
import { rng } from './helpers.js';

function randomValues(n: number, random: () => number, scale = 1): Float64Array {
  return Float64Array.from({ length: n }, () => (random() * 2 - 1) * scale);
}

/** Central differences of f at x, every element. */
function finiteDifferences(f: (x: Float64Array) => number, x: Float64Array): Float64Array {
  const grad = new Float64Array(x.length);
  for (let i = 0; i < x.length; ++i) {
    const h = 1e-6 * Math.max(1, Math.abs(x[i]));
    const saved = x[i];
    x[i] = saved + h;
    const up = f(x);
    x[i] = saved - h;
    const down = f(x);
    x[i] = saved;
    grad[i] = (up - down) / (2 * h);
  }
  return grad;
}

function assertGradient(actual: Tensor | undefined, expected: Float64Array, what: string): void {
  assert.ok(actual, `${what}: no gradient`);
  const values = actual.data as Float32Array;
  let scale = 0;
  for (const v of expected) scale = Math.max(scale, Math.abs(v));
  for (let i = 0; i < expected.length; ++i) {
    assert.ok(Math.abs(values[i] - expected[i]) <= 1e-5 + 1e-4 * scale, `${what}[${i}]: tape ${values[i]}, finite differences ${expected[i]}`);
  }
}

const f32 = (values: Float64Array, shape: number[]) => Tensor.fromTypedArray(Float32Array.from(values), shape);

describe('the reverse-mode tape', () => {
  it('routes tokens to their top-k experts and combines the outputs with gradients matching finite differences', () => {
    const random = rng(11);
    const T = 6;
    const E = 4;
    const K = 2;
    const D = 3;
    // Rounded to f32 first, so the float64 reference sees exactly the values the tape sees.
    const logits = Float64Array.from(randomValues(T * E, random, 2), Math.fround);
    const gradOut = randomValues(T * D, random);
    const tape = new Tape();
    const logitsVariable = tape.parameter(f32(logits, [T, E]));
    const routing = tape.route(logitsVariable, { topK: K, normalizeTopK: true, normalizeEpsilon: 0 });
    const chosen = routing.tokens.map((t) => Array.from(t.data as Int32Array));
    // Each expert's output rows, one per routed token.
    const rows = chosen.map((tokens) => Float64Array.from(randomValues(tokens.length * D, random), Math.fround));
    const rowVariables = rows.map((r, e) => (chosen[e].length ? tape.parameter(f32(r, [chosen[e].length, D])) : undefined));
    const out = tape.combineExperts(routing, rowVariables, D);
    tape.backward(out, f32(gradOut, [T, D]));

    // The float64 reference with the same expert choice (perturbations are far from any tie).
    const reference = (z: Float64Array, expertRows: Float64Array[]): number => {
      let loss = 0;
      for (let t = 0; t < T; ++t) {
        const row = z.subarray(t * E, (t + 1) * E);
        const max = Math.max(...row);
        const p = Array.from(row, (v) => Math.exp(v - max));
        const sum = p.reduce((a, b) => a + b, 0);
        const experts = chosen.map((tokens, e) => (tokens.includes(t) ? e : -1)).filter((e) => e >= 0);
        assert.equal(experts.length, K);
        const total = experts.reduce((a, e) => a + p[e] / sum, 0);
        for (const e of experts) {
          const i = chosen[e].indexOf(t);
          for (let d = 0; d < D; ++d) loss += gradOut[t * D + d] * ((p[e] / sum) / total) * expertRows[e][i * D + d];
        }
      }
      return loss;
    };
    assertGradient(logitsVariable.grad, finiteDifferences((z) => reference(z, rows), logits), 'router logits');
    rows.forEach((r, e) => {
      if (!chosen[e].length) return;
      assertGradient(rowVariables[e]!.grad, finiteDifferences((x) => reference(logits, rows.map((other, j) => (j === e ? x : other))), r), `expert ${e} rows`);
    });
    // Each token went to exactly K experts, in token order.
    const perToken = new Array(T).fill(0);
    for (const tokens of chosen) {
      tokens.forEach((t) => (perToken[t] += 1));
      assert.deepEqual(tokens, [...tokens].sort((a, b) => a - b));
    }
    assert.deepEqual(perToken, new Array(T).fill(K));
  });

  it('sums the gradients of a variable that feeds several ops (a residual through a linear layer and SiLU·mul)', () => {
    const random = rng(5);
    const N = 3;
    const D = 4;
    const x = Float64Array.from(randomValues(N * D, random), Math.fround);
    const w = Float64Array.from(randomValues(D * D, random), Math.fround);
    const gradOut = randomValues(N * D, random);
    // y = x + silu(x·wᵀ)·x : x reaches y three ways.
    const reference = (xs: Float64Array, ws: Float64Array): number => {
      let loss = 0;
      for (let n = 0; n < N; ++n) {
        for (let o = 0; o < D; ++o) {
          let z = 0;
          for (let i = 0; i < D; ++i) z += xs[n * D + i] * ws[o * D + i];
          const silu = z / (1 + Math.exp(-z));
          loss += gradOut[n * D + o] * (xs[n * D + o] + silu * xs[n * D + o]);
        }
      }
      return loss;
    };
    const tape = new Tape();
    const xv = tape.parameter(f32(x, [N, D]));
    const wv = tape.parameter(f32(w, [D, D]));
    const y = tape.add(xv, tape.siluMul(tape.linear(xv, wv), xv));
    tape.backward(y, f32(gradOut, [N, D]));
    assertGradient(xv.grad, finiteDifferences((v) => reference(v, w), x), 'x');
    assertGradient(wv.grad, finiteDifferences((v) => reference(x, v), w), 'w');
  });

  it('leaves constants without gradients and refuses a backward pass that reaches no parameter', () => {
    const tape = new Tape();
    const c = tape.constant(Tensor.fromNumbers([1, 2, 3, 4], [2, 2]));
    const p = tape.parameter(Tensor.fromNumbers([1, 0, 0, 1], [2, 2]));
    const y = tape.linear(c, p);
    tape.backward(y, Tensor.full([2, 2], 1));
    assert.equal(c.grad, undefined);
    assert.deepEqual([...(p.grad!.data as Float32Array)], [4, 6, 4, 6]);
    const other = new Tape();
    const only = other.constant(Tensor.fromNumbers([1, 2], [1, 2]));
    assert.throws(() => other.backward(other.activation('relu', only), Tensor.full([1, 2], 1)), InvalidArgumentError);
    const q = other.parameter(Tensor.fromNumbers([1, 2], [1, 2]));
    assert.throws(() => other.backward(other.activation('relu', q)), /a seed gradient is needed for an output of 2 elements/);
  });
});
