// `prune` and `quantize`: the layer-wise driver (compress-model.ts) with each command's default output.
// Pruning writes the dense folder (zeros in place); quantizing defaults to compressed-tensors
// pack-quantized, which vLLM loads, or the dense folder with decoded weights (`format: 'dense'`).
import { compressModel, type CompressOptions, type CompressProgress } from './compress-model.js';
import type { CompressReport } from './report.js';

export type PruneOptions = Omit<CompressOptions, 'format'>;
export type PruneProgress = CompressProgress;
export type PruneReport = CompressReport;
export type { LinearReportEntry } from './report.js';

/** Prunes (and, where the recipe says so, quantizes) a model into a dense Hugging Face folder. */
export function prune(options: PruneOptions): Promise<PruneReport> {
  return compressModel({ ...options, format: 'dense' });
}

/** Quantizes (and, where the recipe says so, prunes) a model; format compressed-tensors unless given. */
export function quantize(options: CompressOptions): Promise<CompressReport> {
  return compressModel({ ...options, format: options.format ?? 'compressed-tensors' });
}
