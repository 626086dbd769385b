// Tokenizers from a model folder's tokenizer.json (+ tokenizer_config.json), through Hugging Face's
// JavaScript implementation.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { InvalidFileError } from '../errors.js';

export interface TextTokenizer {
  /** Token ids of `text` encoded as one string, without special tokens. */
  encode(text: string): Int32Array;
  decode(ids: ArrayLike<number>): string;
}

async function readJson(path: string, optional: boolean): Promise<Record<string, unknown> | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if (optional) return undefined;
    throw new InvalidFileError(`${path}: cannot be read (${(error as Error).message}); the model folder needs a tokenizer.json`);
  }
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch (error) {
    throw new InvalidFileError(`${path}: not valid JSON (${(error as Error).message})`);
  }
}

/** The tokenizer of a model folder: its tokenizer.json, with tokenizer_config.json when present. */
export async function loadTokenizer(dir: string): Promise<TextTokenizer> {
  const file = join(dir, 'tokenizer.json');
  return buildTokenizer(file, (await readJson(file, false))!, (await readJson(join(dir, 'tokenizer_config.json'), true)) ?? {});
}

/** A tokenizer from a tokenizer.json file on its own. */
export async function loadTokenizerFile(file: string): Promise<TextTokenizer> {
  return buildTokenizer(file, (await readJson(file, false))!, {});
}

function buildTokenizer(file: string, json: Record<string, unknown>, config: Record<string, unknown>): TextTokenizer {
  let tokenizer: Tokenizer;
  try {
    tokenizer = new Tokenizer(json, config);
  } catch (error) {
    throw new InvalidFileError(`${file}: not a tokenizer this library can build (${(error as Error).message})`);
  }
  return {
    encode: (text) => Int32Array.from(tokenizer.encode(text, { add_special_tokens: false }).ids),
    decode: (ids) => tokenizer.decode(Array.from(ids)),
  };
}
