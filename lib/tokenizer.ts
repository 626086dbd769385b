// Tokenizers from a model folder's tokenizer.json (+ tokenizer_config.json), through Hugging Face's
// JavaScript implementation.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { InvalidFileError } from './errors.js';

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

export async function loadTokenizer(dir: string): Promise<TextTokenizer> {
  const json = (await readJson(join(dir, 'tokenizer.json'), false))!;
  const config = (await readJson(join(dir, 'tokenizer_config.json'), true)) ?? {};
  let tokenizer: Tokenizer;
  try {
    tokenizer = new Tokenizer(json, config);
  } catch (error) {
    throw new InvalidFileError(`${join(dir, 'tokenizer.json')}: not a tokenizer this library can build (${(error as Error).message})`);
  }
  return {
    encode: (text) => Int32Array.from(tokenizer.encode(text, { add_special_tokens: false }).ids),
    decode: (ids) => tokenizer.decode(Array.from(ids)),
  };
}
