// Gradients of the language-model loss of a decoder model with respect to every parameter.
//
// The loss of a batch of equal-length windows (each T + 1 tokens) is the mean over windows of each
// window's mean next-token negative log-likelihood, i.e. the mean over all B·T predictions.
//
// Two modes share the per-block tape code:
// - in memory (`lossAndGradients`): every parameter is a tensor in a map; one tape over the whole model.
// - streaming (`streamGradients`): parameters are read from the checkpoint one block at a time. The
//   forward pass keeps only the hidden states at block boundaries; the backward pass reloads each block,
//   recomputes its forward on a tape, backpropagates, and hands the block's parameter gradients to a
//   callback before loading the next. Memory ≈ one block + its activations + the boundary states.
//
// Mixture-of-experts models: both modes can add the router load-balancing loss (router-balance.ts) with
// a coefficient; its value is reported whenever the model has MoE layers. It couples all layers' routers
// (f counts over every layer), so it enters the backward pass as a gradient on each layer's router
// logits, computed once the forward pass has seen every layer.
import { InvalidArgumentError } from '../errors.js';
import { decoderBlock, type BlockNorm, type BlockOps, type BlockRouting } from '../models/block.js';
import { blockConfig, type MoeConfig } from '../models/config.js';
import type { DecoderModel } from '../models/decoder.js';
import { axpy } from '../tensor/ops.js';
import { Tensor, TensorArena } from '../tensor/tensor.js';
import { RouterBalance, type RouterDecision } from './router-balance.js';
import { Tape, type Variable } from './tape.js';

/** A batch of windows as the model sees them: inputs, targets and positions, each [B·T]. */
export interface Batch {
  inputs: Tensor;
  targets: Tensor;
  positions: Tensor;
  sequenceLength: number;
}

/** Windows of T + 1 tokens → inputs (first T) and targets (last T) of each, concatenated. */
export function makeBatch(windows: readonly Int32Array[]): Batch {
  if (windows.length === 0) throw new InvalidArgumentError('windows: at least one window is needed');
  const length = windows[0].length;
  if (length < 2) throw new InvalidArgumentError(`windows: a window needs at least 2 tokens, found ${length}`);
  const T = length - 1;
  const inputs = new Int32Array(windows.length * T);
  const targets = new Int32Array(windows.length * T);
  windows.forEach((w, i) => {
    if (w.length !== length) throw new InvalidArgumentError(`windows: window ${i} has ${w.length} tokens, window 0 has ${length}; all must be equal`);
    inputs.set(w.subarray(0, T), i * T);
    targets.set(w.subarray(1), i * T);
  });
  const positions = Int32Array.from({ length: inputs.length }, (_, i) => i % T);
  return { inputs: Tensor.fromTypedArray(inputs), targets: Tensor.fromTypedArray(targets), positions: Tensor.fromTypedArray(positions), sequenceLength: T };
}

/** Refuses windows of T positions that the model cannot attend over (its context, a sliding window). */
export function checkWindowFits(model: DecoderModel, T: number): void {
  const { maxPositions, slidingWindow } = model.config;
  if (T > maxPositions) throw new InvalidArgumentError(`windows of ${T} positions exceed the model's context of ${maxPositions} (max_position_embeddings)`);
  if (slidingWindow !== undefined && T > slidingWindow) {
    throw new InvalidArgumentError(`windows of ${T} positions exceed the model's sliding attention window of ${slidingWindow}, which sparq does not implement yet`);
  }
}

/** Looks up a parameter's variable by its checkpoint name; undefined when the model has none. */
export type ParameterLookup = (name: string) => Variable | undefined;

function required(lookup: ParameterLookup, name: string): Variable {
  const v = lookup(name);
  if (!v) throw new InvalidArgumentError(`parameter ${name} is missing`);
  return v;
}

/** Checkpoint names of block `index`'s parameters (weights, biases, norms) that the checkpoint has. */
export function blockParameterNames(model: DecoderModel, index: number): string[] {
  const { layout, config } = model;
  const prefix = layout.block(index);
  const bases = Object.values(model.linearRoles(index)).map((name) => prefix + name);
  bases.push(prefix + layout.attentionNorm, prefix + layout.mlpNorm);
  if (config.qkNorm && layout.qNorm && layout.kNorm) bases.push(prefix + layout.qNorm, prefix + layout.kNorm);
  return bases.flatMap((base) => [`${base}.weight`, `${base}.bias`]).filter((name) => model.checkpoint.has(name));
}

/** Names of the parameters outside the blocks: token (and position) embeddings, final norm, lm_head. */
export function outerParameterNames(model: DecoderModel): { embeddings: string[]; head: string[] } {
  const { layout } = model;
  const embeddings = [layout.embed, ...(layout.positions ? [layout.positions] : [])];
  const head = [`${layout.finalNorm}.weight`, `${layout.finalNorm}.bias`, headWeightName(model)].filter((n) => model.checkpoint.has(n) && n !== layout.embed);
  return { embeddings, head };
}

/** The output projection's tensor: lm_head, or the token embedding when tied. */
export function headWeightName(model: DecoderModel): string {
  return model.config.tiedEmbeddings ? model.layout.embed : model.layout.lmHead;
}

/** Hidden states of the batch's inputs: token embeddings (+ learned positions). */
export function embedOnTape(tape: Tape, model: DecoderModel, lookup: ParameterLookup, batch: Batch): Variable {
  const h = tape.embedding(required(lookup, model.layout.embed), batch.inputs);
  if (!model.layout.positions) return h;
  const offset = model.config.learnedPositionOffset ?? 0;
  const ids = Tensor.fromTypedArray(Int32Array.from(batch.positions.data as Int32Array, (p) => p + offset));
  return tape.add(h, tape.embedding(required(lookup, model.layout.positions), ids));
}

function normOnTape(tape: Tape, model: DecoderModel, lookup: ParameterLookup, base: string, x: Variable): Variable {
  return tape.norm(model.config.norm, x, required(lookup, `${base}.weight`), lookup(`${base}.bias`), model.config.normEps);
}

/** A MoE layer's router logits on the tape and the decision made from them. */
export interface RouterRecord {
  logits: Variable;
  decision: RouterDecision;
}

/** The block's ops recorded on a tape, with parameters looked up by checkpoint name. */
class TapeOps implements BlockOps<Variable> {
  private readonly prefix: string;
  private readonly roles: Record<string, string>;

  constructor(
    private readonly tape: Tape,
    private readonly model: DecoderModel,
    index: number,
    private readonly lookup: ParameterLookup,
    private readonly batch: Batch,
    private readonly routers?: RouterRecord[],
    /** Sees the input of each group of linears as it is recorded (see BlockOps.observe). */
    private readonly observer?: (group: string, x: Variable) => void,
  ) {
    this.prefix = model.layout.block(index);
    this.roles = model.linearRoles(index);
  }

  linear(role: string, x: Variable): Variable {
    const base = this.prefix + this.roles[role];
    return this.tape.linear(x, required(this.lookup, `${base}.weight`), this.lookup(`${base}.bias`));
  }

  norm(which: BlockNorm, x: Variable): Variable {
    const { layout } = this.model;
    const name = { attention: layout.attentionNorm, mlp: layout.mlpNorm, q: layout.qNorm, k: layout.kNorm }[which]!;
    return normOnTape(this.tape, this.model, this.lookup, this.prefix + name, x);
  }

  reshape(x: Variable, shape: number[]): Variable {
    return this.tape.reshape(x, shape);
  }

  rope(x: Variable): Variable {
    return this.tape.rope(x, this.batch.positions, this.model.invFreq!);
  }

  attention(q: Variable, k: Variable, v: Variable): Variable {
    return this.tape.attention(q, k, v, this.batch.sequenceLength);
  }

  siluMul(gate: Variable, up: Variable): Variable {
    return this.tape.siluMul(gate, up);
  }

  activation(kind: 'relu' | 'gelu', x: Variable): Variable {
    return this.tape.activation(kind, x);
  }

  residual(residual: Variable, x: Variable): Variable {
    return this.tape.add(residual, x);
  }

  route(logits: Variable, moe: MoeConfig): BlockRouting<Variable> {
    const routing = this.tape.route(logits, moe);
    this.routers?.push({ logits, decision: { probabilities: routing.probabilities!, chosen: routing.chosen! } });
    return routing;
  }

  sigmoidScale(x: Variable, gate: Variable): Variable {
    return this.tape.sigmoidScale(x, gate);
  }

  gather(x: Variable, tokens: Tensor): Variable {
    return this.tape.embedding(x, tokens);
  }

  combine(routing: BlockRouting<Variable>, outputs: (Variable | undefined)[], dim: number): Variable {
    return this.tape.combineExperts(routing, outputs, dim);
  }

  observe(group: string, x: Variable): void {
    this.observer?.(group, x);
  }
}

/**
 * One decoder block on the tape: models/block.ts, the same function the forward pass runs. A MoE block's
 * router logits and decision are appended to `routers` when given; `observe` sees each group of linears'
 * input as it is recorded.
 */
export function blockOnTape(
  tape: Tape,
  model: DecoderModel,
  index: number,
  lookup: ParameterLookup,
  h: Variable,
  batch: Batch,
  routers?: RouterRecord[],
  observe?: (group: string, x: Variable) => void,
): Promise<Variable> {
  return decoderBlock(blockConfig(model.config, index), new TapeOps(tape, model, index, lookup, batch, routers, observe), h, h.value.shape[0], index);
}

/** Options of the gradient passes. */
export interface GradientOptions {
  /**
   * Adds routerAuxLossCoef · (load-balancing loss) to the objective whose gradients are returned (MoE
   * models; 0 or absent: the language-model loss alone). The loss itself is reported either way.
   */
  routerAuxLossCoef?: number;
}

function checkCoefficient(options: GradientOptions): number {
  const c = options.routerAuxLossCoef ?? 0;
  if (!(c >= 0) || !Number.isFinite(c)) throw new InvalidArgumentError(`routerAuxLossCoef: expected a number ≥ 0, received ${String(options.routerAuxLossCoef)}`);
  return c;
}

/** Final norm, output projection and mean cross-entropy against the batch's targets. */
export function lossOnTape(tape: Tape, model: DecoderModel, lookup: ParameterLookup, h: Variable, batch: Batch): Variable {
  const x = normOnTape(tape, model, lookup, model.layout.finalNorm, h);
  return tape.crossEntropyMean(tape.linear(x, required(lookup, headWeightName(model))), batch.targets);
}

export interface GradientResult {
  /** The batch's mean next-token NLL. */
  loss: number;
  /** The router load-balancing loss (unscaled), for models with MoE layers. */
  routerAuxLoss?: number;
  /** d loss / d parameter by checkpoint name (zeros for parameters the batch did not reach, e.g. an idle expert). */
  gradients: Map<string, Tensor>;
}

/** In-memory mode: `parameters` holds every parameter (f32) by checkpoint name; one tape over the model. */
export async function lossAndGradients(model: DecoderModel, parameters: ReadonlyMap<string, Tensor>, batch: Batch, options: GradientOptions = {}): Promise<GradientResult> {
  checkWindowFits(model, batch.sequenceLength);
  const coefficient = checkCoefficient(options);
  const routers: RouterRecord[] = [];
  const tape = new Tape();
  const variables = new Map<string, Variable>();
  const lookup: ParameterLookup = (name) => {
    let v = variables.get(name);
    if (!v) {
      const value = parameters.get(name);
      if (!value) return undefined;
      v = tape.parameter(value);
      variables.set(name, v);
    }
    return v;
  };
  let h = embedOnTape(tape, model, lookup, batch);
  for (let i = 0; i < model.config.layers; ++i) h = await blockOnTape(tape, model, i, lookup, h, batch, routers);
  const loss = lossOnTape(tape, model, lookup, h, batch);
  const balance = model.config.moe ? new RouterBalance(model.config.moe.experts) : undefined;
  for (const r of routers) balance!.add(r.decision);
  const seeds = coefficient > 0 && balance ? routers.map((r) => [r.logits, balance.logitsGradient(r.decision, coefficient)] as const) : [];
  tape.backward(loss, undefined, seeds);
  const gradients = new Map<string, Tensor>();
  for (const [name, value] of parameters) gradients.set(name, variables.get(name)?.grad ?? Tensor.zeros(value.shape));
  return { loss: (loss.value.data as Float32Array)[0], gradients, ...(balance ? { routerAuxLoss: balance.value() } : {}) };
}

/** Which part of the model a streamed set of gradients belongs to. */
export type ModelPart = { kind: 'head' } | { kind: 'block'; index: number } | { kind: 'embeddings' };

export interface StreamGradientsOptions {
  /**
   * Receives each part's gradients (checkpoint name → f32 tensor) once, in the order head, blocks
   * L−1…0, embeddings. A block's tensors are lent: their memory is reused for the next block once the
   * callback (or the promise it returns) is done, so copy (`clone()`) what you keep.
   */
  onGradients: (part: ModelPart, gradients: Map<string, Tensor>) => void | Promise<void>;
  /**
   * false: only gradients with respect to activations are computed (the blocks' parameters are constants,
   * `onGradients` is never called): what `onInputGradient` needs, at about half the backward's cost.
   */
  parameterGradients?: boolean;
  /**
   * Receives, during each block's backward, the input of every group of linears (names as in
   * inputGroups: attention.in, expert.3.out, …) with the loss's gradient with respect to it. Both are
   * lent for the call only.
   */
  onInputGradient?: (block: number, group: string, input: Tensor, grad: Tensor) => void;
  /** Called after each block's forward (phase 'forward') and backward (phase 'backward'). */
  onProgress?: (phase: 'forward' | 'backward', block: number, blocks: number) => void;
  /** Receives the router load-balancing loss (unscaled) once the forward pass is done (MoE models). */
  onRouterAuxLoss?: (value: number) => void;
  signal?: AbortSignal;
}

/** Streaming mode: see the file comment. Returns the batch's loss. */
export async function streamGradients(model: DecoderModel, batch: Batch, options: StreamGradientsOptions & GradientOptions): Promise<number> {
  checkWindowFits(model, batch.sequenceLength);
  const coefficient = checkCoefficient(options);
  const balance = model.config.moe ? new RouterBalance(model.config.moe.experts) : undefined;
  // Each phase is its own function, so everything a phase loaded is unreachable when it returns.
  // Every block has the same shapes, so one arena serves them all: a block's activations and gradients
  // come from it and go back once the block is done (see TensorArena); what crosses blocks is cloned
  // out of it. The head and the embeddings are one-off shapes and allocate as usual.
  const arena = new TensorArena();
  const layers = model.config.layers;
  const boundaries = [await embeddingsForward(model, batch)];
  for (let i = 0; i < layers; ++i) {
    options.signal?.throwIfAborted();
    boundaries.push(await blockForward(model, i, boundaries[i], batch, arena, balance));
    options.onProgress?.('forward', i + 1, layers);
  }
  if (balance) options.onRouterAuxLoss?.(balance.value());
  const routerSeed = coefficient > 0 && balance ? (decision: RouterDecision) => balance.logitsGradient(decision, coefficient) : undefined;
  const head = await headBackward(model, boundaries.pop()!, batch, options);
  let grad = head.grad;
  for (let i = layers - 1; i >= 0; --i) {
    options.signal?.throwIfAborted();
    grad = await blockBackward(model, i, boundaries.pop()!, grad, batch, arena, options, routerSeed);
    options.onProgress?.('backward', layers - i, layers);
  }
  if (options.parameterGradients !== false) await embeddingsBackward(model, grad, head.tiedGradient, batch, options);
  return head.loss;
}

/** Reads parameters by name onto a tape: as parameters (gradients wanted) or constants. */
async function loadVariables(model: DecoderModel, tape: Tape, names: string[], trainable: boolean): Promise<Map<string, Variable>> {
  const variables = new Map<string, Variable>();
  for (const name of names) {
    const value = await model.checkpoint.read(name, { dtype: 'f32' });
    variables.set(name, trainable ? tape.parameter(value) : tape.constant(value));
  }
  return variables;
}

/** Every variable's gradient (zeros where none reached it), optionally leaving one out. */
function gradientsOf(variables: Map<string, Variable>, skip?: string): Map<string, Tensor> {
  const grads = new Map<string, Tensor>();
  for (const [name, v] of variables) if (name !== skip) grads.set(name, v.grad ?? Tensor.zeros(v.value.shape));
  return grads;
}

async function embeddingsForward(model: DecoderModel, batch: Batch): Promise<Tensor> {
  const tape = new Tape();
  const variables = await loadVariables(model, tape, outerParameterNames(model).embeddings, false);
  return embedOnTape(tape, model, (name) => variables.get(name), batch).value;
}

/** Block `index` forward (no gradients); its router decision, if any, goes into `balance`. */
async function blockForward(model: DecoderModel, index: number, input: Tensor, batch: Batch, arena: TensorArena, balance: RouterBalance | undefined): Promise<Tensor> {
  const tape = new Tape();
  const variables = await loadVariables(model, tape, blockParameterNames(model, index), false);
  const routers: RouterRecord[] = [];
  const output = (await arena.run(() => blockOnTape(tape, model, index, (name) => variables.get(name), tape.constant(input), batch, routers))).value.clone();
  for (const r of routers) balance?.add(r.decision);
  arena.recycle();
  return output;
}

/** The loss, its gradient with respect to the last hidden states, and the head's parameter gradients. */
async function headBackward(model: DecoderModel, last: Tensor, batch: Batch, options: StreamGradientsOptions): Promise<{ loss: number; grad: Tensor; tiedGradient?: Tensor }> {
  const headWeight = headWeightName(model);
  const tied = headWeight === model.layout.embed;
  const names = outerParameterNames(model).head;
  const tape = new Tape();
  const parameters = options.parameterGradients !== false;
  const variables = await loadVariables(model, tape, tied ? [...names, headWeight] : names, parameters);
  const h = tape.parameter(last);
  const loss = lossOnTape(tape, model, (name) => variables.get(name), h, batch);
  tape.backward(loss);
  if (parameters) await options.onGradients({ kind: 'head' }, gradientsOf(variables, tied ? headWeight : undefined));
  return { loss: (loss.value.data as Float32Array)[0], grad: h.grad!, tiedGradient: tied && parameters ? variables.get(headWeight)!.grad : undefined };
}

/** Recomputes block `index` on a tape from its input, backpropagates `seed`; returns the input's gradient. */
async function blockBackward(
  model: DecoderModel,
  index: number,
  input: Tensor,
  seed: Tensor,
  batch: Batch,
  arena: TensorArena,
  options: StreamGradientsOptions,
  routerSeed: ((decision: RouterDecision) => Tensor) | undefined,
): Promise<Tensor> {
  const tape = new Tape();
  const parameters = options.parameterGradients !== false;
  const variables = await loadVariables(model, tape, blockParameterNames(model, index), parameters);
  const h = tape.parameter(input);
  const watch = options.onInputGradient;
  const observe = watch ? (group: string, x: Variable) => tape.watch(x, (value, grad) => watch(index, group, value, grad)) : undefined;
  await arena.run(async () => {
    const routers: RouterRecord[] = [];
    const output = await blockOnTape(tape, model, index, (name) => variables.get(name), h, batch, routers, observe);
    tape.backward(output, seed, routerSeed ? routers.map((r) => [r.logits, routerSeed(r.decision)] as const) : []);
  });
  const grad = h.grad!.clone();
  if (parameters) await options.onGradients({ kind: 'block', index }, gradientsOf(variables));
  arena.recycle();
  return grad;
}

/** The embeddings' gradients (plus the head's share of a tied table). */
async function embeddingsBackward(model: DecoderModel, seed: Tensor, tiedGradient: Tensor | undefined, batch: Batch, options: StreamGradientsOptions): Promise<void> {
  const tape = new Tape();
  const variables = await loadVariables(model, tape, outerParameterNames(model).embeddings, true);
  tape.backward(embedOnTape(tape, model, (name) => variables.get(name), batch), seed);
  const grads = gradientsOf(variables);
  if (tiedGradient) axpy(1, tiedGradient, grads.get(model.layout.embed)!);
  await options.onGradients({ kind: 'embeddings' }, grads);
}
