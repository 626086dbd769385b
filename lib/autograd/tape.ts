// Reverse-mode automatic differentiation over sparq's ops. A Tape records, for each op run through it,
// a closure that maps the output's gradient to its inputs' gradients; `backward` runs them newest first.
// Values are f32 tensors; gradients are f32 tensors of the value's shape, accumulated (+=) when a
// variable feeds several ops. An output's gradient is dropped once its op has run backward, so memory
// during backward is the saved forward values plus the gradients still in flight.
import { InvalidArgumentError } from '../errors.js';
import { attention, embedding, layerNorm, rmsNorm, rope, scatterAdd, siluMul, addBias, crossEntropy } from '../tensor/nn.js';
import {
  activationBackward,
  attentionBackward,
  columnSums,
  crossEntropyBackward,
  embeddingBackward,
  normBackward,
  ropeBackward,
  scatterAddBackward,
  siluMulBackward,
} from '../tensor/nn-backward.js';
import { allRows, routeTokens, sigmoid } from '../models/decoder.js';
import type { MoeConfig } from '../models/config.js';
import { axpy, copy, gelu, geluTanh, gemm, relu, silu } from '../tensor/ops.js';
import { Tensor, type Shape } from '../tensor/tensor.js';

/** A value on a tape; `grad` is filled by `Tape.backward` when `requiresGrad`. */
export class Variable {
  grad: Tensor | undefined;
  constructor(
    readonly value: Tensor,
    readonly requiresGrad: boolean,
    /** Leaves (parameters, inputs) keep their gradient after backward; intermediate ones drop it. */
    readonly isLeaf: boolean,
  ) {}
}

export type Activation = 'relu' | 'silu' | 'gelu' | 'geluTanh';

const ACTIVATIONS = { relu, silu, gelu, geluTanh } as const;

/** A mixture-of-experts routing decision: per expert, the tokens it got and their column of weights. */
export interface Routing {
  /** [tokens, experts] renormalized top-k weights, zero where an expert was not chosen. */
  weights: Variable;
  /** Token indices routed to each expert (i32), in token order; empty experts have length 0. */
  tokens: Tensor[];
  /** Softmax of the router logits [T·E] (row-major) and which experts each token chose. */
  probabilities?: Float32Array;
  chosen?: Uint8Array;
}

export class Tape {
  private readonly steps: (() => void)[] = [];

  /** A leaf that gradients flow into (a parameter or an input whose gradient is wanted). */
  parameter(value: Tensor): Variable {
    return new Variable(value, true, true);
  }

  /** A leaf without a gradient. */
  constant(value: Tensor): Variable {
    return new Variable(value, false, true);
  }

  /**
   * Runs the recorded ops backward from `output`, seeded with `seed` (default 1 for a one-element
   * output). Leaves' `grad` hold the results; the tape is emptied. `extraSeeds` add gradients straight
   * onto other recorded values (a loss term computed outside the tape, such as the router's
   * load-balancing loss, enters through the gradient with respect to the router logits).
   */
  backward(output: Variable, seed?: Tensor, extraSeeds: readonly (readonly [Variable, Tensor])[] = []): void {
    if (!output.requiresGrad) throw new InvalidArgumentError('backward: the output does not depend on any parameter');
    if (seed === undefined && output.value.numel !== 1) throw new InvalidArgumentError(`backward: a seed gradient is needed for an output of ${output.value.numel} elements`);
    accumulate(output, seed ?? Tensor.full(output.value.shape, 1), false);
    for (const [variable, extra] of extraSeeds) accumulate(variable, extra, false);
    for (let i = this.steps.length - 1; i >= 0; --i) this.steps[i]();
    this.steps.length = 0;
  }

  /**
   * Calls `onGradient(value, grad)` during backward with v's full gradient (summed over all its consumers),
   * without changing the graph. A step recorded now runs after every later consumer of v has added its
   * share and before the op that produced v consumes the sum. Nothing is called if no gradient reached v.
   * The gradient is lent: copy what you keep.
   */
  watch(v: Variable, onGradient: (value: Tensor, grad: Tensor) => void): void {
    if (!v.requiresGrad) return;
    this.steps.push(() => {
      if (v.grad) onGradient(v.value, v.grad);
    });
  }

  /** Records `backward` for an output computed from `inputs`; nothing is recorded if none needs a gradient. */
  private record(value: Tensor, inputs: (Variable | undefined)[], backward: (grad: Tensor) => void): Variable {
    const requiresGrad = inputs.some((v) => v?.requiresGrad);
    const out = new Variable(value, requiresGrad, false);
    if (requiresGrad) {
      this.steps.push(() => {
        const grad = out.grad;
        if (grad === undefined) return; // nothing downstream used this output
        out.grad = undefined;
        backward(grad);
      });
    }
    return out;
  }

  /** y = x·wᵀ (+ b) for x [N, in], w [out, in]. */
  linear(x: Variable, w: Variable, b?: Variable): Variable {
    const y = gemm(x.value, w.value, { transB: true });
    if (b) addBias(y, b.value);
    return this.record(y, [x, w, b], (gy) => {
      if (x.requiresGrad) accumulate(x, gemm(gy, w.value), true);
      if (w.requiresGrad) {
        if (w.grad) gemm(gy, x.value, { transA: true, out: w.grad, beta: 1 });
        else w.grad = gemm(gy, x.value, { transA: true });
      }
      if (b?.requiresGrad) columnSums(gy, gradientBuffer(b));
    });
  }

  /** Rows of table for ids (i32 tensor): [...ids.shape, D]. Also gathers tokens' rows for experts. */
  embedding(table: Variable, ids: Tensor): Variable {
    return this.record(embedding(table.value, ids), [table], (gy) => {
      embeddingBackward(gy, ids, gradientBuffer(table));
    });
  }

  /** RMSNorm (bias undefined) or LayerNorm over the last dimension. */
  norm(kind: 'rms' | 'layer', x: Variable, weight: Variable, bias: Variable | undefined, eps: number): Variable {
    const y = kind === 'rms' ? rmsNorm(x.value, weight.value, eps) : layerNorm(x.value, weight.value, bias?.value, eps);
    return this.record(y, [x, weight, bias], (gy) => {
      const gradWeight = weight.requiresGrad ? gradientBuffer(weight) : Tensor.zeros(weight.value.shape);
      const gradBias = bias ? (bias.requiresGrad ? gradientBuffer(bias) : Tensor.zeros(bias.value.shape)) : undefined;
      const gx = normBackward(kind, x.value, weight.value, gy, eps, gradWeight, gradBias);
      if (x.requiresGrad) accumulate(x, gx, true);
    });
  }

  /** Rotary embedding of x [T, H, d] at positions (i32 [T]). */
  rope(x: Variable, positions: Tensor, invFreq: Tensor): Variable {
    const y = rope(copy(x.value), positions, invFreq);
    return this.record(y, [x], (gy) => {
      accumulate(x, ropeBackward(copy(gy), positions, invFreq), true);
    });
  }

  /**
   * Causal attention within each run of `sequenceLength` rows: q [N, Hq, d], k and v [N, Hkv, d], N a
   * multiple of sequenceLength.
   */
  attention(q: Variable, k: Variable, v: Variable, sequenceLength: number): Variable {
    const N = q.value.shape[0];
    const out = Tensor.zeros(q.value.shape);
    for (let s = 0; s < N; s += sequenceLength) {
      const e = Math.min(N, s + sequenceLength);
      attention(q.value.narrow(s, e), k.value.narrow(s, e), v.value.narrow(s, e), { out: out.narrow(s, e) });
    }
    return this.record(out, [q, k, v], (gy) => {
      const gq = Tensor.zeros(q.value.shape);
      const gk = Tensor.zeros(k.value.shape);
      const gv = Tensor.zeros(v.value.shape);
      for (let s = 0; s < N; s += sequenceLength) {
        const e = Math.min(N, s + sequenceLength);
        attentionBackward(q.value.narrow(s, e), k.value.narrow(s, e), v.value.narrow(s, e), out.narrow(s, e), gy.narrow(s, e), {
          outQ: gq.narrow(s, e),
          outK: gk.narrow(s, e),
          outV: gv.narrow(s, e),
        });
      }
      accumulate(q, gq, true);
      accumulate(k, gk, true);
      accumulate(v, gv, true);
    });
  }

  /** silu(gate)·up. */
  siluMul(gate: Variable, up: Variable): Variable {
    return this.record(siluMul(gate.value, up.value), [gate, up], (gy) => {
      const g = siluMulBackward(gate.value, up.value, gy);
      accumulate(gate, g.gate, true);
      accumulate(up, g.up, true);
    });
  }

  activation(op: Activation, x: Variable): Variable {
    return this.record(ACTIVATIONS[op](x.value), [x], (gy) => {
      accumulate(x, activationBackward(op, x.value, gy), true);
    });
  }

  /** a + b (same shape). */
  add(a: Variable, b: Variable): Variable {
    const y = copy(a.value);
    axpy(1, b.value, y);
    return this.record(y, [a, b], (gy) => {
      accumulate(a, gy, false);
      accumulate(b, gy, false);
    });
  }

  /** The same elements in another shape. */
  reshape(x: Variable, shape: Shape): Variable {
    return this.record(x.value.reshape(shape), [x], (gy) => {
      accumulate(x, gy.reshape(x.value.shape), false);
    });
  }

  /**
   * Mean next-token negative log-likelihood of logits [N, V] against targets (i32 [N]); a one-element
   * output whose value is computed in float64.
   */
  crossEntropyMean(logits: Variable, targets: Tensor): Variable {
    const nll = crossEntropy(logits.value, targets).data as Float32Array;
    let sum = 0;
    for (const x of nll) sum += x;
    const rows = nll.length;
    const loss = Tensor.fromTypedArray(Float32Array.of(sum / rows), [1]);
    return this.record(loss, [logits], (gy) => {
      const perRow = Tensor.full([rows], (gy.data as Float32Array)[0] / rows);
      accumulate(logits, crossEntropyBackward(logits.value, targets, perRow), true);
    });
  }

  /**
   * Routing of the router logits [T, E], as the forward pass routes (routeTokens). `probabilities` is the
   * softmax over all experts, for losses on the router itself (the load-balancing loss).
   */
  route(logits: Variable, moe: Pick<MoeConfig, 'topK' | 'normalizeTopK' | 'normalizeEpsilon'>): Routing {
    const [T, E] = logits.value.shape;
    const { probabilities: p, chosen, totals, weights: w, tokensOf } = routeTokens(logits.value.data as Float32Array, T, E, moe);
    const weights = this.record(Tensor.fromTypedArray(w, [T, E]), [logits], (gy) => {
      // w_e = p_e / S over chosen e (S = Σ_chosen p + ε when renormalized, else S = 1 and the sum is not
      // differentiated): ∂L/∂p_e = (g_e − [renormalized] Σ_j g_j p_j / S) / S for chosen e, 0 otherwise;
      // then through the softmax: ∂L/∂z = p ∘ (∂L/∂p − Σ_e p_e ∂L/∂p_e).
      const g = gy.data as Float32Array;
      const gz = new Float32Array(T * E);
      const gp = new Float64Array(E);
      for (let t = 0; t < T; ++t) {
        let weighted = 0;
        if (moe.normalizeTopK) for (let e = 0; e < E; ++e) if (chosen[t * E + e]) weighted += (g[t * E + e] * p[t * E + e]) / totals[t];
        let dotP = 0;
        for (let e = 0; e < E; ++e) {
          gp[e] = chosen[t * E + e] ? (g[t * E + e] - weighted) / totals[t] : 0;
          dotP += gp[e] * p[t * E + e];
        }
        for (let e = 0; e < E; ++e) gz[t * E + e] = p[t * E + e] * (gp[e] - dotP);
      }
      accumulate(logits, Tensor.fromTypedArray(gz, [T, E]), true);
    });
    return { weights, tokens: tokensOf.map((list) => Tensor.fromTypedArray(Int32Array.from(list))), probabilities: p, chosen };
  }

  /** σ(gate[t])·x[t] for each row: x [T, D], gate [T, 1]. */
  sigmoidScale(x: Variable, gate: Variable): Variable {
    const rows = x.value.shape[0];
    const indices = allRows(rows);
    const s = Tensor.fromTypedArray(sigmoid(gate.value.data as Float32Array));
    const out = Tensor.zeros(x.value.shape);
    scatterAdd(out, x.value, indices, s);
    return this.record(out, [x, gate], (gy) => {
      const g = scatterAddBackward(gy, x.value, indices, s);
      if (x.requiresGrad) accumulate(x, g.rows, true);
      // dσ/dz = σ(1 − σ).
      const sv = s.data as Float32Array;
      const gs = g.weights.data as Float32Array;
      if (gate.requiresGrad) accumulate(gate, Tensor.fromTypedArray(Float32Array.from(sv, (v, t) => gs[t] * v * (1 - v)), gate.value.shape), true);
    });
  }

  /**
   * Σ_e scatter of each expert's output rows [M_e, D] back to their tokens, weighted by the routing
   * weights' column e: out [T, D], out[tokens_e[i]] += weights[tokens_e[i], e] · outputs_e[i].
   */
  combineExperts(routing: Routing, outputs: (Variable | undefined)[], dim: number): Variable {
    const [T, E] = routing.weights.value.shape;
    const w = routing.weights.value.data as Float32Array;
    const columnWeights = routing.tokens.map((tokens, e) => Tensor.fromTypedArray(Float32Array.from(tokens.data as Int32Array, (t) => w[t * E + e])));
    const out = Tensor.zeros([T, dim]);
    outputs.forEach((rows, e) => {
      if (rows) scatterAdd(out, rows.value, routing.tokens[e], columnWeights[e]);
    });
    return this.record(out, [routing.weights, ...outputs], (gy) => {
      const gw = new Float32Array(T * E);
      outputs.forEach((rows, e) => {
        if (!rows) return;
        const g = scatterAddBackward(gy, rows.value, routing.tokens[e], columnWeights[e]);
        if (rows.requiresGrad) accumulate(rows, g.rows, true);
        const tokens = routing.tokens[e].data as Int32Array;
        const gWeights = g.weights.data as Float32Array;
        tokens.forEach((t, i) => (gw[t * E + e] = gWeights[i]));
      });
      if (routing.weights.requiresGrad) accumulate(routing.weights, Tensor.fromTypedArray(gw, [T, E]), true);
    });
  }
}

/** v.grad, created as zeros if absent (for kernels that accumulate into it). */
function gradientBuffer(v: Variable): Tensor {
  v.grad ??= Tensor.zeros(v.value.shape);
  return v.grad;
}

/** v.grad += g. `owned`: g is a fresh tensor nobody else holds, so it can become v.grad as it is. */
function accumulate(v: Variable, g: Tensor, owned: boolean): void {
  if (!v.requiresGrad) return;
  if (v.grad === undefined) v.grad = owned ? g : copy(g);
  else axpy(1, g, v.grad);
}
