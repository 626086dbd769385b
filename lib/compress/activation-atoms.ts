// Atoms ranked by activation magnitude only (a baseline for HEAPr): atom j of routed expert e scores
// mean_t a_j(t)² over the calibration tokens routed to e — HEAPr's score without its output-space
// (gradient) factor — ranked within each layer (the default) or across layers. No weight update.
import { rejectUnknownOptions } from './method.js';
import type { ExpertPruningMethod } from './expert-pruning.js';

export const activationAtoms: ExpertPruningMethod<Record<string, never>> = {
  name: 'activation-atoms',
  summary: 'atoms of routed experts by mean activation² (no gradient), ranked within each layer',
  needs: { gradients: false },
  granularity: 'atom',
  ranking: 'per-layer',
  parseOptions(raw, where) {
    rejectUnknownOptions(raw, [], where, 'activation-atoms');
    return {};
  },
  score: (stats) => Float64Array.from(stats.activationSquares, (s) => s / stats.tokens),
};
