// `prune` and `quantize`: the layer-wise driver (compress-model.ts, plus tune-scales.ts for methods that
// tune scales end to end and for bsr-int4) with each command's default output. Pruning writes the dense
// folder (zeros in place); quantizing defaults to compressed-tensors pack-quantized, which vLLM loads, or
// the dense folder with decoded weights (`format: 'dense'`), or sparq's packed bsr-int4.
import type { CompressOptions, CompressProgress } from './compress-model.js';
import type { CompressReport } from './report.js';
import { compressTuneAndPack, type TunedCompressOptions, type TunedCompressReport } from './tune-scales.js';

export type PruneOptions = Omit<CompressOptions, 'format'>;
export type PruneProgress = CompressProgress;
export type PruneReport = CompressReport;
export type { LinearReportEntry } from './report.js';

/** Prunes (and, where the recipe says so, quantizes) a model into a dense Hugging Face folder. */
export function prune(options: PruneOptions): Promise<PruneReport> {
  return compressTuneAndPack({ ...options, format: 'dense' });
}

/** Quantizes (and, where the recipe says so, prunes) a model; format compressed-tensors unless given. */
export function quantize(options: TunedCompressOptions): Promise<TunedCompressReport> {
  return compressTuneAndPack({ ...options, format: options.format ?? 'compressed-tensors' });
}
