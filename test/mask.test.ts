// Mask selection against TypeScript references, in every kernel variant: row-wise top-k (exact count,
// ties to the lower index), N:M for any n < m ≤ 32, threshold, and masked apply.
import assert from 'node:assert/strict';
import { applyMask, InvalidArgumentError, nmMask, Tensor, thresholdMask, topkMask } from '../lib/index.js';
import { dtypeCode } from '../lib/tensor/dtype.js';
import { callSync } from '../lib/tensor/native.js';
import { forEachKernelVariant, ODD_SIZES, poison, randomF32, rng } from './helpers.js';

const scratch = new Float32Array(1);
const scratchBits = new Uint32Array(scratch.buffer);
/** Order-preserving integer key of a float32 (-0 sorts below +0). */
function orderKey(x: number): number {
  scratch[0] = x;
  const b = scratchBits[0];
  return (b & 0x80000000 ? ~b : b | 0x80000000) >>> 0;
}

function topkRef(s: Float32Array, rows: number, cols: number, k: number, largest: boolean): Uint8Array {
  const out = new Uint8Array(rows * cols);
  for (let r = 0; r < rows; ++r) {
    const idx = [...Array(cols).keys()];
    const key = (c: number) => (largest ? orderKey(s[r * cols + c]) : 0xffffffff - orderKey(s[r * cols + c]));
    idx.sort((a, b) => key(b) - key(a) || a - b);
    for (let i = 0; i < k; ++i) out[r * cols + idx[i]] = 1;
  }
  return out;
}

function nmRef(s: Float32Array, rows: number, cols: number, n: number, m: number, largest: boolean): Uint8Array {
  const out = new Uint8Array(rows * cols);
  const key = (i: number) => (largest ? orderKey(s[i]) : 0xffffffff - orderKey(s[i]));
  for (let g = 0; g < rows * cols; g += m) {
    for (let i = 0; i < m; ++i) {
      let rank = 0;
      for (let j = 0; j < m; ++j) {
        if (key(g + j) > key(g + i) || (key(g + j) === key(g + i) && j < i)) rank++;
      }
      out[g + i] = rank < n ? 1 : 0;
    }
  }
  return out;
}

/** Scores with many exact ties, both zeros, and a wide range of magnitudes. */
function trickyScores(count: number, random: () => number): Float32Array {
  const s = randomF32(count, random);
  for (let i = 0; i < count; ++i) {
    const r = random();
    if (r < 0.15) s[i] = Math.round(s[i] * 2) / 2; // ties
    else if (r < 0.2) s[i] = random() < 0.5 ? 0 : -0;
    else if (r < 0.25) s[i] *= 1e-30;
    else if (r < 0.28) s[i] = random() < 0.5 ? Infinity : -Infinity;
  }
  return s;
}

function firstDifference(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < a.length; ++i) if (a[i] !== b[i]) return i;
  return -1;
}

describe('topkMask', () => {
  for (const cols of [...ODD_SIZES, 4096]) {
    it(`selects exactly k per row with ties to the lower index (cols = ${cols})`, () => {
      const random = rng(cols);
      const rows = cols > 1000 ? 3 : 5;
      const scores = trickyScores(rows * cols, random);
      const ks = [...new Set([0, 1, Math.floor(cols / 2), Math.floor(cols * 0.3), cols - 1, cols].filter((k) => k >= 0 && k <= cols))];
      forEachKernelVariant((variant) => {
        for (const k of ks) {
          for (const largest of [true, false]) {
            const expected = topkRef(scores, rows, cols, k, largest);
            const mask = poison(new Uint8Array(rows * cols));
            callSync('cpu', 'topkMask', [scores, dtypeCode('f32'), [rows, cols], k, largest, mask, dtypeCode('u8'), [rows, cols]]);
            const at = firstDifference(mask, expected);
            assert.equal(at, -1, `${variant} k=${k} largest=${largest}: element ${at} is ${mask[at]}, expected ${expected[at]}`);
          }
        }
      });
    });
  }

  it('handles rows where every score is equal (the whole selection is a tie)', () => {
    const scores = Tensor.fromTypedArray(new Float32Array(3 * 40).fill(0.5), [3, 40]);
    forEachKernelVariant((variant) => {
      const mask = topkMask(scores, 13).data as Uint8Array;
      for (let r = 0; r < 3; ++r) {
        assert.deepEqual([...mask.subarray(r * 40, r * 40 + 40)], [...Array(40).keys()].map((c) => (c < 13 ? 1 : 0)), variant);
      }
    });
  });

  it('treats the last dimension as the row of a 3-D tensor', () => {
    const s = Tensor.fromTypedArray(randomF32(2 * 3 * 8, rng(1)), [2, 3, 8]);
    const mask = topkMask(s, 2);
    assert.deepEqual(mask.shape, [2, 3, 8]);
    assert.deepEqual(mask.data, topkRef(s.data as Float32Array, 6, 8, 2, true));
  });

  it('rejects NaN scores and an impossible k with typed errors', () => {
    const s = new Float32Array(20).fill(1);
    s[13] = NaN;
    forEachKernelVariant((variant) => {
      assert.throws(() => topkMask(Tensor.fromTypedArray(s, [2, 10]), 3), (e: unknown) => e instanceof InvalidArgumentError && /row 1, column 3/.test(e.message), variant);
    });
    assert.throws(() => topkMask(Tensor.zeros([2, 10]), 11), InvalidArgumentError);
  });
});

describe('nmMask', () => {
  const patterns: [number, number][] = [[2, 4], [1, 4], [3, 4], [4, 8], [1, 2], [8, 16], [2, 3], [3, 7], [16, 32], [0, 5]];
  for (const [n, m] of patterns) {
    it(`keeps ${n} of every ${m} with ties to the lower index`, () => {
      const random = rng(n * 100 + m);
      for (const groups of [1, 7, 33]) {
        const rows = 3;
        const cols = groups * m;
        const scores = trickyScores(rows * cols, random);
        forEachKernelVariant((variant) => {
          for (const largest of [true, false]) {
            const expected = nmRef(scores, rows, cols, n, m, largest);
            const mask = poison(new Uint8Array(rows * cols));
            callSync('cpu', 'nmMask', [scores, dtypeCode('f32'), [rows, cols], n, m, largest, mask, dtypeCode('u8'), [rows, cols]]);
            const at = firstDifference(mask, expected);
            assert.equal(at, -1, `${variant} ${n}:${m} cols=${cols} largest=${largest}: element ${at}`);
            for (let g = 0; g < rows * cols; g += m) {
              assert.equal(mask.subarray(g, g + m).reduce((a, b) => a + b, 0), n, 'exactly n per group');
            }
          }
        });
      }
    });
  }

  it('rejects rows that are not a multiple of m, n >= m, and NaN scores', () => {
    assert.throws(() => nmMask(Tensor.zeros([2, 10]), 2, 4), (e: unknown) => e instanceof InvalidArgumentError && /multiple of m = 4/.test(e.message));
    assert.throws(() => nmMask(Tensor.zeros([2, 8]), 4, 4), InvalidArgumentError);
    assert.throws(() => nmMask(Tensor.zeros([2, 64]), 2, 33), InvalidArgumentError);
    const s = new Float32Array(32).fill(1);
    s[21] = NaN;
    forEachKernelVariant((variant) => {
      assert.throws(() => nmMask(Tensor.fromTypedArray(s, [1, 32]), 2, 4), (e: unknown) => e instanceof InvalidArgumentError && /column 21/.test(e.message), variant);
    });
  });
});

describe('thresholdMask and applyMask', () => {
  for (const size of ODD_SIZES) {
    it(`threshold selects score > t and apply zeroes the rest for every float dtype (size ${size})`, () => {
      const random = rng(size + 5);
      const s = trickyScores(size, random);
      forEachKernelVariant((variant) => {
        const mask = poison(new Uint8Array(size));
        callSync('cpu', 'thresholdMask', [s, dtypeCode('f32'), [1, size], 0.25, mask, dtypeCode('u8'), [1, size]]);
        assert.deepEqual([...mask], [...s].map((v) => (v > 0.25 ? 1 : 0)), variant);
        const x = Tensor.fromTypedArray(randomF32(size, random));
        for (const dtype of ['f32', 'f16', 'bf16', 'f64'] as const) {
          const typed = x.to(dtype);
          const applied = applyMask(typed, Tensor.fromTypedArray(mask)).toFloat64Array();
          const original = typed.toFloat64Array();
          for (let i = 0; i < size; ++i) {
            assert.ok(Object.is(applied[i], mask[i] ? original[i] : 0), `${variant} ${dtype} element ${i}`);
          }
        }
      });
    });
  }

  it('applies in place', () => {
    const x = Tensor.fromTypedArray(new Float32Array([1, 2, 3, 4]));
    applyMask(x, Tensor.fromTypedArray(new Uint8Array([1, 0, 0, 1])), { inPlace: true });
    assert.deepEqual([...(x.data as Float32Array)], [1, 0, 0, 4]);
  });

  it('reports NaN scores in threshold masks', () => {
    assert.throws(() => thresholdMask(Tensor.fromTypedArray(new Float32Array([0, NaN]), [1, 2]), 0), /column 1/);
  });
});
