// Helpers shared by the benchmarks that compare against PyTorch in separate processes.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadTokenizer, writeRandomLlama } from '../lib/index.js';

/** The checkout root (benchmarks run from .out/bench/). */
export const repo = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..');

/** Debian's python3 (where python3-torch installs); a pyenv python3 first on PATH usually lacks torch. */
export const python = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';

/** Runs a command whose last stdout line is JSON; a failure comes back as { error } with its last lines. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function runJson(command: string, args: string[]): Record<string, any> {
  const run = spawnSync(command, args, { encoding: 'utf8', maxBuffer: 1 << 26 });
  if (run.status !== 0) return { error: (run.stderr || run.stdout).trim().split('\n').slice(-3).join(' | ') };
  return JSON.parse(run.stdout.trim().split('\n').pop()!);
}

/** Bytes of the files directly inside a folder. */
export function folderBytes(dir: string): number {
  return readdirSync(dir).reduce((sum, f) => sum + statSync(join(dir, f)).size, 0);
}

/** A calibration file both sides of a comparison read: `windows` of token ids, all of one length. */
export function writeCalibration(file: string, windows: ArrayLike<number>[]): string {
  writeFileSync(file, JSON.stringify({ seq_len: windows[0].length, windows: windows.map((w) => Array.from(w)) }));
  return file;
}

/** Token ids spread over a vocabulary, for generated models (no tokenizer): `count` windows of `length`. */
export function syntheticWindows(count: number, length: number, vocabSize: number): number[][] {
  return Array.from({ length: count }, (_, w) => Array.from({ length }, (_, i) => (i * 7919 + w * 104729) % vocabSize));
}

/**
 * The generated 134M-parameter Llama the runtime comparisons use (hidden 768, MLP 2048, 12 layers, vocab
 * 32,000, seed 1) written to `scratch`, and a calibration file of 8 windows of 512 ids for both sides.
 */
export async function generatedLlama134M(scratch: string): Promise<{ dir: string; calibFile: string }> {
  const dir = join(scratch, 'llama-134m');
  await writeRandomLlama(dir, { hiddenSize: 768, intermediateSize: 2048, layers: 12, heads: 12, vocabSize: 32000, maxPositions: 2048, seed: 1 });
  const calibFile = writeCalibration(join(scratch, 'generated.calib.json'), syntheticWindows(8, 512, 32000));
  return { dir, calibFile };
}

/** The shared fixtures' models with their calibration and eval texts (../shared). */
export const SHARED_MODELS = {
  stories260K: { dir: join(repo, '..', 'shared', 'fixtures', 'stories260K'), calib: join(repo, '..', 'shared', 'data', 'tinystories_calib.txt'), eval: join(repo, '..', 'shared', 'data', 'tinystories_val.txt') },
  'sotu-llama': { dir: join(repo, '..', 'shared', 'fixtures', 'sotu-llama'), calib: join(repo, '..', 'shared', 'data', 'sotu_calib.txt'), eval: join(repo, '..', 'shared', 'data', 'sotu_eval.txt') },
};

/** The demo's cached 3.7M Llama (`sparq demo`'s default profile: hidden 256), or undefined if not trained yet. */
export function cachedDemoModel(cacheDir: string): string | undefined {
  const root = join(cacheDir, 'demo');
  if (!existsSync(root)) return undefined;
  return readdirSync(root)
    .filter((d) => d.startsWith('sotu-llama-') && existsSync(join(root, d, 'training.json')))
    .map((d) => join(root, d))
    .find((d) => JSON.parse(readFileSync(join(d, 'config.json'), 'utf8')).hidden_size === 256);
}

/** The first `count` tokens of a model's eval text, or undefined (said on stderr) when the model is missing. */
export async function benchEvalTokens(name: string, model: { dir: string | undefined; eval: string }, count: number): Promise<Int32Array | undefined> {
  if (!model.dir || !existsSync(join(model.dir, 'config.json'))) {
    console.error(`skipping ${name}: no model folder`);
    return undefined;
  }
  return (await loadTokenizer(model.dir)).encode(readFileSync(model.eval, 'utf8')).slice(0, count);
}
