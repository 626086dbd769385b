// Wanda-sp (the structured Wanda of An et al., 2024, "Fluctuation-based adaptive structured pruning"): a
// unit's score is Wanda's |W_ij|·‖X_j‖₂ summed over every weight the unit owns — its rows of gate/up (or
// q/k/v), each weight times the norm of its input feature, and its columns of down (or o_proj), each
// weight times the norm of the neuron's (head's) own activation. Remove the lowest-scoring units
// (structures.ts); no weight update. Needs only Σ_t x_tj² per linear input.
import { InvalidArgumentError } from '../errors.js';
import type { GroupRequest } from './method.js';
import { inputNorms, sliceSum, type GroupUnits, type StructuredOptions, scoreRankedMethod } from './structures.js';

function scoresOf(request: GroupRequest<StructuredOptions>, units: GroupUnits): number[] {
  const members = new Map(request.linears.map((m) => [m.role, m]));
  const norms = new Map(request.linears.map((m) => [m.role, inputNorms(m)]));
  for (const [role, n] of norms) if (!n) throw new InvalidArgumentError(`${members.get(role)!.name}: wanda-sp needs calibration data (the input norms)`);
  return units.units.map((u) => u.slices.reduce((sum, s) => sum + sliceSum(members.get(s.role)!.weight, s, Math.abs, norms.get(s.role)), 0));
}

export const wandaSp = scoreRankedMethod({ name: 'wanda-sp', summary: 'structured: remove the MLP neurons / heads with the lowest Σ|W|·‖X‖ (no weight update)', needs: { inputSquares: true }, fallback: 'magnitude-sp' }, scoresOf);
