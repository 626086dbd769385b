// Elsa (Lee, Jang, Lee, Alistarh & Lee, "The Unseen Frontier: Pushing the Limits of LLM Sparsity with
// Surrogate-Free ADMM", ICLR 2026): prune by minimising the language model's own loss under the sparsity
// constraint, instead of each layer's reconstruction error.
//   min_x f(x)  s.t.  x ∈ S          f = mean next-token NLL on the calibration (training) text
//   split x = z with z ∈ S, scaled dual u; augmented Lagrangian f(x) + (λ/2)‖x − z + u‖²
//   start:                  z = P_S(x), u = 0           (x: the model as given — dense, or already pruned)
//   x-step, every step t:   g = clip(∇f(x)) + λ(x − z + u)      (clipping by global norm, task gradient only)
//                           x ← Adam(x, g)                       (so the pull towards z is preconditioned too)
//   every `interval` steps: z ← P_S(x + u);  u ← u + x − z
//                           report ‖x − z‖/‖x‖ (the constraint violation; stays high when λ is too weak)
//                           λ ← λ(t); when λ changes, u ← u·λ_old/λ_new (the unscaled dual λu is kept)
//   end:                    x ← P_S(x), exactly the pattern
// P_S, per weight matrix: keep the round((1 − p)·out·in) largest scores, score = |x + u| ('magnitude') or
// v ⊙ (x + u)² with Adam's second moment v ('objective', the paper's objective-aware projection: v is a
// diagonal estimate of the loss curvature); N:M keeps the N best of every M consecutive inputs of a row.
// Only the recipe's linears (decoder-block linears) are constrained; with `train: 'all'` (default)
// embeddings, norms and the LM head are trained too, without a constraint, as the paper trains the whole
// model; `train: 'linears'` freezes them.
// Choices the paper leaves open, all options: the first z uses |x| (v is still zero); the end projection
// uses the same score as the z-step (with u = 0); one batch = `batch` windows of `seqLen` tokens at seeded
// random offsets of the text, drawn afresh for every step (so a resumed run sees the same batches);
// constant learning rate, no weight decay, β = (0.9, 0.999), ε = 1e-8 (Adam's defaults); λ schedules
// run from `lambda` to `lambdaFinal` (linear or cosine in t/steps), evaluated at each z-step.
// Defaults are for the small models sparq ships and measures (bench/elsa.ts, grid and table at 90%):
// λ cosine from 0.5 to 5 (10 λ), lr 1e-3, interval 64, 400 steps of 8 × 256 tokens, clip 1. With Adam every
// weight moves about lr per step whatever λ is, while u grows by x − z per interval: lr·interval must be a
// fair fraction of the weights' size or x never reaches S (lr 1e-3 with interval 16 and a constant λ left
// ‖x − z‖/‖x‖ near 0.6 after 400 steps on stories260K, whose weights are ~0.1). A larger lr (4e-3,
// interval 16) did as well on stories260K but let sotu-llama learn its training text rather than keep the
// language (perplexity 135 against 53 at 90%); the rising λ brings x onto S before the last projection
// (violation under 0.01 instead of ~0.1). The paper's 7B recipe (lr 2e-4, λ 0.01, interval 32, 4096 steps
// of 8 × 2048) leaves small models far from S, and its last projection then destroys them.
// Elsa-L (`splitStorage: 'bf16' | 'fp8'`, `momentBits: 8`): z and u, and Adam's m and v, stored small
// (elsa-state.ts) and decoded one tensor at a time for each update.
// Budget: a short training run — steps × batch × seqLen tokens (409,600 by default), not 128 windows.
import { freemem, totalmem } from 'node:os';
import { lossAndGradients, makeBatch } from '../autograd/decoder.js';
import { AbortError, AllocationError, InvalidArgumentError, NonFiniteError } from '../errors.js';
import { sampleWindows } from '../pipeline/calibration.js';
import { applyMaskAsync, axpyAsync, dotAsync, nmMaskAsync, topkMaskAsync, unaryAsync } from '../tensor/ops.js';
import { Tensor, TensorArena } from '../tensor/tensor.js';
import { clipGradients } from '../train/optimizer.js';
import { checkInteger, checkNumber, checkOneOf } from '../validate.js';
import { MOMENT_BITS, MOMENT_BYTES, moments, SPLIT_BYTES, SPLIT_STORAGE, storedTensor, type AdamSettings, type MomentBits, type Moments, type SplitStorage, type StoredTensor } from './elsa-state.js';
import { rejectUnknownOptions, type CompressionMethod, type MethodCheckpoint, type ModelRequest, type ModelResult } from './method.js';
import { formatPattern, keptCount, type SparsityPattern } from './pattern.js';

export const PROJECTIONS = ['magnitude', 'objective'] as const;
export const LAMBDA_SCHEDULES = ['constant', 'linear', 'cosine'] as const;

export interface ElsaOptions {
  steps: number;
  batch: number;
  /** Tokens per window (each window gives seqLen − 1 predictions); --seq-len overrides it. */
  seqLen: number;
  lr: number;
  /** λ, the penalty of the augmented Lagrangian (the start of a schedule). */
  lambda: number;
  /** Where a linear or cosine schedule ends (default: 10 × lambda; a constant schedule ignores it). */
  lambdaFinal: number;
  lambdaSchedule: (typeof LAMBDA_SCHEDULES)[number];
  /** Steps between z/u updates. */
  interval: number;
  projection: (typeof PROJECTIONS)[number];
  /** Global-norm clipping of the task gradient (0: none). */
  gradClip: number;
  weightDecay: number;
  beta1: number;
  beta2: number;
  eps: number;
  /** Train every parameter ('all') or only the constrained linears ('linears'). */
  train: 'all' | 'linears';
  /** Elsa-L: how z and u are stored. */
  splitStorage: SplitStorage;
  /** Elsa-L: Adam's moments in 32 or 8 bits. */
  momentBits: MomentBits;
  /** Save a resumable checkpoint every this many z-steps (0: never). */
  checkpointIntervals: number;
  /** Refuse to start when the estimated peak exceeds this many bytes (0: the machine's memory). */
  memoryLimit: number;
}

export const ELSA_DEFAULTS: ElsaOptions = {
  steps: 400,
  batch: 8,
  seqLen: 256,
  lr: 1e-3,
  lambda: 0.5,
  lambdaFinal: NaN,
  lambdaSchedule: 'cosine',
  interval: 64,
  projection: 'magnitude',
  gradClip: 1,
  weightDecay: 0,
  beta1: 0.9,
  beta2: 0.999,
  eps: 1e-8,
  train: 'all',
  splitStorage: 'f32',
  momentBits: 32,
  checkpointIntervals: 1,
  memoryLimit: 0,
};

/** λ at step t of `steps` (its schedule from lambda to lambdaFinal). */
export function lambdaAt(o: ElsaOptions, t: number): number {
  const s = Math.min(1, t / o.steps);
  if (o.lambdaSchedule === 'linear') return o.lambda + (o.lambdaFinal - o.lambda) * s;
  if (o.lambdaSchedule === 'cosine') return o.lambda + (o.lambdaFinal - o.lambda) * 0.5 * (1 - Math.cos(Math.PI * s));
  return o.lambda;
}

function positive(where: string, name: string, value: unknown): number {
  const n = checkNumber(`${where}.${name}`, value);
  if (!(n > 0)) throw new InvalidArgumentError(`${where}.${name}: must be > 0, got ${n}`);
  return n;
}

function parseElsaOptions(raw: Record<string, unknown>, where: string): ElsaOptions {
  rejectUnknownOptions(raw, Object.keys(ELSA_DEFAULTS), where, 'elsa');
  const o = { ...ELSA_DEFAULTS, ...raw } as ElsaOptions;
  const beta = (name: 'beta1' | 'beta2') => {
    const b = checkNumber(`${where}.${name}`, o[name], { min: 0 });
    if (b >= 1) throw new InvalidArgumentError(`${where}.${name}: must be in [0, 1), got ${b}`);
    return b;
  };
  const lambda = positive(where, 'lambda', o.lambda);
  return {
    steps: checkInteger(`${where}.steps`, o.steps, 1),
    batch: checkInteger(`${where}.batch`, o.batch, 1),
    seqLen: checkInteger(`${where}.seqLen`, o.seqLen, 2),
    lr: positive(where, 'lr', o.lr),
    lambda,
    // Unset, a schedule ends at 10 λ (the default 0.5 → 5), so x is pulled onto S by the last projection.
    lambdaFinal: Number.isNaN(o.lambdaFinal) ? (o.lambdaSchedule === 'constant' ? lambda : 10 * lambda) : positive(where, 'lambdaFinal', o.lambdaFinal),
    lambdaSchedule: checkOneOf(`${where}.lambdaSchedule`, o.lambdaSchedule, LAMBDA_SCHEDULES),
    interval: checkInteger(`${where}.interval`, o.interval, 1),
    projection: checkOneOf(`${where}.projection`, o.projection, PROJECTIONS),
    gradClip: checkNumber(`${where}.gradClip`, o.gradClip, { min: 0 }),
    weightDecay: checkNumber(`${where}.weightDecay`, o.weightDecay, { min: 0 }),
    beta1: beta('beta1'),
    beta2: beta('beta2'),
    eps: checkNumber(`${where}.eps`, o.eps, { min: 0 }),
    train: checkOneOf(`${where}.train`, o.train, ['all', 'linears'] as const),
    splitStorage: checkOneOf(`${where}.splitStorage`, o.splitStorage, SPLIT_STORAGE),
    momentBits: checkOneOf(`${where}.momentBits`, String(o.momentBits), MOMENT_BITS.map(String)) === '8' ? 8 : 32,
    checkpointIntervals: checkInteger(`${where}.checkpointIntervals`, o.checkpointIntervals, 0),
    memoryLimit: checkNumber(`${where}.memoryLimit`, o.memoryLimit, { min: 0 }),
  };
}

/** One constrained linear: its weight x (a model parameter), split z, scaled dual u and pattern. */
interface Split {
  module: string;
  weight: string;
  pattern: SparsityPattern;
  z: StoredTensor;
  u: StoredTensor;
}

/** One interval's line of the log. */
export interface ElsaLogEntry {
  step: number;
  /** Mean task loss over the interval's steps. */
  loss: number;
  /** ‖x − z‖/‖x‖ over all constrained weights, after the z-step. */
  violation: number;
  lambda: number;
  seconds: number;
}

/**
 * Estimated peak bytes: per trained entry x, its gradient and two moments; per constrained entry z and u;
 * plus the activations of one step (the tape keeps about 16 hidden-sized and 4 MLP-sized values per token
 * and layer, and the logits with their gradient).
 */
export function estimateElsaMemory(request: Pick<ModelRequest<unknown>, 'model' | 'parameters' | 'linears'>, o: ElsaOptions, seqLen: number): { bytes: number; weights: number; copies: number } {
  const constrained = new Set(request.linears.map((l) => l.weight));
  let trained = 0;
  let split = 0;
  let all = 0;
  for (const [name, t] of request.parameters) {
    all += t.numel;
    if (constrained.has(name)) split += t.numel;
    if (o.train === 'all' || constrained.has(name)) trained += t.numel;
  }
  const c = request.model.config;
  const tokens = o.batch * seqLen;
  const activations = 4 * tokens * (c.layers * (16 * c.hiddenSize + 4 * c.intermediateSize) + 3 * c.vocabSize);
  const bytes = 4 * all + trained * (4 + MOMENT_BYTES[o.momentBits]) + split * 2 * SPLIT_BYTES[o.splitStorage] + activations;
  return { bytes, weights: 4 * all, copies: (bytes - activations) / (4 * all) };
}

/** The windows of step t (from 1): offsets drawn from (seed, t), so a resumed run draws the same ones. */
export function elsaWindows(tokens: Int32Array, batch: number, seqLen: number, seed: number, step: number): Int32Array[] {
  return sampleWindows(tokens, { nsamples: batch, seqLen, seed: (seed + Math.imul(step, 0x9e3779b9)) >>> 0 });
}

/**
 * out ← P_S(source), the projection of the file comment (`out` may be `source`: projected in place). The
 * scores and the mask go to scratch buffers of at least source.numel entries: a run projects every linear
 * at every z-step, and fresh score, mask and result arrays each time would leave the garbage collector
 * several bytes per weight to catch up on, which shows in the peak memory.
 */
async function project(source: Tensor, pattern: SparsityPattern, secondMoment: Tensor | undefined, scratch: ProjectionScratch, out: Tensor, signal?: AbortSignal): Promise<void> {
  const s = source.data as Float32Array;
  const score = Tensor.fromTypedArray(scratch.scores.subarray(0, source.numel), source.shape);
  const mask = Tensor.fromTypedArray(scratch.mask.subarray(0, source.numel), source.shape);
  const sc = score.data as Float32Array;
  if (secondMoment) {
    const v = secondMoment.data as Float32Array;
    for (let i = 0; i < s.length; ++i) sc[i] = v[i] * s[i] * s[i];
  } else {
    sc.set(s);
    await unaryAsync('square', score, { inPlace: true, signal }); // the same order as |x + u|
  }
  if (pattern.kind === 'nm') await nmMaskAsync(score, pattern.n, pattern.m, { out: mask, signal });
  else await topkMaskAsync(score.reshape([1, -1]), keptCount(pattern, source.numel), { out: mask.reshape([1, -1]), signal });
  if (out !== source) (out.data as Float32Array).set(s);
  await applyMaskAsync(out, mask, { inPlace: true, signal });
}

interface ProjectionScratch {
  scores: Float32Array;
  mask: Uint8Array;
}

function formatMiB(bytes: number): string {
  return bytes >= 2 ** 30 ? `${(bytes / 2 ** 30).toFixed(2)} GiB` : `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

/** The whole run: see the file comment. */
async function runElsa(request: ModelRequest<ElsaOptions>): Promise<ModelResult> {
  const o = request.options;
  const { model, parameters, signal } = request;
  const seqLen = Math.min(request.seqLen ?? o.seqLen, model.config.maxPositions + 1, (model.config.slidingWindow ?? Infinity) + 1);
  if (request.tokens.length < seqLen) {
    throw new InvalidArgumentError(`elsa: the calibration text has ${request.tokens.length} tokens; a window needs ${seqLen} (give more text or lower --seq-len)`);
  }
  const estimate = estimateElsaMemory(request, o, seqLen);
  const limit = o.memoryLimit > 0 ? o.memoryLimit : Math.max(totalmem(), freemem());
  if (estimate.bytes > limit) {
    throw new AllocationError(
      `elsa: this run needs about ${formatMiB(estimate.bytes)} (${estimate.copies.toFixed(1)} copies of the ${formatMiB(estimate.weights)} of weights, plus the activations of ${o.batch} × ${seqLen} tokens), ` +
        `more than the ${formatMiB(limit)} available${o.memoryLimit > 0 ? ' (memoryLimit)' : ''}; use Elsa-L (splitStorage fp8, momentBits 8), a smaller --batch or --seq-len, or a layer-wise method`,
    );
  }

  const adam: AdamSettings = { lr: o.lr, beta1: o.beta1, beta2: o.beta2, eps: o.eps, weightDecay: o.weightDecay };
  const constrained = new Set(request.linears.map((l) => l.weight));
  const trained = [...parameters.keys()].filter((name) => o.train === 'all' || constrained.has(name));
  const state = new Map<string, Moments>(trained.map((name) => [name, moments(o.momentBits, [...parameters.get(name)!.shape])]));
  // One scratch buffer, as large as the largest linear: the difference x − z + u in the x-step, the
  // projection's scores in the z-step.
  const largest = Math.max(0, ...request.linears.map((l) => parameters.get(l.weight)!.numel));
  const scratch = new Float32Array(largest);
  const projection: ProjectionScratch = { scores: scratch, mask: new Uint8Array(largest) };
  const splits: Split[] = [];
  for (const l of request.linears) {
    const x = parameters.get(l.weight)!;
    // z = P_S(x), u = 0.
    const z = Tensor.zeros(x.shape);
    await project(x, l.pattern, undefined, projection, z, signal);
    splits.push({ module: l.name, weight: l.weight, pattern: l.pattern, z: storedTensor(o.splitStorage, z), u: storedTensor(o.splitStorage, Tensor.zeros(x.shape)) });
  }

  let t = 0;
  let lambda = lambdaAt(o, 0);
  let log: ElsaLogEntry[] = [];
  let secondsBefore = 0;
  if (request.resume) {
    const get = (name: string) => {
      const tensor = request.resume!.tensors.get(name);
      if (!tensor) throw new InvalidArgumentError(`elsa: the checkpoint of the interrupted run has no tensor ${name}; start over with --overwrite`);
      return tensor;
    };
    for (const name of trained) {
      (parameters.get(name)!.data as Float32Array).set(get(`x.${name}`).data as Float32Array);
      state.get(name)!.restore(get, `adam.${name}`);
    }
    for (const s of splits) {
      s.z.restore(get, `z.${s.weight}`);
      s.u.restore(get, `u.${s.weight}`);
    }
    const meta = request.resume.meta as { step: number; lambda: number; log: ElsaLogEntry[]; seconds: number };
    t = meta.step;
    lambda = meta.lambda;
    log = meta.log;
    secondsBefore = meta.seconds;
  }

  const tokensPerStep = o.batch * (seqLen - 1);
  // A run that reads its text more than once fits that text rather than the language (sotu-llama on its
  // 1 MB calibration text: README, Elsa results): say so before the first step.
  const tokensRead = o.steps * o.batch * seqLen;
  const passes = tokensRead / request.tokens.length;
  if (passes > 1 && t === 0) {
    request.onProgress?.({
      step: 0,
      steps: o.steps,
      stage: 'training text',
      line: `note: the training text has ${request.tokens.length.toLocaleString('en-US')} tokens and this run reads ${tokensRead.toLocaleString('en-US')} (${passes.toFixed(1)} passes); Elsa may learn that text rather than the language — a larger --calib text (the model's training distribution) avoids it`,
    });
  }
  const arena = new TensorArena();
  const started = performance.now();
  const seconds = () => secondsBefore + (performance.now() - started) / 1000;
  let intervalLoss = 0;
  let intervalSteps = 0;
  while (t < o.steps) {
    if (signal?.aborted) throw new AbortError(`elsa: interrupted at step ${t + 1} of ${o.steps}`);
    const windows = elsaWindows(request.tokens, o.batch, seqLen, request.seed, t + 1);
    const { loss, gradients } = await arena.run(() => lossAndGradients(model, parameters, makeBatch(windows)));
    if (!Number.isFinite(loss)) throw new NonFiniteError(`elsa: the loss became ${loss} at step ${t + 1} of ${o.steps}; nothing was written. Lower the learning rate (lr ${o.lr}) or λ (${lambda}), or set gradClip`);
    const taskGradients = new Map(trained.map((name) => [name, gradients.get(name)!]));
    if (o.gradClip > 0) clipGradients(taskGradients, o.gradClip);
    // x-step: g += λ(x − z + u) on the constrained weights, then Adam on every trained tensor. The
    // difference is formed first (in one scratch buffer shared by all weights): adding λx and then −λz
    // to g would lose a small task gradient to f32 rounding where x = z.
    for (const s of splits) {
      const x = parameters.get(s.weight)!;
      const d = Tensor.fromTypedArray(scratch.subarray(0, x.numel), x.shape);
      (d.data as Float32Array).set(x.data as Float32Array);
      await axpyAsync(-1, s.z.read('z'), d, { signal });
      await axpyAsync(1, s.u.read('u'), d, { signal });
      await axpyAsync(lambda, d, taskGradients.get(s.weight)!, { signal });
    }
    t += 1;
    for (const name of trained) await state.get(name)!.step(parameters.get(name)!, taskGradients.get(name)!, t, adam, signal);
    arena.recycle();
    intervalLoss += loss;
    intervalSteps += 1;

    if (t % o.interval === 0 || t === o.steps) {
      // z-step and u-step, then λ's schedule.
      let differenceSquares = 0;
      let weightSquares = 0;
      const newLambda = lambdaAt(o, t);
      for (const s of splits) {
        const x = parameters.get(s.weight)!;
        const u = s.u.read('u');
        await axpyAsync(1, x, u, { signal }); // u ← x + u
        const z = s.z.read('z'); // overwritten: z ← P_S(x + u)
        await project(u, s.pattern, o.projection === 'objective' ? state.get(s.weight)?.secondMoment() : undefined, projection, z, signal);
        await axpyAsync(-1, z, u, { signal }); // u ← (u + x) − z
        const xx = await dotAsync(x, x, { signal });
        differenceSquares += xx - 2 * (await dotAsync(x, z, { signal })) + (await dotAsync(z, z, { signal }));
        weightSquares += xx;
        if (newLambda !== lambda) await unaryAsync('scale', u, { a: lambda / newLambda, inPlace: true, signal });
        s.z.write(z);
        s.u.write(u);
      }
      const entry: ElsaLogEntry = { step: t, loss: intervalLoss / intervalSteps, violation: Math.sqrt(Math.max(0, differenceSquares) / weightSquares), lambda, seconds: seconds() };
      log.push(entry);
      lambda = newLambda;
      intervalLoss = 0;
      intervalSteps = 0;
      const line = `step ${t}/${o.steps}: loss ${entry.loss.toFixed(4)}, ‖x − z‖/‖x‖ ${entry.violation.toExponential(2)}, λ ${entry.lambda.toPrecision(3)}, ${(t * tokensPerStep).toLocaleString('en-US')} tokens, ${entry.seconds.toFixed(1)} s`;
      request.onProgress?.({ step: t, steps: o.steps, stage: `loss ${entry.loss.toFixed(3)} viol ${entry.violation.toExponential(1)}`, line });
      if (o.checkpointIntervals > 0 && t < o.steps && log.length % o.checkpointIntervals === 0) {
        await request.saveCheckpoint(checkpointOf(parameters, trained, state, splits, { step: t, lambda, log, seconds: seconds() }));
      }
    } else {
      request.onProgress?.({ step: t, steps: o.steps, stage: `loss ${loss.toFixed(3)}` });
    }
    await new Promise<void>((resolve) => setImmediate(resolve));
  }

  // End: hard projection of x onto S.
  const linearDetails = new Map<string, Record<string, number | string | boolean>>();
  for (const s of splits) {
    const x = parameters.get(s.weight)!;
    const before = await dotAsync(x, x, { signal });
    await project(x, s.pattern, o.projection === 'objective' ? state.get(s.weight)?.secondMoment() : undefined, projection, x, signal);
    const after = await dotAsync(x, x, { signal });
    linearDetails.set(s.module, { projectedAway: before > 0 ? Math.sqrt(Math.max(0, before - after) / before) : 0 });
  }
  const total = seconds();
  const last = log[log.length - 1];
  return {
    changed: trained,
    linearDetails,
    details: {
      method: 'elsa',
      steps: o.steps,
      batch: o.batch,
      seqLen,
      tokensPerStep,
      tokensSeen: o.steps * tokensPerStep,
      textTokens: request.tokens.length,
      passes,
      seconds: total,
      stepsPerSecond: o.steps / total,
      finalLoss: last.loss,
      finalViolation: last.violation,
      patterns: [...new Set(splits.map((s) => formatPattern(s.pattern)))],
      estimatedPeakBytes: estimate.bytes,
      splitStorage: o.splitStorage,
      momentBits: o.momentBits,
      log,
    },
  };
}

function checkpointOf(parameters: Map<string, Tensor>, trained: string[], state: Map<string, Moments>, splits: Split[], meta: Record<string, unknown>): MethodCheckpoint {
  const tensors = new Map<string, Tensor>();
  for (const name of trained) {
    tensors.set(`x.${name}`, parameters.get(name)!);
    for (const [key, t] of state.get(name)!.tensors(`adam.${name}`)) tensors.set(key, t);
  }
  for (const s of splits) {
    for (const [key, t] of s.z.tensors(`z.${s.weight}`)) tensors.set(key, t);
    for (const [key, t] of s.u.tensors(`u.${s.weight}`)) tensors.set(key, t);
  }
  return { tensors, meta };
}

export const elsa: CompressionMethod<ElsaOptions> = {
  name: 'elsa',
  summary: 'ADMM on the model’s own loss: Adam steps pulled towards a sparse split (Elsa; Elsa-L with small state)',
  needs: { trainingText: true },
  scope: 'model',
  prunes: true,
  requiresSparsity: true,
  quantizes: () => false,
  parseOptions: parseElsaOptions,
  compressModel: runElsa,
};
