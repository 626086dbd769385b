// config.json of a Hugging Face model folder, normalized into what sparq's runtime needs. Every field is
// validated; an unknown model_type gets an error listing the supported ones.
import { join } from 'node:path';
import { InvalidFileError, UnsupportedFormatError } from '../errors.js';
import { readJsonObject } from '../io/text.js';
import { parseExpertWidths, type ExpertWidths } from './expert-widths.js';

/** Decoder families that share Llama's layout: tensor names, RMSNorm, RoPE, SwiGLU MLP (or SwiGLU experts). */
export const LLAMA_FAMILY = ['llama', 'mistral', 'qwen2', 'qwen3', 'mixtral', 'qwen2_moe', 'qwen3_moe', 'deepseek'] as const;
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
  /** The dense MLP: gated SiLU (gate/up/down) or a plain two-layer MLP with this activation (fc1/fc2).
   * In a mixture-of-experts layer (`moe.layers`) each expert is a gated-SiLU MLP instead. */
  mlp: 'swiglu' | 'relu' | 'gelu';
  /** Mixture of experts, in the layers `moe.layers` lists (the others run the dense MLP). */
  moe?: MoeConfig;
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
  /** Routed experts pruned to different widths (config.json's sparq_experts; models/expert-widths.ts). */
  expertWidths?: ExpertWidths;
}

/**
 * A mixture-of-experts layer as Hugging Face runs it: p = softmax(x·W_routerᵀ) over all experts (float32),
 * each token's `topK` largest p, renormalized to sum 1 when `normalizeTopK` (DeepSeek adds 1e-20 to the
 * sum), each chosen expert's output scaled by its weight; plus a shared expert on every token (Qwen2-MoE
 * scales it by σ(x·w_sgᵀ), DeepSeek adds its n_shared_experts as one wider MLP).
 */
export interface MoeConfig {
  experts: number;
  topK: number;
  normalizeTopK: boolean;
  /** Added to the chosen probabilities' sum before renormalizing (DeepSeek: 1e-20; others 0). */
  normalizeEpsilon: number;
  /** Each routed expert's intermediate width (moe_intermediate_size; Mixtral's intermediate_size). */
  expertSize: number;
  /** The shared expert: its intermediate width and whether σ(shared_expert_gate) scales it. */
  shared?: { size: number; gated: boolean };
  /** Indices of the MoE layers, ascending. */
  layers: number[];
  /** The config's load-balancing loss coefficient (router_aux_loss_coef; DeepSeek's aux_loss_alpha). */
  routerAuxLossCoef: number;
}

/** Whether layer `layer` of a model is a mixture-of-experts layer. */
export function isMoeLayer(config: ModelConfig, layer: number): boolean {
  return config.moe?.layers.includes(layer) ?? false;
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

/** Config fields of MoE families that select something sparq does not implement, and what they select. */
function refuseUnimplemented(source: string, json: Json, type: string): void {
  const refuse = (name: string, what: string) => {
    throw new UnsupportedFormatError(`${source}: ${name} ${JSON.stringify(json[name])} (${what}) is not supported for model_type ${type}; sparq runs DeepSeek-MoE v1 routing (softmax, greedy top-k) with standard attention`);
  };
  const set = (name: string) => json[name] !== undefined && json[name] !== null;
  // DeepSeek-V2/V3 multi-head latent attention.
  for (const name of ['kv_lora_rank', 'q_lora_rank', 'qk_rope_head_dim', 'qk_nope_head_dim', 'v_head_dim']) {
    if (set(name) && json[name] !== 0) refuse(name, 'multi-head latent attention, as in DeepSeek-V2/V3');
  }
  if (set('topk_method') && json.topk_method !== 'greedy') refuse('topk_method', 'group-limited routing');
  if (set('n_group') && json.n_group !== 1) refuse('n_group', 'group-limited routing');
  if (set('topk_group') && json.topk_group !== 1) refuse('topk_group', 'group-limited routing');
  if (set('scoring_func') && json.scoring_func !== 'softmax') refuse('scoring_func', 'router scores other than softmax');
  if (set('routed_scaling_factor') && json.routed_scaling_factor !== 1) refuse('routed_scaling_factor', 'scaled routed experts');
}

function intList(source: string, json: Json, name: string, layers: number): number[] {
  const value = json[name] ?? [];
  if (!Array.isArray(value) || value.some((v) => !Number.isSafeInteger(v) || v < 0 || v >= layers)) {
    throw new InvalidFileError(`${source}: '${name}' must be a list of layer indices below num_hidden_layers ${layers}, found ${JSON.stringify(json[name])}`);
  }
  return value as number[];
}

/** The MoE settings of a Mixtral, Qwen2-MoE, Qwen3-MoE or DeepSeek-MoE config (undefined for dense families). */
function moeSettings(source: string, json: Json, type: string, layers: number): MoeConfig | undefined {
  if (type !== 'mixtral' && type !== 'qwen2_moe' && type !== 'qwen3_moe' && type !== 'deepseek') return undefined;
  refuseUnimplemented(source, json, type);
  const expertsField = type === 'mixtral' ? 'num_local_experts' : type === 'deepseek' ? 'n_routed_experts' : 'num_experts';
  const experts = field(source, json, expertsField, 'int') as number;
  const topK = field(source, json, 'num_experts_per_tok', 'int') as number;
  if (topK > experts) throw new InvalidFileError(`${source}: num_experts_per_tok ${topK} exceeds ${expertsField} ${experts}`);
  const all = Array.from({ length: layers }, (_, i) => i);
  const coefficient = (name: string, fallback: number) => {
    const value = json[name] ?? fallback;
    if (typeof value !== 'number' || !(value >= 0)) throw new InvalidFileError(`${source}: '${name}' must be a number ≥ 0, found ${JSON.stringify(json[name])}`);
    return value;
  };
  if (type === 'mixtral') {
    return { experts, topK, normalizeTopK: true, normalizeEpsilon: 0, expertSize: field(source, json, 'intermediate_size', 'int') as number, layers: all, routerAuxLossCoef: coefficient('router_aux_loss_coef', 0.001) };
  }
  const normalizeTopK = field(source, json, 'norm_topk_prob', 'boolean', false) as boolean;
  const expertSize = field(source, json, 'moe_intermediate_size', 'int') as number;
  if (type === 'deepseek') {
    const firstDense = json.first_k_dense_replace ?? 0;
    if (!Number.isSafeInteger(firstDense) || (firstDense as number) < 0) throw new InvalidFileError(`${source}: 'first_k_dense_replace' must be an integer ≥ 0, found ${JSON.stringify(firstDense)}`);
    const frequency = field(source, json, 'moe_layer_freq', 'int', 1) as number;
    const sharedCount = json.n_shared_experts ?? null;
    if (sharedCount !== null && (!Number.isSafeInteger(sharedCount) || (sharedCount as number) < 0)) {
      throw new InvalidFileError(`${source}: 'n_shared_experts' must be an integer ≥ 0 or null, found ${JSON.stringify(sharedCount)}`);
    }
    return {
      experts,
      topK,
      normalizeTopK: normalizeTopK && topK > 1,
      normalizeEpsilon: 1e-20,
      expertSize,
      shared: sharedCount ? { size: expertSize * (sharedCount as number), gated: false } : undefined,
      layers: all.filter((i) => i >= (firstDense as number) && i % frequency === 0),
      routerAuxLossCoef: coefficient('aux_loss_alpha', 0.001),
    };
  }
  const step = field(source, json, 'decoder_sparse_step', 'int', 1) as number;
  const denseOnly = new Set(intList(source, json, 'mlp_only_layers', layers));
  return {
    experts,
    topK,
    normalizeTopK,
    normalizeEpsilon: 0,
    expertSize,
    shared: type === 'qwen2_moe' ? { size: field(source, json, 'shared_expert_intermediate_size', 'int') as number, gated: true } : undefined,
    layers: all.filter((i) => !denseOnly.has(i) && (i + 1) % step === 0),
    routerAuxLossCoef: coefficient('router_aux_loss_coef', 0.001),
  };
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
  // Qwen2-MoE's q/k/v always carry biases in older configs; newer ones say so with qkv_bias.
  if (type === 'qwen2_moe') return { qkv: field(source, json, 'qkv_bias', 'boolean', true) as boolean, output: false, mlp: false };
  if (type === 'mistral' || type === 'mixtral') return { qkv: false, output: false, mlp: false };
  const attention = field(source, json, 'attention_bias', 'boolean', false) as boolean;
  const mlp = type === 'llama' ? (field(source, json, 'mlp_bias', 'boolean', false) as boolean) : false;
  return { qkv: attention, output: attention, mlp };
}

/** Later DeepSeek generations: refused by the field that makes them different, not just by name. */
const DEEPSEEK_LATER = ['deepseek_v2', 'deepseek_v3'];

function parseFamilyConfig(json: Json, source: string): ModelConfig {
  const type = json.model_type;
  if (typeof type === 'string' && DEEPSEEK_LATER.includes(type)) {
    refuseUnimplemented(source, json, type);
    throw new UnsupportedFormatError(`${source}: model_type ${type} is not supported (supported: ${SUPPORTED_ARCHITECTURES.join(', ')}; DeepSeek-MoE v1 is model_type deepseek)`);
  }
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
  const layers = field(source, json, 'num_hidden_layers', 'int') as number;
  return {
    architecture: type as Architecture,
    hiddenSize,
    intermediateSize: field(source, json, 'intermediate_size', 'int') as number,
    layers,
    heads,
    kvHeads,
    headDim,
    vocabSize: field(source, json, 'vocab_size', 'int') as number,
    maxPositions: field(source, json, 'max_position_embeddings', 'int', 2048) as number,
    norm: 'rms',
    normEps: field(source, json, 'rms_norm_eps', 'number', 1e-6) as number,
    mlp: 'swiglu',
    moe: moeSettings(source, json, type, layers),
    ropeTheta: rope.theta,
    ropeScaling: rope.scaling,
    tiedEmbeddings: field(source, json, 'tie_word_embeddings', 'boolean', false) as boolean,
    bias: linearBiases(source, json, type),
    qkNorm: type === 'qwen3' || type === 'qwen3_moe',
    // Qwen configs carry sliding_window but only apply it with use_sliding_window.
    slidingWindow:
      typeof json.sliding_window === 'number' && (type === 'mistral' || type === 'mixtral' || json.use_sliding_window === true)
        ? json.sliding_window
        : undefined,
  };
}

export function parseConfig(json: Json, source = 'config.json'): ModelConfig {
  const config = parseFamilyConfig(json, source);
  const expertWidths = parseExpertWidths(json, source, config.layers, config.moe?.experts);
  const layerWidths = parseLayerWidths(json, source, config);
  return { ...config, ...(expertWidths ? { expertWidths } : {}), ...(layerWidths ? { layerWidths } : {}) };
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
