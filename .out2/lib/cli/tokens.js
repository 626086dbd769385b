// Token ids for eval and train: a JSON array of ids, or a text file encoded with a model's tokenizer.
import { readFileSync } from 'node:fs';
import { InvalidFileError } from '../errors.js';
import { readTextFile } from '../io/text.js';
import { loadTokenizer } from '../io/tokenizer.js';
/**
 * Token ids from a JSON array file, or a text file encoded with the tokenizer in `tokenizerDir`. Every id
 * is checked against the vocabulary before it becomes an Int32 (4294967301 would otherwise wrap to 5).
 */
export async function readTokens(tokensFile, textFile, tokenizerDir, vocabSize) {
    if (textFile !== undefined) {
        const tokens = (await loadTokenizer(tokenizerDir)).encode(await readTextFile(textFile));
        if (tokens.length === 0)
            throw new InvalidFileError(`${textFile}: the text encodes to no tokens (is the file empty?)`);
        return tokens;
    }
    let parsed;
    try {
        parsed = JSON.parse(readFileSync(tokensFile, 'utf8'));
    }
    catch (error) {
        throw new InvalidFileError(`${tokensFile}: ${error.message}`);
    }
    if (!Array.isArray(parsed))
        throw new InvalidFileError(`${tokensFile}: expected a JSON array of token ids`);
    if (parsed.length === 0)
        throw new InvalidFileError(`${tokensFile}: the array of token ids is empty`);
    parsed.forEach((id, i) => {
        if (!Number.isSafeInteger(id) || id < 0 || id >= vocabSize) {
            throw new InvalidFileError(`${tokensFile}: token ${i} is ${JSON.stringify(id)}; ids must be integers from 0 to ${vocabSize - 1} (the model's vocab_size is ${vocabSize})`);
        }
    });
    return Int32Array.from(parsed);
}
//# sourceMappingURL=tokens.js.map