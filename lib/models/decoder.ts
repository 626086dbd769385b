// Decoder-only language models run one block at a time straight from a checkpoint: the model object
// holds only the config and the open files; blocks, the embeddings and the head are loaded on request
// and dropped by the caller, so memory stays about one block.
//
// An architecture is described as data (LAYOUTS: where each parameter lives, which norm, which MLP,
// rotary or learned positions); one block forward covers the families:
//   pre-norm → q, k, v (+ bias) → [q/k RMSNorm] → [RoPE] → grouped-query causal attention → o → residual
//   pre-norm → SwiGLU (gate, up, down) or fc1 → ReLU/GELU → fc2 → residual
import { Checkpoint } from '../io/checkpoint.js';
import { addBias, attention, embedding, layerNorm, rmsNorm, rope, ropeInverseFrequencies, scatterAdd, siluMul } from '../nn.js';
import { axpy, gelu, gemm, relu, topkMask } from '../ops.js';
import { Tensor } from '../tensor.js';
import { readConfig, type Architecture, type ModelConfig } from './config.js';

export interface Layout {
  embed: string;
  /** Learned position table (OPT), indexed by position + config.learnedPositionOffset. */
  positions?: string;
  /** Final norm, without the .weight / .bias suffix. */
  finalNorm: string;
  lmHead: string;
  block: (i: number) => string;
  attentionNorm: string;
  mlpNorm: string;
  qNorm?: string;
  kNorm?: string;
  /** Linear layers of a block by role, without the .weight / .bias suffix. */
  linears: Record<string, string>;
  /** Mixture of experts: the router and each expert's gate/up/down projections. */
  experts?: { router: string; expert: (e: number) => string; gate: string; up: string; down: string };
}

const LLAMA_LAYOUT: Layout = {
  embed: 'model.embed_tokens.weight',
  finalNorm: 'model.norm',
  lmHead: 'lm_head.weight',
  block: (i) => `model.layers.${i}.`,
  attentionNorm: 'input_layernorm',
  mlpNorm: 'post_attention_layernorm',
  qNorm: 'self_attn.q_norm',
  kNorm: 'self_attn.k_norm',
  linears: {
    q: 'self_attn.q_proj',
    k: 'self_attn.k_proj',
    v: 'self_attn.v_proj',
    o: 'self_attn.o_proj',
    gate: 'mlp.gate_proj',
    up: 'mlp.up_proj',
    down: 'mlp.down_proj',
  },
};

const OPT_LAYOUT: Layout = {
  embed: 'model.decoder.embed_tokens.weight',
  positions: 'model.decoder.embed_positions.weight',
  finalNorm: 'model.decoder.final_layer_norm',
  lmHead: 'lm_head.weight',
  block: (i) => `model.decoder.layers.${i}.`,
  attentionNorm: 'self_attn_layer_norm',
  mlpNorm: 'final_layer_norm',
  linears: {
    q: 'self_attn.q_proj',
    k: 'self_attn.k_proj',
    v: 'self_attn.v_proj',
    o: 'self_attn.out_proj',
    fc1: 'fc1',
    fc2: 'fc2',
  },
};

const LLAMA_ATTENTION = { q: LLAMA_LAYOUT.linears.q, k: LLAMA_LAYOUT.linears.k, v: LLAMA_LAYOUT.linears.v, o: LLAMA_LAYOUT.linears.o };

const MIXTRAL_LAYOUT: Layout = {
  ...LLAMA_LAYOUT,
  linears: LLAMA_ATTENTION,
  experts: { router: 'block_sparse_moe.gate', expert: (e) => `block_sparse_moe.experts.${e}.`, gate: 'w1', up: 'w3', down: 'w2' },
};

export const LAYOUTS: Record<Architecture, Layout> = {
  llama: LLAMA_LAYOUT,
  mixtral: MIXTRAL_LAYOUT,
  mistral: LLAMA_LAYOUT,
  qwen2: LLAMA_LAYOUT,
  qwen3: LLAMA_LAYOUT,
  opt: OPT_LAYOUT,
};

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

/** Linear layers that read the same input, in forward order; `stage` orders them for sequential pruning. */
export interface InputGroup {
  name: string;
  roles: string[];
  /** 0: attention inputs, 1: attention output, 2: MLP / router / expert inputs, 3: MLP / expert outputs. */
  stage: number;
}

/** A block's input groups for a config (experts as expert.<e>.in / expert.<e>.out). */
export function inputGroups(config: ModelConfig): InputGroup[] {
  const groups: InputGroup[] = [
    { name: 'attention.in', roles: ['q', 'k', 'v'], stage: 0 },
    { name: 'attention.out', roles: ['o'], stage: 1 },
  ];
  if (config.mlp === 'moe') {
    groups.push({ name: 'router', roles: ['router'], stage: 2 });
    for (let e = 0; e < config.moe!.experts; ++e) {
      groups.push({ name: `expert.${e}.in`, roles: [`expert.${e}.gate`, `expert.${e}.up`], stage: 2 });
      groups.push({ name: `expert.${e}.out`, roles: [`expert.${e}.down`], stage: 3 });
    }
  } else if (config.mlp === 'swiglu') {
    groups.push({ name: 'mlp.in', roles: ['gate', 'up'], stage: 2 }, { name: 'mlp.out', roles: ['down'], stage: 3 });
  } else {
    groups.push({ name: 'mlp.in', roles: ['fc1'], stage: 2 }, { name: 'mlp.out', roles: ['fc2'], stage: 3 });
  }
  return groups;
}

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

  static async open(dir: string): Promise<DecoderModel> {
    const config = await readConfig(dir);
    return new DecoderModel(dir, config, await Checkpoint.open(dir));
  }

  private read(name: string): Promise<Tensor> {
    return this.checkpoint.read(name, { dtype: 'f32' });
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
    const tied = this.config.tiedEmbeddings || !this.checkpoint.has(this.layout.lmHead);
    return { norm: await this.readNorm(this.layout.finalNorm), weight: await this.read(tied ? this.layout.embed : this.layout.lmHead) };
  }

  /** Logits [T, vocab] of final hidden states h [T, hidden]. */
  logits(head: Head, h: Tensor): Tensor {
    return gemm(normalize(this.config, head.norm, h), head.weight, { transB: true });
  }

  async close(): Promise<void> {
    await this.checkpoint.close();
  }
}
