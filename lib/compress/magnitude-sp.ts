// Structured magnitude pruning (a baseline): remove the units (MLP neurons, attention heads or kv groups;
// structures.ts) whose weights have the smallest squared norm, summed over every row and column the unit
// owns across the group's linears (gate/up rows + down column; q/k/v rows + o_proj columns).
// No calibration, no weight update. The model-wide target is split across layers as structures.ts says.
import type { GroupRequest } from './method.js';
import { sliceSum, type GroupUnits, type StructuredOptions, scoreRankedMethod } from './structures.js';

function scoresOf(request: GroupRequest<StructuredOptions>, units: GroupUnits): number[] {
  const byRole = new Map(request.linears.map((m) => [m.role, m.weight]));
  return units.units.map((u) => u.slices.reduce((sum, s) => sum + sliceSum(byRole.get(s.role)!, s, (w) => w * w), 0));
}

export const magnitudeSp = scoreRankedMethod({ name: 'magnitude-sp', summary: 'structured: remove the MLP neurons / heads with the smallest weight norms (no calibration)', needs: {} }, scoresOf);
