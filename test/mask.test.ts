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

/**
 * Rows that defeat an estimate of the k-th score from a sample of the row, or pile ties on it: sorted
 * rows, one value over most of the row, few distinct values, zeros of both signs, infinities, and large
 * scores only at every 12th or 16th column (so evenly spaced samples can see only those, or none).
 */
function hazardRows(cols: number, random: () => number): { name: string; row: Float32Array }[] {
  const normal = randomF32(cols, random);
  const map = (f: (v: number, c: number) => number) => Float32Array.from(normal, f);
  const block = Float32Array.from(normal);
  block.fill(0.25, Math.floor(cols * 0.2), Math.floor(cols * 0.9));
  return [
    { name: 'random', row: normal },
    { name: 'ascending', row: Float32Array.from(normal).sort() },
    { name: 'descending', row: Float32Array.from(normal).sort().reverse() },
    { name: 'a block of equal values over 70% of the row', row: block },
    { name: 'four distinct values', row: map((v) => Math.sign(v) * (Math.abs(v) > 0.7 ? 2 : 1)) },
    { name: 'coarsely rounded (many ties everywhere)', row: map((v) => Math.round(v * 4) / 4) },
    { name: 'all zeros', row: new Float32Array(cols) },
    { name: 'all equal and negative', row: new Float32Array(cols).fill(-1.5) },
    { name: '-0 and +0 mixed with a few others', row: map((v) => (random() < 0.1 ? v : random() < 0.5 ? -0 : 0)) },
    { name: 'half exact zeros, the rest positive (pruned weights)', row: map((v) => (random() < 0.5 ? 0 : Math.abs(v))) },
    { name: 'infinities of both signs', row: map((v) => (random() < 0.2 ? v / 0 : v)) },
    { name: 'large every 16th column', row: map((v, c) => (c % 16 === 8 ? 100 + v : v)) },
    { name: 'small every 16th column', row: map((v, c) => (c % 16 === 8 ? v - 100 : v)) },
    { name: 'large every 12th column', row: map((v, c) => (c % 12 === 6 ? 100 + v : v)) },
    { name: 'tiny and subnormal magnitudes', row: map((v) => v * 1e-40) },
  ];
}

describe('topkMask on rows that defeat a sampled estimate', () => {
  for (const cols of [4096, 2053, 1000, 129, 17]) {
    it(`matches the reference on every hazard row, k and direction (cols = ${cols})`, () => {
      const random = rng(cols + 77);
      const rows = hazardRows(cols, random);
      forEachKernelVariant((variant) => {
        for (const { name, row } of rows) {
          for (const largest of [true, false]) {
            const expectedOrder = (k: number) => topkRef(row, 1, cols, k, largest);
            // Besides the usual ranks, the k that ends exactly at a run of ties at the median score, and
            // the one that splits it.
            const keys = [...row].map((v) => (largest ? orderKey(v) : 0xffffffff - orderKey(v)));
            const median = [...keys].sort((a, b) => b - a)[cols >> 1];
            const atLeastMedian = keys.filter((key) => key >= median).length;
            const aboveMedian = keys.filter((key) => key > median).length;
            const ks = [0, 1, 2, cols >> 3, cols >> 1, cols - 1, cols, atLeastMedian, aboveMedian + 1];
            for (const k of new Set(ks.filter((k) => k >= 0 && k <= cols))) {
              const mask = new Uint8Array(cols).fill(0xaa);
              callSync('cpu', 'topkMask', [row, dtypeCode('f32'), [1, cols], k, largest, mask, dtypeCode('u8'), [1, cols]]);
              const expected = expectedOrder(k);
              const at = firstDifference(mask, expected);
              assert.equal(at, -1, `${variant} ${name} k=${k} largest=${largest}: column ${at} is ${mask[at]}, expected ${expected[at]}`);
            }
          }
        }
      });
    });
  }

  it('keeps rows independent when neighbouring rows differ in kind and scale', () => {
    const cols = 4096;
    const random = rng(5);
    const rows = hazardRows(cols, random).map(({ row }) => row);
    // The same rows again, scaled by powers of ten, interleaved with random ones.
    for (let r = 0; r < 15; ++r) rows.push(randomF32(cols, random).map((v) => v * 10 ** ((r % 7) - 3)), rows[r].map((v) => v * 1000));
    const matrix = new Float32Array(rows.length * cols);
    rows.forEach((row, r) => matrix.set(row, r * cols));
    forEachKernelVariant((variant) => {
      for (const k of [1, 512, 2048, 4095]) {
        for (const largest of [true, false]) {
          const mask = new Uint8Array(matrix.length).fill(0xaa);
          callSync('cpu', 'topkMask', [matrix, dtypeCode('f32'), [rows.length, cols], k, largest, mask, dtypeCode('u8'), [rows.length, cols]]);
          const expected = topkRef(matrix, rows.length, cols, k, largest);
          const at = firstDifference(mask, expected);
          assert.equal(at, -1, `${variant} k=${k} largest=${largest}: row ${Math.floor(at / cols)}, column ${at % cols}`);
        }
      }
    });
  });

  it('names the row and column of a NaN in long rows, for every k', () => {
    const cols = 4096;
    for (const column of [8, 1000, 4095]) {
      const s = randomF32(3 * cols, rng(column));
      s[2 * cols + column] = NaN;
      forEachKernelVariant((variant) => {
        for (const k of [0, 1, 2048, cols]) {
          for (const largest of [true, false]) {
            assert.throws(
              () => callSync('cpu', 'topkMask', [s, dtypeCode('f32'), [3, cols], k, largest, new Uint8Array(3 * cols), dtypeCode('u8'), [3, cols]]),
              (e: unknown) => e instanceof InvalidArgumentError && new RegExp(`row 2, column ${column}$`).test(e.message),
              `${variant} k=${k} largest=${largest} column ${column}`,
            );
          }
        }
      });
    }
  });
});

/**
 * The reference for long rows and many rows: each row's columns in rank order from one numeric sort of
 * rank key · 2^20 + column (exact in a double for rows up to 2^20 columns), so ties keep column order.
 */
function rankOrder(row: Float32Array, largest: boolean): Float64Array {
  const cols = row.length;
  assert.ok(cols <= 1 << 20);
  const order = new Float64Array(cols);
  for (let c = 0; c < cols; ++c) {
    const key = orderKey(row[c]);
    order[c] = (largest ? 0xffffffff - key : key) * 2 ** 20 + c;
  }
  return order.sort();
}

function topkFromOrder(order: Float64Array, k: number, mask: Uint8Array, offset: number): void {
  for (let i = 0; i < k; ++i) mask[offset + (order[i] % 2 ** 20)] = 1;
}

function checkRows(variant: string, what: string, matrix: Float32Array, rows: number, cols: number, ks: number[]): void {
  for (const largest of [true, false]) {
    const orders = [...Array(rows).keys()].map((r) => rankOrder(matrix.subarray(r * cols, (r + 1) * cols), largest));
    for (const k of ks) {
      const expected = new Uint8Array(rows * cols);
      orders.forEach((order, r) => topkFromOrder(order, k, expected, r * cols));
      const mask = poison(new Uint8Array(rows * cols));
      callSync('cpu', 'topkMask', [matrix, dtypeCode('f32'), [rows, cols], k, largest, mask, dtypeCode('u8'), [rows, cols]]);
      const at = firstDifference(mask, expected);
      assert.equal(at, -1, `${variant} ${what} k=${k} largest=${largest}: row ${Math.floor(at / cols)}, column ${at % cols} is ${mask[at]}`);
    }
  }
}

describe('topkMask on long rows and on runs of similar rows', () => {
  it('selects in a row of a million scores, plain and with heavy ties', () => {
    const cols = 1_000_000;
    const random = rng(42);
    const plain = randomF32(cols, random);
    const tied = plain.map((v) => (random() < 0.3 ? 0 : Math.round(v * 8) / 8));
    forEachKernelVariant((variant) => {
      for (const [what, row] of [['plain', plain], ['tied', tied]] as const) {
        checkRows(variant, what, row, 1, cols, [0, 1, 3, 1000, cols >> 1, cols - 1000, cols - 1, cols]);
      }
    });
  });

  it('selects in many rows of one length, k near 0 and near cols', () => {
    const random = rng(9);
    for (const cols of [1, 2, 3, 16, 17, 511, 512, 513]) {
      const rows = 40;
      const matrix = trickyScores(rows * cols, random);
      const ks = [...new Set([0, 1, 2, cols - 2, cols - 1, cols].filter((k) => k >= 0 && k <= cols))];
      forEachKernelVariant((variant) => checkRows(variant, `cols=${cols}`, matrix, rows, cols, ks));
    }
  });

  /** Rows that follow one pattern for a while and then break it, so that any guess from earlier rows goes wrong. */
  function runsOfRows(cols: number, random: () => number): { what: string; rows: Float32Array[] }[] {
    const base = randomF32(cols, random);
    const runs: { what: string; rows: Float32Array[] }[] = [];
    const repeat = (n: number, f: (r: number) => Float32Array) => [...Array(n).keys()].map(f);
    // One row repeated: every row has the same threshold; then a row shifted just past it.
    runs.push({ what: 'identical rows, then a shifted one', rows: [...repeat(24, () => base), base.map((v) => v + 1e-3), ...repeat(8, () => base)] });
    // Exact zeros at the threshold in every row, with zeros of both signs.
    const zeros = repeat(32, () => base.map((v) => (random() < 0.6 ? (random() < 0.5 ? 0 : -0) : v)));
    runs.push({ what: 'mostly zeros of both signs', rows: zeros });
    // All zeros, then all equal, then a row of only -0.
    runs.push({ what: 'constant rows', rows: [...repeat(12, () => new Float32Array(cols)), ...repeat(12, () => new Float32Array(cols).fill(0.75)), new Float32Array(cols).fill(-0), ...repeat(6, () => new Float32Array(cols))] });
    // A slow drift, then a jump by 10^6, then back.
    runs.push({ what: 'drifting rows with a jump', rows: repeat(40, (r) => base.map((v) => v * (1 + r / 50) + (r === 25 ? 1e6 : r / 100))) });
    // Rows alternating between two scales, and random rows of random scale.
    runs.push({ what: 'alternating scales', rows: repeat(32, (r) => randomF32(cols, random).map((v) => (r % 2 ? v * 1e4 : v))) });
    runs.push({ what: 'infinite rows among finite ones', rows: repeat(30, (r) => (r % 7 === 6 ? base.map((v) => v / 0) : base.map((v) => v + random() * 1e-3))) });
    return runs;
  }

  for (const cols of [4096, 1000, 600]) {
    it(`matches the reference when rows follow a pattern and then break it (cols = ${cols})`, () => {
      const random = rng(cols + 3);
      for (const { what, rows } of runsOfRows(cols, random)) {
        const matrix = new Float32Array(rows.length * cols);
        rows.forEach((row, r) => matrix.set(row, r * cols));
        forEachKernelVariant((variant) => checkRows(variant, what, matrix, rows.length, cols, [1, cols >> 3, cols >> 1, cols - 1]));
      }
    });
  }

  it('names a NaN that follows many ordinary rows', () => {
    const cols = 2048, rows = 64;
    const s = new Float32Array(rows * cols);
    const base = randomF32(cols, rng(3));
    for (let r = 0; r < rows; ++r) s.set(base, r * cols);
    s[50 * cols + 777] = NaN;
    forEachKernelVariant((variant) => {
      for (const k of [1, 1024, 2047]) {
        for (const largest of [true, false]) {
          assert.throws(
            () => callSync('cpu', 'topkMask', [s, dtypeCode('f32'), [rows, cols], k, largest, new Uint8Array(rows * cols), dtypeCode('u8'), [rows, cols]]),
            (e: unknown) => e instanceof InvalidArgumentError && /row 50, column 777$/.test(e.message),
            `${variant} k=${k} largest=${largest}`,
          );
        }
      }
    });
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

describe('mask ops writing into a given tensor (out)', () => {
  it('topkMask and nmMask overwrite every element of a poisoned out and give the fresh result, then refuse a wrong out', () => {
    const random = rng(77);
    const scores = Tensor.fromTypedArray(trickyScores(5 * 48, random), [5, 48]);
    const out = Tensor.fromTypedArray(poison(new Uint8Array(5 * 48)), [5, 48]);
    assert.equal(topkMask(scores, 17, { out }), out, 'returns the given tensor');
    assert.deepEqual(out.data, topkMask(scores, 17).data);
    poison(out.data as Uint8Array);
    assert.equal(nmMask(scores, 2, 4, { out }), out);
    assert.deepEqual(out.data, nmMask(scores, 2, 4).data);
    assert.throws(() => topkMask(scores, 3, { out: Tensor.zeros([5, 47], 'u8') }), (e: unknown) => e instanceof InvalidArgumentError && /out: expected a contiguous u8 tensor of shape \[5, 48\]/.test(e.message));
    assert.throws(() => nmMask(scores, 2, 4, { out: Tensor.zeros([5, 48]) }), InvalidArgumentError);
  });
});
