// HWPQ, Hessian-free weight pruning and quantization (Kang et al., 2025): a contribution score from the
// weights and their inputs' statistics — no Hessian, no inverse — and a threshold from an exponentially
// weighted moving average (EWMA) of the scores instead of a sort, so that pruning is O(m·n).
//   score      L_ij = ½·w_ij²·H_jj with H_jj = (2/T)·Σ_t x_tj²: the loss a weight's removal adds when the
//              Hessian is taken as its diagonal (the inputs' squared norms; the same statistic as Wanda's)
//   threshold  the scores stream by in storage order; an EWMA of their logarithms (mean μ, variance ν,
//              factor β per score) gives τ = exp(μ + z_p·√ν), z_p the standard normal p-quantile of the
//              sparsity p; a row is pruned where L < τ, τ taken from the state before the row (the first
//              row warms the state up on itself)
//   exact      the threshold only estimates the p-quantile, so each row (or the matrix) is then corrected
//              to exactly round(p·n) pruned: the surplus or deficit is taken from the scores nearest τ by a
//              selection (quickselect, O(n) on average), never a sort
//   2:4 (N:M)  in every M consecutive inputs of a row the M − N lowest scores (no threshold needed)
//   quantize   jointly, the survivors: INT to the stage's grid by round to nearest (pruned weights stay
//              exact zeros), or FP8 E4M3 ('fp8': one scale per output channel, s = max|w|/448, w ≈ s·fp8(w/s))
// Choices the paper leaves open, each an option: the score (its Eq. as published is ambiguous; the
// diagonal-Hessian loss above), β (default 0.99), the normal model of the log-scores, comparing within a
// row (default, as Wanda) or over the matrix, and FP8 per channel. The paper's FP8 is what the public
// summaries describe; the codes are written as compressed-tensors' float-quantized format (F8_E4M3
// weights, one scale per output channel: vLLM's W8A16 FP8 scheme) or as their decoded weights (dense).
import { InvalidArgumentError } from '../errors.js';
import { Tensor } from '../tensor/tensor.js';
import { checkNumber, checkOneOf } from '../validate.js';
import { rejectUnknownOptions, requireStatistic, type CompressedLinear, type CompressionMethod } from './method.js';
import { keptCount } from './pattern.js';
import { roundToFp8E4m3, roundToNearest } from './quantizer.js';

export interface HwpqOptions {
  /** EWMA factor per score (default 0.99). */
  beta: number;
  /** Where the exact count is met: per output row (default) or over the whole matrix. */
  compare: 'row' | 'matrix';
  /** Number format of the survivors: the stage's integer grid (default), or FP8 E4M3 per channel. */
  format: 'int' | 'fp8';
}

/** The standard normal quantile (Acklam's rational approximation, relative error < 1.2e-9). */
export function normalQuantile(p: number): number {
  const a = [-39.69683028665376, 220.9460984245205, -275.9285104469687, 138.357751867269, -30.66479806614716, 2.506628277459239];
  const b = [-54.47609879822406, 161.5858368580409, -155.6989798598866, 66.80131188771972, -13.28068155288572];
  const c = [-0.007784894002430293, -0.3223964580411365, -2.400758277161838, -2.549732539343734, 4.374664141464968, 2.938163982698783];
  const d = [0.007784695709041462, 0.3224671290700398, 2.445134137142996, 3.754408661907416];
  const low = 0.02425;
  if (p <= 0) return -Infinity;
  if (p >= 1) return Infinity;
  if (p < low) {
    const q = Math.sqrt(-2 * Math.log(p));
    return (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  }
  if (p > 1 - low) return -normalQuantile(1 - p);
  const q = p - 0.5;
  const r = q * q;
  return ((((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q) / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
}

/** The k-th smallest (0-based) of `values` (reordered in place): quickselect, O(n) on average. */
function kthSmallest(values: Float64Array, k: number): number {
  let lo = 0;
  let hi = values.length - 1;
  let seed = 12345;
  while (lo < hi) {
    seed = (seed * 1103515245 + 12345) >>> 0;
    const pivot = values[lo + (seed % (hi - lo + 1))];
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (values[i] < pivot) i++;
      while (values[j] > pivot) j--;
      if (i <= j) {
        const t = values[i];
        values[i] = values[j];
        values[j] = t;
        i++;
        j--;
      }
    }
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else return values[k];
  }
  return values[k];
}

/** Lets the event loop run between chunks of rows of the JS loops below (and checks for cancellation). */
async function breathe(signal?: AbortSignal): Promise<void> {
  signal?.throwIfAborted();
  await new Promise<void>((resolve) => setImmediate(resolve));
}

/** The EWMA of log-scores, carried along the stream. */
class LogEwma {
  mean = 0;
  variance = 0;
  private started = false;

  constructor(private readonly beta: number) {}

  add(score: number): void {
    const x = Math.log(score + 1e-30);
    if (!this.started) {
      this.mean = x;
      this.started = true;
      return;
    }
    const delta = x - this.mean;
    this.mean += (1 - this.beta) * delta;
    this.variance = this.beta * (this.variance + (1 - this.beta) * delta * delta);
  }

  threshold(z: number): number {
    return Math.exp(this.mean + z * Math.sqrt(this.variance));
  }
}

/**
 * Marks exactly `count` of scores[begin, end) as pruned (prune[i] = 1): those below τ, then corrected by a
 * selection among the scores on the wrong side of τ. Returns how many the threshold alone got wrong.
 */
function pruneExactly(scores: Float32Array, begin: number, end: number, count: number, tau: number, prune: Uint8Array): number {
  let below = 0;
  for (let i = begin; i < end; ++i) below += scores[i] < tau ? 1 : 0;
  const miss = Math.abs(below - count);
  let cut: number;
  let side: 'below' | 'above';
  if (below === count) {
    for (let i = begin; i < end; ++i) prune[i] = scores[i] < tau ? 1 : 0;
    return 0;
  } else if (below > count) {
    // Keep the largest below τ: prune the `count` smallest of those below.
    const candidates = new Float64Array(below);
    let n = 0;
    for (let i = begin; i < end; ++i) if (scores[i] < tau) candidates[n++] = scores[i];
    cut = count === 0 ? -Infinity : kthSmallest(candidates, count - 1);
    side = 'below';
  } else {
    // Prune all below τ, and the (count − below) smallest of the rest.
    const candidates = new Float64Array(end - begin - below);
    let n = 0;
    for (let i = begin; i < end; ++i) if (!(scores[i] < tau)) candidates[n++] = scores[i];
    cut = kthSmallest(candidates, count - below - 1);
    side = 'above';
  }
  // Everything strictly below the cut, then ties at the cut in index order until the count is met.
  let pruned = 0;
  for (let i = begin; i < end; ++i) {
    const take = side === 'below' ? scores[i] < cut : scores[i] < cut || scores[i] < tau;
    prune[i] = take ? 1 : 0;
    pruned += prune[i];
  }
  for (let i = begin; i < end && pruned < count; ++i) {
    if (!prune[i] && scores[i] === cut) {
      prune[i] = 1;
      pruned += 1;
    }
  }
  return miss;
}

export const hwpq: CompressionMethod<HwpqOptions> = {
  name: 'hwpq',
  summary: 'prune by a Hessian-free contribution score (½·w²·H_jj) with an EWMA threshold instead of a sort, then quantize the survivors (INT or FP8)',
  needs: { inputSquares: true },
  scope: 'linear',
  prunes: true,
  requiresSparsity: false,
  quantizes: () => true,
  floatFormat: (options) => (options.format === 'fp8' ? 'fp8-e4m3' : undefined),
  fallback: 'magnitude',
  parseOptions(raw, where) {
    rejectUnknownOptions(raw, ['beta', 'compare', 'format'], where, 'hwpq');
    const beta = checkNumber(`${where}.beta`, raw.beta ?? 0.99, { min: 0 });
    if (beta >= 1) throw new InvalidArgumentError(`${where}.beta: the EWMA factor must be in [0, 1), got ${beta}`);
    return {
      beta,
      compare: checkOneOf(`${where}.compare`, raw.compare ?? 'row', ['row', 'matrix'] as const),
      format: checkOneOf(`${where}.format`, raw.format ?? 'int', ['int', 'fp8'] as const),
    };
  },
  async compress(request): Promise<CompressedLinear> {
    const { name, weight, pattern, quantization, storageDType, options, signal } = request;
    if (options.format === 'fp8' && quantization && (quantization.bits !== 8 || quantization.groupSize !== 0)) {
      throw new InvalidArgumentError(`${name}: hwpq's fp8 is 8 bits with one scale per output channel; give quantize { bits: 8, groupSize: 0 } (the CLI: --bits fp8)`);
    }
    const [rows, cols] = weight.shape;
    const w = weight.data as Float32Array;
    let mask: Tensor | undefined;
    const details: Record<string, number | string | boolean> = {};
    if (pattern) {
      const squares = requireStatistic(request, 'hwpq', 'inputSquares').data as Float32Array;
      const tokens = Math.max(1, request.stats?.tokens ?? 1);
      const scores = new Float32Array(rows * cols);
      for (let r = 0; r < rows; ++r) {
        for (let c = 0; c < cols; ++c) scores[r * cols + c] = 0.5 * w[r * cols + c] ** 2 * ((2 / tokens) * squares[c]);
        if (r % 256 === 255) await breathe(signal);
      }
      const prune = new Uint8Array(rows * cols);
      if (pattern.kind === 'nm') {
        const { n, m } = pattern;
        for (let start = 0; start < rows * cols; start += m) {
          if (start % (m << 16) === 0) await breathe(signal);
          // The M − N lowest of each group (ties to the lower index).
          for (let t = 0; t < m; ++t) {
            let rank = 0;
            for (let s = 0; s < m; ++s) rank += scores[start + s] < scores[start + t] || (scores[start + s] === scores[start + t] && s < t) ? 1 : 0;
            prune[start + t] = rank < m - n ? 1 : 0;
          }
        }
      } else {
        const z = normalQuantile(pattern.sparsity);
        const ewma = new LogEwma(options.beta);
        let misses = 0;
        if (options.compare === 'row') {
          const count = cols - keptCount(pattern, cols);
          for (let c = 0; c < cols; ++c) ewma.add(scores[c]);
          for (let r = 0; r < rows; ++r) {
            misses += pruneExactly(scores, r * cols, (r + 1) * cols, count, ewma.threshold(z), prune);
            for (let c = 0; c < cols; ++c) ewma.add(scores[r * cols + c]);
            if (r % 256 === 255) await breathe(signal);
          }
        } else {
          for (let i = 0; i < scores.length; ++i) ewma.add(scores[i]);
          misses = pruneExactly(scores, 0, scores.length, scores.length - keptCount(pattern, scores.length), ewma.threshold(z), prune);
        }
        // How far the EWMA threshold alone was from the exact count (what the selection corrected).
        details.thresholdMiss = misses / (rows * cols);
      }
      const keep = new Uint8Array(rows * cols);
      for (let i = 0; i < prune.length; ++i) {
        keep[i] = prune[i] ? 0 : 1;
        if (prune[i]) w[i] = 0;
      }
      mask = Tensor.fromTypedArray(keep, [rows, cols]);
    }
    if (options.format === 'fp8') {
      const fp8 = await roundToFp8E4m3(weight, storageDType ?? 'f32', signal);
      return { weight: fp8.weight, ...(mask ? { mask } : {}), floatQuantized: fp8.floatQuantized, details: { ...details, format: 'fp8-e4m3 per channel' } };
    }
    if (!quantization) return { weight, ...(mask ? { mask } : {}), details };
    const rounded = await roundToNearest(weight, quantization, storageDType ?? 'f32', signal);
    return { weight: rounded.weight, ...(mask ? { mask } : {}), quantized: rounded.quantized, details };
  },
};
