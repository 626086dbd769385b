// What `sparq prune` and `sparq quantize` share: the flags of a compression run (model, output,
// calibration, evaluation, resume), running it with a progress bar and Ctrl-C, and printing the report.
import type { ParseArgsConfig } from 'node:util';
import { AbortError, UsageError } from '../errors.js';
import { StagingFolder } from '../export/staging.js';
import { readTextFile } from '../io/text.js';
import { compressTuneAndPack, type RunFormat, type TunedCompressOptions, type TunedCompressReport } from '../pipeline/tune-scales.js';
import type { ShrinkSummary } from '../export/shrink.js';
import { loadRecipe, parseRecipe, type Recipe } from '../pipeline/recipe.js';
import { loadTokenizer } from '../io/tokenizer.js';
import { positiveInteger, withInterrupt } from './command.js';
import { progressBar } from './progress.js';

/** The flags every compression command takes. */
export const RUN_FLAGS = {
  model: { type: 'string' },
  recipe: { type: 'string' },
  calib: { type: 'string' },
  nsamples: { type: 'string' },
  'seq-len': { type: 'string' },
  seed: { type: 'string' },
  sequential: { type: 'string' },
  out: { type: 'string' },
  eval: { type: 'string' },
  'eval-seq-len': { type: 'string' },
  'eval-max-tokens': { type: 'string' },
  overwrite: { type: 'boolean', default: false },
  resume: { type: 'boolean', default: false },
  'skip-error': { type: 'boolean', default: false },
  'measure-error': { type: 'boolean', default: false },
  json: { type: 'boolean', default: false },
} as const satisfies NonNullable<ParseArgsConfig['options']>;

type RunValues = { [K in keyof typeof RUN_FLAGS]?: (typeof RUN_FLAGS)[K]['type'] extends 'string' ? string : boolean };

/** The recipe from --recipe FILE (with --sequential applied), or the one the command's flags describe. */
export async function recipeOf(command: string, values: RunValues, fromFlags: (() => Record<string, unknown>) | undefined): Promise<Recipe> {
  if (values.recipe) {
    if (fromFlags) throw new UsageError(`${command}: give either --recipe FILE or the method flags, not both`);
    const recipe = await loadRecipe(values.recipe);
    return values.sequential ? parseRecipe({ ...recipe, sequential: values.sequential }, values.recipe) : recipe;
  }
  if (!fromFlags) throw new UsageError(`${command}: give the method flags or --recipe FILE (sparq ${command} --help)`);
  return parseRecipe({ ...fromFlags(), ...(values.sequential ? { sequential: values.sequential } : {}) }, `${command} options`);
}

function printReport(report: TunedCompressReport & { shrunk?: ShrinkSummary }): void {
  const out = process.stdout;
  const quantized = report.totals.quantizedLinears > 0;
  out.write(
    `${'linear'.padEnd(44)} ${'method'.padEnd(10)} ${'pattern'.padEnd(8)} ${quantized ? `${'grid'.padEnd(12)} ` : ''}${'shape'.padEnd(12)} ${'sparsity'.padStart(8)} ` +
      `${quantized ? `${'bits/w'.padStart(7)} ` : ''}${'rel. error'.padStart(10)} ${'seconds'.padStart(8)}\n`,
  );
  for (const l of report.linears) {
    const grid = l.bits === undefined ? '-' : `W${l.bits} ${l.groupSize === 0 ? 'chan' : `g${l.groupSize}`}${l.symmetric ? '' : ' asym'}`;
    out.write(
      `${l.name.padEnd(44)} ${l.method.padEnd(10)} ${l.pattern.padEnd(8)} ${quantized ? `${grid.padEnd(12)} ` : ''}${l.shape.join('×').padEnd(12)} ${(100 * l.sparsity).toFixed(2).padStart(7)}% ` +
        `${quantized ? `${l.bitsPerWeight.toFixed(2).padStart(7)} ` : ''}${(l.relativeError === null ? '-' : l.relativeError.toExponential(3)).padStart(10)} ${l.seconds.toFixed(2).padStart(8)}\n`,
    );
  }
  const t = report.totals;
  out.write(
    `\n${t.compressedLinears} linears compressed to ${(100 * t.sparsity).toFixed(2)}% sparsity (${t.prunedParameters.toLocaleString('en-US')} of ` +
      `${t.compressedParameters.toLocaleString('en-US')} weights)${t.bitsPerWeight !== null ? `, ${t.bitsPerWeight.toFixed(3)} bits per weight (${t.quantizedLinears} quantized)` : ''} ` +
      `in ${t.seconds.toFixed(1)} s, peak RSS ${(t.peakRssBytes / 2 ** 20).toFixed(0)} MiB\n`,
  );
  if (report.training) {
    const t = report.training as { steps: number; tokensSeen: number; seconds: number; finalLoss: number; finalViolation: number };
    out.write(`trained ${t.steps} steps on ${t.tokensSeen.toLocaleString('en-US')} tokens in ${t.seconds.toFixed(1)} s; final loss ${t.finalLoss.toFixed(4)}, ‖x − z‖/‖x‖ ${t.finalViolation.toExponential(2)} before the last projection\n`);
  }
  if (report.perplexityBefore !== undefined) out.write(`perplexity ${report.perplexityBefore.toFixed(4)} → ${report.perplexityAfter!.toFixed(4)}\n`);
  if (report.scaleTuning) {
    const st = report.scaleTuning;
    out.write(`end-to-end scale tuning: ${st.steps} steps, calibration loss ${st.lossBefore.toFixed(4)} → ${st.lossAfter.toFixed(4)}${st.kept ? '' : ' (no gain: original scales kept)'}\n`);
  }
  if (report.packed) out.write(`packed as bsr-int4 (blocks of ${report.packed.blockSize}): safetensors ${(report.packed.fileBytesAfter / 2 ** 20).toFixed(2)} MiB\n`);
  for (const note of report.allocation?.notes ?? []) out.write(`note: ${note}\n`);
  if (report.shrunk) {
    const s = report.shrunk;
    out.write(
      `shrunk: ${s.parametersBefore.toLocaleString('en-US')} → ${s.parametersAfter.toLocaleString('en-US')} parameters; ` +
        `per layer (mlp/heads/kv): ${s.layers.map((l) => `${l.intermediateSize}/${l.heads}/${l.kvHeads}`).join(' ')}${s.perLayer ? ' (sparq_layer_widths in config.json)' : ''}\n`,
    );
  }
  out.write(`wrote ${report.out} (${report.format}; report.json inside)\n`);
}

/** A model-scope method's run in the JSON line: its numbers, without the per-interval log (report.json has it). */
function trainingSummary(training: Record<string, unknown>): Record<string, unknown> {
  const { log: _log, ...rest } = training;
  return rest;
}

/** Runs a compression from the command line and prints its report (or one JSON line). */
export async function runCompression(
  command: string,
  values: RunValues,
  recipe: Recipe,
  format: RunFormat,
  runner: (options: TunedCompressOptions) => Promise<TunedCompressReport & { shrunk?: ShrinkSummary }> = compressTuneAndPack,
): Promise<void> {
  if (!values.model) throw new UsageError(`${command}: --model DIR is required`);
  if (!values.out) throw new UsageError(`${command}: --out DIR is required`);
  if (values['skip-error'] && values['measure-error']) throw new UsageError(`${command}: give --skip-error or --measure-error, not both`);
  const evalTokens = values.eval ? (await loadTokenizer(values.model)).encode(await readTextFile(values.eval)) : undefined;
  const bar = progressBar(command);
  let report: TunedCompressReport & { shrunk?: ShrinkSummary };
  try {
    report = await withInterrupt((signal) =>
      runner({
        model: values.model!,
        out: values.out!,
        recipe,
        format,
        calibrationFile: values.calib,
        nsamples: positiveInteger(command, 'nsamples', values.nsamples),
        seqLen: positiveInteger(command, 'seq-len', values['seq-len'], 2),
        seed: positiveInteger(command, 'seed', values.seed, 0),
        overwrite: values.overwrite,
        resume: values.resume,
        evalTokens,
        evalSeqLen: positiveInteger(command, 'eval-seq-len', values['eval-seq-len'], 2),
        evalMaxTokens: positiveInteger(command, 'eval-max-tokens', values['eval-max-tokens']),
        measureError: values['skip-error'] ? false : values['measure-error'] ? true : 'auto',
        onProgress: ({ step, steps, block, blocks, stage, line }) => {
          if (line !== undefined) process.stderr.write(`${line}\n`);
          bar.update(step, steps, block >= 0 ? `block ${Math.min(block + 1, blocks)}/${blocks} ${stage}` : stage);
        },
        onTuneStep: (step, steps, loss) => bar.update(step, steps, `end-to-end scale tuning, loss ${loss.toFixed(4)}`),
        signal,
      }).catch((error: unknown) => {
        if (signal.aborted) throw new AbortError(`interrupted; the finished blocks are kept at ${StagingFolder.resumablePath(values.out!)} — rerun with --resume to continue`);
        throw error;
      }),
    );
  } finally {
    bar.done();
  }
  if (values.json) {
    process.stdout.write(
      `${JSON.stringify({
        out: values.out,
        format: report.format,
        sparsity: report.totals.sparsity,
        bits_per_weight: report.totals.bitsPerWeight,
        seconds: report.totals.seconds,
        peak_rss_bytes: report.totals.peakRssBytes,
        linears: report.totals.compressedLinears,
        quantized_linears: report.totals.quantizedLinears,
        ...(report.perplexityBefore !== undefined ? { perplexity_before: report.perplexityBefore, perplexity_after: report.perplexityAfter } : {}),
        resumed_at_block: report.totals.resumedAtBlock,
        ...(report.scaleTuning ? { scale_tuning: { steps: report.scaleTuning.steps, loss_before: report.scaleTuning.lossBefore, loss_after: report.scaleTuning.lossAfter, kept: report.scaleTuning.kept } } : {}),
        ...(report.packed ? { packed_bytes: report.packed.fileBytesAfter, block_size: report.packed.blockSize } : {}),
        ...(report.training ? { training: trainingSummary(report.training) } : {}),
        ...(report.allocation ? { allocation_notes: report.allocation.notes } : {}),
        ...(report.shrunk
          ? {
              parameters_before: report.shrunk.parametersBefore,
              parameters_after: report.shrunk.parametersAfter,
              per_layer_widths: report.shrunk.perLayer,
              layer_widths: report.shrunk.layers.map((l) => ({ intermediate_size: l.intermediateSize, num_attention_heads: l.heads, num_key_value_heads: l.kvHeads })),
            }
          : {}),
      })}\n`,
    );
  } else {
    printReport(report);
  }
}
