import { parseArgs } from 'node:util';
import { InvalidArgumentError, UsageError } from '../../errors.js';
import { generate } from '../../generate/generate.js';
import { GenerationSession } from '../../generate/session.js';
import { WEIGHTS_MODES, type WeightsMode } from '../../generate/linear.js';
import { backendInfo, setThreads } from '../../tensor/native.js';
import { parseFlags, positiveInteger, positiveNumber, withInterrupt, type Command } from '../command.js';

export const generateCommand: Command = {
  name: 'generate',
  usage: `generate --model DIR --prompt TEXT [--max-new-tokens N] [--temperature T] [--top-p P]
         [--seed S] [--threads N] [--weights stored|f32] [--json]
                   continues a prompt with a KV-cached decoder (every architecture eval runs),
                   each linear on the kernel for how it is stored (--weights stored, the default:
                   sparq packed formats, compressed-tensors W4 as int4 codes, dense f16/bf16 in
                   their dtype) or all decoded to dense f32 (--weights f32), streaming the text to
                   stdout, then a summary on stderr: prompt and generated tokens, prefill and
                   decode tokens/s, peak RSS. Greedy by default (--temperature 0); --temperature
                   > 0 samples, from the smallest set of tokens holding --top-p of the
                   probability (default 1), with the generator seeded by --seed (default 0).
                   Stops at the model's EOS token or after --max-new-tokens (default 64).
                   --json prints one JSON object instead: text, tokens, promptTokens,
                   generatedTokens, stopReason, prefillSeconds, decodeSeconds,
                   prefillTokensPerSecond, decodeTokensPerSecond, peakRssBytes, model, backend,
                   weights, linearFormats (how many linears ran in each format)`,
  async run(args) {
    const { values } = parseFlags('generate', () =>
      parseArgs({
        args,
        strict: true,
        options: {
          model: { type: 'string' },
          prompt: { type: 'string' },
          'max-new-tokens': { type: 'string' },
          temperature: { type: 'string' },
          'top-p': { type: 'string' },
          seed: { type: 'string' },
          threads: { type: 'string' },
          weights: { type: 'string', default: 'stored' },
          json: { type: 'boolean', default: false },
        },
      }),
    );
    if (!values.model) throw new UsageError('generate: --model DIR is required');
    if (values.prompt === undefined || values.prompt.length === 0) throw new UsageError('generate: --prompt TEXT is required and must not be empty');
    const maxNewTokens = positiveInteger('generate', 'max-new-tokens', values['max-new-tokens']);
    const temperature = positiveNumber('generate', 'temperature', values.temperature);
    const topP = positiveNumber('generate', 'top-p', values['top-p']);
    if (topP !== undefined && !(topP > 0 && topP <= 1)) throw new InvalidArgumentError(`generate: --top-p must be in (0, 1], got '${values['top-p']}'`);
    const seed = positiveInteger('generate', 'seed', values.seed, 0);
    const threads = positiveInteger('generate', 'threads', values.threads);
    if (threads !== undefined) setThreads(threads);

    const weights = values.weights as WeightsMode;
    if (!WEIGHTS_MODES.includes(weights)) throw new InvalidArgumentError(`generate: --weights must be stored or f32, got '${values.weights}'`);
    const session = await GenerationSession.load(values.model, { weights });
    const json = values.json;
    const result = await withInterrupt((signal) =>
      generate(session, values.prompt!, { maxNewTokens, temperature, topP, seed, signal, onText: json ? undefined : (text) => process.stdout.write(text) }),
    );
    const peakRssBytes = process.resourceUsage().maxRSS * 1024; // maxRSS is in KiB
    const backend = backendInfo('cpu').backend;
    if (json) {
      process.stdout.write(`${JSON.stringify({ ...result, peakRssBytes, model: values.model, backend, weights, linearFormats: session.linearFormats() })}\n`);
      return;
    }
    process.stdout.write('\n');
    process.stderr.write(
      `sparq generate: ${result.promptTokens} prompt tokens, ${result.generatedTokens} generated (stopped: ${result.stopReason}); ` +
        `prefill ${result.prefillTokensPerSecond.toFixed(1)} tokens/s, decode ${result.decodeTokensPerSecond.toFixed(1)} tokens/s; ` +
        `peak RSS ${(peakRssBytes / 2 ** 20).toFixed(1)} MiB (${backend})\n`,
    );
  },
};
