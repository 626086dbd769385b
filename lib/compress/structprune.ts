// StructPrune (Song, Bai & Zhao, 2025): structured pruning posed for the whole model, solved module by
// module with ADMM so memory stays one block. No code is published; this is our reading of the paper, and
// every choice it leaves open is an option or written here (README "Structured pruning" repeats them).
//
// Per module (an MLP, or an attention layer) with output-side matrix W₀ [out, in] (down/fc2, o_proj) and
// its calibration inputs X (H = (2/T)·XXᵀ):
//   min_W ‖(W − W₀)X‖²  s.t. W is zero on all but k units' columns (an MLP neuron: one column; a head or kv
//   group: its head_dim-wide columns; structures.ts), k from the module's allocated sparsity.
// Scaled as ALPS does (d = √diag(H + λI), Ĥ = D⁻¹(H + λI)D⁻¹, W̃ = W·D, G = W̃·Ĥ, Ĥ = QΛQᵀ once), ADMM with
// the scaled dual U:
//   B ← (G + ρ(Z − U))·Q(Λ + ρI)⁻¹Qᵀ        (the closed-form least-squares step)
//   Z ← P_k(B + U)                           (the closed-form structured mask: keep the k units with the
//                                             largest column energy Σ_{i, j∈unit} (B + U)_ij²)
//   U ← U + B − Z;   ρ ← ρ·growth            (ρ₀ = `rho`, ×`growth` per iteration)
// stopping when the support has not changed for `patience` iterations (after `minIterations`), or at
// `iterations`. Then the survivors are refit by least squares on the calibration inputs,
// W_S = W₀·H_{:,S}·(H_SS + λI)⁻¹ — the exact minimizer of the objective on the support S — and the removed
// units' input-side rows (gate/up, fc1, q/k/v) are zeroed, since nothing downstream reads them any more.
// The unit energy in the scaled basis, e_u = Σ_{i, j∈u} W_ij²·H_jj, is Wanda's score squared on the
// output-side matrix; it is also the per-unit score the layer-wise allocation reads (structures.ts: with
// allocation 'softmax', s_l ∝ softmax(−E_l/(mean E·τ)), E_l the energy fraction the uniform rate removes).
// Choices the paper leaves open: (1) the row side (gate/up, q/k/v) has no reconstruction freedom once a
// unit is removed, so the ADMM runs on the output-side matrix only — SparseLLM's auxiliary variables that
// couple an MLP's two matrices through its activations are not used; (2) the ρ schedule; (3) the energy
// E_l (above) and its normalization by its mean, so τ is scale-free; (4) damping λ = damp·mean(diag H).
import { AbortError, InvalidArgumentError } from '../errors.js';
import { choleskyInverseAsync, eighAsync, gemmAsync, scaleColumnsAsync, transposeAsync } from '../tensor/ops.js';
import { Tensor } from '../tensor/tensor.js';
import { checkInteger, checkNumber } from '../validate.js';
import { addDamping, fixDeadInputs } from './hessian.js';
import { rejectUnknownOptions, type CompressionMethod, type GroupMember, type GroupRequest } from './method.js';
import {
  applyRemoval,
  chooseUnits,
  groupUnits,
  parseStructuredOptions,
  scoreAllocation,
  shapesOf,
  STRUCTURED_OPTION_NAMES,
  unchanged,
  type GroupUnits,
  type StructuredOptions,
} from './structures.js';

export interface StructPruneOptions extends StructuredOptions {
  /** Ridge λ = damp·mean(diag H) (default 0.01). */
  damp: number;
  /** ρ₀, relative to Ĥ's unit diagonal (default 0.1). */
  rho: number;
  /** ρ multiplier per iteration (default 1.3). */
  growth: number;
  /** Most ADMM iterations (default 60). */
  iterations: number;
  /** Iterations before the stopping rule applies (default 10). */
  minIterations: number;
  /** Stop once the support has been unchanged this many iterations (default 5). */
  patience: number;
  /** Refit the surviving columns by least squares (default true; false keeps the ADMM's B on the support). */
  refit: boolean;
}

const OPTIONS = [...STRUCTURED_OPTION_NAMES, 'damp', 'rho', 'growth', 'iterations', 'minIterations', 'patience', 'refit'];

/** Per-unit energy Σ_{i, j∈u} A_ij² over the unit's columns of A [out, in]. */
function unitEnergies(a: Tensor, units: GroupUnits): Float64Array {
  const [rows, columns] = a.shape;
  const data = a.data as Float32Array;
  const column = new Float64Array(columns);
  for (let r = 0; r < rows; ++r) for (let c = 0; c < columns; ++c) column[c] += data[r * columns + c] ** 2;
  return Float64Array.from(units.units, (u) => {
    const s = u.slices.find((x) => x.role === units.outputRole)!;
    let e = 0;
    for (let c = s.start; c < s.start + s.length; ++c) e += column[c];
    return e;
  });
}

/** The removed units' columns of A set to zero (in place). */
function zeroColumns(a: Tensor, units: GroupUnits, kept: Uint8Array): void {
  const [rows, columns] = a.shape;
  const data = a.data as Float32Array;
  units.units.forEach((u, i) => {
    if (kept[i]) return;
    const s = u.slices.find((x) => x.role === units.outputRole)!;
    for (let r = 0; r < rows; ++r) data.fill(0, r * columns + s.start, r * columns + s.start + s.length);
  });
}

function outputMember(request: GroupRequest<StructPruneOptions>, units: GroupUnits): GroupMember {
  return request.linears.find((m) => m.role === units.outputRole)!;
}

/** Wanda energy of each unit on the output-side matrix: Σ W_ij²·H_jj. */
function energyScores(member: GroupMember, units: GroupUnits): number[] {
  const squares = (member.stats?.hessian ? diagonal(member.stats.hessian) : (member.stats?.inputSquares?.data as Float32Array | undefined));
  if (!squares) throw new InvalidArgumentError(`${member.name}: structprune needs calibration data (the input Hessian)`);
  const scaled = member.weight.clone();
  const d = Float32Array.from(squares, (s) => Math.sqrt(Math.max(0, s)));
  const w = scaled.data as Float32Array;
  const [rows, columns] = scaled.shape;
  for (let r = 0; r < rows; ++r) for (let c = 0; c < columns; ++c) w[r * columns + c] *= d[c];
  return [...unitEnergies(scaled, units)];
}

function diagonal(h: Tensor): Float32Array {
  const n = h.shape[0];
  const data = h.data as Float32Array;
  return Float32Array.from({ length: n }, (_, j) => data[j * n + j]);
}

/** The ADMM of the file comment on the output-side matrix; returns the kept units and the new weight. */
async function admm(member: GroupMember, units: GroupUnits, sparsity: number, options: StructPruneOptions, where: string, signal?: AbortSignal) {
  const hessian = member.stats?.hessian;
  if (!hessian) throw new InvalidArgumentError(`${member.name}: structprune needs calibration data (the input Hessian)`);
  const original = member.weight.clone();
  const inputs = hessian.shape[0];
  const fixed = await fixDeadInputs(hessian, original, signal);
  const h = fixed.hessian === hessian ? await hessian.cloneAsync({ signal }) : fixed.hessian;
  addDamping(h, options.damp, fixed.deadInputs);
  const hData = h.data as Float32Array;
  const d = Float32Array.from({ length: inputs }, (_, j) => Math.sqrt(Math.max(hData[j * inputs + j], 0)) + 1e-8);
  const hHat = Tensor.fromTypedArray(Float32Array.from(hData, (v, k) => v / (d[Math.floor(k / inputs)] * d[k % inputs])), [inputs, inputs]);
  const { values, vectors } = await eighAsync(await hHat.toAsync('f64', { signal }), { signal });
  const lambda = values.data as Float64Array;
  const rowsOfQ = await vectors.toAsync('f32', { signal }); // Qᵀ
  const columnsOfQ = await transposeAsync(rowsOfQ, { signal }); // Q
  const scaled = await scaleColumnsAsync(original, Tensor.fromTypedArray(d), { signal }); // W̃
  const g = await gemmAsync(scaled, hHat, { signal });
  let choice = chooseUnits(units, unitEnergies(scaled, units), sparsity, where);
  const z = scaled.clone();
  zeroColumns(z, units, choice.kept);
  const u = Tensor.zeros(scaled.shape);
  let rho = options.rho;
  let unchangedFor = 0;
  let iterations = 0;
  const zData = z.data as Float32Array;
  const uData = u.data as Float32Array;
  const gData = g.data as Float32Array;
  let b = scaled;
  for (; iterations < options.iterations; ++iterations) {
    if (signal?.aborted) throw new AbortError();
    const m = Tensor.fromTypedArray(Float32Array.from(gData, (gv, k) => gv + rho * (zData[k] - uData[k])), scaled.shape);
    const inverse = Tensor.fromTypedArray(Float32Array.from(lambda, (l) => 1 / (Math.max(l, 0) + rho)));
    b = await gemmAsync(await scaleColumnsAsync(await gemmAsync(m, columnsOfQ, { signal }), inverse, { inPlace: true, signal }), rowsOfQ, { signal });
    const bData = b.data as Float32Array;
    const sum = Tensor.fromTypedArray(Float32Array.from(bData, (bv, k) => bv + uData[k]), scaled.shape);
    const next = chooseUnits(units, unitEnergies(sum, units), sparsity, where);
    const changed = next.kept.some((k, i) => k !== choice.kept[i]);
    choice = next;
    zData.set(sum.data as Float32Array);
    zeroColumns(z, units, choice.kept);
    for (let k = 0; k < uData.length; ++k) uData[k] += bData[k] - zData[k];
    rho *= options.growth;
    unchangedFor = changed ? 0 : unchangedFor + 1;
    if (iterations + 1 >= options.minIterations && unchangedFor >= options.patience) {
      iterations += 1;
      break;
    }
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  let weight: Tensor;
  if (options.refit) weight = await refit(original, h, units, choice.kept, signal);
  else {
    weight = await scaleColumnsAsync(b, Tensor.fromTypedArray(Float32Array.from(d, (x) => 1 / x)), { signal });
    zeroColumns(weight, units, choice.kept);
  }
  return { choice, weight, iterations };
}

/** W_S = W₀·H_{:,S}·(H_SS)⁻¹ with the damped H (the least-squares refit of the kept columns), zeros elsewhere. */
async function refit(original: Tensor, h: Tensor, units: GroupUnits, kept: Uint8Array, signal?: AbortSignal): Promise<Tensor> {
  const [rows, inputs] = original.shape;
  const support: number[] = [];
  units.units.forEach((u, i) => {
    if (!kept[i]) return;
    const s = u.slices.find((x) => x.role === units.outputRole)!;
    for (let c = s.start; c < s.start + s.length; ++c) support.push(c);
  });
  support.sort((a, b) => a - b);
  const n = support.length;
  const hData = h.data as Float32Array;
  const hSS = Tensor.fromTypedArray(Float32Array.from({ length: n * n }, (_, k) => hData[support[Math.floor(k / n)] * inputs + support[k % n]]), [n, n]);
  const { inverse } = await choleskyInverseAsync(hSS, { damp: 0, signal });
  const wh = (await gemmAsync(original, h, { signal })).data as Float32Array; // W₀·H [rows, inputs]
  const whS = Tensor.fromTypedArray(Float32Array.from({ length: rows * n }, (_, k) => wh[Math.floor(k / n) * inputs + support[k % n]]), [rows, n]);
  const solved = (await gemmAsync(whS, inverse, { signal })).data as Float32Array;
  const out = Tensor.zeros([rows, inputs]);
  const o = out.data as Float32Array;
  for (let r = 0; r < rows; ++r) for (let k = 0; k < n; ++k) o[r * inputs + support[k]] = solved[r * n + k];
  return out;
}

export const structprune: CompressionMethod<StructPruneOptions> = {
  name: 'structprune',
  summary: 'structured: per-module ADMM with a closed-form structured mask, least-squares refit, uniform or softmax layer allocation',
  needs: { hessian: true },
  scope: 'group',
  prunes: true,
  requiresSparsity: true,
  quantizes: () => false,
  fallback: 'magnitude-sp',
  parseOptions(raw, where) {
    rejectUnknownOptions(raw, OPTIONS, where, 'structprune');
    const iterations = raw.iterations === undefined ? 60 : checkInteger(`${where}.iterations`, raw.iterations, 1);
    return {
      ...parseStructuredOptions(raw, where),
      damp: raw.damp === undefined ? 0.01 : checkNumber(`${where}.damp`, raw.damp, { min: Number.MIN_VALUE }),
      rho: raw.rho === undefined ? 0.1 : checkNumber(`${where}.rho`, raw.rho, { min: Number.MIN_VALUE }),
      growth: raw.growth === undefined ? 1.3 : checkNumber(`${where}.growth`, raw.growth, { min: 1 }),
      iterations,
      minIterations: raw.minIterations === undefined ? Math.min(10, iterations) : checkInteger(`${where}.minIterations`, raw.minIterations, 1),
      patience: raw.patience === undefined ? 5 : checkInteger(`${where}.patience`, raw.patience, 1),
      refit: raw.refit === undefined ? true : raw.refit === true ? true : raw.refit === false ? false : (() => { throw new InvalidArgumentError(`${where}.refit: expected true or false`); })(),
    };
  },
  async compressGroup(request) {
    const { pattern, options, signal } = request;
    if (pattern?.kind !== 'unstructured') throw new InvalidArgumentError(`${request.group}: structprune needs a sparsity fraction (N:M is not structured pruning)`);
    const units = groupUnits(request.group, shapesOf(request.linears), request.attention, options);
    if (!units) return unchanged(request.linears);
    const member = outputMember(request, units);
    const { choice, weight, iterations } = await admm(member, units, pattern.sparsity, options, `layer ${request.block} ${request.group}`, signal);
    (member.weight.data as Float32Array).set(weight.data as Float32Array);
    const results = applyRemoval(units, choice.kept, request.linears);
    const details = { unitsKept: units.units.length - choice.removed, units: units.units.length, admmIterations: iterations, ...(choice.clamp ? { clamped: choice.clamp } : {}) };
    for (const r of results.values()) r.details = details;
    return results;
  },
  allocation: scoreAllocation((request, units) => energyScores(outputMember(request, units), units)),
};
