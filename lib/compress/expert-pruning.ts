// Methods that prune the routed experts of a mixture-of-experts model as one model-level decision
// (HEAPr, expert dropping, activation-ranked atoms). Unlike the layer-wise methods (method.ts), their
// decision needs statistics of every MoE layer before any weight is written: a method declares which
// model-level statistics it needs (forward activations always; the loss's gradient with respect to each
// atom's activation when `needs.gradients`), scores each unit (an atom, or a whole expert), and the shared
// allocation below removes the lowest-scored units until the budget is met, either across all MoE layers
// at once ('global') or within each layer ('per-layer').
//
// An atom (atomic expert) is neuron j of expert e: row j of its gate and up projections and column j of
// its down projection, 3·hidden parameters. Its activation is a_j(t) = silu(gate_j·x_t)·(up_j·x_t), the
// input of the down projection. Shared experts and dense MLP layers are never units.
import { InvalidArgumentError } from '../errors.js';

/** Model-level statistics of one routed expert over the calibration tokens routed to it. */
export interface ExpertStatistics {
  layer: number;
  expert: number;
  /** The expert's width (atoms). */
  width: number;
  /** Calibration tokens routed to the expert (0: unreached). */
  tokens: number;
  /** Σ_t a_j(t)², f64 [width]. */
  activationSquares: Float64Array;
  /** Σ_t (∂L/∂a_j(t))², f64 [width], L the summed next-token NLL of the calibration windows (needs.gradients). */
  gradientSquares?: Float64Array;
}

export interface ExpertPruningNeeds {
  /** One backward pass over the calibration windows for ∂L/∂a_j(t) (otherwise a forward pass only). */
  gradients: boolean;
}

export type ExpertRanking = 'global' | 'per-layer';

export interface ExpertPruningMethod<Options = Record<string, unknown>> {
  readonly name: string;
  readonly summary: string;
  readonly needs: ExpertPruningNeeds;
  /** 'atom': a score per neuron; 'expert': one score per expert (the whole expert is removed). */
  readonly granularity: 'atom' | 'expert';
  /** The ranking the method uses unless told otherwise (--per-layer). */
  readonly ranking: ExpertRanking;
  parseOptions(raw: Record<string, unknown>, where: string): Options;
  /** Scores of one reached expert's units (higher = more important): [width] for atoms, [1] for an expert. */
  score(stats: ExpertStatistics, options: Options): Float64Array;
}

/** What happens to one expert. */
export interface ExpertDecision {
  layer: number;
  expert: number;
  width: number;
  tokens: number;
  /** Kept atoms, ascending (empty when removed). */
  kept: Int32Array;
  /** The whole expert is gone: its router logit is masked so it is never selected. */
  removed: boolean;
  /** The ratio would have emptied the expert; one neuron (its best) was kept instead. */
  keptLastNeuron: boolean;
}

export interface ExpertPlan {
  ranking: ExpertRanking;
  /** Routed-expert parameters (3·hidden per atom) before, and those removed. */
  routedParameters: number;
  removedParameters: number;
  /** Per MoE layer (ascending), per expert. */
  layers: { layer: number; experts: ExpertDecision[] }[];
}

export interface AllocationOptions {
  /** Fraction of routed-expert parameters to remove, in [0, 1). */
  sparsity: number;
  ranking: ExpertRanking;
  /** Parameters per atom (3·hidden). */
  atomParameters: number;
  /** Experts a token picks: a layer keeps at least this many experts. */
  topK: number;
  /** Whether an expert may lose every atom (then it is removed); otherwise it keeps its best one. */
  allowExpertRemoval: boolean;
}

interface Unit {
  layer: number;
  expert: number;
  /** Atom index, or -1 for the whole expert. */
  atom: number;
  score: number;
}

/** Score of every atom of an expert no calibration token reached: below any real score, so they go first. */
export const UNREACHED_SCORE = -1;

/**
 * The units of `method` scored on `statistics` (unreached experts at UNREACHED_SCORE), allocated as the
 * options say. Ties break by layer, expert, atom (deterministic).
 */
export function planExpertPruning<O>(method: ExpertPruningMethod<O>, options: O, statistics: readonly ExpertStatistics[], allocation: AllocationOptions): ExpertPlan {
  const { sparsity, atomParameters, topK } = allocation;
  if (!(sparsity >= 0 && sparsity < 1)) throw new InvalidArgumentError(`sparsity: expected a fraction in [0, 1) of the routed-expert parameters, received ${sparsity}`);
  const units: Unit[] = [];
  for (const s of statistics) {
    const scores = s.tokens === 0 ? new Float64Array(method.granularity === 'atom' ? s.width : 1).fill(UNREACHED_SCORE) : method.score(s, options);
    const expected = method.granularity === 'atom' ? s.width : 1;
    if (scores.length !== expected) throw new InvalidArgumentError(`${method.name}: scored ${scores.length} units of expert ${s.expert} in layer ${s.layer}, expected ${expected}`);
    scores.forEach((score, j) => {
      if (Number.isNaN(score)) throw new InvalidArgumentError(`${method.name}: the score of expert ${s.expert} in layer ${s.layer} is NaN (the calibration activations or gradients overflowed)`);
      units.push({ layer: s.layer, expert: s.expert, atom: method.granularity === 'atom' ? j : -1, score });
    });
  }
  units.sort((a, b) => a.score - b.score || a.layer - b.layer || a.expert - b.expert || a.atom - b.atom);

  const key = (layer: number, expert: number) => `${layer}.${expert}`;
  const state = new Map(statistics.map((s) => [key(s.layer, s.expert), { stats: s, removedAtoms: new Uint8Array(s.width), keptCount: s.width, removed: false, keptLast: false }]));
  const liveExperts = new Map<number, number>();
  for (const s of statistics) liveExperts.set(s.layer, (liveExperts.get(s.layer) ?? 0) + 1);
  const routed = statistics.reduce((sum, s) => sum + s.width * atomParameters, 0);
  let removedTotal = 0;

  // Removes units in ascending score order until `target` parameters are gone; a unit is skipped when
  // taking it would end further from the target than leaving it (whole experts are large units).
  const remove = (candidates: Unit[], target: number) => {
    let removed = 0;
    for (const unit of candidates) {
      if (removed >= target) break;
      const st = state.get(key(unit.layer, unit.expert))!;
      if (st.removed) continue;
      const live = liveExperts.get(unit.layer)!;
      const wholeExpert = unit.atom < 0 || st.keptCount === 1;
      const size = unit.atom < 0 ? st.keptCount * atomParameters : atomParameters;
      if (removed + size - target > target - removed) continue;
      if (wholeExpert) {
        // Emptying an expert: only as a whole-expert unit or when allowed, and never below top-k experts.
        if (unit.atom >= 0 && !allocation.allowExpertRemoval) {
          st.keptLast = true;
          continue;
        }
        if (live <= topK) continue;
        st.removed = true;
        st.removedAtoms.fill(1);
        st.keptCount = 0;
        liveExperts.set(unit.layer, live - 1);
      } else {
        st.removedAtoms[unit.atom] = 1;
        st.keptCount -= 1;
      }
      removed += size;
    }
    return removed;
  };

  if (allocation.ranking === 'global') {
    removedTotal = remove(units, Math.round(sparsity * routed));
  } else {
    for (const layer of [...liveExperts.keys()].sort((a, b) => a - b)) {
      const inLayer = statistics.filter((s) => s.layer === layer).reduce((sum, s) => sum + s.width * atomParameters, 0);
      removedTotal += remove(
        units.filter((u) => u.layer === layer),
        Math.round(sparsity * inLayer),
      );
    }
  }

  const layers = [...liveExperts.keys()].sort((a, b) => a - b).map((layer) => ({
    layer,
    experts: statistics
      .filter((s) => s.layer === layer)
      .sort((a, b) => a.expert - b.expert)
      .map((s): ExpertDecision => {
        const st = state.get(key(s.layer, s.expert))!;
        const kept = st.removed ? new Int32Array(0) : Int32Array.from({ length: s.width }, (_, j) => j).filter((j) => !st.removedAtoms[j]);
        return { layer, expert: s.expert, width: s.width, tokens: s.tokens, kept, removed: st.removed, keptLastNeuron: st.keptLast && !st.removed && kept.length === 1 };
      }),
  }));
  return { ranking: allocation.ranking, routedParameters: routed, removedParameters: removedTotal, layers };
}
