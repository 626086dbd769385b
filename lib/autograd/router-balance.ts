// The router load-balancing (auxiliary) loss of mixture-of-experts training: Switch Transformer's
// f·P form as Hugging Face's load_balancing_loss_func computes it for Mixtral, Qwen2-MoE and Qwen3-MoE.
// The router decisions of all L MoE layers are taken together as N = L·T rows (T tokens each):
//   aux = E · Σ_e f_e · P_e,   f_e = (rows whose top-k holds e) / N,   P_e = (Σ_rows p_e) / N,
// p the softmax over all E experts. The total objective is loss + router_aux_loss_coef · aux. f is a
// count (no gradient, as the one-hot mask in PyTorch); so ∂aux/∂p_{row,e} = E·f_e/N, and through the
// softmax ∂/∂z_{row} = p ∘ (c − ⟨p, c⟩) with c_e = coef·E·f_e/N.
// Perfect balance gives aux = k (each f_e = k/E, each P_e = 1/E); HF does not divide by k.
// DeepSeek's own remote code instead sums a per-layer variant inside each gate; sparq uses this one for
// every family (documented in README).
import { Tensor } from '../tensor/tensor.js';

/** One MoE layer's routing of T tokens over E experts (row-major [T, E]). */
export interface RouterDecision {
  probabilities: Float32Array;
  chosen: Uint8Array;
}

/** Accumulates f and P over the layers' decisions; then gives aux and each layer's logit gradient. */
export class RouterBalance {
  private readonly counts: Float64Array;
  private readonly probabilitySums: Float64Array;
  private rows = 0;

  constructor(readonly experts: number) {
    this.counts = new Float64Array(experts);
    this.probabilitySums = new Float64Array(experts);
  }

  /** Whether any MoE layer has been added. */
  get empty(): boolean {
    return this.rows === 0;
  }

  add(decision: RouterDecision): void {
    const E = this.experts;
    const T = decision.probabilities.length / E;
    for (let t = 0; t < T; ++t) {
      for (let e = 0; e < E; ++e) {
        this.probabilitySums[e] += decision.probabilities[t * E + e];
        if (decision.chosen[t * E + e]) this.counts[e] += 1;
      }
    }
    this.rows += T;
  }

  /** aux = E · Σ_e f_e · P_e (0 before any layer was added). */
  value(): number {
    if (this.rows === 0) return 0;
    let sum = 0;
    for (let e = 0; e < this.experts; ++e) sum += (this.counts[e] / this.rows) * (this.probabilitySums[e] / this.rows);
    return this.experts * sum;
  }

  /** d(coefficient · aux) / d(router logits) [T, E] of one layer whose decision was added. */
  logitsGradient(decision: RouterDecision, coefficient: number): Tensor {
    const E = this.experts;
    const T = decision.probabilities.length / E;
    const c = Float64Array.from(this.counts, (count) => (coefficient * E * (count / this.rows)) / this.rows);
    const p = decision.probabilities;
    const out = new Float32Array(T * E);
    for (let t = 0; t < T; ++t) {
      let inner = 0;
      for (let e = 0; e < E; ++e) inner += p[t * E + e] * c[e];
      for (let e = 0; e < E; ++e) out[t * E + e] = p[t * E + e] * (c[e] - inner);
    }
    return Tensor.fromTypedArray(out, [T, E]);
  }
}
