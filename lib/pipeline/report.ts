// What a compression run reports: per linear (method, pattern, grid, achieved sparsity and bits, the
// reconstruction error on its calibration inputs, seconds, the method's own details) and totals.
import type { PerplexityResult } from '../eval/perplexity.js';
import type { OutputFormat } from '../export/writer.js';
import type { Recipe } from './recipe.js';

export interface LinearReportEntry {
  name: string;
  method: string;
  /** The sparsity pattern asked for ("50%", "2:4"), or "-" where the linear was only quantized. */
  pattern: string;
  shape: number[];
  /** Achieved fraction of zeros. */
  sparsity: number;
  /** The grid, where quantized: code bits, inputs per group (0: one scale per output channel), symmetry. */
  bits?: number;
  groupSize?: number;
  symmetric?: boolean;
  actOrder?: string;
  /** Bits per weight as stored: codes + scales + zero points (+ group index); the storage dtype's bits when dense. */
  bitsPerWeight: number;
  /** A floating-point format the weights were quantized to instead of integer codes (fp8-e4m3). */
  floatFormat?: string;
  /** Weights kept beside the codes (16-bit outliers), where the method keeps any; counted in bitsPerWeight. */
  outliers?: number;
  /** Who quantized: the method itself, or round to nearest after it. */
  quantizer?: string;
  /** ‖WX − ŴX‖² / ‖WX‖² on the calibration inputs the method saw (null where not measured). */
  relativeError: number | null;
  seconds: number;
  details?: Record<string, number | string | boolean>;
}

export interface CompressReport {
  model: string;
  out: string;
  format: OutputFormat;
  recipe: Recipe;
  calibration: { windows: number; seqLen: number; seed: number; tokens: number } | null;
  linears: LinearReportEntry[];
  totals: {
    /** Fraction of zeros over the compressed linears. */
    sparsity: number;
    prunedParameters: number;
    compressedParameters: number;
    linearParameters: number;
    compressedLinears: number;
    /** Quantized linears and their average bits per weight including scales and zero points (null: none). */
    quantizedLinears: number;
    bitsPerWeight: number | null;
    seconds: number;
    peakRssBytes: number;
    resumedAtBlock: number | null;
    /** Wall seconds by stage: block forwards, capture passes (forward + statistics), methods, error measurement, disk, evaluation. */
    stageSeconds: { gradients: number; propagate: number; capture: number; compress: number; error: number; io: number; eval: number };
  };
  /** Group methods that spread the sparsity over the model: each structural group's share, and clamps. */
  allocation?: { groups: { block: number; group: string; sparsity: number }[]; notes: string[] };
  /** A model-scope method's run (Elsa): steps, tokens seen, seconds, its per-interval log. */
  training?: Record<string, unknown>;
  perplexityBefore?: number;
  perplexityAfter?: number;
  eval?: { before: PerplexityResult; after: PerplexityResult };
}

/** The totals over the report's linears. */
export function summarize(entries: readonly LinearReportEntry[]): Pick<CompressReport['totals'], 'sparsity' | 'prunedParameters' | 'compressedParameters' | 'compressedLinears' | 'quantizedLinears' | 'bitsPerWeight'> {
  const size = (e: LinearReportEntry) => e.shape[0] * e.shape[1];
  const compressed = entries.reduce((s, e) => s + size(e), 0);
  const pruned = entries.reduce((s, e) => s + Math.round(e.sparsity * size(e)), 0);
  const quantized = entries.filter((e) => e.bits !== undefined);
  const quantizedWeights = quantized.reduce((s, e) => s + size(e), 0);
  return {
    sparsity: compressed > 0 ? pruned / compressed : 0,
    prunedParameters: pruned,
    compressedParameters: compressed,
    compressedLinears: entries.length,
    quantizedLinears: quantized.length,
    bitsPerWeight: quantizedWeights > 0 ? quantized.reduce((s, e) => s + e.bitsPerWeight * size(e), 0) / quantizedWeights : null,
  };
}
