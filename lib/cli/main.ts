#!/usr/bin/env node
// The sparq command line. Commands arrive with the issues that build them; `info` reports the backends.
import { readFileSync, statSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { backendInfo, DecoderModel, loadTokenizerFile, train, evaluatePerplexity, inspectModel, isAvailable, loadAttempts, loadRecipe, loadTokenizer, parseRecipe, prune, PrunedFolder } from '../index.js';
import type { PruneReport, Recipe } from '../index.js';
import { AbortError, InvalidArgumentError, InvalidFileError, SparqError } from '../errors.js';
import { progressBar } from './progress.js';
import { readTextFile } from '../io/text.js';
import { sparqVersion } from '../version.js';
import { DEMO_PROFILES, formatTable, runDemo } from '../demo/demo.js';

const USAGE = `Usage: sparq <command> [options]

Commands:
  demo [--out DIR] [--quick] [--retrain] [--cache-dir DIR] [--json]
                   the whole product with nothing but npm: trains a small Llama on State-of-the-
                   Union text (cached for the next run), prunes it with magnitude, Wanda, SparseGPT
                   and ALPS at several sparsities, prints a perplexity table and writes report.json
                   and perplexity.svg to --out (default ./sparq-demo); --quick runs a tiny version
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

  train (--model DIR | --init CONFIG.json [--tokenizer FILE|DIR]) (--tokens FILE.json | --text FILE)
        --seq-len T --batch B --steps S --optimizer sgd|adamw --lr LR [--weight-decay W]
        [--grad-clip C] [--shuffle --seed S] [--save-dtype float32|bfloat16|float16]
        --out DIR [--overwrite] [--json]
                   trains in memory: the tokens are cut into non-overlapping windows of T tokens
                   (as eval does), taken in order (or shuffled per pass with --shuffle); the loss
                   of a step is the mean of its B windows' mean next-token NLL; --init starts a
                   new model from a config.json (Hugging Face initialisation); writes a Hugging
                   Face folder with training.json

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

/** Token ids from a JSON array file, or a text file encoded with the tokenizer in `tokenizerDir`. */
async function readTokens(tokensFile: string | undefined, textFile: string | undefined, tokenizerDir: string): Promise<Int32Array> {
  if (textFile !== undefined) return (await loadTokenizer(tokenizerDir)).encode(await readTextFile(textFile));
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(tokensFile!, 'utf8'));
  } catch (error) {
    throw new InvalidFileError(`${tokensFile}: ${(error as Error).message}`);
  }
  if (!Array.isArray(parsed) || !parsed.every((t) => Number.isSafeInteger(t))) throw new InvalidFileError(`${tokensFile}: expected a JSON array of token ids`);
  return Int32Array.from(parsed as number[]);
}

function positiveNumber(command: string, name: string, value: string | undefined, min = 0): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n) || n < min || value.trim() === '') throw new InvalidArgumentError(`${command}: --${name} must be a number >= ${min}, got '${value}'`);
  return n;
}

async function trainCommand(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      model: { type: 'string' },
      init: { type: 'string' },
      tokenizer: { type: 'string' },
      tokens: { type: 'string' },
      text: { type: 'string' },
      'seq-len': { type: 'string' },
      batch: { type: 'string' },
      steps: { type: 'string' },
      optimizer: { type: 'string' },
      lr: { type: 'string' },
      'weight-decay': { type: 'string' },
      'grad-clip': { type: 'string' },
      'save-dtype': { type: 'string' },
      shuffle: { type: 'boolean', default: false },
      seed: { type: 'string' },
      out: { type: 'string' },
      overwrite: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (!values.model === !values.init) throw new InvalidArgumentError('train: give exactly one of --model DIR or --init CONFIG.json');
  if (!values.text === !values.tokens) throw new InvalidArgumentError('train: give exactly one of --text FILE or --tokens FILE.json');
  for (const required of ['seq-len', 'batch', 'steps', 'optimizer', 'lr', 'out'] as const) {
    if (values[required] === undefined) throw new InvalidArgumentError(`train: --${required} is required`);
  }
  if (values.seed !== undefined && !values.shuffle) throw new InvalidArgumentError('train: --seed only applies with --shuffle');
  let tokens: Int32Array;
  if (values.text !== undefined && values.model === undefined) {
    if (!values.tokenizer) throw new InvalidArgumentError('train: --text with --init needs --tokenizer (a tokenizer.json or a folder with one)');
    const tokenizer = statSync(values.tokenizer, { throwIfNoEntry: false })?.isDirectory() ? await loadTokenizer(values.tokenizer) : await loadTokenizerFile(values.tokenizer);
    tokens = tokenizer.encode(await readTextFile(values.text));
  } else {
    tokens = await readTokens(values.tokens, values.text, values.tokenizer ?? values.model!);
  }
  const controller = new AbortController();
  const interrupt = () => controller.abort();
  process.once('SIGINT', interrupt);
  const bar = progressBar('train');
  try {
    const report = await train({
      model: values.model,
      init: values.init,
      tokenizer: values.init !== undefined ? values.tokenizer : undefined,
      tokens,
      seqLen: positiveInteger('train', 'seq-len', values['seq-len'], 2)!,
      batch: positiveInteger('train', 'batch', values.batch)!,
      steps: positiveInteger('train', 'steps', values.steps)!,
      optimizer: values.optimizer as 'sgd' | 'adamw',
      lr: positiveNumber('train', 'lr', values.lr)!,
      weightDecay: positiveNumber('train', 'weight-decay', values['weight-decay']),
      gradClip: positiveNumber('train', 'grad-clip', values['grad-clip']),
      saveDtype: values['save-dtype'] as 'float32' | undefined,
      shuffle: values.shuffle,
      seed: positiveInteger('train', 'seed', values.seed, 0),
      out: values.out!,
      overwrite: values.overwrite,
      onProgress: ({ step, steps, loss, tokensPerSecond }) => bar.update(step, steps, `loss ${loss.toFixed(4)}, ${tokensPerSecond.toFixed(0)} tok/s`),
      signal: controller.signal,
    });
    bar.done();
    const first = report.losses[0];
    const last = report.losses[report.losses.length - 1];
    if (values.json) {
      process.stdout.write(
        `${JSON.stringify({
          out: report.out,
          steps: report.steps,
          first_loss: first,
          final_loss: last,
          tokens_per_second: report.tokensPerSecond,
          seconds: report.seconds,
          epochs: report.epochs,
          peak_rss_bytes: report.peakRssBytes,
        })}\n`,
      );
    } else {
      process.stdout.write(
        `${report.steps} steps of ${report.batch} × ${report.seqLen} tokens (${report.epochs.toFixed(2)} passes over ${report.windows} windows): ` +
          `loss ${first.toFixed(4)} → ${last.toFixed(4)}, ${report.tokensPerSecond.toFixed(0)} tokens/s, ${report.seconds.toFixed(1)} s\nwrote ${report.out} (training.json inside)\n`,
      );
    }
  } catch (error) {
    bar.done();
    throw error;
  } finally {
    process.off('SIGINT', interrupt);
  }
}

async function demoCommand(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      out: { type: 'string', default: 'sparq-demo' },
      quick: { type: 'boolean', default: false },
      retrain: { type: 'boolean', default: false },
      'cache-dir': { type: 'string' },
      json: { type: 'boolean', default: false },
    },
    strict: true,
  });
  const controller = new AbortController();
  const interrupt = () => controller.abort();
  process.once('SIGINT', interrupt);
  let bar = progressBar('demo');
  let stage = '';
  try {
    const report = await runDemo({
      out: values.out!,
      profile: values.quick ? DEMO_PROFILES.quick : DEMO_PROFILES.default,
      retrain: values.retrain,
      cacheDir: values['cache-dir'],
      log: (line) => {
        bar.done();
        process.stderr.write(`${line}\n`);
        bar = progressBar('demo');
      },
      onProgress: (step, steps, what) => {
        // A new kind of work starts a fresh bar, so its ETA is its own.
        const kind = what.split(':')[0];
        if (kind !== stage) {
          bar.done();
          bar = progressBar(kind);
          stage = kind;
        }
        bar.update(step, steps, what.slice(kind.length + 1).trim());
      },
      signal: controller.signal,
    });
    bar.done();
    if (values.json) {
      process.stdout.write(`${JSON.stringify(report)}\n`);
    } else {
      process.stdout.write(`\n${formatTable(report)}\nwrote ${values.out}/report.json and ${values.out}/perplexity.svg in ${report.seconds.toFixed(0)} s\n`);
    }
  } catch (error) {
    bar.done();
    if (controller.signal.aborted) throw new AbortError('demo: interrupted');
    throw error;
  } finally {
    process.off('SIGINT', interrupt);
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
  const tokens = await readTokens(values.tokens, values.text, values.model);
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
    if (command === 'demo') {
      await demoCommand(rest);
      return 0;
    }
    if (command === 'train') {
      await trainCommand(rest);
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
