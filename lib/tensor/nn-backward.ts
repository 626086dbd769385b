// Backward (gradient) kernels of the transformer building blocks in nn.ts and of the elementwise
// activations in ops.ts, plus an AdamW step: what a training loop needs on top of the forward ops (f32,
// CPU for now). Results described as "overwritten" can be written into a caller's `out` tensor; those
// described as "accumulated" are added to in place. Each op has a sync form and an `...Async` one.
import { checkTensor, commonDevice, emptyF32, f32Input as f32, i32Input as i32, runAsync, runSync, type AsyncOptions, type Call } from './call.js';
import { Tensor } from './tensor.js';
import { checkBoolean, checkInteger, checkNumber, checkOneOf, invalid } from '../validate.js';

/** An f32 tensor written in place: it must be contiguous, since a copy would take the writes. */
function inPlace(param: string, t: Tensor, why: string): Tensor {
  checkTensor(param, t);
  if (t.dtype !== 'f32') invalid(param, 'an f32 tensor', `${t.dtype} tensor`);
  if (!t.isContiguous) invalid(param, `a contiguous tensor (${why})`, 'a strided view');
  return t;
}

/** The caller's output tensor, or a new one of `shape` on `device`. */
function output(param: string, given: Tensor | undefined, shape: readonly number[], device: Tensor['device']): Tensor {
  return given ? inPlace(param, given, 'it is written in place') : Tensor.zeros([...shape], 'f32', device);
}

// ---- embedding ----

function embeddingBackwardCall(gradOut: Tensor, ids: Tensor, gradTable: Tensor): Call<Tensor> {
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
export function embeddingBackward(gradOut: Tensor, ids: Tensor, gradTable: Tensor): Tensor {
  return runSync(embeddingBackwardCall(gradOut, ids, gradTable));
}
export function embeddingBackwardAsync(gradOut: Tensor, ids: Tensor, gradTable: Tensor, options: AsyncOptions = {}): Promise<Tensor> {
  return runAsync(embeddingBackwardCall(gradOut, ids, gradTable), options);
}

// ---- RMSNorm / LayerNorm ----

function normBackwardCall(
  kind: 'rms' | 'layer',
  x: Tensor,
  weight: Tensor,
  gradOut: Tensor,
  eps: number,
  gradWeight: Tensor,
  gradBias: Tensor | undefined,
  options: { out?: Tensor },
): Call<Tensor> {
  checkOneOf('kind', kind, ['rms', 'layer'] as const);
  if (kind === 'rms' && gradBias !== undefined) invalid('gradBias', 'undefined for RMSNorm (it has no bias)', gradBias);
  const tensors: Record<string, Tensor> = { x, weight, gradOut, gradWeight };
  if (gradBias) tensors.gradBias = gradBias;
  if (options.out) tensors.out = options.out;
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
export function normBackward(
  kind: 'rms' | 'layer',
  x: Tensor,
  weight: Tensor,
  gradOut: Tensor,
  eps: number,
  gradWeight: Tensor,
  gradBias?: Tensor,
  options: { out?: Tensor } = {},
): Tensor {
  return runSync(normBackwardCall(kind, x, weight, gradOut, eps, gradWeight, gradBias, options));
}
export function normBackwardAsync(
  kind: 'rms' | 'layer',
  x: Tensor,
  weight: Tensor,
  gradOut: Tensor,
  eps: number,
  gradWeight: Tensor,
  gradBias?: Tensor,
  options: { out?: Tensor } & AsyncOptions = {},
): Promise<Tensor> {
  return runAsync(normBackwardCall(kind, x, weight, gradOut, eps, gradWeight, gradBias, options), options);
}

// ---- rope ----

function ropeBackwardCall(grad: Tensor, positions: Tensor, invFreq: Tensor): Call<Tensor> {
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
export function ropeBackward(grad: Tensor, positions: Tensor, invFreq: Tensor): Tensor {
  return runSync(ropeBackwardCall(grad, positions, invFreq));
}
export function ropeBackwardAsync(grad: Tensor, positions: Tensor, invFreq: Tensor, options: AsyncOptions = {}): Promise<Tensor> {
  return runAsync(ropeBackwardCall(grad, positions, invFreq), options);
}

// ---- attention ----

export interface AttentionBackwardOptions {
  /** Score scale; default 1/sqrt(head_dim), as attention(). */
  scale?: number;
  /** Query t sees keys up to t + (S − T); default true, as attention(). */
  causal?: boolean;
  /** Write the gradients here (contiguous, the shapes of q, k and v) instead of new tensors. */
  outQ?: Tensor;
  outK?: Tensor;
  outV?: Tensor;
}

function attentionBackwardCall(q: Tensor, k: Tensor, v: Tensor, out: Tensor, gradOut: Tensor, options: AttentionBackwardOptions): Call<{ q: Tensor; k: Tensor; v: Tensor }> {
  const tensors: Record<string, Tensor> = { q, k, v, out, gradOut };
  if (options.outQ) tensors.outQ = options.outQ;
  if (options.outK) tensors.outK = options.outK;
  if (options.outV) tensors.outV = options.outV;
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
export function attentionBackward(q: Tensor, k: Tensor, v: Tensor, out: Tensor, gradOut: Tensor, options: AttentionBackwardOptions = {}): { q: Tensor; k: Tensor; v: Tensor } {
  return runSync(attentionBackwardCall(q, k, v, out, gradOut, options));
}
export function attentionBackwardAsync(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  out: Tensor,
  gradOut: Tensor,
  options: AttentionBackwardOptions & AsyncOptions = {},
): Promise<{ q: Tensor; k: Tensor; v: Tensor }> {
  return runAsync(attentionBackwardCall(q, k, v, out, gradOut, options), options);
}

// ---- silu(gate)·up ----

function siluMulBackwardCall(gate: Tensor, up: Tensor, gradOut: Tensor, options: { outGate?: Tensor; outUp?: Tensor }): Call<{ gate: Tensor; up: Tensor }> {
  const tensors: Record<string, Tensor> = { gate, up, gradOut };
  if (options.outGate) tensors.outGate = options.outGate;
  if (options.outUp) tensors.outUp = options.outUp;
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
export function siluMulBackward(gate: Tensor, up: Tensor, gradOut: Tensor, options: { outGate?: Tensor; outUp?: Tensor } = {}): { gate: Tensor; up: Tensor } {
  return runSync(siluMulBackwardCall(gate, up, gradOut, options));
}
export function siluMulBackwardAsync(
  gate: Tensor,
  up: Tensor,
  gradOut: Tensor,
  options: { outGate?: Tensor; outUp?: Tensor } & AsyncOptions = {},
): Promise<{ gate: Tensor; up: Tensor }> {
  return runAsync(siluMulBackwardCall(gate, up, gradOut, options), options);
}

// ---- elementwise activations ----

// The codes of ops.ts's unary ops, so both sides name an activation the same way.
const ACTIVATION_CODES = { relu: 5, silu: 6, gelu: 7, geluTanh: 8 } as const;
type Activation = keyof typeof ACTIVATION_CODES;

function activationBackwardCall(op: Activation, x: Tensor, gradOut: Tensor, options: { out?: Tensor }): Call<Tensor> {
  checkOneOf('op', op, Object.keys(ACTIVATION_CODES) as Activation[]);
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
export function activationBackward(op: 'relu' | 'silu' | 'gelu' | 'geluTanh', x: Tensor, gradOut: Tensor, options: { out?: Tensor } = {}): Tensor {
  return runSync(activationBackwardCall(op, x, gradOut, options));
}
export function activationBackwardAsync(
  op: 'relu' | 'silu' | 'gelu' | 'geluTanh',
  x: Tensor,
  gradOut: Tensor,
  options: { out?: Tensor } & AsyncOptions = {},
): Promise<Tensor> {
  return runAsync(activationBackwardCall(op, x, gradOut, options), options);
}

// ---- column sums (bias gradients) ----

function columnSumsCall(x: Tensor, out: Tensor): Call<Tensor> {
  const device = commonDevice({ x, out });
  const o = inPlace('out', out, 'columnSums accumulates into it');
  return { device, name: 'columnSums', args: [...f32('x', x).nativeArgs('x'), ...o.nativeArgs('out')], result: () => out };
}
/** out[c] += Σ_r x[r, c] over all leading dims of x (bias gradients); out [C] accumulated; returns out. */
export function columnSums(x: Tensor, out: Tensor): Tensor {
  return runSync(columnSumsCall(x, out));
}
export function columnSumsAsync(x: Tensor, out: Tensor, options: AsyncOptions = {}): Promise<Tensor> {
  return runAsync(columnSumsCall(x, out), options);
}

// ---- cross-entropy ----

function crossEntropyBackwardCall(logits: Tensor, targets: Tensor, gradNll: Tensor, options: { inPlace?: boolean; out?: Tensor }): Call<Tensor> {
  const tensors: Record<string, Tensor> = { logits, targets, gradNll };
  if (options.out) tensors.out = options.out;
  const device = commonDevice(tensors);
  const overwrite = checkBoolean('inPlace', options.inPlace ?? false);
  if (overwrite && options.out) invalid('options', 'either inPlace or out, not both', options);
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
export function crossEntropyBackward(logits: Tensor, targets: Tensor, gradNll: Tensor, options: { inPlace?: boolean; out?: Tensor } = {}): Tensor {
  return runSync(crossEntropyBackwardCall(logits, targets, gradNll, options));
}
export function crossEntropyBackwardAsync(
  logits: Tensor,
  targets: Tensor,
  gradNll: Tensor,
  options: { inPlace?: boolean; out?: Tensor } & AsyncOptions = {},
): Promise<Tensor> {
  return runAsync(crossEntropyBackwardCall(logits, targets, gradNll, options), options);
}

// ---- scatterAdd ----

function scatterAddBackwardCall(gradOut: Tensor, rows: Tensor, indices: Tensor, weights: Tensor, options: { outRows?: Tensor; outWeights?: Tensor }): Call<{ rows: Tensor; weights: Tensor }> {
  const tensors: Record<string, Tensor> = { gradOut, rows, indices, weights };
  if (options.outRows) tensors.outRows = options.outRows;
  if (options.outWeights) tensors.outWeights = options.outWeights;
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
export function scatterAddBackward(
  gradOut: Tensor,
  rows: Tensor,
  indices: Tensor,
  weights: Tensor,
  options: { outRows?: Tensor; outWeights?: Tensor } = {},
): { rows: Tensor; weights: Tensor } {
  return runSync(scatterAddBackwardCall(gradOut, rows, indices, weights, options));
}
export function scatterAddBackwardAsync(
  gradOut: Tensor,
  rows: Tensor,
  indices: Tensor,
  weights: Tensor,
  options: { outRows?: Tensor; outWeights?: Tensor } & AsyncOptions = {},
): Promise<{ rows: Tensor; weights: Tensor }> {
  return runAsync(scatterAddBackwardCall(gradOut, rows, indices, weights, options), options);
}

// ---- AdamW ----

export interface AdamwOptions {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** 1 for the first step (bias corrections 1 − β^step). */
  step: number;
}

function adamwStepCall(param: Tensor, grad: Tensor, m: Tensor, v: Tensor, options: AdamwOptions): Call<void> {
  const device = commonDevice({ param, grad, m, v });
  const p = inPlace('param', param, 'adamwStep updates it in place');
  const mm = inPlace('m', m, 'adamwStep updates it in place');
  const vv = inPlace('v', v, 'adamwStep updates it in place');
  if (typeof options !== 'object' || options === null) invalid('options', 'an object with lr, beta1, beta2, eps, weightDecay and step', options);
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
export function adamwStep(param: Tensor, grad: Tensor, m: Tensor, v: Tensor, options: AdamwOptions): void {
  runSync(adamwStepCall(param, grad, m, v, options));
}
export function adamwStepAsync(param: Tensor, grad: Tensor, m: Tensor, v: Tensor, options: AdamwOptions & AsyncOptions): Promise<void> {
  return runAsync(adamwStepCall(param, grad, m, v, options), options);
}
