// Decoder-only language models run one block at a time straight from a checkpoint: the model object
// holds only the config and the open files; blocks, the embeddings and the head are loaded on request
// and dropped by the caller, so memory stays about one block.
//
// An architecture is described as data (layouts.ts: where each parameter lives); the block itself is
// block.ts, shared with the gradient tape.
import { join } from 'node:path';
import { Checkpoint, type TensorSource } from '../io/checkpoint.js';
import { CtCheckpoint, type CtWeightScheme } from '../io/compressed-tensors.js';
import { PackedCheckpoint } from '../io/packed-folder.js';
import { readJsonObject } from '../io/text.js';
import {
  addBias,
  attentionAsync,
  embedding,
  embeddingAsync,
  layerNormAsync,
  rmsNormAsync,
  ropeAsync,
  ropeInverseFrequencies,
  scatterAdd,
  siluMulAsync,
} from '../tensor/nn.js';
import { axpy, axpyAsync, dotAsync, gemmAsync, topkMask, unaryAsync } from '../tensor/ops.js';
import { NonFiniteError } from '../errors.js';
import { Tensor } from '../tensor/tensor.js';
import { blockConfig, parseConfig, type ModelConfig, type MoeConfig } from './config.js';
import { decoderBlock, type BlockNorm, type BlockOps, type BlockRouting } from './block.js';
import { blockLinearRoles, LAYOUTS, type Layout } from './layouts.js';
import { checkParameters, parameterPlan } from './parameters.js';
import { ExpertWidthView } from './expert-widths.js';

export { inputGroups, LAYOUTS, type InputGroup, type Layout } from './layouts.js';

export interface Linear {
  weight: Tensor;
  bias?: Tensor;
}

export interface Norm {
  weight: Tensor;
  bias?: Tensor;
}

/**
 * Sees the input of a group of linear layers during a block's forward pass (the compression pipeline
 * accumulates calibration statistics from it). Groups are named as in `inputGroups`. It may return a
 * promise (awaited before the pass goes on) or throw to end the pass early.
 */
export type InputObserver = (group: string, input: Tensor) => void | Promise<void>;

export interface ForwardOptions {
  /** Rows per sequence (default: all rows are one sequence); attention stays within each sequence. */
  sequenceLength?: number;
  observe?: InputObserver;
  signal?: AbortSignal;
}

/** RMSNorm or LayerNorm (the config's) of x's rows, on a worker thread. */
export function normAsync(config: ModelConfig, norm: Norm, x: Tensor, signal?: AbortSignal): Promise<Tensor> {
  return config.norm === 'rms' ? rmsNormAsync(x, norm.weight, config.normEps, { signal }) : layerNormAsync(x, norm.weight, norm.bias, config.normEps, { signal });
}

/**
 * The block's ops on eager f32 tensors, each a native async call (the event loop keeps running).
 * Subclasses supply the two that differ between runs — how a linear layer is applied, and where attention
 * finds its keys and values: EagerOps (below) runs stored dense weights over whole windows, lib/generate
 * runs LinearWeights against a KV cache.
 */
export abstract class TensorBlockOps implements BlockOps<Tensor> {
  constructor(
    protected readonly config: ModelConfig,
    protected readonly norms: Partial<Record<BlockNorm, Norm>>,
    /** Each row's position (i32 [N]), for the rotary embedding. */
    protected readonly positions: Tensor,
    protected readonly invFreq: Tensor | undefined,
    protected readonly signal: AbortSignal | undefined,
    readonly observe: InputObserver | undefined,
  ) {}

  abstract linear(role: string, x: Tensor): Promise<Tensor>;
  abstract attention(q: Tensor, k: Tensor, v: Tensor): Promise<Tensor>;

  norm(which: BlockNorm, x: Tensor): Promise<Tensor> {
    return normAsync(this.config, this.norms[which]!, x, this.signal);
  }

  reshape(x: Tensor, shape: number[]): Tensor {
    return x.reshape(shape);
  }

  rope(x: Tensor): Promise<Tensor> {
    return ropeAsync(x, this.positions, this.invFreq!, { signal: this.signal });
  }

  siluMul(gate: Tensor, up: Tensor): Promise<Tensor> {
    return siluMulAsync(gate, up, { signal: this.signal });
  }

  activation(kind: 'relu' | 'gelu', x: Tensor): Promise<Tensor> {
    return unaryAsync(kind, x, { inPlace: true, signal: this.signal });
  }

  residual(residual: Tensor, x: Tensor): Promise<Tensor> {
    return axpyAsync(1, x, residual, { signal: this.signal });
  }

  route(logits: Tensor, moe: MoeConfig): BlockRouting<Tensor> {
    const [T, E] = logits.shape;
    const { weights, tokensOf } = routeTokens(logits.data as Float32Array, T, E, moe);
    return { weights: Tensor.fromTypedArray(weights, [T, E]), tokens: tokensOf.map((list) => Tensor.fromTypedArray(Int32Array.from(list))) };
  }

  sigmoidScale(x: Tensor, gate: Tensor): Tensor {
    const rows = x.shape[0];
    const out = Tensor.zeros(x.shape);
    scatterAdd(out, x, allRows(rows), Tensor.fromTypedArray(sigmoid(gate.data as Float32Array)));
    return out;
  }

  gather(x: Tensor, tokens: Tensor): Promise<Tensor> {
    return embeddingAsync(x, tokens, { signal: this.signal });
  }

  combine(routing: BlockRouting<Tensor>, outputs: (Tensor | undefined)[], dim: number): Tensor {
    const [T, E] = routing.weights.shape;
    const w = routing.weights.data as Float32Array;
    const out = Tensor.zeros([T, dim]);
    outputs.forEach((rows, e) => {
      if (!rows) return;
      const tokens = routing.tokens[e];
      scatterAdd(out, rows, tokens, Tensor.fromTypedArray(Float32Array.from(tokens.data as Int32Array, (t) => w[t * E + e])));
    });
    return out;
  }
}

/** Row indices 0 … rows − 1 (i32). */
export function allRows(rows: number): Tensor {
  return Tensor.fromTypedArray(Int32Array.from({ length: rows }, (_, i) => i));
}

/** σ(x) elementwise, in float64 then rounded. */
export function sigmoid(x: Float32Array): Float32Array {
  return Float32Array.from(x, (v) => 1 / (1 + Math.exp(-v)));
}

/** Stored dense weights over windows of rows: N / sequenceLength sequences, attention within each. */
class EagerOps extends TensorBlockOps {
  constructor(
    private readonly block: DecoderBlock,
    positions: Tensor,
    invFreq: Tensor | undefined,
    private readonly sequenceLength: number,
    signal: AbortSignal | undefined,
    observe: InputObserver | undefined,
  ) {
    super(block.config, block.norms, positions, invFreq, signal, observe);
  }

  async linear(role: string, x: Tensor): Promise<Tensor> {
    const linear = this.block.linears[role];
    const y = await gemmAsync(x, linear.weight, { transB: true, signal: this.signal });
    if (linear.bias) addBias(y, linear.bias);
    return y;
  }

  async attention(q: Tensor, k: Tensor, v: Tensor): Promise<Tensor> {
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
  constructor(
    readonly index: number,
    readonly config: ModelConfig,
    readonly linears: Record<string, Linear>,
    readonly norms: Partial<Record<BlockNorm, Norm>>,
  ) {}

  /**
   * h [N, hidden] ← h + attention(…) + mlp(…), in place (h is also returned), on native async ops. The N
   * rows are N / sequenceLength sequences (default: one sequence) at `positions` (i32 [N]); the linear
   * layers run on all rows at once, attention within each sequence.
   */
  forward(h: Tensor, positions: Tensor, invFreq: Tensor | undefined, options: ForwardOptions = {}): Promise<Tensor> {
    const rows = h.shape[0];
    const ops = new EagerOps(this, positions, invFreq, options.sequenceLength ?? rows, options.signal, options.observe);
    return decoderBlock(this.config, ops, h, rows, this.index);
  }
}

/** A routing decision for T tokens over E experts (row-major [T, E] arrays). */
export interface TokenRouting {
  /** Softmax of the router logits. */
  probabilities: Float32Array;
  /** 1 where a token chose an expert. */
  chosen: Uint8Array;
  /** Per token, what its chosen probabilities are divided by: their sum (+ ε) when renormalized, else 1. */
  totals: Float64Array;
  /** probability / total where chosen, else 0. */
  weights: Float32Array;
  /** The tokens each expert got, in token order. */
  tokensOf: number[][];
}

/**
 * Routing as Hugging Face runs it (config.ts MoeConfig): softmax over each token's router logits, its top-k
 * experts (ties as topkMask breaks them), their probabilities as weights — renormalized to sum to one
 * (plus `normalizeEpsilon`) when `normalizeTopK`.
 */
export function routeTokens(logits: Float32Array, T: number, E: number, moe: Pick<MoeConfig, 'topK' | 'normalizeTopK' | 'normalizeEpsilon'>): TokenRouting {
  const { topK } = moe;
  const probabilities = new Float32Array(T * E);
  for (let t = 0; t < T; ++t) {
    const row = logits.subarray(t * E, (t + 1) * E);
    const max = Math.max(...row);
    let sum = 0;
    for (let e = 0; e < E; ++e) sum += Math.exp(row[e] - max);
    for (let e = 0; e < E; ++e) probabilities[t * E + e] = Math.exp(row[e] - max) / sum;
  }
  const chosen = topkMask(Tensor.fromTypedArray(probabilities, [T, E]), topK).data as Uint8Array;
  const totals = new Float64Array(T);
  const weights = new Float32Array(T * E);
  const tokensOf: number[][] = Array.from({ length: E }, () => []);
  for (let t = 0; t < T; ++t) {
    if (moe.normalizeTopK) {
      for (let e = 0; e < E; ++e) if (chosen[t * E + e]) totals[t] += probabilities[t * E + e];
      totals[t] += moe.normalizeEpsilon;
    } else totals[t] = 1;
    for (let e = 0; e < E; ++e) {
      if (!chosen[t * E + e]) continue;
      weights[t * E + e] = probabilities[t * E + e] / totals[t];
      tokensOf[e].push(t);
    }
  }
  return { probabilities, chosen, totals, weights, tokensOf };
}

export interface Embeddings {
  tokens: Tensor;
  positions?: Tensor;
}

export interface Head {
  norm: Norm;
  weight: Tensor;
}

export class DecoderModel {
  /** Rotary inverse frequencies; undefined for learned positions. */
  readonly invFreq: Tensor | undefined;
  readonly layout: Layout;

  private constructor(
    readonly dir: string,
    readonly config: ModelConfig,
    readonly checkpoint: TensorSource,
  ) {
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
  static async open(dir: string): Promise<DecoderModel> {
    const configFile = join(dir, 'config.json');
    const json = await readJsonObject(configFile);
    const config = parseConfig(json, configFile);
    const files = await Checkpoint.open(dir);
    let checkpoint: TensorSource = files;
    try {
      // A sparq packed folder keeps an int4 source's quantization_config for other loaders; sparq reads
      // its layers through sparq_format, which covers them.
      if (json.sparq_format !== undefined) {
        const expected = new Map(parameterPlan(config).map((p) => [p.name, p]));
        checkpoint = await PackedCheckpoint.wrap(files, json.sparq_format, configFile, expected);
      } else if (json.quantization_config !== undefined) checkpoint = CtCheckpoint.wrap(files, json.quantization_config, configFile);
      if (config.expertWidths?.format === 'shrunk') checkpoint = await ExpertWidthView.wrap(checkpoint, config.expertWidths, LAYOUTS[config.architecture], config.hiddenSize, configFile);
      const stored = await Promise.all(checkpoint.names().map((name) => checkpoint.info(name)));
      checkParameters(config, stored, dir, configFile);
    } catch (error) {
      await files.close();
      throw error;
    }
    return new DecoderModel(dir, config, checkpoint);
  }

  /** The quantized linears (pack- and float-quantized) and their schemes, for a compressed-tensors checkpoint. */
  get quantized(): ReadonlyMap<string, CtWeightScheme> | undefined {
    return this.checkpoint instanceof CtCheckpoint ? this.checkpoint.schemes : undefined;
  }

  /** A parameter as f32; NaN or infinite values are refused by name (they would poison every output). */
  async read(name: string): Promise<Tensor> {
    const tensor = await this.checkpoint.read(name, { dtype: 'f32' });
    if (!Number.isFinite(await dotAsync(tensor, tensor))) {
      throw new NonFiniteError(`${name} holds NaN or infinite values (in ${this.checkpoint.shardPath(name)}); the model cannot be run or compressed`);
    }
    return tensor;
  }

  private async readNorm(name: string): Promise<Norm> {
    return { weight: await this.read(`${name}.weight`), bias: this.checkpoint.has(`${name}.bias`) ? await this.read(`${name}.bias`) : undefined };
  }

  /**
   * Block `layer`'s linear layers by role, relative to the block (layouts.ts blockLinearRoles: experts as
   * expert.<e>.gate/up/down, the shared expert as shared.gate/up/down and shared_expert_gate).
   */
  linearRoles(layer: number): Record<string, string> {
    return blockLinearRoles(this.config, layer);
  }

  /** Names of every linear layer's weight, block by block. */
  linearNames(): string[] {
    const names: string[] = [];
    for (let layer = 0; layer < this.config.layers; ++layer) {
      for (const linear of Object.values(this.linearRoles(layer))) names.push(`${this.layout.block(layer)}${linear}.weight`);
    }
    return names;
  }

  async loadEmbeddings(): Promise<Embeddings> {
    return { tokens: await this.read(this.layout.embed), positions: this.layout.positions ? await this.read(this.layout.positions) : undefined };
  }

  /**
   * Hidden states [N, hidden] of token ids: sequences of `sequenceLength` (default: all N) at positions
   * firstPosition, firstPosition + 1, … (default 0; a decoder with a KV cache continues a sequence).
   */
  embed(embeddings: Embeddings, ids: Int32Array, sequenceLength = ids.length, firstPosition = 0): Tensor {
    const h = embedding(embeddings.tokens, Tensor.fromTypedArray(ids));
    if (embeddings.positions) {
      const offset = (this.config.learnedPositionOffset ?? 0) + firstPosition;
      const positions = Int32Array.from({ length: ids.length }, (_, i) => (i % sequenceLength) + offset);
      axpy(1, embedding(embeddings.positions, Tensor.fromTypedArray(positions)), h);
    }
    return h;
  }

  async loadBlock(index: number): Promise<DecoderBlock> {
    const prefix = this.layout.block(index);
    const linears: Record<string, Linear> = {};
    for (const [role, name] of Object.entries(this.linearRoles(index))) {
      const bias = `${prefix}${name}.bias`;
      linears[role] = { weight: await this.read(`${prefix}${name}.weight`), bias: this.checkpoint.has(bias) ? await this.read(bias) : undefined };
    }
    return new DecoderBlock(index, blockConfig(this.config, index), linears, await this.loadBlockNorms(index));
  }

  /** A block's norms: before attention, before the MLP, and Qwen3's q/k norms. */
  async loadBlockNorms(index: number): Promise<Partial<Record<BlockNorm, Norm>>> {
    const prefix = this.layout.block(index);
    const qk = this.config.qkNorm && this.layout.qNorm && this.layout.kNorm;
    return {
      attention: await this.readNorm(prefix + this.layout.attentionNorm),
      mlp: await this.readNorm(prefix + this.layout.mlpNorm),
      q: qk ? await this.readNorm(prefix + this.layout.qNorm!) : undefined,
      k: qk ? await this.readNorm(prefix + this.layout.kNorm!) : undefined,
    };
  }

  /** The norm before the output projection. */
  loadFinalNorm(): Promise<Norm> {
    return this.readNorm(this.layout.finalNorm);
  }

  /** The final norm and the output projection (the token embedding when tied). */
  async loadHead(): Promise<Head> {
    const tied = this.config.tiedEmbeddings;
    return { norm: await this.loadFinalNorm(), weight: await this.read(tied ? this.layout.embed : this.layout.lmHead) };
  }

  /** Logits [T, vocab] of final hidden states h [T, hidden]. */
  async logits(head: Head, h: Tensor, signal?: AbortSignal): Promise<Tensor> {
    return gemmAsync(await normAsync(this.config, head.norm, h, signal), head.weight, { transB: true, signal });
  }

  /**
   * Throws NonFiniteError when hidden states [N, hidden] hold NaN or infinities after `stage` (a block
   * index, or 'embedding'). Parameters were checked when loaded, so this means the values overflowed.
   */
  async checkFiniteStates(states: Tensor, stage: number | 'embedding', signal?: AbortSignal): Promise<void> {
    if (Number.isFinite(await dotAsync(states, states, { signal }))) return;
    const where = stage === 'embedding' ? 'the embeddings' : `block ${stage} (${this.layout.block(stage)}*)`;
    throw new NonFiniteError(`${where} produced NaN or infinite activations although every weight is finite: the values overflowed float32`);
  }

  async close(): Promise<void> {
    await this.checkpoint.close();
  }
}
