import { parseArgs } from 'node:util';
import { UsageError } from '../../errors.js';
import { evaluatePerplexity } from '../../eval/perplexity.js';
import { readConfig } from '../../models/config.js';
import { DecoderModel } from '../../models/decoder.js';
import { parseFlags, positiveInteger, withInterrupt, type Command } from '../command.js';
import { progressBar } from '../progress.js';
import { readTokens } from '../tokens.js';

export const evalCommand: Command = {
  name: 'eval',
  usage: `eval --model DIR (--text FILE | --tokens FILE.json) [--seq-len N] [--max-tokens N] [--json]
                   perplexity of a model (Llama, Mistral, Qwen2, Qwen3, Mixtral, OPT) on a text:
                   the whole text tokenized as one string without special tokens, the first
                   --max-tokens kept, non-overlapping --seq-len windows (default: 2048, or the
                   model's context if shorter), exp of the mean of the windows' mean next-token NLL`,
  async run(args) {
    const { values } = parseFlags('eval', () =>
      parseArgs({
        args,
        strict: true,
        options: {
          model: { type: 'string' },
          text: { type: 'string' },
          tokens: { type: 'string' },
          'seq-len': { type: 'string' },
          'max-tokens': { type: 'string' },
          json: { type: 'boolean', default: false },
        },
      }),
    );
    if (!values.model) throw new UsageError('eval: --model DIR is required');
    if (!values.text === !values.tokens) throw new UsageError('eval: give exactly one of --text FILE or --tokens FILE.json');
    const tokens = await readTokens(values.tokens, values.text, values.model, (await readConfig(values.model)).vocabSize);
    const model = await DecoderModel.open(values.model);
    try {
      const bar = progressBar('eval');
      const result = await withInterrupt((signal) =>
        evaluatePerplexity(model, tokens, {
          seqLen: positiveInteger('eval', 'seq-len', values['seq-len'], 2),
          maxTokens: positiveInteger('eval', 'max-tokens', values['max-tokens']),
          onProgress: ({ step, steps, stage }) => bar.update(step, steps, stage),
          signal,
        }),
      ).finally(() => bar.done());
      if (values.json) {
        process.stdout.write(`${JSON.stringify({ model: values.model, ...result })}\n`);
      } else {
        process.stdout.write(
          `perplexity ${result.perplexity.toFixed(4)} over ${result.windows} windows of ${result.seqLen} tokens (${result.tokens} tokens) in ${result.seconds.toFixed(1)} s\n`,
        );
      }
    } finally {
      await model.close();
    }
  },
};
