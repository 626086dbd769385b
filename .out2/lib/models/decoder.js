// Decoder-only language models run one block at a time straight from a checkpoint: the model object
// holds only the config and the open files; blocks, the embeddings and the head are loaded on request
// and dropped by the caller, so memory stays about one block.
//
// An architecture is described as data (layouts.ts: where each parameter lives); the block itself is
// block.ts, shared with the gradient tape.
import { join } from 'node:path';
import { Checkpoint } from '../io/checkpoint.js';
import { CtCheckpoint } from '../io/compressed-tensors.js';
import { PackedCheckpoint } from '../io/packed-folder.js';
import { readJsonObject } from '../io/text.js';
import { addBias, attentionAsync, embedding, embeddingAsync, layerNormAsync, rmsNormAsync, ropeAsync, ropeInverseFrequencies, scatterAdd, siluMulAsync, } from '../tensor/nn.js';
import { axpy, axpyAsync, dotAsync, gemmAsync, topkMask, unaryAsync } from '../tensor/ops.js';
import { NonFiniteError } from '../errors.js';
import { Tensor } from '../tensor/tensor.js';
import { parseConfig } from './config.js';
import { decoderBlock } from './block.js';
import { blockLinearRoles, LAYOUTS } from './layouts.js';
import { checkParameters, parameterPlan } from './parameters.js';
import { ExpertWidthView } from './expert-widths.js';
export { inputGroups, LAYOUTS } from './layouts.js';
/** RMSNorm or LayerNorm (the config's) of x's rows, on a worker thread. */
export function normAsync(config, norm, x, signal) {
    return config.norm === 'rms' ? rmsNormAsync(x, norm.weight, config.normEps, { signal }) : layerNormAsync(x, norm.weight, norm.bias, config.normEps, { signal });
}
/**
 * The block's ops on eager f32 tensors, each a native async call (the event loop keeps running).
 * Subclasses supply the two that differ between runs — how a linear layer is applied, and where attention
 * finds its keys and values: EagerOps (below) runs stored dense weights over whole windows, lib/generate
 * runs LinearWeights against a KV cache.
 */
export class TensorBlockOps {
    config;
    norms;
    positions;
    invFreq;
    signal;
    observe;
    constructor(config, norms, 
    /** Each row's position (i32 [N]), for the rotary embedding. */
    positions, invFreq, signal, observe) {
        this.config = config;
        this.norms = norms;
        this.positions = positions;
        this.invFreq = invFreq;
        this.signal = signal;
        this.observe = observe;
    }
    norm(which, x) {
        return normAsync(this.config, this.norms[which], x, this.signal);
    }
    reshape(x, shape) {
        return x.reshape(shape);
    }
    rope(x) {
        return ropeAsync(x, this.positions, this.invFreq, { signal: this.signal });
    }
    siluMul(gate, up) {
        return siluMulAsync(gate, up, { signal: this.signal });
    }
    activation(kind, x) {
        return unaryAsync(kind, x, { inPlace: true, signal: this.signal });
    }
    residual(residual, x) {
        return axpyAsync(1, x, residual, { signal: this.signal });
    }
    route(logits, moe) {
        const [T, E] = logits.shape;
        const { weights, tokensOf } = routeTokens(logits.data, T, E, moe);
        return { weights: Tensor.fromTypedArray(weights, [T, E]), tokens: tokensOf.map((list) => Tensor.fromTypedArray(Int32Array.from(list))) };
    }
    sigmoidScale(x, gate) {
        const rows = x.shape[0];
        const out = Tensor.zeros(x.shape);
        scatterAdd(out, x, allRows(rows), Tensor.fromTypedArray(sigmoid(gate.data)));
        return out;
    }
    gather(x, tokens) {
        return embeddingAsync(x, tokens, { signal: this.signal });
    }
    combine(routing, outputs, dim) {
        const [T, E] = routing.weights.shape;
        const w = routing.weights.data;
        const out = Tensor.zeros([T, dim]);
        outputs.forEach((rows, e) => {
            if (!rows)
                return;
            const tokens = routing.tokens[e];
            scatterAdd(out, rows, tokens, Tensor.fromTypedArray(Float32Array.from(tokens.data, (t) => w[t * E + e])));
        });
        return out;
    }
}
/** Row indices 0 … rows − 1 (i32). */
export function allRows(rows) {
    return Tensor.fromTypedArray(Int32Array.from({ length: rows }, (_, i) => i));
}
/** σ(x) elementwise, in float64 then rounded. */
export function sigmoid(x) {
    return Float32Array.from(x, (v) => 1 / (1 + Math.exp(-v)));
}
/** Stored dense weights over windows of rows: N / sequenceLength sequences, attention within each. */
class EagerOps extends TensorBlockOps {
    block;
    sequenceLength;
    constructor(block, positions, invFreq, sequenceLength, signal, observe) {
        super(block.config, block.norms, positions, invFreq, signal, observe);
        this.block = block;
        this.sequenceLength = sequenceLength;
    }
    async linear(role, x) {
        const linear = this.block.linears[role];
        const y = await gemmAsync(x, linear.weight, { transB: true, signal: this.signal });
        if (linear.bias)
            addBias(y, linear.bias);
        return y;
    }
    async attention(q, k, v) {
        const rows = q.shape[0];
        const out = Tensor.zeros(q.shape);
        for (let start = 0; start < rows; start += this.sequenceLength) {
            const end = Math.min(rows, start + this.sequenceLength);
            await attentionAsync(q.narrow(start, end), k.narrow(start, end), v.narrow(start, end), { out: out.narrow(start, end), signal: this.signal });
        }
        return out;
    }
}
/** One decoder block's parameters (f32) and its forward pass (lib/models/block.ts). */
export class DecoderBlock {
    index;
    config;
    linears;
    norms;
    constructor(index, config, linears, norms) {
        this.index = index;
        this.config = config;
        this.linears = linears;
        this.norms = norms;
    }
    /**
     * h [N, hidden] ← h + attention(…) + mlp(…), in place (h is also returned), on native async ops. The N
     * rows are N / sequenceLength sequences (default: one sequence) at `positions` (i32 [N]); the linear
     * layers run on all rows at once, attention within each sequence.
     */
    forward(h, positions, invFreq, options = {}) {
        const rows = h.shape[0];
        const ops = new EagerOps(this, positions, invFreq, options.sequenceLength ?? rows, options.signal, options.observe);
        return decoderBlock(this.config, ops, h, rows, this.index);
    }
}
/**
 * Routing as Hugging Face runs it (config.ts MoeConfig): softmax over each token's router logits, its top-k
 * experts (ties as topkMask breaks them), their probabilities as weights — renormalized to sum to one
 * (plus `normalizeEpsilon`) when `normalizeTopK`.
 */
export function routeTokens(logits, T, E, moe) {
    const { topK } = moe;
    const probabilities = new Float32Array(T * E);
    for (let t = 0; t < T; ++t) {
        const row = logits.subarray(t * E, (t + 1) * E);
        const max = Math.max(...row);
        let sum = 0;
        for (let e = 0; e < E; ++e)
            sum += Math.exp(row[e] - max);
        for (let e = 0; e < E; ++e)
            probabilities[t * E + e] = Math.exp(row[e] - max) / sum;
    }
    const chosen = topkMask(Tensor.fromTypedArray(probabilities, [T, E]), topK).data;
    const totals = new Float64Array(T);
    const weights = new Float32Array(T * E);
    const tokensOf = Array.from({ length: E }, () => []);
    for (let t = 0; t < T; ++t) {
        if (moe.normalizeTopK) {
            for (let e = 0; e < E; ++e)
                if (chosen[t * E + e])
                    totals[t] += probabilities[t * E + e];
            totals[t] += moe.normalizeEpsilon;
        }
        else
            totals[t] = 1;
        for (let e = 0; e < E; ++e) {
            if (!chosen[t * E + e])
                continue;
            weights[t * E + e] = probabilities[t * E + e] / totals[t];
            tokensOf[e].push(t);
        }
    }
    return { probabilities, chosen, totals, weights, tokensOf };
}
export class DecoderModel {
    dir;
    config;
    checkpoint;
    /** Rotary inverse frequencies; undefined for learned positions. */
    invFreq;
    layout;
    constructor(dir, config, checkpoint) {
        this.dir = dir;
        this.config = config;
        this.checkpoint = checkpoint;
        this.layout = LAYOUTS[config.architecture];
        const s = config.ropeScaling;
        this.invFreq =
            config.learnedPositionOffset === undefined
                ? Tensor.fromTypedArray(ropeInverseFrequencies(config.headDim, config.ropeTheta, s.type === 'default' ? undefined : s))
                : undefined;
    }
    /**
     * Opens a model folder; its tensors must be exactly those config.json implies (see models/parameters.ts).
     * A compressed-tensors pack-quantized checkpoint, or a sparq packed folder (config.json's sparq_format),
     * is read through a view that decodes each quantized or packed linear's weight when its block loads.
     */
    static async open(dir) {
        const configFile = join(dir, 'config.json');
        const json = await readJsonObject(configFile);
        const config = parseConfig(json, configFile);
        const files = await Checkpoint.open(dir);
        let checkpoint = files;
        try {
            // A sparq packed folder keeps an int4 source's quantization_config for other loaders; sparq reads
            // its layers through sparq_format, which covers them.
            if (json.sparq_format !== undefined) {
                const expected = new Map(parameterPlan(config).map((p) => [p.name, p]));
                checkpoint = await PackedCheckpoint.wrap(files, json.sparq_format, configFile, expected);
            }
            else if (json.quantization_config !== undefined)
                checkpoint = CtCheckpoint.wrap(files, json.quantization_config, configFile);
            if (config.expertWidths?.format === 'shrunk')
                checkpoint = await ExpertWidthView.wrap(checkpoint, config.expertWidths, LAYOUTS[config.architecture], config.hiddenSize, configFile);
            const stored = await Promise.all(checkpoint.names().map((name) => checkpoint.info(name)));
            checkParameters(config, stored, dir, configFile);
        }
        catch (error) {
            await files.close();
            throw error;
        }
        return new DecoderModel(dir, config, checkpoint);
    }
    /** The quantized linears and their schemes, for a compressed-tensors checkpoint. */
    get quantized() {
        return this.checkpoint instanceof CtCheckpoint ? this.checkpoint.quantized : undefined;
    }
    /** A parameter as f32; NaN or infinite values are refused by name (they would poison every output). */
    async read(name) {
        const tensor = await this.checkpoint.read(name, { dtype: 'f32' });
        if (!Number.isFinite(await dotAsync(tensor, tensor))) {
            throw new NonFiniteError(`${name} holds NaN or infinite values (in ${this.checkpoint.shardPath(name)}); the model cannot be run or compressed`);
        }
        return tensor;
    }
    async readNorm(name) {
        return { weight: await this.read(`${name}.weight`), bias: this.checkpoint.has(`${name}.bias`) ? await this.read(`${name}.bias`) : undefined };
    }
    /**
     * Block `layer`'s linear layers by role, relative to the block (layouts.ts blockLinearRoles: experts as
     * expert.<e>.gate/up/down, the shared expert as shared.gate/up/down and shared_expert_gate).
     */
    linearRoles(layer) {
        return blockLinearRoles(this.config, layer);
    }
    /** Names of every linear layer's weight, block by block. */
    linearNames() {
        const names = [];
        for (let layer = 0; layer < this.config.layers; ++layer) {
            for (const linear of Object.values(this.linearRoles(layer)))
                names.push(`${this.layout.block(layer)}${linear}.weight`);
        }
        return names;
    }
    async loadEmbeddings() {
        return { tokens: await this.read(this.layout.embed), positions: this.layout.positions ? await this.read(this.layout.positions) : undefined };
    }
    /**
     * Hidden states [N, hidden] of token ids: sequences of `sequenceLength` (default: all N) at positions
     * firstPosition, firstPosition + 1, … (default 0; a decoder with a KV cache continues a sequence).
     */
    embed(embeddings, ids, sequenceLength = ids.length, firstPosition = 0) {
        const h = embedding(embeddings.tokens, Tensor.fromTypedArray(ids));
        if (embeddings.positions) {
            const offset = (this.config.learnedPositionOffset ?? 0) + firstPosition;
            const positions = Int32Array.from({ length: ids.length }, (_, i) => (i % sequenceLength) + offset);
            axpy(1, embedding(embeddings.positions, Tensor.fromTypedArray(positions)), h);
        }
        return h;
    }
    async loadBlock(index) {
        const prefix = this.layout.block(index);
        const linears = {};
        for (const [role, name] of Object.entries(this.linearRoles(index))) {
            const bias = `${prefix}${name}.bias`;
            linears[role] = { weight: await this.read(`${prefix}${name}.weight`), bias: this.checkpoint.has(bias) ? await this.read(bias) : undefined };
        }
        return new DecoderBlock(index, this.config, linears, await this.loadBlockNorms(index));
    }
    /** A block's norms: before attention, before the MLP, and Qwen3's q/k norms. */
    async loadBlockNorms(index) {
        const prefix = this.layout.block(index);
        const qk = this.config.qkNorm && this.layout.qNorm && this.layout.kNorm;
        return {
            attention: await this.readNorm(prefix + this.layout.attentionNorm),
            mlp: await this.readNorm(prefix + this.layout.mlpNorm),
            q: qk ? await this.readNorm(prefix + this.layout.qNorm) : undefined,
            k: qk ? await this.readNorm(prefix + this.layout.kNorm) : undefined,
        };
    }
    /** The norm before the output projection. */
    loadFinalNorm() {
        return this.readNorm(this.layout.finalNorm);
    }
    /** The final norm and the output projection (the token embedding when tied). */
    async loadHead() {
        const tied = this.config.tiedEmbeddings;
        return { norm: await this.loadFinalNorm(), weight: await this.read(tied ? this.layout.embed : this.layout.lmHead) };
    }
    /** Logits [T, vocab] of final hidden states h [T, hidden]. */
    async logits(head, h, signal) {
        return gemmAsync(await normAsync(this.config, head.norm, h, signal), head.weight, { transB: true, signal });
    }
    /**
     * Throws NonFiniteError when hidden states [N, hidden] hold NaN or infinities after `stage` (a block
     * index, or 'embedding'). Parameters were checked when loaded, so this means the values overflowed.
     */
    async checkFiniteStates(states, stage, signal) {
        if (Number.isFinite(await dotAsync(states, states, { signal })))
            return;
        const where = stage === 'embedding' ? 'the embeddings' : `block ${stage} (${this.layout.block(stage)}*)`;
        throw new NonFiniteError(`${where} produced NaN or infinite activations although every weight is finite: the values overflowed float32`);
    }
    async close() {
        await this.checkpoint.close();
    }
}
//# sourceMappingURL=decoder.js.map