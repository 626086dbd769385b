// Byte-level BPE training (GPT-2 style) producing a Hugging Face tokenizer.json.
//
// Layout of the result:
//   - ids 0..255 are the 256 byte symbols, id b standing for byte b, written with GPT-2's byte-to-character
//     table (space is "Ġ", newline "Ċ", ...);
//   - ids 256.. are merged tokens in the order they were learned;
//   - no added or special tokens (added_tokens is []), so every id is a byte sequence and any well-formed
//     string round-trips, including one that contains "<|endoftext|>" literally;
//   - merges are "left right" strings (byte-level symbols never contain a space), in rank order.
//
// Training: the text is split with the GPT-2 pre-tokenizer regex (the one the ByteLevel pre-tokenizer
// applies when encoding), identical pieces are counted once with their frequency, and pair counts are kept
// in a max-heap with lazy deletion and updated incrementally after each merge, only for the words that
// contain the merged pair. Ties between equally frequent pairs go to the pair whose left id, then right id,
// is smaller, so the output is a pure function of (text, vocabSize).
import { InvalidArgumentError } from '../errors.js';
/** The GPT-2 pre-tokenization pattern, as the ByteLevel pre-tokenizer uses it with use_regex: true. */
export const GPT2_PRETOKENIZE_PATTERN = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;
/** Largest vocabulary this trainer builds (pair keys pack two ids into one double). */
export const MAX_BPE_VOCAB = 1 << 21;
const ID_SPAN = MAX_BPE_VOCAB;
/** GPT-2's reversible map from bytes to printable characters: printable Latin-1 stays, the rest shifts past 255. */
export const BYTE_TO_CHAR = (() => {
    const table = new Array(256);
    let next = 256;
    for (let b = 0; b < 256; ++b) {
        const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
        table[b] = String.fromCharCode(printable ? b : next++);
    }
    return table;
})();
/**
 * The tokenizer_config.json to write next to the tokenizer.json. Decoding must not "clean up tokenization
 * spaces" (which turns " ." into "."), or decode(encode(s)) would not give s back; @huggingface/tokenizers
 * reads that flag from this file only and defaults it to true.
 */
export function byteLevelBpeTokenizerConfig() {
    return { tokenizer_class: 'PreTrainedTokenizerFast', clean_up_tokenization_spaces: false };
}
/** Max-heap of (count, key): larger count first, then smaller key (smaller left id, then right id). */
class PairHeap {
    counts = [];
    keys = [];
    get size() {
        return this.counts.length;
    }
    before(i, j) {
        const ci = this.counts[i];
        const cj = this.counts[j];
        return ci > cj || (ci === cj && this.keys[i] < this.keys[j]);
    }
    swap(i, j) {
        const c = this.counts[i];
        this.counts[i] = this.counts[j];
        this.counts[j] = c;
        const k = this.keys[i];
        this.keys[i] = this.keys[j];
        this.keys[j] = k;
    }
    push(count, key) {
        this.counts.push(count);
        this.keys.push(key);
        let i = this.counts.length - 1;
        while (i > 0) {
            const parent = (i - 1) >> 1;
            if (!this.before(i, parent))
                break;
            this.swap(i, parent);
            i = parent;
        }
    }
    /** Removes the top entry; returns its count and key through `out`. */
    pop(out) {
        out.count = this.counts[0];
        out.key = this.keys[0];
        const lastCount = this.counts.pop();
        const lastKey = this.keys.pop();
        const n = this.counts.length;
        if (n === 0)
            return;
        this.counts[0] = lastCount;
        this.keys[0] = lastKey;
        let i = 0;
        for (;;) {
            const l = 2 * i + 1;
            if (l >= n)
                break;
            const r = l + 1;
            const child = r < n && this.before(r, l) ? r : l;
            if (!this.before(child, i))
                break;
            this.swap(i, child);
            i = child;
        }
    }
}
/** Unique pre-tokenized pieces of `text` with their counts. */
function countPieces(text) {
    const counts = new Map();
    const pattern = new RegExp(GPT2_PRETOKENIZE_PATTERN.source, GPT2_PRETOKENIZE_PATTERN.flags);
    for (let m = pattern.exec(text); m !== null; m = pattern.exec(text)) {
        const piece = m[0];
        counts.set(piece, (counts.get(piece) ?? 0) + 1);
    }
    return counts;
}
/**
 * Trains a byte-level BPE tokenizer on `text` and returns it as a Hugging Face tokenizer.json object
 * (write it with JSON.stringify; write byteLevelBpeTokenizerConfig() as tokenizer_config.json beside it).
 * `vocabSize` counts every id, the 256 byte symbols included; the result has exactly that many entries
 * unless the text runs out of pairs to merge first. Merges whose string already exists (reached by another
 * split) are kept as merges but add no vocabulary entry, so `merges` can be longer than vocabSize - 256.
 */
export function trainByteLevelBpe(text, vocabSize, options = {}) {
    if (typeof text !== 'string')
        throw new InvalidArgumentError('trainByteLevelBpe: text must be a string');
    if (!Number.isInteger(vocabSize) || vocabSize < 256 || vocabSize > MAX_BPE_VOCAB) {
        throw new InvalidArgumentError(`trainByteLevelBpe: vocabSize must be an integer in [256, ${MAX_BPE_VOCAB}], got ${vocabSize}`);
    }
    const { onProgress } = options;
    // Token strings by id, and ids by string.
    const tokens = BYTE_TO_CHAR.slice();
    const idOf = new Map();
    tokens.forEach((t, id) => idOf.set(t, id));
    const merges = [];
    // Unique pieces of two or more bytes, as byte-id sequences, with their frequencies.
    const words = [];
    const freq = [];
    const encoder = new TextEncoder();
    for (const [piece, count] of countPieces(text)) {
        const bytes = encoder.encode(piece);
        if (bytes.length < 2)
            continue;
        words.push(Array.from(bytes));
        freq.push(count);
    }
    // Pair counts and, per pair, the words that contain (or once contained) it.
    const pairCount = new Map();
    const pairWords = new Map();
    for (let w = 0; w < words.length; ++w) {
        const syms = words[w];
        const f = freq[w];
        for (let i = 0; i + 1 < syms.length; ++i) {
            const key = syms[i] * ID_SPAN + syms[i + 1];
            pairCount.set(key, (pairCount.get(key) ?? 0) + f);
            const list = pairWords.get(key);
            if (list === undefined)
                pairWords.set(key, [w]);
            else if (list[list.length - 1] !== w)
                list.push(w);
        }
    }
    const heap = new PairHeap();
    for (const [key, count] of pairCount)
        heap.push(count, key);
    const toAdd = vocabSize - 256;
    const progressEvery = Math.max(1, Math.floor(toAdd / 100));
    const seen = new Int32Array(words.length).fill(-1);
    const delta = new Map();
    const top = { count: 0, key: 0 };
    let added = 0;
    let reported = 0;
    while (tokens.length < vocabSize && heap.size > 0) {
        heap.pop(top);
        const current = pairCount.get(top.key) ?? 0;
        if (current !== top.count) {
            // Stale entry: the pair's count fell since it was pushed.
            if (current > 0 && current < top.count)
                heap.push(current, top.key);
            continue;
        }
        const a = Math.floor(top.key / ID_SPAN);
        const b = top.key - a * ID_SPAN;
        const merged = tokens[a] + tokens[b];
        let id = idOf.get(merged);
        if (id === undefined) {
            id = tokens.length;
            tokens.push(merged);
            idOf.set(merged, id);
            ++added;
            if (onProgress && (added % progressEvery === 0 || tokens.length === vocabSize))
                onProgress((reported = added), toAdd);
        }
        const rank = merges.length;
        merges.push(`${tokens[a]} ${tokens[b]}`);
        delta.clear();
        for (const w of pairWords.get(top.key)) {
            if (seen[w] === rank)
                continue;
            seen[w] = rank;
            const syms = words[w];
            const f = freq[w];
            const out = [];
            let hit = false;
            for (let i = 0; i < syms.length;) {
                if (i + 1 < syms.length && syms[i] === a && syms[i + 1] === b) {
                    out.push(id);
                    i += 2;
                    hit = true;
                }
                else {
                    out.push(syms[i]);
                    i += 1;
                }
            }
            if (!hit)
                continue;
            for (let i = 0; i + 1 < syms.length; ++i) {
                const key = syms[i] * ID_SPAN + syms[i + 1];
                delta.set(key, (delta.get(key) ?? 0) - f);
            }
            for (let i = 0; i + 1 < out.length; ++i) {
                const left = out[i];
                const right = out[i + 1];
                const key = left * ID_SPAN + right;
                delta.set(key, (delta.get(key) ?? 0) + f);
                // Pairs touching the new token are new to this word; the others already list it.
                if (left === id || right === id) {
                    const list = pairWords.get(key);
                    if (list === undefined)
                        pairWords.set(key, [w]);
                    else if (list[list.length - 1] !== w)
                        list.push(w);
                }
            }
            words[w] = out;
        }
        for (const [key, d] of delta) {
            if (d === 0)
                continue;
            const count = (pairCount.get(key) ?? 0) + d;
            if (count <= 0) {
                pairCount.delete(key);
                pairWords.delete(key);
            }
            else {
                pairCount.set(key, count);
                if (d > 0)
                    heap.push(count, key);
            }
        }
        // Every occurrence of (a, b) was merged, so the pair is gone.
        pairCount.delete(top.key);
        pairWords.delete(top.key);
    }
    if (onProgress && (reported !== added || added === 0))
        onProgress(added, toAdd);
    // fromEntries defines own properties, so no token name can reach Object.prototype.
    const vocab = Object.fromEntries(tokens.map((t, i) => [t, i]));
    return {
        version: '1.0',
        truncation: null,
        padding: null,
        added_tokens: [],
        normalizer: null,
        pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
        post_processor: null,
        decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
        model: {
            type: 'BPE',
            dropout: null,
            unk_token: null,
            continuing_subword_prefix: null,
            end_of_word_suffix: null,
            fuse_unk: false,
            byte_fallback: false,
            ignore_merges: false,
            vocab,
            merges,
        },
    };
}
//# sourceMappingURL=bpe.js.map