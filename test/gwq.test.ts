// GWQ: the column sweep's kept-exactly weights (against a float64 reference), the method on one linear
// (outliers chosen by |∂L/∂W| or |W|, kept f16-exact, left out of the grids; bits per weight), and a whole
// model: the driver's gradient pass keeps the top |∂L/∂W| of the dense model, the packed output (int4 +
// CSR outliers) decodes to the dense output, and bad options are refused.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  choleskyAsync,
  choleskyInverseAsync,
  columnSweep,
  DecoderModel,
  getMethod,
  HessianAccumulator,
  InvalidArgumentError,
  makeBatch,
  PackedCheckpoint,
  parseRecipe,
  quantize,
  streamGradients,
  Tensor,
  type QuantGrid,
} from '../lib/index.js';
import { CLI, fixturePath, randomF32, randomNormal, rng } from './helpers.js';
import { codeRef, paramsRef, rtnRef } from './quant-reference.js';

const work = mkdtempSync(join(tmpdir(), 'sparq-gwq-'));
after(() => rmSync(work, { recursive: true, force: true }));

function hessianOf(cols: number, tokens: number, random: () => number): Tensor {
  const x = Float32Array.from(randomNormal(tokens * cols, random), (v, i) => v + 0.5 * (i % 3));
  const acc = new HessianAccumulator(cols);
  acc.add(Tensor.fromTypedArray(x, [tokens, cols]));
  return acc.hessian;
}

async function factorOf(h: Tensor): Promise<Tensor> {
  const { inverse } = await choleskyInverseAsync(h, { damp: 0.01 });
  return (await choleskyAsync(inverse, { upper: true })).factor;
}

/** Positions (ascending) of the k largest |x|, ties to the lower index: a sort in float64. */
function topRef(x: ArrayLike<number>, k: number): number[] {
  return Array.from({ length: x.length }, (_, i) => i)
    .sort((a, b) => Math.abs(x[b]) - Math.abs(x[a]) || a - b)
    .slice(0, k)
    .sort((a, b) => a - b);
}

describe('the column sweep with weights kept exactly (GWQ outliers)', () => {
  it('keeps them at their updated values, moves no error on from them, stores the zero point, and agrees with a float64 reference', async () => {
    const random = rng(41);
    for (const [rows, cols, groupSize, bits, symmetric, blockSize] of [
      [9, 48, 16, 3, false, 16],
      [7, 37, 8, 4, true, 64],
    ] as const) {
      const what = `${rows}x${cols} W${bits} g${groupSize}`;
      const h = hessianOf(cols, 4 * cols, random);
      const u = await factorOf(h);
      const w = randomF32(rows * cols, random);
      const keep = new Uint8Array(rows * cols);
      for (let i = 0; i < keep.length; i += 5) keep[i] = 1;
      const grid: QuantGrid = { bits, groupSize, symmetric, scaleDType: 'f32' };
      const zeroed = Float32Array.from(w, (v, i) => (keep[i] ? 0 : v));
      const rtn = rtnRef(zeroed, rows, cols, grid);
      const swept = columnSweep(Tensor.fromTypedArray(w.slice(), [rows, cols]), u, {
        blockSize,
        quantization: { grid, scales: Tensor.fromTypedArray(rtn.scales, [rows, rtn.groups]), zeros: symmetric ? undefined : Tensor.fromTypedArray(rtn.zeros, [rows, rtn.groups]) },
        keep: Tensor.fromTypedArray(keep, [rows, cols]),
      });
      // float64 GPTQ where a kept weight is q = w (error 0).
      const W = Float64Array.from(w);
      const U = u.data as Float32Array;
      const codes = new Int8Array(rows * cols);
      for (let j = 0; j < cols; ++j) {
        for (let r = 0; r < rows; ++r) {
          const g = Math.floor(j / groupSize);
          const s = rtn.scales[r * rtn.groups + g];
          const z = symmetric ? 0 : rtn.zeros[r * rtn.groups + g];
          if (keep[r * cols + j]) {
            codes[r * cols + j] = z;
            continue;
          }
          const code = codeRef(W[r * cols + j], s, z, bits);
          codes[r * cols + j] = code;
          const e = (W[r * cols + j] - (code - z) * s) / U[j * cols + j];
          for (let k = j + 1; k < cols; ++k) W[r * cols + k] -= e * U[j * cols + k];
        }
      }
      const got = swept.codes!.data as Int8Array;
      const q = swept.weight.data as Float32Array;
      let same = 0;
      for (let i = 0; i < got.length; ++i) {
        same += got[i] === codes[i] ? 1 : 0;
        if (keep[i]) {
          const z = symmetric ? 0 : rtn.zeros[Math.floor(i / cols) * rtn.groups + Math.floor((i % cols) / groupSize)];
          assert.equal(got[i], z, `${what}: a kept weight's code is the zero point`);
          // float32 sweep against float64: the updated value agrees to rounding (relative 1e-4 of the row's scale).
          assert.ok(Math.abs(q[i] - W[i]) <= 1e-4 * (1 + Math.abs(W[i])), `${what}: kept (${i}) ${q[i]} vs ${W[i]}`);
        }
      }
      // A code can flip where a value lands within float32 rounding of a grid midpoint.
      assert.ok(same / got.length >= 0.97, `${what}: ${same} of ${got.length} codes agree`);
    }
  });

  it('leaves kept weights out of grids fitted during the sweep', async () => {
    const random = rng(42);
    const [rows, cols, groupSize] = [5, 32, 16];
    const u = await factorOf(hessianOf(cols, 128, random));
    const w = randomF32(rows * cols, random);
    const keep = new Uint8Array(rows * cols);
    w[0] = 50; // a huge outlier in row 0, group 0, in the first column (no earlier error reaches it)
    keep[0] = 1;
    const grid: QuantGrid = { bits: 4, groupSize, symmetric: true, scaleDType: 'f32' };
    const swept = columnSweep(Tensor.fromTypedArray(w.slice(), [rows, cols]), u, { blockSize: groupSize, quantization: { grid }, keep: Tensor.fromTypedArray(keep, [rows, cols]) });
    const members = Array.from(w.subarray(0, groupSize)).filter((_, c) => c !== 0);
    assert.equal((swept.scales!.data as Float32Array)[0], paramsRef(members, grid).scale, 'row 0 group 0 is fitted without the outlier');
    assert.equal((swept.weight.data as Float32Array)[0], 50, 'the outlier is kept exactly');
    assert.throws(() => columnSweep(Tensor.fromTypedArray(w.slice(), [rows, cols]), u, { pattern: { kind: 'nm', n: 2, m: 4 }, keep: Tensor.fromTypedArray(keep, [rows, cols]) }), InvalidArgumentError);
  });
});

describe('gwq on one linear', () => {
  const gwq = getMethod('gwq');

  it('keeps the top |∂L/∂W| in f16 and rounds the rest to nearest on grids fitted without them', async () => {
    const random = rng(43);
    const [rows, cols] = [12, 40];
    const w = randomF32(rows * cols, random);
    const gradient = randomF32(rows * cols, random);
    const options = gwq.parseOptions({ outliers: 0.05 }, 'options');
    const summary = await gwq.summarizeGradient!({ name: 'l', gradient: Tensor.fromTypedArray(gradient, [rows, cols]), options });
    const expected = topRef(gradient, Math.ceil(0.05 * rows * cols));
    assert.deepEqual([...(summary.data as Int32Array)], expected, 'the kept positions are the top |gradient|');
    const scheme = { bits: 3 as const, groupSize: 16, symmetric: false };
    const result = await gwq.compress!({ name: 'l', weight: Tensor.fromTypedArray(w.slice(), [rows, cols]), quantization: scheme, stats: { tokens: 1, gradient: summary }, options });
    const outlier = new Set(expected);
    const zeroed = Float32Array.from(w, (v, i) => (outlier.has(i) ? 0 : v));
    const rtn = rtnRef(zeroed, rows, cols, { ...scheme, scaleDType: 'f32' });
    const got = result.weight.data as Float32Array;
    const f16 = Tensor.fromTypedArray(w).to('f16').to('f32').data as Float32Array;
    for (let i = 0; i < w.length; ++i) assert.equal(got[i], outlier.has(i) ? f16[i] : rtn.out[i], `entry ${i}`);
    const csr = result.outliers!;
    assert.equal(csr.blockCols.numel, expected.length);
    const ptr = csr.rowPtr.data as Int32Array;
    const positions: number[] = [];
    for (let r = 0; r < rows; ++r) for (let b = ptr[r]; b < ptr[r + 1]; ++b) positions.push(r * cols + (csr.blockCols.data as Int32Array)[b]);
    assert.deepEqual(positions, expected, 'the CSR side matrix holds exactly the outliers');
    assert.equal(csr.values.dtype, 'f16');
  });

  it('with no outliers is exactly the rtn and gptq methods (same grids, damping, block size, act order)', async () => {
    const random = rng(47);
    const [rows, cols] = [6, 48];
    const w = randomF32(rows * cols, random);
    const hessian = hessianOf(cols, 4 * cols, random);
    for (const [base, other, scheme] of [
      ['rtn', 'rtn', { bits: 3 as const, groupSize: 16, symmetric: false }],
      ['gptq', 'gptq', { bits: 4 as const, groupSize: 16, symmetric: true }],
      ['gptq', 'gptq', { bits: 3 as const, groupSize: 16, symmetric: false, actOrder: 'group' as const }],
    ] as const) {
      const stats = { tokens: 4 * cols, hessian };
      const mine = await gwq.compress!({ name: 'l', weight: Tensor.fromTypedArray(w.slice(), [rows, cols]), quantization: scheme, stats, options: gwq.parseOptions({ outliers: 0, base }, 'options') });
      const method = getMethod(other);
      const theirs = await method.compress!({ name: 'l', weight: Tensor.fromTypedArray(w.slice(), [rows, cols]), quantization: scheme, stats, options: method.parseOptions({}, 'options') });
      assert.deepEqual(mine.weight.data, theirs.weight.data, `${base} ${JSON.stringify(scheme)}`);
      assert.equal(mine.outliers, undefined);
    }
  });

  it('picks outliers by |W| in the ablation, and refuses a fraction outside [0, 0.5]', async () => {
    const random = rng(44);
    const [rows, cols] = [6, 32];
    const w = randomF32(rows * cols, random);
    const options = gwq.parseOptions({ select: 'magnitude', outliers: 0.1 }, 'options');
    assert.deepEqual(gwq.needsFor!(options), { gradients: false, gradientsPerWindow: false, hessian: false }, 'the ablation needs no backward pass');
    const result = await gwq.compress!({ name: 'l', weight: Tensor.fromTypedArray(w.slice(), [rows, cols]), quantization: { bits: 4, groupSize: 0, symmetric: true }, options });
    const expected = topRef(w, Math.ceil(0.1 * rows * cols));
    const got = result.weight.data as Float32Array;
    const f16 = Tensor.fromTypedArray(w).to('f16').to('f32').data as Float32Array;
    for (const p of expected) assert.equal(got[p], f16[p]);
    for (const bad of [0.6, -0.1, 'x']) assert.throws(() => gwq.parseOptions({ outliers: bad }, 'stage 1 options'), (e: Error) => e instanceof InvalidArgumentError && /stage 1 options\.outliers/.test(e.message));
  });
});

describe('gwq outlier scores', () => {
  const gwq = getMethod('gwq');
  // 2×4 weights, one outlier (fraction 1/8), three per-window gradients built so that every score picks a
  // different position:
  //   position          0            1         2            3           4–7
  //   g per window      3, −3, 0     1, 1, 1   .5, .5, .5   .1, .1, .1  .1, .1, .1
  //   |w|               0.1          0.2       10           20          0.5
  //   |Σ g|  (gradient) 0            3 ←       1.5          .3          .3
  //   Σ g²   (fisher)   18 ←         3         .75          .03         .03
  //   |w|·Σ|g|          .6           .6        15 ←         6           .15
  //   |w|    (magnitude)                                    20 ←
  const perWindow = [
    [3, 1, 0.5, 0.1, 0.1, 0.1, 0.1, 0.1],
    [-3, 1, 0.5, 0.1, 0.1, 0.1, 0.1, 0.1],
    [0, 1, 0.5, 0.1, 0.1, 0.1, 0.1, 0.1],
  ];
  const w = Float32Array.from([0.1, 0.2, 10, 20, 0.5, -0.5, 0.5, -0.5]);

  async function outlierOf(select: string, passes: number[][]): Promise<number[]> {
    const options = gwq.parseOptions({ select, outliers: 1 / 8 }, 'options');
    let summary: Tensor | undefined;
    for (const [pass, g] of (select === 'magnitude' ? [] : passes).entries()) {
      summary = await gwq.summarizeGradient!({ name: 'l', gradient: Tensor.fromTypedArray(Float32Array.from(g), [2, 4]), options, pass, passes: passes.length, previous: summary });
    }
    const result = await gwq.compress!({ name: 'l', weight: Tensor.fromTypedArray(w.slice(), [2, 4]), quantization: { bits: 4, groupSize: 0, symmetric: true }, stats: { tokens: 1, gradient: summary }, options });
    const ptr = result.outliers!.rowPtr.data as Int32Array;
    const cols = result.outliers!.blockCols.data as Int32Array;
    const positions: number[] = [];
    for (let r = 0; r < 2; ++r) for (let b = ptr[r]; b < ptr[r + 1]; ++b) positions.push(r * 4 + cols[b]);
    return positions;
  }

  it('each score keeps the weight it names: |Σg|, Σg², |w|·Σ|g|, |w|', async () => {
    assert.deepEqual(await outlierOf('gradient', perWindow), [1], 'gradient: the signed sum cancels position 0');
    assert.deepEqual(await outlierOf('fisher', perWindow), [0], 'fisher: squares do not cancel');
    assert.deepEqual(await outlierOf('gradient-weight', perWindow), [2], 'gradient-weight: |w| times Σ|g|');
    assert.deepEqual(await outlierOf('magnitude', perWindow), [3], 'magnitude: the largest |w|');
    // One pass over the windows as a batch (the mean gradient) selects as the per-window sum does.
    const mean = perWindow[0].map((_, i) => (perWindow[0][i] + perWindow[1][i] + perWindow[2][i]) / 3);
    assert.deepEqual(await outlierOf('gradient', [mean]), [1]);
  });

  it('fisher-error keeps the weight whose removal saves the most Fisher-weighted rounding error, refitting its group', async () => {
    // One group of 8: a large weight with almost no Fisher sets the grid; every other weight has Fisher 1.
    // Keeping it shrinks the scale for the other seven, which beats keeping any one of them.
    const big = Float32Array.from([3, 0.31, -0.22, 0.13, 0.27, -0.18, 0.05, 0.4]);
    const fisher = Float32Array.from([1e-6, 1, 1, 1, 1, 1, 1, 1]);
    const pick = async (select: string, weight: Float32Array, f: Float32Array, rows: number, cols: number, outliers: number, groupSize: number) => {
      const options = gwq.parseOptions({ select, outliers }, 'options');
      const summary = select === 'magnitude' ? undefined : await gwq.summarizeGradient!({ name: 'l', gradient: Tensor.fromTypedArray(Float32Array.from(f, Math.sqrt), [rows, cols]), options, pass: 0, passes: 1 });
      const result = await gwq.compress!({ name: 'l', weight: Tensor.fromTypedArray(weight.slice(), [rows, cols]), quantization: { bits: 3, groupSize, symmetric: false }, stats: { tokens: 1, gradient: summary }, options });
      const ptr = result.outliers!.rowPtr.data as Int32Array;
      const c = result.outliers!.blockCols.data as Int32Array;
      const positions: number[] = [];
      for (let r = 0; r < rows; ++r) for (let b = ptr[r]; b < ptr[r + 1]; ++b) positions.push(r * cols + c[b]);
      return positions;
    };
    assert.deepEqual(await pick('fisher-error', big, fisher, 1, 8, 1 / 8, 8), [0]);
    assert.notDeepEqual(await pick('fisher', big, fisher, 1, 8, 1 / 8, 8), [0], 'Fisher alone does not see the scale');
    // Random weights against a plain reference (float32 grids of test/quant-reference.ts).
    const random = rng(46);
    const [rows, cols, groupSize] = [5, 24, 8];
    const w = randomF32(rows * cols, random);
    const f = Float32Array.from({ length: rows * cols }, () => random() + 0.01);
    const grid: QuantGrid = { bits: 3, groupSize, symmetric: false, scaleDType: 'f32' };
    const q = rtnRef(w, rows, cols, grid).out;
    const score = Array.from(w, (v, i) => f[i] * (v - q[i]) ** 2);
    for (const better of [(a: number, b: number) => a > b, (a: number, b: number) => a < b]) {
      for (let r = 0; r < rows; ++r) {
        for (let g = 0; g < cols / groupSize; ++g) {
          const members = Array.from({ length: groupSize }, (_, k) => r * cols + g * groupSize + k);
          const chosen = members.reduce((best, i) => (better(w[i], w[best]) ? i : best));
          const rest = members.filter((i) => i !== chosen);
          const { scale, zero } = paramsRef(rest.map((i) => w[i]), grid);
          const before = members.reduce((sum, i) => sum + f[i] * (w[i] - q[i]) ** 2, 0);
          const after = rest.reduce((sum, i) => sum + f[i] * (w[i] - (codeRef(w[i], scale, zero, 3) - zero) * scale) ** 2, 0);
          score[chosen] = Math.max(score[chosen], before - after);
        }
      }
    }
    const k = Math.ceil(0.05 * rows * cols);
    assert.deepEqual(await pick('fisher-error', w, f, rows, cols, 0.05, groupSize), topRef(score, k));
  });

  it('asks the driver for one pass per window only for the per-window scores', () => {
    for (const [select, perWindowPasses] of [['gradient', false], ['fisher', true], ['gradient-weight', true], ['fisher-error', true], ['magnitude', false]] as const) {
      const needs = gwq.needsFor!(gwq.parseOptions({ select }, 'options'));
      assert.equal(Boolean(needs.gradientsPerWindow), perWindowPasses, select);
      assert.equal(needs.gradients, select !== 'magnitude', select);
    }
    assert.throws(() => gwq.parseOptions({ select: 'hessian' }, 'stage 1 options'), (e: Error) => e instanceof InvalidArgumentError && /stage 1 options\.select/.test(e.message));
  });
});

describe('gwq on a whole model', function () {
  this.timeout(120_000);
  const model = () => fixturePath('tiny-llama');
  const random = rng(45);
  const windows = Array.from({ length: 20 }, () => Int32Array.from({ length: 24 }, () => Math.floor(random() * 128)));

  it('keeps the top |∂L/∂W| of the dense model (one streamed pass over the first 16 windows) and writes int4 + CSR outliers that decode to the dense output', async () => {
    const recipe = parseRecipe({ method: 'gwq', quantize: { bits: 4, groupSize: 32 }, options: { base: 'gptq' } });
    const packed = join(work, 'packed');
    const dense = join(work, 'dense');
    const report = await quantize({ model: model(), out: packed, recipe, format: 'packed', calibrationWindows: windows });
    await quantize({ model: model(), out: dense, recipe, format: 'dense', calibrationWindows: windows });
    // The reference gradient: streamGradients on the same 16 windows, top 1% of |g| per linear by a sort.
    const source = await DecoderModel.open(model());
    const gradients = new Map<string, Float32Array>();
    await streamGradients(source, makeBatch(windows.slice(0, 16)), {
      onGradients: (part, grads) => {
        if (part.kind === 'block') for (const [name, g] of grads) if (name.endsWith('proj.weight')) gradients.set(name.slice(0, -'.weight'.length), (g.data as Float32Array).slice());
      },
    });
    await source.close();
    const out = await DecoderModel.open(packed);
    const reference = await DecoderModel.open(dense);
    try {
      const checkpoint = out.checkpoint as PackedCheckpoint;
      assert.ok(checkpoint instanceof PackedCheckpoint);
      for (const entry of report.linears) {
        const [rows, cols] = entry.shape;
        const w = await checkpoint.readPacked(entry.name);
        assert.equal(w.format, 'int4');
        const o = w.outliers!;
        const ptr = o.rowPtr.data as Int32Array;
        const positions: number[] = [];
        for (let r = 0; r < rows; ++r) for (let b = ptr[r]; b < ptr[r + 1]; ++b) positions.push(r * cols + (o.blockCols.data as Int32Array)[b]);
        const expected = topRef(gradients.get(entry.name)!, Math.ceil(0.01 * rows * cols));
        // Positions whose kept value rounds to 0 are not stored (they decode to 0 either way).
        assert.ok(positions.every((p) => expected.includes(p)) && positions.length >= expected.length - 1, `${entry.name}: outliers at the top |∂L/∂W|`);
        // The dense output stores the decoded weights in the model's bf16; the packed one decodes in f32.
        const decoded = (await checkpoint.read(`${entry.name}.weight`, { dtype: 'bf16' })).to('f32').data as Float32Array;
        const denseWeight = (await reference.checkpoint.read(`${entry.name}.weight`, { dtype: 'f32' })).data as Float32Array;
        assert.deepEqual(decoded, denseWeight, `${entry.name}: packed decodes to the dense output`);
        // Bits: 4 per code + bf16 scales per 32 + (16 + 32) per outlier + 32 per row pointer.
        const bits = 4 + 16 / 32 + (48 * expected.length + 32 * (rows + 1)) / (rows * cols);
        assert.ok(Math.abs(entry.bitsPerWeight - bits) < 48 / (rows * cols) + 1e-9, `${entry.name}: ${entry.bitsPerWeight} bits per weight, about ${bits}`);
      }
      assert.ok(report.totals.stageSeconds.gradients > 0);
    } finally {
      await out.close();
      await reference.close();
    }
  });

  it('with the Fisher score, runs one backward pass per window and keeps the top Σ_w g_w²', async () => {
    const recipe = parseRecipe({ method: 'gwq', quantize: { bits: 4, groupSize: 32 }, options: { select: 'fisher' }, calibration: { gradientWindows: 4 } });
    const report = await quantize({ model: model(), out: join(work, 'fisher'), recipe, format: 'packed', calibrationWindows: windows });
    const source = await DecoderModel.open(model());
    const fisher = new Map<string, Float64Array>();
    for (const window of windows.slice(0, 4)) {
      await streamGradients(source, makeBatch([window]), {
        onGradients: (part, grads) => {
          if (part.kind !== 'block') return;
          for (const [name, g] of grads) {
            if (!name.endsWith('proj.weight')) continue;
            const key = name.slice(0, -'.weight'.length);
            const acc = fisher.get(key) ?? new Float64Array(g.numel);
            (g.data as Float32Array).forEach((v, i) => (acc[i] += v * v));
            fisher.set(key, acc);
          }
        },
      });
    }
    await source.close();
    const out = await DecoderModel.open(join(work, 'fisher'));
    try {
      for (const entry of report.linears) {
        const [rows, cols] = entry.shape;
        const o = (await (out.checkpoint as PackedCheckpoint).readPacked(entry.name)).outliers!;
        const ptr = o.rowPtr.data as Int32Array;
        const positions: number[] = [];
        for (let r = 0; r < rows; ++r) for (let b = ptr[r]; b < ptr[r + 1]; ++b) positions.push(r * cols + (o.blockCols.data as Int32Array)[b]);
        const expected = topRef(fisher.get(entry.name)!, Math.ceil(0.01 * rows * cols));
        // float32 accumulation vs float64 may swap a near-tie at the cut; a kept value may round to 0.
        const agree = positions.filter((p) => expected.includes(p)).length;
        assert.ok(agree >= expected.length - 2, `${entry.name}: ${agree} of ${expected.length} outliers at the top Σ g²`);
      }
    } finally {
      await out.close();
    }
  });

  it('refuses compressed-tensors (no way to carry outliers) and packed at 3 bits, naming the linear', async () => {
    const recipe = parseRecipe({ method: 'gwq', quantize: { bits: 4, groupSize: 32 } });
    await assert.rejects(quantize({ model: model(), out: join(work, 'ct'), recipe, format: 'compressed-tensors', calibrationWindows: windows }), (e: Error) => e instanceof InvalidArgumentError && /compressed-tensors has no way to carry them/.test(e.message) && /model\.layers\.0\./.test(e.message));
    const w3 = parseRecipe({ method: 'gwq', quantize: { bits: 3, groupSize: 32 } });
    await assert.rejects(quantize({ model: model(), out: join(work, 'w3'), recipe: w3, format: 'packed', calibrationWindows: windows }), (e: Error) => e instanceof InvalidArgumentError && /4-bit codes/.test(e.message));
  });

  it('sparq quantize refuses bad GWQ/HWPQ flags with exit 1 and a message naming the flag (dist/ build)', () => {
    const cli = (args: string[]) => spawnSync(process.execPath, [CLI, 'quantize', '--model', model(), '--out', join(work, 'cli'), ...args], { encoding: 'utf8' });
    for (const [args, message] of [
      [['--method', 'gwq', '--bits', '4', '--outliers', '0.7'], /--outliers: the outlier fraction must be in \[0, 0\.5\], got 0\.7/],
      [['--method', 'gwq', '--bits', '4', '--outliers=-1'], /--outliers: .*-1/],
      [['--method', 'gptq', '--bits', '4', '--outliers', '0.01'], /--outliers is GWQ's/],
      [['--method', 'gptq', '--bits', 'fp8'], /--bits fp8 is HWPQ's/],
      [['--method', 'hwpq', '--bits', 'fp8', '--group-size', '32'], /one scale per output channel/],
      [['--method', 'gwq', '--bits', '4', '--sparsity', '0.5'], /gwq does not prune/],
    ] as const) {
      const result = cli([...args]);
      assert.equal(result.status, 1, `${args.join(' ')}: ${result.stderr}`);
      assert.match(result.stderr, message, args.join(' '));
    }
  });
});
