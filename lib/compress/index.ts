// The compression methods by name.
import { InvalidArgumentError } from '../errors.js';
import { alps } from './alps.js';
import { gptq } from './gptq.js';
import { magnitude } from './magnitude.js';
import { magnitudeSp } from './magnitude-sp.js';
import { rtn } from './rtn.js';
import type { CompressionMethod } from './method.js';
import { sparsegpt } from './sparsegpt.js';
import { structprune } from './structprune.js';
import { wanda } from './wanda.js';
import { wandaSp } from './wanda-sp.js';

export const METHODS: Record<string, CompressionMethod<any>> = { magnitude, wanda, sparsegpt, alps, rtn, gptq, 'magnitude-sp': magnitudeSp, 'wanda-sp': wandaSp, structprune };

export function getMethod(name: string, where = 'method'): CompressionMethod<any> {
  const method = Object.hasOwn(METHODS, name) ? METHODS[name] : undefined;
  if (!method) throw new InvalidArgumentError(`${where}: unknown method '${name}' (available: ${Object.keys(METHODS).join(', ')})`);
  return method;
}

export { needsCalibration, type CompressedLinear, type CompressionMethod, type CompressRequest, type LinearStatistics, type MethodScope, type StatisticsNeeds } from './method.js';
export { checkPatternFits, countZeros, formatPattern, keptCount, parsePattern, patternSparsity, type SparsityPattern } from './pattern.js';
export { bitsPerWeight, describeScheme, parseQuantization, QUANTIZATION_BITS, roundToNearest, type ActOrder, type QuantizationScheme, type QuantizedWeight } from './quantizer.js';
