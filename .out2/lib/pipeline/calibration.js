// Calibration windows: `nsamples` windows of `seqLen` tokens cut at random offsets of one token stream,
// drawn with a seeded generator so a run is reproducible. A .txt file is one text; a .jsonl file is one
// JSON object per line whose `text` fields are joined with blank lines. Tokenized without special tokens.
import { InvalidArgumentError, InvalidFileError } from '../errors.js';
import { readTextFile } from '../io/text.js';
import { checkInteger } from '../validate.js';
export const CALIBRATION_DEFAULTS = { nsamples: 128, seqLen: 2048, seed: 0 };
/** The text of a calibration file (.txt, or .jsonl with a `text` field per line). */
export async function readCalibrationText(file) {
    const raw = await readTextFile(file);
    if (!file.endsWith('.jsonl'))
        return raw;
    const texts = [];
    raw.split('\n').forEach((line, i) => {
        if (line.trim() === '')
            return;
        let record;
        try {
            record = JSON.parse(line);
        }
        catch (error) {
            throw new InvalidFileError(`${file}:${i + 1}: not JSON (${error.message})`);
        }
        const text = record?.text;
        if (typeof text !== 'string')
            throw new InvalidFileError(`${file}:${i + 1}: expected an object with a string 'text' field`);
        texts.push(text);
    });
    return texts.join('\n\n');
}
/** A small seeded generator (SplitMix32-style): uniform integers in [0, bound). */
export function seededRandom(seed) {
    let state = seed >>> 0;
    return (bound) => {
        state = (state + 0x9e3779b9) >>> 0;
        let z = state;
        z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
        z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
        z = (z ^ (z >>> 16)) >>> 0;
        return Math.floor((z / 2 ** 32) * bound);
    };
}
/** `nsamples` windows of `seqLen` tokens at seeded random offsets (windows may overlap). */
export function sampleWindows(tokens, options, source = 'calibration text') {
    const nsamples = checkInteger('nsamples', options.nsamples, 1);
    const seqLen = checkInteger('seqLen', options.seqLen, 2);
    checkInteger('seed', options.seed, 0, 2 ** 32 - 1);
    if (tokens.length < seqLen) {
        throw new InvalidArgumentError(`${source} has ${tokens.length} tokens; one calibration window needs ${seqLen} (give more text or lower --seq-len)`);
    }
    const random = seededRandom(options.seed);
    const windows = [];
    for (let i = 0; i < nsamples; ++i) {
        const start = random(tokens.length - seqLen + 1);
        windows.push(tokens.slice(start, start + seqLen));
    }
    return windows;
}
/** Reads, tokenizes and samples a calibration file. */
export async function loadCalibration(file, tokenizer, options) {
    const tokens = tokenizer.encode(await readCalibrationText(file));
    return sampleWindows(tokens, options, file);
}
//# sourceMappingURL=calibration.js.map