// The layer-wise compression driver. It streams the model block by block and knows nothing about any
// method's math: for each block it
//   1. loads the block's weights (f32) from disk,
//   2. runs the calibration hidden states through it, feeding each linear group's inputs into a
//      Hessian accumulator (q/k/v share one, gate/up share one, each expert has its own),
//   3. hands every assigned linear, with its statistics, to its method, rounds the result to the stored
//      dtype and writes it into the staged output,
//   4. runs the block again with the compressed weights: its outputs are the next block's inputs,
// then frees the block. `sequential: 'block'` (the reference implementations' default) takes all
// statistics from the dense block; `'linear'` re-runs the block after each stage (attention in,
// attention out, MLP in, MLP out), so later linears see the outputs of already-compressed ones.
// Peak memory ≈ one block + the calibration hidden states + the block's Hessians.
import type { LinearStatistics } from '../compress/method.js';
import { getMethod } from '../compress/index.js';
import { checkPatternFits, countZeros, formatPattern } from '../compress/pattern.js';
import { AbortError, InvalidArgumentError, NonFiniteError } from '../errors.js';
import { evaluatePerplexity, type PerplexityResult } from '../eval/perplexity.js';
import { fingerprint, PrunedFolder } from '../export/pruned-folder.js';
import { DecoderModel, inputGroups, type DecoderBlock, type InputGroup } from '../models/decoder.js';
import { dotAsync, gemmAsync, HessianAccumulator, axpy } from '../ops.js';
import { Tensor } from '../tensor.js';
import { loadTokenizer } from '../tokenizer.js';
import { sparqVersion } from '../version.js';
import { CALIBRATION_DEFAULTS, loadCalibration, sampleWindows } from './calibration.js';
import { assignLinears, type Assignment, type Recipe } from './recipe.js';

export interface PruneOptions {
  /** Input model folder. */
  model: string;
  /** Output folder (refused if it exists, unless overwrite). */
  out: string;
  recipe: Recipe;
  /** Calibration text file (.txt or .jsonl), tokenized with the model's tokenizer… */
  calibrationFile?: string;
  /** …or token ids to cut windows from (the API's alternative to a file)… */
  calibrationTokens?: Int32Array;
  /** …or the windows themselves (all of one length; nsamples and seed are then unused). */
  calibrationWindows?: Int32Array[];
  /** Override recipe.calibration. */
  nsamples?: number;
  seqLen?: number;
  seed?: number;
  overwrite?: boolean;
  /** Continue an interrupted run into the same --out from its last finished block. */
  resume?: boolean;
  /** Token ids to measure perplexity on before and after (the eval protocol of `sparq eval`). */
  evalTokens?: Int32Array;
  evalSeqLen?: number;
  evalMaxTokens?: number;
  /**
   * Measure each linear's relative reconstruction error (default true). It costs two [out, in]×[in, in]
   * GEMMs per linear, about as much as SparseGPT itself; without it the report's relativeError is null.
   */
  measureError?: boolean;
  onProgress?: (progress: PruneProgress) => void;
  signal?: AbortSignal;
}

export interface PruneProgress {
  step: number;
  steps: number;
  block: number;
  blocks: number;
  /** What is running: 'calibrating', a linear's name, 'eval before', … */
  stage: string;
}

export interface LinearReportEntry {
  name: string;
  method: string;
  pattern: string;
  shape: number[];
  /** Achieved fraction of zeros. */
  sparsity: number;
  /** ‖WX − ŴX‖² / ‖WX‖² on the calibration inputs the method saw (null without calibration or with measureError off). */
  relativeError: number | null;
  seconds: number;
  details?: Record<string, number | string | boolean>;
}

export interface PruneReport {
  model: string;
  out: string;
  recipe: Recipe;
  calibration: { windows: number; seqLen: number; seed: number; tokens: number } | null;
  linears: LinearReportEntry[];
  totals: {
    /** Fraction of zeros over the compressed linears. */
    sparsity: number;
    prunedParameters: number;
    compressedParameters: number;
    linearParameters: number;
    compressedLinears: number;
    seconds: number;
    peakRssBytes: number;
    resumedAtBlock: number | null;
    /** Wall seconds by stage: block forwards, capture passes (forward + Hessians), methods, error measurement, disk. */
    stageSeconds: { propagate: number; capture: number; compress: number; error: number; io: number; eval: number };
  };
  perplexityBefore?: number;
  perplexityAfter?: number;
  eval?: { before: PerplexityResult; after: PerplexityResult };
}

/** Stops a capture pass once the last input of its stage has been seen. */
class StageCaptured {}

const breathe = () => new Promise<void>((resolve) => setImmediate(resolve));

function peakRssBytes(): number {
  return process.resourceUsage().maxRSS * 1024;
}

export async function prune(options: PruneOptions): Promise<PruneReport> {
  const started = performance.now();
  const { recipe, signal } = options;
  const check = () => {
    if (signal?.aborted) throw new AbortError();
  };
  const model = await DecoderModel.open(options.model);
  let folder: PrunedFolder<LinearReportEntry> | undefined;
  try {
    const { config, layout } = model;
    const roles = model.linearRoles();
    const linears: { name: string; role: string; block: number }[] = [];
    for (let b = 0; b < config.layers; ++b) {
      for (const [role, relativeName] of Object.entries(roles)) linears.push({ name: `${layout.block(b)}${relativeName}`, role, block: b });
    }
    const assignments = assignLinears(recipe, linears);
    if (assignments.size === 0) throw new InvalidArgumentError('the recipe selects no linear layer to compress');
    for (const [name, a] of assignments) {
      const info = await model.checkpoint.info(`${name}.weight`);
      checkPatternFits(a.pattern, info.shape, name);
    }

    // Calibration windows.
    const needsCalibration = [...assignments.values()].some((a) => a.method.needsCalibration);
    const sources = [options.calibrationFile, options.calibrationTokens, options.calibrationWindows].filter((c) => c !== undefined).length;
    if (sources > 1) throw new InvalidArgumentError('give one of calibrationFile, calibrationTokens or calibrationWindows');
    const hasCalibration = sources === 1;
    if (needsCalibration && !hasCalibration) {
      const names = [...new Set([...assignments.values()].filter((a) => a.method.needsCalibration).map((a) => a.method.name))];
      throw new InvalidArgumentError(`${names.join(' and ')} need${names.length > 1 ? '' : 's'} calibration data: pass --calib FILE (.txt or .jsonl)`);
    }
    const context = Math.min(config.maxPositions, config.slidingWindow ?? Infinity);
    const given = options.calibrationWindows;
    if (given && (given.length === 0 || given.some((w) => w.length !== given[0].length) || given[0].length < 2 || given[0].length > context)) {
      throw new InvalidArgumentError(`calibrationWindows: expected one or more windows of one length between 2 and the model's context (${context})`);
    }
    const seqLen = given ? given[0].length : Math.min(options.seqLen ?? recipe.calibration?.seqLen ?? CALIBRATION_DEFAULTS.seqLen, context);
    const calibrationOptions = {
      nsamples: options.nsamples ?? recipe.calibration?.nsamples ?? CALIBRATION_DEFAULTS.nsamples,
      seqLen,
      seed: options.seed ?? recipe.calibration?.seed ?? CALIBRATION_DEFAULTS.seed,
    };
    let windows: Int32Array[] = [];
    if (given) windows = given;
    else if (options.calibrationTokens) windows = sampleWindows(options.calibrationTokens, calibrationOptions);
    else if (options.calibrationFile) windows = await loadCalibration(options.calibrationFile, await loadTokenizer(options.model), calibrationOptions);
    for (const w of windows) {
      for (const id of w) if (id < 0 || id >= config.vocabSize) throw new InvalidArgumentError(`calibration token ${id} is outside the model's vocabulary of ${config.vocabSize}`);
    }

    folder = await PrunedFolder.begin<LinearReportEntry>(model.checkpoint, options.out, {
      overwrite: options.overwrite,
      resume: options.resume,
      fingerprint: fingerprint([options.model, recipe, calibrationOptions, options.evalTokens?.length ?? 0, config.layers], windows),
    });
    const startBlock = folder.resumed?.blocksDone ?? 0;
    const stageSeconds = { propagate: 0, capture: 0, compress: 0, error: 0, io: 0, eval: 0 };
    const timed = async <T>(stage: keyof typeof stageSeconds, work: () => Promise<T>): Promise<T> => {
      const t = performance.now();
      try {
        return await work();
      } finally {
        stageSeconds[stage] += (performance.now() - t) / 1000;
      }
    };
    const entries: LinearReportEntry[] = [...(folder.resumed?.entries ?? [])];

    const groups = inputGroups(config);
    const stageList = recipe.sequential === 'linear' ? [0, 1, 2, 3].map((s) => groups.filter((g) => g.stage === s)) : [groups];
    const blockLinears = (b: number) => linears.filter((l) => l.block === b && assignments.has(l.name));
    const passesPerBlock = windows.length > 0 ? stageList.length + 1 : 0;
    const evalSteps = options.evalTokens ? 2 : 0;
    let steps = evalSteps;
    for (let b = 0; b < config.layers; ++b) steps += b < startBlock ? 1 : passesPerBlock + blockLinears(b).length;
    let step = 0;
    const progress = (block: number, stage: string) => options.onProgress?.({ step: ++step, steps, block, blocks: config.layers, stage });

    const evaluate = async (dir: string, label: string) => {
      const evalModel = await DecoderModel.open(dir);
      const t = performance.now();
      try {
        const result = await evaluatePerplexity(evalModel, options.evalTokens!, { seqLen: options.evalSeqLen, maxTokens: options.evalMaxTokens, signal });
        progress(config.layers, label);
        return result;
      } finally {
        stageSeconds.eval += (performance.now() - t) / 1000;
        await evalModel.close();
      }
    };
    const before = options.evalTokens
      ? ((folder.resumed?.extra.evalBefore as PerplexityResult | undefined) ?? (await evaluate(options.model, 'eval before')))
      : undefined;
    if (before && folder.resumed) progress(0, 'eval before (from the interrupted run)');

    // Calibration hidden states, in batches of about 2048 rows (a window's rows stay together).
    const perBatch = Math.max(1, Math.floor(2048 / seqLen));
    const batches: { states: Tensor; positions: Tensor }[] = [];
    if (windows.length > 0) {
      const embeddings = await model.loadEmbeddings();
      for (let w = 0; w < windows.length; w += perBatch) {
        const group = windows.slice(w, w + perBatch);
        const ids = new Int32Array(group.length * seqLen);
        group.forEach((window, i) => ids.set(window, i * seqLen));
        batches.push({
          states: model.embed(embeddings, ids, seqLen),
          positions: Tensor.fromTypedArray(Int32Array.from({ length: ids.length }, (_, i) => i % seqLen)),
        });
      }
    }
    const runBlock = async (block: DecoderBlock) => {
      for (const batch of batches) {
        check();
        block.forward(batch.states, batch.positions, model.invFreq, seqLen);
        await model.checkFiniteStates(batch.states, block.index, signal);
        await breathe();
      }
    };

    /** One pass over the calibration batches, accumulating H for each of the stage's groups. */
    async function capture(block: DecoderBlock, wanted: InputGroup[], stage: InputGroup[]): Promise<Map<string, LinearStatistics>> {
      const accumulators = new Map<string, HessianAccumulator>();
      const last = stage[stage.length - 1].name;
      for (const batch of batches) {
        check();
        const states = batch.states.clone();
        try {
          block.forward(states, batch.positions, model.invFreq, seqLen, (group, input) => {
            if (wanted.some((g) => g.name === group)) {
              let acc = accumulators.get(group);
              if (!acc) {
                acc = new HessianAccumulator(input.shape[input.ndim - 1]);
                accumulators.set(group, acc);
              }
              acc.add(input);
            }
            if (group === last) throw new StageCaptured();
          });
        } catch (error) {
          if (!(error instanceof StageCaptured)) throw error;
        }
        await breathe();
      }
      const statistics = new Map<string, LinearStatistics>();
      for (const [group, acc] of accumulators) statistics.set(group, { hessian: acc.hessian, tokens: acc.count });
      return statistics;
    }

    async function compressLinear(block: DecoderBlock, role: string, name: string, assignment: Assignment, stats: LinearStatistics | undefined): Promise<LinearReportEntry> {
      const linearStarted = performance.now();
      const original = block.linears[role].weight;
      if (stats && !Number.isFinite(await dotAsync(stats.hessian, stats.hessian, { signal }))) {
        throw new NonFiniteError(`the calibration inputs of ${name} (block ${block.index}) hold NaN or infinite values although every weight is finite: the activations overflowed float32`);
      }
      // An expert no calibration token was routed to has no statistics: it falls back to magnitude.
      const starved = assignment.method.needsCalibration && (!stats || stats.tokens === 0);
      const method = starved ? getMethod('magnitude') : assignment.method;
      const compressStarted = performance.now();
      const result = await method.compress({ name, weight: original.clone(), pattern: assignment.pattern, stats, options: starved ? {} : assignment.options, signal });
      if (starved) result.details = { ...result.details, fallback: 'magnitude: no calibration tokens reached this linear' };
      // Round to the stored dtype now, so the next block sees exactly the weights that are saved.
      const storage = await folder!.storageDType(`${name}.weight`);
      const weight = storage === 'f32' ? result.weight : result.weight.to(storage).to('f32');
      stageSeconds.compress += (performance.now() - compressStarted) / 1000;
      let relativeError: number | null = null;
      if (options.measureError !== false && stats && stats.tokens > 0) {
        const errorStarted = performance.now();
        const difference = original.clone();
        axpy(-1, weight, difference);
        const numerator = await dotAsync(difference, await gemmAsync(difference, stats.hessian, { signal }), { signal });
        const denominator = await dotAsync(original, await gemmAsync(original, stats.hessian, { signal }), { signal });
        relativeError = denominator > 0 ? numerator / denominator : numerator === 0 ? 0 : Infinity;
        stageSeconds.error += (performance.now() - errorStarted) / 1000;
      }
      block.linears[role].weight = weight;
      return {
        name,
        method: assignment.method.name,
        pattern: formatPattern(assignment.pattern),
        shape: [...weight.shape],
        sparsity: countZeros(weight) / weight.numel,
        relativeError,
        seconds: (performance.now() - linearStarted) / 1000,
        ...(result.details ? { details: result.details } : {}),
      };
    }

    // Blocks an interrupted run finished: replay them from the staged output to rebuild the hidden states.
    if (startBlock > 0) {
      const staged = await DecoderModel.open(folder.staging);
      try {
        for (let b = 0; b < startBlock; ++b) {
          if (batches.length > 0) await runBlock(await staged.loadBlock(b));
          progress(b, 'replaying a finished block');
        }
      } finally {
        await staged.close();
      }
    }

    for (let b = startBlock; b < config.layers; ++b) {
      check();
      const block = await model.loadBlock(b);
      const prefix = layout.block(b);
      const assigned = new Map<string, { name: string; assignment: Assignment }>();
      for (const [role, relativeName] of Object.entries(roles)) {
        const name = `${prefix}${relativeName}`;
        const assignment = assignments.get(name);
        if (assignment) assigned.set(role, { name, assignment });
      }
      for (const stage of stageList) {
        const stageGroups = stage.filter((g) => g.roles.some((r) => assigned.has(r)));
        if (stageGroups.length === 0) continue;
        const statistics = batches.length > 0 ? await timed('capture', () => capture(block, stageGroups, stage)) : new Map<string, LinearStatistics>();
        if (batches.length > 0) progress(b, 'calibrating');
        for (const group of stageGroups) {
          for (const role of group.roles) {
            const entry = assigned.get(role);
            if (!entry) continue;
            check();
            entries.push(await compressLinear(block, role, entry.name, entry.assignment, statistics.get(group.name)));
            progress(b, entry.name);
          }
          statistics.delete(group.name);
        }
      }
      await timed('io', async () => {
        for (const [role, { name }] of assigned) await folder!.write(`${name}.weight`, block.linears[role].weight);
      });
      if (batches.length > 0) {
        await timed('propagate', () => runBlock(block));
        progress(b, 'propagating');
      }
      await timed('io', () => folder!.finishBlock(b + 1, entries, before ? { evalBefore: before } : {}));
    }
    await folder.closeFiles();

    const after = options.evalTokens ? await evaluate(folder.staging, 'eval after') : undefined;
    const compressed = entries.reduce((s, e) => s + e.shape[0] * e.shape[1], 0);
    const pruned = entries.reduce((s, e) => s + Math.round(e.sparsity * e.shape[0] * e.shape[1]), 0);
    let linearParameters = 0;
    for (const l of linears) {
      const shape = (await model.checkpoint.info(`${l.name}.weight`)).shape;
      linearParameters += shape[0] * shape[1];
    }
    const report: PruneReport = {
      model: options.model,
      out: options.out,
      recipe,
      calibration: windows.length > 0 ? { windows: windows.length, seqLen, seed: calibrationOptions.seed, tokens: windows.length * seqLen } : null,
      linears: entries,
      totals: {
        sparsity: compressed > 0 ? pruned / compressed : 0,
        prunedParameters: pruned,
        compressedParameters: compressed,
        linearParameters,
        compressedLinears: entries.length,
        seconds: (performance.now() - started) / 1000,
        peakRssBytes: peakRssBytes(),
        resumedAtBlock: startBlock > 0 ? startBlock : null,
        stageSeconds: Object.fromEntries(Object.entries(stageSeconds).map(([k, v]) => [k, Number(v.toFixed(3))])) as typeof stageSeconds,
      },
      ...(before && after ? { perplexityBefore: before.perplexity, perplexityAfter: after.perplexity, eval: { before, after } } : {}),
    };
    await folder.commit(
      {
        version: sparqVersion(),
        recipe,
        sparsity: report.totals.sparsity,
        calibration: report.calibration,
        ...(after ? { perplexity: { before: before!.perplexity, after: after.perplexity, seqLen: after.seqLen, tokens: after.tokens } } : {}),
      },
      report,
    );
    return report;
  } finally {
    await folder?.close();
    await model.close();
  }
}
