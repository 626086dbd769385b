import { readFile } from 'node:fs/promises';
import { InvalidFileError } from '../errors.js';
/**
 * A UTF-8 text file's contents. An unreadable file, a folder, invalid UTF-8 or a NUL byte (a binary
 * file given where text was expected) is an InvalidFileError naming the file.
 */
export async function readTextFile(file) {
    let bytes;
    try {
        bytes = await readFile(file);
    }
    catch (error) {
        const code = error.code;
        if (code === 'EISDIR')
            throw new InvalidFileError(`${file}: is a folder; a text file was expected`);
        throw new InvalidFileError(`${file}: cannot be read (${error.message})`);
    }
    const nul = bytes.indexOf(0);
    if (nul >= 0)
        throw new InvalidFileError(`${file}: not a text file (a NUL byte at offset ${nul}; is it binary?)`);
    try {
        return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    }
    catch {
        throw new InvalidFileError(`${file}: not valid UTF-8 text (is it binary, or in another encoding?)`);
    }
}
/** A JSON file holding one object; unreadable, malformed or non-object content is an InvalidFileError naming it. */
export async function readJsonObject(file) {
    const text = await readTextFile(file);
    let json;
    try {
        json = JSON.parse(text);
    }
    catch (error) {
        throw new InvalidFileError(`${file}: not valid JSON (${error.message})`);
    }
    if (json === null || typeof json !== 'object' || Array.isArray(json))
        throw new InvalidFileError(`${file}: not a JSON object`);
    return json;
}
//# sourceMappingURL=text.js.map