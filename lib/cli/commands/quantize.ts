import { parseArgs } from 'node:util';
import { InvalidArgumentError } from '../../errors.js';
import { OUTPUT_FORMATS } from '../../export/writer.js';
import type { RunFormat } from '../../pipeline/tune-scales.js';
import { parseFlags, positiveInteger, type Command } from '../command.js';
import { recipeOf, RUN_FLAGS, runCompression } from '../compress-run.js';

const PRUNE_METHODS = ['sparsegpt', 'magnitude', 'wanda', 'alps'];

/** `--act-order` may stand alone (static) or take static|group. */
function normalizeActOrder(args: string[]): string[] {
  const out: string[] = [];
  args.forEach((arg, i) => {
    out.push(arg);
    if (arg === '--act-order' && !['static', 'group'].includes(args[i + 1] ?? '')) out.push('static');
  });
  return out;
}

async function run(rawArgs: string[]): Promise<void> {
  const { values } = parseFlags('quantize', () =>
    parseArgs({
      args: normalizeActOrder(rawArgs),
      strict: true,
      options: {
        ...RUN_FLAGS,
        method: { type: 'string' },
        bits: { type: 'string' },
        'group-size': { type: 'string' },
        asym: { type: 'boolean', default: false },
        'act-order': { type: 'string' },
        sparsity: { type: 'string' },
        'prune-method': { type: 'string' },
        ignore: { type: 'string', multiple: true },
        format: { type: 'string' },
        saliency: { type: 'string' },
        selection: { type: 'string' },
        'block-steps': { type: 'string' },
        'block-lr': { type: 'string' },
        'e2e-steps': { type: 'string' },
        'e2e-lr': { type: 'string' },
      },
    }),
  );
  const isGqsa = values.method === 'gqsa';
  const format = (values.format ?? (isGqsa ? 'bsr-int4' : 'compressed-tensors')) as RunFormat;
  const formats: readonly string[] = [...OUTPUT_FORMATS, 'bsr-int4'];
  if (!formats.includes(format)) throw new InvalidArgumentError(`quantize: --format must be one of ${formats.join(', ')}, got '${values.format}'`);
  const gqsaFlags = (['saliency', 'selection', 'block-steps', 'block-lr', 'e2e-steps', 'e2e-lr'] as const).filter((f) => values[f] !== undefined);
  if (!isGqsa && gqsaFlags.length > 0) throw new InvalidArgumentError(`quantize: --${gqsaFlags[0]} is a gqsa option (--method gqsa)`);
  const flagsGiven = [values.method, values.bits, values['group-size'], values['act-order'], values.sparsity, values['prune-method'], values.ignore].some((v) => v !== undefined) || values.asym;
  const fromFlags = flagsGiven
    ? () => {
        if (!values.method || !['rtn', 'gptq', 'gqsa'].includes(values.method)) throw new InvalidArgumentError(`quantize: --method must be rtn, gptq or gqsa, got ${values.method === undefined ? 'nothing' : `'${values.method}'`}`);
        if (values.bits === undefined) throw new InvalidArgumentError('quantize: --bits is required (2, 3, 4 or 8)');
        const bits = Number(values.bits);
        const quantize = {
          bits: Number.isInteger(bits) ? bits : values.bits,
          groupSize: positiveInteger('quantize', 'group-size', values['group-size'], 0) ?? 128,
          symmetric: !values.asym,
          ...(values['act-order'] ? { actOrder: values['act-order'] } : {}),
        };
        const ignore = values.ignore ? { ignore: values.ignore } : {};
        if (isGqsa) {
          if (values.sparsity === undefined) throw new InvalidArgumentError('quantize: gqsa needs --sparsity, the fraction of groups pruned (e.g. 0.5)');
          if (values['prune-method']) throw new InvalidArgumentError('quantize: gqsa chooses its own groups; drop --prune-method');
          const number = (flag: (typeof gqsaFlags)[number]) => (values[flag] === undefined ? undefined : Number(values[flag]));
          const options = Object.fromEntries(
            Object.entries({ saliency: values.saliency, selection: values.selection, blockSteps: number('block-steps'), blockLr: number('block-lr'), e2eSteps: number('e2e-steps'), e2eLr: number('e2e-lr') }).filter(([, v]) => v !== undefined),
          );
          return { method: 'gqsa', sparsity: values.sparsity, quantize: { ...quantize, groupSize: positiveInteger('quantize', 'group-size', values['group-size'], 1) ?? 16 }, options, ...ignore };
        }
        if (values.sparsity === undefined) {
          if (values['prune-method']) throw new InvalidArgumentError('quantize: --prune-method needs --sparsity');
          return { method: values.method, quantize, ...ignore };
        }
        const pruneMethod = values['prune-method'] ?? 'sparsegpt';
        if (!PRUNE_METHODS.includes(pruneMethod)) throw new InvalidArgumentError(`quantize: --prune-method must be one of ${PRUNE_METHODS.join(', ')}, got '${pruneMethod}'`);
        // GPTQ prunes and quantizes in SparseGPT's one sweep; RTN rounds what the pruning method left.
        if (values.method === 'gptq') {
          if (pruneMethod !== 'sparsegpt') throw new InvalidArgumentError(`quantize: GPTQ prunes jointly only with sparsegpt (one sweep); use --method rtn to round after ${pruneMethod}`);
          return { method: 'sparsegpt', sparsity: values.sparsity, quantize, ...ignore };
        }
        return { method: pruneMethod, sparsity: values.sparsity, quantize, ...(pruneMethod === 'sparsegpt' ? { options: { joint: false } } : {}), ...ignore };
      }
    : undefined;
  const recipe = await recipeOf('quantize', values, fromFlags);
  await runCompression('quantize', values, recipe, format);
}

export const quantizeCommand: Command = {
  name: 'quantize',
  usage: `quantize --model DIR (--method rtn|gptq --bits B [--group-size G] [--asym] [--act-order [static|group]]
        [--sparsity S [--prune-method sparsegpt|magnitude|wanda|alps]] [--ignore PATTERN]... |
        --method gqsa --bits 4 [--group-size G] --sparsity S [--saliency hessian|wanda|magnitude]
        [--selection row|matrix] [--block-steps N] [--block-lr LR] [--e2e-steps N] [--e2e-lr LR] | --recipe FILE)
        [--calib FILE --nsamples N --seq-len L --seed S] --out DIR [--format compressed-tensors|dense|bsr-int4]
        [--eval FILE] [--eval-seq-len L] [--eval-max-tokens N] [--overwrite] [--resume]
        [--skip-error | --measure-error] [--json]
                   one-shot weight quantization, layer by layer: rtn (round to nearest, no
                   calibration) or gptq (error feedback through the inverse Hessian; needs --calib);
                   B-bit signed codes (2, 3, 4, 8), symmetric unless --asym, one scale per group of
                   G inputs (default 128; 0 = per output channel); --act-order sweeps columns by
                   descending Hessian diagonal (static: groups stay consecutive inputs; group: groups
                   in that order, stored as weight_g_idx); with --sparsity, gptq prunes and quantizes
                   in SparseGPT's sweep, rtn rounds what --prune-method left; writes compressed-tensors
                   pack-quantized for vLLM (W4/W8, groups 32/64/128 or per channel) or --format dense
                   (decoded weights in the original dtype, for any grid).
                   gqsa (GQSA): prunes the fraction S of groups of G inputs (default 16) by Hessian
                   saliency, quantizes the survivors per group, refines each block against the dense
                   one (--block-steps) and the scales on the LM loss (--e2e-steps); writes bsr-int4
                   (sparq's packed format, blocks = groups of 8/16/32) unless --format says otherwise`,
  run,
};
