// Keys and values of every layer for the tokens decoded so far, so a decode step computes attention for
// its one new token against them instead of re-running the whole sequence. Each layer holds k and v as
// f32 [capacity, kvHeads, headDim] (rows in token order, after RoPE, as the attention op reads them);
// capacity grows in whole chunks, so a step only copies when a chunk fills up.
import { InvalidArgumentError } from '../errors.js';
import { Tensor, TensorArena } from '../tensor/tensor.js';

/** Tokens added to the capacity each time the cache fills (and the smallest capacity). */
export const KV_CACHE_CHUNK = 256;

export class KvCache {
  private keys: Tensor[] = [];
  private values: Tensor[] = [];
  private capacity = 0;
  /** Tokens whose keys and values are stored (the position the next token takes). */
  length = 0;

  /** Key/value heads of each layer (a structurally pruned model's layers may differ). */
  readonly kvHeadsOf: readonly number[];

  constructor(
    readonly layers: number,
    /** Key/value heads: one count for every layer, or one per layer. */
    kvHeads: number | readonly number[],
    readonly headDim: number,
    /** The most tokens the cache may ever hold (the model's context). */
    readonly maxTokens: number,
  ) {
    this.kvHeadsOf = typeof kvHeads === 'number' ? Array.from({ length: layers }, () => kvHeads) : [...kvHeads];
    if (this.kvHeadsOf.length !== layers) throw new InvalidArgumentError(`KV cache: expected ${layers} per-layer head counts, received ${this.kvHeadsOf.length}`);
  }

  /** Bytes held for keys and values. */
  get bytes(): number {
    return 2 * this.capacity * this.kvHeadsOf.reduce((sum, h) => sum + h, 0) * this.headDim * 4;
  }

  /** Makes room for `tokens` tokens in all, growing by whole chunks (capped at maxTokens). */
  reserve(tokens: number): void {
    if (tokens > this.maxTokens) throw new InvalidArgumentError(`the KV cache holds at most ${this.maxTokens} tokens (the model's context), ${tokens} were asked for`);
    if (tokens <= this.capacity) return;
    const capacity = Math.min(this.maxTokens, Math.ceil(tokens / KV_CACHE_CHUNK) * KV_CACHE_CHUNK);
    // The cache outlives any arena the step allocating it runs in.
    const grow = (old: Tensor | undefined, l: number) =>
      TensorArena.outside(() => {
        const next = Tensor.zeros([capacity, this.kvHeadsOf[l], this.headDim]);
        if (old && this.length > 0) (next.data as Float32Array).set((old.data as Float32Array).subarray(0, this.length * this.kvHeadsOf[l] * this.headDim));
        return next;
      });
    this.keys = Array.from({ length: this.layers }, (_, l) => grow(this.keys[l], l));
    this.values = Array.from({ length: this.layers }, (_, l) => grow(this.values[l], l));
    this.capacity = capacity;
  }

  /**
   * Stores layer `layer`'s keys and values k, v [T, kvHeads, headDim] for positions start … start+T−1
   * and returns the layer's keys and values for positions 0 … start+T−1 (views, valid until the next
   * reserve). `start` must be the cache length: a sequence is extended, never rewritten in the middle.
   */
  append(layer: number, start: number, k: Tensor, v: Tensor): { keys: Tensor; values: Tensor } {
    const end = start + k.shape[0];
    if (start !== this.length) throw new InvalidArgumentError(`KV cache: tokens must be appended at position ${this.length}, received ${start}`);
    this.reserve(end);
    const row = this.kvHeadsOf[layer] * this.headDim;
    (this.keys[layer].data as Float32Array).set(k.contiguous().data as Float32Array, start * row);
    (this.values[layer].data as Float32Array).set(v.contiguous().data as Float32Array, start * row);
    return { keys: this.keys[layer].narrow(0, end), values: this.values[layer].narrow(0, end) };
  }

  /** Marks the `tokens` just appended to every layer as stored. */
  advance(tokens: number): void {
    this.length += tokens;
  }

  /** Forgets every token (the memory is kept for the next sequence). */
  clear(): void {
    this.length = 0;
  }
}
