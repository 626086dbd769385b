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
import { loadTokenizer } from '../io/tokenizer.js';
import { decoderBlock } from '../models/block.js';
import { DecoderModel, normAsync, TensorBlockOps } from '../models/decoder.js';
import { attention, attentionAsync, embedding, layerNorm, rmsNorm, rope, siluMul } from '../tensor/nn.js';
import { axpy, gelu, relu } from '../tensor/ops.js';
import { Tensor, TensorArena } from '../tensor/tensor.js';
import { INLINE_ELEMENTS, INLINE_MULTIPLY_ADDS } from './inline.js';
import { KvCache } from './kv-cache.js';
import { DenseLinear, loadLinear, readStoredLinear, WEIGHTS_MODES } from './linear.js';
/** The block's ops for `rows` new tokens at positions start … start+rows−1 of one cached sequence. */
class CachedBlockOps extends TensorBlockOps {
    block;
    cache;
    layer;
    start;
    constructor(config, block, cache, layer, start, positions, invFreq, signal) {
        super(config, block.norms, positions, invFreq, signal, undefined);
        this.block = block;
        this.cache = cache;
        this.layer = layer;
        this.start = start;
    }
    async linear(role, x) {
        const linear = this.block.linears[role];
        const out = Tensor.zeros([x.shape[0], linear.outFeatures]);
        await linear.forward(x, out, this.signal);
        return out;
    }
    attention(q, k, v) {
        // With S cached keys and T queries the op lets query t see keys s ≤ t + (S − T): causal within the
        // new tokens, and everything before them.
        const { keys, values } = this.cache.append(this.layer, this.start, k, v);
        const [rows, heads, headDim] = q.shape;
        if (rows * keys.shape[0] * heads * headDim <= INLINE_MULTIPLY_ADDS)
            return Promise.resolve(attention(q, keys, values));
        return attentionAsync(q, keys, values, { signal: this.signal });
    }
    // A decode step's small ops run inline (inline.ts); the same ops as the base class's async forms.
    norm(which, x) {
        return normOf(this.config, this.norms[which], x, this.signal);
    }
    rope(x) {
        return x.numel > INLINE_ELEMENTS ? super.rope(x) : Promise.resolve(rope(x, this.positions, this.invFreq));
    }
    siluMul(gate, up) {
        return gate.numel > INLINE_ELEMENTS ? super.siluMul(gate, up) : Promise.resolve(siluMul(gate, up));
    }
    activation(kind, x) {
        if (x.numel > INLINE_ELEMENTS)
            return super.activation(kind, x);
        return Promise.resolve(kind === 'relu' ? relu(x, { inPlace: true }) : gelu(x, { inPlace: true }));
    }
    residual(residual, x) {
        return x.numel > INLINE_ELEMENTS ? super.residual(residual, x) : Promise.resolve(axpy(1, x, residual));
    }
    gather(x, tokens) {
        return tokens.numel * x.shape[1] > INLINE_ELEMENTS ? super.gather(x, tokens) : Promise.resolve(embedding(x, tokens));
    }
}
/** The config's norm of x's rows: inline when small (inline.ts), else on a worker. */
function normOf(config, norm, x, signal) {
    if (x.numel > INLINE_ELEMENTS)
        return normAsync(config, norm, x, signal);
    return Promise.resolve(config.norm === 'rms' ? rmsNorm(x, norm.weight, config.normEps) : layerNorm(x, norm.weight, norm.bias, config.normEps));
}
/** Token ids from config.json / generation_config.json: a number, a list of numbers, or absent. */
function tokenIds(value) {
    const list = Array.isArray(value) ? value : value === undefined || value === null ? [] : [value];
    return list.filter((id) => Number.isSafeInteger(id) && id >= 0);
}
export class GenerationSession {
    model;
    embeddings;
    blocks;
    finalNorm;
    lmHead;
    tokenizer;
    eosTokenIds;
    bosTokenId;
    cache;
    // Each pass allocates the same temporaries again; they go back to the arena after it.
    arena = new TensorArena();
    constructor(
    /** The model's description (its checkpoint files are closed: every weight below is resident). */
    model, embeddings, blocks, finalNorm, lmHead, 
    /** The model folder's tokenizer, when it has a tokenizer.json. */
    tokenizer, 
    /** Tokens that end generation (eos_token_id of generation_config.json, else of config.json). */
    eosTokenIds, 
    /** Prepended to an encoded prompt when the tokenizer config asks for it (add_bos_token). */
    bosTokenId) {
        this.model = model;
        this.embeddings = embeddings;
        this.blocks = blocks;
        this.finalNorm = finalNorm;
        this.lmHead = lmHead;
        this.tokenizer = tokenizer;
        this.eosTokenIds = eosTokenIds;
        this.bosTokenId = bosTokenId;
        const c = model.config;
        this.cache = new KvCache(c.layers, c.kvHeads, c.headDim, this.contextLength);
    }
    /**
     * Loads a Hugging Face model folder (every architecture DecoderModel runs) and its tokenizer, if it has
     * one. Each linear runs as loadLinear (linear.ts) chooses from its storage: packed formats and
     * compressed-tensors W4 on their kernels, dense f16/bf16 in their dtype — or, with weights 'f32',
     * everything decoded to dense f32.
     */
    static async load(dir, options = {}) {
        if (!existsSync(dir) || !statSync(dir).isDirectory())
            throw new InvalidArgumentError(`model: expected a model folder, received '${dir}', which is not a folder`);
        const weights = options.weights ?? 'stored';
        if (!WEIGHTS_MODES.includes(weights))
            throw new InvalidArgumentError(`weights: expected ${WEIGHTS_MODES.join(' or ')}, received ${JSON.stringify(weights)}`);
        const model = await DecoderModel.open(dir);
        try {
            const { config, layout } = model;
            const embeddings = await model.loadEmbeddings();
            const blocks = [];
            for (let layer = 0; layer < config.layers; ++layer) {
                const linears = {};
                for (const [role, name] of Object.entries(model.linearRoles(layer))) {
                    if (options.signal?.aborted)
                        throw new AbortError();
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
        }
        finally {
            await model.close();
        }
    }
    get config() {
        return this.model.config;
    }
    /** The folder the model was loaded from. */
    get dir() {
        return this.model.dir;
    }
    /**
     * The most tokens a sequence may hold: max_position_embeddings, or a sliding attention window if
     * shorter (sparq's attention does not slide, so it stops where the window would start to).
     */
    get contextLength() {
        return Math.min(this.config.maxPositions, this.config.slidingWindow ?? Infinity);
    }
    /** Tokens in the KV cache (the position of the next token). */
    get length() {
        return this.cache.length;
    }
    /** How each linear layer is held (format → count), e.g. { 'dense-f32': 36 }. */
    linearFormats() {
        const counts = {};
        for (const linear of [...this.blocks.flatMap((b) => Object.values(b.linears)), this.lmHead])
            counts[linear.format] = (counts[linear.format] ?? 0) + 1;
        return counts;
    }
    /** Token ids of a prompt: the tokenizer's, after the BOS token when the tokenizer config adds one. */
    encode(text) {
        if (!this.tokenizer)
            throw new InvalidFileError(`${this.dir} has no tokenizer.json; give the prompt as token ids`);
        const ids = this.tokenizer.encode(text);
        if (this.bosTokenId === undefined || ids[0] === this.bosTokenId)
            return ids;
        return Int32Array.from([this.bosTokenId, ...ids]);
    }
    /** Starts a new sequence with `ids` (the prompt) and returns the logits [vocab] after its last token. */
    prefill(ids, signal) {
        this.cache.clear();
        return this.append(ids, signal);
    }
    /** Continues the sequence with `ids` (one token when decoding) and returns the logits after the last. */
    async append(ids, signal) {
        if (signal?.aborted)
            throw new AbortError();
        const start = this.cache.length;
        const rows = ids.length;
        const { vocabSize } = this.config;
        if (rows === 0)
            throw new InvalidArgumentError('ids: expected at least one token, received none');
        if (start + rows > this.contextLength) {
            throw new InvalidArgumentError(`the sequence would hold ${start + rows} tokens; the model's context is ${this.contextLength} (max_position_embeddings${this.config.slidingWindow ? ' or sliding_window' : ''})`);
        }
        for (let i = 0; i < rows; ++i) {
            if (!Number.isInteger(ids[i]) || ids[i] < 0 || ids[i] >= vocabSize)
                throw new InvalidArgumentError(`ids[${i}]: expected a token id from 0 to ${vocabSize - 1}, received ${ids[i]}`);
        }
        this.cache.reserve(start + rows);
        try {
            return await this.arena.run(async () => {
                let h = this.model.embed(this.embeddings, Int32Array.from(ids), rows, start);
                const positions = Tensor.fromTypedArray(Int32Array.from({ length: rows }, (_, i) => start + i));
                for (let layer = 0; layer < this.blocks.length; ++layer) {
                    const ops = new CachedBlockOps(this.config, this.blocks[layer], this.cache, layer, start, positions, this.model.invFreq, signal);
                    h = await decoderBlock(this.config, ops, h, rows, layer);
                }
                this.cache.advance(rows);
                const last = await normOf(this.config, this.finalNorm, h.narrow(rows - 1, rows), signal);
                const logits = Tensor.zeros([1, vocabSize]);
                await this.lmHead.forward(last, logits, signal);
                const values = Float32Array.from(logits.data); // a copy: the arena reuses its buffer
                if (!values.every(Number.isFinite))
                    throw new NonFiniteError(`${this.dir}: the logits at position ${start + rows - 1} hold NaN or infinite values (the activations overflowed float32)`);
                return values;
            });
        }
        finally {
            this.arena.recycle();
        }
    }
}
//# sourceMappingURL=session.js.map