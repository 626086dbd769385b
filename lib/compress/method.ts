// The interface every compression method implements. A method declares what it needs (statistics of its
// linears' calibration inputs) and its scope (one linear at a time, or a structural group of linears);
// the pipeline gathers exactly that, hands the method its weights, and knows nothing about its math.
// A method returns compressed linears: the dense f32 weight the next block runs on, plus whatever the
// writers need to store it compactly (mask, integer codes and their grid, kept rows/columns).
import { InvalidArgumentError } from '../errors.js';
import type { BsrWeight } from '../tensor/packed.js';
import type { DecoderModel } from '../models/decoder.js';
import type { Tensor } from '../tensor/tensor.js';
import type { SparsityPattern } from './pattern.js';
import type { FloatQuantizedWeight, QuantizationScheme, QuantizedWeight } from './quantizer.js';

/** Statistics of a linear's calibration inputs X [T, in] that a method can ask for. */
export interface StatisticsNeeds {
  /** H = (2/T)·XᵀX, [in, in] (SparseGPT, GPTQ, ALPS). */
  hessian?: boolean;
  /** Σ_t x_tj², [in] (Wanda's ‖X_j‖²): O(T·in) instead of the Hessian's O(T·in²). */
  inputSquares?: boolean;
  /**
   * ∂L/∂W of the language-model loss on the calibration windows (GWQ): the driver runs one streamed
   * backward pass before the layer-wise loop and hands each linear's gradient to the method's
   * `summarizeGradient`, keeping only the summary it returns (so memory stays bounded).
   */
  gradients?: boolean;
  /**
   * With `gradients`: one backward pass per gradient window instead of one over all of them as a batch,
   * so a method can aggregate per-window gradients (Σ_w g_w², Σ_w |g_w|) where the batch's gradient
   * would cancel their signs. `summarizeGradient` is then called once per pass, folding its summary.
   */
  gradientsPerWindow?: boolean;
  /** The calibration text itself as one token stream (model-scope methods that train on it). */
  trainingText?: boolean;
}

/** Calibration statistics of one linear layer's inputs X [T, in]. */
export interface LinearStatistics {
  /** H = (2/T)·XᵀX, f32 [in, in]; present when the method asked for it. Shared by the linears that read
   * the same input: treat as read-only. */
  hessian?: Tensor;
  /** Σ_t x_tj², f64 values in an f32 tensor [in]; present when the method asked for it. */
  inputSquares?: Tensor;
  /** What the method's `summarizeGradient` kept of this linear's ∂L/∂W; present when it asked for gradients. */
  gradient?: Tensor;
  /** Calibration tokens T behind the statistics (0: no token reached this linear, e.g. an idle expert). */
  tokens: number;
}

/** One linear's loss gradient, handed to a method's `summarizeGradient` during the gradient pass. */
export interface GradientRequest<Options> {
  name: string;
  /** f32 [out, in], ∂L/∂W of the mean next-token loss over this pass's windows (lent: copy what you keep). */
  gradient: Tensor;
  options: Options;
  signal?: AbortSignal;
  /** This pass (0-based) and how many there are: one (all windows as one batch; the default when absent),
   * or one per window when some method asked for `gradientsPerWindow`. */
  pass?: number;
  passes?: number;
  /** What this linear's previous call returned (absent on the first pass): the summary to fold into. */
  previous?: Tensor;
}

/**
 * What a method may be handed at once: `linear`, one weight; `group`, the linears of one structural
 * group of a block that share structure (attention: q/k/v/o; an MLP's gate/up/down or fc1/fc2; one
 * expert's gate/up/down), for methods that remove rows/columns across them; `model`, every parameter of
 * the model in memory at once, for methods that optimise the model's own loss (Elsa).
 */
export type MethodScope = 'linear' | 'group' | 'model';

export interface CompressRequest<Options> {
  /** The weight's module name (e.g. model.layers.3.mlp.down_proj), for errors. */
  name: string;
  /** f32 [out, in]; the method owns it and may overwrite it. */
  weight: Tensor;
  /** The sparsity to reach (absent: the method only quantizes). */
  pattern?: SparsityPattern;
  /** The grid to quantize to, for methods that quantize (quantizes(options) true). */
  quantization?: QuantizationScheme;
  /** The dtype the weights and scales are stored in (default f32); quantization rounds scales to it first. */
  storageDType?: 'f32' | 'f16' | 'bf16' | 'f64';
  /** Present for methods that need calibration, unless no token reached the linear (see `fallback`). */
  stats?: LinearStatistics;
  options: Options;
  signal?: AbortSignal;
}

/** A compressed linear layer. */
export interface CompressedLinear {
  /** f32 [out, in]: the weight the model computes with from now on (pruned entries exact zeros,
   * quantized entries dequantized). */
  weight: Tensor;
  /** u8 [out, in], 1 = kept, where the method pruned. */
  mask?: Tensor;
  /** The integer codes and their grid, where the method quantized. */
  quantized?: QuantizedWeight;
  /** Floating-point quantization instead of integer codes (HWPQ's FP8): `weight` holds the decoded values
   * codes·scale; codes u8 [out, in] (E4M3 bit patterns, lib/tensor/fp8.ts); scales f32 [out, 1] (per output
   * channel), exactly representable in the storage dtype. */
  floatQuantized?: FloatQuantizedWeight;
  /** Weights kept apart from the codes (GWQ's 16-bit outliers): CSR, f16 values, added to the decoded codes
   * (whose value at each outlier is 0). */
  outliers?: BsrWeight;
  /** Structural change, for methods that remove whole rows (outputs) or columns (inputs). */
  structure?: { keptRows?: Int32Array; keptColumns?: Int32Array };
  /**
   * Bits per weight as the method's own storage format holds it, where that is not dense codes plus
   * scales (GQSA: BSR blocks of codes with a scale and a column index each); the report uses it.
   */
  storedBitsPerWeight?: number;
  /** The method's own estimate of the reconstruction loss it added, where it has one. */
  predictedLoss?: number;
  /** Method-specific facts for the report (damping used, dead inputs, …). */
  details?: Record<string, number | string | boolean>;
}

export interface CompressionMethod<Options = Record<string, unknown>> {
  readonly name: string;
  readonly summary: string;
  /** Calibration statistics the method may need (the union over its options); none means it is data-free. */
  readonly needs: StatisticsNeeds;
  /** What it needs with these options, where that is less than `needs` (e.g. no Hessian for an RTN base). */
  needsFor?(options: Options): StatisticsNeeds;
  /** The floating-point format it quantizes to with these options (results in `floatQuantized`), if any. */
  floatFormat?(options: Options): string | undefined;
  /** Whether its results carry outliers beside the codes (CompressedLinear.outliers) with these options. */
  keepsOutliers?(options: Options): boolean;
  /** Methods that need gradients: what to keep of one linear's ∂L/∂W (e.g. the positions of its largest entries). */
  summarizeGradient?(request: GradientRequest<Options>): Promise<Tensor>;
  readonly scope: MethodScope;
  /** Whether the method prunes (a recipe stage with a sparsity needs one that does). */
  readonly prunes: boolean;
  /** Whether a sparsity is required (pruning is the method's whole job). */
  readonly requiresSparsity: boolean;
  /** Whether the method quantizes itself with these options; if not, the pipeline rounds its result to
   * the stage's grid afterwards (prune, then round to nearest). */
  quantizes(options: Options): boolean;
  /**
   * The method that compresses a linear no calibration token reached (an idle expert): a data-free
   * method's name. Absent for data-free methods.
   */
  readonly fallback?: string;
  /** Validates a recipe's `options` object (unknown keys are errors); `where` names it in messages. */
  parseOptions(raw: Record<string, unknown>, where: string): Options;
  /**
   * Refuses, before any work is done, a linear the method cannot compress with this pattern and grid
   * (a typed error naming `name`); optional.
   */
  checkLinear?(name: string, shape: readonly number[], pattern: SparsityPattern | undefined, quantization: QuantizationScheme | undefined): void;
  /** Scope 'linear': compresses one linear. */
  compress?(request: CompressRequest<Options>): Promise<CompressedLinear>;
  /** Scope 'group': compresses the linears of one structural group together (results by role). */
  compressGroup?(request: GroupRequest<Options>): Promise<Map<string, CompressedLinear>>;
  /** Scope 'model': compresses the whole model in memory (see ModelRequest). */
  compressModel?(request: ModelRequest<Options>): Promise<ModelResult>;
  /**
   * Whether, with these options, the method refines each decoder block as a whole once all of its
   * linears are compressed (block-wise reconstruction); the pipeline then keeps the dense block's outputs
   * and calls `refineBlock` before writing the block.
   */
  refinesBlocks?(options: Options): boolean;
  refineBlock?(request: BlockRefineRequest<Options>): Promise<BlockRefineResult>;
  /**
   * Whether, with these options, the method's quantization scales are trained end to end on the
   * language-model loss after the layer-wise pass (codes frozen; pipeline/tune-scales.ts), and how.
   */
  tunesScales?(options: Options): ScaleTuning | undefined;
  /**
   * Group-scope methods that spread the stage's sparsity over every group of the model (structured
   * pruning: a fraction of all decoder-linear parameters, split across layers) instead of applying it to
   * each group alike. The pipeline calls `allocate` once before compressing; where `needsScores` says so,
   * it first runs a scoring pass over the dense model (each block's groups handed to `score` with their
   * statistics, then the block's dense outputs propagated), so a global decision costs one extra forward
   * pass and memory stays one block. Each group is then compressed with its allocated sparsity.
   */
  readonly allocation?: {
    needsScores(options: Options): boolean;
    /** Per-unit importance scores of one group of the dense model (what `allocate` reads back). */
    score(request: GroupRequest<Options>): Promise<number[]>;
    /** Each group's sparsity (fraction of its parameters to remove), in the order given; `report` notes clamps. */
    allocate(groups: AllocationGroup[], sparsity: number, options: Options): { sparsities: number[]; notes: string[] };
  };
}

/** One structural group of one block, as the allocation sees it before compressing. */
export interface AllocationGroup {
  block: number;
  group: string;
  /** Its linears' weight shapes by role. */
  shapes: Record<string, readonly number[]>;
  attention?: AttentionGeometry;
  /** From the scoring pass, where the method asked for one. */
  scores?: number[];
}

/** The head layout of an attention group (a structurally pruned layer may have fewer heads than config.json's top level). */
export interface AttentionGeometry {
  heads: number;
  kvHeads: number;
  headDim: number;
}

/** End-to-end training of quantization scales: Adam steps on log-scales, lr, calibration windows per step. */
export interface ScaleTuning {
  steps: number;
  lr: number;
  batch: number;
}

/**
 * A decoder block's reconstruction objective for block-wise refinement: the block run with the given
 * weights for some of its linears (by role; the others as they are) on calibration batch `batch`, against
 * the dense block's outputs Y on the same inputs: ‖block(X) − Y‖² / ‖Y‖².
 */
export interface BlockReconstruction {
  /** Calibration windows. */
  readonly windows: number;
  /**
   * The loss on one chunk of `windowsPerStep` calibration windows (step s takes the s-th chunk, cycling)
   * and its gradient with respect to each given weight.
   */
  lossAndGradients(weights: ReadonlyMap<string, Tensor>, step: number, windowsPerStep: number): Promise<{ loss: number; gradients: Map<string, Tensor> }>;
  /** The loss over every batch together (Σ‖·‖² / Σ‖Y‖²), forward only. */
  loss(weights: ReadonlyMap<string, Tensor>): Promise<number>;
}

export interface BlockRefineRequest<Options> {
  block: number;
  /** The linears of the block this method compressed, by role, with the method's results. */
  linears: Map<string, { name: string; result: CompressedLinear }>;
  reconstruction: BlockReconstruction;
  storageDType: 'f32' | 'f16' | 'bf16' | 'f64';
  options: Options;
  signal?: AbortSignal;
}

export interface BlockRefineResult {
  /** The refined result of every linear of the request, by role. */
  results: Map<string, CompressedLinear>;
  /** Facts for the report (added to each linear's details). */
  details?: Record<string, number | string | boolean>;
}

/** A method's resumable state: named tensors (any dtype) and a JSON-able record. */
export interface MethodCheckpoint {
  tensors: Map<string, Tensor>;
  meta: Record<string, unknown>;
}

/** What a model-scope method is handed: the model, all its parameters, and which linears to constrain. */
export interface ModelRequest<Options> {
  model: DecoderModel;
  /** Every parameter, f32, by checkpoint name; the method updates them in place. */
  parameters: Map<string, Tensor>;
  /** The linears to compress (their `<module>.weight` tensors) with their patterns. */
  linears: { name: string; weight: string; pattern: SparsityPattern }[];
  /** The calibration text as one token stream. */
  tokens: Int32Array;
  /** A window length the user asked for (--seq-len), already clamped to the model's context. */
  seqLen?: number;
  /** Calibration seed (--seed). */
  seed: number;
  options: Options;
  /** The state an interrupted run saved last, when resuming. */
  resume?: MethodCheckpoint;
  /** Stores a resumable state durably (the pipeline keeps only the latest). */
  saveCheckpoint(checkpoint: MethodCheckpoint): Promise<void>;
  /** step/steps and a short status; `line` is a log line worth keeping (e.g. once per interval). */
  onProgress?(progress: { step: number; steps: number; stage: string; line?: string }): void;
  signal?: AbortSignal;
}

export interface ModelResult {
  /** Names of the parameters the method changed (only these are written). */
  changed: string[];
  /** Per compressed linear (module name): facts for its report entry. */
  linearDetails?: Map<string, Record<string, number | string | boolean>>;
  /** The run as a whole (budget, losses, a per-interval log …), for the report. */
  details: Record<string, unknown>;
}

/** One linear of a group request. */
export interface GroupMember {
  /** Its role in the block (q, gate, expert.3.down, …). */
  role: string;
  name: string;
  /** f32 [out, in]; the method owns it. */
  weight: Tensor;
  stats?: LinearStatistics;
}

export interface GroupRequest<Options> {
  /** The structural group (attention, mlp, expert.<e>) of one block. */
  group: string;
  /** Every linear of the group, in the group's order (models/layouts.ts structuralGroups). */
  linears: GroupMember[];
  /** The attention group's head layout (attention groups only). */
  attention?: AttentionGeometry;
  /** The block's index (for messages). */
  block?: number;
  /** The sparsity to reach; for methods with `allocation`, this group's allocated share. */
  pattern?: SparsityPattern;
  quantization?: QuantizationScheme;
  storageDType?: 'f32' | 'f16' | 'bf16' | 'f64';
  options: Options;
  signal?: AbortSignal;
}

/** Whether a method needs calibration data at all. */
export function needsCalibration(method: CompressionMethod<any>): boolean {
  return Boolean(method.needs.hessian || method.needs.inputSquares || method.needs.gradients || method.needs.trainingText);
}

/** What a method needs with these options. */
export function needsWith<Options>(method: CompressionMethod<Options>, options: Options): StatisticsNeeds {
  return method.needsFor?.(options) ?? method.needs;
}

/** Rejects option keys a method does not know, naming the recipe field. */
export function rejectUnknownOptions(raw: Record<string, unknown>, known: readonly string[], where: string, method: string): void {
  for (const key of Object.keys(raw)) {
    if (!known.includes(key)) {
      throw new InvalidArgumentError(`${where}: ${method} has no option '${key}'${known.length ? ` (options: ${known.join(', ')})` : ' (it takes none)'}`);
    }
  }
}

/** The statistics a method was promised, or an error naming the linear (a pipeline bug or a misuse of the API). */
export function requireStatistic<K extends 'hessian' | 'inputSquares'>(request: CompressRequest<unknown>, method: string, statistic: K): Tensor {
  const value = request.stats?.[statistic];
  if (!value) throw new InvalidArgumentError(`${request.name}: ${method} needs calibration data (${statistic === 'hessian' ? 'the input Hessian' : 'the input norms'})`);
  return value;
}
