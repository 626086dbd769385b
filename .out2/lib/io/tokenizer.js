// Tokenizers from a model folder's tokenizer.json (+ tokenizer_config.json), through Hugging Face's
// JavaScript implementation.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { InvalidFileError } from '../errors.js';
async function readJson(path, optional) {
    let text;
    try {
        text = await readFile(path, 'utf8');
    }
    catch (error) {
        if (optional)
            return undefined;
        throw new InvalidFileError(`${path}: cannot be read (${error.message}); the model folder needs a tokenizer.json`);
    }
    try {
        return JSON.parse(text);
    }
    catch (error) {
        throw new InvalidFileError(`${path}: not valid JSON (${error.message})`);
    }
}
/** The tokenizer of a model folder: its tokenizer.json, with tokenizer_config.json when present. */
export async function loadTokenizer(dir) {
    const file = join(dir, 'tokenizer.json');
    return buildTokenizer(file, (await readJson(file, false)), (await readJson(join(dir, 'tokenizer_config.json'), true)) ?? {});
}
/** A tokenizer from a tokenizer.json file on its own. */
export async function loadTokenizerFile(file) {
    return buildTokenizer(file, (await readJson(file, false)), {});
}
function buildTokenizer(file, json, config) {
    let tokenizer;
    try {
        tokenizer = new Tokenizer(json, config);
    }
    catch (error) {
        throw new InvalidFileError(`${file}: not a tokenizer this library can build (${error.message})`);
    }
    return {
        encode: (text) => Int32Array.from(tokenizer.encode(text, { add_special_tokens: false }).ids),
        decode: (ids) => tokenizer.decode(Array.from(ids)),
    };
}
//# sourceMappingURL=tokenizer.js.map