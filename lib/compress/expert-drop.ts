// Expert dropping by router frequency (the frequency criterion of NAEE, Lu et al., 2024, "Not All Experts
// are Equal"): each routed expert's score is the number of calibration tokens the router sent to it;
// whole experts are removed, least used first, within each layer (the default) or across layers, until
// the requested fraction of routed-expert parameters is gone. A removed expert's router logit is masked,
// so the router renormalizes over the experts left (as NAEE's dropping does). A layer keeps at least
// top-k experts. NAEE's other criterion (enumerating expert subsets by reconstruction loss) is not here.
import { rejectUnknownOptions } from './method.js';
import type { ExpertPruningMethod } from './expert-pruning.js';

export const expertDrop: ExpertPruningMethod<Record<string, never>> = {
  name: 'expert-drop',
  summary: 'remove whole routed experts, the least often selected first (NAEE-style frequency)',
  needs: { gradients: false },
  granularity: 'expert',
  ranking: 'per-layer',
  parseOptions(raw, where) {
    rejectUnknownOptions(raw, [], where, 'expert-drop');
    return {};
  },
  score: (stats) => Float64Array.of(stats.tokens),
};
