// Transformer building blocks (f32, CPU for now): embedding lookup, RMSNorm/LayerNorm, rotary
// embeddings, grouped-query attention, SiLU·mul, bias add and cross-entropy. Each has a sync form and an
// `...Async` one, like the ops in ops.ts.
import { commonDevice, emptyF32, f32Input as f32, i32Input as i32, runAsync, runSync } from './call.js';
import { Tensor } from './tensor.js';
import { checkBoolean, checkNumber, invalid } from '../validate.js';
function embeddingCall(table, ids) {
    const device = commonDevice({ table, ids });
    const out = Tensor.zeros([...ids.shape, table.shape[1]], 'f32', device);
    return { device, name: 'embedding', args: [...f32('table', table).nativeArgs('table'), ...i32('ids', ids).nativeArgs('ids'), ...out.nativeArgs('out')], result: () => out };
}
/** Rows of `table` [V, D] for token ids (i32, any shape) → [...ids.shape, D]. */
export function embedding(table, ids) {
    return runSync(embeddingCall(table, ids));
}
export function embeddingAsync(table, ids, options = {}) {
    return runAsync(embeddingCall(table, ids), options);
}
function normCall(kind, x, weight, bias, eps, inPlace) {
    const device = commonDevice(bias ? { x, weight, bias } : { x, weight });
    const input = f32('x', x);
    const out = inPlace ? input : Tensor.zeros(x.shape, 'f32', device);
    const b = bias ? f32('bias', bias) : emptyF32();
    return {
        device,
        name: 'norm',
        args: [kind, ...input.nativeArgs('x'), ...f32('weight', weight).nativeArgs('weight'), ...b.nativeArgs('bias'), checkNumber('eps', eps, { min: 0 }), ...out.nativeArgs('out')],
        result: () => out,
    };
}
/** x / sqrt(mean(x²) + eps) · weight over the last dimension. */
export function rmsNorm(x, weight, eps, options = {}) {
    return runSync(normCall(0, x, weight, undefined, eps, options.inPlace ?? false));
}
/** (x − mean) / sqrt(var + eps) · weight + bias over the last dimension (biased variance). */
export function layerNorm(x, weight, bias, eps, options = {}) {
    return runSync(normCall(1, x, weight, bias, eps, options.inPlace ?? false));
}
export function rmsNormAsync(x, weight, eps, options = {}) {
    return runAsync(normCall(0, x, weight, undefined, eps, false), options);
}
export function layerNormAsync(x, weight, bias, eps, options = {}) {
    return runAsync(normCall(1, x, weight, bias, eps, false), options);
}
/**
 * Inverse frequencies θ^(−2i/d) for i < d/2, with Hugging Face's rope scalings applied: 'linear'
 * divides them by `factor`; 'llama3' divides the low-frequency band by `factor` and blends the middle
 * band smoothly between scaled and unscaled.
 */
export function ropeInverseFrequencies(headDim, theta, scaling) {
    const half = headDim / 2;
    const out = new Float32Array(half);
    for (let i = 0; i < half; ++i) {
        // In float32, as the reference: base^(arange(0, d, 2) / d).
        const exponent = Math.fround((2 * i) / headDim);
        let f = Math.fround(1 / Math.fround(theta ** exponent));
        if (scaling?.type === 'linear')
            f = Math.fround(f / scaling.factor);
        if (scaling?.type === 'llama3') {
            const lowWavelength = scaling.originalMaxPositions / scaling.lowFreqFactor;
            const highWavelength = scaling.originalMaxPositions / scaling.highFreqFactor;
            const wavelength = (2 * Math.PI) / f;
            if (wavelength > lowWavelength)
                f = Math.fround(f / scaling.factor);
            else if (wavelength >= highWavelength) {
                const smooth = (scaling.originalMaxPositions / wavelength - scaling.lowFreqFactor) / (scaling.highFreqFactor - scaling.lowFreqFactor);
                f = Math.fround((1 - smooth) * (f / scaling.factor) + smooth * f);
            }
        }
        out[i] = f;
    }
    return out;
}
function ropeCall(x, positions, invFreq) {
    const device = commonDevice({ x, positions, invFreq });
    if (!x.isContiguous)
        invalid('x', 'a contiguous tensor (rope works in place)', 'a strided view');
    return { device, name: 'rope', args: [...f32('x', x).nativeArgs('x'), ...i32('positions', positions).nativeArgs('positions'), ...f32('invFreq', invFreq).nativeArgs('invFreq')], result: () => x };
}
/** Rotates x [T, H, d] in place by positions (i32 [T]) · invFreq (f32 [d/2]), pairing i with i + d/2. */
export function rope(x, positions, invFreq) {
    return runSync(ropeCall(x, positions, invFreq));
}
export function ropeAsync(x, positions, invFreq, options = {}) {
    return runAsync(ropeCall(x, positions, invFreq), options);
}
function attentionCall(q, k, v, options) {
    const device = commonDevice(options.out ? { q, k, v, out: options.out } : { q, k, v });
    const out = options.out ? f32('out', options.out) : Tensor.zeros(q.shape, 'f32', device);
    const scale = checkNumber('scale', options.scale ?? 1 / Math.sqrt(q.shape[q.ndim - 1] ?? 1));
    return {
        device,
        name: 'attention',
        args: [...f32('q', q).nativeArgs('q'), ...f32('k', k).nativeArgs('k'), ...f32('v', v).nativeArgs('v'), ...out.nativeArgs('out'), scale, checkBoolean('causal', options.causal ?? true)],
        result: () => out,
    };
}
/** softmax(q·kᵀ·scale)·v per head, with grouped KV heads: q [T, Hq, d], k and v [S, Hkv, d]. */
export function attention(q, k, v, options = {}) {
    return runSync(attentionCall(q, k, v, options));
}
export function attentionAsync(q, k, v, options = {}) {
    return runAsync(attentionCall(q, k, v, options), options);
}
function siluMulCall(gate, up, inPlace) {
    const device = commonDevice({ gate, up });
    const g = f32('gate', gate);
    const out = inPlace ? g : Tensor.zeros(gate.shape, 'f32', device);
    return { device, name: 'siluMul', args: [...g.nativeArgs('gate'), ...f32('up', up).nativeArgs('up'), ...out.nativeArgs('out')], result: () => out };
}
/** silu(gate)·up, the SwiGLU MLP's activation. */
export function siluMul(gate, up, options = {}) {
    return runSync(siluMulCall(gate, up, options.inPlace ?? false));
}
export function siluMulAsync(gate, up, options = {}) {
    return runAsync(siluMulCall(gate, up, false), options);
}
/** x[..., c] += bias[c], in place; returns x. */
export function addBias(x, bias) {
    const device = commonDevice({ x, bias });
    if (!x.isContiguous)
        invalid('x', 'a contiguous tensor (addBias works in place)', 'a strided view');
    return runSync({ device, name: 'addBias', args: [...f32('x', x).nativeArgs('x'), ...f32('bias', bias).nativeArgs('bias')], result: () => x });
}
function crossEntropyCall(logits, targets) {
    const device = commonDevice({ logits, targets });
    const rows = logits.contiguous().reshape([-1, logits.shape[logits.ndim - 1]]);
    const nll = Tensor.zeros([rows.shape[0]], 'f32', device);
    return { device, name: 'crossEntropy', args: [...f32('logits', rows).nativeArgs('logits'), ...i32('targets', targets).nativeArgs('targets'), ...nll.nativeArgs('nll')], result: () => nll };
}
/** Per-row negative log-likelihood: logsumexp(logits[t]) − logits[t, targets[t]]. */
export function crossEntropy(logits, targets) {
    return runSync(crossEntropyCall(logits, targets));
}
export function crossEntropyAsync(logits, targets, options = {}) {
    return runAsync(crossEntropyCall(logits, targets), options);
}
/** out[indices[i]] += weights[i] · rows[i], in place (routed tokens back from their experts); returns out. */
export function scatterAdd(out, rows, indices, weights) {
    const device = commonDevice({ out, rows, indices, weights });
    if (!out.isContiguous)
        invalid('out', 'a contiguous tensor (scatterAdd works in place)', 'a strided view');
    return runSync({
        device,
        name: 'scatterAdd',
        args: [...f32('out', out).nativeArgs('out'), ...f32('rows', rows).nativeArgs('rows'), ...i32('indices', indices).nativeArgs('indices'), ...f32('weights', weights).nativeArgs('weights')],
        result: () => out,
    });
}
//# sourceMappingURL=nn.js.map