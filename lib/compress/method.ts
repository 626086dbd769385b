// The interface every compression method implements. A method declares what it needs (statistics of its
// linears' calibration inputs) and its scope (one linear at a time, or a structural group of linears);
// the pipeline gathers exactly that, hands the method its weights, and knows nothing about its math.
// A method returns compressed linears: the dense f32 weight the next block runs on, plus whatever the
// writers need to store it compactly (mask, integer codes and their grid, kept rows/columns).
import { InvalidArgumentError } from '../errors.js';
import type { Tensor } from '../tensor/tensor.js';
import type { SparsityPattern } from './pattern.js';
import type { QuantizationScheme, QuantizedWeight } from './quantizer.js';

/** Statistics of a linear's calibration inputs X [T, in] that a method can ask for. */
export interface StatisticsNeeds {
  /** H = (2/T)·XᵀX, [in, in] (SparseGPT, GPTQ, ALPS). */
  hessian?: boolean;
  /** Σ_t x_tj², [in] (Wanda's ‖X_j‖²): O(T·in) instead of the Hessian's O(T·in²). */
  inputSquares?: boolean;
}

/** Calibration statistics of one linear layer's inputs X [T, in]. */
export interface LinearStatistics {
  /** H = (2/T)·XᵀX, f32 [in, in]; present when the method asked for it. Shared by the linears that read
   * the same input: treat as read-only. */
  hessian?: Tensor;
  /** Σ_t x_tj², f64 values in an f32 tensor [in]; present when the method asked for it. */
  inputSquares?: Tensor;
  /** Calibration tokens T behind the statistics (0: no token reached this linear, e.g. an idle expert). */
  tokens: number;
}

/**
 * What a method may be handed at once: `linear`, one weight; `group`, the linears of one structural
 * group of a block that share structure (attention: q/k/v/o; an MLP's gate/up/down or fc1/fc2; one
 * expert's gate/up/down), for methods that remove rows/columns across them.
 */
export type MethodScope = 'linear' | 'group';

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
  /** Structural change, for methods that remove whole rows (outputs) or columns (inputs). */
  structure?: { keptRows?: Int32Array; keptColumns?: Int32Array };
  /** The method's own estimate of the reconstruction loss it added, where it has one. */
  predictedLoss?: number;
  /** Method-specific facts for the report (damping used, dead inputs, …). */
  details?: Record<string, number | string | boolean>;
}

export interface CompressionMethod<Options = Record<string, unknown>> {
  readonly name: string;
  readonly summary: string;
  /** Calibration statistics the method needs; none means it is data-free. */
  readonly needs: StatisticsNeeds;
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
  /** Scope 'linear': compresses one linear. */
  compress?(request: CompressRequest<Options>): Promise<CompressedLinear>;
  /** Scope 'group': compresses the linears of one structural group together (results by role). */
  compressGroup?(request: GroupRequest<Options>): Promise<Map<string, CompressedLinear>>;
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
  return Boolean(method.needs.hessian || method.needs.inputSquares);
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
