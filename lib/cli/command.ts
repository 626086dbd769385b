// What every CLI command shares: its usage text (printed by `sparq <command> --help`), argument parsing
// that names the bad option, and the small parsers for numeric flags.
import { InvalidArgumentError, UsageError } from '../errors.js';

export interface Command {
  name: string;
  /** The usage block: the synopsis line(s), then what it does, indented. */
  usage: string;
  run(args: string[]): Promise<void>;
}

/** `sparq <command> --help` or `-h` anywhere among its arguments. */
export function wantsHelp(args: readonly string[]): boolean {
  return args.includes('--help') || args.includes('-h');
}

/**
 * Runs a command's strict node:util parseArgs call; an unknown or malformed flag becomes a UsageError
 * (exit 2) naming it and pointing at --help.
 */
export function parseFlags<T>(command: string, parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    throw new UsageError(`${command}: ${(error as Error).message} (sparq ${command} --help lists its options)`);
  }
}

export function positiveInteger(command: string, name: string, value: string | undefined, min = 1): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < min || value.trim() === '') throw new InvalidArgumentError(`${command}: --${name} must be an integer >= ${min}, got '${value}'`);
  return n;
}

export function positiveNumber(command: string, name: string, value: string | undefined, min = 0): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n) || n < min || value.trim() === '') throw new InvalidArgumentError(`${command}: --${name} must be a number >= ${min}, got '${value}'`);
  return n;
}

/** Runs `work` with Ctrl-C turned into an AbortSignal; the handler is removed afterwards. */
export async function withInterrupt<T>(work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  const interrupt = () => controller.abort();
  process.once('SIGINT', interrupt);
  try {
    return await work(controller.signal);
  } finally {
    process.off('SIGINT', interrupt);
  }
}
