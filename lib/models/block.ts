// One decoder block, written once. The forward pass (eager tensors on native async ops) and the gradient
// tape (recorded variables) run this same function over their own `BlockOps`, so the two can never
// describe different models. The families:
//   pre-norm → q, k, v (+ bias) → [q/k RMSNorm] → [RoPE] → grouped-query causal attention → o → residual
//   pre-norm → SwiGLU (gate, up, down) | fc1 → ReLU/GELU → fc2
//            | routed SwiGLU experts (+ a shared SwiGLU expert, optionally scaled by σ(x·w_sgᵀ)) → residual
// Which blocks are mixture-of-experts blocks is the config's (config.moe.layers).
// `observe` sees each group of linears' input (what the compression pipeline accumulates statistics from).
import type { Tensor } from '../tensor/tensor.js';
import { isMoeLayer, type ModelConfig, type MoeConfig } from './config.js';

export type Awaitable<T> = T | Promise<T>;

/** Which of a block's norms. */
export type BlockNorm = 'attention' | 'mlp' | 'q' | 'k';

/** A mixture-of-experts routing decision: per token, weights over the experts; per expert, its tokens. */
export interface BlockRouting<V> {
  /** [tokens, experts] combine weights, zero where an expert was not chosen. */
  weights: V;
  /** Token indices routed to each expert (i32), in token order; an idle expert has none. */
  tokens: Tensor[];
}

/** The operations a block is made of, over values of type V (tensors, or tape variables). */
export interface BlockOps<V> {
  /** x·Wᵀ (+ b) with the block's linear `role` (q, k, v, o, gate, up, down, fc1, fc2, router, expert.<e>.gate …). */
  linear(role: string, x: V): Awaitable<V>;
  norm(which: BlockNorm, x: V): Awaitable<V>;
  reshape(x: V, shape: number[]): V;
  /** Rotary embedding of [N, heads, headDim] at the rows' positions. */
  rope(x: V): Awaitable<V>;
  /** Causal grouped-query attention within each sequence of the rows. */
  attention(q: V, k: V, v: V): Awaitable<V>;
  siluMul(gate: V, up: V): Awaitable<V>;
  activation(kind: 'relu' | 'gelu', x: V): Awaitable<V>;
  /** residual + x. The forward pass updates `residual` in place (the block never reads it again). */
  residual(residual: V, x: V): Awaitable<V>;
  /** The router's decision from its logits [tokens, experts], as config.moe describes it. */
  route(logits: V, moe: MoeConfig): Awaitable<BlockRouting<V>>;
  /** σ(gate[t])·x[t] for each row t: x [T, D], gate [T, 1] (Qwen2-MoE's shared-expert gate). */
  sigmoidScale(x: V, gate: V): Awaitable<V>;
  /** Rows of x for the given token indices. */
  gather(x: V, tokens: Tensor): Awaitable<V>;
  /** Σ over experts of each expert's output rows scattered back to its tokens, times their weights. */
  combine(routing: BlockRouting<V>, outputs: (V | undefined)[], dim: number): Awaitable<V>;
  /** Sees the input of a group of linears (names as in inputGroups); may throw to end the pass early. */
  observe?(group: string, x: V): Awaitable<void>;
}

/** Runs decoder block `layer` on hidden states h [N, hidden]; returns the block's output. */
export async function decoderBlock<V>(config: ModelConfig, ops: BlockOps<V>, h: V, rows: number, layer: number): Promise<V> {
  const { heads, kvHeads, headDim } = config;
  const x = await ops.norm('attention', h);
  await ops.observe?.('attention.in', x);
  let q = ops.reshape(await ops.linear('q', x), [rows, heads, headDim]);
  let k = ops.reshape(await ops.linear('k', x), [rows, kvHeads, headDim]);
  const v = ops.reshape(await ops.linear('v', x), [rows, kvHeads, headDim]);
  if (config.qkNorm) {
    q = await ops.norm('q', q);
    k = await ops.norm('k', k);
  }
  if (config.learnedPositionOffset === undefined) {
    q = await ops.rope(q);
    k = await ops.rope(k);
  }
  const attended = ops.reshape(await ops.attention(q, k, v), [rows, heads * headDim]);
  await ops.observe?.('attention.out', attended);
  const afterAttention = await ops.residual(h, await ops.linear('o', attended));

  const y = await ops.norm('mlp', afterAttention);
  let mlp: V;
  if (config.moe && isMoeLayer(config, layer)) {
    await ops.observe?.('router', y);
    const routing = await ops.route(await ops.linear('router', y), config.moe);
    const outputs: (V | undefined)[] = [];
    for (let e = 0; e < routing.tokens.length; ++e) {
      if (routing.tokens[e].numel === 0) {
        outputs.push(undefined);
        continue;
      }
      const routed = await ops.gather(y, routing.tokens[e]);
      await ops.observe?.(`expert.${e}.in`, routed);
      const activated = await ops.siluMul(await ops.linear(`expert.${e}.gate`, routed), await ops.linear(`expert.${e}.up`, routed));
      await ops.observe?.(`expert.${e}.out`, activated);
      outputs.push(await ops.linear(`expert.${e}.down`, activated));
    }
    mlp = await ops.combine(routing, outputs, config.hiddenSize);
    if (config.moe.shared) {
      const activated = await ops.siluMul(await ops.linear('shared.gate', y), await ops.linear('shared.up', y));
      await ops.observe?.('shared.out', activated);
      let shared = await ops.linear('shared.down', activated);
      if (config.moe.shared.gated) shared = await ops.sigmoidScale(shared, await ops.linear('shared_expert_gate', y));
      mlp = await ops.residual(mlp, shared);
    }
  } else if (config.mlp === 'swiglu') {
    await ops.observe?.('mlp.in', y);
    const activated = await ops.siluMul(await ops.linear('gate', y), await ops.linear('up', y));
    await ops.observe?.('mlp.out', activated);
    mlp = await ops.linear('down', activated);
  } else {
    await ops.observe?.('mlp.in', y);
    const activated = await ops.activation(config.mlp, await ops.linear('fc1', y));
    await ops.observe?.('mlp.out', activated);
    mlp = await ops.linear('fc2', activated);
  }
  return ops.residual(afterAttention, mlp);
}
