// The model-level statistics pass for expert-pruning methods (compress/expert-pruning.ts): per routed
// expert of every MoE layer, over the calibration tokens routed to it, Σ_t a_j(t)² and (when a method
// needs gradients) Σ_t (∂L/∂a_j(t))², where a_j(t) is atom j's activation (the down projection's input)
// and L the summed next-token NLL of the calibration windows.
//   - forward only: the windows' hidden states run block by block (one block loaded at a time), each
//     expert's activations seen as the block computes them;
//   - with gradients: one streamed forward + backward (autograd/decoder.ts streamGradients, activation
//     gradients only — no parameter gradients), each expert's activation and its gradient seen during the
//     block's backward.
// Memory: one block + the boundary hidden states + 2 float64 accumulators per atom; never a d×d matrix.
import { makeBatch, streamGradients } from '../autograd/decoder.js';
import type { ExpertStatistics } from '../compress/expert-pruning.js';
import { InvalidArgumentError } from '../errors.js';
import type { DecoderModel } from '../models/decoder.js';
import { Tensor, TensorArena } from '../tensor/tensor.js';

/** A block's routed experts: the MoE layers of a model and each expert's width, from the checkpoint. */
export interface MoeLayer {
  layer: number;
  /** Width (atoms) of each routed expert. */
  widths: number[];
}

/** The model's MoE layers (config.moe.layers; dense layers are absent) and their experts' stored widths. */
export async function moeLayers(model: DecoderModel): Promise<MoeLayer[]> {
  const { config } = model;
  const layers: MoeLayer[] = [];
  for (const l of config.moe?.layers ?? []) {
    const roles = model.linearRoles(l);
    const widths: number[] = [];
    for (let e = 0; e < config.moe!.experts; ++e) widths.push((await model.checkpoint.info(`${model.layout.block(l)}${roles[`expert.${e}.gate`]}.weight`)).shape[0]);
    layers.push({ layer: l, widths });
  }
  return layers;
}

const EXPERT_ACTIVATION = /^expert\.(\d+)\.out$/;

export interface ExpertStatisticsOptions {
  gradients: boolean;
  /** Rows per batch (whole windows; default about 2048 predicted tokens). */
  batchTokens?: number;
  onProgress?: (done: number, total: number) => void;
  signal?: AbortSignal;
}

class Accumulators {
  readonly byKey = new Map<string, ExpertStatistics>();
  constructor(layers: readonly MoeLayer[], gradients: boolean) {
    for (const { layer, widths } of layers) {
      widths.forEach((width, expert) =>
        this.byKey.set(`${layer}.${expert}`, {
          layer,
          expert,
          width,
          tokens: 0,
          activationSquares: new Float64Array(width),
          ...(gradients ? { gradientSquares: new Float64Array(width) } : {}),
        }),
      );
    }
  }

  /** Adds the rows of a [T_e, width] activation (and of its gradient, scaled by `gradScale`). */
  add(layer: number, group: string, value: Tensor, grad?: Tensor, gradScale = 1): void {
    const match = EXPERT_ACTIVATION.exec(group);
    if (!match) return;
    const stats = this.byKey.get(`${layer}.${match[1]}`);
    if (!stats) return;
    const width = stats.width;
    const a = value.contiguous().data as Float32Array;
    if (a.length % width !== 0) throw new InvalidArgumentError(`expert ${match[1]} of layer ${layer}: activation of ${a.length} values is not rows of ${width}`);
    const rows = a.length / width;
    const a2 = stats.activationSquares;
    for (let i = 0; i < a.length; ++i) a2[i % width] += a[i] * a[i];
    if (grad && stats.gradientSquares) {
      const g = grad.contiguous().data as Float32Array;
      const g2 = stats.gradientSquares;
      for (let i = 0; i < g.length; ++i) {
        const x = g[i] * gradScale;
        g2[i % width] += x * x;
      }
    }
    stats.tokens += rows;
  }
}

/**
 * The statistics of every routed expert of `layers` over `windows` (token ids, all of one length ≥ 2),
 * in layer then expert order.
 */
export async function gatherExpertStatistics(model: DecoderModel, layers: readonly MoeLayer[], windows: readonly Int32Array[], options: ExpertStatisticsOptions): Promise<ExpertStatistics[]> {
  if (windows.length === 0) throw new InvalidArgumentError('expert statistics: at least one calibration window is needed');
  const accumulators = new Accumulators(layers, options.gradients);
  const perBatch = Math.max(1, Math.floor((options.batchTokens ?? 2048) / windows[0].length));
  const batches = Math.ceil(windows.length / perBatch);
  if (options.gradients) {
    for (let b = 0; b < batches; ++b) {
      options.signal?.throwIfAborted();
      const batch = makeBatch(windows.slice(b * perBatch, (b + 1) * perBatch));
      // The loss is the batch's mean NLL; ∂(sum)/∂a = predictions · ∂(mean)/∂a.
      const predictions = batch.inputs.numel;
      await streamGradients(model, batch, {
        parameterGradients: false,
        onGradients: () => undefined,
        onInputGradient: (block, group, value, grad) => accumulators.add(block, group, value, grad, predictions),
        signal: options.signal,
      });
      options.onProgress?.(b + 1, batches);
    }
  } else {
    await forwardStatistics(model, windows, perBatch, accumulators, options);
  }
  return [...accumulators.byKey.values()];
}

/** Forward only: every window's hidden states through the blocks, one block loaded at a time. */
async function forwardStatistics(model: DecoderModel, windows: readonly Int32Array[], perBatch: number, accumulators: Accumulators, options: ExpertStatisticsOptions): Promise<void> {
  // Windows of n tokens predict n − 1: the statistics cover the same inputs as the gradient pass.
  const T = windows[0].length - 1;
  const embeddings = await model.loadEmbeddings();
  const batches: { states: Tensor; positions: Tensor }[] = [];
  for (let w = 0; w < windows.length; w += perBatch) {
    const group = windows.slice(w, w + perBatch);
    const ids = new Int32Array(group.length * T);
    group.forEach((window, i) => ids.set(window.subarray(0, T), i * T));
    batches.push({ states: model.embed(embeddings, ids, T), positions: Tensor.fromTypedArray(Int32Array.from({ length: ids.length }, (_, i) => i % T)) });
  }
  const arena = new TensorArena();
  const layers = model.config.layers;
  for (let l = 0; l < layers; ++l) {
    options.signal?.throwIfAborted();
    const block = await model.loadBlock(l);
    for (const batch of batches) {
      await arena.run(() =>
        block.forward(batch.states, batch.positions, model.invFreq, {
          sequenceLength: T,
          signal: options.signal,
          observe: (group, input) => accumulators.add(l, group, input),
        }),
      );
      arena.recycle();
    }
    options.onProgress?.(l + 1, layers);
  }
}
