// Keys and values of every layer for the tokens decoded so far, so a decode step computes attention for
// its one new token against them instead of re-running the whole sequence. Each layer holds k and v as
// f32 [capacity, kvHeads, headDim] (rows in token order, after RoPE, as the attention op reads them);
// capacity grows in whole chunks, so a step only copies when a chunk fills up.
import { InvalidArgumentError } from '../errors.js';
import { Tensor, TensorArena } from '../tensor/tensor.js';
/** Tokens added to the capacity each time the cache fills (and the smallest capacity). */
export const KV_CACHE_CHUNK = 256;
export class KvCache {
    layers;
    kvHeads;
    headDim;
    maxTokens;
    keys = [];
    values = [];
    capacity = 0;
    /** Tokens whose keys and values are stored (the position the next token takes). */
    length = 0;
    constructor(layers, kvHeads, headDim, 
    /** The most tokens the cache may ever hold (the model's context). */
    maxTokens) {
        this.layers = layers;
        this.kvHeads = kvHeads;
        this.headDim = headDim;
        this.maxTokens = maxTokens;
    }
    /** Bytes held for keys and values. */
    get bytes() {
        return 2 * this.layers * this.capacity * this.kvHeads * this.headDim * 4;
    }
    /** Makes room for `tokens` tokens in all, growing by whole chunks (capped at maxTokens). */
    reserve(tokens) {
        if (tokens > this.maxTokens)
            throw new InvalidArgumentError(`the KV cache holds at most ${this.maxTokens} tokens (the model's context), ${tokens} were asked for`);
        if (tokens <= this.capacity)
            return;
        const capacity = Math.min(this.maxTokens, Math.ceil(tokens / KV_CACHE_CHUNK) * KV_CACHE_CHUNK);
        const row = this.kvHeads * this.headDim;
        // The cache outlives any arena the step allocating it runs in.
        const grow = (old) => TensorArena.outside(() => {
            const next = Tensor.zeros([capacity, this.kvHeads, this.headDim]);
            if (old && this.length > 0)
                next.data.set(old.data.subarray(0, this.length * row));
            return next;
        });
        this.keys = Array.from({ length: this.layers }, (_, l) => grow(this.keys[l]));
        this.values = Array.from({ length: this.layers }, (_, l) => grow(this.values[l]));
        this.capacity = capacity;
    }
    /**
     * Stores layer `layer`'s keys and values k, v [T, kvHeads, headDim] for positions start … start+T−1
     * and returns the layer's keys and values for positions 0 … start+T−1 (views, valid until the next
     * reserve). `start` must be the cache length: a sequence is extended, never rewritten in the middle.
     */
    append(layer, start, k, v) {
        const end = start + k.shape[0];
        if (start !== this.length)
            throw new InvalidArgumentError(`KV cache: tokens must be appended at position ${this.length}, received ${start}`);
        this.reserve(end);
        const row = this.kvHeads * this.headDim;
        this.keys[layer].data.set(k.contiguous().data, start * row);
        this.values[layer].data.set(v.contiguous().data, start * row);
        return { keys: this.keys[layer].narrow(0, end), values: this.values[layer].narrow(0, end) };
    }
    /** Marks the `tokens` just appended to every layer as stored. */
    advance(tokens) {
        this.length += tokens;
    }
    /** Forgets every token (the memory is kept for the next sequence). */
    clear() {
        this.length = 0;
    }
}
//# sourceMappingURL=kv-cache.js.map