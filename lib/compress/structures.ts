// Structured pruning's shared parts, used by magnitude-sp, wanda-sp and structprune (which differ only in
// how they score units and whether they refit the survivors):
//   units       an MLP neuron j: row j of gate/up (fc1) and column j of down (fc2);
//               an attention kv group g (heads: 'groups'): its kv head's k and v rows, the q rows of its
//               heads/kvHeads query heads and their o_proj columns;
//               a query head h (heads: 'queries'): its q rows and o_proj columns, the same number taken
//               from every kv group so grouped-query attention keeps equal groups. With one query head per
//               kv head (multi-head attention) a query head is its kv group.
//   how many    a group with sparsity s (fraction of its parameters) loses round(s·P / unit parameters)
//               units, at most all but one (a clamp the result's details report)
//   removal     the unit's rows and columns are set to zero (biases are left alone: with the output-side
//               columns zero the unit contributes nothing, so the zero-padded model computes exactly what
//               the shrunk one does — export/shrink.ts removes the zeroed units and their biases)
//   allocation  the stage's sparsity S is the fraction of all decoder-linear parameters to remove; the
//               selected structures share it: f = S·P_all / P_selected is each kind's mean sparsity.
//               'uniform' gives every group f; 'softmax' gives group g the share
//               s_g ∝ softmax(−E_g/(mean E · τ)) with mean f, where E_g is the fraction of the group's
//               score mass the f-lowest units hold (how much pruning it at f would cost). Shares above a
//               group's maximum (one unit left) are clamped and their excess spread over the others.
import { InvalidArgumentError } from '../errors.js';
import type { Tensor } from '../tensor/tensor.js';
import { checkNumber, describe } from '../validate.js';
import { rejectUnknownOptions, type AllocationGroup, type AttentionGeometry, type CompressedLinear, type CompressionMethod, type GroupMember, type GroupRequest } from './method.js';

export const STRUCTURES = ['mlp', 'heads'] as const;
export type Structure = (typeof STRUCTURES)[number];
export const HEAD_UNITS = ['groups', 'queries'] as const;
export type HeadUnit = (typeof HEAD_UNITS)[number];
export const ALLOCATIONS = ['uniform', 'softmax'] as const;
export type Allocation = (typeof ALLOCATIONS)[number];

export interface StructuredOptions {
  /** Which structures to remove (default both). */
  structures: Structure[];
  /** Under grouped-query attention: remove whole kv groups (default) or query heads only. */
  heads: HeadUnit;
  /** How the model-wide target is split across layers (default uniform). */
  allocation: Allocation;
  /** Softmax temperature τ (default 1; large → uniform). */
  temperature: number;
}

export const STRUCTURED_OPTION_NAMES = ['structures', 'heads', 'allocation', 'temperature'];

/** The structure list from a recipe or the CLI: ["mlp", "heads"] or "mlp,heads". */
export function parseStructures(value: unknown, where: string): Structure[] {
  const list = typeof value === 'string' ? value.split(',').map((s) => s.trim()) : value;
  if (!Array.isArray(list) || list.length === 0 || !list.every((s) => typeof s === 'string')) {
    throw new InvalidArgumentError(`${where}: expected a list of structures (${STRUCTURES.join(', ')}), got ${describe(value)}`);
  }
  for (const s of list) {
    if (!(STRUCTURES as readonly string[]).includes(s)) throw new InvalidArgumentError(`${where}: unknown structure '${s}' (structures: ${STRUCTURES.join(', ')})`);
  }
  return [...new Set(list as Structure[])];
}

function oneOf<T extends string>(value: unknown, allowed: readonly T[], where: string): T {
  if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) throw new InvalidArgumentError(`${where}: expected one of ${allowed.join(', ')}, got ${describe(value)}`);
  return value as T;
}

export function parseStructuredOptions(raw: Record<string, unknown>, where: string): StructuredOptions {
  return {
    structures: raw.structures === undefined ? [...STRUCTURES] : parseStructures(raw.structures, `${where}.structures`),
    heads: raw.heads === undefined ? 'groups' : oneOf(raw.heads, HEAD_UNITS, `${where}.heads`),
    allocation: raw.allocation === undefined ? 'uniform' : oneOf(raw.allocation, ALLOCATIONS, `${where}.allocation`),
    temperature: raw.temperature === undefined ? 1 : checkNumber(`${where}.temperature`, raw.temperature, { min: Number.MIN_VALUE }),
  };
}

/** A contiguous run of rows or columns of one member weight. */
export interface Slice {
  role: string;
  axis: 'rows' | 'columns';
  start: number;
  length: number;
}

/** A removable unit: the slices that go together. */
export interface Unit {
  slices: Slice[];
  /** The kv group a query head belongs to (heads: 'queries'). */
  kvGroup?: number;
}

export interface GroupUnits {
  structure: Structure;
  units: Unit[];
  /** Weights per unit (every unit of a group has as many). */
  unitParameters: number;
  /** Weights of the whole group (every member). */
  parameters: number;
  /** The member whose columns the units own (down, fc2, o): where a refit can compensate. */
  outputRole: string;
  /** Columns of outputRole per unit. */
  unitColumns: number;
  /** heads: 'queries': units are balanced within this many kv groups. */
  balancedGroups?: number;
}

const MLP_OUTPUT = ['down', 'fc2'];

/** A group's removable units, or undefined when the options do not select the group's structure. */
export function groupUnits(group: string, shapes: Record<string, readonly number[]>, attention: AttentionGeometry | undefined, options: StructuredOptions): GroupUnits | undefined {
  const parameters = Object.values(shapes).reduce((sum, s) => sum + s[0] * s[1], 0);
  if (group === 'mlp') {
    if (!options.structures.includes('mlp')) return undefined;
    const outputRole = Object.keys(shapes).find((r) => MLP_OUTPUT.includes(r))!;
    const inputRoles = Object.keys(shapes).filter((r) => r !== outputRole);
    const neurons = shapes[outputRole][1];
    const units = Array.from({ length: neurons }, (_, j) => ({
      slices: [...inputRoles.map((role) => ({ role, axis: 'rows' as const, start: j, length: 1 })), { role: outputRole, axis: 'columns' as const, start: j, length: 1 }],
    }));
    const unitParameters = inputRoles.reduce((sum, r) => sum + shapes[r][1], 0) + shapes[outputRole][0];
    return { structure: 'mlp', units, unitParameters, parameters, outputRole, unitColumns: 1 };
  }
  if (group === 'attention') {
    if (!options.structures.includes('heads')) return undefined;
    if (!attention) throw new InvalidArgumentError('attention group without its head layout (a pipeline bug)');
    const { heads, kvHeads, headDim: hd } = attention;
    const perGroup = heads / kvHeads;
    const hidden = shapes.o[0];
    if (options.heads === 'queries' && perGroup > 1) {
      const units = Array.from({ length: heads }, (_, h) => ({
        kvGroup: Math.floor(h / perGroup),
        slices: [
          { role: 'q', axis: 'rows' as const, start: h * hd, length: hd },
          { role: 'o', axis: 'columns' as const, start: h * hd, length: hd },
        ],
      }));
      return { structure: 'heads', units, unitParameters: 2 * hd * hidden, parameters, outputRole: 'o', unitColumns: hd, balancedGroups: kvHeads };
    }
    const units = Array.from({ length: kvHeads }, (_, g) => ({
      slices: [
        { role: 'q', axis: 'rows' as const, start: g * perGroup * hd, length: perGroup * hd },
        { role: 'k', axis: 'rows' as const, start: g * hd, length: hd },
        { role: 'v', axis: 'rows' as const, start: g * hd, length: hd },
        { role: 'o', axis: 'columns' as const, start: g * perGroup * hd, length: perGroup * hd },
      ],
    }));
    return { structure: 'heads', units, unitParameters: (2 * perGroup + 2) * hd * hidden, parameters, outputRole: 'o', unitColumns: perGroup * hd };
  }
  return undefined; // experts and routers: not a structure these methods remove
}

/** The largest sparsity a group can take: all units but one (per kv group when balanced). */
export function maxSparsity(units: GroupUnits): number {
  const removable = units.balancedGroups ? units.units.length - units.balancedGroups : units.units.length - 1;
  return (removable * units.unitParameters) / units.parameters;
}

export interface RemovalChoice {
  /** 1 = kept, per unit. */
  kept: Uint8Array;
  removed: number;
  /** Set when the target would have removed every unit (of a kv group): what was kept instead. */
  clamp?: string;
}

/**
 * Which units to keep at `sparsity`, given each unit's score (higher = more important; ties keep the lower
 * index). `where` names the group in the clamp note.
 */
export function chooseUnits(units: GroupUnits, scores: ArrayLike<number>, sparsity: number, where: string): RemovalChoice {
  const n = units.units.length;
  const kept = new Uint8Array(n).fill(1);
  const pools = units.balancedGroups ? Array.from({ length: units.balancedGroups }, (_, g) => units.units.map((u, i) => (u.kvGroup === g ? i : -1)).filter((i) => i >= 0)) : [units.units.map((_, i) => i)];
  const wanted = Math.round((sparsity * units.parameters) / (units.unitParameters * pools.length));
  const allowed = pools[0].length - 1;
  const perPool = Math.min(Math.max(wanted, 0), allowed);
  let clamp: string | undefined;
  if (wanted > allowed) {
    const what = units.structure === 'mlp' ? 'neuron' : units.balancedGroups ? 'query head per kv group' : 'kv group of heads';
    clamp = `${where}: the target would remove all ${pools[0].length} units; kept 1 ${what}`;
  }
  for (const pool of pools) {
    const order = [...pool].sort((a, b) => scores[a] - scores[b] || b - a);
    for (let i = 0; i < perPool; ++i) kept[order[i]] = 0;
  }
  return { kept, removed: perPool * pools.length, clamp };
}

/** Zeroes the removed units' slices in the members' weights (in place) and returns each member's result. */
export function applyRemoval(units: GroupUnits, kept: Uint8Array, linears: GroupMember[]): Map<string, CompressedLinear> {
  const byRole = new Map(linears.map((m) => [m.role, m]));
  const removedRows = new Map<string, Set<number>>();
  const removedColumns = new Map<string, Set<number>>();
  units.units.forEach((unit, u) => {
    if (kept[u]) return;
    for (const s of unit.slices) {
      const set = (s.axis === 'rows' ? removedRows : removedColumns).get(s.role) ?? new Set<number>();
      for (let i = s.start; i < s.start + s.length; ++i) set.add(i);
      (s.axis === 'rows' ? removedRows : removedColumns).set(s.role, set);
    }
  });
  const results = new Map<string, CompressedLinear>();
  for (const [role, member] of byRole) {
    const [rows, columns] = member.weight.shape;
    const w = member.weight.data as Float32Array;
    const deadRows = removedRows.get(role);
    const deadColumns = removedColumns.get(role);
    if (deadRows) for (const r of deadRows) w.fill(0, r * columns, (r + 1) * columns);
    if (deadColumns) {
      for (let r = 0; r < rows; ++r) for (const c of deadColumns) w[r * columns + c] = 0;
    }
    const structure: CompressedLinear['structure'] = {};
    if (deadRows) structure.keptRows = Int32Array.from({ length: rows }, (_, i) => i).filter((i) => !deadRows.has(i));
    if (deadColumns) structure.keptColumns = Int32Array.from({ length: columns }, (_, i) => i).filter((i) => !deadColumns.has(i));
    results.set(role, { weight: member.weight, ...(deadRows || deadColumns ? { structure } : {}) });
  }
  return results;
}

/** The members as they are (a group whose structure the options do not select). */
export function unchanged(linears: GroupMember[]): Map<string, CompressedLinear> {
  return new Map(linears.map((m) => [m.role, { weight: m.weight }]));
}

/** Sum over a slice's entries of f(w) times a per-input factor (columns of the member's input). */
export function sliceSum(weight: Tensor, slice: Slice, f: (w: number) => number, inputFactor?: Float32Array | Float64Array): number {
  const [rows, columns] = weight.shape;
  const w = weight.data as Float32Array;
  let sum = 0;
  if (slice.axis === 'rows') {
    for (let r = slice.start; r < slice.start + slice.length; ++r) {
      for (let c = 0; c < columns; ++c) sum += f(w[r * columns + c]) * (inputFactor ? inputFactor[c] : 1);
    }
  } else {
    for (let c = slice.start; c < slice.start + slice.length; ++c) {
      let column = 0;
      for (let r = 0; r < rows; ++r) column += f(w[r * columns + c]);
      sum += column * (inputFactor ? inputFactor[c] : 1);
    }
  }
  return sum;
}

/** The group's shapes by role, from its members. */
export function shapesOf(linears: GroupMember[]): Record<string, readonly number[]> {
  return Object.fromEntries(linears.map((m) => [m.role, m.weight.shape]));
}

/**
 * The file comment's allocation: each group's sparsity for a model-wide target `sparsity` (fraction of all
 * the groups' parameters), and notes on clamps and unreachable targets.
 */
export function allocateStructured(groups: AllocationGroup[], sparsity: number, options: StructuredOptions): { sparsities: number[]; notes: string[] } {
  const notes: string[] = [];
  const units = groups.map((g) => groupUnits(g.group, g.shapes, g.attention, options));
  const total = groups.reduce((sum, g) => sum + Object.values(g.shapes).reduce((s, shape) => s + shape[0] * shape[1], 0), 0);
  const selected = units.reduce((sum, u) => sum + (u?.parameters ?? 0), 0);
  const sparsities = groups.map(() => 0);
  if (selected === 0) {
    notes.push(`no group holds a selected structure (${options.structures.join(', ')}); nothing was pruned`);
    return { sparsities, notes };
  }
  // Coarse structures first (a kv group is many neurons' worth): what their rounding to whole units
  // misses of their share, the finer ones after them make up.
  const order = [...options.structures].sort((a, b) => (a === 'heads' ? -1 : b === 'heads' ? 1 : 0));
  const kinds = order.map((structure) => ({ structure, members: units.map((u, i) => (u?.structure === structure ? i : -1)).filter((i) => i >= 0) })).filter((k) => k.members.length > 0);
  let remaining = sparsity * total;
  let remainingParameters = selected;
  for (const { structure, members } of kinds) {
    const parameters = members.map((i) => units[i]!.parameters);
    const kindParameters = parameters.reduce((a, b) => a + b, 0);
    const budget = (remaining * kindParameters) / remainingParameters;
    const mean = budget / kindParameters;
    let weights = members.map(() => 1);
    if (options.allocation === 'softmax') {
      const energies = members.map((i) => removedEnergy(groups[i].scores, units[i]!, mean));
      const average = energies.reduce((a, b) => a + b, 0) / energies.length;
      if (average > 0) {
        const logits = energies.map((e) => -e / (average * options.temperature));
        const top = Math.max(...logits);
        const exp = logits.map((l) => Math.exp(l - top));
        const sum = exp.reduce((a, b) => a + b, 0);
        weights = exp.map((e) => (e / sum) * members.length);
      }
    }
    const limits = members.map((i) => maxSparsity(units[i]!));
    const shares = wholeUnits(waterFill(weights, parameters, limits, budget), members.map((i) => units[i]!), budget);
    members.forEach((i, k) => (sparsities[i] = shares[k]));
    const reached = shares.reduce((sum, s, k) => sum + s * parameters[k], 0);
    if (reached < budget - 0.5 * Math.min(...members.map((i) => units[i]!.unitParameters)) && shares.some((s, k) => s >= limits[k] - 1e-12)) {
      notes.push(`${structure}: the target needs ${(100 * mean).toFixed(1)}% of these parameters on average, but each layer must keep one unit; reached ${((100 * reached) / kindParameters).toFixed(1)}%`);
    }
    remaining -= reached;
    remainingParameters -= kindParameters;
  }
  return { sparsities, notes };
}

/** The fraction of a group's score mass its lowest-scoring units hold at sparsity s (0 without scores). */
function removedEnergy(scores: number[] | undefined, units: GroupUnits, s: number): number {
  if (!scores || scores.length === 0) return 0;
  const total = scores.reduce((a, b) => a + b, 0);
  if (!(total > 0)) return 0;
  const choice = chooseUnits(units, scores, s, '');
  let removed = 0;
  choice.kept.forEach((k, i) => (removed += k ? 0 : scores[i]));
  return removed / total;
}

/**
 * Shares rounded to whole removal steps (a unit, or one query head from every kv group) so that the
 * removed parameters come as close to `budget` as whole steps allow: floors first, then one more step for
 * the groups with the largest remainders while that brings the total closer (largest-remainder rounding).
 */
function wholeUnits(shares: number[], units: GroupUnits[], budget: number): number[] {
  const step = units.map((u) => u.unitParameters * (u.balancedGroups ?? 1));
  const maxSteps = units.map((u) => (u.balancedGroups ? u.units.length / u.balancedGroups - 1 : u.units.length - 1));
  const wanted = shares.map((s, i) => (s * units[i].parameters) / step[i]);
  const counts = wanted.map((w, i) => Math.min(Math.floor(w + 1e-9), maxSteps[i]));
  let left = budget - counts.reduce((sum, c, i) => sum + c * step[i], 0);
  const byRemainder = wanted.map((w, i) => i).sort((a, b) => wanted[b] - Math.floor(wanted[b] + 1e-9) - (wanted[a] - Math.floor(wanted[a] + 1e-9)) || a - b);
  for (const i of byRemainder) {
    if (counts[i] < maxSteps[i] && left >= step[i] / 2) {
      counts[i] += 1;
      left -= step[i];
    }
  }
  return counts.map((c, i) => (c * step[i]) / units[i].parameters);
}

/** s_i = c·w_i with Σ s_i·p_i = budget, every s_i ≤ limit_i (clamped ones fixed, the rest rescaled). */
export function waterFill(weights: number[], parameters: number[], limits: number[], budget: number): number[] {
  const shares = weights.map(() => 0);
  const free = new Set(weights.map((_, i) => i));
  let remaining = budget;
  while (free.size > 0) {
    let mass = 0;
    for (const i of free) mass += weights[i] * parameters[i];
    const c = mass > 0 ? remaining / mass : 0;
    const over = [...free].filter((i) => c * weights[i] > limits[i]);
    if (over.length === 0) {
      for (const i of free) shares[i] = c * weights[i];
      break;
    }
    for (const i of over) {
      shares[i] = limits[i];
      remaining -= limits[i] * parameters[i];
      free.delete(i);
    }
  }
  return shares;
}

/** The per-input factor of a member from its statistics: √(Σ x²) (Wanda's ‖X_j‖), f64. */
export function inputNorms(member: GroupMember): Float64Array | undefined {
  const squares = member.stats?.inputSquares?.data as Float32Array | undefined;
  return squares ? Float64Array.from(squares, (s) => Math.sqrt(Math.max(0, s))) : undefined;
}


/**
 * A structured method that removes the lowest-scoring units and updates no weight (magnitude-sp, wanda-sp):
 * the method is its score; choosing, clamping, removing and the model-wide allocation are shared.
 */
export function scoreRankedMethod(
  method: Pick<CompressionMethod<StructuredOptions>, 'name' | 'summary' | 'needs' | 'fallback'>,
  scoresOf: (request: GroupRequest<StructuredOptions>, units: GroupUnits) => number[],
): CompressionMethod<StructuredOptions> {
  return {
    ...method,
    scope: 'group',
    prunes: true,
    requiresSparsity: true,
    quantizes: () => false,
    parseOptions(raw, where) {
      rejectUnknownOptions(raw, STRUCTURED_OPTION_NAMES, where, method.name);
      return parseStructuredOptions(raw, where);
    },
    async compressGroup(request) {
      const { pattern, options } = request;
      if (pattern?.kind !== 'unstructured') throw new InvalidArgumentError(`${request.group}: ${method.name} needs a sparsity fraction (N:M is not structured pruning)`);
      const units = groupUnits(request.group, shapesOf(request.linears), request.attention, options);
      if (!units) return unchanged(request.linears);
      const choice = chooseUnits(units, scoresOf(request, units), pattern.sparsity, `layer ${request.block} ${request.group}`);
      const results = applyRemoval(units, choice.kept, request.linears);
      const details = { unitsKept: units.units.length - choice.removed, units: units.units.length, ...(choice.clamp ? { clamped: choice.clamp } : {}) };
      for (const r of results.values()) r.details = details;
      return results;
    },
    allocation: scoreAllocation(scoresOf),
  };
}

/** The model-wide allocation of a structured method whose per-unit scores are `scoresOf` (softmax reads them). */
export function scoreAllocation<Options extends StructuredOptions>(
  scoresOf: (request: GroupRequest<Options>, units: GroupUnits) => number[],
): NonNullable<CompressionMethod<Options>['allocation']> {
  return {
    needsScores: (options) => options.allocation === 'softmax',
    async score(request) {
      const units = groupUnits(request.group, shapesOf(request.linears), request.attention, request.options);
      return units ? scoresOf(request, units) : [];
    },
    allocate: allocateStructured,
  };
}
