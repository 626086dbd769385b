import { parseArgs } from 'node:util';
import { InvalidArgumentError, UsageError } from '../../errors.js';
import { checkOutlierFraction } from '../../compress/gwq.js';
import { OUTPUT_FORMATS } from '../../export/writer.js';
import type { RunFormat } from '../../pipeline/tune-scales.js';
import { parseFlags, positiveInteger, type Command } from '../command.js';
import { recipeOf, RUN_FLAGS, runCompression } from '../compress-run.js';

const PRUNE_METHODS = ['sparsegpt', 'magnitude', 'wanda', 'alps'];
const METHODS = ['rtn', 'gptq', 'gwq', 'hwpq', 'gqsa'];

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
        outliers: { type: 'string' },
        base: { type: 'string' },
        select: { type: 'string' },
        saliency: { type: 'string' },
        selection: { type: 'string' },
        update: { type: 'string' },
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
  const gqsaFlags = (['saliency', 'selection', 'update', 'block-steps', 'block-lr', 'e2e-steps', 'e2e-lr'] as const).filter((f) => values[f] !== undefined);
  if (!isGqsa && gqsaFlags.length > 0) throw new InvalidArgumentError(`quantize: --${gqsaFlags[0]} is a gqsa option (--method gqsa)`);
  const flagsGiven = [values.method, values.bits, values['group-size'], values['act-order'], values.sparsity, values['prune-method'], values.ignore, values.outliers, values.base, values.select].some((v) => v !== undefined) || values.asym;
  const fromFlags = flagsGiven
    ? () => {
        if (!values.method || !METHODS.includes(values.method)) throw new InvalidArgumentError(`quantize: --method must be one of ${METHODS.join(', ')}, got ${values.method === undefined ? 'nothing' : `'${values.method}'`}`);
        if (values.bits === undefined) throw new UsageError(`quantize: --bits is required (2, 3, 4 or 8${values.method === 'hwpq' ? ', or fp8' : ''})`);
        const fp8 = values.bits === 'fp8';
        if (fp8 && values.method !== 'hwpq') throw new InvalidArgumentError(`quantize: --bits fp8 is HWPQ's FP8 E4M3 (--method hwpq); ${values.method} quantizes to integer grids`);
        if (fp8 && values['group-size'] !== undefined && values['group-size'] !== '0') throw new InvalidArgumentError('quantize: --bits fp8 has one scale per output channel; drop --group-size');
        const bits = Number(values.bits);
        const quantize = {
          bits: fp8 ? 8 : Number.isInteger(bits) ? bits : values.bits,
          groupSize: fp8 ? 0 : (positiveInteger('quantize', 'group-size', values['group-size'], 0) ?? 128),
          symmetric: !values.asym,
          ...(values['act-order'] ? { actOrder: values['act-order'] } : {}),
        };
        const ignore = values.ignore ? { ignore: values.ignore } : {};
        if (isGqsa) {
          if (values.sparsity === undefined) throw new InvalidArgumentError('quantize: gqsa needs --sparsity, the fraction of groups pruned (e.g. 0.5)');
          if (values['prune-method']) throw new InvalidArgumentError('quantize: gqsa chooses its own groups; drop --prune-method');
          const number = (flag: (typeof gqsaFlags)[number]) => (values[flag] === undefined ? undefined : Number(values[flag]));
          const options = Object.fromEntries(
            Object.entries({ saliency: values.saliency, selection: values.selection, update: values.update, blockSteps: number('block-steps'), blockLr: number('block-lr'), e2eSteps: number('e2e-steps'), e2eLr: number('e2e-lr') }).filter(([, v]) => v !== undefined),
          );
          return { method: 'gqsa', sparsity: values.sparsity, quantize: { ...quantize, groupSize: positiveInteger('quantize', 'group-size', values['group-size'], 1) ?? 16 }, options, ...ignore };
        }
        const gwqFlags = [['--outliers', values.outliers], ['--base', values.base], ['--select', values.select]].filter(([, v]) => v !== undefined).map(([flag]) => flag);
        if (values.method !== 'gwq' && gwqFlags.length > 0) throw new InvalidArgumentError(`quantize: ${gwqFlags.join(', ')} ${gwqFlags.length > 1 ? 'are' : 'is'} GWQ's (--method gwq)`);
        if (values.method === 'gwq') {
          if (values.sparsity !== undefined) throw new InvalidArgumentError('quantize: gwq does not prune; drop --sparsity');
          const options = {
            ...(values.outliers !== undefined ? { outliers: checkOutlierFraction('quantize: --outliers', Number(values.outliers)) } : {}),
            ...(values.base !== undefined ? { base: values.base } : {}),
            ...(values.select !== undefined ? { select: values.select } : {}),
          };
          return { method: 'gwq', quantize, options, ...ignore };
        }
        if (values.method === 'hwpq') {
          if (values['prune-method']) throw new InvalidArgumentError('quantize: hwpq prunes by its own score; drop --prune-method');
          return { method: 'hwpq', quantize, ...(values.sparsity !== undefined ? { sparsity: values.sparsity } : {}), ...(fp8 ? { options: { format: 'fp8' } } : {}), ...ignore };
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
  usage: `quantize --model DIR (--method rtn|gptq|gwq|hwpq --bits B [--group-size G] [--asym]
        [--act-order [static|group]] [--sparsity S [--prune-method sparsegpt|magnitude|wanda|alps]]
        [--outliers F] [--base rtn|gptq] [--select gradient|fisher|gradient-weight|fisher-error|magnitude] [--ignore PATTERN]... |
        --method gqsa --bits 4 [--group-size G] --sparsity S [--saliency hessian|obs-group|wanda|magnitude]
        [--selection row|matrix] [--update solve|sweep] [--block-steps N] [--block-lr LR] [--e2e-steps N] [--e2e-lr LR] | --recipe FILE)
        [--calib FILE --nsamples N --seq-len L --seed S] --out DIR [--format compressed-tensors|dense|packed|bsr-int4]
        [--eval FILE] [--eval-seq-len L] [--eval-max-tokens N] [--overwrite] [--resume]
        [--skip-error | --measure-error] [--json]
                   one-shot weight quantization, layer by layer: rtn (round to nearest, no
                   calibration) or gptq (error feedback through the inverse Hessian; needs --calib);
                   B-bit signed codes (2, 3, 4, 8), symmetric unless --asym, one scale per group of
                   G inputs (default 128; 0 = per output channel); --act-order sweeps columns by
                   descending Hessian diagonal (static: groups stay consecutive inputs; group: groups
                   in that order, stored as weight_g_idx); with --sparsity, gptq prunes and quantizes
                   in SparseGPT's sweep, rtn rounds what --prune-method left.
                   gwq: one backward pass of the loss over the calibration windows; the fraction F
                   (default 0.01, in [0, 0.5]) of each linear's weights with the largest |dL/dW| stay
                   16-bit beside the codes, the rest are quantized by --base rtn (default) or gptq;
                   --select picks them by another score: fisher (sum of per-window g^2),
                   gradient-weight (|w| * sum of per-window |g|), fisher-error (the Fisher-weighted
                   rounding error a keep saves, with its group's grid refitted; these three take one
                   backward pass per window) or magnitude (|W|, the ablation); bits/weight count the
                   outliers' values and indices. Writes --format packed (int4 + CSR outliers, for sparq
                   generate; W4) or dense; compressed-tensors cannot carry the outliers.
                   hwpq: prune by ½·w²·‖x‖² with an EWMA threshold (no Hessian, no sort) to --sparsity
                   (a fraction or 2:4; optional), then round the survivors to the grid, or to FP8 E4M3
                   per channel with --bits fp8 (compressed-tensors float-quantized: F8_E4M3 weights
                   and [out, 1] scales, vLLM's W8A16 FP8 scheme; or --format dense).
                   Writes compressed-tensors pack-quantized for vLLM (W4/W8, groups 32/64/128 or per
                   channel), --format dense (decoded weights in the original dtype, for any grid) or
                   --format packed (a sparq packed int4 folder, W4)
                   gqsa (GQSA): prunes the fraction S of groups of G inputs (default 16) by Hessian
                   saliency, re-solves each row's kept groups for least squares (--update sweep:
                   the OBS column sweep alone), quantizes the survivors per group, refines each
                   block against the dense one (--block-steps) and the scales on the LM loss
                   (--e2e-steps); writes bsr-int4 (sparq's packed format, blocks = groups of
                   8/16/32) unless --format says otherwise`,
  run,
};
