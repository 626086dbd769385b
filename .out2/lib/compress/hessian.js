// Preparing a layer's Hessian H = (2/T)·XᵀX for the second-order methods (SparseGPT, GPTQ, ALPS), one
// rule for all of them:
//   dead inputs   H_jj = 0 (an input that is always zero): H_jj = 1 and W[:, j] = 0
//   damping       λ = damp·mean(diag H) (after the dead-input fix), added to the diagonal
//   ladder        where H + λI must be factorized (SparseGPT, GPTQ) and is not positive definite, damp is
//                 raised ×10 and retried (native/core/damping.h); the damping actually used is reported
import { choleskyAsync, choleskyInverseAsync } from '../tensor/ops.js';
/**
 * H with dead inputs fixed — a copy when there are any, else H itself (treat it as read-only: linears that
 * read the same input share it); their columns of `weight` (f32 [out, in], modified in place, when given)
 * are zeroed, since nothing they could hold changes the layer's output.
 */
export async function fixDeadInputs(hessian, weight, signal) {
    const inputs = hessian.shape[0];
    const diagonal = hessian.data;
    let deadInputs = 0;
    for (let j = 0; j < inputs; ++j)
        if (diagonal[j * inputs + j] === 0)
            deadInputs += 1;
    if (deadInputs === 0)
        return { hessian, deadInputs };
    const rows = weight ? weight.shape[0] : 0;
    const fixed = await hessian.cloneAsync({ signal });
    const h = fixed.data;
    const w = weight?.data;
    for (let j = 0; j < inputs; ++j) {
        if (h[j * inputs + j] !== 0)
            continue;
        h[j * inputs + j] = 1;
        for (let r = 0; r < rows; ++r)
            w[r * inputs + j] = 0;
    }
    return { hessian: fixed, deadInputs };
}
/**
 * U, the upper Cholesky factor of (H + λI)⁻¹ (what the column sweep reads), climbing the damping ladder
 * while H + λI is not positive definite.
 */
export async function inverseFactor(hessian, damp, deadInputs, signal) {
    const { inverse, damping } = await choleskyInverseAsync(hessian, { damp, signal });
    const { factor } = await choleskyAsync(inverse, { upper: true, signal });
    return { factor, report: { damping: damping.relative, dampingAbsolute: damping.absolute, dampingAttempts: damping.attempts, deadInputs } };
}
/** H + λI in place (pass a copy) with λ = damp·mean(diag H), for methods that need no factorization (ALPS). */
export function addDamping(hessian, damp, deadInputs) {
    const inputs = hessian.shape[0];
    const h = hessian.data;
    let meanDiagonal = 0;
    for (let j = 0; j < inputs; ++j)
        meanDiagonal += h[j * inputs + j] / inputs;
    const lambda = damp * meanDiagonal;
    for (let j = 0; j < inputs; ++j)
        h[j * inputs + j] += lambda;
    return { damping: damp, dampingAbsolute: lambda, dampingAttempts: 0, deadInputs };
}
/** The report as a method's details. */
export function hessianDetails(report) {
    return { damping: report.damping, dampingAbsolute: report.dampingAbsolute, dampingAttempts: report.dampingAttempts, deadInputs: report.deadInputs };
}
//# sourceMappingURL=hessian.js.map