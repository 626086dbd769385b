// The Llama-family decoder (Llama, Mistral, Qwen2, Qwen3) run one block at a time straight from a
// checkpoint: the model object holds only the config and the open files; blocks, the embedding and the
// head are loaded on request and dropped by the caller, so memory stays about one block.
import { Checkpoint } from '../io/checkpoint.js';
import { attention, addBias, rmsNorm, rope, ropeInverseFrequencies, siluMul } from '../nn.js';
import { axpy, gemm } from '../ops.js';
import { Tensor } from '../tensor.js';
import { readConfig, type ModelConfig } from './config.js';

/** Where each parameter lives in a Llama-family checkpoint. */
export const LLAMA_LAYOUT = {
  embed: 'model.embed_tokens.weight',
  finalNorm: 'model.norm.weight',
  lmHead: 'lm_head.weight',
  block: (i: number) => `model.layers.${i}.`,
  attentionNorm: 'input_layernorm.weight',
  mlpNorm: 'post_attention_layernorm.weight',
  qNorm: 'self_attn.q_norm.weight',
  kNorm: 'self_attn.k_norm.weight',
  linears: {
    q: 'self_attn.q_proj',
    k: 'self_attn.k_proj',
    v: 'self_attn.v_proj',
    o: 'self_attn.o_proj',
    gate: 'mlp.gate_proj',
    up: 'mlp.up_proj',
    down: 'mlp.down_proj',
  },
} as const;

export type LinearName = keyof typeof LLAMA_LAYOUT.linears;

export interface Linear {
  weight: Tensor;
  bias?: Tensor;
}

function apply(linear: Linear, x: Tensor): Tensor {
  const y = gemm(x, linear.weight, { transB: true });
  if (linear.bias) addBias(y, linear.bias);
  return y;
}

/** One decoder block's parameters (f32) and its forward pass. */
export class DecoderBlock {
  constructor(
    readonly index: number,
    private readonly config: ModelConfig,
    readonly linears: Record<LinearName, Linear>,
    private readonly norms: { attention: Tensor; mlp: Tensor; q?: Tensor; k?: Tensor },
  ) {}

  /** h [T, hidden] ← h + attention(…) + mlp(…), in place, for one sequence at `positions`. */
  forward(h: Tensor, positions: Tensor, invFreq: Tensor): Tensor {
    const { heads, kvHeads, headDim, rmsNormEps: eps } = this.config;
    const T = h.shape[0];
    const x = rmsNorm(h, this.norms.attention, eps);
    let q = apply(this.linears.q, x).reshape([T, heads, headDim]);
    let k = apply(this.linears.k, x).reshape([T, kvHeads, headDim]);
    const v = apply(this.linears.v, x).reshape([T, kvHeads, headDim]);
    if (this.norms.q && this.norms.k) {
      q = rmsNorm(q, this.norms.q, eps, { inPlace: true });
      k = rmsNorm(k, this.norms.k, eps, { inPlace: true });
    }
    rope(q, positions, invFreq);
    rope(k, positions, invFreq);
    axpy(1, apply(this.linears.o, attention(q, k, v).reshape([T, heads * headDim])), h);
    const y = rmsNorm(h, this.norms.mlp, eps);
    const mlp = siluMul(apply(this.linears.gate, y), apply(this.linears.up, y), { inPlace: true });
    axpy(1, apply(this.linears.down, mlp), h);
    return h;
  }
}

export class DecoderModel {
  readonly invFreq: Tensor;

  private constructor(
    readonly dir: string,
    readonly config: ModelConfig,
    readonly checkpoint: Checkpoint,
  ) {
    const s = config.ropeScaling;
    this.invFreq = Tensor.fromTypedArray(ropeInverseFrequencies(config.headDim, config.ropeTheta, s.type === 'default' ? undefined : s));
  }

  static async open(dir: string): Promise<DecoderModel> {
    const config = await readConfig(dir);
    return new DecoderModel(dir, config, await Checkpoint.open(dir));
  }

  private read(name: string): Promise<Tensor> {
    return this.checkpoint.read(name, { dtype: 'f32' });
  }

  async loadEmbedding(): Promise<Tensor> {
    return this.read(LLAMA_LAYOUT.embed);
  }

  async loadBlock(index: number): Promise<DecoderBlock> {
    const prefix = LLAMA_LAYOUT.block(index);
    const linears = {} as Record<LinearName, Linear>;
    for (const [key, name] of Object.entries(LLAMA_LAYOUT.linears) as [LinearName, string][]) {
      const bias = `${prefix}${name}.bias`;
      linears[key] = { weight: await this.read(`${prefix}${name}.weight`), bias: this.checkpoint.has(bias) ? await this.read(bias) : undefined };
    }
    const norms = {
      attention: await this.read(prefix + LLAMA_LAYOUT.attentionNorm),
      mlp: await this.read(prefix + LLAMA_LAYOUT.mlpNorm),
      q: this.config.qkNorm ? await this.read(prefix + LLAMA_LAYOUT.qNorm) : undefined,
      k: this.config.qkNorm ? await this.read(prefix + LLAMA_LAYOUT.kNorm) : undefined,
    };
    return new DecoderBlock(index, this.config, linears, norms);
  }

  /** The final norm and the output projection (the embedding when tied). */
  async loadHead(): Promise<{ norm: Tensor; weight: Tensor }> {
    const tied = this.config.tiedEmbeddings || !this.checkpoint.has(LLAMA_LAYOUT.lmHead);
    return { norm: await this.read(LLAMA_LAYOUT.finalNorm), weight: await this.read(tied ? LLAMA_LAYOUT.embed : LLAMA_LAYOUT.lmHead) };
  }

  /** Logits [T, vocab] of final hidden states h [T, hidden]. */
  logits(head: { norm: Tensor; weight: Tensor }, h: Tensor): Tensor {
    return gemm(rmsNorm(h, head.norm, this.config.rmsNormEps), head.weight, { transB: true });
  }

  async close(): Promise<void> {
    await this.checkpoint.close();
  }
}
