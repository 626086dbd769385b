// Architectures as data: where each parameter of a family lives, and which linear layers read the same
// input (the groups that share calibration statistics).
import { isMoeLayer, type Architecture, type ModelConfig } from './config.js';

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
  /** Linear layers of a dense block by role (attention q/k/v/o, the MLP), without the .weight / .bias suffix. */
  linears: Record<string, string>;
  /**
   * A mixture-of-experts block's MLP: the router, each routed expert's gate/up/down projections, and the
   * shared expert's folder (its projections named as the dense MLP's) with Qwen2-MoE's sigmoid gate.
   */
  experts?: { router: string; expert: (e: number) => string; gate: string; up: string; down: string; shared?: string; sharedGate?: string };
}

/** The attention roles every block has. */
export const ATTENTION_ROLES = ['q', 'k', 'v', 'o'] as const;

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

/** Qwen2-MoE / Qwen3-MoE: dense layers as Llama's, MoE layers under mlp. (with a gated shared expert in Qwen2-MoE). */
const QWEN_MOE_LAYOUT: Layout = {
  ...LLAMA_LAYOUT,
  experts: { router: 'mlp.gate', expert: (e) => `mlp.experts.${e}.`, gate: 'gate_proj', up: 'up_proj', down: 'down_proj', shared: 'mlp.shared_expert.', sharedGate: 'mlp.shared_expert_gate' },
};

/** DeepSeek-MoE: as Qwen's, the shared experts as one MLP under mlp.shared_experts. */
const DEEPSEEK_LAYOUT: Layout = {
  ...LLAMA_LAYOUT,
  experts: { router: 'mlp.gate', expert: (e) => `mlp.experts.${e}.`, gate: 'gate_proj', up: 'up_proj', down: 'down_proj', shared: 'mlp.shared_experts.' },
};

export const LAYOUTS: Record<Architecture, Layout> = {
  llama: LLAMA_LAYOUT,
  mixtral: MIXTRAL_LAYOUT,
  mistral: LLAMA_LAYOUT,
  qwen2: LLAMA_LAYOUT,
  qwen3: LLAMA_LAYOUT,
  qwen2_moe: QWEN_MOE_LAYOUT,
  qwen3_moe: QWEN_MOE_LAYOUT,
  deepseek: DEEPSEEK_LAYOUT,
  opt: OPT_LAYOUT,
};

/**
 * Block `layer`'s linear layers by role → name relative to the block. Roles: q, k, v, o; a dense MLP's
 * gate/up/down (fc1/fc2); an MoE block's router, expert.<e>.gate/up/down, and its shared expert's
 * shared.gate/up/down and shared_expert_gate (Qwen2-MoE's [1, hidden] sigmoid gate).
 */
export function blockLinearRoles(config: ModelConfig, layer: number): Record<string, string> {
  const layout = LAYOUTS[config.architecture];
  const moe = layout.experts;
  if (!moe || !config.moe || !isMoeLayer(config, layer)) return { ...layout.linears };
  const roles: Record<string, string> = {};
  for (const role of ATTENTION_ROLES) roles[role] = layout.linears[role];
  roles.router = moe.router;
  for (let e = 0; e < config.moe.experts; ++e) {
    roles[`expert.${e}.gate`] = moe.expert(e) + moe.gate;
    roles[`expert.${e}.up`] = moe.expert(e) + moe.up;
    roles[`expert.${e}.down`] = moe.expert(e) + moe.down;
  }
  if (config.moe.shared && moe.shared) {
    roles['shared.gate'] = moe.shared + moe.gate;
    roles['shared.up'] = moe.shared + moe.up;
    roles['shared.down'] = moe.shared + moe.down;
    if (config.moe.shared.gated && moe.sharedGate) roles.shared_expert_gate = moe.sharedGate;
  }
  return roles;
}

/** Linear layers that read the same input, in forward order; `stage` orders them for sequential pruning. */
export interface InputGroup {
  name: string;
  roles: string[];
  /** 0: attention inputs, 1: attention output, 2: MLP / router / expert inputs, 3: MLP / expert outputs. */
  stage: number;
}

/**
 * Block `layer`'s input groups, in forward order. An MoE block's 'router' group is the MoE layer's input,
 * read by the router and the shared expert's gate/up (and Qwen2-MoE's shared_expert_gate); each expert
 * has expert.<e>.in / expert.<e>.out, the shared expert shared.out.
 */
export function inputGroups(config: ModelConfig, layer: number): InputGroup[] {
  const groups: InputGroup[] = [
    { name: 'attention.in', roles: ['q', 'k', 'v'], stage: 0 },
    { name: 'attention.out', roles: ['o'], stage: 1 },
  ];
  if (config.moe && isMoeLayer(config, layer)) {
    const shared = config.moe.shared;
    groups.push({ name: 'router', roles: ['router', ...(shared ? ['shared.gate', 'shared.up'] : []), ...(shared?.gated ? ['shared_expert_gate'] : [])], stage: 2 });
    for (let e = 0; e < config.moe.experts; ++e) {
      groups.push({ name: `expert.${e}.in`, roles: [`expert.${e}.gate`, `expert.${e}.up`], stage: 2 });
      groups.push({ name: `expert.${e}.out`, roles: [`expert.${e}.down`], stage: 3 });
    }
    if (shared) groups.push({ name: 'shared.out', roles: ['shared.down'], stage: 3 });
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

/** Block `layer`'s structural groups: attention (q/k/v/o), the MLP (gate/up/down or fc1/fc2), each expert, the shared expert. */
export function structuralGroups(config: ModelConfig, layer: number): StructuralGroup[] {
  const groups: StructuralGroup[] = [{ name: 'attention', roles: ['q', 'k', 'v', 'o'] }];
  if (config.moe && isMoeLayer(config, layer)) {
    for (let e = 0; e < config.moe.experts; ++e) groups.push({ name: `expert.${e}`, roles: [`expert.${e}.gate`, `expert.${e}.up`, `expert.${e}.down`] });
    if (config.moe.shared) groups.push({ name: 'shared', roles: ['shared.gate', 'shared.up', 'shared.down'] });
  } else if (config.mlp === 'swiglu') {
    groups.push({ name: 'mlp', roles: ['gate', 'up', 'down'] });
  } else {
    groups.push({ name: 'mlp', roles: ['fc1', 'fc2'] });
  }
  return groups;
}
