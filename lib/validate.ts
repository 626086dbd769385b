// Argument checks for public functions. Each error names the parameter, what was expected and what was
// received.
import { InvalidArgumentError } from './errors.js';

export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return `array of length ${value.length}`;
  if (ArrayBuffer.isView(value)) return value.constructor.name;
  if (typeof value === 'object') return (value as object).constructor?.name ?? 'object';
  if (typeof value === 'string') return JSON.stringify(value);
  return `${typeof value} ${String(value)}`;
}

export function invalid(param: string, expected: string, received: unknown): never {
  throw new InvalidArgumentError(`${param}: expected ${expected}, received ${describe(received)}`);
}

export function checkInteger(param: string, value: unknown, min = -Infinity, max = Infinity): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    const range = max === Infinity ? `>= ${min}` : `in ${min}..${max}`;
    invalid(param, `an integer ${range}`, value);
  }
  return value;
}

export function checkNumber(param: string, value: unknown, options: { min?: number; finite?: boolean } = {}): number {
  const { min = -Infinity, finite = true } = options;
  if (typeof value !== 'number' || Number.isNaN(value) || (finite && !Number.isFinite(value)) || value < min) {
    invalid(param, `a ${finite ? 'finite ' : ''}number${min > -Infinity ? ` >= ${min}` : ''}`, value);
  }
  return value;
}

export function checkBoolean(param: string, value: unknown): boolean {
  if (typeof value !== 'boolean') invalid(param, 'a boolean', value);
  return value;
}

export function checkOneOf<T extends string>(param: string, value: unknown, allowed: readonly T[]): T {
  if (typeof value !== 'string' || !allowed.includes(value as T)) invalid(param, `one of ${allowed.join(', ')}`, value);
  return value as T;
}
