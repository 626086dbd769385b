// config.json of a Hugging Face model folder, normalized into what sparq's runtime needs. Every field is
// validated; an unknown model_type gets an error listing the supported ones.
import { join } from 'node:path';
import { InvalidFileError, UnsupportedFormatError } from '../errors.js';
import { readJsonObject } from '../io/text.js';
import { parseExpertWidths } from './expert-widths.js';
/** Decoder families that share Llama's layout: tensor names, RMSNorm, RoPE, SwiGLU MLP (or SwiGLU experts). */
export const LLAMA_FAMILY = ['llama', 'mistral', 'qwen2', 'qwen3', 'mixtral', 'qwen2_moe', 'qwen3_moe', 'deepseek'];
/** Every model_type sparq runs. */
export const SUPPORTED_ARCHITECTURES = [...LLAMA_FAMILY, 'opt'];
/** Whether layer `layer` of a model is a mixture-of-experts layer. */
export function isMoeLayer(config, layer) {
    return config.moe?.layers.includes(layer) ?? false;
}
function field(source, json, name, kind, fallback) {
    const value = json[name] ?? fallback;
    const ok = kind === 'int' ? Number.isSafeInteger(value) && value > 0 : kind === 'number' ? typeof value === 'number' && Number.isFinite(value) && value > 0 : typeof value === 'boolean';
    if (!ok)
        throw new InvalidFileError(`${source}: '${name}' must be ${kind === 'int' ? 'a positive integer' : kind === 'number' ? 'a positive number' : 'a boolean'}, found ${JSON.stringify(json[name])}`);
    return value;
}
function ropeSettings(source, json) {
    // Newer configs nest everything in rope_parameters (rope_theta inside); older ones use rope_theta and
    // an optional rope_scaling object.
    const nested = json.rope_parameters;
    const scaling = (nested ?? json.rope_scaling) ?? undefined;
    const theta = Number(nested?.rope_theta ?? json.rope_theta ?? 10000);
    if (!(theta > 0))
        throw new InvalidFileError(`${source}: rope_theta must be a positive number`);
    const type = (scaling?.rope_type ?? scaling?.type ?? 'default');
    const where = nested ? 'rope_parameters' : 'rope_scaling';
    const num = (name) => field(source, scaling, name, 'number');
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
function refuseUnimplemented(source, json, type) {
    const refuse = (name, what) => {
        throw new UnsupportedFormatError(`${source}: ${name} ${JSON.stringify(json[name])} (${what}) is not supported for model_type ${type}; sparq runs DeepSeek-MoE v1 routing (softmax, greedy top-k) with standard attention`);
    };
    const set = (name) => json[name] !== undefined && json[name] !== null;
    // DeepSeek-V2/V3 multi-head latent attention.
    for (const name of ['kv_lora_rank', 'q_lora_rank', 'qk_rope_head_dim', 'qk_nope_head_dim', 'v_head_dim']) {
        if (set(name) && json[name] !== 0)
            refuse(name, 'multi-head latent attention, as in DeepSeek-V2/V3');
    }
    if (set('topk_method') && json.topk_method !== 'greedy')
        refuse('topk_method', 'group-limited routing');
    if (set('n_group') && json.n_group !== 1)
        refuse('n_group', 'group-limited routing');
    if (set('topk_group') && json.topk_group !== 1)
        refuse('topk_group', 'group-limited routing');
    if (set('scoring_func') && json.scoring_func !== 'softmax')
        refuse('scoring_func', 'router scores other than softmax');
    if (set('routed_scaling_factor') && json.routed_scaling_factor !== 1)
        refuse('routed_scaling_factor', 'scaled routed experts');
}
function intList(source, json, name, layers) {
    const value = json[name] ?? [];
    if (!Array.isArray(value) || value.some((v) => !Number.isSafeInteger(v) || v < 0 || v >= layers)) {
        throw new InvalidFileError(`${source}: '${name}' must be a list of layer indices below num_hidden_layers ${layers}, found ${JSON.stringify(json[name])}`);
    }
    return value;
}
/** The MoE settings of a Mixtral, Qwen2-MoE, Qwen3-MoE or DeepSeek-MoE config (undefined for dense families). */
function moeSettings(source, json, type, layers) {
    if (type !== 'mixtral' && type !== 'qwen2_moe' && type !== 'qwen3_moe' && type !== 'deepseek')
        return undefined;
    refuseUnimplemented(source, json, type);
    const expertsField = type === 'mixtral' ? 'num_local_experts' : type === 'deepseek' ? 'n_routed_experts' : 'num_experts';
    const experts = field(source, json, expertsField, 'int');
    const topK = field(source, json, 'num_experts_per_tok', 'int');
    if (topK > experts)
        throw new InvalidFileError(`${source}: num_experts_per_tok ${topK} exceeds ${expertsField} ${experts}`);
    const all = Array.from({ length: layers }, (_, i) => i);
    const coefficient = (name, fallback) => {
        const value = json[name] ?? fallback;
        if (typeof value !== 'number' || !(value >= 0))
            throw new InvalidFileError(`${source}: '${name}' must be a number ≥ 0, found ${JSON.stringify(json[name])}`);
        return value;
    };
    if (type === 'mixtral') {
        return { experts, topK, normalizeTopK: true, normalizeEpsilon: 0, expertSize: field(source, json, 'intermediate_size', 'int'), layers: all, routerAuxLossCoef: coefficient('router_aux_loss_coef', 0.001) };
    }
    const normalizeTopK = field(source, json, 'norm_topk_prob', 'boolean', false);
    const expertSize = field(source, json, 'moe_intermediate_size', 'int');
    if (type === 'deepseek') {
        const firstDense = json.first_k_dense_replace ?? 0;
        if (!Number.isSafeInteger(firstDense) || firstDense < 0)
            throw new InvalidFileError(`${source}: 'first_k_dense_replace' must be an integer ≥ 0, found ${JSON.stringify(firstDense)}`);
        const frequency = field(source, json, 'moe_layer_freq', 'int', 1);
        const sharedCount = json.n_shared_experts ?? null;
        if (sharedCount !== null && (!Number.isSafeInteger(sharedCount) || sharedCount < 0)) {
            throw new InvalidFileError(`${source}: 'n_shared_experts' must be an integer ≥ 0 or null, found ${JSON.stringify(sharedCount)}`);
        }
        return {
            experts,
            topK,
            normalizeTopK: normalizeTopK && topK > 1,
            normalizeEpsilon: 1e-20,
            expertSize,
            shared: sharedCount ? { size: expertSize * sharedCount, gated: false } : undefined,
            layers: all.filter((i) => i >= firstDense && i % frequency === 0),
            routerAuxLossCoef: coefficient('aux_loss_alpha', 0.001),
        };
    }
    const step = field(source, json, 'decoder_sparse_step', 'int', 1);
    const denseOnly = new Set(intList(source, json, 'mlp_only_layers', layers));
    return {
        experts,
        topK,
        normalizeTopK,
        normalizeEpsilon: 0,
        expertSize,
        shared: type === 'qwen2_moe' ? { size: field(source, json, 'shared_expert_intermediate_size', 'int'), gated: true } : undefined,
        layers: all.filter((i) => !denseOnly.has(i) && (i + 1) % step === 0),
        routerAuxLossCoef: coefficient('router_aux_loss_coef', 0.001),
    };
}
function parseOptConfig(json, source) {
    const hiddenSize = field(source, json, 'hidden_size', 'int');
    const heads = field(source, json, 'num_attention_heads', 'int');
    if (hiddenSize % heads !== 0)
        throw new InvalidFileError(`${source}: hidden_size ${hiddenSize} is not a multiple of num_attention_heads ${heads}`);
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
    if (activation !== 'relu' && activation !== 'gelu')
        throw new UnsupportedFormatError(`${source}: activation_function '${String(activation)}' is not supported (relu, gelu)`);
    return {
        architecture: 'opt',
        hiddenSize,
        intermediateSize: field(source, json, 'ffn_dim', 'int'),
        layers: field(source, json, 'num_hidden_layers', 'int'),
        heads,
        kvHeads: heads,
        headDim: hiddenSize / heads,
        vocabSize: field(source, json, 'vocab_size', 'int'),
        maxPositions: field(source, json, 'max_position_embeddings', 'int'),
        norm: 'layer',
        normEps: 1e-5,
        mlp: activation,
        learnedPositionOffset: 2,
        ropeTheta: 0,
        ropeScaling: { type: 'default' },
        tiedEmbeddings: field(source, json, 'tie_word_embeddings', 'boolean', true),
        bias: { qkv: json.enable_bias !== false, output: json.enable_bias !== false, mlp: json.enable_bias !== false },
        qkNorm: false,
    };
}
/**
 * Biases as Hugging Face builds each family: Qwen2 always has q/k/v biases and nothing else; Llama and
 * Qwen3 put attention_bias on q/k/v/o, Llama mlp_bias on gate/up/down; Mistral and Mixtral have none.
 */
function linearBiases(source, json, type) {
    if (type === 'qwen2')
        return { qkv: true, output: false, mlp: false };
    // Qwen2-MoE's q/k/v always carry biases in older configs; newer ones say so with qkv_bias.
    if (type === 'qwen2_moe')
        return { qkv: field(source, json, 'qkv_bias', 'boolean', true), output: false, mlp: false };
    if (type === 'mistral' || type === 'mixtral')
        return { qkv: false, output: false, mlp: false };
    const attention = field(source, json, 'attention_bias', 'boolean', false);
    const mlp = type === 'llama' ? field(source, json, 'mlp_bias', 'boolean', false) : false;
    return { qkv: attention, output: attention, mlp };
}
/** Later DeepSeek generations: refused by the field that makes them different, not just by name. */
const DEEPSEEK_LATER = ['deepseek_v2', 'deepseek_v3'];
function parseFamilyConfig(json, source) {
    const type = json.model_type;
    if (typeof type === 'string' && DEEPSEEK_LATER.includes(type)) {
        refuseUnimplemented(source, json, type);
        throw new UnsupportedFormatError(`${source}: model_type ${type} is not supported (supported: ${SUPPORTED_ARCHITECTURES.join(', ')}; DeepSeek-MoE v1 is model_type deepseek)`);
    }
    if (typeof type !== 'string' || !SUPPORTED_ARCHITECTURES.includes(type)) {
        throw new UnsupportedFormatError(`${source}: model_type ${JSON.stringify(type)} is not supported; supported: ${SUPPORTED_ARCHITECTURES.join(', ')}`);
    }
    if (type === 'opt')
        return parseOptConfig(json, source);
    const hiddenSize = field(source, json, 'hidden_size', 'int');
    const heads = field(source, json, 'num_attention_heads', 'int');
    const kvHeads = field(source, json, 'num_key_value_heads', 'int', heads);
    if (heads % kvHeads !== 0)
        throw new InvalidFileError(`${source}: num_attention_heads (${heads}) is not a multiple of num_key_value_heads (${kvHeads})`);
    if (json.head_dim === undefined && hiddenSize % heads !== 0) {
        throw new InvalidFileError(`${source}: hidden_size ${hiddenSize} is not a multiple of num_attention_heads ${heads}, and no head_dim is given`);
    }
    const headDim = field(source, json, 'head_dim', 'int', hiddenSize / heads);
    if (headDim % 2 !== 0)
        throw new InvalidFileError(`${source}: head_dim ${headDim} must be even for rotary embeddings`);
    const activation = json.hidden_act ?? 'silu';
    if (activation !== 'silu')
        throw new UnsupportedFormatError(`${source}: hidden_act '${String(activation)}' is not supported for ${type} (expected silu)`);
    const rope = ropeSettings(source, json);
    const layers = field(source, json, 'num_hidden_layers', 'int');
    return {
        architecture: type,
        hiddenSize,
        intermediateSize: field(source, json, 'intermediate_size', 'int'),
        layers,
        heads,
        kvHeads,
        headDim,
        vocabSize: field(source, json, 'vocab_size', 'int'),
        maxPositions: field(source, json, 'max_position_embeddings', 'int', 2048),
        norm: 'rms',
        normEps: field(source, json, 'rms_norm_eps', 'number', 1e-6),
        mlp: 'swiglu',
        moe: moeSettings(source, json, type, layers),
        ropeTheta: rope.theta,
        ropeScaling: rope.scaling,
        tiedEmbeddings: field(source, json, 'tie_word_embeddings', 'boolean', false),
        bias: linearBiases(source, json, type),
        qkNorm: type === 'qwen3' || type === 'qwen3_moe',
        // Qwen configs carry sliding_window but only apply it with use_sliding_window.
        slidingWindow: typeof json.sliding_window === 'number' && (type === 'mistral' || type === 'mixtral' || json.use_sliding_window === true)
            ? json.sliding_window
            : undefined,
    };
}
export function parseConfig(json, source = 'config.json') {
    const config = parseFamilyConfig(json, source);
    const expertWidths = parseExpertWidths(json, source, config.layers, config.moe?.experts);
    return expertWidths ? { ...config, expertWidths } : config;
}
export async function readConfig(dir) {
    const path = join(dir, 'config.json');
    return parseConfig(await readJsonObject(path), path);
}
//# sourceMappingURL=config.js.map