// The compression methods by name.
import { InvalidArgumentError } from '../errors.js';
import { alps } from './alps.js';
import { magnitude } from './magnitude.js';
import type { CompressionMethod } from './method.js';
import { sparsegpt } from './sparsegpt.js';
import { wanda } from './wanda.js';

export const METHODS: Record<string, CompressionMethod<any>> = { magnitude, wanda, sparsegpt, alps };

export function getMethod(name: string, where = 'method'): CompressionMethod<any> {
  const method = Object.hasOwn(METHODS, name) ? METHODS[name] : undefined;
  if (!method) throw new InvalidArgumentError(`${where}: unknown method '${name}' (available: ${Object.keys(METHODS).join(', ')})`);
  return method;
}

export type { CompressionMethod, CompressRequest, CompressResult, LinearStatistics } from './method.js';
export { checkPatternFits, countZeros, formatPattern, parsePattern, patternSparsity, type SparsityPattern } from './pattern.js';
