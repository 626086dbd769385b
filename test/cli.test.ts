// The command-line surface, one table row per command: `--help` (and `sparq help <command>`), the one
// `--json` line checked against its schema in lib/cli/json-schemas.ts and against values computed here
// independently, and the exit codes — 0 done, 1 a typed error, 2 a command line that does not parse,
// 130 interrupted. The CLI is the one compiled with these tests (.out/lib/cli/main.js; see CLI in
// helpers.ts), so it is always built from the current sources.
//
// A new command adds one row to COMMANDS below (the first test fails until it does) and its schema to
// CLI_JSON_SCHEMAS.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, constants, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CliJsonCommand } from '../lib/cli/json-schemas.js';
import { DecoderModel, evaluatePerplexity, inspectModel, loadTokenizer, parseRecipe, prune } from '../lib/index.js';
import { sparqVersion } from '../lib/version.js';
import { assertSchema, CLI, fixturePath, sharedDir } from './helpers.js';

const work = mkdtempSync(join(tmpdir(), 'sparq-cli-'));
after(() => rmSync(work, { recursive: true, force: true }));
let counter = 0;
const fresh = (label: string) => join(work, `${label}-${++counter}`);
const stories = () => fixturePath('stories260K');
/** The first 8 KB of the TinyStories validation text: tokenizing all 400 KB would take seconds per run. */
let shortText: string | undefined;
const text = () => {
  if (!shortText) {
    shortText = join(work, 'stories-8k.txt');
    writeFileSync(shortText, readFileSync(join(sharedDir(), 'data', 'tinystories_val.txt'), 'utf8').slice(0, 8192));
  }
  return shortText;
};
const calib = () => join(sharedDir(), 'data', 'tinystories_calib.txt');

const cli = (args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });

/** The --json line: the last line of stdout, which must be the only line that is not empty. */
function jsonLine(command: string, stdout: string): Record<string, unknown> {
  const lines = stdout.split('\n').filter((l) => l.trim() !== '');
  assert.equal(lines.length, 1, `${command} --json printed ${lines.length} lines on stdout:\n${stdout}`);
  return JSON.parse(lines[0]) as Record<string, unknown>;
}


interface CommandRow {
  command: string;
  /** A small run that prints --json (seconds on a fixture), or where its schema is checked instead. */
  json: (() => Promise<string[]>) | { elsewhere: string };
  /** Checks of the JSON against values computed independently (the files written, the library). */
  check?: (json: Record<string, unknown>) => Promise<void>;
  /** A command line that does not parse: exit 2. */
  usage: string[];
  /** One that parses but fails: exit 1 with the error's code (or why the command has none). */
  typed: string[] | { none: string };
}

let pruned: string | undefined;
/** A 2:4-pruned stories260K (what `export --format 2:4` packs), made once. */
async function prunedModel(): Promise<string> {
  if (!pruned) {
    pruned = fresh('pruned');
    await prune({ model: stories(), out: pruned, recipe: parseRecipe({ method: 'magnitude', sparsity: '2:4' }) });
  }
  return pruned;
}

const COMMANDS: CommandRow[] = [
  {
    command: 'info',
    json: async () => ['info', '--json'],
    check: async (json) => assert.equal(json.version, sparqVersion()),
    usage: ['info', '--verbose'],
    typed: { none: 'info reads nothing a user gives it; a backend that fails to load is reported, not an error' },
  },
  {
    command: 'inspect',
    json: async () => ['inspect', await prunedModel(), '--json'],
    check: async (json) => {
      // Sparsity from the file, counted here; the model's own count is not what is under test.
      const linears = json.linears as { name: string; sparsity: number }[];
      assert.equal(linears.length, 35);
      for (const l of linears) assert.equal(l.sparsity, 0.5, l.name);
      assert.equal(json.parameters, 260032);
    },
    usage: ['inspect'],
    typed: ['inspect', join(sharedDir(), 'data')],
  },
  {
    command: 'eval',
    json: async () => ['eval', '--model', stories(), '--text', text(), '--max-tokens', '1024', '--seq-len', '128', '--json'],
    check: async (json) => {
      // The CLI's perplexity is exactly the library's on the same tokens.
      const tokens = (await loadTokenizer(stories())).encode(readFileSync(text(), 'utf8'));
      const model = await DecoderModel.open(stories());
      const library = await evaluatePerplexity(model, tokens, { seqLen: 128, maxTokens: 1024 });
      await model.close();
      assert.equal(json.perplexity, library.perplexity);
      assert.equal(json.meanNll, library.meanNll);
      assert.equal(json.windows, 8);
      assert.equal(json.tokens, 1024);
    },
    usage: ['eval', '--model', stories()],
    typed: ['eval', '--model', stories(), '--text', join(work, 'missing.txt')],
  },
  {
    command: 'prune',
    json: async () => ['prune', '--model', stories(), '--method', 'magnitude', '--sparsity', '0.5', '--out', fresh('prune'), '--json'],
    check: async (json) => {
      const report = await inspectModel(json.out as string);
      const zeros = report.linears.reduce((s, l) => s + l.sparsity * l.shape[0] * l.shape[1], 0);
      const total = report.linears.reduce((s, l) => s + l.shape[0] * l.shape[1], 0);
      assert.equal(json.sparsity, zeros / total);
      assert.equal(json.linears, 35);
    },
    usage: ['prune', '--model', stories(), '--method', 'magnitude', '--sparsity', '0.5'],
    typed: ['prune', '--model', stories(), '--method', 'magnitude', '--sparsity', '1.5', '--out', join(work, 'never')],
  },
  {
    command: 'quantize',
    json: async () => ['quantize', '--model', stories(), '--method', 'rtn', '--bits', '8', '--group-size', '0', '--format', 'dense', '--out', fresh('quantize'), '--json'],
    check: async (json) => {
      assert.equal(json.quantized_linears, 35);
      assert.equal(json.format, 'dense');
    },
    usage: ['quantize', '--model', stories(), '--method', 'rtn', '--bits', '8', '--bogus'],
    typed: ['quantize', '--model', stories(), '--method', 'rtn', '--bits', '5', '--out', join(work, 'never')],
  },
  {
    command: 'train',
    json: async () => ['train', '--model', stories(), '--text', text(), '--seq-len', '32', '--batch', '2', '--steps', '2', '--optimizer', 'sgd', '--lr', '0.01', '--out', fresh('train'), '--json'],
    check: async (json) => {
      const training = JSON.parse(readFileSync(join(json.out as string, 'training.json'), 'utf8')) as { losses: number[] };
      assert.deepEqual([json.first_loss, json.final_loss], [training.losses[0], training.losses[1]]);
    },
    usage: ['train', '--model', stories(), '--text', text()],
    typed: ['train', '--model', stories(), '--text', text(), '--seq-len', '32', '--batch', '2', '--steps', '2', '--optimizer', 'lion', '--lr', '0.01', '--out', join(work, 'never')],
  },
  {
    command: 'export',
    json: async () => ['export', '--model', await prunedModel(), '--format', '2:4', '--out', fresh('export'), '--json'],
    check: async (json) => {
      const byFormat = json.byFormat as Record<string, { linears: number }>;
      assert.deepEqual(Object.keys(byFormat), ['2:4']);
      assert.equal(byFormat['2:4'].linears, 35);
    },
    usage: ['export', '--format', '2:4', '--out', join(work, 'never')],
    typed: ['export', '--model', stories(), '--format', '2:4', '--out', join(work, 'never')],
  },
  {
    command: 'generate',
    json: async () => ['generate', '--model', stories(), '--prompt', 'Once upon', '--max-new-tokens', '4', '--json'],
    check: async (json) => assert.equal((json.tokens as number[]).length, json.generatedTokens),
    usage: ['generate', '--model', stories()],
    typed: ['generate', '--model', stories(), '--prompt', 'Hi', '--top-p', '1.5'],
  },
  {
    command: 'bench',
    json: async () => ['bench', '--shapes', '1,64,64', '--formats', 'dense-f32', '--seconds', '0.01', '--json'],
    check: async (json) => assert.equal((json.rows as unknown[]).length, 1),
    usage: ['bench', '--shapes'],
    typed: ['bench', '--formats', 'f32'],
  },
  {
    command: 'demo',
    json: { elsewhere: 'test/demo.test.ts (the quick profile trains a model: minutes)' },
    usage: ['demo', '--quick=yes'],
    typed: ['demo', '--out', join(work, 'no', 'such', 'folder'), '--quick'],
  },
];

describe('the command line', function () {
  this.timeout(300_000);

  it('has a row here for every command `sparq --help` lists', () => {
    const help = cli(['--help']);
    assert.equal(help.status, 0);
    const listed = [...help.stdout.matchAll(/^ {2}([a-z]+) /gm)].map((m) => m[1]);
    assert.deepEqual(listed.sort(), COMMANDS.map((c) => c.command).sort());
  });

  it('prints the package version for --version and -v, and exits 2 with usage for no command or an unknown one', () => {
    const version = JSON.parse(readFileSync(join(process.cwd(), 'package.json'), 'utf8')).version as string;
    for (const flag of ['--version', '-v']) {
      const result = cli([flag]);
      assert.equal(result.status, 0);
      assert.equal(result.stdout, `${version}\n`);
    }
    for (const args of [[], ['prnue']]) {
      const result = cli(args);
      assert.equal(result.status, 2, args.join(' '));
      assert.match(result.stderr, /Usage: sparq <command>/);
      assert.equal(result.stdout, '');
    }
  });

  it('prints each command\'s usage for `<command> --help` (and the same for -h and `help <command>`)', () => {
    for (const row of COMMANDS) {
      const result = cli([row.command, '--help']);
      assert.equal(result.status, 0, `${row.command} --help: ${result.stderr}`);
      assert.equal(result.stderr, '');
      assert.match(result.stdout, new RegExp(`^Usage: sparq ${row.command}\\b`));
      // The other two forms take the same path for every command; one command shows they agree.
      if (row.command === 'prune') for (const args of [['prune', '-h'], ['help', 'prune']]) assert.equal(cli(args).stdout, result.stdout, args.join(' '));
    }
  });

  for (const row of COMMANDS) {
    it(`${row.command}: a command line that does not parse exits 2, a typed error 1, each with one line naming it`, () => {
      const usage = cli(row.usage);
      assert.equal(usage.status, 2, `${row.usage.join(' ')} should be a usage error: ${usage.stderr}`);
      assert.match(usage.stderr, new RegExp(`^sparq: ${row.command}: .*\\[SPARQ_INVALID_ARGUMENT\\]\\n$`));
      if (!Array.isArray(row.typed)) return;
      const typed = cli(row.typed);
      assert.equal(typed.status, 1, `${row.typed.join(' ')} should be a typed error: ${typed.stderr}`);
      assert.match(typed.stderr, /^sparq: .*\[SPARQ_[A-Z_]+\]\n$/m);
    });

    if (typeof row.json === 'function') {
      const run = row.json;
      it(`${row.command} --json prints one line that matches its schema and the values computed here`, async () => {
        const args = await run();
        const result = cli(args);
        assert.equal(result.status, 0, `${args.join(' ')}: ${result.stderr}`);
        const json = jsonLine(row.command, result.stdout);
        assertSchema(row.command as CliJsonCommand, json);
        await row.check?.(json);
      });
    }
  }

  it('exits 130 on Ctrl-C and names the staging folder --resume continues from', async () => {
    // Deterministic: the run blocks reading its calibration file from a FIFO, so SIGINT arrives while
    // prune is surely under way (its handler is installed before the file is opened).
    const fifo = join(work, 'calib.fifo');
    assert.equal(spawnSync('mkfifo', [fifo]).status, 0);
    const out = fresh('interrupted');
    const child = spawn(process.execPath, [CLI, 'prune', '--model', stories(), '--method', 'wanda', '--sparsity', '0.5', '--calib', fifo, '--nsamples', '8', '--seq-len', '64', '--out', out, '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    let fd: number | undefined;
    while (fd === undefined) {
      try {
        fd = openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK); // ENXIO until the reader opens it
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENXIO') throw error;
        if (child.exitCode !== null) assert.fail(`prune exited before reading --calib: ${stderr}`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    }
    child.kill('SIGINT'); // the signal is pending before the data below exists, so it is handled first
    // 16 KB of text: within the pipe's buffer, so one write takes it all (8 windows of 64 tokens need ~2 KB).
    const data = readFileSync(calib()).subarray(0, 16384);
    assert.equal(writeSync(fd, data), data.length);
    closeSync(fd);
    assert.equal(await exited, 130, stderr);
    assert.match(stderr, /interrupted; the finished blocks are kept at .*\.sparq-partial — rerun with --resume to continue \[ABORT_ERR\]/);
  });
});
