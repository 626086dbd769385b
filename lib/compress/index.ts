// The compression methods by name.
import { InvalidArgumentError } from '../errors.js';
import { activationAtoms } from './activation-atoms.js';
import { alps } from './alps.js';
import { elsa } from './elsa.js';
import { expertDrop } from './expert-drop.js';
import type { ExpertPruningMethod } from './expert-pruning.js';
import { heapr } from './heapr.js';
import { gptq } from './gptq.js';
import { gqsa } from './gqsa.js';
import { gwq } from './gwq.js';
import { hwpq } from './hwpq.js';
import { magnitude } from './magnitude.js';
import { magnitudeSp } from './magnitude-sp.js';
import { rtn } from './rtn.js';
import type { CompressionMethod } from './method.js';
import { sparsegpt } from './sparsegpt.js';
import { structprune } from './structprune.js';
import { wanda } from './wanda.js';
import { wandaSp } from './wanda-sp.js';

export const METHODS: Record<string, CompressionMethod<any>> = { magnitude, wanda, sparsegpt, alps, elsa, rtn, gptq, gwq, hwpq, gqsa, 'magnitude-sp': magnitudeSp, 'wanda-sp': wandaSp, structprune };

/** Methods that prune routed experts as one model-level decision (expert-pruning.ts). */
export const EXPERT_METHODS: Record<string, ExpertPruningMethod<any>> = { heapr, 'expert-drop': expertDrop, 'activation-atoms': activationAtoms };

export function getExpertMethod(name: string, where = 'method'): ExpertPruningMethod<any> {
  const method = Object.hasOwn(EXPERT_METHODS, name) ? EXPERT_METHODS[name] : undefined;
  if (!method) throw new InvalidArgumentError(`${where}: unknown expert-pruning method '${name}' (available: ${Object.keys(EXPERT_METHODS).join(', ')})`);
  return method;
}

export function getMethod(name: string, where = 'method'): CompressionMethod<any> {
  const method = Object.hasOwn(METHODS, name) ? METHODS[name] : undefined;
  if (!method && Object.hasOwn(EXPERT_METHODS, name)) {
    throw new InvalidArgumentError(`${where}: ${name} prunes routed experts as one model-level decision, not layer by layer in a recipe; run it with sparq prune --method ${name} (or pruneExperts)`);
  }
  if (!method) throw new InvalidArgumentError(`${where}: unknown method '${name}' (available: ${Object.keys(METHODS).join(', ')})`);
  return method;
}

export { needsCalibration, type CompressedLinear, type CompressionMethod, type CompressRequest, type LinearStatistics, type MethodScope, type ScaleTuning, type StatisticsNeeds } from './method.js';
export { checkPatternFits, countZeros, formatPattern, keptCount, parsePattern, patternSparsity, type SparsityPattern } from './pattern.js';
export { bitsPerWeight, describeScheme, parseQuantization, QUANTIZATION_BITS, roundToNearest, type ActOrder, type QuantizationScheme, type QuantizedWeight } from './quantizer.js';
export { planExpertPruning, type ExpertDecision, type ExpertPlan, type ExpertPruningMethod, type ExpertRanking, type ExpertStatistics } from './expert-pruning.js';
