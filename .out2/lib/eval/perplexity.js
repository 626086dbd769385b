// Perplexity under the protocol the pruning papers use: the whole text tokenized as one string without
// special tokens, the first `maxTokens` kept, cut into non-overlapping `seqLen` windows (the remainder
// dropped); perplexity = exp(mean over windows of each window's mean next-token NLL).
//
// Streaming: all windows go through block 1, then block 2, …, with one block's weights in memory. The
// windows' hidden states are all that is kept between blocks; when they would exceed `maxHiddenBytes`
// the windows are taken in chunks, each chunk streaming through the blocks again.
import { AbortError, InvalidArgumentError, NonFiniteError } from '../errors.js';
import { crossEntropyAsync } from '../tensor/nn.js';
import { Tensor, TensorArena } from '../tensor/tensor.js';
import { checkInteger } from '../validate.js';
/** Yields to the event loop between units of work, so progress and signals are serviced. */
const breathe = () => new Promise((resolve) => setImmediate(resolve));
export async function evaluatePerplexity(model, tokens, options = {}) {
    const started = performance.now();
    const seqLen = checkInteger('seqLen', options.seqLen ?? Math.min(2048, model.config.maxPositions), 2);
    if (seqLen > model.config.maxPositions) {
        throw new InvalidArgumentError(`seqLen ${seqLen} exceeds the model's context of ${model.config.maxPositions} tokens (max_position_embeddings)`);
    }
    const window = model.config.slidingWindow;
    if (window !== undefined && seqLen > window) {
        throw new InvalidArgumentError(`seqLen ${seqLen} exceeds the model's sliding attention window of ${window}, which sparq does not implement yet; use --seq-len ${window} or less`);
    }
    if (tokens.length === 0)
        throw new InvalidArgumentError('the text has no tokens; give a non-empty text');
    const maxTokens = checkInteger('maxTokens', options.maxTokens ?? tokens.length, 1);
    const used = Math.min(maxTokens, tokens.length);
    const windows = Math.floor(used / seqLen);
    if (windows === 0) {
        throw new InvalidArgumentError(`the text has ${tokens.length} tokens (${used} used); one window needs ${seqLen} (lower --seq-len or give more text)`);
    }
    for (let i = 0; i < windows * seqLen; ++i) {
        if (tokens[i] < 0 || tokens[i] >= model.config.vocabSize) {
            throw new InvalidArgumentError(`token ${tokens[i]} at position ${i} is outside the model's vocabulary of ${model.config.vocabSize}`);
        }
    }
    const hidden = model.config.hiddenSize;
    const windowBytes = seqLen * hidden * 4;
    const perChunk = Math.max(1, Math.floor((options.maxHiddenBytes ?? 2 ** 30) / windowBytes));
    const chunks = Math.ceil(windows / perChunk);
    // Windows run through the linear layers together, in batches of about 2048 rows.
    const perBatch = Math.max(1, Math.floor(2048 / seqLen));
    const steps = chunks * (model.config.layers + 2);
    let step = 0;
    const progress = (stage) => options.onProgress?.({ step: ++step, steps, stage });
    const check = () => {
        if (options.signal?.aborted)
            throw new AbortError();
    };
    const windowNll = [];
    const arena = new TensorArena();
    for (let first = 0; first < windows; first += perChunk) {
        const count = Math.min(perChunk, windows - first);
        const batches = [];
        {
            // Scoped so the embedding table can be collected before the blocks load.
            const embeddings = await model.loadEmbeddings();
            for (let w = first; w < first + count; w += perBatch) {
                const n = Math.min(perBatch, first + count - w);
                batches.push({
                    first: w,
                    count: n,
                    states: model.embed(embeddings, tokens.subarray(w * seqLen, (w + n) * seqLen), seqLen),
                    positions: Tensor.fromTypedArray(Int32Array.from({ length: n * seqLen }, (_, i) => i % seqLen)),
                });
            }
        }
        for (const batch of batches)
            await model.checkFiniteStates(batch.states, 'embedding', options.signal);
        progress('embedding');
        for (let layer = 0; layer < model.config.layers; ++layer) {
            const block = await model.loadBlock(layer);
            for (const batch of batches) {
                check();
                // The block's temporaries come from the arena and go back after each batch: the same shapes
                // recur, and fresh large buffers cost page faults and garbage collections.
                await arena.run(() => block.forward(batch.states, batch.positions, model.invFreq, { sequenceLength: seqLen, signal: options.signal }));
                arena.recycle();
                await model.checkFiniteStates(batch.states, layer, options.signal);
                await breathe();
            }
            progress(`block ${layer + 1}/${model.config.layers}`);
        }
        const head = await model.loadHead();
        for (const batch of batches) {
            for (let i = 0; i < batch.count; ++i) {
                check();
                const w = batch.first + i;
                const targets = Tensor.fromTypedArray(tokens.subarray(w * seqLen + 1, (w + 1) * seqLen));
                const sum = await arena.run(async () => {
                    const logits = await model.logits(head, batch.states.narrow(i * seqLen, (i + 1) * seqLen), options.signal);
                    const predictions = logits.narrow(0, seqLen - 1); // position t predicts token t + 1
                    const nll = (await crossEntropyAsync(predictions, targets, { signal: options.signal })).data;
                    let total = 0;
                    for (const v of nll)
                        total += v;
                    return total;
                });
                arena.recycle();
                if (!Number.isFinite(sum))
                    throw new NonFiniteError(`the output layer produced NaN or infinite logits for window ${w} although every weight and activation before it is finite`);
                windowNll.push(sum / (seqLen - 1));
            }
            await breathe();
        }
        progress('head');
    }
    const meanNll = windowNll.reduce((a, b) => a + b, 0) / windowNll.length;
    return { perplexity: Math.exp(meanNll), meanNll, windows, tokens: windows * seqLen, seqLen, seconds: (performance.now() - started) / 1000 };
}
//# sourceMappingURL=perplexity.js.map