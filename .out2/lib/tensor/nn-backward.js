// Backward (gradient) kernels of the transformer building blocks in nn.ts and of the elementwise
// activations in ops.ts, plus an AdamW step: what a training loop needs on top of the forward ops (f32,
// CPU for now). Results described as "overwritten" can be written into a caller's `out` tensor; those
// described as "accumulated" are added to in place. Each op has a sync form and an `...Async` one.
import { checkTensor, commonDevice, emptyF32, f32Input as f32, i32Input as i32, runAsync, runSync } from './call.js';
import { Tensor } from './tensor.js';
import { checkBoolean, checkInteger, checkNumber, checkOneOf, invalid } from '../validate.js';
/** An f32 tensor written in place: it must be contiguous, since a copy would take the writes. */
function inPlace(param, t, why) {
    checkTensor(param, t);
    if (t.dtype !== 'f32')
        invalid(param, 'an f32 tensor', `${t.dtype} tensor`);
    if (!t.isContiguous)
        invalid(param, `a contiguous tensor (${why})`, 'a strided view');
    return t;
}
/** The caller's output tensor, or a new one of `shape` on `device`. */
function output(param, given, shape, device) {
    return given ? inPlace(param, given, 'it is written in place') : Tensor.zeros([...shape], 'f32', device);
}
// ---- embedding ----
function embeddingBackwardCall(gradOut, ids, gradTable) {
    const device = commonDevice({ gradOut, ids, gradTable });
    const table = inPlace('gradTable', gradTable, 'embeddingBackward accumulates into it');
    return {
        device,
        name: 'embeddingBackward',
        args: [...f32('gradOut', gradOut).nativeArgs('gradOut'), ...i32('ids', ids).nativeArgs('ids'), ...table.nativeArgs('gradTable')],
        result: () => gradTable,
    };
}
/** gradTable[ids[i]] += gradOut[i] (rows of D). gradOut: [...ids.shape, D]; gradTable [V, D] accumulated in place; returns gradTable. Ids outside 0..V-1 → InvalidArgumentError. */
export function embeddingBackward(gradOut, ids, gradTable) {
    return runSync(embeddingBackwardCall(gradOut, ids, gradTable));
}
export function embeddingBackwardAsync(gradOut, ids, gradTable, options = {}) {
    return runAsync(embeddingBackwardCall(gradOut, ids, gradTable), options);
}
// ---- RMSNorm / LayerNorm ----
function normBackwardCall(kind, x, weight, gradOut, eps, gradWeight, gradBias, options) {
    checkOneOf('kind', kind, ['rms', 'layer']);
    if (kind === 'rms' && gradBias !== undefined)
        invalid('gradBias', 'undefined for RMSNorm (it has no bias)', gradBias);
    const tensors = { x, weight, gradOut, gradWeight };
    if (gradBias)
        tensors.gradBias = gradBias;
    if (options.out)
        tensors.out = options.out;
    const device = commonDevice(tensors);
    const gradX = output('out', options.out, x.shape, device);
    const gw = inPlace('gradWeight', gradWeight, 'normBackward accumulates into it');
    const gb = gradBias ? inPlace('gradBias', gradBias, 'normBackward accumulates into it') : emptyF32();
    return {
        device,
        name: 'normBackward',
        args: [
            kind === 'rms' ? 0 : 1,
            ...f32('x', x).nativeArgs('x'),
            ...f32('weight', weight).nativeArgs('weight'),
            ...f32('gradOut', gradOut).nativeArgs('gradOut'),
            checkNumber('eps', eps, { min: 0 }),
            ...gradX.nativeArgs('out'),
            ...gw.nativeArgs('gradWeight'),
            ...gb.nativeArgs('gradBias'),
        ],
        result: () => gradX,
    };
}
/** RMSNorm (kind 'rms', bias must be undefined) or LayerNorm (kind 'layer') backward over the last dimension, same math as rmsNorm/layerNorm in nn.ts (rms: x/sqrt(mean(x²)+eps)·w; layer: (x−mean)/sqrt(var+eps)·w + b, biased var). Returns gradX (overwritten, x's shape); gradWeight [D] and gradBias [D] (if given) are ACCUMULATED (+=). */
export function normBackward(kind, x, weight, gradOut, eps, gradWeight, gradBias, options = {}) {
    return runSync(normBackwardCall(kind, x, weight, gradOut, eps, gradWeight, gradBias, options));
}
export function normBackwardAsync(kind, x, weight, gradOut, eps, gradWeight, gradBias, options = {}) {
    return runAsync(normBackwardCall(kind, x, weight, gradOut, eps, gradWeight, gradBias, options), options);
}
// ---- rope ----
function ropeBackwardCall(grad, positions, invFreq) {
    const device = commonDevice({ grad, positions, invFreq });
    const g = inPlace('grad', grad, 'ropeBackward works in place');
    return {
        device,
        name: 'ropeBackward',
        args: [...g.nativeArgs('grad'), ...i32('positions', positions).nativeArgs('positions'), ...f32('invFreq', invFreq).nativeArgs('invFreq')],
        result: () => grad,
    };
}
/** The transpose of rope(): rotates grad [T, H, d] in place by −positions·invFreq (pairs i, i+d/2 as rope does); returns grad. */
export function ropeBackward(grad, positions, invFreq) {
    return runSync(ropeBackwardCall(grad, positions, invFreq));
}
export function ropeBackwardAsync(grad, positions, invFreq, options = {}) {
    return runAsync(ropeBackwardCall(grad, positions, invFreq), options);
}
function attentionBackwardCall(q, k, v, out, gradOut, options) {
    const tensors = { q, k, v, out, gradOut };
    if (options.outQ)
        tensors.outQ = options.outQ;
    if (options.outK)
        tensors.outK = options.outK;
    if (options.outV)
        tensors.outV = options.outV;
    const device = commonDevice(tensors);
    const gq = output('outQ', options.outQ, q.shape, device);
    const gk = output('outK', options.outK, k.shape, device);
    const gv = output('outV', options.outV, v.shape, device);
    const scale = checkNumber('scale', options.scale ?? 1 / Math.sqrt(q.shape[q.ndim - 1] ?? 1));
    return {
        device,
        name: 'attentionBackward',
        args: [
            ...f32('q', q).nativeArgs('q'),
            ...f32('k', k).nativeArgs('k'),
            ...f32('v', v).nativeArgs('v'),
            ...f32('out', out).nativeArgs('out'),
            ...f32('gradOut', gradOut).nativeArgs('gradOut'),
            ...gq.nativeArgs('outQ'),
            ...gk.nativeArgs('outK'),
            ...gv.nativeArgs('outV'),
            scale,
            checkBoolean('causal', options.causal ?? true),
        ],
        result: () => ({ q: gq, k: gk, v: gv }),
    };
}
/** Gradients of out = attention(q, k, v, {scale, causal}) (q [T,Hq,d], k/v [S,Hkv,d], S ≥ T, grouped query heads Hq = g·Hkv, query t sees keys ≤ t + S − T when causal) given out and gradOut [T,Hq,d]. All three results overwritten. */
export function attentionBackward(q, k, v, out, gradOut, options = {}) {
    return runSync(attentionBackwardCall(q, k, v, out, gradOut, options));
}
export function attentionBackwardAsync(q, k, v, out, gradOut, options = {}) {
    return runAsync(attentionBackwardCall(q, k, v, out, gradOut, options), options);
}
// ---- silu(gate)·up ----
function siluMulBackwardCall(gate, up, gradOut, options) {
    const tensors = { gate, up, gradOut };
    if (options.outGate)
        tensors.outGate = options.outGate;
    if (options.outUp)
        tensors.outUp = options.outUp;
    const device = commonDevice(tensors);
    const gg = output('outGate', options.outGate, gate.shape, device);
    const gu = output('outUp', options.outUp, up.shape, device);
    return {
        device,
        name: 'siluMulBackward',
        args: [...f32('gate', gate).nativeArgs('gate'), ...f32('up', up).nativeArgs('up'), ...f32('gradOut', gradOut).nativeArgs('gradOut'), ...gg.nativeArgs('outGate'), ...gu.nativeArgs('outUp')],
        result: () => ({ gate: gg, up: gu }),
    };
}
/** Gradients of silu(gate)·up. */
export function siluMulBackward(gate, up, gradOut, options = {}) {
    return runSync(siluMulBackwardCall(gate, up, gradOut, options));
}
export function siluMulBackwardAsync(gate, up, gradOut, options = {}) {
    return runAsync(siluMulBackwardCall(gate, up, gradOut, options), options);
}
// ---- elementwise activations ----
// The codes of ops.ts's unary ops, so both sides name an activation the same way.
const ACTIVATION_CODES = { relu: 5, silu: 6, gelu: 7, geluTanh: 8 };
function activationBackwardCall(op, x, gradOut, options) {
    checkOneOf('op', op, Object.keys(ACTIVATION_CODES));
    const device = commonDevice(options.out ? { x, gradOut, out: options.out } : { x, gradOut });
    const out = output('out', options.out, x.shape, device);
    return {
        device,
        name: 'activationBackward',
        args: [ACTIVATION_CODES[op], ...f32('x', x).nativeArgs('x'), ...f32('gradOut', gradOut).nativeArgs('gradOut'), ...out.nativeArgs('out')],
        result: () => out,
    };
}
/** Gradient of an elementwise activation (the same definitions as ops.ts relu / silu / gelu (erf) / geluTanh) at x. relu'(0) = 0. */
export function activationBackward(op, x, gradOut, options = {}) {
    return runSync(activationBackwardCall(op, x, gradOut, options));
}
export function activationBackwardAsync(op, x, gradOut, options = {}) {
    return runAsync(activationBackwardCall(op, x, gradOut, options), options);
}
// ---- column sums (bias gradients) ----
function columnSumsCall(x, out) {
    const device = commonDevice({ x, out });
    const o = inPlace('out', out, 'columnSums accumulates into it');
    return { device, name: 'columnSums', args: [...f32('x', x).nativeArgs('x'), ...o.nativeArgs('out')], result: () => out };
}
/** out[c] += Σ_r x[r, c] over all leading dims of x (bias gradients); out [C] accumulated; returns out. */
export function columnSums(x, out) {
    return runSync(columnSumsCall(x, out));
}
export function columnSumsAsync(x, out, options = {}) {
    return runAsync(columnSumsCall(x, out), options);
}
// ---- cross-entropy ----
function crossEntropyBackwardCall(logits, targets, gradNll, options) {
    const tensors = { logits, targets, gradNll };
    if (options.out)
        tensors.out = options.out;
    const device = commonDevice(tensors);
    const overwrite = checkBoolean('inPlace', options.inPlace ?? false);
    if (overwrite && options.out)
        invalid('options', 'either inPlace or out, not both', options);
    const vocab = logits.shape[logits.ndim - 1] ?? 1;
    const input = overwrite ? inPlace('logits', logits, 'inPlace overwrites it') : f32('logits', logits);
    const rows = input.reshape([-1, vocab]);
    const result = overwrite ? logits : output('out', options.out, logits.shape, device);
    return {
        device,
        name: 'crossEntropyBackward',
        args: [
            ...rows.nativeArgs('logits'),
            ...i32('targets', targets).nativeArgs('targets'),
            ...f32('gradNll', gradNll).nativeArgs('gradNll'),
            ...result.reshape([-1, vocab]).nativeArgs(options.out ? 'out' : 'logits'),
        ],
        result: () => result,
    };
}
/** Gradient of nll = crossEntropy(logits, targets) (logsumexp − logit[target]) weighted per row: gradLogits[r] = (softmax(logits[r]) − onehot(targets[r]))·gradNll[r]. logits [N,V] (or [..., V]), targets i32 [N], gradNll f32 [N]. With { inPlace: true } it overwrites logits. */
export function crossEntropyBackward(logits, targets, gradNll, options = {}) {
    return runSync(crossEntropyBackwardCall(logits, targets, gradNll, options));
}
export function crossEntropyBackwardAsync(logits, targets, gradNll, options = {}) {
    return runAsync(crossEntropyBackwardCall(logits, targets, gradNll, options), options);
}
// ---- scatterAdd ----
function scatterAddBackwardCall(gradOut, rows, indices, weights, options) {
    const tensors = { gradOut, rows, indices, weights };
    if (options.outRows)
        tensors.outRows = options.outRows;
    if (options.outWeights)
        tensors.outWeights = options.outWeights;
    const device = commonDevice(tensors);
    const gr = output('outRows', options.outRows, rows.shape, device);
    const gw = output('outWeights', options.outWeights, weights.shape, device);
    return {
        device,
        name: 'scatterAddBackward',
        args: [
            ...f32('gradOut', gradOut).nativeArgs('gradOut'),
            ...f32('rows', rows).nativeArgs('rows'),
            ...i32('indices', indices).nativeArgs('indices'),
            ...f32('weights', weights).nativeArgs('weights'),
            ...gr.nativeArgs('outRows'),
            ...gw.nativeArgs('outWeights'),
        ],
        result: () => ({ rows: gr, weights: gw }),
    };
}
/** Backward of scatterAdd(out, rows, indices, weights) (out[indices[i]] += weights[i]·rows[i]): gradRows[i] = weights[i]·gradOut[indices[i]], gradWeights[i] = <gradOut[indices[i]], rows[i]> (dot in double). */
export function scatterAddBackward(gradOut, rows, indices, weights, options = {}) {
    return runSync(scatterAddBackwardCall(gradOut, rows, indices, weights, options));
}
export function scatterAddBackwardAsync(gradOut, rows, indices, weights, options = {}) {
    return runAsync(scatterAddBackwardCall(gradOut, rows, indices, weights, options), options);
}
function adamwStepCall(param, grad, m, v, options) {
    const device = commonDevice({ param, grad, m, v });
    const p = inPlace('param', param, 'adamwStep updates it in place');
    const mm = inPlace('m', m, 'adamwStep updates it in place');
    const vv = inPlace('v', v, 'adamwStep updates it in place');
    if (typeof options !== 'object' || options === null)
        invalid('options', 'an object with lr, beta1, beta2, eps, weightDecay and step', options);
    return {
        device,
        name: 'adamwStep',
        args: [
            ...p.nativeArgs('param'),
            ...f32('grad', grad).nativeArgs('grad'),
            ...mm.nativeArgs('m'),
            ...vv.nativeArgs('v'),
            checkNumber('lr', options.lr, { min: 0 }),
            checkNumber('beta1', options.beta1, { min: 0 }),
            checkNumber('beta2', options.beta2, { min: 0 }),
            checkNumber('eps', options.eps, { min: 0 }),
            checkNumber('weightDecay', options.weightDecay, { min: 0 }),
            checkInteger('step', options.step, 1),
        ],
        result: () => undefined,
    };
}
/** One AdamW step in place (PyTorch's torch.optim.AdamW semantics): p ← p − lr·wd·p; m ← b1·m + (1−b1)·g; v ← b2·v + (1−b2)·g²; p ← p − lr·(m/(1−b1^step)) / (sqrt(v/(1−b2^step)) + eps). step ≥ 1. All f32 same numel. */
export function adamwStep(param, grad, m, v, options) {
    runSync(adamwStepCall(param, grad, m, v, options));
}
export function adamwStepAsync(param, grad, m, v, options) {
    return runAsync(adamwStepCall(param, grad, m, v, options), options);
}
//# sourceMappingURL=nn-backward.js.map