import { parseArgs } from 'node:util';
import { AbortError, InvalidArgumentError } from '../../errors.js';
import { PrunedFolder } from '../../export/pruned-folder.js';
import { readTextFile } from '../../io/text.js';
import { prune, type PruneReport } from '../../pipeline/prune.js';
import { loadRecipe, parseRecipe, type Recipe } from '../../pipeline/recipe.js';
import { loadTokenizer } from '../../tokenizer.js';
import { parseFlags, positiveInteger, type Command } from '../command.js';
import { progressBar } from '../progress.js';

function printReport(report: PruneReport): void {
  const out = process.stdout;
  out.write(`${'linear'.padEnd(44)} ${'method'.padEnd(10)} ${'pattern'.padEnd(8)} ${'shape'.padEnd(12)} ${'sparsity'.padStart(8)} ${'rel. error'.padStart(10)} ${'seconds'.padStart(8)}\n`);
  for (const l of report.linears) {
    out.write(
      `${l.name.padEnd(44)} ${l.method.padEnd(10)} ${l.pattern.padEnd(8)} ${l.shape.join('×').padEnd(12)} ${(100 * l.sparsity).toFixed(2).padStart(7)}% ` +
        `${(l.relativeError === null ? '-' : l.relativeError.toExponential(3)).padStart(10)} ${l.seconds.toFixed(2).padStart(8)}\n`,
    );
  }
  const t = report.totals;
  out.write(
    `\n${t.compressedLinears} linears compressed to ${(100 * t.sparsity).toFixed(2)}% sparsity (${t.prunedParameters.toLocaleString('en-US')} of ` +
      `${t.compressedParameters.toLocaleString('en-US')} weights) in ${t.seconds.toFixed(1)} s, peak RSS ${(t.peakRssBytes / 2 ** 20).toFixed(0)} MiB\n`,
  );
  if (report.perplexityBefore !== undefined) out.write(`perplexity ${report.perplexityBefore.toFixed(4)} → ${report.perplexityAfter!.toFixed(4)}\n`);
  out.write(`wrote ${report.out} (report.json inside)\n`);
}

async function run(args: string[]): Promise<void> {
  const { values } = parseFlags('prune', () =>
    parseArgs({
      args,
      strict: true,
      options: {
        model: { type: 'string' },
        method: { type: 'string' },
        sparsity: { type: 'string' },
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
        json: { type: 'boolean', default: false },
      },
    }),
  );
  if (!values.model) throw new InvalidArgumentError('prune: --model DIR is required');
  if (!values.out) throw new InvalidArgumentError('prune: --out DIR is required');
  let recipe: Recipe;
  if (values.recipe) {
    if (values.method || values.sparsity) throw new InvalidArgumentError('prune: give either --recipe FILE or --method and --sparsity, not both');
    recipe = await loadRecipe(values.recipe);
    if (values.sequential) recipe = parseRecipe({ ...recipe, sequential: values.sequential }, values.recipe);
  } else {
    if (!values.method || !values.sparsity) throw new InvalidArgumentError('prune: give --method NAME and --sparsity S (or --recipe FILE)');
    recipe = parseRecipe({ method: values.method, sparsity: values.sparsity, ...(values.sequential ? { sequential: values.sequential } : {}) }, 'prune options');
  }
  const evalTokens = values.eval ? (await loadTokenizer(values.model)).encode(await readTextFile(values.eval)) : undefined;
  const controller = new AbortController();
  const interrupt = () => controller.abort();
  process.once('SIGINT', interrupt);
  const bar = progressBar('prune');
  try {
    const report = await prune({
      model: values.model,
      out: values.out,
      recipe,
      calibrationFile: values.calib,
      nsamples: positiveInteger('prune', 'nsamples', values.nsamples),
      seqLen: positiveInteger('prune', 'seq-len', values['seq-len'], 2),
      seed: positiveInteger('prune', 'seed', values.seed, 0),
      overwrite: values.overwrite,
      resume: values.resume,
      evalTokens,
      evalSeqLen: positiveInteger('prune', 'eval-seq-len', values['eval-seq-len'], 2),
      evalMaxTokens: positiveInteger('prune', 'eval-max-tokens', values['eval-max-tokens']),
      measureError: !values['skip-error'],
      onProgress: ({ step, steps, block, blocks, stage }) => bar.update(step, steps, `block ${Math.min(block + 1, blocks)}/${blocks} ${stage}`),
      signal: controller.signal,
    });
    bar.done();
    if (values.json) {
      process.stdout.write(
        `${JSON.stringify({
          out: values.out,
          sparsity: report.totals.sparsity,
          seconds: report.totals.seconds,
          peak_rss_bytes: report.totals.peakRssBytes,
          linears: report.totals.compressedLinears,
          ...(report.perplexityBefore !== undefined ? { perplexity_before: report.perplexityBefore, perplexity_after: report.perplexityAfter } : {}),
          resumed_at_block: report.totals.resumedAtBlock,
        })}\n`,
      );
    } else {
      printReport(report);
    }
  } catch (error) {
    bar.done();
    if (controller.signal.aborted) {
      throw new AbortError(`interrupted; the finished blocks are kept at ${PrunedFolder.stagingPath(values.out)} — rerun with --resume to continue`);
    }
    throw error;
  } finally {
    process.off('SIGINT', interrupt);
  }
}


export const pruneCommand: Command = {
  name: 'prune',
  usage: `prune --model DIR (--method NAME --sparsity S | --recipe FILE) [--calib FILE] --out DIR
        [--nsamples N] [--seq-len L] [--seed S] [--sequential block|linear]
        [--eval FILE] [--eval-seq-len L] [--eval-max-tokens N] [--overwrite] [--resume]
        [--skip-error] [--json]
                   one-shot pruning, layer by layer: methods magnitude, wanda, sparsegpt, alps;
                   S is a fraction of zeros (0.5, 50%) or N:M (2:4 keeps 2 of every 4 inputs);
                   --calib is a .txt or .jsonl (text field) file, cut into --nsamples random
                   windows of --seq-len tokens (defaults 128 × 2048, clamped to the context);
                   writes a Hugging Face folder with report.json; --eval reports perplexity
                   before and after; --resume continues an interrupted run into the same --out;
                   --skip-error skips measuring each linear's reconstruction error (faster)`,
  run,
};
