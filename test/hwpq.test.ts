// HWPQ: FP8 E4M3 rounding against the format's 256 values, the EWMA threshold corrected to the exact
// count (per row: the k lowest ½·w²·H_jj, the same mask as a sort; over the matrix; 2:4), joint INT and
// FP8 quantization of the survivors, and the refusals.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getMethod, InvalidArgumentError, parseRecipe, quantize, Tensor } from '../lib/index.js';
import { normalQuantile, roundFp8E4m3 } from '../lib/compress/hwpq.js';
import { fixturePath, randomF32, rng } from './helpers.js';
import { rtnRef } from './quant-reference.js';

const work = mkdtempSync(join(tmpdir(), 'sparq-hwpq-'));
after(() => rmSync(work, { recursive: true, force: true }));

/** Every finite non-negative E4M3 ('fn') value, by code: exponent bias 7, 3 mantissa bits, S.1111.111 is NaN. */
function e4m3Values(): number[] {
  const values: number[] = [];
  for (let code = 0; code < 127; ++code) {
    const e = code >> 3;
    const m = code & 7;
    values.push(e === 0 ? (m / 8) * 2 ** -6 : (1 + m / 8) * 2 ** (e - 7));
  }
  return values;
}

/** Nearest E4M3 value by search, ties to the even code; beyond 448 saturates. */
function fp8Ref(x: number): number {
  const values = e4m3Values();
  const a = Math.min(Math.abs(x), 448);
  let best = 0;
  for (let code = 1; code < values.length; ++code) {
    const d = Math.abs(values[code] - a) - Math.abs(values[best] - a);
    if (d < 0 || (d === 0 && code % 2 === 0)) best = code;
  }
  return x < 0 ? -values[best] : values[best];
}

/** Per row, the positions of the k lowest scores (ties to the lower index), by a sort. */
function lowestRef(scores: ArrayLike<number>, begin: number, end: number, k: number): Set<number> {
  return new Set(
    Array.from({ length: end - begin }, (_, i) => begin + i)
      .sort((a, b) => scores[a] - scores[b] || a - b)
      .slice(0, k),
  );
}

describe('hwpq', () => {
  const hwpq = getMethod('hwpq');

  it('rounds to the nearest FP8 E4M3 value (ties to even, subnormals, saturation at 448)', () => {
    const random = rng(51);
    const values = e4m3Values();
    const inputs = [0, 448, 500, -1e6, 2 ** -9, 2 ** -10, 3 * 2 ** -10, 1.0625, 1.1875, ...values.slice(1).map((v, i) => (v + values[i]) / 2)];
    for (let i = 0; i < 2000; ++i) inputs.push((random() - 0.5) * 2 ** (Math.floor(random() * 24) - 12));
    for (const x of inputs) assert.equal(roundFp8E4m3(x), fp8Ref(x), `fp8(${x})`);
    assert.ok(Math.abs(normalQuantile(0.975) - 1.959963985) < 1e-8 && Math.abs(normalQuantile(0.01) + 2.326347874) < 1e-8);
  });

  it('prunes exactly round(p·n) per row — the lowest ½·w²·H_jj, as a sort would — and rounds the survivors to the grid', async () => {
    const random = rng(52);
    for (const [rows, cols, sparsity] of [
      [17, 64, 0.5],
      [9, 37, 0.7],
      [5, 33, 0.1],
    ] as const) {
      const w = randomF32(rows * cols, random);
      const squares = Float32Array.from({ length: cols }, () => 0.1 + 3 * random() ** 2);
      const scheme = { bits: 4 as const, groupSize: 16, symmetric: true };
      const result = await hwpq.compress!({ name: 'l', weight: Tensor.fromTypedArray(w.slice(), [rows, cols]), pattern: { kind: 'unstructured', sparsity }, quantization: scheme, stats: { tokens: 10, inputSquares: Tensor.fromTypedArray(squares) }, options: hwpq.parseOptions({}, 'o') });
      const scores = Array.from(w, (v, i) => 0.5 * v * v * ((2 / 10) * squares[i % cols]));
      const keep = result.mask!.data as Uint8Array;
      const masked = w.slice();
      for (let r = 0; r < rows; ++r) {
        const k = Math.round(sparsity * cols);
        const pruned = lowestRef(scores, r * cols, (r + 1) * cols, k);
        for (let c = 0; c < cols; ++c) {
          assert.equal(keep[r * cols + c], pruned.has(r * cols + c) ? 0 : 1, `${rows}x${cols} p=${sparsity}: (${r}, ${c})`);
          if (pruned.has(r * cols + c)) masked[r * cols + c] = 0;
        }
      }
      const rtn = rtnRef(masked, rows, cols, { ...scheme, scaleDType: 'f32' });
      assert.deepEqual(result.weight.data, rtn.out, 'the survivors are rounded to nearest; pruned weights stay 0');
      assert.ok(typeof result.details!.thresholdMiss === 'number' && (result.details!.thresholdMiss as number) < 0.5);
    }
  });

  it('meets the exact count over the matrix, prunes 2:4, and quantizes to FP8 per channel', async () => {
    const random = rng(53);
    const [rows, cols] = [8, 48];
    const w = randomF32(rows * cols, random);
    const stats = { tokens: 4, inputSquares: Tensor.fromTypedArray(Float32Array.from({ length: cols }, () => 0.5 + random())) };
    const matrix = await hwpq.compress!({ name: 'l', weight: Tensor.fromTypedArray(w.slice(), [rows, cols]), pattern: { kind: 'unstructured', sparsity: 0.6 }, stats, options: hwpq.parseOptions({ compare: 'matrix' }, 'o') });
    const kept = (matrix.mask!.data as Uint8Array).reduce((s, v) => s + v, 0);
    assert.equal(kept, rows * cols - Math.round(0.6 * rows * cols));
    const nm = await hwpq.compress!({ name: 'l', weight: Tensor.fromTypedArray(w.slice(), [rows, cols]), pattern: { kind: 'nm', n: 2, m: 4 }, stats, options: hwpq.parseOptions({ format: 'fp8' }, 'o'), quantization: { bits: 8, groupSize: 0, symmetric: true } });
    const keep = nm.mask!.data as Uint8Array;
    for (let g = 0; g < rows * cols; g += 4) assert.equal(keep[g] + keep[g + 1] + keep[g + 2] + keep[g + 3], 2, `group ${g}`);
    const scales = nm.floatQuantized!.scales.data as Float32Array;
    const out = nm.weight.data as Float32Array;
    for (let r = 0; r < rows; ++r) {
      let max = 0;
      for (let c = 0; c < cols; ++c) if (keep[r * cols + c]) max = Math.max(max, Math.abs(w[r * cols + c]));
      assert.equal(scales[r], Math.fround(max / 448), `row ${r} scale`);
      for (let c = 0; c < cols; ++c) {
        const expected = keep[r * cols + c] ? Math.fround(fp8Ref(w[r * cols + c] / scales[r]) * scales[r]) : 0;
        assert.equal(out[r * cols + c], expected, `(${r}, ${c})`);
      }
    }
  });

  it('refuses bad options, FP8 with an integer grid, and FP8 outside the dense format', async () => {
    assert.throws(() => hwpq.parseOptions({ beta: 1 }, 'stage 1 options'), (e: Error) => e instanceof InvalidArgumentError && /stage 1 options\.beta/.test(e.message));
    assert.throws(() => hwpq.parseOptions({ format: 'fp4' }, 'o'), InvalidArgumentError);
    await assert.rejects(hwpq.compress!({ name: 'layer.x', weight: Tensor.zeros([2, 8]), quantization: { bits: 4, groupSize: 8, symmetric: true }, options: hwpq.parseOptions({ format: 'fp8' }, 'o') }), (e: Error) => e instanceof InvalidArgumentError && /layer\.x/.test(e.message));
    const recipe = parseRecipe({ method: 'hwpq', quantize: { bits: 8, groupSize: 0 }, options: { format: 'fp8' } });
    const windows = [Int32Array.from({ length: 16 }, (_, i) => i)];
    await assert.rejects(quantize({ model: fixturePath('tiny-llama'), out: join(work, 'ct'), recipe, format: 'compressed-tensors', calibrationWindows: windows }), (e: Error) => e instanceof InvalidArgumentError && /cannot write F8_E4M3/.test(e.message));
  });
});
