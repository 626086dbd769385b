// The interface every compression method implements. The pipeline gathers the statistics a method
// declares it needs, hands it one linear layer at a time, and knows nothing about the method's math.
import { InvalidArgumentError } from '../errors.js';
import type { Tensor } from '../tensor.js';
import type { SparsityPattern } from './pattern.js';

/** Calibration statistics of one linear layer's inputs X [T, in]. */
export interface LinearStatistics {
  /** H = (2/T)·XᵀX, f32 [in, in]. Shared by the linears that read the same input: treat as read-only. */
  hessian: Tensor;
  /** Calibration tokens T behind H. */
  tokens: number;
}

export interface CompressRequest<Options> {
  /** The weight's module name (e.g. model.layers.3.mlp.down_proj), for errors. */
  name: string;
  /** f32 [out, in]; the method owns it and may overwrite it. */
  weight: Tensor;
  pattern: SparsityPattern;
  /** Present whenever calibration data was given; required by methods with needsCalibration. */
  stats?: LinearStatistics;
  options: Options;
  signal?: AbortSignal;
}

export interface CompressResult {
  /** f32 [out, in], the compressed weight (pruned entries are exact zeros). */
  weight: Tensor;
  /** Method-specific facts for the report (damping used, dead inputs, …). */
  details?: Record<string, number | string | boolean>;
}

export interface CompressionMethod<Options = Record<string, unknown>> {
  readonly name: string;
  readonly summary: string;
  readonly needsCalibration: boolean;
  /** Validates a recipe's `options` object (unknown keys are errors); `where` names it in messages. */
  parseOptions(raw: Record<string, unknown>, where: string): Options;
  compress(request: CompressRequest<Options>): Promise<CompressResult>;
}

/** Rejects option keys a method does not know, naming the recipe field. */
export function rejectUnknownOptions(raw: Record<string, unknown>, known: readonly string[], where: string, method: string): void {
  for (const key of Object.keys(raw)) {
    if (!known.includes(key)) {
      throw new InvalidArgumentError(`${where}: ${method} has no option '${key}'${known.length ? ` (options: ${known.join(', ')})` : ' (it takes none)'}`);
    }
  }
}
