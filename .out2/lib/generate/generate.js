// Text generation: prefill the prompt, then choose a token, feed it back, repeat — until an EOS token,
// `maxNewTokens`, or the model's context. Text is decoded incrementally as tokens arrive.
//
// Timing: `prefill` is the prompt's pass (and choosing the first token); `decode` is every later step,
// one forward pass of one token each, so decode tokens/s = (generated − 1) / decodeSeconds.
import { AbortError, InvalidArgumentError } from '../errors.js';
import { checkInteger } from '../validate.js';
import { IncrementalDetokenizer } from './detokenizer.js';
import { checkSamplingOptions, sampleToken, uniformRandom } from './sampling.js';
import { GenerationSession } from './session.js';
/**
 * Generates a continuation of `prompt` (text, encoded with the model's tokenizer, or token ids) with a
 * model folder or a loaded GenerationSession (whose KV cache it resets).
 */
export async function generate(model, prompt, options = {}) {
    const maxNewTokens = checkInteger('maxNewTokens', options.maxNewTokens ?? 64, 1);
    const seed = checkInteger('seed', options.seed ?? 0, 0, 2 ** 32 - 1);
    const sampling = checkSamplingOptions(options);
    if (typeof prompt === 'string' && prompt.length === 0)
        throw new InvalidArgumentError('prompt: expected a non-empty text, received ""');
    const session = typeof model === 'string' ? await GenerationSession.load(model, { signal: options.signal, weights: options.weights }) : model;
    const ids = typeof prompt === 'string' ? session.encode(prompt) : Int32Array.from(prompt);
    if (ids.length === 0)
        throw new InvalidArgumentError('prompt: expected at least one token, received none');
    if (ids.length >= session.contextLength) {
        throw new InvalidArgumentError(`prompt: ${ids.length} tokens leave no room to generate in the model's context of ${session.contextLength} tokens`);
    }
    const random = uniformRandom(seed);
    const detokenizer = session.tokenizer ? new IncrementalDetokenizer(session.tokenizer, ids) : undefined;
    const tokens = [];
    let text = '';
    const emit = (piece) => {
        if (piece.length === 0)
            return;
        text += piece;
        options.onText?.(piece);
    };
    const started = performance.now();
    let logits = await session.prefill(ids, options.signal);
    let prefillSeconds = 0;
    let stopReason;
    for (;;) {
        const token = sampleToken(logits, sampling, random);
        tokens.push(token);
        options.onToken?.(token, logits);
        if (tokens.length === 1)
            prefillSeconds = (performance.now() - started) / 1000;
        if (session.eosTokenIds.has(token)) {
            stopReason = 'eos';
            break;
        }
        if (detokenizer)
            emit(detokenizer.push(token));
        if (tokens.length === maxNewTokens) {
            stopReason = 'max-new-tokens';
            break;
        }
        if (session.length === session.contextLength) {
            stopReason = 'context';
            break;
        }
        // Small models run each step inline (inline.ts): yield between steps so Ctrl-C, timers and the
        // streamed output get their turn.
        await new Promise((resolve) => setImmediate(resolve));
        if (options.signal?.aborted)
            throw new AbortError();
        logits = await session.append([token], options.signal);
    }
    if (detokenizer)
        emit(detokenizer.flush());
    const decodeSeconds = (performance.now() - started) / 1000 - prefillSeconds;
    const decodeSteps = tokens.length - 1;
    return {
        text,
        tokens,
        promptTokens: ids.length,
        generatedTokens: tokens.length,
        stopReason,
        prefillSeconds,
        decodeSeconds,
        prefillTokensPerSecond: ids.length / prefillSeconds,
        decodeTokensPerSecond: decodeSteps > 0 ? decodeSteps / decodeSeconds : 0,
    };
}
//# sourceMappingURL=generate.js.map