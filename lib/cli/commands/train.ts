import { parseArgs } from 'node:util';
import { statSync } from 'node:fs';
import { InvalidArgumentError, UsageError } from '../../errors.js';
import { readJsonObject, readTextFile } from '../../io/text.js';
import { parseConfig, readConfig } from '../../models/config.js';
import { loadTokenizer, loadTokenizerFile } from '../../io/tokenizer.js';
import { train } from '../../train/trainer.js';
import { parseFlags, positiveInteger, positiveNumber, type Command } from '../command.js';
import { progressBar } from '../progress.js';
import { readTokens } from '../tokens.js';

async function run(args: string[]): Promise<void> {
  const { values } = parseFlags('train', () =>
    parseArgs({
      args,
      strict: true,
      options: {
        model: { type: 'string' },
        init: { type: 'string' },
        tokenizer: { type: 'string' },
        tokens: { type: 'string' },
        text: { type: 'string' },
        'seq-len': { type: 'string' },
        batch: { type: 'string' },
        steps: { type: 'string' },
        optimizer: { type: 'string' },
        lr: { type: 'string' },
        'weight-decay': { type: 'string' },
        'grad-clip': { type: 'string' },
        'save-dtype': { type: 'string' },
        'router-aux-loss': { type: 'boolean', default: false },
        'router-aux-loss-coef': { type: 'string' },
        shuffle: { type: 'boolean', default: false },
        seed: { type: 'string' },
        out: { type: 'string' },
        overwrite: { type: 'boolean', default: false },
        json: { type: 'boolean', default: false },
      },
    }),
  );
  if (!values.model === !values.init) throw new UsageError('train: give exactly one of --model DIR or --init CONFIG.json');
  if (!values.text === !values.tokens) throw new UsageError('train: give exactly one of --text FILE or --tokens FILE.json');
  for (const required of ['seq-len', 'batch', 'steps', 'optimizer', 'lr', 'out'] as const) {
    if (values[required] === undefined) throw new UsageError(`train: --${required} is required`);
  }
  if (values.seed !== undefined && !values.shuffle) throw new UsageError('train: --seed only applies with --shuffle');
  let tokens: Int32Array;
  if (values.text !== undefined && values.model === undefined) {
    if (!values.tokenizer) throw new UsageError('train: --text with --init needs --tokenizer (a tokenizer.json or a folder with one)');
    const tokenizer = statSync(values.tokenizer, { throwIfNoEntry: false })?.isDirectory() ? await loadTokenizer(values.tokenizer) : await loadTokenizerFile(values.tokenizer);
    tokens = tokenizer.encode(await readTextFile(values.text));
  } else {
    const config = values.model !== undefined ? await readConfig(values.model) : parseConfig(await readJsonObject(values.init!), values.init);
    tokens = await readTokens(values.tokens, values.text, values.tokenizer ?? values.model!, config.vocabSize);
  }
  // --router-aux-loss: the config's coefficient; --router-aux-loss-coef C: that one; neither: the config's
  // output_router_logits decides (lib/train/trainer.ts).
  let routerAuxLossCoef = positiveNumber('train', 'router-aux-loss-coef', values['router-aux-loss-coef']);
  if (values['router-aux-loss'] && routerAuxLossCoef === undefined) {
    const config = values.model !== undefined ? await readConfig(values.model) : parseConfig(await readJsonObject(values.init!), values.init);
    if (!config.moe) throw new InvalidArgumentError(`train: --router-aux-loss applies to mixture-of-experts models; ${config.architecture} has no router`);
    routerAuxLossCoef = config.moe.routerAuxLossCoef;
  }
  const controller = new AbortController();
  const interrupt = () => controller.abort();
  process.once('SIGINT', interrupt);
  const bar = progressBar('train');
  try {
    const report = await train({
      model: values.model,
      init: values.init,
      tokenizer: values.init !== undefined ? values.tokenizer : undefined,
      tokens,
      seqLen: positiveInteger('train', 'seq-len', values['seq-len'], 2)!,
      batch: positiveInteger('train', 'batch', values.batch)!,
      steps: positiveInteger('train', 'steps', values.steps)!,
      optimizer: values.optimizer as 'sgd' | 'adamw',
      lr: positiveNumber('train', 'lr', values.lr)!,
      weightDecay: positiveNumber('train', 'weight-decay', values['weight-decay']),
      gradClip: positiveNumber('train', 'grad-clip', values['grad-clip']),
      saveDtype: values['save-dtype'] as 'float32' | undefined,
      routerAuxLossCoef,
      shuffle: values.shuffle,
      seed: positiveInteger('train', 'seed', values.seed, 0),
      out: values.out!,
      overwrite: values.overwrite,
      onProgress: ({ step, steps, loss, tokensPerSecond }) => bar.update(step, steps, `loss ${loss.toFixed(4)}, ${tokensPerSecond.toFixed(0)} tok/s`),
      signal: controller.signal,
    });
    bar.done();
    const first = report.losses[0];
    const last = report.losses[report.losses.length - 1];
    if (values.json) {
      process.stdout.write(
        `${JSON.stringify({
          out: report.out,
          steps: report.steps,
          first_loss: first,
          final_loss: last,
          tokens_per_second: report.tokensPerSecond,
          seconds: report.seconds,
          epochs: report.epochs,
          ...(report.routerAuxLosses ? { router_aux_loss_coef: report.routerAuxLossCoef, final_router_aux_loss: report.routerAuxLosses[report.routerAuxLosses.length - 1] } : {}),
          peak_rss_bytes: report.peakRssBytes,
        })}\n`,
      );
    } else {
      process.stdout.write(
        `${report.steps} steps of ${report.batch} × ${report.seqLen} tokens (${report.epochs.toFixed(2)} passes over ${report.windows} windows): ` +
          `loss ${first.toFixed(4)} → ${last.toFixed(4)}, ${report.tokensPerSecond.toFixed(0)} tokens/s, ${report.seconds.toFixed(1)} s\nwrote ${report.out} (training.json inside)\n`,
      );
    }
  } catch (error) {
    bar.done();
    throw error;
  } finally {
    process.off('SIGINT', interrupt);
  }
}


export const trainCommand: Command = {
  name: 'train',
  usage: `train (--model DIR | --init CONFIG.json [--tokenizer FILE|DIR]) (--tokens FILE.json | --text FILE)
        --seq-len T --batch B --steps S --optimizer sgd|adamw --lr LR [--weight-decay W]
        [--grad-clip C] [--shuffle --seed S] [--save-dtype float32|bfloat16|float16]
        [--router-aux-loss | --router-aux-loss-coef C]
        --out DIR [--overwrite] [--json]
                   trains in memory: the tokens are cut into non-overlapping windows of T tokens
                   (as eval does), taken in order (or shuffled per pass with --shuffle); the loss
                   of a step is the mean of its B windows' mean next-token NLL; --init starts a
                   new model from a config.json (Hugging Face initialisation); --grad-clip C
                   clips the global gradient norm (0: no clipping, the default); MoE models add
                   the router load-balancing loss times the config's router_aux_loss_coef
                   (--router-aux-loss; default when config.json sets output_router_logits) or
                   times C (0: off); writes a Hugging Face folder with training.json`,
  run,
};
