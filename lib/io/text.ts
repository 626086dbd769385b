import { readFile } from 'node:fs/promises';
import { InvalidFileError } from '../errors.js';

/** A UTF-8 file's text; an unreadable file is an InvalidFileError naming it. */
export async function readTextFile(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (error) {
    throw new InvalidFileError(`${file}: cannot be read (${(error as Error).message})`);
  }
}
