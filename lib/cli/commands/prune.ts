import { parseArgs } from 'node:util';
import { parseFlags, type Command } from '../command.js';
import { InvalidArgumentError } from '../../errors.js';
import { LAYOUTS, prune, type PruneLayout } from '../../pipeline/prune.js';
import { recipeOf, RUN_FLAGS, runCompression } from '../compress-run.js';

/** Flags that become the structured methods' options (magnitude-sp, wanda-sp, structprune). */
const STRUCTURED_FLAGS = { structures: 'structures', heads: 'heads', allocation: 'allocation', temperature: 'temperature' } as const;

async function run(args: string[]): Promise<void> {
  const { values } = parseFlags('prune', () =>
    parseArgs({
      args,
      strict: true,
      options: {
        ...RUN_FLAGS,
        method: { type: 'string' },
        sparsity: { type: 'string' },
        layout: { type: 'string' },
        structures: { type: 'string' },
        heads: { type: 'string' },
        allocation: { type: 'string' },
        temperature: { type: 'string' },
      },
    }),
  );
  const structuredOptions: Record<string, unknown> = {};
  for (const [flag, option] of Object.entries(STRUCTURED_FLAGS)) {
    const value = values[flag as keyof typeof STRUCTURED_FLAGS];
    if (value !== undefined) structuredOptions[option] = flag === 'temperature' ? Number(value) : value;
  }
  if (Object.keys(structuredOptions).length > 0 && values.recipe) throw new InvalidArgumentError('prune: --structures, --heads, --allocation and --temperature go with --method; in a recipe, put them in the stage\'s options');
  const fromFlags =
    values.method || values.sparsity ? () => ({ method: values.method, sparsity: values.sparsity, ...(Object.keys(structuredOptions).length > 0 ? { options: structuredOptions } : {}) }) : undefined;
  const recipe = await recipeOf('prune', values, fromFlags);
  if (values.layout !== undefined && !(LAYOUTS as readonly string[]).includes(values.layout)) throw new InvalidArgumentError(`prune: --layout must be shrunk or padded, got '${values.layout}'`);
  await runCompression('prune', values, recipe, 'dense', (options) => prune({ ...options, layout: values.layout as PruneLayout | undefined }));
}

export const pruneCommand: Command = {
  name: 'prune',
  usage: `prune --model DIR (--method NAME --sparsity S | --recipe FILE) [--calib FILE] --out DIR
        [--structures mlp,heads] [--heads groups|queries] [--allocation uniform|softmax]
        [--temperature T] [--layout shrunk|padded]
        [--nsamples N] [--seq-len L] [--seed S] [--sequential block|linear]
        [--eval FILE] [--eval-seq-len L] [--eval-max-tokens N] [--overwrite] [--resume]
        [--skip-error | --measure-error] [--json]
                   one-shot pruning, layer by layer: methods magnitude, wanda, sparsegpt, alps;
                   S is a fraction of zeros (0.5, 50%) or N:M (2:4 keeps 2 of every 4 inputs);
                   structured methods magnitude-sp, wanda-sp, structprune remove whole MLP neurons
                   and attention heads (--heads groups: whole kv groups; queries: query heads only),
                   S = the fraction of all decoder-linear parameters removed, split across layers
                   uniformly or by --allocation softmax (temperature T, default 1); they write a
                   smaller dense model (--layout shrunk, default) or zeros in place (padded);
                   --calib is a .txt or .jsonl (text field) file, cut into --nsamples random
                   windows of --seq-len tokens (defaults 128 × 2048, clamped to the context);
                   writes a Hugging Face folder with report.json; --eval reports perplexity
                   before and after; --resume continues an interrupted run into the same --out;
                   each linear's reconstruction error is measured where its method has the
                   Hessian (--measure-error: for all, --skip-error: for none)`,
  run,
};
