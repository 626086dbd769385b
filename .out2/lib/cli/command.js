// What every CLI command shares: its usage text (printed by `sparq <command> --help`), argument parsing
// that names the bad option, and the small parsers for numeric flags.
import { InvalidArgumentError, UsageError } from '../errors.js';
/** `sparq <command> --help` or `-h` anywhere among its arguments. */
export function wantsHelp(args) {
    return args.includes('--help') || args.includes('-h');
}
/**
 * Runs a command's strict node:util parseArgs call; an unknown or malformed flag becomes a UsageError
 * (exit 2) naming it and pointing at --help.
 */
export function parseFlags(command, parse) {
    try {
        return parse();
    }
    catch (error) {
        throw new UsageError(`${command}: ${error.message} (sparq ${command} --help lists its options)`);
    }
}
export function positiveInteger(command, name, value, min = 1) {
    if (value === undefined)
        return undefined;
    const n = Number(value);
    if (!Number.isSafeInteger(n) || n < min || value.trim() === '')
        throw new InvalidArgumentError(`${command}: --${name} must be an integer >= ${min}, got '${value}'`);
    return n;
}
export function positiveNumber(command, name, value, min = 0) {
    if (value === undefined)
        return undefined;
    const n = Number(value);
    if (!Number.isFinite(n) || n < min || value.trim() === '')
        throw new InvalidArgumentError(`${command}: --${name} must be a number >= ${min}, got '${value}'`);
    return n;
}
/** Runs `work` with Ctrl-C turned into an AbortSignal; the handler is removed afterwards. */
export async function withInterrupt(work) {
    const controller = new AbortController();
    const interrupt = () => controller.abort();
    process.once('SIGINT', interrupt);
    try {
        return await work(controller.signal);
    }
    finally {
        process.off('SIGINT', interrupt);
    }
}
//# sourceMappingURL=command.js.map