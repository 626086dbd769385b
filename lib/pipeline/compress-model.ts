// The layer-wise compression driver (llm-compressor's sequential pipeline, sparsegpt's llama_sequential).
// It streams the model block by block and knows no method by name and none of their math: for each block
//   0. (only when a method needs gradients) one streamed backward pass of the language-model loss over the
//      first `gradientWindows` calibration windows, before the loop (one pass per window where a method
//      asks for gradientsPerWindow): each linear's ∂L/∂W goes to its method's summarizeGradient and only
//      the summary is kept (autograd/decoder.ts streamGradients),
//   1. load the block's weights (f32),
//   2. capture: run the calibration hidden states through it, each group of linears that read the same
//      input gathering exactly the statistics its methods declared (capture.ts),
//   3. compress: hand each linear (or structural group, for group-scope methods) to its method; round the
//      result to the stage's grid where the method does not quantize itself; round to the stored dtype,
//      so the next block sees exactly what is saved; hand it to the output writer,
//   3b. refine (methods that ask for it, e.g. block-wise reconstruction): the dense block's outputs are
//      kept before step 3; once all its linears are compressed, the method gets the block's objective
//      (block-reconstruction.ts) and returns refined results, and only then are they written,
//   4. propagate: run the block again with the compressed weights — its outputs are the next block's
//      inputs — then write the block's progress and free it.
// `sequential: 'block'` (the reference implementations' default) takes all statistics from the dense
// block; `'linear'` re-captures after each stage (attention in, attention out, MLP in, MLP out), so later
// linears see the outputs of already-compressed ones. Group-scope methods take theirs from the dense block.
// Every forward runs on native async ops, with temporaries from an arena recycled per batch: the event
// loop keeps running. Peak memory ≈ one block + the calibration hidden states + the block's statistics.
import { makeBatch, streamGradients } from '../autograd/decoder.js';
import { needsCalibration, needsWith, type AllocationGroup, type AttentionGeometry, type CompressedLinear, type CompressionMethod, type LinearStatistics, type StatisticsNeeds } from '../compress/method.js';
import { checkPatternFits, countZerosAsync, formatPattern } from '../compress/pattern.js';
import { bitsPerWeight, dtypeBits, outlierBits, roundToFp8E4m3, roundToNearest } from '../compress/quantizer.js';
import { AbortError, InvalidArgumentError, NonFiniteError, SparqError, UnsupportedFormatError } from '../errors.js';
import { evaluatePerplexity, type PerplexityResult } from '../eval/perplexity.js';
import { checkVllmLoadable, CompressedTensorsFolder, type CtPlannedScheme } from '../export/compressed-tensors-folder.js';
import { DenseFolder } from '../export/dense-folder.js';
import { checkPackable, PackedOutputFolder } from '../export/packed-output-folder.js';
import { fingerprint, type ModelFolderWriter, type OutputFormat } from '../export/writer.js';
import type { Checkpoint } from '../io/checkpoint.js';
import { DecoderModel, inputGroups, type DecoderBlock, type InputGroup } from '../models/decoder.js';
import { blockConfig } from '../models/config.js';
import { structuralGroups, type StructuralGroup } from '../models/layouts.js';
import { axpyAsync, dotAsync, gemmAsync } from '../tensor/ops.js';
import { Tensor, TensorArena } from '../tensor/tensor.js';
import { loadTokenizer } from '../io/tokenizer.js';
import { sparqVersion } from '../version.js';
import { CALIBRATION_DEFAULTS, loadCalibration, sampleWindows } from './calibration.js';
import { blockReconstruction, denseOutputs } from './block-reconstruction.js';
import { captureStatistics, type CalibrationBatch } from './capture.js';
import { assignLinears, type Assignment, type Recipe } from './recipe.js';
import { modelScopeAssignment, runModelScope, trainingTokens } from './model-scope.js';
import { summarize, type CompressReport, type LinearReportEntry } from './report.js';

export interface CompressOptions {
  /** Input model folder. */
  model: string;
  /** Output folder (refused if it exists, unless overwrite). */
  out: string;
  recipe: Recipe;
  /** 'dense' (default): the input's files with the compressed weights in place; 'compressed-tensors': pack-quantized for vLLM. */
  format?: OutputFormat;
  /**
   * With format 'compressed-tensors': refuse, before any work, what vLLM cannot load (default true); false
   * writes any grid compressed-tensors can describe (e.g. group size 16, an intermediate for bsr-int4).
   */
  vllmLoadable?: boolean;
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
  /** Windows the gradient pass runs on, as one batch (methods that need gradients; default 16). */
  gradientWindows?: number;
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
  /**
   * Test hook: called at named points of the run, so a test can interrupt it at an exact place (abort
   * `signal`, observed at the check that follows each point; throw; or kill the process). Not for
   * production use; it changes nothing when absent. See RunPoint.
   */
  testHook?: (point: RunPoint) => void | Promise<void>;
}

/**
 * Where testHook is called: 'linear' after a linear is compressed and written to its staged shard;
 * 'write' when half of a linear's tensor bytes are in the staged shard and the rest are not (each staged
 * write of that linear); 'propagate' after one calibration batch has gone through a block (also when a
 * resumed run replays a finished block).
 */
export type RunPoint = { at: 'linear' | 'write'; block: number; name: string } | { at: 'propagate'; block: number; batch: number };

export interface CompressProgress {
  step: number;
  steps: number;
  /** The block being worked on; -1 for a model-scope method, which works on all blocks at once. */
  block: number;
  blocks: number;
  /** What is running: 'calibrating', a linear's name, 'eval before', a training step's loss, … */
  stage: string;
  /** A log line worth keeping (a model-scope method's per-interval summary), printed as it comes. */
  line?: string;
}

/** Windows of the gradient pass by default: one batch, so memory ≈ (layers + 1) boundary states of them. */
export const GRADIENT_WINDOWS = 16;

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
  const wanting = [...new Set([...assignments.values()].filter((a) => needsCalibration(a.method) && Object.values(needsWith(a.method, a.options)).some(Boolean)).map((a) => a.method.name))];
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
async function checkFormat(format: OutputFormat, model: DecoderModel, assignments: Map<string, Assignment>, vllmLoadable: boolean): Promise<void> {
  for (const [name, a] of assignments) {
    const float = a.method.floatFormat?.(a.options);
    if (float && format === 'packed') {
      throw new InvalidArgumentError(`${name}: ${a.method.name} quantizes to ${float} (options.format; the CLI's --bits fp8), and --format packed stores int4 codes; use --format compressed-tensors (float-quantized, for vLLM) or --format dense`);
    }
  }
  if (format === 'packed') {
    if (![...assignments.values()].some((a) => a.quantization)) throw new InvalidArgumentError("--format packed stores int4 codes (and outliers), and the recipe quantizes nothing; use --format dense");
    for (const [name, a] of assignments) if (a.quantization) checkPackable(name, a.quantization);
    return;
  }
  if (format !== 'compressed-tensors') return;
  for (const [name, a] of assignments) {
    if (a.method.keepsOutliers?.(a.options)) {
      throw new InvalidArgumentError(`${name}: ${a.method.name} keeps outliers in 16-bit beside the codes, and compressed-tensors has no way to carry them; use --format packed (int4 + CSR outliers, for sparq generate) or --format dense`);
    }
  }
  if (![...assignments.values()].some((a) => a.quantization)) {
    throw new InvalidArgumentError("--format compressed-tensors stores quantized weights, and the recipe quantizes nothing; use --format dense (or add a quantize block)");
  }
  if (!vllmLoadable) return;
  for (const [name, a] of assignments) {
    // FP8 (float-quantized) has no codes packed in words and no groups; the tile sizes of vLLM's FP8 kernels
    // (Marlin where the GPU lacks FP8 units) are theirs to check at load time.
    if (a.quantization && !a.method.floatFormat?.(a.options)) checkVllmLoadable(name, (await model.checkpoint.info(`${name}.weight`)).shape, a.quantization);
  }
  // vLLM runs q/k/v and gate/up (of the MLP, of the shared expert) as one layer each, and all routed
  // experts of a layer as one fused MoE layer: each set must be quantized alike. It builds Qwen2-MoE's and
  // DeepSeek's routers and Qwen2-MoE's shared_expert_gate unquantized; sparq keeps every router dense here.
  for (let b = 0; b < model.config.layers; ++b) {
    const roles = model.linearRoles(b);
    for (const role of ['router', 'shared_expert_gate']) {
      const name = roles[role] && `${model.layout.block(b)}${roles[role]}`;
      if (name && assignments.get(name)?.quantization) {
        throw new InvalidArgumentError(`${name}: vLLM loads MoE routers and shared-expert gates unquantized; leave it out of the recipe's targets for --format compressed-tensors (or use --format dense)`);
      }
    }
    const experts = Object.keys(roles).filter((r) => r.startsWith('expert.'));
    const fused = [['q', 'k', 'v'], ['gate', 'up'], ['shared.gate', 'shared.up'], experts];
    for (const set of fused) {
      const names = set.filter((r) => roles[r]).map((r) => `${model.layout.block(b)}${roles[r]}`);
      const keys = names.map((n) => {
        const a = assignments.get(n);
        return JSON.stringify([a?.quantization ?? null, (a?.quantization && a.method.floatFormat?.(a.options)) ?? null]);
      });
      if (new Set(keys).size > 1) {
        throw new InvalidArgumentError(`${names.join(', ')}: vLLM runs these as one layer, so they must all be quantized with the same scheme or all left unquantized; adjust the recipe's targets or overrides`);
      }
    }
  }
}

async function openWriter(format: OutputFormat, input: Checkpoint, options: CompressOptions, linears: LinearSlot[], assignments: Map<string, Assignment>, runFingerprint: string, lmHead: string): Promise<ModelFolderWriter<LinearReportEntry>> {
  const common = { overwrite: options.overwrite, resume: options.resume, fingerprint: runFingerprint };
  if (format === 'dense') return DenseFolder.begin<LinearReportEntry>(input, options.out, common);
  if (format === 'packed') {
    const blocks = Array.from({ length: Math.max(0, ...linears.map((l) => l.block + 1)) }, (_, b) => linears.filter((l) => l.block === b).map((l) => l.name));
    return PackedOutputFolder.beginPacked<LinearReportEntry>(input, options.out, blocks, common);
  }
  const quantized = new Map<string, CtPlannedScheme>();
  for (const [name, a] of assignments) {
    if (!a.quantization) continue;
    const float = a.method.floatFormat?.(a.options);
    if (float !== undefined && float !== 'fp8-e4m3') throw new InvalidArgumentError(`${name}: ${a.method.name} quantizes to ${float}, which compressed-tensors output does not store; use --format dense`);
    quantized.set(name, float ? { ...a.quantization, float } : a.quantization);
  }
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

/** What a run was planned to do before any weight is touched. */
interface RunPlan {
  format: OutputFormat;
  linears: LinearSlot[];
  assignments: Map<string, Assignment>;
  windows: Int32Array[];
  seqLen: number;
  settings: { nsamples: number; seqLen: number; seed: number };
  measure: boolean | 'auto';
  /** Set when the recipe's method works on the whole model (scope 'model'): it, and the text to train on. */
  modelScope?: { assignment: Assignment; tokens: Int32Array };
}

type Assigned = Map<string, { name: string; assignment: Assignment }>;

/** A compressed linear of a block that will be refined as a whole, not yet written. */
interface PendingLinear {
  name: string;
  role: string;
  assignment: Assignment;
  result: CompressedLinear;
  weight: Tensor;
  storageDType: string;
  entry: LinearReportEntry;
  fellBack: boolean;
}

interface MethodRun {
  result: CompressedLinear;
  method: CompressionMethod<any>;
  fellBack: boolean;
}

export async function compressModel(options: CompressOptions): Promise<CompressReport> {
  const started = performance.now();
  const model = await DecoderModel.open(options.model);
  let writer: ModelFolderWriter<LinearReportEntry> | undefined;
  try {
    if (model.quantized) {
      throw new UnsupportedFormatError(`${options.model} is already quantized (compressed-tensors); compress the original model instead of quantizing twice`);
    }
    const plan = await planRun(options, model);
    if (plan.modelScope) {
      const { assignment, tokens } = plan.modelScope;
      if (plan.format !== 'dense') throw new InvalidArgumentError(`${assignment.method.name} writes the dense format only (prune's output); quantize its result in a second run`);
      writer = await openWriter(plan.format, model.checkpoint as Checkpoint, options, plan.linears, plan.assignments, fingerprint([options.model, plan.format, options.recipe, options.seqLen ?? null, options.seed ?? null, options.evalTokens?.length ?? 0], [tokens]), model.layout.lmHead);
      const linears = plan.linears.filter((l) => plan.assignments.has(l.name));
      return await runModelScope(options, model, linears, assignment, tokens, writer as DenseFolder<LinearReportEntry>, started);
    }
    writer = await openWriter(
      plan.format,
      model.checkpoint as Checkpoint,
      options,
      plan.linears,
      plan.assignments,
      fingerprint([options.model, plan.format, options.recipe, plan.settings, options.evalTokens?.length ?? 0, model.config.layers, plan.measure], plan.windows),
      model.layout.lmHead,
    );
    return await new CompressionRun(options, model, plan, writer, started).execute();
  } finally {
    await writer?.close();
    await model.close();
  }
}

/** Every linear of the model, what the recipe assigns it, and the calibration windows; refusals come here. */
async function planRun(options: CompressOptions, model: DecoderModel): Promise<RunPlan> {
  const { config, layout } = model;
  const format = options.format ?? 'dense';
  const linears: LinearSlot[] = [];
  for (let b = 0; b < config.layers; ++b) {
    for (const [role, relativeName] of Object.entries(model.linearRoles(b))) linears.push({ name: `${layout.block(b)}${relativeName}`, role, block: b });
  }
  const assignments = assignLinears(options.recipe, linears);
  if (assignments.size === 0) throw new InvalidArgumentError('the recipe selects no linear layer to compress');
  for (const [name, a] of assignments) {
    const info = await model.checkpoint.info(`${name}.weight`);
    if (a.pattern) checkPatternFits(a.pattern, info.shape, name);
    a.method.checkLinear?.(name, info.shape, a.pattern, a.quantization);
  }
  await checkFormat(format, model, assignments, options.vllmLoadable ?? true);
  const scoped = modelScopeAssignment(assignments);
  if (scoped) {
    const tokens = await trainingTokens(options, config.vocabSize);
    return { format, linears, assignments, windows: [], seqLen: 0, settings: { nsamples: 0, seqLen: 0, seed: 0 }, measure: false, modelScope: { assignment: scoped, tokens } };
  }
  const { windows, seqLen, settings } = await calibrationWindows(options, model, assignments);
  return { format, linears, assignments, windows, seqLen, settings, measure: options.measureError ?? 'auto' };
}

/** One run of the driver: the steps in the file comment, one method each. */
class CompressionRun {
  private readonly stageSeconds = { gradients: 0, propagate: 0, capture: 0, compress: 0, error: 0, io: 0, eval: 0 };
  /** Each linear's gradient summary (methods that need gradients), and the tokens behind them. */
  private readonly gradientSummaries = new Map<string, Tensor>();
  private gradientTokens = 0;
  private readonly entries: LinearReportEntry[];
  private readonly sequentialByLinear: boolean;
  private readonly startBlock: number;
  private readonly steps: number;
  private step = 0;
  private batches: CalibrationBatch[] = [];
  /** While a block will be refined as a whole: its compressed linears, written after the refinement. */
  private pending: PendingLinear[] | undefined;
  private readonly arena = new TensorArena();
  private readonly signal: AbortSignal | undefined;
  /** Allocated sparsity of each structural group (`block:group`), for group methods that allocate. */
  private readonly groupSparsity = new Map<string, number>();
  private readonly allocationNotes: string[] = [];

  constructor(
    private readonly options: CompressOptions,
    private readonly model: DecoderModel,
    private readonly plan: RunPlan,
    private readonly writer: ModelFolderWriter<LinearReportEntry>,
    private readonly started: number,
  ) {
    this.signal = options.signal;
    this.entries = [...(writer.resumed?.entries ?? [])];
    this.sequentialByLinear = options.recipe.sequential === 'linear';
    this.startBlock = writer.resumed?.blocksDone ?? 0;
    const passesPerBlock = plan.windows.length > 0 ? (this.sequentialByLinear ? 4 : 1) + 1 : 0;
    let steps = (options.evalTokens ? 2 : 0) + (this.wantsGradients().size > 0 && plan.windows.length > 0 ? 1 : 0);
    if ([...plan.assignments.values()].some((a) => a.method.allocation?.needsScores(a.options))) steps += model.config.layers;
    for (let b = 0; b < model.config.layers; ++b) {
      steps += b < this.startBlock ? 1 : passesPerBlock + plan.linears.filter((l) => l.block === b && plan.assignments.has(l.name)).length;
    }
    this.steps = steps;
  }

  async execute(): Promise<CompressReport> {
    const { options, model, writer } = this;
    const before = options.evalTokens ? ((writer.resumed?.extra.evalBefore as PerplexityResult | undefined) ?? (await this.evaluate(options.model, 'eval before'))) : undefined;
    if (before && writer.resumed) this.progress(0, 'eval before (from the interrupted run)');
    await this.gatherGradients();
    await this.allocateGroups();
    await this.embedCalibration();
    await this.replayFinishedBlocks();
    for (let b = this.startBlock; b < model.config.layers; ++b) {
      this.check();
      const block = await model.loadBlock(b);
      await this.compressBlock(block);
      if (this.batches.length > 0) {
        await this.timed('propagate', () => this.propagate(block));
        this.progress(b, 'propagating');
      }
      await this.timed('io', () => writer.finishBlock(b + 1, this.entries, before ? { evalBefore: before } : {}));
    }
    await writer.closeFiles();
    const after = options.evalTokens ? await this.evaluate(writer.staging, 'eval after') : undefined;
    const report = await this.report(before, after);
    await writer.commit(
      {
        version: sparqVersion(),
        recipe: options.recipe,
        sparsity: report.totals.sparsity,
        ...(report.totals.bitsPerWeight !== null ? { bitsPerWeight: report.totals.bitsPerWeight } : {}),
        calibration: report.calibration,
        ...(after ? { perplexity: { before: before!.perplexity, after: after.perplexity, seqLen: after.seqLen, tokens: after.tokens } } : {}),
      },
      report,
    );
    return report;
  }

  private check(): void {
    if (this.signal?.aborted) throw new AbortError();
  }

  private progress(block: number, stage: string): void {
    this.options.onProgress?.({ step: ++this.step, steps: this.steps, block, blocks: this.model.config.layers, stage });
  }

  private async timed<T>(stage: keyof CompressionRun['stageSeconds'], work: () => Promise<T>): Promise<T> {
    const t = performance.now();
    try {
      return await work();
    } finally {
      this.stageSeconds[stage] += (performance.now() - t) / 1000;
    }
  }

  private async evaluate(dir: string, label: string): Promise<PerplexityResult> {
    const evalModel = await DecoderModel.open(dir);
    const t = performance.now();
    try {
      const result = await evaluatePerplexity(evalModel, this.options.evalTokens!, { seqLen: this.options.evalSeqLen, maxTokens: this.options.evalMaxTokens, signal: this.signal });
      this.progress(this.model.config.layers, label);
      return result;
    } finally {
      this.stageSeconds.eval += (performance.now() - t) / 1000;
      await evalModel.close();
    }
  }

  /**
   * For group methods that spread one target over the model (method.allocation): every structural group
   * they were assigned, scored in one pass over the dense model where the method asks for scores (block by
   * block: capture, score, propagate), then allocated once per recipe stage.
   */
  private async allocateGroups(): Promise<void> {
    const { model, plan } = this;
    const stages = new Map<number, { assignment: Assignment; groups: AllocationGroup[] }>();
    const jobs: { block: number; group: StructuralGroup; assignment: Assignment; entry: AllocationGroup }[] = [];
    for (let b = 0; b < model.config.layers; ++b) {
      const prefix = model.layout.block(b);
      const roles = model.linearRoles(b);
      for (const group of structuralGroups(model.config, b)) {
        const assignment = plan.assignments.get(`${prefix}${roles[group.roles[0]]}`);
        if (!assignment?.method.allocation || assignment.method.scope !== 'group') continue;
        if (assignment.pattern?.kind !== 'unstructured') throw new InvalidArgumentError(`${prefix}${group.name}: ${assignment.method.name} needs a sparsity fraction (N:M is not structured pruning)`);
        const stage = stages.get(assignment.stage) ?? { assignment, groups: [] };
        if (stage.assignment.pattern?.kind === 'unstructured' && stage.assignment.pattern.sparsity !== assignment.pattern.sparsity) {
          throw new InvalidArgumentError(`${prefix}${group.name}: ${assignment.method.name} spreads one sparsity over the whole model; per-layer sparsity overrides do not apply to it (use its allocation option instead)`);
        }
        const shapes: Record<string, readonly number[]> = {};
        for (const role of group.roles) shapes[role] = (await model.checkpoint.info(`${prefix}${roles[role]}.weight`)).shape;
        const entry: AllocationGroup = { block: b, group: group.name, shapes, attention: group.name === 'attention' ? attentionGeometry(blockConfig(model.config, b)) : undefined };
        stage.groups.push(entry);
        stages.set(assignment.stage, stage);
        jobs.push({ block: b, group, assignment, entry });
      }
    }
    if (jobs.length === 0) return;
    if (jobs.some((j) => j.assignment.method.allocation!.needsScores(j.assignment.options))) await this.scoreGroups(jobs);
    for (const { assignment, groups } of stages.values()) {
      const target = (assignment.pattern as { sparsity: number }).sparsity;
      const { sparsities, notes } = assignment.method.allocation!.allocate(groups, target, assignment.options);
      groups.forEach((g, i) => this.groupSparsity.set(`${g.block}:${g.group}`, sparsities[i]));
      this.allocationNotes.push(...notes);
    }
  }

  /** The scoring pass over the dense model: each block's statistics, its groups' scores, then its dense outputs. */
  private async scoreGroups(jobs: { block: number; group: StructuralGroup; assignment: Assignment; entry: AllocationGroup }[]): Promise<void> {
    const { model } = this;
    await this.embedCalibration();
    for (let b = 0; b < model.config.layers; ++b) {
      this.check();
      const wanted = jobs.filter((j) => j.block === b && j.assignment.method.allocation!.needsScores(j.assignment.options));
      if (wanted.length === 0 && this.batches.length === 0) continue;
      const block = await model.loadBlock(b);
      const roles = model.linearRoles(b);
      const groups = inputGroups(model.config, b);
      const assigned: Assigned = new Map();
      for (const j of wanted) for (const role of j.group.roles) assigned.set(role, { name: `${model.layout.block(b)}${roles[role]}`, assignment: j.assignment });
      const statistics = await this.capture(block, this.needsOf(assigned, groups));
      const groupOfInput = new Map(groups.flatMap((g) => g.roles.map((r) => [r, g.name] as const)));
      for (const j of wanted) {
        j.entry.scores = await j.assignment.method.allocation!.score({
          group: j.group.name,
          linears: j.group.roles.map((role) => ({ role, name: assigned.get(role)!.name, weight: block.linears[role].weight, stats: statistics.get(groupOfInput.get(role)!) })),
          attention: j.entry.attention,
          block: b,
          pattern: j.assignment.pattern,
          options: j.assignment.options,
          signal: this.signal,
        });
      }
      if (this.batches.length > 0) await this.timed('propagate', () => this.propagate(block));
      this.progress(b, 'scoring for the allocation');
    }
    this.batches = [];
  }

  /** The linears whose method needs gradients with its options, in blocks not finished yet. */
  private wantsGradients(): Map<string, Assignment> {
    const wanting = new Map<string, Assignment>();
    const done = new Set(this.plan.linears.filter((l) => l.block < this.startBlock).map((l) => l.name));
    for (const [name, a] of this.plan.assignments) if (!done.has(name) && needsWith(a.method, a.options).gradients) wanting.set(name, a);
    return wanting;
  }

  /** Step 0 of the file comment: one streamed backward pass, keeping what each method summarizes. */
  private async gatherGradients(): Promise<void> {
    const wanting = this.wantsGradients();
    if (wanting.size === 0 || this.plan.windows.length === 0) return;
    const count = Math.max(1, Math.min(this.plan.windows.length, this.options.gradientWindows ?? this.options.recipe.calibration?.gradientWindows ?? GRADIENT_WINDOWS));
    const windows = this.plan.windows.slice(0, count);
    // One batch, or one pass per window where some method aggregates per-window gradients.
    const perWindow = [...wanting.values()].some((a) => needsWith(a.method, a.options).gradientsPerWindow);
    const batches = perWindow ? windows.map((w) => makeBatch([w])) : [makeBatch(windows)];
    const signal = this.signal;
    for (const [pass, batch] of batches.entries()) {
      await this.timed('gradients', () =>
        streamGradients(this.model, batch, {
          signal,
          onGradients: async (part, gradients) => {
            if (part.kind !== 'block') return;
            for (const [tensor, gradient] of gradients) {
              const name = tensor.endsWith('.weight') ? tensor.slice(0, -'.weight'.length) : '';
              const a = wanting.get(name);
              if (!a) continue;
              if (!Number.isFinite(await dotAsync(gradient, gradient, { signal }))) {
                throw new NonFiniteError(`the loss gradient of ${name} holds NaN or infinite values (the calibration windows overflowed float32 in the backward pass)`);
              }
              const previous = this.gradientSummaries.get(name);
              this.gradientSummaries.set(name, await a.method.summarizeGradient!({ name, gradient, options: a.options, signal, pass, passes: batches.length, previous }));
            }
          },
        }),
      );
    }
    this.gradientTokens = batches.reduce((sum, b) => sum + b.targets.numel, 0);
    this.progress(0, 'gradients');
  }

  /** A linear's statistics with its gradient summary added, where its method asked for one. */
  private withGradient(name: string, stats: LinearStatistics | undefined): LinearStatistics | undefined {
    const gradient = this.gradientSummaries.get(name);
    if (!gradient) return stats;
    this.gradientSummaries.delete(name);
    return { ...(stats ?? { tokens: this.gradientTokens }), gradient };
  }

  /** The calibration windows' hidden states, in batches of about 2048 rows (a window's rows stay together). */
  private async embedCalibration(): Promise<void> {
    const { windows, seqLen } = this.plan;
    if (windows.length === 0) return;
    const perBatch = Math.max(1, Math.floor(2048 / seqLen));
    const embeddings = await this.model.loadEmbeddings();
    for (let w = 0; w < windows.length; w += perBatch) {
      const group = windows.slice(w, w + perBatch);
      const ids = new Int32Array(group.length * seqLen);
      group.forEach((window, i) => ids.set(window, i * seqLen));
      this.batches.push({ states: this.model.embed(embeddings, ids, seqLen), positions: Tensor.fromTypedArray(Int32Array.from({ length: ids.length }, (_, i) => i % seqLen)) });
    }
  }

  /** Blocks an interrupted run finished: replayed from the staged output to rebuild the hidden states. */
  private async replayFinishedBlocks(): Promise<void> {
    if (this.startBlock === 0) return;
    const staged = await DecoderModel.open(this.writer.staging);
    try {
      for (let b = 0; b < this.startBlock; ++b) {
        if (this.batches.length > 0) await this.propagate(await staged.loadBlock(b));
        this.progress(b, 'replaying a finished block');
      }
    } finally {
      await staged.close();
    }
  }

  /** Runs the block on every batch in place: its outputs become the next block's inputs. */
  private async propagate(block: DecoderBlock): Promise<void> {
    for (const [i, batch] of this.batches.entries()) {
      this.check();
      await this.arena.run(() => block.forward(batch.states, batch.positions, this.model.invFreq, { sequenceLength: this.plan.seqLen, signal: this.signal }));
      this.arena.recycle();
      await this.model.checkFiniteStates(batch.states, block.index, this.signal);
      await this.options.testHook?.({ at: 'propagate', block: block.index, batch: i });
      await breathe();
    }
  }

  private capture(block: DecoderBlock, needs: Map<string, StatisticsNeeds>): Promise<Map<string, LinearStatistics>> {
    if (needs.size === 0) return Promise.resolve(new Map());
    return this.timed('capture', () => captureStatistics(this.model, block, this.batches, this.plan.seqLen, needs, this.arena, this.signal));
  }

  /** The statistics each of `wantedGroups` needs for the assigned linears that read it. */
  private needsOf(assigned: Assigned, wantedGroups: InputGroup[]): Map<string, StatisticsNeeds> {
    const needs = new Map<string, StatisticsNeeds>();
    if (this.batches.length === 0) return needs;
    for (const group of wantedGroups) {
      const merged: StatisticsNeeds = {};
      for (const role of group.roles) {
        const entry = assigned.get(role);
        if (!entry) continue;
        const needs = needsWith(entry.assignment.method, entry.assignment.options);
        merged.hessian ||= Boolean(needs.hessian) || this.plan.measure === true;
        merged.inputSquares ||= Boolean(needs.inputSquares);
      }
      if (merged.hessian || merged.inputSquares) needs.set(group.name, merged);
    }
    return needs;
  }

  /** Capture and compress every assigned linear of one block (group-scope methods first, whole groups). */
  private async compressBlock(block: DecoderBlock): Promise<void> {
    const { model } = this;
    const roles = model.linearRoles(block.index);
    const prefix = model.layout.block(block.index);
    // Dense and MoE blocks have different groups (config.moe.layers).
    const groups = inputGroups(model.config, block.index);
    const stages = this.sequentialByLinear ? [0, 1, 2, 3].map((s) => groups.filter((g) => g.stage === s)) : [groups];
    const assigned: Assigned = new Map();
    for (const [role, relativeName] of Object.entries(roles)) {
      const name = `${prefix}${relativeName}`;
      const assignment = this.plan.assignments.get(name);
      if (assignment) assigned.set(role, { name, assignment });
    }
    const groupJobs: { group: StructuralGroup; assignment: Assignment }[] = [];
    for (const group of structuralGroups(model.config, block.index)) {
      const scoped = group.roles.filter((r) => assigned.get(r)?.assignment.method.scope === 'group');
      if (scoped.length === 0) continue;
      const first = assigned.get(scoped[0])!.assignment;
      if (scoped.length !== group.roles.length || scoped.some((r) => assigned.get(r)!.assignment.stage !== first.stage || assigned.get(r)!.assignment.method !== first.method)) {
        throw new InvalidArgumentError(`${prefix}${group.name}: ${first.method.name} compresses ${group.roles.map((r) => roles[r]).join(', ')} together; the recipe must assign all of them to the same stage`);
      }
      groupJobs.push({ group, assignment: first });
    }
    // Methods that refine the whole block afterwards need the dense block's outputs, taken now.
    const refining = [...assigned.values()].some((e) => e.assignment.method.refinesBlocks?.(e.assignment.options)) && this.batches.length > 0;
    const targets = refining ? await this.timed('propagate', () => denseOutputs(model, block, this.batches, this.plan.seqLen, this.signal)) : undefined;
    this.pending = refining ? [] : undefined;
    const groupRoles = new Set(groupJobs.flatMap((j) => j.group.roles));
    const linearAssigned: Assigned = new Map([...assigned].filter(([role]) => !groupRoles.has(role)));
    const sequentialByLinear = this.sequentialByLinear;

    // Group-scope methods take their statistics from the dense block; in 'block' mode that pass serves the
    // linear-scope methods too.
    let statistics = new Map<string, LinearStatistics>();
    if (groupJobs.length > 0) {
      const groupNeeds = this.needsOf(new Map([...assigned].filter(([role]) => groupRoles.has(role))), groups);
      statistics = await this.capture(block, sequentialByLinear ? groupNeeds : mergeNeeds(groupNeeds, this.needsOf(linearAssigned, groups)));
      const groupOfInput = new Map(groups.flatMap((g) => g.roles.map((r) => [r, g.name] as const)));
      for (const job of groupJobs) {
        const members = job.group.roles.map((role) => ({ role, name: assigned.get(role)!.name }));
        this.entries.push(...(await this.compressGroup(block, job.group, members, job.assignment, (role) => statistics.get(groupOfInput.get(role)!))));
        for (const m of members) this.progress(block.index, m.name);
      }
    }
    for (const stage of stages) {
      const stageGroups = stage.filter((g) => g.roles.some((r) => linearAssigned.has(r)));
      if (stageGroups.length === 0) continue;
      if (groupJobs.length === 0 || sequentialByLinear) statistics = await this.capture(block, this.needsOf(linearAssigned, stageGroups));
      if (this.batches.length > 0) this.progress(block.index, 'calibrating');
      for (const group of stageGroups) {
        for (const role of group.roles) {
          const entry = linearAssigned.get(role);
          if (!entry) continue;
          this.check();
          this.entries.push(await this.compressLinear(block, role, entry.name, entry.assignment, this.withGradient(entry.name, statistics.get(group.name))));
          this.progress(block.index, entry.name);
        }
        statistics.delete(group.name);
      }
    }
    if (targets) await this.refineBlock(block, targets);
  }

  /** Block-wise refinement by each method that asks for it, then the deferred writes of the block. */
  private async refineBlock(block: DecoderBlock, targets: Tensor[]): Promise<void> {
    const pending = this.pending!;
    this.pending = undefined;
    const reconstruction = await blockReconstruction(this.model, block, this.batches, targets, this.plan.seqLen);
    const byMethod = new Map<CompressionMethod<any>, PendingLinear[]>();
    for (const p of pending) {
      const method = p.assignment.method;
      if (!method.refinesBlocks?.(p.assignment.options) || !method.refineBlock || p.fellBack) continue;
      byMethod.set(method, [...(byMethod.get(method) ?? []), p]);
    }
    for (const [method, members] of byMethod) {
      this.check();
      const t = performance.now();
      const refined = await this.timed('compress', () =>
        method.refineBlock!({
          block: block.index,
          linears: new Map(members.map((m) => [m.role, { name: m.name, result: m.result }])),
          reconstruction,
          storageDType: members[0].storageDType as 'f32',
          options: members[0].assignment.options,
          signal: this.signal,
        }),
      );
      for (const m of members) {
        const result = refined.results.get(m.role);
        if (!result) throw new InvalidArgumentError(`${m.name}: ${method.name} refined the block but returned no result for it`);
        m.result = result;
        m.weight = m.storageDType === 'f32' ? result.weight : await (await result.weight.toAsync(m.storageDType as 'f16', { signal: this.signal })).toAsync('f32', { signal: this.signal });
        block.linears[m.role].weight = m.weight;
        m.entry.sparsity = (await countZerosAsync(m.weight, this.signal)) / m.weight.numel;
        if (result.quantized) m.entry.bitsPerWeight = result.storedBitsPerWeight ?? bitsPerWeight(result.quantized, m.storageDType);
        m.entry.details = { ...m.entry.details, ...refined.details };
        m.entry.seconds += (performance.now() - t) / 1000 / members.length;
      }
    }
    for (const p of pending) await this.timed('io', () => this.writer.writeLinear(p.name, p.result, p.weight));
  }

  private async compressLinear(block: DecoderBlock, role: string, name: string, assignment: Assignment, stats: LinearStatistics | undefined): Promise<LinearReportEntry> {
    const startedAt = performance.now();
    const signal = this.signal;
    const original = block.linears[role].weight;
    if (stats?.hessian && !Number.isFinite(await dotAsync(stats.hessian, stats.hessian, { signal }))) {
      throw new NonFiniteError(`the calibration inputs of ${name} (block ${block.index}) hold NaN or infinite values although every weight is finite: the activations overflowed float32`);
    }
    const storageDType = await this.writer.storageDType(name);
    const run = await this.timed('compress', async () => this.runMethod(name, await original.cloneAsync({ signal }), assignment, stats, storageDType));
    return this.finish(block, role, name, assignment, original, stats, run, storageDType, startedAt);
  }

  /** A linear-scope method (or its declared fallback, where no calibration token reached the linear). */
  private async runMethod(name: string, weight: Tensor, assignment: Assignment, stats: LinearStatistics | undefined, storageDType: string): Promise<MethodRun> {
    const needs = needsWith(assignment.method, assignment.options);
    const starved = Boolean(needs.hessian || needs.inputSquares || needs.gradients) && (!stats || stats.tokens === 0);
    const method = starved ? assignment.fallback : assignment.method;
    if (!method) throw new InvalidArgumentError(`${name}: no calibration token reached this linear and ${assignment.method.name} declares no fallback; give the stage a 'fallback' (e.g. magnitude)`);
    const options = starved ? method.parseOptions({}, 'fallback') : assignment.options;
    try {
      const result = await method.compress!({ name, weight, pattern: assignment.pattern, quantization: method.quantizes(options) ? assignment.quantization : undefined, storageDType: storageDType as 'f32', stats: starved ? undefined : stats, options, signal: this.signal });
      return { result, method, fellBack: starved };
    } catch (error) {
      throw namedAfter(error, `${name} (${method.name})`);
    }
  }

  /** A group-scope method on one structural group: every member with its own statistics, at once. */
  private async compressGroup(block: DecoderBlock, group: StructuralGroup, members: { role: string; name: string }[], assignment: Assignment, statsOf: (role: string) => LinearStatistics | undefined): Promise<LinearReportEntry[]> {
    const startedAt = performance.now();
    const signal = this.signal;
    const storageDType = await this.writer.storageDType(members[0].name);
    const originals = new Map(members.map((m) => [m.role, block.linears[m.role].weight]));
    const results = await this.timed('compress', async () =>
      assignment.method.compressGroup!({
        group: group.name,
        linears: await Promise.all(members.map(async (m) => ({ role: m.role, name: m.name, weight: await originals.get(m.role)!.cloneAsync({ signal }), stats: statsOf(m.role) }))),
        attention: group.name === 'attention' ? attentionGeometry(block.config) : undefined,
        block: block.index,
        pattern: this.groupSparsity.has(`${block.index}:${group.name}`) ? { kind: 'unstructured', sparsity: this.groupSparsity.get(`${block.index}:${group.name}`)! } : assignment.pattern,
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
      out.push(await this.finish(block, m.role, m.name, assignment, originals.get(m.role)!, statsOf(m.role), { result, method: assignment.method, fellBack: false }, storageDType, startedAt));
    }
    return out;
  }

  /** After the method: round to the grid where it did not quantize, round to the stored dtype, measure, write, report. */
  private async finish(block: DecoderBlock, role: string, name: string, assignment: Assignment, original: Tensor, stats: LinearStatistics | undefined, run: MethodRun, storageDType: string, startedAt: number): Promise<LinearReportEntry> {
    const signal = this.signal;
    let result = run.result;
    let quantizer: string | undefined = assignment.quantization && (result.quantized || result.floatQuantized) ? run.method.name : undefined;
    if (assignment.quantization && !result.quantized && !result.floatQuantized) {
      // The stage's number format, where its method did not quantize (a fallback ran, or the method only prunes).
      if (assignment.method.floatFormat?.(assignment.options) === 'fp8-e4m3') {
        const rounded = await roundToFp8E4m3(await result.weight.cloneAsync({ signal }), storageDType, signal);
        result = { ...result, weight: rounded.weight, floatQuantized: rounded.floatQuantized };
        quantizer = `fp8 after ${run.method.name}`;
      } else {
        const rounded = await roundToNearest(result.weight, assignment.quantization, storageDType, signal);
        result = { ...result, weight: rounded.weight, quantized: rounded.quantized };
        quantizer = `rtn after ${run.method.name}`;
      }
    }
    // Round to the stored dtype now, so the next block sees exactly the weights that are saved.
    const weight = storageDType === 'f32' ? result.weight : await (await result.weight.toAsync(storageDType as 'f16', { signal })).toAsync('f32', { signal });
    let error: number | null = null;
    if (this.plan.measure !== false && stats?.hessian && stats.tokens > 0) error = await this.timed('error', () => relativeError(original, weight, stats.hessian!, signal));
    block.linears[role].weight = weight;
    const hook = this.options.testHook;
    if (!this.pending) {
      if (hook) this.writer.midWrite = () => hook({ at: 'write', block: block.index, name });
      await this.timed('io', () => this.writer.writeLinear(name, result, weight));
    }
    await hook?.({ at: 'linear', block: block.index, name });
    const q = assignment.quantization;
    const entry: LinearReportEntry = {
      name,
      method: assignment.method.name,
      pattern: assignment.pattern ? formatPattern(assignment.pattern) : '-',
      shape: [...weight.shape],
      sparsity: (await countZerosAsync(weight, signal)) / weight.numel,
      ...(q ? { bits: q.bits, groupSize: q.groupSize, symmetric: q.symmetric, ...(q.actOrder ? { actOrder: q.actOrder } : {}), quantizer } : {}),
      bitsPerWeight: result.storedBitsPerWeight ?? (result.quantized
        ? bitsPerWeight(result.quantized, storageDType) + outlierBits(result.outliers?.blockCols.numel ?? 0, weight.shape[0]) / weight.numel
        : result.floatQuantized
          ? 8 + dtypeBits(storageDType) / weight.shape[1]
          : dtypeBits(storageDType)),
      ...(result.floatQuantized ? { floatFormat: result.floatQuantized.format } : {}),
      ...(result.outliers ? { outliers: result.outliers.blockCols.numel } : {}),
      relativeError: error,
      seconds: (performance.now() - startedAt) / 1000,
      ...(result.details || run.fellBack ? { details: { ...result.details, ...(run.fellBack ? { fallback: `${run.method.name}: no calibration tokens reached this linear` } : {}) } } : {}),
    };
    this.pending?.push({ name, role, assignment, result, weight, storageDType, entry, fellBack: run.fellBack });
    return entry;
  }

  private async report(before: PerplexityResult | undefined, after: PerplexityResult | undefined): Promise<CompressReport> {
    const { options, model, plan } = this;
    let linearParameters = 0;
    for (const l of plan.linears) {
      const shape = (await model.checkpoint.info(`${l.name}.weight`)).shape;
      linearParameters += shape[0] * shape[1];
    }
    return {
      model: options.model,
      out: options.out,
      format: plan.format,
      recipe: options.recipe,
      calibration: plan.windows.length > 0 ? { windows: plan.windows.length, seqLen: plan.seqLen, seed: plan.settings.seed, tokens: plan.windows.length * plan.seqLen } : null,
      linears: this.entries,
      totals: {
        ...summarize(this.entries),
        linearParameters,
        seconds: (performance.now() - this.started) / 1000,
        peakRssBytes: peakRssBytes(),
        resumedAtBlock: this.startBlock > 0 ? this.startBlock : null,
        stageSeconds: Object.fromEntries(Object.entries(this.stageSeconds).map(([k, v]) => [k, Number(v.toFixed(3))])) as CompressReport['totals']['stageSeconds'],
      },
      ...(before && after ? { perplexityBefore: before.perplexity, perplexityAfter: after.perplexity, eval: { before, after } } : {}),
      ...(this.groupSparsity.size > 0
        ? {
            allocation: {
              groups: [...this.groupSparsity].map(([key, sparsity]) => ({ block: Number(key.split(':')[0]), group: key.slice(key.indexOf(':') + 1), sparsity })),
              // A group's clamp is in each of its linears' details: once per group here.
              notes: [...this.allocationNotes, ...new Set(this.entries.flatMap((e) => (typeof e.details?.clamped === 'string' ? [e.details.clamped] : [])))],
            },
          }
        : {}),
    };
  }
}

/** A block's head layout, as group methods see it. */
function attentionGeometry(config: { heads: number; kvHeads: number; headDim: number }): AttentionGeometry {
  return { heads: config.heads, kvHeads: config.kvHeads, headDim: config.headDim };
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
