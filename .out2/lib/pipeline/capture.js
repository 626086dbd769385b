import { inputGroups } from '../models/decoder.js';
import { HessianAccumulator } from '../tensor/ops.js';
import { Tensor, TensorArena } from '../tensor/tensor.js';
/** Stops a capture pass once the last wanted group's input has been seen. */
class PassComplete {
}
/** Σ_t x_tj² over all rows seen, accumulated in float64. */
class InputSquares {
    sums;
    rows = 0;
    constructor(features) {
        this.sums = new Float64Array(features);
    }
    /** Adds the rows of x, yielding to the event loop every few million elements. */
    async add(x) {
        const features = this.sums.length;
        const data = x.contiguous().data;
        const rows = data.length / features;
        const rowsPerTurn = Math.max(1, Math.floor(4_000_000 / features));
        for (let r = 0; r < rows; ++r) {
            const row = data.subarray(r * features, (r + 1) * features);
            for (let j = 0; j < features; ++j)
                this.sums[j] += row[j] * row[j];
            if (r % rowsPerTurn === rowsPerTurn - 1)
                await new Promise((resolve) => setImmediate(resolve));
        }
        this.rows += rows;
    }
}
/**
 * One pass of the calibration batches through `block` (a copy of each batch's states, so the states are
 * left as they were), gathering `needs.get(group)` for each wanted group. Returns statistics by group name;
 * a wanted group no token reached (an idle expert) is absent.
 */
export async function captureStatistics(model, block, batches, sequenceLength, needs, arena, signal) {
    const accumulators = new Map();
    // The last wanted group in forward order: the pass ends once it has been seen (an expert no token of the
    // batch reached never shows up, and then the pass runs to the end of the block).
    const order = inputGroups(model.config, block.index).map((g) => g.name);
    const last = order.filter((g) => needs.has(g)).pop();
    for (const batch of batches) {
        signal?.throwIfAborted();
        const states = await batch.states.cloneAsync({ signal });
        try {
            await arena.run(() => block.forward(states, batch.positions, model.invFreq, {
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
                    if (group === last)
                        throw new PassComplete();
                },
            }));
        }
        catch (error) {
            if (!(error instanceof PassComplete))
                throw error;
        }
        finally {
            arena.recycle();
        }
    }
    const statistics = new Map();
    for (const [group, acc] of accumulators) {
        statistics.set(group, {
            tokens: acc.tokens,
            ...(acc.hessian ? { hessian: await acc.hessian.hessianAsync({ signal }) } : {}),
            ...(acc.squares ? { inputSquares: Tensor.fromTypedArray(Float32Array.from(acc.squares.sums)) } : {}),
        });
    }
    return statistics;
}
//# sourceMappingURL=capture.js.map