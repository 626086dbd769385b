// GWQ, gradient-aware weight quantization (Shao et al., 2024): the loss gradient locates the weights that
// matter; those stay in 16-bit, the rest go to a low-bit grid.
//   gradient   G = ∂L/∂W of the mean next-token loss over the calibration windows, from the streamed
//              backward pass the driver runs before the layer-wise loop (needs.gradients)
//   outliers   O = the top ⌈F·m·n⌉ entries of a score S over the whole matrix (per linear; F = 1% by
//              default); only their positions (or the score) are kept from the gradient pass
//   score S    'gradient' (default, the paper's)  |G|: |Σ_w g_w| — the gradient of the mean loss over the
//                                                  windows, signed, then its magnitude
//              'fisher'                           Σ_w g_w²  (empirical Fisher diagonal per window)
//              'gradient-weight'                  |w|·Σ_w |g_w|  (first-order loss change of zeroing w,
//                                                  per window, magnitudes summed)
//              'magnitude'                        |w|  (the ablation; no backward pass)
//              'fisher-error'                     the Fisher-weighted squared rounding error that keeping
//                                                  w saves: F_i·(w_i − Q(w_i))², and for the largest and
//                                                  the smallest weight of each group (which set its grid)
//                                                  Σ_{j∈G} F_j·(w_j − Q(w_j))² − Σ_{j∈G∖i} F_j·(w_j − Q'(w_j))²,
//                                                  Q' the group's grid refitted without w_i; F = Σ_w g_w²,
//                                                  Q = round to nearest on the scheme's consecutive groups
//                                                  (one pass: two picks in one group are each scored as
//                                                  if alone)
//              g_w = ∂L_w/∂W of window w's mean loss. The per-window scores need one backward pass
//              per window (needs.gradientsPerWindow) and keep an f32 score matrix per linear until the
//              linear is compressed — the model's size in f32 for the linears that use them.
//   base       the rest quantized per group, with the outliers left out of each group's scale fit (the
//              grid's range always includes 0, so fitting on W with O zeroed is exactly that), by
//                'rtn'   q = round(w/s + z)
//                'gptq'  GPTQ's column sweep (the gptq method's: same damping, block size, static grids,
//                        activation order from the scheme); an outlier is kept exactly as the sweep
//                        reaches it, so its error is 0 and nothing moves on from it (SpQR's rule); its
//                        code is the zero point
//   result     Ŵ = dequant(codes) + O, the outliers' values rounded to f16 (stored as CSR: 16 bits of value
//              + 32 of column index each, + 32 per row of row pointers)
// What the paper says and what it leaves open. The readable parts of the paper (abstract and summaries of
// arXiv 2411.00850 v2–v4; its method section was not reachable from here) say: gradients of the loss from
// a single calibration sample (one backward pass) localize the outliers, the top 1% are kept in FP16, the
// rest are quantized per channel in groups, and gradient localization beats SpQR's Hessian-based
// sensitivity. With one sample there is nothing to aggregate: the score is |∂L/∂W| of that sample's loss.
// Our default generalizes it to the gradient of the mean loss over `gradientWindows` windows (16, one
// batch) — signs cancel across windows, which is what "the gradient of the calibration loss" means, not a
// Fisher or per-window magnitude (those are the 'fisher' / 'gradient-weight' options, not the paper's).
// Other choices, each an option: selection per linear (not per row or global) [std]; the base (rtn
// default; gptq); the score (above).
// Measured (README, bench/quant-methods.ts; stories260K, sotu-llama, the demo model, W3/W4 g32): the paper's
// score loses to |W| in 11 of 12 rows — removing a group's largest |w| also shrinks its scale for the
// other 31 weights, which a per-weight sensitivity does not see (with the outliers left in the scale fit
// every gradient score beats |W|). 'fisher-error' scores both effects and is the best score at W3 on all
// three models and both bases, and within 0.03 of the best at W4. It is not the default because it
// needs per-window passes and an f32 score matrix per linear (the model's size in f32) — the paper's
// score keeps only positions.
import { InvalidArgumentError } from '../errors.js';
import { packBsr, type BsrWeight } from '../tensor/packed.js';
import { quantizeRtnAsync } from '../tensor/quant.js';
import { topkMaskAsync, unaryAsync } from '../tensor/ops.js';
import { Tensor } from '../tensor/tensor.js';
import { checkInteger, checkNumber, checkOneOf } from '../validate.js';
import { sweepColumns } from './column-sweep.js';
import { rejectUnknownOptions, type CompressedLinear, type CompressionMethod, type StatisticsNeeds } from './method.js';
import { gridOf } from './quantizer.js';
import type { QuantGrid } from '../tensor/ops.js';

export interface GwqOptions {
  /** Fraction of each linear's weights kept in 16-bit (default 0.01), in [0, 0.5]. */
  outliers: number;
  /** How the other weights are quantized (default 'rtn', the paper's). */
  base: 'rtn' | 'gptq';
  /** The score that picks the outliers (header): |∂L/∂W| (default, the paper's), the per-window Fisher
   * Σ g², the first-order saliency |w|·Σ|g|, or |W| (the ablation). */
  select: OutlierScore;
  /** GPTQ base: λ relative to mean(diag H) (default 0.01) and columns per lazy block (default 128). */
  damp: number;
  blockSize: number;
}

export const OUTLIER_SCORES = ['gradient', 'fisher', 'gradient-weight', 'magnitude', 'fisher-error'] as const;
export type OutlierScore = (typeof OUTLIER_SCORES)[number];

/** Checks an outlier fraction: a number in [0, 0.5]. */
export function checkOutlierFraction(where: string, value: unknown): number {
  const fraction = checkNumber(where, value, { min: 0 });
  if (fraction > 0.5) throw new InvalidArgumentError(`${where}: the outlier fraction must be in [0, 0.5], got ${fraction}`);
  return fraction;
}

/** Flat positions (ascending) of the `count` largest |x| of a matrix. */
async function topPositions(x: Tensor, count: number, signal?: AbortSignal): Promise<Int32Array> {
  const scores = await unaryAsync('abs', x.reshape([1, x.numel]), { signal });
  const mask = (await topkMaskAsync(scores, count, { signal })).data as Uint8Array;
  const positions = new Int32Array(count);
  let next = 0;
  // The scan in chunks, so the event loop keeps running on big layers.
  for (let start = 0; start < mask.length; start += 1 << 22) {
    const end = Math.min(mask.length, start + (1 << 22));
    for (let i = start; i < end; ++i) if (mask[i]) positions[next++] = i;
    if (end < mask.length) await new Promise<void>((resolve) => setImmediate(resolve));
  }
  return positions;
}

const breathe = () => new Promise<void>((resolve) => setImmediate(resolve));

/** acc[i] += f(g[i]) over a whole matrix, in chunks so the event loop keeps running. */
async function accumulate(acc: Float32Array, g: Float32Array, f: (v: number) => number): Promise<void> {
  for (let start = 0; start < g.length; start += 1 << 20) {
    const end = Math.min(g.length, start + (1 << 20));
    for (let i = start; i < end; ++i) acc[i] += f(g[i]);
    if (end < g.length) await breathe();
  }
}

const PER_WINDOW: ReadonlySet<OutlierScore> = new Set(['fisher', 'gradient-weight', 'fisher-error']);
/** Scores that need the weight as well: the pass keeps their f32 accumulator for compress(). */
const WITH_WEIGHT: ReadonlySet<OutlierScore> = new Set(['gradient-weight', 'fisher-error']);

/**
 * The 'fisher-error' score (header): what keeping each weight in 16-bit saves of the Fisher-weighted
 * squared rounding error, counting the refit of its group's grid where the weight is the group's largest
 * or smallest value. Grids by the library's round to nearest (a grid's range always includes 0, so a
 * zeroed weight is left out of its fit).
 */
async function fisherErrorScore(weight: Tensor, fisher: Float32Array, grid: QuantGrid, signal?: AbortSignal): Promise<Tensor> {
  const [rows, cols] = weight.shape;
  const w = weight.data as Float32Array;
  const size = Math.min(cols, grid.groupSize);
  const groups = Math.ceil(cols / size);
  const q = (await quantizeRtnAsync(weight, grid, { signal })).weight.data as Float32Array;
  const score = Float32Array.from(fisher, (f, i) => f * (w[i] - q[i]) ** 2);
  // The group's largest (then smallest) weight, and the grids refitted without it.
  for (const pick of [(a: number, b: number) => a > b, (a: number, b: number) => a < b]) {
    const chosen = new Int32Array(rows * groups);
    const without = new Float32Array(w);
    for (let r = 0; r < rows; ++r) {
      for (let g = 0; g < groups; ++g) {
        let best = r * cols + g * size;
        for (let i = best + 1; i < r * cols + Math.min(cols, (g + 1) * size); ++i) if (pick(w[i], w[best])) best = i;
        chosen[r * groups + g] = best;
        without[best] = 0;
      }
      if (r % 256 === 255) await breathe();
    }
    const refit = (await quantizeRtnAsync(Tensor.fromTypedArray(without, [rows, cols]), grid, { signal })).weight.data as Float32Array;
    for (let r = 0; r < rows; ++r) {
      for (let g = 0; g < groups; ++g) {
        const i = chosen[r * groups + g];
        let saved = 0;
        for (let j = r * cols + g * size; j < r * cols + Math.min(cols, (g + 1) * size); ++j) {
          saved += fisher[j] * (w[j] - q[j]) ** 2 - (j === i ? 0 : fisher[j] * (w[j] - refit[j]) ** 2);
        }
        score[i] = Math.max(score[i], saved);
      }
      if (r % 256 === 255) await breathe();
    }
  }
  return Tensor.fromTypedArray(score, [rows, cols]);
}

function outlierCount(fraction: number, rows: number, cols: number): number {
  return Math.min(rows * cols, Math.ceil(fraction * rows * cols));
}

export const gwq: CompressionMethod<GwqOptions> = {
  name: 'gwq',
  summary: 'keep the weights with the largest loss gradients in 16-bit (a sparse side matrix), quantize the rest per group (RTN or GPTQ)',
  needs: { gradients: true, hessian: true },
  needsFor(options): StatisticsNeeds {
    const gradients = options.select !== 'magnitude' && options.outliers > 0;
    return { gradients, gradientsPerWindow: gradients && PER_WINDOW.has(options.select), hessian: options.base === 'gptq' };
  },
  keepsOutliers: (options) => options.outliers > 0,
  scope: 'linear',
  prunes: false,
  requiresSparsity: false,
  quantizes: () => true,
  fallback: 'rtn',
  parseOptions(raw, where) {
    rejectUnknownOptions(raw, ['outliers', 'base', 'select', 'damp', 'blockSize'], where, 'gwq');
    return {
      outliers: checkOutlierFraction(`${where}.outliers`, raw.outliers ?? 0.01),
      base: checkOneOf(`${where}.base`, raw.base ?? 'rtn', ['rtn', 'gptq'] as const),
      select: checkOneOf(`${where}.select`, raw.select ?? 'gradient', OUTLIER_SCORES),
      damp: checkNumber(`${where}.damp`, raw.damp ?? 0.01, { min: 0 }),
      blockSize: checkInteger(`${where}.blockSize`, raw.blockSize ?? 128, 1, 65536),
    };
  },
  // One call per gradient pass: one pass (the windows as one batch) → the positions at once; one pass per
  // window → an f32 accumulator [out, in] (Σ g, Σ g² or Σ |g|), turned into positions at the last pass
  // where the score needs no weight ('gradient', 'fisher') and kept for compress() otherwise.
  async summarizeGradient({ gradient, options, signal, previous, pass = 0, passes = 1 }) {
    const [rows, cols] = gradient.shape;
    const count = outlierCount(options.outliers, rows, cols);
    if (options.select === 'magnitude') throw new InvalidArgumentError(`gwq: select 'magnitude' takes no gradients`);
    if (options.select === 'gradient' && passes === 1) return Tensor.fromTypedArray(await topPositions(gradient, count, signal));
    const acc = previous ?? Tensor.zeros([rows, cols]);
    const g = gradient.data as Float32Array;
    const a = acc.data as Float32Array;
    if (options.select === 'gradient') await accumulate(a, g, (v) => v);
    else if (options.select === 'fisher' || options.select === 'fisher-error') await accumulate(a, g, (v) => v * v);
    else await accumulate(a, g, Math.abs);
    if (pass < passes - 1 || WITH_WEIGHT.has(options.select)) return acc;
    return Tensor.fromTypedArray(await topPositions(acc, count, signal));
  },
  async compress({ name, weight, quantization, storageDType, stats, options, signal }): Promise<CompressedLinear> {
    if (!quantization) throw new InvalidArgumentError(`${name}: gwq needs a quantization scheme (bits, group size)`);
    if (quantization.actOrder && options.base === 'rtn') throw new InvalidArgumentError(`${name}: activation order is a GPTQ setting; gwq with base 'rtn' takes none`);
    const [rows, cols] = weight.shape;
    const count = outlierCount(options.outliers, rows, cols);
    let positions: Int32Array;
    if (options.select === 'magnitude' || count === 0) positions = await topPositions(weight, count, signal);
    else {
      const summary = stats?.gradient;
      if (!summary) throw new InvalidArgumentError(`${name}: gwq needs the loss gradients (calibration data)`);
      if (WITH_WEIGHT.has(options.select)) {
        if (summary.dtype !== 'f32' || summary.numel !== rows * cols) throw new InvalidArgumentError(`${name}: the gradient pass kept ${summary.numel} values, ${rows * cols} expected`);
        const w = weight.data as Float32Array;
        const score =
          options.select === 'gradient-weight'
            ? Tensor.fromTypedArray(Float32Array.from(summary.data as Float32Array, (v, i) => v * Math.abs(w[i])), [rows, cols]) // |w|·Σ|g_w|
            : await fisherErrorScore(weight, summary.data as Float32Array, gridOf(quantization, cols, storageDType ?? 'f32'), signal);
        positions = await topPositions(score, count, signal);
      } else {
        positions = summary.data as Int32Array;
        if (summary.dtype !== 'i32' || positions.length !== count) throw new InvalidArgumentError(`${name}: the gradient pass kept ${positions.length} positions, ${count} expected`);
      }
    }
    const keep = Tensor.zeros([rows, cols], 'u8');
    const keepData = keep.data as Uint8Array;
    for (const p of positions) keepData[p] = 1;
    const storage = storageDType ?? 'f32';

    let decoded: Tensor;
    let codes: Tensor;
    let scales: Tensor;
    let zeros: Tensor | undefined;
    let kept: Float32Array;
    let details: Record<string, number | string | boolean> = {};
    if (options.base === 'rtn') {
      kept = Float32Array.from(positions, (p) => (weight.data as Float32Array)[p]);
      const inliers = weight;
      for (const p of positions) (inliers.data as Float32Array)[p] = 0;
      const rounded = await quantizeRtnAsync(inliers, gridOf(quantization, cols, storage), { signal });
      decoded = rounded.weight;
      codes = rounded.codes;
      scales = rounded.scales;
      zeros = quantization.symmetric ? undefined : rounded.zeros;
    } else {
      const hessian = stats?.hessian;
      if (!hessian) throw new InvalidArgumentError(`${name}: gwq with base 'gptq' needs calibration data (the input Hessian)`);
      const swept = await sweepColumns({ name, weight, hessian, damp: options.damp, blockSize: options.blockSize, quantization: { scheme: quantization, storageDType: storage, grids: 'static' }, keep, signal });
      const w = swept.weight.data as Float32Array;
      kept = Float32Array.from(positions, (p) => w[p]);
      // The sweep leaves each outlier at its (updated) value and its code at the zero point: decode the codes.
      for (const p of positions) w[p] = 0;
      decoded = swept.weight;
      codes = swept.quantized!.codes;
      scales = swept.quantized!.scales;
      zeros = swept.quantized!.zeros;
      details = { ...swept.details };
    }
    // The outliers in f16, added to the decoded base (whose value at an outlier is exactly 0).
    const outlierMatrix = Tensor.zeros([rows, cols]);
    const o = outlierMatrix.data as Float32Array;
    const d = decoded.data as Float32Array;
    const values = Tensor.fromTypedArray(kept, [kept.length]);
    const values16 = await (await values.toAsync('f16', { signal })).toAsync('f32', { signal });
    const v16 = values16.data as Float32Array;
    positions.forEach((p, i) => {
      o[p] = v16[i];
      d[p] = v16[i];
    });
    const outliers: BsrWeight | undefined = count > 0 ? await packBsr(await outlierMatrix.toAsync('f16', { signal }), 1, { signal }) : undefined;
    return {
      weight: decoded,
      quantized: { scheme: quantization, codes, scales, ...(zeros ? { zeros } : {}) },
      ...(outliers ? { outliers } : {}),
      details: { ...details, outliers: count, outlierFraction: count / (rows * cols), selectedBy: options.select, base: options.base },
    };
  },
};
