// A decoder with a KV cache: the whole model resident (this is inference, not the streaming compression
// pipeline), every projection a LinearWeight (linear.ts), and the block math from lib/models/block.ts run
// over ops that append each layer's keys and values to the cache and attend to everything cached.
//
//   prefill(prompt):  the T prompt tokens in one pass at positions 0 … T−1, causal attention among them
//   append([token]):  one token at position S, attending to the S cached tokens and itself
// Both return the logits of the last token only (the one the next token is chosen from).
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { AbortError, InvalidArgumentError, InvalidFileError, NonFiniteError } from '../errors.js';
import { readJsonObject } from '../io/text.js';
import { loadTokenizer, type TextTokenizer } from '../io/tokenizer.js';
import { decoderBlock, type BlockNorm } from '../models/block.js';
import { blockConfig, type ModelConfig } from '../models/config.js';
import { DecoderModel, normAsync, TensorBlockOps, type Embeddings, type Norm } from '../models/decoder.js';
import { attention, attentionAsync, embedding, layerNorm, rmsNorm, rope, siluMul } from '../tensor/nn.js';
import { axpy, gelu, relu } from '../tensor/ops.js';
import { Tensor, TensorArena } from '../tensor/tensor.js';
import { INLINE_ELEMENTS, INLINE_MULTIPLY_ADDS } from './inline.js';
import { KvCache } from './kv-cache.js';
import { DenseLinear, loadLinear, readStoredLinear, WEIGHTS_MODES, type LinearWeight, type WeightsMode } from './linear.js';

/** One block's weights for generation: its norms and its linear layers by role (as DecoderModel.linearRoles). */
export interface GenerationBlock {
  norms: Partial<Record<BlockNorm, Norm>>;
  linears: Record<string, LinearWeight>;
}

/** The block's ops for `rows` new tokens at positions start … start+rows−1 of one cached sequence. */
class CachedBlockOps extends TensorBlockOps {
  constructor(
    config: ModelConfig,
    private readonly block: GenerationBlock,
    private readonly cache: KvCache,
    private readonly layer: number,
    private readonly start: number,
    positions: Tensor,
    invFreq: Tensor | undefined,
    signal: AbortSignal | undefined,
  ) {
    super(config, block.norms, positions, invFreq, signal, undefined);
  }

  async linear(role: string, x: Tensor): Promise<Tensor> {
    const linear = this.block.linears[role];
    const out = Tensor.zeros([x.shape[0], linear.outFeatures]);
    await linear.forward(x, out, this.signal);
    return out;
  }

  attention(q: Tensor, k: Tensor, v: Tensor): Promise<Tensor> {
    // With S cached keys and T queries the op lets query t see keys s ≤ t + (S − T): causal within the
    // new tokens, and everything before them.
    const { keys, values } = this.cache.append(this.layer, this.start, k, v);
    const [rows, heads, headDim] = q.shape;
    if (rows * keys.shape[0] * heads * headDim <= INLINE_MULTIPLY_ADDS) return Promise.resolve(attention(q, keys, values));
    return attentionAsync(q, keys, values, { signal: this.signal });
  }

  // A decode step's small ops run inline (inline.ts); the same ops as the base class's async forms.
  override norm(which: BlockNorm, x: Tensor): Promise<Tensor> {
    return normOf(this.config, this.norms[which]!, x, this.signal);
  }

  override rope(x: Tensor): Promise<Tensor> {
    return x.numel > INLINE_ELEMENTS ? super.rope(x) : Promise.resolve(rope(x, this.positions, this.invFreq!));
  }

  override siluMul(gate: Tensor, up: Tensor): Promise<Tensor> {
    return gate.numel > INLINE_ELEMENTS ? super.siluMul(gate, up) : Promise.resolve(siluMul(gate, up));
  }

  override activation(kind: 'relu' | 'gelu', x: Tensor): Promise<Tensor> {
    if (x.numel > INLINE_ELEMENTS) return super.activation(kind, x);
    return Promise.resolve(kind === 'relu' ? relu(x, { inPlace: true }) : gelu(x, { inPlace: true }));
  }

  override residual(residual: Tensor, x: Tensor): Promise<Tensor> {
    return x.numel > INLINE_ELEMENTS ? super.residual(residual, x) : Promise.resolve(axpy(1, x, residual));
  }

  override gather(x: Tensor, tokens: Tensor): Promise<Tensor> {
    return tokens.numel * x.shape[1] > INLINE_ELEMENTS ? super.gather(x, tokens) : Promise.resolve(embedding(x, tokens));
  }
}

/** The config's norm of x's rows: inline when small (inline.ts), else on a worker. */
function normOf(config: ModelConfig, norm: Norm, x: Tensor, signal: AbortSignal | undefined): Promise<Tensor> {
  if (x.numel > INLINE_ELEMENTS) return normAsync(config, norm, x, signal);
  return Promise.resolve(config.norm === 'rms' ? rmsNorm(x, norm.weight, config.normEps) : layerNorm(x, norm.weight, norm.bias, config.normEps));
}

/** Token ids from config.json / generation_config.json: a number, a list of numbers, or absent. */
function tokenIds(value: unknown): number[] {
  const list = Array.isArray(value) ? value : value === undefined || value === null ? [] : [value];
  return list.filter((id): id is number => Number.isSafeInteger(id) && (id as number) >= 0);
}

export class GenerationSession {
  private readonly cache: KvCache;
  // Each pass allocates the same temporaries again; they go back to the arena after it.
  private readonly arena = new TensorArena();

  private constructor(
    /** The model's description (its checkpoint files are closed: every weight below is resident). */
    private readonly model: DecoderModel,
    private readonly embeddings: Embeddings,
    private readonly blocks: GenerationBlock[],
    private readonly finalNorm: Norm,
    private readonly lmHead: LinearWeight,
    /** The model folder's tokenizer, when it has a tokenizer.json. */
    readonly tokenizer: TextTokenizer | undefined,
    /** Tokens that end generation (eos_token_id of generation_config.json, else of config.json). */
    readonly eosTokenIds: ReadonlySet<number>,
    /** Prepended to an encoded prompt when the tokenizer config asks for it (add_bos_token). */
    readonly bosTokenId: number | undefined,
  ) {
    const c = model.config;
    this.cache = new KvCache(c.layers, Array.from({ length: c.layers }, (_, l) => blockConfig(c, l).kvHeads), c.headDim, this.contextLength);
  }

  /**
   * Loads a Hugging Face model folder (every architecture DecoderModel runs) and its tokenizer, if it has
   * one. Each linear runs as loadLinear (linear.ts) chooses from its storage: packed formats and
   * compressed-tensors W4 on their kernels, dense f16/bf16 in their dtype — or, with weights 'f32',
   * everything decoded to dense f32.
   */
  static async load(dir: string, options: { signal?: AbortSignal; weights?: WeightsMode } = {}): Promise<GenerationSession> {
    if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new InvalidArgumentError(`model: expected a model folder, received '${dir}', which is not a folder`);
    const weights = options.weights ?? 'stored';
    if (!WEIGHTS_MODES.includes(weights)) throw new InvalidArgumentError(`weights: expected ${WEIGHTS_MODES.join(' or ')}, received ${JSON.stringify(weights)}`);
    const model = await DecoderModel.open(dir);
    try {
      const { config, layout } = model;
      const embeddings = await model.loadEmbeddings();
      const blocks: GenerationBlock[] = [];
      for (let layer = 0; layer < config.layers; ++layer) {
        const linears: Record<string, LinearWeight> = {};
        for (const [role, name] of Object.entries(model.linearRoles(layer))) {
          if (options.signal?.aborted) throw new AbortError();
          linears[role] = await loadLinear(await readStoredLinear(model, layout.block(layer) + name), options.signal, weights);
        }
        blocks.push({ norms: await model.loadBlockNorms(layer), linears });
      }
      const lmHead = config.tiedEmbeddings ? new DenseLinear(embeddings.tokens) : await loadLinear(await readStoredLinear(model, layout.lmHead.replace(/\.weight$/, '')), options.signal, weights);
      const configJson = await readJsonObject(join(dir, 'config.json'));
      const generationFile = join(dir, 'generation_config.json');
      const generationJson = existsSync(generationFile) ? await readJsonObject(generationFile) : {};
      const tokenizerConfigFile = join(dir, 'tokenizer_config.json');
      const tokenizerConfig = existsSync(tokenizerConfigFile) ? await readJsonObject(tokenizerConfigFile) : {};
      const eos = tokenIds(generationJson.eos_token_id ?? configJson.eos_token_id);
      const bos = tokenIds(generationJson.bos_token_id ?? configJson.bos_token_id)[0];
      const tokenizer = existsSync(join(dir, 'tokenizer.json')) ? await loadTokenizer(dir) : undefined;
      return new GenerationSession(model, embeddings, blocks, await model.loadFinalNorm(), lmHead, tokenizer, new Set(eos), tokenizerConfig.add_bos_token === true ? bos : undefined);
    } finally {
      await model.close();
    }
  }

  get config(): ModelConfig {
    return this.model.config;
  }

  /** The folder the model was loaded from. */
  get dir(): string {
    return this.model.dir;
  }

  /**
   * The most tokens a sequence may hold: max_position_embeddings, or a sliding attention window if
   * shorter (sparq's attention does not slide, so it stops where the window would start to).
   */
  get contextLength(): number {
    return Math.min(this.config.maxPositions, this.config.slidingWindow ?? Infinity);
  }

  /** Tokens in the KV cache (the position of the next token). */
  get length(): number {
    return this.cache.length;
  }

  /** How each linear layer is held (format → count), e.g. { 'dense-f32': 36 }. */
  linearFormats(): Record<string, number> {
    const counts: Record<string, number> = {};
    for (const linear of [...this.blocks.flatMap((b) => Object.values(b.linears)), this.lmHead]) counts[linear.format] = (counts[linear.format] ?? 0) + 1;
    return counts;
  }

  /** Token ids of a prompt: the tokenizer's, after the BOS token when the tokenizer config adds one. */
  encode(text: string): Int32Array {
    if (!this.tokenizer) throw new InvalidFileError(`${this.dir} has no tokenizer.json; give the prompt as token ids`);
    const ids = this.tokenizer.encode(text);
    if (this.bosTokenId === undefined || ids[0] === this.bosTokenId) return ids;
    return Int32Array.from([this.bosTokenId, ...ids]);
  }

  /** Starts a new sequence with `ids` (the prompt) and returns the logits [vocab] after its last token. */
  prefill(ids: ArrayLike<number>, signal?: AbortSignal): Promise<Float32Array> {
    this.cache.clear();
    return this.append(ids, signal);
  }

  /** Continues the sequence with `ids` (one token when decoding) and returns the logits after the last. */
  async append(ids: ArrayLike<number>, signal?: AbortSignal): Promise<Float32Array> {
    if (signal?.aborted) throw new AbortError();
    const start = this.cache.length;
    const rows = ids.length;
    const { vocabSize } = this.config;
    if (rows === 0) throw new InvalidArgumentError('ids: expected at least one token, received none');
    if (start + rows > this.contextLength) {
      throw new InvalidArgumentError(`the sequence would hold ${start + rows} tokens; the model's context is ${this.contextLength} (max_position_embeddings${this.config.slidingWindow ? ' or sliding_window' : ''})`);
    }
    for (let i = 0; i < rows; ++i) {
      if (!Number.isInteger(ids[i]) || ids[i] < 0 || ids[i] >= vocabSize) throw new InvalidArgumentError(`ids[${i}]: expected a token id from 0 to ${vocabSize - 1}, received ${ids[i]}`);
    }
    this.cache.reserve(start + rows);
    try {
      return await this.arena.run(async () => {
        let h = this.model.embed(this.embeddings, Int32Array.from(ids), rows, start);
        const positions = Tensor.fromTypedArray(Int32Array.from({ length: rows }, (_, i) => start + i));
        for (let layer = 0; layer < this.blocks.length; ++layer) {
          const config = blockConfig(this.config, layer);
          const ops = new CachedBlockOps(config, this.blocks[layer], this.cache, layer, start, positions, this.model.invFreq, signal);
          h = await decoderBlock(config, ops, h, rows, layer);
        }
        this.cache.advance(rows);
        const last = await normOf(this.config, this.finalNorm, h.narrow(rows - 1, rows), signal);
        const logits = Tensor.zeros([1, vocabSize]);
        await this.lmHead.forward(last, logits, signal);
        const values = Float32Array.from(logits.data as Float32Array); // a copy: the arena reuses its buffer
        if (!values.every(Number.isFinite)) throw new NonFiniteError(`${this.dir}: the logits at position ${start + rows - 1} hold NaN or infinite values (the activations overflowed float32)`);
        return values;
      });
    } finally {
      this.arena.recycle();
    }
  }
}
