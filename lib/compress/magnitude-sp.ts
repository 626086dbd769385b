// Structured magnitude pruning (a baseline): remove the units (MLP neurons, attention heads or kv groups;
// structures.ts) whose weights have the smallest squared norm, summed over every row and column the unit
// owns across the group's linears (gate/up rows + down column; q/k/v rows + o_proj columns).
// No calibration, no weight update. The model-wide target is split across layers as structures.ts says.
import { InvalidArgumentError } from '../errors.js';
import { rejectUnknownOptions, type CompressionMethod, type GroupRequest } from './method.js';
import { allocateStructured, applyRemoval, chooseUnits, groupUnits, parseStructuredOptions, shapesOf, unchanged, sliceSum, STRUCTURED_OPTION_NAMES, type GroupUnits, type StructuredOptions } from './structures.js';

function scoresOf(request: GroupRequest<StructuredOptions>, units: GroupUnits): number[] {
  const byRole = new Map(request.linears.map((m) => [m.role, m.weight]));
  return units.units.map((u) => u.slices.reduce((sum, s) => sum + sliceSum(byRole.get(s.role)!, s, (w) => w * w), 0));
}

export const magnitudeSp: CompressionMethod<StructuredOptions> = {
  name: 'magnitude-sp',
  summary: 'structured: remove the MLP neurons / heads with the smallest weight norms (no calibration)',
  needs: {},
  scope: 'group',
  prunes: true,
  requiresSparsity: true,
  quantizes: () => false,
  parseOptions(raw, where) {
    rejectUnknownOptions(raw, STRUCTURED_OPTION_NAMES, where, 'magnitude-sp');
    return parseStructuredOptions(raw, where);
  },
  async compressGroup(request) {
    const { pattern, options } = request;
    if (pattern?.kind !== 'unstructured') throw new InvalidArgumentError(`${request.group}: magnitude-sp needs a sparsity fraction (N:M is not structured pruning)`);
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
