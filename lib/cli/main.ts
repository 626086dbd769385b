#!/usr/bin/env node
// The sparq command line: one module per command (lib/cli/commands), each with its own usage, printed
// by `sparq <command> --help`. Errors print one line with their code. Exit codes: 0 done, 1 a typed
// error (bad file, model, option value …), 2 a command line that does not parse (UsageError, unknown
// command), 130 interrupted (Ctrl-C).
import { AbortError, SparqError, UsageError } from '../errors.js';
import { sparqVersion } from '../version.js';
import { wantsHelp, type Command } from './command.js';
import { benchCommand } from './commands/bench.js';
import { demoCommand } from './commands/demo.js';
import { evalCommand } from './commands/eval.js';
import { exportCommand } from './commands/export.js';
import { generateCommand } from './commands/generate.js';
import { infoCommand } from './commands/info.js';
import { inspectCommand } from './commands/inspect.js';
import { pruneCommand } from './commands/prune.js';
import { quantizeCommand } from './commands/quantize.js';
import { trainCommand } from './commands/train.js';

const COMMANDS: Command[] = [benchCommand, demoCommand, infoCommand, evalCommand, exportCommand, generateCommand, inspectCommand, pruneCommand, quantizeCommand, trainCommand];

const indent = (text: string) => text.replace(/^/gm, '  ');

const USAGE = `Usage: sparq <command> [options]   (sparq <command> --help for one command)

Commands:
${COMMANDS.map((c) => indent(c.usage)).join('\n')}

Options:
  -h, --help       show this help
  -v, --version    print the version`;

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  try {
    if (name === undefined) {
      process.stderr.write(`${USAGE}\n`);
      return 2;
    }
    if (name === '-h' || name === '--help' || name === 'help') {
      const command = name === 'help' ? COMMANDS.find((c) => c.name === rest[0]) : undefined;
      process.stdout.write(`${command ? `Usage: sparq ${command.usage}` : USAGE}\n`);
      return 0;
    }
    if (name === '-v' || name === '--version') {
      process.stdout.write(`${sparqVersion()}\n`);
      return 0;
    }
    const command = COMMANDS.find((c) => c.name === name);
    if (!command) {
      process.stderr.write(`sparq: unknown command '${name}'\n\n${USAGE}\n`);
      return 2;
    }
    if (wantsHelp(rest)) {
      process.stdout.write(`Usage: sparq ${command.usage}\n`);
      return 0;
    }
    await command.run(rest);
    return 0;
  } catch (error) {
    const code = error instanceof SparqError ? ` [${error.code}]` : '';
    process.stderr.write(`sparq: ${(error as Error).message}${code}\n`);
    // 130 is the shell's convention for a run stopped by Ctrl-C.
    return error instanceof AbortError ? 130 : error instanceof UsageError ? 2 : 1;
  }
}

// A closed pipe (`sparq inspect DIR | head`) ends the output quietly instead of crashing.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw error;
});
process.exitCode = await main(process.argv.slice(2));
