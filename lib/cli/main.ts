#!/usr/bin/env node
// The sparq command line. Commands arrive with the issues that build them; `info` reports the backends.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { backendInfo, DecoderModel, evaluatePerplexity, inspectModel, isAvailable, loadAttempts, loadRecipe, loadTokenizer, parseRecipe, prune, PrunedFolder } from '../index.js';
import type { PruneReport, Recipe } from '../index.js';
import { AbortError, InvalidArgumentError, InvalidFileError, SparqError } from '../errors.js';
import { progressBar } from './progress.js';
import { readTextFile } from '../io/text.js';
import { sparqVersion } from '../version.js';

const USAGE = `Usage: sparq <command> [options]

Commands:
  info [--json]    the native backends: kernels, threads, and why a backend did not load
  eval --model DIR (--text FILE | --tokens FILE.json) [--seq-len N] [--max-tokens N] [--json]
                   perplexity of a model (Llama, Mistral, Qwen2, Qwen3, Mixtral, OPT) on a text:
                   the whole text tokenized as one string without special tokens, the first
                   --max-tokens kept, non-overlapping --seq-len windows (default: 2048, or the
                   model's context if shorter), exp of the mean of the windows' mean next-token NLL
  inspect DIR [--json]
                   architecture, parameter count, dtypes, bytes, and each linear layer's sparsity
  prune --model DIR (--method NAME --sparsity S | --recipe FILE) [--calib FILE] --out DIR
        [--nsamples N] [--seq-len L] [--seed S] [--sequential block|linear]
        [--eval FILE] [--eval-seq-len L] [--eval-max-tokens N] [--overwrite] [--resume]
        [--skip-error] [--json]
                   one-shot pruning, layer by layer: methods magnitude, wanda, sparsegpt, alps;
                   S is a fraction of zeros (0.5, 50%) or N:M (2:4 keeps 2 of every 4 inputs);
                   --calib is a .txt or .jsonl (text field) file, cut into --nsamples random
                   windows of --seq-len tokens (defaults 128 × 2048, clamped to the context);
                   writes a Hugging Face folder with report.json; --eval reports perplexity
                   before and after; --resume continues an interrupted run into the same --out;
                   --skip-error skips measuring each linear's reconstruction error (faster)

Options:
  -h, --help       show this help
  -v, --version    print the version`;

const version = sparqVersion;

function info(args: string[]): void {
  const { values } = parseArgs({ args, options: { json: { type: 'boolean', default: false } }, strict: true });
  const cpu = backendInfo('cpu');
  const cuda = isAvailable('cuda') ? backendInfo('cuda') : null;
  const report = { version: version(), cpu, cuda, loadAttempts: loadAttempts() };
  if (values.json) {
    process.stdout.write(`${JSON.stringify(report)}\n`);
    return;
  }
  process.stdout.write(`sparq ${report.version}\n`);
  process.stdout.write(`${cpu.description} (variants: ${cpu.kernelVariants.join(', ')})\n`);
  if (cuda) {
    process.stdout.write(`cuda: ${cuda.description}\n`);
  } else {
    const why = loadAttempts().filter((a) => a.backend === 'cuda' && !a.ok);
    process.stdout.write(`cuda: unavailable${why.map((a) => ` (${a.error}; ${a.fix})`).join('')}\n`);
  }
}

async function evaluate(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      model: { type: 'string' },
      text: { type: 'string' },
      tokens: { type: 'string' },
      'seq-len': { type: 'string' },
      'max-tokens': { type: 'string' },
      json: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (!values.model) throw new InvalidArgumentError('eval: --model DIR is required');
  if (!values.text === !values.tokens) throw new InvalidArgumentError('eval: give exactly one of --text FILE or --tokens FILE.json');
  let tokens: Int32Array;
  if (values.tokens) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(values.tokens, 'utf8'));
    } catch (error) {
      throw new InvalidFileError(`${values.tokens}: ${(error as Error).message}`);
    }
    if (!Array.isArray(parsed) || !parsed.every((t) => Number.isSafeInteger(t))) throw new InvalidFileError(`${values.tokens}: expected a JSON array of token ids`);
    tokens = Int32Array.from(parsed as number[]);
  } else {
    const text = await readTextFile(values.text!);
    tokens = (await loadTokenizer(values.model)).encode(text);
  }
  const model = await DecoderModel.open(values.model);
  try {
    const bar = progressBar('eval');
    const result = await evaluatePerplexity(model, tokens, {
      seqLen: positiveInteger('eval', 'seq-len', values['seq-len'], 2),
      maxTokens: positiveInteger('eval', 'max-tokens', values['max-tokens']),
      onProgress: ({ step, steps, stage }) => bar.update(step, steps, stage),
    });
    bar.done();
    if (values.json) {
      process.stdout.write(`${JSON.stringify({ model: values.model, ...result })}\n`);
    } else {
      process.stdout.write(
        `perplexity ${result.perplexity.toFixed(4)} over ${result.windows} windows of ${result.seqLen} tokens (${result.tokens} tokens) in ${result.seconds.toFixed(1)} s\n`,
      );
    }
  } finally {
    await model.close();
  }
}

async function inspect(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({ args, options: { json: { type: 'boolean', default: false } }, allowPositionals: true, strict: true });
  if (positionals.length !== 1) throw new InvalidArgumentError('inspect: give exactly one model folder');
  const bar = progressBar('inspect');
  const report = await inspectModel(positionals[0], { onProgress: (done, total) => bar.update(done, total, 'linears') });
  bar.done();
  if (values.json) {
    process.stdout.write(`${JSON.stringify(report)}\n`);
    return;
  }
  const c = report.config;
  process.stdout.write(
    `${report.dir}: ${c.architecture}, ${c.layers} layers, hidden ${c.hiddenSize}, ${c.heads} heads / ${c.kvHeads} kv (head_dim ${c.headDim}), ` +
      `vocab ${c.vocabSize}\n${report.parameters.toLocaleString('en-US')} parameters, ${(report.bytes / 2 ** 20).toFixed(1)} MiB, dtypes ${JSON.stringify(report.dtypes)}\n`,
  );
  for (const l of report.linears) process.stdout.write(`  ${l.name.padEnd(48)} [${l.shape.join(', ')}]  sparsity ${(100 * l.sparsity).toFixed(2)}%\n`);
}

function positiveInteger(command: string, name: string, value: string | undefined, min = 1): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < min) throw new InvalidArgumentError(`${command}: --${name} must be an integer >= ${min}, got '${value}'`);
  return n;
}

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

async function pruneCommand(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
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
    strict: true,
  });
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

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    if (command === undefined || command === '-h' || command === '--help' || command === 'help') {
      process.stdout.write(`${USAGE}\n`);
      return command === undefined ? 1 : 0;
    }
    if (command === '-v' || command === '--version') {
      process.stdout.write(`${version()}\n`);
      return 0;
    }
    if (command === 'info') {
      info(rest);
      return 0;
    }
    if (command === 'inspect') {
      await inspect(rest);
      return 0;
    }
    if (command === 'prune') {
      await pruneCommand(rest);
      return 0;
    }
    if (command === 'eval') {
      await evaluate(rest);
      return 0;
    }
    process.stderr.write(`sparq: unknown command '${command}'\n\n${USAGE}\n`);
    return 2;
  } catch (error) {
    const code = error instanceof SparqError ? ` [${error.code}]` : '';
    process.stderr.write(`sparq: ${(error as Error).message}${code}\n`);
    // 130 is the shell's convention for a run stopped by Ctrl-C.
    return error instanceof AbortError ? 130 : 1;
  }
}

// A closed pipe (`sparq inspect DIR | head`) ends the output quietly instead of crashing.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw error;
});
process.exitCode = await main(process.argv.slice(2));
