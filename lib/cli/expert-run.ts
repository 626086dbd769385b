// `sparq prune` with a method that prunes routed experts as one model-level decision (compress/index.ts
// EXPERT_METHODS: heapr, expert-drop, activation-atoms): its extra flags, the run, and its report.
import { EXPERT_METHODS } from '../compress/index.js';
import { AbortError, InvalidArgumentError } from '../errors.js';
import { readTextFile } from '../io/text.js';
import { loadTokenizer } from '../io/tokenizer.js';
import { pruneExperts, type ExpertPruneReport } from '../pipeline/expert-prune.js';
import { positiveInteger, positiveNumber, withInterrupt } from './command.js';
import { progressBar } from './progress.js';

/** The flags only expert pruning takes. */
export const EXPERT_FLAGS = {
  'per-layer': { type: 'boolean', default: false },
  global: { type: 'boolean', default: false },
  'allow-expert-removal': { type: 'boolean', default: false },
  'expert-format': { type: 'string' },
  'min-expert-tokens': { type: 'string' },
  'starved-share': { type: 'string' },
} as const;

/** Whether `method` names an expert-pruning method (the registry decides, not this file). */
export function isExpertMethod(method: string | undefined): boolean {
  return method !== undefined && Object.hasOwn(EXPERT_METHODS, method);
}

/** Refuses the expert flags with a layer-wise method. */
export function rejectExpertFlags(values: Record<string, unknown>, method: string | undefined): void {
  const given = Object.keys(EXPERT_FLAGS).filter((f) => values[f] === true || typeof values[f] === 'string');
  if (given.length > 0) {
    throw new InvalidArgumentError(`prune: --${given[0]} applies to the expert-pruning methods (${Object.keys(EXPERT_METHODS).join(', ')}), not ${method ?? 'a recipe'}`);
  }
}

type Values = Record<string, string | boolean | undefined>;

/** The sparsity as a fraction: 0.25 or 25%. */
function fraction(text: string | undefined): number {
  if (text === undefined) throw new InvalidArgumentError('prune: --sparsity S is required (the fraction of routed-expert parameters to remove, e.g. 0.25 or 25%)');
  const percent = text.trim().endsWith('%');
  const n = Number(percent ? text.trim().slice(0, -1) : text);
  if (!Number.isFinite(n) || text.trim() === '' || (percent ? n / 100 : n) < 0 || (percent ? n / 100 : n) >= 1) {
    throw new InvalidArgumentError(`prune: --sparsity must be a fraction in [0, 1) of the routed-expert parameters (e.g. 0.25 or 25%), got '${text}'`);
  }
  return percent ? n / 100 : n;
}

export async function runExpertPruning(values: Values): Promise<void> {
  const str = (k: string) => values[k] as string | undefined;
  if (!str('model')) throw new InvalidArgumentError('prune: --model DIR is required');
  if (!str('out')) throw new InvalidArgumentError('prune: --out DIR is required');
  if (!str('calib')) throw new InvalidArgumentError(`prune: ${str('method')} needs calibration data: pass --calib FILE (.txt or .jsonl)`);
  for (const flag of ['recipe', 'sequential', 'resume', 'skip-error', 'measure-error']) {
    if (values[flag] === true || typeof values[flag] === 'string') throw new InvalidArgumentError(`prune: --${flag} does not apply to ${str('method')} (it prunes routed experts in one model-level pass)`);
  }
  const format = str('expert-format') ?? 'padded';
  if (format !== 'padded' && format !== 'shrunk') throw new InvalidArgumentError(`prune: --expert-format must be padded or shrunk, got '${format}'`);
  const evalTokens = str('eval') ? (await loadTokenizer(str('model')!)).encode(await readTextFile(str('eval')!)) : undefined;
  const bar = progressBar('prune');
  let report: ExpertPruneReport;
  const warnings: string[] = [];
  try {
    report = await withInterrupt((signal) =>
      pruneExperts({
        model: str('model')!,
        out: str('out')!,
        method: str('method')!,
        sparsity: fraction(str('sparsity')),
        perLayer: values['per-layer'] === true,
        global: values.global === true,
        allowExpertRemoval: values['allow-expert-removal'] === true,
        format,
        calibrationFile: str('calib'),
        nsamples: positiveInteger('prune', 'nsamples', str('nsamples')),
        seqLen: positiveInteger('prune', 'seq-len', str('seq-len'), 2),
        seed: positiveInteger('prune', 'seed', str('seed'), 0),
        minExpertTokens: positiveInteger('prune', 'min-expert-tokens', str('min-expert-tokens'), 0),
        starvedShare: positiveNumber('prune', 'starved-share', str('starved-share')),
        overwrite: values.overwrite === true,
        evalTokens,
        evalSeqLen: positiveInteger('prune', 'eval-seq-len', str('eval-seq-len'), 2),
        evalMaxTokens: positiveInteger('prune', 'eval-max-tokens', str('eval-max-tokens')),
        onProgress: ({ step, steps, stage }) => bar.update(step, steps, stage),
        onWarning: (message) => warnings.push(message),
        signal,
      }).catch((error: unknown) => {
        if (signal.aborted) throw new AbortError(`interrupted; nothing was written to ${str('out')}`);
        throw error;
      }),
    );
  } finally {
    bar.done();
  }
  for (const w of warnings) process.stderr.write(`warning: ${w}\n`);
  if (values.json) {
    process.stdout.write(
      `${JSON.stringify({
        out: report.out,
        method: report.method,
        ranking: report.ranking,
        format: report.format,
        sparsity: report.sparsity,
        routed_parameters: report.parameters.routed,
        removed_parameters: report.parameters.removed,
        routed_parameters_stored: report.parameters.routedStored,
        expert_flops_per_token: report.flopsPerToken,
        removed_experts: report.experts.filter((e) => e.removed).map((e) => ({ layer: e.layer, expert: e.expert })),
        starved_experts: report.starvedExperts,
        warnings: report.warnings,
        seconds: report.seconds.total,
        ...(report.perplexityBefore !== undefined ? { perplexity_before: report.perplexityBefore, perplexity_after: report.perplexityAfter } : {}),
      })}\n`,
    );
    return;
  }
  printReport(report);
}

function printReport(r: ExpertPruneReport): void {
  const out = process.stdout;
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  out.write(`${'layer'.padStart(5)} ${'expert'.padStart(6)} ${'tokens'.padStart(7)} ${'kept'.padStart(9)}\n`);
  for (const e of r.experts) out.write(`${String(e.layer).padStart(5)} ${String(e.expert).padStart(6)} ${String(e.tokens).padStart(7)} ${`${e.kept}/${e.width}`.padStart(9)}${e.removed ? '  removed (router masked)' : e.keptLastNeuron ? '  one neuron kept' : ''}\n`);
  if (r.starvedExperts.length > 0) out.write(`experts with few calibration tokens: ${r.starvedExperts.map((e) => `${e.layer}.${e.expert} (${e.tokens})`).join(', ')}\n`);
  const p = r.parameters;
  out.write(
    `\n${r.method} (${r.ranking}) removed ${pct(r.sparsity)} of the routed-expert parameters (${p.removed.toLocaleString('en-US')} of ${p.routed.toLocaleString('en-US')}; ` +
      `model ${p.model.toLocaleString('en-US')} → ${(p.model - p.routed + p.routedRun).toLocaleString('en-US')} as sparq runs it, ${(p.model - p.routed + p.routedStored).toLocaleString('en-US')} stored ${r.format})\n` +
      `routed-expert FLOPs per token ${r.flopsPerToken.before.toExponential(3)} → ${r.flopsPerToken.run.toExponential(3)} (${pct(1 - r.flopsPerToken.run / r.flopsPerToken.before)} fewer) in ${r.seconds.total.toFixed(1)} s\n`,
  );
  if (r.perplexityBefore !== undefined) out.write(`perplexity ${r.perplexityBefore.toFixed(4)} → ${r.perplexityAfter!.toFixed(4)}\n`);
  out.write(`wrote ${r.out} (${r.format}; report.json inside)\n`);
}
