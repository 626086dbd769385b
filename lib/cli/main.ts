#!/usr/bin/env node
// The sparq command line. Commands arrive with the issues that build them; `info` reports the backends.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { backendInfo, isAvailable, loadAttempts } from '../index.js';
import { SparqError } from '../errors.js';

const USAGE = `Usage: sparq <command> [options]

Commands:
  info [--json]    the native backends: kernels, threads, and why a backend did not load

Options:
  -h, --help       show this help
  -v, --version    print the version`;

function version(): string {
  const manifest = new URL('../../package.json', import.meta.url);
  return JSON.parse(readFileSync(manifest, 'utf8')).version as string;
}

function info(args: string[]): void {
  const { values } = parseArgs({ args, options: { json: { type: 'boolean', default: false } }, strict: true });
  const cpu = backendInfo('cpu');
  const cuda = isAvailable('cuda') ? backendInfo('cuda') : null;
  const report = { version: version(), cpu, cuda, loadAttempts: loadAttempts() };
  if (values.json) {
    process.stdout.write(`${JSON.stringify(report)}\n`);
    return;
  }
  process.stdout.write(`sparq ${report.version}\n`);
  process.stdout.write(`${cpu.description} (variants: ${cpu.kernelVariants.join(', ')})\n`);
  if (cuda) {
    process.stdout.write(`cuda: ${cuda.description}\n`);
  } else {
    const why = loadAttempts().filter((a) => a.backend === 'cuda' && !a.ok);
    process.stdout.write(`cuda: unavailable${why.map((a) => ` (${a.error}; ${a.fix})`).join('')}\n`);
  }
}

export function main(argv: string[]): number {
  const [command, ...rest] = argv;
  try {
    if (command === undefined || command === '-h' || command === '--help' || command === 'help') {
      process.stdout.write(`${USAGE}\n`);
      return command === undefined ? 1 : 0;
    }
    if (command === '-v' || command === '--version') {
      process.stdout.write(`${version()}\n`);
      return 0;
    }
    if (command === 'info') {
      info(rest);
      return 0;
    }
    process.stderr.write(`sparq: unknown command '${command}'\n\n${USAGE}\n`);
    return 2;
  } catch (error) {
    const code = error instanceof SparqError ? ` [${error.code}]` : '';
    process.stderr.write(`sparq: ${(error as Error).message}${code}\n`);
    return 1;
  }
}

process.exitCode = main(process.argv.slice(2));
