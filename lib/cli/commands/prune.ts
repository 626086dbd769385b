import { parseArgs } from 'node:util';
import { InvalidArgumentError } from '../../errors.js';
import { parseFlags, type Command } from '../command.js';
import { LAYOUTS, prune, type PruneLayout } from '../../pipeline/prune.js';
import { recipeOf, RUN_FLAGS, runCompression } from '../compress-run.js';
import { EXPERT_FLAGS, isExpertMethod, rejectExpertFlags, runExpertPruning } from '../expert-run.js';

/** Flags of model-scope methods (elsa), and the recipe option each one sets. */
const TRAINING_FLAGS = {
  steps: { type: 'string' },
  batch: { type: 'string' },
  lr: { type: 'string' },
  lambda: { type: 'string' },
  interval: { type: 'string' },
} as const;
const TRAINING_OPTION_NAMES: Record<keyof typeof TRAINING_FLAGS, string> = { steps: 'steps', batch: 'batch', lr: 'lr', lambda: 'lambda', interval: 'interval' };

/** Flags that become the structured methods' options (magnitude-sp, wanda-sp, structprune). */
const STRUCTURED_FLAGS = { structures: 'structures', heads: 'heads', allocation: 'allocation', temperature: 'temperature' } as const;

async function run(args: string[]): Promise<void> {
  const { values } = parseFlags('prune', () =>
    parseArgs({
      args,
      strict: true,
      options: {
        ...RUN_FLAGS,
        ...EXPERT_FLAGS,
        method: { type: 'string' },
        sparsity: { type: 'string' },
        layout: { type: 'string' },
        structures: { type: 'string' },
        heads: { type: 'string' },
        allocation: { type: 'string' },
        temperature: { type: 'string' },
        ...TRAINING_FLAGS,
      },
    }),
  );
  if (isExpertMethod(values.method)) {
    const structured = ['layout', ...Object.keys(STRUCTURED_FLAGS)].find((flag) => values[flag as keyof typeof values] !== undefined);
    if (structured) throw new InvalidArgumentError(`prune: --${structured} applies to the structured methods (magnitude-sp, wanda-sp, structprune), not ${values.method}`);
    return runExpertPruning(values);
  }
  rejectExpertFlags(values, values.method);
  const structuredOptions: Record<string, unknown> = {};
  for (const [flag, option] of Object.entries(STRUCTURED_FLAGS)) {
    const value = values[flag as keyof typeof STRUCTURED_FLAGS];
    if (value !== undefined) structuredOptions[option] = flag === 'temperature' ? Number(value) : value;
  }
  if (Object.keys(structuredOptions).length > 0 && values.recipe) throw new InvalidArgumentError('prune: --structures, --heads, --allocation and --temperature go with --method; in a recipe, put them in the stage\'s options');
  // A model-scope method's budget (--steps, --batch, --lr, --lambda, --interval) becomes the stage's
  // options; the method validates them, and one that takes none names the flag it does not know.
  const trainingOptions: Record<string, unknown> = {};
  for (const [flag, option] of Object.entries(TRAINING_OPTION_NAMES)) {
    const value = values[flag as keyof typeof TRAINING_FLAGS];
    if (value === undefined) continue;
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n)) throw new InvalidArgumentError(`prune: --${flag} must be a number, got '${value}'`);
    trainingOptions[option] = n;
  }
  if (Object.keys(trainingOptions).length > 0 && values.recipe) throw new InvalidArgumentError('prune: put the training options in the recipe (options: {steps, batch, lr, lambda, interval}) when giving --recipe');
  const options = { ...structuredOptions, ...trainingOptions };
  const fromFlags =
    values.method || values.sparsity
      ? () => ({ method: values.method, sparsity: values.sparsity, ...(Object.keys(options).length > 0 ? { options } : {}) })
      : undefined;
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
        [--steps N --batch B --lr LR --lambda L --interval K]   (elsa)
                   one-shot pruning, layer by layer: methods magnitude, wanda, sparsegpt, alps;
                   elsa instead trains the whole model in memory on the calibration text (ADMM on
                   its loss: --steps (400) Adam steps of --batch (8) windows of --seq-len (256)
                   tokens, --lr (1e-3), penalty --lambda (0.5, rising to 10× on a cosine), z/u
                   update every --interval (64) steps), prints the loss and ‖x − z‖/‖x‖ per
                   interval, and --resume continues from its last interval checkpoint; give it a
                   text larger than it reads (millions of tokens), or it learns that text;
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
                   Hessian (--measure-error: for all, --skip-error: for none)
       prune --model DIR --method heapr|expert-drop|activation-atoms --sparsity S --calib FILE
        --out DIR [--per-layer | --global] [--allow-expert-removal] [--expert-format padded|shrunk]
        [--nsamples N] [--seq-len L] [--seed S] [--min-expert-tokens N] [--starved-share F]
        [--eval FILE] [--overwrite] [--json]
                   mixture-of-experts models: removes the fraction S of the routed-expert parameters
                   as one model-level decision (shared experts and dense layers are kept): heapr
                   ranks atoms (expert neurons) by mean a² × mean (∂L/∂a)² across all MoE layers
                   (--per-layer: within each, HEAPr-L); activation-atoms by mean a² within each layer;
                   expert-drop removes whole experts, least routed first; an expert the ratio would
                   empty keeps one neuron, or is removed (router logit masked) with
                   --allow-expert-removal; --expert-format padded (default: original shapes, zeros)
                   or shrunk (kept neurons only, padded to the layer's widest expert; sparq runs each
                   expert at its kept width); warns when more than F (0.1) of the experts saw fewer
                   than N (16) calibration tokens`,
  run,
};
