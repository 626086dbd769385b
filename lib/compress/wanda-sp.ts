// Wanda-sp (the structured Wanda of An et al., 2024, "Fluctuation-based adaptive structured pruning"): a
// unit's score is Wanda's |W_ij|·‖X_j‖₂ summed over every weight the unit owns — its rows of gate/up (or
// q/k/v), each weight times the norm of its input feature, and its columns of down (or o_proj), each
// weight times the norm of the neuron's (head's) own activation. Remove the lowest-scoring units
// (structures.ts); no weight update. Needs only Σ_t x_tj² per linear input.
import { InvalidArgumentError } from '../errors.js';
import { rejectUnknownOptions, type CompressionMethod, type GroupRequest } from './method.js';
import { allocateStructured, applyRemoval, chooseUnits, groupUnits, inputNorms, parseStructuredOptions, shapesOf, unchanged, sliceSum, STRUCTURED_OPTION_NAMES, type GroupUnits, type StructuredOptions } from './structures.js';

function scoresOf(request: GroupRequest<StructuredOptions>, units: GroupUnits): number[] {
  const members = new Map(request.linears.map((m) => [m.role, m]));
  const norms = new Map(request.linears.map((m) => [m.role, inputNorms(m)]));
  for (const [role, n] of norms) if (!n) throw new InvalidArgumentError(`${members.get(role)!.name}: wanda-sp needs calibration data (the input norms)`);
  return units.units.map((u) => u.slices.reduce((sum, s) => sum + sliceSum(members.get(s.role)!.weight, s, Math.abs, norms.get(s.role)), 0));
}

export const wandaSp: CompressionMethod<StructuredOptions> = {
  name: 'wanda-sp',
  summary: 'structured: remove the MLP neurons / heads with the lowest Σ|W|·‖X‖ (no weight update)',
  needs: { inputSquares: true },
  scope: 'group',
  prunes: true,
  requiresSparsity: true,
  quantizes: () => false,
  fallback: 'magnitude-sp',
  parseOptions(raw, where) {
    rejectUnknownOptions(raw, STRUCTURED_OPTION_NAMES, where, 'wanda-sp');
    return parseStructuredOptions(raw, where);
  },
  async compressGroup(request) {
    const { pattern, options } = request;
    if (pattern?.kind !== 'unstructured') throw new InvalidArgumentError(`${request.group}: wanda-sp needs a sparsity fraction (N:M is not structured pruning)`);
    const units = groupUnits(request.group, shapesOf(request.linears), request.attention, options);
    if (!units) return unchanged(request.linears);
    const choice = chooseUnits(units, scoresOf(request, units), pattern.sparsity, `layer ${request.block} ${request.group}`);
    const results = applyRemoval(units, choice.kept, request.linears);
    const details = { unitsKept: units.units.length - choice.removed, units: units.units.length, ...(choice.clamp ? { clamped: choice.clamp } : {}) };
    for (const r of results.values()) r.details = details;
    return results;
  },
  allocation: {
    needsScores: (options) => options.allocation === 'softmax',
    async score(request) {
      const units = groupUnits(request.group, shapesOf(request.linears), request.attention, request.options);
      return units ? scoresOf(request, units) : [];
    },
    allocate: allocateStructured,
  },
};
