// `prune` and `quantize`: the layer-wise driver (compress-model.ts, plus tune-scales.ts for methods that
// tune scales end to end and for bsr-int4) with each command's default output. Pruning writes the dense
// folder (zeros in place); quantizing defaults to compressed-tensors pack-quantized, which vLLM loads, or
// the dense folder with decoded weights (`format: 'dense'`), or sparq's packed bsr-int4.
// Structured pruning (group methods that prune: magnitude-sp, wanda-sp, structprune) writes the zero-padded
// folder first and, with layout 'shrunk' (their default), removes the zeroed neurons and heads from it
// (export/shrink.ts) into --out: a smaller dense model.
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { InvalidArgumentError } from '../errors.js';
import { shrinkModel, type ShrinkSummary } from '../export/shrink.js';
import type { CompressProgress } from './compress-model.js';
import { getMethod } from '../compress/index.js';
import type { Recipe } from './recipe.js';
import { compressTuneAndPack, type TunedCompressOptions, type TunedCompressReport } from './tune-scales.js';

export const LAYOUTS = ['shrunk', 'padded'] as const;
export type PruneLayout = (typeof LAYOUTS)[number];

export type PruneOptions = Omit<TunedCompressOptions, 'format'> & {
  /** Structured methods only: 'shrunk' (default) removes the pruned units; 'padded' keeps the original shapes with zeros. */
  layout?: PruneLayout;
};
export type PruneProgress = CompressProgress;
export type PruneReport = TunedCompressReport & { shrunk?: ShrinkSummary };
export type { LinearReportEntry } from './report.js';

/** Whether a recipe removes whole structures (a group-scope pruning method in some stage). */
export function isStructured(recipe: Recipe): boolean {
  return recipe.stages.some((s) => {
    const method = getMethod(s.method, 'method');
    return method.scope === 'group' && method.prunes;
  });
}

/** Where the padded folder of a shrunk run is staged (stable, so --resume finds it). */
export function paddedStagingPath(out: string): string {
  return join(dirname(resolve(out)), `.${basename(resolve(out))}.sparq-padded`);
}

/** Prunes (and, where the recipe says so, quantizes) a model into a dense Hugging Face folder. */
export async function prune(options: PruneOptions): Promise<PruneReport> {
  const { layout, ...rest } = options;
  if (layout !== undefined && !(LAYOUTS as readonly string[]).includes(layout)) throw new InvalidArgumentError(`layout: expected shrunk or padded, received ${JSON.stringify(layout)}`);
  const structured = isStructured(options.recipe);
  if (layout !== undefined && !structured) throw new InvalidArgumentError(`layout: only structured pruning (magnitude-sp, wanda-sp, structprune) changes shapes; ${options.recipe.stages.map((s) => s.method).join(', ')} keep them`);
  if (!structured || layout === 'padded') return compressTuneAndPack({ ...rest, format: 'dense' });
  if (existsSync(options.out) && !options.overwrite) throw new InvalidArgumentError(`output folder ${options.out} already exists (pass --overwrite to replace it)`);
  const padded = paddedStagingPath(options.out);
  const report = await compressTuneAndPack({ ...rest, out: padded, format: 'dense', overwrite: true });
  let result: PruneReport = { ...report, out: options.out };
  const shrunk = await shrinkModel({
    model: padded,
    out: options.out,
    overwrite: options.overwrite,
    signal: options.signal,
    files: (summary) => {
      result = { ...result, shrunk: summary };
      return { 'report.json': `${JSON.stringify(result, null, 2)}\n` };
    },
  });
  await rm(padded, { recursive: true, force: true });
  return { ...result, shrunk };
}

/** Quantizes (and, where the recipe says so, prunes) a model; format compressed-tensors unless given. */
export function quantize(options: TunedCompressOptions): Promise<TunedCompressReport> {
  return compressTuneAndPack({ ...options, format: options.format ?? 'compressed-tensors' });
}
