// The driver for methods that prune routed experts as one model-level decision (compress/expert-pruning.ts).
// It knows no method by name: a method declares the statistics it needs and how it ranks, and this file
//   1. finds the MoE layers (dense layers and shared experts are never touched),
//   2. gathers the declared model-level statistics in one pass over the calibration windows
//      (expert-statistics.ts: forward only, or forward + backward when the method needs gradients),
//   3. scores every unit and allocates the removals (global or per layer, one neuron kept per expert
//      unless expert removal is allowed, at least top-k experts per layer),
//   4. writes the model (export/expert-folder.ts: padded or shrunk) and a report with the real parameter
//      and FLOP savings, the experts calibration barely reached, and perplexity before/after if asked.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { getExpertMethod } from '../compress/index.js';
import { planExpertPruning, type ExpertPlan, type ExpertRanking, type ExpertStatistics } from '../compress/expert-pruning.js';
import { InvalidArgumentError, UnsupportedFormatError } from '../errors.js';
import { evaluatePerplexity, type PerplexityResult } from '../eval/perplexity.js';
import { layerWidth, writeExpertPrunedFolder, type ExpertFormat } from '../export/expert-folder.js';
import { loadTokenizer } from '../io/tokenizer.js';
import { DecoderModel } from '../models/decoder.js';
import { checkNumber, checkOneOf } from '../validate.js';
import { sparqVersion } from '../version.js';
import { CALIBRATION_DEFAULTS, loadCalibration, sampleWindows } from './calibration.js';
import { gatherExpertStatistics, moeLayers, type MoeLayer } from './expert-statistics.js';

export interface ExpertPruneOptions {
  model: string;
  out: string;
  /** An expert-pruning method: heapr, expert-drop, activation-atoms. */
  method: string;
  /** Fraction of routed-expert parameters to remove, in [0, 1). */
  sparsity: number;
  /** The method's options (e.g. heapr's { weighting }). */
  methodOptions?: Record<string, unknown>;
  /** Rank within each MoE layer instead of the method's default (HEAPr-L). */
  perLayer?: boolean;
  /** Rank across all MoE layers (overrides a per-layer default). */
  global?: boolean;
  /** Let a ratio empty an expert (it is removed and its router logit masked) instead of keeping one neuron. */
  allowExpertRemoval?: boolean;
  /** 'padded' (default): original shapes, zeros; 'shrunk': kept atoms first, padded to the layer's widest expert. */
  format?: ExpertFormat;
  calibrationFile?: string;
  calibrationTokens?: Int32Array;
  /**
   * Statistics from an earlier gatherExpertStatistics over this model (a sparsity sweep gathers once):
   * used instead of a calibration pass; they must cover every routed expert, with gradients if the method
   * needs them.
   */
  statistics?: ExpertStatistics[];
  calibrationWindows?: Int32Array[];
  nsamples?: number;
  seqLen?: number;
  seed?: number;
  /** Warn when more than `starvedShare` of the experts saw fewer than `minExpertTokens` tokens (defaults 16, 0.1). */
  minExpertTokens?: number;
  starvedShare?: number;
  overwrite?: boolean;
  evalTokens?: Int32Array;
  evalSeqLen?: number;
  evalMaxTokens?: number;
  onProgress?: (progress: { step: number; steps: number; stage: string }) => void;
  onWarning?: (message: string) => void;
  signal?: AbortSignal;
}

export interface ExpertReportEntry {
  layer: number;
  expert: number;
  width: number;
  /** Atoms kept (0: the expert was removed). */
  kept: number;
  tokens: number;
  removed: boolean;
  keptLastNeuron: boolean;
}

export interface ExpertPruneReport {
  model: string;
  out: string;
  method: string;
  ranking: ExpertRanking;
  format: ExpertFormat;
  /** Requested and achieved fraction of routed-expert parameters removed. */
  sparsityRequested: number;
  sparsity: number;
  calibration: { windows: number; seqLen: number; tokens: number };
  parameters: {
    /** Every parameter of the input model. */
    model: number;
    routed: number;
    removed: number;
    /** Routed-expert parameters as stored in the output (padded: unchanged; shrunk: per-layer widest). */
    routedStored: number;
    /** Routed-expert parameters sparq computes with (each expert at its kept width). */
    routedRun: number;
  };
  /**
   * Routed-expert multiply-adds per token (2·3·hidden·width per chosen expert), weighted by the
   * calibration routing; a removed expert's tokens are spread over its layer's other experts in
   * proportion to their traffic. `run`: each expert at its kept width (sparq on a shrunk folder);
   * `stored`: at the stored width.
   */
  flopsPerToken: { before: number; run: number; stored: number };
  experts: ExpertReportEntry[];
  /** Experts that saw fewer than minExpertTokens calibration tokens (0: unreached), with their counts. */
  starvedExperts: { layer: number; expert: number; tokens: number }[];
  warnings: string[];
  seconds: { statistics: number; write: number; eval: number; total: number };
  perplexityBefore?: number;
  perplexityAfter?: number;
  eval?: { before: PerplexityResult; after: PerplexityResult };
}

async function windowsFor(options: ExpertPruneOptions, model: DecoderModel): Promise<{ windows: Int32Array[]; seqLen: number }> {
  const sources = [options.calibrationFile, options.calibrationTokens, options.calibrationWindows].filter((c) => c !== undefined).length;
  if (sources !== 1) throw new InvalidArgumentError(`${options.method} needs calibration data: give exactly one of --calib FILE, calibrationTokens or calibrationWindows`);
  const context = Math.min(model.config.maxPositions, model.config.slidingWindow ?? Infinity);
  // A window of n tokens predicts n − 1, which the context must hold.
  const seqLen = Math.min(options.seqLen ?? CALIBRATION_DEFAULTS.seqLen, context + 1);
  const settings = { nsamples: options.nsamples ?? CALIBRATION_DEFAULTS.nsamples, seqLen, seed: options.seed ?? CALIBRATION_DEFAULTS.seed };
  let windows: Int32Array[];
  if (options.calibrationWindows) windows = options.calibrationWindows;
  else if (options.calibrationTokens) windows = sampleWindows(options.calibrationTokens, settings);
  else windows = await loadCalibration(options.calibrationFile!, await loadTokenizer(options.model), settings);
  if (windows.length === 0 || windows.some((w) => w.length !== windows[0].length) || windows[0].length < 2 || windows[0].length > context + 1) {
    throw new InvalidArgumentError(`calibration windows: expected one or more windows of one length between 2 and the model's context + 1 (${context + 1})`);
  }
  for (const w of windows) for (const id of w) if (id < 0 || id >= model.config.vocabSize) throw new InvalidArgumentError(`calibration token ${id} is outside the model's vocabulary of ${model.config.vocabSize}`);
  return { windows, seqLen: windows[0].length };
}

/** Routed-expert FLOPs per token at the calibration routing (see ExpertPruneReport.flopsPerToken). */
function flopsPerToken(plan: ExpertPlan, hidden: number, topK: number, format: ExpertFormat): ExpertPruneReport['flopsPerToken'] {
  const widths = { before: 0, run: 0, stored: 0 };
  for (const l of plan.layers) {
    // Shares of the layer's routed token slots (each token fills top-k of them).
    const total = l.experts.reduce((s, e) => s + e.tokens, 0);
    const kept = l.experts.filter((e) => !e.removed).reduce((s, e) => s + e.tokens, 0);
    if (total === 0 || kept === 0) continue;
    const width = layerWidth(l, format);
    for (const e of l.experts) {
      widths.before += topK * (e.tokens / total) * e.width;
      if (e.removed) continue;
      widths.run += topK * (e.tokens / kept) * e.kept.length;
      widths.stored += topK * (e.tokens / kept) * width;
    }
  }
  const perAtom = 2 * 3 * hidden;
  return { before: widths.before * perAtom, run: widths.run * perAtom, stored: widths.stored * perAtom };
}

/** Refuses given statistics that do not match the model's experts or lack what the method needs. */
function checkStatistics(statistics: readonly ExpertStatistics[], layers: readonly MoeLayer[], gradients: boolean, method: string): void {
  const expected = layers.flatMap((l) => l.widths.map((width, expert) => `${l.layer}.${expert}:${width}`));
  const given = statistics.map((s) => `${s.layer}.${s.expert}:${s.width}`);
  if (expected.join(',') !== given.join(',')) throw new InvalidArgumentError(`statistics: expected one entry per routed expert of the model (layer.expert:width ${expected.slice(0, 3).join(', ')}, …), in order`);
  if (gradients && statistics.some((s) => !s.gradientSquares)) throw new InvalidArgumentError(`statistics: ${method} needs gradient statistics (gatherExpertStatistics with gradients: true)`);
}

export async function pruneExperts(options: ExpertPruneOptions): Promise<ExpertPruneReport> {
  const started = performance.now();
  const method = getExpertMethod(options.method);
  const methodOptions = method.parseOptions(options.methodOptions ?? {}, `${options.method} options`);
  const sparsity = checkNumber('sparsity', options.sparsity, { min: 0 });
  if (!(sparsity < 1)) throw new InvalidArgumentError(`sparsity: expected a fraction below 1 of the routed-expert parameters, received ${sparsity}`);
  const format = checkOneOf('format', options.format ?? 'padded', ['padded', 'shrunk'] as const);
  if (options.perLayer && options.global) throw new InvalidArgumentError('give --per-layer or --global, not both');
  const ranking: ExpertRanking = options.perLayer ? 'per-layer' : options.global ? 'global' : method.ranking;
  const minTokens = options.minExpertTokens ?? 16;
  const starvedShare = options.starvedShare ?? 0.1;
  const progress = options.onProgress ?? (() => undefined);
  const warnings: string[] = [];
  const warn = (message: string) => {
    warnings.push(message);
    options.onWarning?.(message);
  };

  const model = await DecoderModel.open(options.model);
  try {
    if (model.quantized) throw new UnsupportedFormatError(`${options.model} is quantized; prune the experts of the original model`);
    if (model.config.expertWidths) throw new UnsupportedFormatError(`${options.model} is already expert-pruned (config.json has sparq_experts); prune the original model`);
    const layers = await moeLayers(model);
    if (layers.length === 0) throw new InvalidArgumentError(`${options.model}: ${model.config.architecture} has no routed experts; ${method.name} prunes mixture-of-experts models (use magnitude, wanda, sparsegpt or alps)`);
    const { windows, seqLen } = options.statistics ? { windows: [] as Int32Array[], seqLen: 0 } : await windowsFor(options, model);
    const evaluate = async (dir: string, stage: string) => {
      if (!options.evalTokens) return undefined;
      progress({ step: 0, steps: 1, stage });
      const evalModel = dir === options.model ? model : await DecoderModel.open(dir);
      try {
        return await evaluatePerplexity(evalModel, options.evalTokens, { seqLen: options.evalSeqLen, maxTokens: options.evalMaxTokens, signal: options.signal });
      } finally {
        if (evalModel !== model) await evalModel.close();
      }
    };
    let t = performance.now();
    const before = await evaluate(options.model, 'eval before');
    let evalSeconds = (performance.now() - t) / 1000;

    t = performance.now();
    const statistics: ExpertStatistics[] =
      options.statistics ??
      (await gatherExpertStatistics(model, layers, windows, {
        gradients: method.needs.gradients,
        onProgress: (done, total) => progress({ step: done, steps: total, stage: method.needs.gradients ? 'scoring (forward + backward)' : 'scoring (forward)' }),
        signal: options.signal,
      }));
    checkStatistics(statistics, layers, method.needs.gradients, method.name);
    const statisticsSeconds = (performance.now() - t) / 1000;
    const starved = statistics.filter((s) => s.tokens < minTokens).map((s) => ({ layer: s.layer, expert: s.expert, tokens: s.tokens }));
    if (starved.length > starvedShare * statistics.length) {
      warn(
        `${starved.length} of ${statistics.length} routed experts (more than ${Math.round(100 * starvedShare)}%) saw fewer than ${minTokens} calibration tokens; ` +
          'their scores are unreliable (unreached ones are pruned first): give more calibration windows (--nsamples) or longer ones',
      );
    }

    const hidden = model.config.hiddenSize;
    const plan = planExpertPruning(method, methodOptions, statistics, {
      sparsity,
      ranking,
      atomParameters: 3 * hidden,
      topK: model.config.moe!.topK,
      allowExpertRemoval: options.allowExpertRemoval ?? false,
    });
    const lastNeuron = plan.layers.flatMap((l) => l.experts.filter((e) => e.keptLastNeuron).map((e) => `${l.layer}.${e.expert}`));
    if (lastNeuron.length > 0) warn(`the ratio would have emptied ${lastNeuron.length} expert(s) (layer.expert: ${lastNeuron.join(', ')}); each keeps its best neuron (--allow-expert-removal removes them instead)`);
    const removedExperts = plan.layers.flatMap((l) => l.experts.filter((e) => e.removed).map((e) => `${l.layer}.${e.expert}`));
    if (removedExperts.length > 0 && method.granularity === 'atom') warn(`removed ${removedExperts.length} expert(s) (layer.expert: ${removedExperts.join(', ')}); their router logits are masked`);
    const achieved = plan.routedParameters > 0 ? plan.removedParameters / plan.routedParameters : 0;
    if (Math.abs(achieved - sparsity) > 0.01) warn(`removed ${(100 * achieved).toFixed(1)}% of the routed-expert parameters, not ${(100 * sparsity).toFixed(1)}% (whole-expert units, one neuron kept per expert, or top-k experts kept per layer)`);

    t = performance.now();
    progress({ step: 0, steps: 1, stage: 'writing' });
    await writeExpertPrunedFolder(model, plan, {
      out: options.out,
      format,
      overwrite: options.overwrite,
      extra: { version: sparqVersion(), expert_pruning: { method: method.name, options: methodOptions, ranking, sparsity, achieved, format, calibration: { windows: windows.length, seq_len: seqLen } } },
    });
    const writeSeconds = (performance.now() - t) / 1000;

    t = performance.now();
    const after = await evaluate(options.out, 'eval after');
    evalSeconds += (performance.now() - t) / 1000;

    let modelParameters = 0;
    for (const name of model.checkpoint.names()) modelParameters += (await model.checkpoint.info(name)).shape.reduce((a, b) => a * b, 1);
    const perAtom = 3 * hidden;
    const report: ExpertPruneReport = {
      model: options.model,
      out: options.out,
      method: method.name,
      ranking,
      format,
      sparsityRequested: sparsity,
      sparsity: achieved,
      calibration: { windows: windows.length, seqLen, tokens: windows.length * (seqLen - 1) },
      parameters: {
        model: modelParameters,
        routed: plan.routedParameters,
        removed: plan.removedParameters,
        routedStored: plan.layers.reduce((s, l) => s + l.experts.length * layerWidth(l, format) * perAtom, 0),
        routedRun: plan.layers.reduce((s, l) => s + l.experts.reduce((k, e) => k + (e.removed ? 0 : e.kept.length), 0) * perAtom, 0),
      },
      flopsPerToken: flopsPerToken(plan, hidden, model.config.moe!.topK, format),
      experts: plan.layers.flatMap((l) => l.experts.map((e) => ({ layer: l.layer, expert: e.expert, width: e.width, kept: e.kept.length, tokens: e.tokens, removed: e.removed, keptLastNeuron: e.keptLastNeuron }))),
      starvedExperts: starved,
      warnings,
      seconds: { statistics: statisticsSeconds, write: writeSeconds, eval: evalSeconds, total: (performance.now() - started) / 1000 },
      ...(before && after ? { perplexityBefore: before.perplexity, perplexityAfter: after.perplexity, eval: { before, after } } : {}),
    };
    await writeFile(join(options.out, 'report.json'), `${JSON.stringify(report, null, 2)}\n`);
    return report;
  } finally {
    await model.close();
  }
}
