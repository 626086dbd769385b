// Architectures as data: where each parameter of a family lives, and which linear layers read the same
// input (the groups that share calibration statistics).
import type { Architecture, ModelConfig } from './config.js';

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


/** Linears that share structure within a block: removing output j of one means removing input j of another. */
export interface StructuralGroup {
  name: string;
  roles: string[];
}

/** A block's structural groups: attention (q/k/v/o), the MLP (gate/up/down or fc1/fc2), each expert. */
export function structuralGroups(config: ModelConfig): StructuralGroup[] {
  const groups: StructuralGroup[] = [{ name: 'attention', roles: ['q', 'k', 'v', 'o'] }];
  if (config.mlp === 'moe') {
    for (let e = 0; e < config.moe!.experts; ++e) groups.push({ name: `expert.${e}`, roles: [`expert.${e}.gate`, `expert.${e}.up`, `expert.${e}.down`] });
  } else if (config.mlp === 'swiglu') {
    groups.push({ name: 'mlp', roles: ['gate', 'up', 'down'] });
  } else {
    groups.push({ name: 'mlp', roles: ['fc1', 'fc2'] });
  }
  return groups;
}
