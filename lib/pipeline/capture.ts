// Calibration statistics of a block's linear inputs: the calibration batches run through the block while
// each group of linears that read the same input (attention in, attention out, MLP in, MLP out, each
// expert's in and out, the router) feeds the statistics its methods declared they need — the Hessian
// H = (2/T)·XᵀX (on a worker thread), and/or Σ_t x_tj² (Wanda's input norms, O(T·in)). A pass ends as
// soon as the last wanted group has been seen.
import type { LinearStatistics, StatisticsNeeds } from '../compress/method.js';
import { inputGroups, type DecoderBlock, type DecoderModel } from '../models/decoder.js';
import { HessianAccumulator } from '../tensor/ops.js';
import { Tensor, TensorArena } from '../tensor/tensor.js';

/** Calibration hidden states in batches of whole windows. */
export interface CalibrationBatch {
  states: Tensor;
  positions: Tensor;
}

/** Stops a capture pass once the last wanted group's input has been seen. */
class PassComplete {}

/** Σ_t x_tj² over all rows seen, accumulated in float64. */
class InputSquares {
  readonly sums: Float64Array;
  rows = 0;
  constructor(features: number) {
    this.sums = new Float64Array(features);
  }
  /** Adds the rows of x, yielding to the event loop every few million elements. */
  async add(x: Tensor): Promise<void> {
    const features = this.sums.length;
    const data = x.contiguous().data as Float32Array;
    const rows = data.length / features;
    const rowsPerTurn = Math.max(1, Math.floor(4_000_000 / features));
    for (let r = 0; r < rows; ++r) {
      const row = data.subarray(r * features, (r + 1) * features);
      for (let j = 0; j < features; ++j) this.sums[j] += row[j] * row[j];
      if (r % rowsPerTurn === rowsPerTurn - 1) await new Promise<void>((resolve) => setImmediate(resolve));
    }
    this.rows += rows;
  }
}

interface GroupAccumulator {
  hessian?: HessianAccumulator;
  squares?: InputSquares;
  tokens: number;
}

/**
 * One pass of the calibration batches through `block` (a copy of each batch's states, so the states are
 * left as they were), gathering `needs.get(group)` for each wanted group. Returns statistics by group name;
 * a wanted group no token reached (an idle expert) is absent.
 */
export async function captureStatistics(
  model: DecoderModel,
  block: DecoderBlock,
  batches: readonly CalibrationBatch[],
  sequenceLength: number,
  needs: ReadonlyMap<string, StatisticsNeeds>,
  arena: TensorArena,
  signal?: AbortSignal,
): Promise<Map<string, LinearStatistics>> {
  const accumulators = new Map<string, GroupAccumulator>();
  // The last wanted group in forward order: the pass ends once it has been seen (an expert no token of the
  // batch reached never shows up, and then the pass runs to the end of the block).
  const order = inputGroups(model.config, block.index).map((g) => g.name);
  const last = order.filter((g) => needs.has(g)).pop();
  for (const batch of batches) {
    signal?.throwIfAborted();
    const states = await batch.states.cloneAsync({ signal });
    try {
      await arena.run(() =>
        block.forward(states, batch.positions, model.invFreq, {
          sequenceLength,
          signal,
          observe: async (group, input) => {
            const wanted = needs.get(group);
            if (wanted) {
              const features = input.shape[input.ndim - 1];
              let acc = accumulators.get(group);
              if (!acc) {
                // The accumulators outlive the batch, so their memory must not come from the arena.
                acc = TensorArena.outside(() => ({
                  tokens: 0,
                  hessian: wanted.hessian ? new HessianAccumulator(features) : undefined,
                  squares: wanted.inputSquares ? new InputSquares(features) : undefined,
                }));
                accumulators.set(group, acc);
              }
              acc.tokens += input.numel / features;
              await acc.squares?.add(input);
              // Awaited before the pass goes on: the input's buffer returns to the arena afterwards.
              await acc.hessian?.addAsync(input, { signal });
            }
            if (group === last) throw new PassComplete();
          },
        }),
      );
    } catch (error) {
      if (!(error instanceof PassComplete)) throw error;
    } finally {
      arena.recycle();
    }
  }
  const statistics = new Map<string, LinearStatistics>();
  for (const [group, acc] of accumulators) {
    statistics.set(group, {
      tokens: acc.tokens,
      ...(acc.hessian ? { hessian: await acc.hessian.hessianAsync({ signal }) } : {}),
      ...(acc.squares ? { inputSquares: Tensor.fromTypedArray(Float32Array.from(acc.squares.sums)) } : {}),
    });
  }
  return statistics;
}
