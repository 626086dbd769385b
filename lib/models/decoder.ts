// Decoder-only language models run one block at a time straight from a checkpoint: the model object
// holds only the config and the open files; blocks, the embeddings and the head are loaded on request
// and dropped by the caller, so memory stays about one block.
//
// An architecture is described as data (LAYOUTS: where each parameter lives, which norm, which MLP,
// rotary or learned positions); one block forward covers the families:
//   pre-norm → q, k, v (+ bias) → [q/k RMSNorm] → [RoPE] → grouped-query causal attention → o → residual
//   pre-norm → SwiGLU (gate, up, down) or fc1 → ReLU/GELU → fc2 → residual
import { join } from 'node:path';
import { Checkpoint } from '../io/checkpoint.js';
import { addBias, attention, embedding, layerNorm, rmsNorm, rope, ropeInverseFrequencies, scatterAdd, siluMul } from '../nn.js';
import { axpy, dotAsync, gelu, gemm, relu, topkMask } from '../ops.js';
import { NonFiniteError } from '../errors.js';
import { Tensor } from '../tensor.js';
import { readConfig, type ModelConfig } from './config.js';
import { LAYOUTS, type Layout } from './layouts.js';
import { checkParameters } from './parameters.js';

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
 * accumulates calibration statistics from it). Groups are named as in `inputGroups`.
 */
export type InputObserver = (group: string, input: Tensor) => void;

function apply(linear: Linear, x: Tensor): Tensor {
  const y = gemm(x, linear.weight, { transB: true });
  if (linear.bias) addBias(y, linear.bias);
  return y;
}

function normalize(config: ModelConfig, norm: Norm, x: Tensor, inPlace = false): Tensor {
  return config.norm === 'rms'
    ? rmsNorm(x, norm.weight, config.normEps, { inPlace })
    : layerNorm(x, norm.weight, norm.bias, config.normEps, { inPlace });
}

/** One decoder block's parameters (f32) and its forward pass. */
export class DecoderBlock {
  constructor(
    readonly index: number,
    private readonly config: ModelConfig,
    readonly linears: Record<string, Linear>,
    private readonly norms: { attention: Norm; mlp: Norm; q?: Norm; k?: Norm },
  ) {}

  /**
   * h [N, hidden] ← h + attention(…) + mlp(…), in place. The N rows are N / sequenceLength sequences of
   * sequenceLength tokens each (default: one sequence), at `positions` (i32 [N]); the linear layers run
   * on all rows at once, attention within each sequence. `observe` sees each linear group's input.
   */
  forward(h: Tensor, positions: Tensor, invFreq: Tensor | undefined, sequenceLength = h.shape[0], observe?: InputObserver): Tensor {
    const { heads, kvHeads, headDim } = this.config;
    const T = h.shape[0];
    const x = normalize(this.config, this.norms.attention, h);
    observe?.('attention.in', x);
    let q = apply(this.linears.q, x).reshape([T, heads, headDim]);
    let k = apply(this.linears.k, x).reshape([T, kvHeads, headDim]);
    const v = apply(this.linears.v, x).reshape([T, kvHeads, headDim]);
    if (this.norms.q && this.norms.k) {
      q = normalize(this.config, this.norms.q, q, true);
      k = normalize(this.config, this.norms.k, k, true);
    }
    if (invFreq) {
      rope(q, positions, invFreq);
      rope(k, positions, invFreq);
    }
    const attended = Tensor.zeros([T, heads, headDim]);
    for (let start = 0; start < T; start += sequenceLength) {
      const end = Math.min(T, start + sequenceLength);
      attention(q.narrow(start, end), k.narrow(start, end), v.narrow(start, end), { out: attended.narrow(start, end) });
    }
    const attendedRows = attended.reshape([T, heads * headDim]);
    observe?.('attention.out', attendedRows);
    axpy(1, apply(this.linears.o, attendedRows), h);
    const y = normalize(this.config, this.norms.mlp, h);
    if (this.config.mlp === 'moe') {
      observe?.('router', y);
      this.mixtureOfExperts(y, h, observe);
      return h;
    }
    observe?.('mlp.in', y);
    let activated: Tensor;
    if (this.config.mlp === 'swiglu') {
      activated = siluMul(apply(this.linears.gate, y), apply(this.linears.up, y), { inPlace: true });
    } else {
      const hidden = apply(this.linears.fc1, y);
      activated = this.config.mlp === 'relu' ? relu(hidden, { inPlace: true }) : gelu(hidden, { inPlace: true });
    }
    observe?.('mlp.out', activated);
    axpy(1, apply(this.linears[this.config.mlp === 'swiglu' ? 'down' : 'fc2'], activated), h);
    return h;
  }

  /**
   * h += Σ_k w_k · expert_k(y) over each token's top-k experts: router softmax, top-k, weights
   * renormalized over the chosen k; tokens are gathered per expert and scattered back weighted.
   */
  private mixtureOfExperts(y: Tensor, h: Tensor, observe?: InputObserver): void {
    const { experts, topK } = this.config.moe!;
    const T = y.shape[0];
    const { tokensOf, weights } = routeTokens(apply(this.linears.router, y).data as Float32Array, T, experts, topK);
    const weightsOf = tokensOf.map((tokens, e) => Float32Array.from(tokens, (t) => weights[t * experts + e]));
    for (let e = 0; e < experts; ++e) {
      if (tokensOf[e].length === 0) continue;
      const indices = Tensor.fromTypedArray(Int32Array.from(tokensOf[e]));
      const routed = embedding(y, indices);
      observe?.(`expert.${e}.in`, routed);
      const gate = apply(this.linears[`expert.${e}.gate`], routed);
      const activated = siluMul(gate, apply(this.linears[`expert.${e}.up`], routed), { inPlace: true });
      observe?.(`expert.${e}.out`, activated);
      const out = apply(this.linears[`expert.${e}.down`], activated);
      scatterAdd(h, out, indices, Tensor.fromTypedArray(weightsOf[e]));
    }
  }
}

/** A routing decision for T tokens over E experts (row-major [T, E] arrays). */
export interface TokenRouting {
  /** Softmax of the router logits. */
  probabilities: Float32Array;
  /** 1 where a token chose an expert. */
  chosen: Uint8Array;
  /** Per token, the sum of its chosen probabilities. */
  totals: Float64Array;
  /** probability / total where chosen, else 0. */
  weights: Float32Array;
  /** The tokens each expert got, in token order. */
  tokensOf: number[][];
}

/**
 * Mixtral routing: softmax over each token's router logits, its top-k experts (ties as topkMask breaks
 * them), their probabilities renormalized to sum to one.
 */
export function routeTokens(logits: Float32Array, T: number, E: number, topK: number): TokenRouting {
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
    for (let e = 0; e < E; ++e) if (chosen[t * E + e]) totals[t] += probabilities[t * E + e];
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
    readonly checkpoint: Checkpoint,
  ) {
    this.layout = LAYOUTS[config.architecture];
    const s = config.ropeScaling;
    this.invFreq =
      config.learnedPositionOffset === undefined
        ? Tensor.fromTypedArray(ropeInverseFrequencies(config.headDim, config.ropeTheta, s.type === 'default' ? undefined : s))
        : undefined;
  }

  /** Opens a model folder; its tensors must be exactly those config.json implies (see models/parameters.ts). */
  static async open(dir: string): Promise<DecoderModel> {
    const config = await readConfig(dir);
    const checkpoint = await Checkpoint.open(dir);
    try {
      const stored = await Promise.all(checkpoint.names().map((name) => checkpoint.info(name)));
      checkParameters(config, stored, dir, join(dir, 'config.json'));
    } catch (error) {
      await checkpoint.close();
      throw error;
    }
    return new DecoderModel(dir, config, checkpoint);
  }

  /** A parameter as f32; NaN or infinite values are refused by name (they would poison every output). */
  private async read(name: string): Promise<Tensor> {
    const tensor = await this.checkpoint.read(name, { dtype: 'f32' });
    if (!Number.isFinite(await dotAsync(tensor, tensor))) {
      throw new NonFiniteError(`${name} holds NaN or infinite values (in ${this.checkpoint.shardPath(name)}); the model cannot be run or compressed`);
    }
    return tensor;
  }

  private async readNorm(name: string): Promise<Norm> {
    return { weight: await this.read(`${name}.weight`), bias: this.checkpoint.has(`${name}.bias`) ? await this.read(`${name}.bias`) : undefined };
  }

  /** A block's linear layers by role (experts as expert.<e>.gate/up/down), relative to the block. */
  linearRoles(): Record<string, string> {
    const roles: Record<string, string> = { ...this.layout.linears };
    const moe = this.layout.experts;
    if (moe && this.config.moe) {
      roles.router = moe.router;
      for (let e = 0; e < this.config.moe.experts; ++e) {
        roles[`expert.${e}.gate`] = moe.expert(e) + moe.gate;
        roles[`expert.${e}.up`] = moe.expert(e) + moe.up;
        roles[`expert.${e}.down`] = moe.expert(e) + moe.down;
      }
    }
    return roles;
  }

  /** Names of every linear layer's weight, block by block. */
  linearNames(): string[] {
    const names: string[] = [];
    const linears = Object.values(this.linearRoles());
    for (let layer = 0; layer < this.config.layers; ++layer) {
      for (const linear of linears) names.push(`${this.layout.block(layer)}${linear}.weight`);
    }
    return names;
  }

  async loadEmbeddings(): Promise<Embeddings> {
    return { tokens: await this.read(this.layout.embed), positions: this.layout.positions ? await this.read(this.layout.positions) : undefined };
  }

  /** Hidden states [N, hidden] of token ids: sequences of `sequenceLength` (default: all N) at positions 0, 1, … */
  embed(embeddings: Embeddings, ids: Int32Array, sequenceLength = ids.length): Tensor {
    const h = embedding(embeddings.tokens, Tensor.fromTypedArray(ids));
    if (embeddings.positions) {
      const offset = this.config.learnedPositionOffset ?? 0;
      const positions = Int32Array.from({ length: ids.length }, (_, i) => (i % sequenceLength) + offset);
      axpy(1, embedding(embeddings.positions, Tensor.fromTypedArray(positions)), h);
    }
    return h;
  }

  async loadBlock(index: number): Promise<DecoderBlock> {
    const prefix = this.layout.block(index);
    const linears: Record<string, Linear> = {};
    for (const [role, name] of Object.entries(this.linearRoles())) {
      const bias = `${prefix}${name}.bias`;
      linears[role] = { weight: await this.read(`${prefix}${name}.weight`), bias: this.checkpoint.has(bias) ? await this.read(bias) : undefined };
    }
    const qk = this.config.qkNorm && this.layout.qNorm && this.layout.kNorm;
    const norms = {
      attention: await this.readNorm(prefix + this.layout.attentionNorm),
      mlp: await this.readNorm(prefix + this.layout.mlpNorm),
      q: qk ? await this.readNorm(prefix + this.layout.qNorm!) : undefined,
      k: qk ? await this.readNorm(prefix + this.layout.kNorm!) : undefined,
    };
    return new DecoderBlock(index, this.config, linears, norms);
  }

  /** The final norm and the output projection (the token embedding when tied). */
  async loadHead(): Promise<Head> {
    const tied = this.config.tiedEmbeddings;
    return { norm: await this.readNorm(this.layout.finalNorm), weight: await this.read(tied ? this.layout.embed : this.layout.lmHead) };
  }

  /** Logits [T, vocab] of final hidden states h [T, hidden]. */
  logits(head: Head, h: Tensor): Tensor {
    return gemm(normalize(this.config, head.norm, h), head.weight, { transB: true });
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
