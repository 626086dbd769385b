// ALPS (Meng, Behdin, Wang & Mazumder, 2024): one-shot pruning by ADMM on the layer's reconstruction
// objective, then conjugate-gradient refinement on the chosen support.
//   min_B ‖X(B − B₀)‖²  s.t. B has the pattern,  B = Wᵀ, written here in W's layout (rows = outputs)
//   H: dead inputs fixed, H ← H + damp·mean(diag H)·I (hessian.ts);  d = √diag(H);  Ĥ = D⁻¹HD⁻¹;  W̃ = W·D;  G = W̃·Ĥ
//   Ĥ = QΛQᵀ once (float64), so (Ĥ + ρI)⁻¹ = Q(Λ + ρI)⁻¹Qᵀ for any ρ
//   Z = P(W̃), V = 0, ρ = ρ₀; repeat:
//     B ← (G − V + ρZ)(Ĥ + ρI)⁻¹;   Z ← P(B + V/ρ);   V ← V + ρ(B − Z)
//   every `updateIter` iterations, with s = support changes / kept weights:
//     s > 0.1 → ρ×1.3;  s > 0.005 → ρ×1.2;  any change → ρ×1.1 if ρ was raised before, else ρ/5 and
//     restart from Z = P(W̃), V = 0;  no change → stop if ρ was raised, else ρ/5;  ρ ≤ 1e6;
//     stop once past `switchIter` iterations with s < 3e-4
//   B ← P(B); then masked CG on Ĥ_SS·b_S = g_S per row (≤ cgIterations, rtol), W = B·D⁻¹.
// P keeps the largest |·| over the whole matrix (unstructured) or the N largest of every M inputs of a row.
import { AbortError, InvalidArgumentError } from '../errors.js';
import { alpsAdmmStepAsync, applyMaskAsync, axpyAsync, dotAsync, eighAsync, gemmAsync, maskedCgAsync, nmMaskAsync, scaleColumnsAsync, transposeAsync, topkMaskAsync, unaryAsync, } from '../tensor/ops.js';
import { Tensor } from '../tensor/tensor.js';
import { checkInteger, checkNumber } from '../validate.js';
import { addDamping, fixDeadInputs, hessianDetails } from './hessian.js';
import { rejectUnknownOptions, requireStatistic } from './method.js';
import { keptCount } from './pattern.js';
const OPTION_NAMES = ['damp', 'rho', 'maxIterations', 'updateIterations', 'switchIterations', 'cgIterations', 'cgRtol', 'fixedIterations'];
/** Keeps the pattern's largest-magnitude entries of u; returns the projection and its u8 support. */
async function project(u, pattern, kept, signal) {
    const scores = await unaryAsync('square', u, { signal });
    const support = pattern.kind === 'nm' ? await nmMaskAsync(scores, pattern.n, pattern.m, { signal }) : (await topkMaskAsync(scores.reshape([1, -1]), kept, { signal })).reshape(u.shape);
    return { z: await applyMaskAsync(u, support, { signal }), support };
}
/** The relative objective ‖X(B − W̃)‖²/‖XW̃‖² in the scaled basis: tr(ΔĤΔᵀ)/tr(W̃ĤW̃ᵀ). */
async function relativeObjective(b, scaled, hHat, denominator, signal) {
    const delta = await b.cloneAsync({ signal });
    await axpyAsync(-1, scaled, delta, { signal });
    return (await dotAsync(delta, await gemmAsync(delta, hHat, { signal }), { signal })) / denominator;
}
// Linears that read the same input (q/k/v, gate/up) share one Hessian object, so the scaled Hessian and
// its eigendecomposition — the O(n³) part — are computed once per group and damping. Dead inputs are a
// property of the shared input, so every linear of the group zeroes the same columns.
const preparedFor = new WeakMap();
/**
 * Ĥ = D⁻¹(H + λI)D⁻¹ with d = √diag(H + λI) + 1e-8, and Ĥ = QΛQᵀ (float64 eigendecomposition); H with dead
 * inputs fixed and damped as hessian.ts does for every method.
 */
function prepare(hessian, damp, signal) {
    let byDamp = preparedFor.get(hessian);
    if (!byDamp) {
        byDamp = new Map();
        preparedFor.set(hessian, byDamp);
    }
    let prepared = byDamp.get(damp);
    if (!prepared) {
        prepared = compute();
        byDamp.set(damp, prepared);
        prepared.catch(() => byDamp.delete(damp));
    }
    return prepared;
    async function compute() {
        const inputs = hessian.shape[0];
        const fixed = await fixDeadInputs(hessian, undefined, signal);
        // Damping and scaling change H in place: work on a copy unless fixing dead inputs made one already.
        const h = fixed.hessian === hessian ? await hessian.cloneAsync({ signal }) : fixed.hessian;
        const report = addDamping(h, damp, fixed.deadInputs);
        const hData = h.data;
        const scale = new Float32Array(inputs);
        const inverseScale = new Float32Array(inputs);
        for (let j = 0; j < inputs; ++j) {
            scale[j] = Math.sqrt(Math.max(hData[j * inputs + j], 0)) + 1e-8;
            inverseScale[j] = 1 / scale[j];
        }
        const inverseD = Tensor.fromTypedArray(inverseScale);
        // Ĥ_ij = (H_ij·d_i⁻¹)·d_j⁻¹: rows (here, in chunks) then columns (native).
        for (let i = 0; i < inputs; ++i) {
            const row = hData.subarray(i * inputs, (i + 1) * inputs);
            for (let j = 0; j < inputs; ++j)
                row[j] *= inverseScale[i];
            if (i % 256 === 255)
                await new Promise((resolve) => setImmediate(resolve));
        }
        const hHat = await scaleColumnsAsync(h, inverseD, { inPlace: true, signal });
        const { values, vectors } = await eighAsync(await hHat.toAsync('f64', { signal }), { signal });
        const rowsOfQ = await vectors.toAsync('f32', { signal }); // row i = eigenvector i, i.e. Qᵀ
        const dead = new Uint8Array(inputs);
        for (let j = 0; j < inputs; ++j)
            dead[j] = hessian.data[j * inputs + j] === 0 ? 1 : 0;
        return { scale: Tensor.fromTypedArray(scale), inverseD, hHat, eigenvalues: values.data, rowsOfQ, columnsOfQ: await transposeAsync(rowsOfQ, { signal }), report, dead };
    }
}
export const alps = {
    name: 'alps',
    summary: 'ADMM on the layer reconstruction with a ρ schedule, then CG on the fixed support (strong at 70–90%)',
    needs: { hessian: true },
    scope: 'linear',
    prunes: true,
    requiresSparsity: true,
    quantizes: () => false,
    fallback: 'magnitude',
    parseOptions(raw, where) {
        rejectUnknownOptions(raw, OPTION_NAMES, where, 'alps');
        return {
            damp: checkNumber(`${where}.damp`, raw.damp ?? 0.01, { min: 0 }),
            rho: checkNumber(`${where}.rho`, raw.rho ?? 0.1, { min: Number.MIN_VALUE }),
            maxIterations: checkInteger(`${where}.maxIterations`, raw.maxIterations ?? 300, 1, 100000),
            updateIterations: checkInteger(`${where}.updateIterations`, raw.updateIterations ?? 3, 1, 1000),
            switchIterations: checkInteger(`${where}.switchIterations`, raw.switchIterations ?? 30, 0, 100000),
            cgIterations: checkInteger(`${where}.cgIterations`, raw.cgIterations ?? 10, 0, 10000),
            cgRtol: checkNumber(`${where}.cgRtol`, raw.cgRtol ?? 1e-4, { min: 0 }),
            fixedIterations: checkInteger(`${where}.fixedIterations`, raw.fixedIterations ?? 0, 0, 100000),
        };
    },
    async compress(request) {
        const { name, weight, pattern, options, signal } = request;
        if (!pattern)
            throw new InvalidArgumentError(`${name}: alps needs a sparsity`);
        const [rows, inputs] = weight.shape;
        const kept = keptCount(pattern, rows * inputs);
        const { scale, inverseD, hHat, eigenvalues, rowsOfQ, columnsOfQ, report, dead } = await prepare(requireStatistic(request, 'alps', 'hessian'), options.damp, signal);
        if (report.deadInputs > 0) {
            const w = weight.data;
            for (let r = 0; r < rows; ++r)
                for (let j = 0; j < inputs; ++j)
                    if (dead[j])
                        w[r * inputs + j] = 0;
        }
        const scaled = await scaleColumnsAsync(weight, scale, { signal });
        const g = await gemmAsync(scaled, hHat, { signal });
        const denominator = await dotAsync(scaled, g, { signal });
        // B = R·(Ĥ + ρI)⁻¹ with (Ĥ + ρI)⁻¹ = Q(Λ + ρI)⁻¹Qᵀ. With many output rows the n×n inverse is rebuilt
        // whenever ρ changes (n³) and applied with one GEMM; with few (out ≤ in/3) applying the factors
        // directly, two m·n² GEMMs per iteration, costs less than the rebuilds.
        const throughFactors = rows * 3 <= inputs;
        const factorsAt = (rho) => Tensor.fromTypedArray(Float32Array.from(eigenvalues, (lambda) => 1 / (lambda + rho)));
        const inverseAt = async (rho) => throughFactors
            ? { inverse: columnsOfQ, factors: factorsAt(rho), back: rowsOfQ }
            : { inverse: await gemmAsync(await scaleColumnsAsync(columnsOfQ, factorsAt(rho), { signal }), rowsOfQ, { signal }) };
        const projection = pattern.kind === 'nm' ? { n: pattern.n, m: pattern.m } : { kept };
        // One alpsAdmmStep is one iteration of the box above: B, then Z = P(B + V/ρ) and its support, then V;
        // it counts the support's changes against `previous`, the support at the last ρ update.
        const initial = await project(scaled, pattern, kept, signal);
        const state = {
            v: Tensor.zeros(weight.shape),
            z: await initial.z.cloneAsync({ signal }),
            b: Tensor.zeros(weight.shape),
            work: Tensor.zeros(weight.shape),
            support: Tensor.zeros(weight.shape, 'u8'),
            previous: await initial.support.cloneAsync({ signal }),
        };
        let rho = options.rho;
        let inverse = await inverseAt(rho);
        let raised = false;
        let b = scaled;
        let iterations = 0;
        let supportChanges = 0;
        const fixed = options.fixedIterations > 0;
        for (let i = 0; i < (fixed ? options.fixedIterations : options.maxIterations); ++i) {
            if (signal?.aborted)
                throw new AbortError();
            iterations = i + 1;
            const changes = await alpsAdmmStepAsync(g, state, { rho, ...inverse, ...projection, signal });
            b = state.b;
            if ((i + 1) % options.updateIterations !== 0)
                continue;
            // Entries that left or joined the support since the last check.
            supportChanges = changes;
            const share = supportChanges / kept;
            const rhoBefore = rho;
            if (share > 0.1) {
                raised = true;
                rho *= 1.3;
            }
            else if (share > 0.005) {
                raised = true;
                rho *= 1.2;
            }
            else if (supportChanges > 0) {
                if (raised) {
                    rho *= 1.1;
                }
                else {
                    rho /= 5;
                    state.z.data.set(initial.z.data);
                    state.v.data.fill(0);
                }
            }
            else if (raised) {
                if (!fixed)
                    break;
            }
            else {
                rho /= 5;
            }
            rho = Math.min(rho, 1e6);
            [state.previous, state.support] = [state.support, state.previous];
            if (rho !== rhoBefore)
                inverse = await inverseAt(rho);
            if (!fixed && i >= options.switchIterations && share < 3e-4)
                break;
        }
        // The last B projected onto the pattern, then CG on that support.
        const final = await project(b, pattern, kept, signal);
        const result = final.z;
        const errorBeforeCg = await relativeObjective(result, scaled, hHat, denominator, signal);
        const cg = await maskedCgAsync(hHat, g, final.support, result, { maxIterations: options.cgIterations, rtol: options.cgRtol, signal });
        const errorAfterCg = await relativeObjective(result, scaled, hHat, denominator, signal);
        return {
            weight: await scaleColumnsAsync(result, inverseD, { inPlace: true, signal }),
            mask: final.support,
            details: { ...hessianDetails(report), iterations, rho, supportChanges, errorBeforeCg, errorAfterCg, cgIterations: cg.iterations, cgConverged: cg.converged },
        };
    },
};
//# sourceMappingURL=alps.js.map