// The parameters a config implies: every tensor's name and shape, in checkpoint order. A checkpoint must
// hold exactly these (apart from the documented optional extras below), with these shapes: a missing
// lm_head or bias, a layer the config does not count, or a width that disagrees with config.json is an
// error naming the tensor and the config fields, never a silently different model.
import { InvalidFileError } from '../errors.js';
import { formatShape } from '../tensor/tensor.js';
import { blockConfig, isMoeLayer, type ModelConfig } from './config.js';
import { hasRemovedExperts, runExpertWidth } from './expert-widths.js';
import { LAYOUTS } from './layouts.js';

export interface PlannedParameter {
  name: string;
  dtype: 'f32';
  shape: number[];
  /** What sets each dimension, in config.json's words (for error messages). */
  dimensions: string[];
  /** A norm weight (initialised to ones). */
  isNorm: boolean;
}

/** Names and shapes of every parameter of a model with this config, in checkpoint order (f32). */
export function parameterPlan(config: ModelConfig): PlannedParameter[] {
  const layout = LAYOUTS[config.architecture];
  const { hiddenSize: D } = config;
  const plan: PlannedParameter[] = [];
  const add = (name: string, shape: number[], dimensions: string[], isNorm = false) => plan.push({ name, dtype: 'f32', shape, dimensions, isNorm });
  const norm = (base: string, dim: number, what: string) => {
    add(`${base}.weight`, [dim], [what], true);
    if (config.norm === 'layer') add(`${base}.bias`, [dim], [what]);
  };
  const linear = (base: string, out: [number, string], inputs: [number, string], bias: boolean) => {
    add(`${base}.weight`, [out[0], inputs[0]], [out[1], inputs[1]]);
    if (bias) add(`${base}.bias`, [out[0]], [out[1]]);
  };
  const hidden: [number, string] = [D, 'hidden_size'];
  add(layout.embed, [config.vocabSize, D], ['vocab_size', 'hidden_size']);
  if (layout.positions) add(layout.positions, [config.maxPositions + (config.learnedPositionOffset ?? 0), D], ['max_position_embeddings + 2', 'hidden_size']);
  for (let l = 0; l < config.layers; ++l) {
    const p = layout.block(l);
    const { intermediateSize: I, heads, kvHeads, headDim } = blockConfig(config, l);
    const perLayer = config.layerWidths ? ` (sparq_layer_widths[${l}])` : '';
    const inner: [number, string] = [I, `${config.architecture === 'opt' ? 'ffn_dim' : 'intermediate_size'}${perLayer}`];
    const queries: [number, string] = [heads * headDim, `num_attention_heads × head_dim${perLayer}`];
    const keys: [number, string] = [kvHeads * headDim, `num_key_value_heads × head_dim${perLayer}`];
    norm(p + layout.attentionNorm, D, 'hidden_size');
    linear(p + layout.linears.q, queries, hidden, config.bias.qkv);
    linear(p + layout.linears.k, keys, hidden, config.bias.qkv);
    linear(p + layout.linears.v, keys, hidden, config.bias.qkv);
    linear(p + layout.linears.o, hidden, queries, config.bias.output);
    if (config.qkNorm && layout.qNorm && layout.kNorm) {
      norm(p + layout.qNorm, headDim, 'head_dim');
      norm(p + layout.kNorm, headDim, 'head_dim');
    }
    norm(p + layout.mlpNorm, D, 'hidden_size');
    if (config.moe && isMoeLayer(config, l)) {
      const moe = layout.experts!;
      const settings = config.moe;
      const expertsField = config.architecture === 'mixtral' ? 'num_local_experts' : config.architecture === 'deepseek' ? 'n_routed_experts' : 'num_experts';
      const expertInner: [number, string] = [settings.expertSize, config.architecture === 'mixtral' ? 'intermediate_size' : 'moe_intermediate_size'];
      linear(p + moe.router, [settings.experts, expertsField], hidden, hasRemovedExperts(config.expertWidths, l));
      for (let e = 0; e < settings.experts; ++e) {
        const width = keptExpertInner(config, l, e, expertInner);
        linear(p + moe.expert(e) + moe.gate, width, hidden, false);
        linear(p + moe.expert(e) + moe.up, width, hidden, false);
        linear(p + moe.expert(e) + moe.down, hidden, width, false);
      }
      if (settings.shared && moe.shared) {
        const sharedInner: [number, string] = [settings.shared.size, config.architecture === 'deepseek' ? 'moe_intermediate_size × n_shared_experts' : 'shared_expert_intermediate_size'];
        linear(p + moe.shared + moe.gate, sharedInner, hidden, false);
        linear(p + moe.shared + moe.up, sharedInner, hidden, false);
        linear(p + moe.shared + moe.down, hidden, sharedInner, false);
        if (settings.shared.gated && moe.sharedGate) linear(p + moe.sharedGate, [1, 'one shared-expert gate'], hidden, false);
      }
    } else if (config.mlp === 'swiglu') {
      linear(p + layout.linears.gate, inner, hidden, config.bias.mlp);
      linear(p + layout.linears.up, inner, hidden, config.bias.mlp);
      linear(p + layout.linears.down, hidden, inner, config.bias.mlp);
    } else {
      linear(p + layout.linears.fc1, inner, hidden, config.bias.mlp);
      linear(p + layout.linears.fc2, hidden, inner, config.bias.mlp);
    }
  }
  norm(layout.finalNorm, D, 'hidden_size');
  if (!config.tiedEmbeddings) add(layout.lmHead, [config.vocabSize, D], ['vocab_size', 'hidden_size']);
  return plan;
}

/** An expert's width as sparq runs it: the config's, or its kept width from an expert-pruning record. */
function keptExpertInner(config: ModelConfig, layer: number, expert: number, inner: [number, string]): [number, string] {
  if (!config.expertWidths?.layers.has(layer)) return inner;
  return [runExpertWidth(config.expertWidths, layer, expert, inner[0]), `sparq_experts.layers.${layer} (expert ${expert})`];
}

/**
 * Tensors a checkpoint may hold beyond the plan, which sparq ignores as Hugging Face does: rotary caches
 * some exporters save, and a copy of the embedding as lm_head in a tied model (tying overwrites it).
 */
function isOptionalExtra(config: ModelConfig, name: string): boolean {
  if (/(^|\.)rotary_emb\.inv_freq$/.test(name)) return true;
  return config.tiedEmbeddings && name === LAYOUTS[config.architecture].lmHead;
}

export interface StoredTensor {
  name: string;
  shape: readonly number[];
  dtype: string;
}

const FLOAT_DTYPES = new Set(['F32', 'F16', 'BF16', 'F64']);

/**
 * Checks a checkpoint's tensors against the config: the same set (apart from optional extras) and the
 * same shapes, float dtypes. `where` names the folder; `configFile` the config.json.
 */
export function checkParameters(config: ModelConfig, stored: readonly StoredTensor[], where: string, configFile: string): void {
  const plan = parameterPlan(config);
  const byName = new Map(stored.map((t) => [t.name, t]));
  const layerPattern = /(?:^|\.)layers\.(\d+)\./;
  const extras = stored.filter((t) => !plan.some((p) => p.name === t.name) && !isOptionalExtra(config, t.name));
  if (extras.length > 0) {
    const beyond = extras.find((t) => Number(layerPattern.exec(t.name)?.[1] ?? -1) >= config.layers);
    if (beyond) {
      throw new InvalidFileError(
        `${where}: tensor '${beyond.name}' belongs to layer ${layerPattern.exec(beyond.name)![1]}, but ${configFile} has num_hidden_layers ${config.layers}; the config and the weights disagree`,
      );
    }
    const list = extras.slice(0, 3).map((t) => `'${t.name}'`).join(', ');
    throw new InvalidFileError(
      `${where}: ${extras.length} tensor${extras.length > 1 ? 's' : ''} (${list}${extras.length > 3 ? ', …' : ''}) ` +
        `${extras.length > 1 ? 'are' : 'is'} not part of a ${config.architecture} model as ${configFile} describes it; the config and the weights disagree`,
    );
  }
  for (const p of plan) {
    const t = byName.get(p.name);
    if (!t) {
      const why = p.name.endsWith('.bias') ? ' (the config implies biases on this layer)' : p.name === LAYOUTS[config.architecture].lmHead ? ' (tie_word_embeddings is false, so the model needs its own output layer)' : '';
      throw new InvalidFileError(`${where}: tensor '${p.name}' is missing${why}; ${configFile} (model_type ${config.architecture}) implies it`);
    }
    if (!FLOAT_DTYPES.has(t.dtype)) {
      throw new InvalidFileError(`${where}: tensor '${p.name}' is stored as ${t.dtype}; model parameters must be F32, F16, BF16 or F64 (a quantized checkpoint needs its quantization_config)`);
    }
    if (formatShape(t.shape) !== formatShape(p.shape)) {
      const dims = p.dimensions.map((d, i) => `${d} = ${p.shape[i]}`).join(', ');
      throw new InvalidFileError(`${where}: tensor '${p.name}' has shape ${formatShape(t.shape)}, but ${configFile} implies ${formatShape(p.shape)} (${dims})`);
    }
  }
}
