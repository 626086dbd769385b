// HEAPr (Li et al., 2025, "Hessian-based Efficient Atomic Expert Pruning in Output Space"): prune the
// atoms of routed experts (neuron j of expert e: row j of gate/up, column j of down, d_j) by second-order
// information in the expert's output space, ranked across all MoE layers at once.
//
//   score   S_j = mean_t a_j(t)² · d_jᵀ G_e d_j,   G_e = mean_t g_t g_tᵀ
//           over the calibration tokens t routed to e; g_t = ∂L/∂(expert e's down-projection output at t)
//           (it carries the router weight). Since ∂L/∂a_j(t) = d_jᵀ g_t, the quadratic form is exactly
//           d_jᵀ G_e d_j = mean_t (∂L/∂a_j(t))²,
//           so one forward + backward pass with two per-neuron accumulators (Σ a², Σ (∂L/∂a)²) gives the
//           score with O(atoms) memory instead of a d×d G_e per expert (test/heapr.test.ts proves the
//           identity against the explicit G_e in float64).
//   rank    all atoms of all MoE layers together (global, the paper's default) or within each layer
//           (HEAPr-L, --per-layer); remove the lowest until the requested fraction of routed-expert
//           parameters is gone (expert-pruning.ts). No weight update.
// Choices the paper leaves open (options, README):
//   L       the sum over the calibration windows' next-token NLLs (the gradient of the mean loss times the
//           number of predictions), so scores do not depend on how windows are batched.
//   weighting 'mean' (default): the formula above, means over each expert's own tokens; 'frequency':
//           times the expert's share of routed tokens (the Taylor estimate of the summed loss change).
//   unreached experts score below every reached one and go first (expert-pruning.ts).
import { InvalidArgumentError } from '../errors.js';
import { checkOneOf } from '../validate.js';
import { rejectUnknownOptions } from './method.js';
import type { ExpertPruningMethod, ExpertStatistics } from './expert-pruning.js';

export interface HeaprOptions {
  weighting: 'mean' | 'frequency';
}

/** S_j = mean_t a_j² · mean_t (∂L/∂a_j)² over the expert's tokens (× its token count for 'frequency'). */
export function heaprScores(stats: ExpertStatistics, weighting: HeaprOptions['weighting'] = 'mean'): Float64Array {
  const { tokens, activationSquares: a2, gradientSquares: g2 } = stats;
  if (!g2) throw new InvalidArgumentError(`heapr: expert ${stats.expert} of layer ${stats.layer} has no gradient statistics`);
  const scale = weighting === 'frequency' ? 1 / tokens : 1 / (tokens * tokens);
  return Float64Array.from(a2, (a, j) => a * g2[j] * scale);
}

export const heapr: ExpertPruningMethod<HeaprOptions> = {
  name: 'heapr',
  summary: 'atoms of routed experts by mean a² × mean (∂L/∂a)² (the output-space Hessian), ranked across layers',
  needs: { gradients: true },
  granularity: 'atom',
  ranking: 'global',
  parseOptions(raw, where) {
    rejectUnknownOptions(raw, ['weighting'], where, 'heapr');
    return { weighting: raw.weighting === undefined ? 'mean' : checkOneOf(`${where}.weighting`, raw.weighting, ['mean', 'frequency'] as const) };
  },
  score: (stats, options) => heaprScores(stats, options.weighting),
};
