// The layer-wise compression driver (llm-compressor's sequential pipeline, sparsegpt's llama_sequential).
// It streams the model block by block and knows no method by name and none of their math: for each block
//   1. load the block's weights (f32),
//   2. capture: run the calibration hidden states through it, each group of linears that read the same
//      input gathering exactly the statistics its methods declared (capture.ts),
//   3. compress: hand each linear (or structural group, for group-scope methods) to its method; round the
//      result to the stage's grid where the method does not quantize itself; round to the stored dtype,
//      so the next block sees exactly what is saved; hand it to the output writer,
//   4. propagate: run the block again with the compressed weights — its outputs are the next block's
//      inputs — then write the block's progress and free it.
// `sequential: 'block'` (the reference implementations' default) takes all statistics from the dense
// block; `'linear'` re-captures after each stage (attention in, attention out, MLP in, MLP out), so later
// linears see the outputs of already-compressed ones. Group-scope methods take theirs from the dense block.
// Every forward runs on native async ops, with temporaries from an arena recycled per batch: the event
// loop keeps running. Peak memory ≈ one block + the calibration hidden states + the block's statistics.
import { needsCalibration, type CompressedLinear, type CompressionMethod, type LinearStatistics, type StatisticsNeeds } from '../compress/method.js';
import { checkPatternFits, countZerosAsync, formatPattern } from '../compress/pattern.js';
import { bitsPerWeight, dtypeBits, roundToNearest } from '../compress/quantizer.js';
import { AbortError, InvalidArgumentError, NonFiniteError, SparqError, UnsupportedFormatError } from '../errors.js';
import { evaluatePerplexity, type PerplexityResult } from '../eval/perplexity.js';
import { checkVllmLoadable, CompressedTensorsFolder } from '../export/compressed-tensors-folder.js';
import { DenseFolder } from '../export/dense-folder.js';
import { fingerprint, type ModelFolderWriter, type OutputFormat } from '../export/writer.js';
import type { Checkpoint } from '../io/checkpoint.js';
import { DecoderModel, inputGroups, type DecoderBlock } from '../models/decoder.js';
import { structuralGroups } from '../models/layouts.js';
import { axpyAsync, dotAsync, gemmAsync } from '../tensor/ops.js';
import { Tensor, TensorArena } from '../tensor/tensor.js';
import { loadTokenizer } from '../io/tokenizer.js';
import { sparqVersion } from '../version.js';
import { CALIBRATION_DEFAULTS, loadCalibration, sampleWindows } from './calibration.js';
import { captureStatistics, type CalibrationBatch } from './capture.js';
import { assignLinears, type Assignment, type Recipe } from './recipe.js';
import { summarize, type CompressReport, type LinearReportEntry } from './report.js';

export interface CompressOptions {
  /** Input model folder. */
  model: string;
  /** Output folder (refused if it exists, unless overwrite). */
  out: string;
  recipe: Recipe;
  /** 'dense' (default): the input's files with the compressed weights in place; 'compressed-tensors': pack-quantized for vLLM. */
  format?: OutputFormat;
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
   * Each linear's relative reconstruction error ‖WX − ŴX‖²/‖WX‖², through H (two [out, in]×[in, in] GEMMs):
   * 'auto' (default) where the method had the Hessian anyway; true also gathers H for the others (Wanda,
   * magnitude, RTN with calibration data); false never.
   */
  measureError?: boolean | 'auto';
  onProgress?: (progress: CompressProgress) => void;
  signal?: AbortSignal;
}

export interface CompressProgress {
  step: number;
  steps: number;
  block: number;
  blocks: number;
  /** What is running: 'calibrating', a linear's name, 'eval before', … */
  stage: string;
}

const breathe = () => new Promise<void>((resolve) => setImmediate(resolve));

function peakRssBytes(): number {
  return process.resourceUsage().maxRSS * 1024;
}

interface LinearSlot {
  name: string;
  role: string;
  block: number;
}

/** The calibration windows a run uses (none when no method needs any and no file was given). */
async function calibrationWindows(options: CompressOptions, model: DecoderModel, assignments: Map<string, Assignment>) {
  const { config } = model;
  const wanting = [...new Set([...assignments.values()].filter((a) => needsCalibration(a.method)).map((a) => a.method.name))];
  const sources = [options.calibrationFile, options.calibrationTokens, options.calibrationWindows].filter((c) => c !== undefined).length;
  if (sources > 1) throw new InvalidArgumentError('give one of calibrationFile, calibrationTokens or calibrationWindows');
  if (wanting.length > 0 && sources === 0) {
    throw new InvalidArgumentError(`${wanting.join(' and ')} need${wanting.length > 1 ? '' : 's'} calibration data: pass --calib FILE (.txt or .jsonl)`);
  }
  const context = Math.min(config.maxPositions, config.slidingWindow ?? Infinity);
  const given = options.calibrationWindows;
  if (given && (given.length === 0 || given.some((w) => w.length !== given[0].length) || given[0].length < 2 || given[0].length > context)) {
    throw new InvalidArgumentError(`calibrationWindows: expected one or more windows of one length between 2 and the model's context (${context})`);
  }
  const recipe = options.recipe;
  const seqLen = given ? given[0].length : Math.min(options.seqLen ?? recipe.calibration?.seqLen ?? CALIBRATION_DEFAULTS.seqLen, context);
  const settings = {
    nsamples: options.nsamples ?? recipe.calibration?.nsamples ?? CALIBRATION_DEFAULTS.nsamples,
    seqLen,
    seed: options.seed ?? recipe.calibration?.seed ?? CALIBRATION_DEFAULTS.seed,
  };
  let windows: Int32Array[] = [];
  if (given) windows = given;
  else if (options.calibrationTokens) windows = sampleWindows(options.calibrationTokens, settings);
  else if (options.calibrationFile) windows = await loadCalibration(options.calibrationFile, await loadTokenizer(options.model), settings);
  for (const w of windows) {
    for (const id of w) if (id < 0 || id >= config.vocabSize) throw new InvalidArgumentError(`calibration token ${id} is outside the model's vocabulary of ${config.vocabSize}`);
  }
  return { windows, seqLen, settings };
}

/** Refuses assignments the chosen output format cannot store, before any work is done. */
async function checkFormat(format: OutputFormat, model: DecoderModel, assignments: Map<string, Assignment>): Promise<void> {
  if (format !== 'compressed-tensors') return;
  if (![...assignments.values()].some((a) => a.quantization)) {
    throw new InvalidArgumentError("--format compressed-tensors stores quantized weights, and the recipe quantizes nothing; use --format dense (or add a quantize block)");
  }
  for (const [name, a] of assignments) {
    if (a.quantization) checkVllmLoadable(name, (await model.checkpoint.info(`${name}.weight`)).shape, a.quantization);
  }
  // vLLM runs q/k/v and gate/up (w1/w3 of an expert) as one layer: they must be quantized alike.
  const roles = model.linearRoles();
  for (let b = 0; b < model.config.layers; ++b) {
    const fused = [['q', 'k', 'v'], ['gate', 'up'], ...Array.from({ length: model.config.moe?.experts ?? 0 }, (_, e) => [`expert.${e}.gate`, `expert.${e}.up`])];
    for (const set of fused) {
      const names = set.filter((r) => roles[r]).map((r) => `${model.layout.block(b)}${roles[r]}`);
      const keys = names.map((n) => JSON.stringify(assignments.get(n)?.quantization ?? null));
      if (new Set(keys).size > 1) {
        throw new InvalidArgumentError(`${names.join(', ')}: vLLM runs these as one layer, so they must all be quantized with the same scheme or all left unquantized; adjust the recipe's targets or overrides`);
      }
    }
  }
}

async function openWriter(format: OutputFormat, input: Checkpoint, options: CompressOptions, linears: LinearSlot[], assignments: Map<string, Assignment>, runFingerprint: string, lmHead: string): Promise<ModelFolderWriter<LinearReportEntry>> {
  const common = { overwrite: options.overwrite, resume: options.resume, fingerprint: runFingerprint };
  if (format === 'dense') return DenseFolder.begin<LinearReportEntry>(input, options.out, common);
  const quantized = new Map([...assignments].filter(([, a]) => a.quantization).map(([name, a]) => [name, a.quantization!]));
  return CompressedTensorsFolder.begin<LinearReportEntry>(input, options.out, { quantized, linears: [...linears.map((l) => l.name), lmHead.replace(/\.weight$/, '')] }, common);
}

/** ‖WX − ŴX‖² / ‖WX‖² through H = (2/T)XᵀX. */
async function relativeError(original: Tensor, compressed: Tensor, hessian: Tensor, signal?: AbortSignal): Promise<number> {
  const difference = await original.cloneAsync({ signal });
  await axpyAsync(-1, compressed, difference, { signal });
  const numerator = await dotAsync(difference, await gemmAsync(difference, hessian, { signal }), { signal });
  const denominator = await dotAsync(original, await gemmAsync(original, hessian, { signal }), { signal });
  return denominator > 0 ? numerator / denominator : numerator === 0 ? 0 : Infinity;
}

export async function compressModel(options: CompressOptions): Promise<CompressReport> {
  const started = performance.now();
  const { recipe, signal } = options;
  const format = options.format ?? 'dense';
  const check = () => {
    if (signal?.aborted) throw new AbortError();
  };
  const model = await DecoderModel.open(options.model);
  let writer: ModelFolderWriter<LinearReportEntry> | undefined;
  try {
    if (model.quantized) {
      throw new UnsupportedFormatError(`${options.model} is already quantized (compressed-tensors); compress the original model instead of quantizing twice`);
    }
    const { config, layout } = model;
    const roles = model.linearRoles();
    const linears: LinearSlot[] = [];
    for (let b = 0; b < config.layers; ++b) {
      for (const [role, relativeName] of Object.entries(roles)) linears.push({ name: `${layout.block(b)}${relativeName}`, role, block: b });
    }
    const assignments = assignLinears(recipe, linears);
    if (assignments.size === 0) throw new InvalidArgumentError('the recipe selects no linear layer to compress');
    for (const [name, a] of assignments) {
      const info = await model.checkpoint.info(`${name}.weight`);
      if (a.pattern) checkPatternFits(a.pattern, info.shape, name);
    }
    await checkFormat(format, model, assignments);
    const { windows, seqLen, settings } = await calibrationWindows(options, model, assignments);
    const measure = options.measureError ?? 'auto';

    writer = await openWriter(
      format,
      model.checkpoint as Checkpoint,
      options,
      linears,
      assignments,
      fingerprint([options.model, format, recipe, settings, options.evalTokens?.length ?? 0, config.layers, measure], windows),
      model.layout.lmHead,
    );
    const startBlock = writer.resumed?.blocksDone ?? 0;
    const stageSeconds = { propagate: 0, capture: 0, compress: 0, error: 0, io: 0, eval: 0 };
    const timed = async <T>(stage: keyof typeof stageSeconds, work: () => Promise<T>): Promise<T> => {
      const t = performance.now();
      try {
        return await work();
      } finally {
        stageSeconds[stage] += (performance.now() - t) / 1000;
      }
    };
    const entries: LinearReportEntry[] = [...(writer.resumed?.entries ?? [])];

    const groups = inputGroups(config);
    const stageList = recipe.sequential === 'linear' ? [0, 1, 2, 3].map((s) => groups.filter((g) => g.stage === s)) : [groups];
    const blockLinears = (b: number) => linears.filter((l) => l.block === b && assignments.has(l.name));
    const passesPerBlock = windows.length > 0 ? stageList.length + 1 : 0;
    let steps = options.evalTokens ? 2 : 0;
    for (let b = 0; b < config.layers; ++b) steps += b < startBlock ? 1 : passesPerBlock + blockLinears(b).length;
    let step = 0;
    const progress = (block: number, stage: string) => options.onProgress?.({ step: ++step, steps, block, blocks: config.layers, stage });

    const evaluate = async (dir: string, label: string): Promise<PerplexityResult> => {
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
    const before = options.evalTokens ? ((writer.resumed?.extra.evalBefore as PerplexityResult | undefined) ?? (await evaluate(options.model, 'eval before'))) : undefined;
    if (before && writer.resumed) progress(0, 'eval before (from the interrupted run)');

    // Calibration hidden states, in batches of about 2048 rows (a window's rows stay together).
    const perBatch = Math.max(1, Math.floor(2048 / seqLen));
    const batches: CalibrationBatch[] = [];
    if (windows.length > 0) {
      const embeddings = await model.loadEmbeddings();
      for (let w = 0; w < windows.length; w += perBatch) {
        const group = windows.slice(w, w + perBatch);
        const ids = new Int32Array(group.length * seqLen);
        group.forEach((window, i) => ids.set(window, i * seqLen));
        batches.push({ states: model.embed(embeddings, ids, seqLen), positions: Tensor.fromTypedArray(Int32Array.from({ length: ids.length }, (_, i) => i % seqLen)) });
      }
    }
    const arena = new TensorArena();
    const propagate = async (block: DecoderBlock) => {
      for (const batch of batches) {
        check();
        await arena.run(() => block.forward(batch.states, batch.positions, model.invFreq, { sequenceLength: seqLen, signal }));
        arena.recycle();
        await model.checkFiniteStates(batch.states, block.index, signal);
        await breathe();
      }
    };

    /** Statistics each input group needs, for the assigned linears among `roles`. */
    const needsOf = (assigned: Map<string, { name: string; assignment: Assignment }>, wantedGroups: typeof groups): Map<string, StatisticsNeeds> => {
      const needs = new Map<string, StatisticsNeeds>();
      if (batches.length === 0) return needs;
      for (const group of wantedGroups) {
        const merged: StatisticsNeeds = {};
        for (const role of group.roles) {
          const entry = assigned.get(role);
          if (!entry) continue;
          const method = entry.assignment.method;
          merged.hessian ||= Boolean(method.needs.hessian) || measure === true;
          merged.inputSquares ||= Boolean(method.needs.inputSquares);
        }
        if (merged.hessian || merged.inputSquares) needs.set(group.name, merged);
      }
      return needs;
    };

    /** Runs a linear-scope method (or its fallback) on one linear; returns the result and the method that ran. */
    const runMethod = async (name: string, weight: Tensor, assignment: Assignment, stats: LinearStatistics | undefined, storageDType: string): Promise<{ result: CompressedLinear; method: CompressionMethod<any>; fellBack: boolean }> => {
      const starved = needsCalibration(assignment.method) && (!stats || stats.tokens === 0);
      const method = starved ? assignment.fallback : assignment.method;
      if (!method) throw new InvalidArgumentError(`${name}: no calibration token reached this linear and ${assignment.method.name} declares no fallback; give the stage a 'fallback' (e.g. magnitude)`);
      const options = starved ? method.parseOptions({}, 'fallback') : assignment.options;
      try {
        const result = await method.compress!({ name, weight, pattern: assignment.pattern, quantization: method.quantizes(options) ? assignment.quantization : undefined, storageDType: storageDType as 'f32', stats: starved ? undefined : stats, options, signal });
        return { result, method, fellBack: starved };
      } catch (error) {
        throw namedAfter(error, `${name} (${method.name})`);
      }
    };

    /** After the method: round to the grid where it did not quantize, round to the stored dtype, measure, record, write. */
    const finish = async (block: DecoderBlock, role: string, name: string, assignment: Assignment, original: Tensor, stats: LinearStatistics | undefined, run: { result: CompressedLinear; method: CompressionMethod<any>; fellBack: boolean }, storageDType: string, startedAt: number): Promise<LinearReportEntry> => {
      let result = run.result;
      let quantizer: string | undefined = assignment.quantization && result.quantized ? run.method.name : undefined;
      if (assignment.quantization && !result.quantized) {
        const rounded = await roundToNearest(result.weight, assignment.quantization, storageDType, signal);
        result = { ...result, weight: rounded.weight, quantized: rounded.quantized };
        quantizer = `rtn after ${run.method.name}`;
      }
      // Round to the stored dtype now, so the next block sees exactly the weights that are saved.
      const weight = storageDType === 'f32' ? result.weight : await (await result.weight.toAsync(storageDType as 'f16', { signal })).toAsync('f32', { signal });
      let error: number | null = null;
      if (measure !== false && stats?.hessian && stats.tokens > 0) error = await timed('error', () => relativeError(original, weight, stats.hessian!, signal));
      block.linears[role].weight = weight;
      await timed('io', () => writer!.writeLinear(name, result, weight));
      const q = assignment.quantization;
      return {
        name,
        method: assignment.method.name,
        pattern: assignment.pattern ? formatPattern(assignment.pattern) : '-',
        shape: [...weight.shape],
        sparsity: (await countZerosAsync(weight, signal)) / weight.numel,
        ...(q ? { bits: q.bits, groupSize: q.groupSize, symmetric: q.symmetric, ...(q.actOrder ? { actOrder: q.actOrder } : {}), quantizer } : {}),
        bitsPerWeight: result.quantized ? bitsPerWeight(result.quantized, storageDType) : dtypeBits(storageDType),
        relativeError: error,
        seconds: (performance.now() - startedAt) / 1000,
        ...(result.details || run.fellBack ? { details: { ...result.details, ...(run.fellBack ? { fallback: `${run.method.name}: no calibration tokens reached this linear` } : {}) } } : {}),
      };
    };

    const compressLinear = async (block: DecoderBlock, role: string, name: string, assignment: Assignment, stats: LinearStatistics | undefined): Promise<LinearReportEntry> => {
      const startedAt = performance.now();
      const original = block.linears[role].weight;
      if (stats?.hessian && !Number.isFinite(await dotAsync(stats.hessian, stats.hessian, { signal }))) {
        throw new NonFiniteError(`the calibration inputs of ${name} (block ${block.index}) hold NaN or infinite values although every weight is finite: the activations overflowed float32`);
      }
      const storageDType = await writer!.storageDType(name);
      const run = await timed('compress', async () => runMethod(name, await original.cloneAsync({ signal }), assignment, stats, storageDType));
      return finish(block, role, name, assignment, original, stats, run, storageDType, startedAt);
    };

    /** A group-scope method on one structural group: every member's statistics at once. */
    const compressGroup = async (block: DecoderBlock, group: { name: string; roles: string[] }, members: { role: string; name: string }[], assignment: Assignment, statsOf: (role: string) => LinearStatistics | undefined): Promise<LinearReportEntry[]> => {
      const startedAt = performance.now();
      const storageDType = await writer!.storageDType(members[0].name);
      const originals = new Map(members.map((m) => [m.role, block.linears[m.role].weight]));
      const results = await timed('compress', async () =>
        assignment.method.compressGroup!({
          group: group.name,
          linears: await Promise.all(members.map(async (m) => ({ role: m.role, name: m.name, weight: await originals.get(m.role)!.cloneAsync({ signal }), stats: statsOf(m.role) }))),
          pattern: assignment.pattern,
          quantization: assignment.method.quantizes(assignment.options) ? assignment.quantization : undefined,
          storageDType: storageDType as 'f32',
          options: assignment.options,
          signal,
        }),
      );
      const out: LinearReportEntry[] = [];
      for (const m of members) {
        const result = results.get(m.role);
        if (!result) throw new InvalidArgumentError(`${m.name}: ${assignment.method.name} returned no result for it`);
        out.push(await finish(block, m.role, m.name, assignment, originals.get(m.role)!, statsOf(m.role), { result, method: assignment.method, fellBack: false }, storageDType, startedAt));
      }
      return out;
    };

    // Blocks an interrupted run finished: replay them from the staged output to rebuild the hidden states.
    if (startBlock > 0) {
      const staged = await DecoderModel.open(writer.staging);
      try {
        for (let b = 0; b < startBlock; ++b) {
          if (batches.length > 0) await propagate(await staged.loadBlock(b));
          progress(b, 'replaying a finished block');
        }
      } finally {
        await staged.close();
      }
    }

    const structural = structuralGroups(config);
    const groupOfInput = new Map(groups.flatMap((g) => g.roles.map((r) => [r, g.name] as const)));
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
      // Structural groups that a group-scope method takes whole.
      const groupJobs: { group: (typeof structural)[number]; assignment: Assignment }[] = [];
      for (const group of structural) {
        const scoped = group.roles.filter((r) => assigned.get(r)?.assignment.method.scope === 'group');
        if (scoped.length === 0) continue;
        const first = assigned.get(scoped[0])!.assignment;
        if (scoped.length !== group.roles.length || scoped.some((r) => assigned.get(r)!.assignment.stage !== first.stage || assigned.get(r)!.assignment.method !== first.method)) {
          throw new InvalidArgumentError(`${prefix}${group.name}: ${first.method.name} compresses ${group.roles.map((r) => roles[r]).join(', ')} together; the recipe must assign all of them to the same stage`);
        }
        groupJobs.push({ group, assignment: first });
      }
      const groupRoles = new Set(groupJobs.flatMap((j) => j.group.roles));
      const linearAssigned = new Map([...assigned].filter(([role]) => !groupRoles.has(role)));

      // Group-scope methods take their statistics from the dense block; in 'block' mode that pass serves
      // the linear-scope methods too.
      const groupNeeds = needsOf(new Map([...assigned].filter(([role]) => groupRoles.has(role))), groups);
      let statistics = new Map<string, LinearStatistics>();
      if (groupJobs.length > 0) {
        const wanted = recipe.sequential === 'linear' ? groupNeeds : mergeNeeds(groupNeeds, needsOf(linearAssigned, groups));
        if (wanted.size > 0) statistics = await timed('capture', () => captureStatistics(model, block, batches, seqLen, wanted, arena, signal));
        for (const job of groupJobs) {
          const members = job.group.roles.map((role) => ({ role, name: assigned.get(role)!.name }));
          entries.push(...(await compressGroup(block, job.group, members, job.assignment, (role) => statistics.get(groupOfInput.get(role)!))));
          for (const m of members) progress(b, m.name);
        }
      }
      for (const stage of stageList) {
        const stageGroups = stage.filter((g) => g.roles.some((r) => linearAssigned.has(r)));
        if (stageGroups.length === 0) continue;
        if (groupJobs.length === 0 || recipe.sequential === 'linear') {
          const wanted = needsOf(linearAssigned, stageGroups);
          statistics = wanted.size > 0 ? await timed('capture', () => captureStatistics(model, block, batches, seqLen, wanted, arena, signal)) : new Map();
        }
        if (batches.length > 0) progress(b, 'calibrating');
        for (const group of stageGroups) {
          for (const role of group.roles) {
            const entry = linearAssigned.get(role);
            if (!entry) continue;
            check();
            entries.push(await compressLinear(block, role, entry.name, entry.assignment, statistics.get(group.name)));
            progress(b, entry.name);
          }
          statistics.delete(group.name);
        }
      }
      if (batches.length > 0) {
        await timed('propagate', () => propagate(block));
        progress(b, 'propagating');
      }
      await timed('io', () => writer!.finishBlock(b + 1, entries, before ? { evalBefore: before } : {}));
    }
    await writer.closeFiles();

    const after = options.evalTokens ? await evaluate(writer.staging, 'eval after') : undefined;
    let linearParameters = 0;
    for (const l of linears) {
      const shape = (await model.checkpoint.info(`${l.name}.weight`)).shape;
      linearParameters += shape[0] * shape[1];
    }
    const report: CompressReport = {
      model: options.model,
      out: options.out,
      format,
      recipe,
      calibration: windows.length > 0 ? { windows: windows.length, seqLen, seed: settings.seed, tokens: windows.length * seqLen } : null,
      linears: entries,
      totals: {
        ...summarize(entries),
        linearParameters,
        seconds: (performance.now() - started) / 1000,
        peakRssBytes: peakRssBytes(),
        resumedAtBlock: startBlock > 0 ? startBlock : null,
        stageSeconds: Object.fromEntries(Object.entries(stageSeconds).map(([k, v]) => [k, Number(v.toFixed(3))])) as typeof stageSeconds,
      },
      ...(before && after ? { perplexityBefore: before.perplexity, perplexityAfter: after.perplexity, eval: { before, after } } : {}),
    };
    await writer.commit(
      {
        version: sparqVersion(),
        recipe,
        sparsity: report.totals.sparsity,
        ...(report.totals.bitsPerWeight !== null ? { bitsPerWeight: report.totals.bitsPerWeight } : {}),
        calibration: report.calibration,
        ...(after ? { perplexity: { before: before!.perplexity, after: after.perplexity, seqLen: after.seqLen, tokens: after.tokens } } : {}),
      },
      report,
    );
    return report;
  } finally {
    await writer?.close();
    await model.close();
  }
}

/** A kernel's error (a Hessian that is not positive definite, …) with the linear it happened on in front. */
function namedAfter(error: unknown, where: string): unknown {
  if (!(error instanceof SparqError) || error instanceof AbortError || error.message.includes(where.split(' ')[0])) return error;
  const named = new (error.constructor as new (message: string, options?: { cause?: unknown }) => SparqError)(`${where}: ${error.message}`, { cause: error });
  named.stack = `${named.name}: ${named.message}\n${(error.stack ?? '').split('\n').slice(1).join('\n')}`;
  return named;
}

function mergeNeeds(a: Map<string, StatisticsNeeds>, b: Map<string, StatisticsNeeds>): Map<string, StatisticsNeeds> {
  const merged = new Map(a);
  for (const [group, needs] of b) {
    const existing = merged.get(group);
    merged.set(group, existing ? { hessian: existing.hessian || needs.hessian, inputSquares: existing.inputSquares || needs.inputSquares } : needs);
  }
  return merged;
}
