// config.json of a Hugging Face model folder, normalized into what sparq's runtime needs. Every field is
// validated; an unknown model_type gets an error listing the supported ones.
import { join } from 'node:path';
import { InvalidFileError, UnsupportedFormatError } from '../errors.js';
import { readJsonObject } from '../io/text.js';

/** Decoder families that share Llama's layout: tensor names, RMSNorm, RoPE, SwiGLU MLP. */
export const LLAMA_FAMILY = ['llama', 'mistral', 'qwen2', 'qwen3', 'mixtral'] as const;
/** Every model_type sparq runs. */
export const SUPPORTED_ARCHITECTURES = [...LLAMA_FAMILY, 'opt'] as const;
export type Architecture = (typeof SUPPORTED_ARCHITECTURES)[number];

export type RopeScaling =
  | { type: 'default' }
  | { type: 'linear'; factor: number }
  | { type: 'llama3'; factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPositions: number };

export interface ModelConfig {
  architecture: Architecture;
  hiddenSize: number;
  intermediateSize: number;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  vocabSize: number;
  maxPositions: number;
  /** RMSNorm (Llama family) or LayerNorm with bias (OPT), and its epsilon. */
  norm: 'rms' | 'layer';
  normEps: number;
  /** The MLP: gated SiLU (gate/up/down), a plain two-layer MLP with this activation (fc1/fc2), or a
   * mixture of gated-SiLU experts (Mixtral). */
  mlp: 'swiglu' | 'relu' | 'gelu' | 'moe';
  /** Mixture of experts: `topK` of `experts` per token, softmax router weights renormalized over them. */
  moe?: { experts: number; topK: number };
  /** Learned absolute positions with this index offset (OPT: 2) instead of rotary embeddings. */
  learnedPositionOffset?: number;
  ropeTheta: number;
  ropeScaling: RopeScaling;
  tiedEmbeddings: boolean;
  /** Which linear layers carry biases: q/k/v (Qwen2, Llama's attention_bias, OPT), the attention output
   * projection (Llama/Qwen3 attention_bias, OPT), the MLP (Llama's mlp_bias, OPT). */
  bias: { qkv: boolean; output: boolean; mlp: boolean };
  /** RMSNorm on each head of q and k before RoPE (Qwen3). */
  qkNorm: boolean;
  /** Mistral-style sliding-window attention span, if the config sets one. */
  slidingWindow?: number;
  /** Per-layer widths of a structurally pruned model (config.json's `sparq_layer_widths`); absent when
   * every layer has the top-level widths. Read a layer's widths through blockConfig. */
  layerWidths?: LayerWidths[];
}

/** One decoder layer's widths: MLP neurons, query heads and key/value heads (head_dim is shared). */
export interface LayerWidths {
  intermediateSize: number;
  heads: number;
  kvHeads: number;
}

type Json = Record<string, unknown>;

function field(source: string, json: Json, name: string, kind: 'int' | 'number' | 'boolean', fallback?: number | boolean): number | boolean {
  const value = json[name] ?? fallback;
  const ok =
    kind === 'int' ? Number.isSafeInteger(value) && (value as number) > 0 : kind === 'number' ? typeof value === 'number' && Number.isFinite(value) && value > 0 : typeof value === 'boolean';
  if (!ok) throw new InvalidFileError(`${source}: '${name}' must be ${kind === 'int' ? 'a positive integer' : kind === 'number' ? 'a positive number' : 'a boolean'}, found ${JSON.stringify(json[name])}`);
  return value as number | boolean;
}

function ropeSettings(source: string, json: Json): { theta: number; scaling: RopeScaling } {
  // Newer configs nest everything in rope_parameters (rope_theta inside); older ones use rope_theta and
  // an optional rope_scaling object.
  const nested = json.rope_parameters as Json | undefined;
  const scaling = (nested ?? (json.rope_scaling as Json | null | undefined)) ?? undefined;
  const theta = Number(nested?.rope_theta ?? json.rope_theta ?? 10000);
  if (!(theta > 0)) throw new InvalidFileError(`${source}: rope_theta must be a positive number`);
  const type = (scaling?.rope_type ?? scaling?.type ?? 'default') as string;
  const where = nested ? 'rope_parameters' : 'rope_scaling';
  const num = (name: string) => field(source, scaling as Json, name, 'number') as number;
  switch (type) {
    case 'default':
      return { theta, scaling: { type: 'default' } };
    case 'linear':
      return { theta, scaling: { type: 'linear', factor: num('factor') } };
    case 'llama3':
      return {
        theta,
        scaling: {
          type: 'llama3',
          factor: num('factor'),
          lowFreqFactor: num('low_freq_factor'),
          highFreqFactor: num('high_freq_factor'),
          originalMaxPositions: num('original_max_position_embeddings'),
        },
      };
    default:
      throw new UnsupportedFormatError(`${source}: ${where} type '${type}' is not supported (supported: default, linear, llama3)`);
  }
}

function moeSettings(source: string, json: Json): { experts: number; topK: number } {
  const experts = field(source, json, 'num_local_experts', 'int') as number;
  const topK = field(source, json, 'num_experts_per_tok', 'int') as number;
  if (topK > experts) throw new InvalidFileError(`${source}: num_experts_per_tok ${topK} exceeds num_local_experts ${experts}`);
  return { experts, topK };
}

function parseOptConfig(json: Json, source: string): ModelConfig {
  const hiddenSize = field(source, json, 'hidden_size', 'int') as number;
  const heads = field(source, json, 'num_attention_heads', 'int') as number;
  if (hiddenSize % heads !== 0) throw new InvalidFileError(`${source}: hidden_size ${hiddenSize} is not a multiple of num_attention_heads ${heads}`);
  if (json.do_layer_norm_before === false) {
    throw new UnsupportedFormatError(`${source}: OPT with do_layer_norm_before = false (post-norm, as in OPT-350m) is not supported`);
  }
  if (json.layer_norm_elementwise_affine === false) {
    throw new UnsupportedFormatError(`${source}: OPT with layer_norm_elementwise_affine = false (LayerNorm without weights) is not supported`);
  }
  if (json.word_embed_proj_dim !== undefined && json.word_embed_proj_dim !== hiddenSize) {
    throw new UnsupportedFormatError(`${source}: OPT with word_embed_proj_dim ${String(json.word_embed_proj_dim)} != hidden_size ${hiddenSize} (project_in/out) is not supported`);
  }
  const activation = json.activation_function ?? 'relu';
  if (activation !== 'relu' && activation !== 'gelu') throw new UnsupportedFormatError(`${source}: activation_function '${String(activation)}' is not supported (relu, gelu)`);
  return {
    architecture: 'opt',
    hiddenSize,
    intermediateSize: field(source, json, 'ffn_dim', 'int') as number,
    layers: field(source, json, 'num_hidden_layers', 'int') as number,
    heads,
    kvHeads: heads,
    headDim: hiddenSize / heads,
    vocabSize: field(source, json, 'vocab_size', 'int') as number,
    maxPositions: field(source, json, 'max_position_embeddings', 'int') as number,
    norm: 'layer',
    normEps: 1e-5,
    mlp: activation,
    learnedPositionOffset: 2,
    ropeTheta: 0,
    ropeScaling: { type: 'default' },
    tiedEmbeddings: field(source, json, 'tie_word_embeddings', 'boolean', true) as boolean,
    bias: { qkv: json.enable_bias !== false, output: json.enable_bias !== false, mlp: json.enable_bias !== false },
    qkNorm: false,
  };
}

/**
 * Biases as Hugging Face builds each family: Qwen2 always has q/k/v biases and nothing else; Llama and
 * Qwen3 put attention_bias on q/k/v/o, Llama mlp_bias on gate/up/down; Mistral and Mixtral have none.
 */
function linearBiases(source: string, json: Json, type: string): ModelConfig['bias'] {
  if (type === 'qwen2') return { qkv: true, output: false, mlp: false };
  if (type === 'mistral' || type === 'mixtral') return { qkv: false, output: false, mlp: false };
  const attention = field(source, json, 'attention_bias', 'boolean', false) as boolean;
  const mlp = type === 'llama' ? (field(source, json, 'mlp_bias', 'boolean', false) as boolean) : false;
  return { qkv: attention, output: attention, mlp };
}

export function parseConfig(json: Json, source = 'config.json'): ModelConfig {
  const config = parseUniformConfig(json, source);
  const layerWidths = parseLayerWidths(json, source, config);
  return layerWidths ? { ...config, layerWidths } : config;
}

function parseUniformConfig(json: Json, source: string): ModelConfig {
  const type = json.model_type;
  if (typeof type !== 'string' || !(SUPPORTED_ARCHITECTURES as readonly string[]).includes(type)) {
    throw new UnsupportedFormatError(`${source}: model_type ${JSON.stringify(type)} is not supported; supported: ${SUPPORTED_ARCHITECTURES.join(', ')}`);
  }
  if (type === 'opt') return parseOptConfig(json, source);
  const hiddenSize = field(source, json, 'hidden_size', 'int') as number;
  const heads = field(source, json, 'num_attention_heads', 'int') as number;
  const kvHeads = field(source, json, 'num_key_value_heads', 'int', heads) as number;
  if (heads % kvHeads !== 0) throw new InvalidFileError(`${source}: num_attention_heads (${heads}) is not a multiple of num_key_value_heads (${kvHeads})`);
  if (json.head_dim === undefined && hiddenSize % heads !== 0) {
    throw new InvalidFileError(`${source}: hidden_size ${hiddenSize} is not a multiple of num_attention_heads ${heads}, and no head_dim is given`);
  }
  const headDim = field(source, json, 'head_dim', 'int', hiddenSize / heads) as number;
  if (headDim % 2 !== 0) throw new InvalidFileError(`${source}: head_dim ${headDim} must be even for rotary embeddings`);
  const activation = json.hidden_act ?? 'silu';
  if (activation !== 'silu') throw new UnsupportedFormatError(`${source}: hidden_act '${String(activation)}' is not supported for ${type} (expected silu)`);
  const rope = ropeSettings(source, json);
  return {
    architecture: type as Architecture,
    hiddenSize,
    intermediateSize: field(source, json, 'intermediate_size', 'int') as number,
    layers: field(source, json, 'num_hidden_layers', 'int') as number,
    heads,
    kvHeads,
    headDim,
    vocabSize: field(source, json, 'vocab_size', 'int') as number,
    maxPositions: field(source, json, 'max_position_embeddings', 'int', 2048) as number,
    norm: 'rms',
    normEps: field(source, json, 'rms_norm_eps', 'number', 1e-6) as number,
    mlp: type === 'mixtral' ? 'moe' : 'swiglu',
    moe: type === 'mixtral' ? moeSettings(source, json) : undefined,
    ropeTheta: rope.theta,
    ropeScaling: rope.scaling,
    tiedEmbeddings: field(source, json, 'tie_word_embeddings', 'boolean', false) as boolean,
    bias: linearBiases(source, json, type),
    qkNorm: type === 'qwen3',
    // Qwen configs carry sliding_window but only apply it with use_sliding_window.
    slidingWindow:
      typeof json.sliding_window === 'number' && (type === 'mistral' || type === 'mixtral' || json.use_sliding_window === true)
        ? json.sliding_window
        : undefined,
  };
}

export async function readConfig(dir: string): Promise<ModelConfig> {
  const path = join(dir, 'config.json');
  return parseConfig(await readJsonObject(path), path);
}

// ---- Per-layer widths of structurally pruned models (sparq prune --method structprune|wanda-sp|magnitude-sp).
// config.json's `sparq_layer_widths` is a list with one entry per layer:
//   { "intermediate_size": 512, "num_attention_heads": 6, "num_key_value_heads": 3 }
// (OPT: intermediate_size is the layer's ffn_dim). head_dim stays the top-level one; the top-level widths
// keep the unpruned model's values. Only sparq reads this list (see README, "Structured pruning").

/** The `sparq_layer_widths` list, validated against the rest of the config (undefined when absent). */
function parseLayerWidths(json: Json, source: string, config: ModelConfig): LayerWidths[] | undefined {
  const raw = json.sparq_layer_widths;
  if (raw === undefined) return undefined;
  if (!Array.isArray(raw) || raw.length !== config.layers) {
    throw new InvalidFileError(`${source}: 'sparq_layer_widths' must be a list of ${config.layers} entries (one per layer, num_hidden_layers), found ${Array.isArray(raw) ? `${raw.length} entries` : JSON.stringify(raw)}`);
  }
  return raw.map((entry: unknown, layer) => {
    const where = `${source}: sparq_layer_widths[${layer}]`;
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) throw new InvalidFileError(`${where} must be an object`);
    const e = entry as Json;
    for (const key of Object.keys(e)) {
      if (!['intermediate_size', 'num_attention_heads', 'num_key_value_heads'].includes(key)) throw new InvalidFileError(`${where}: unknown key '${key}' (intermediate_size, num_attention_heads, num_key_value_heads)`);
    }
    const widths: LayerWidths = {
      intermediateSize: field(where, e, 'intermediate_size', 'int') as number,
      heads: field(where, e, 'num_attention_heads', 'int') as number,
      kvHeads: field(where, e, 'num_key_value_heads', 'int', e.num_attention_heads as number) as number,
    };
    if (widths.heads % widths.kvHeads !== 0) {
      throw new InvalidFileError(`${where}: num_attention_heads (${widths.heads}) is not a multiple of num_key_value_heads (${widths.kvHeads}), which grouped-query attention needs`);
    }
    if (config.architecture === 'opt' && widths.heads !== widths.kvHeads) throw new InvalidFileError(`${where}: OPT has no grouped-query attention; num_key_value_heads must equal num_attention_heads`);
    return widths;
  });
}

/** Layer `index`'s config: the model's, with that layer's widths where the config lists per-layer widths. */
export function blockConfig(config: ModelConfig, index: number): ModelConfig {
  const widths = config.layerWidths?.[index];
  return widths ? { ...config, ...widths } : config;
}
