import { parseArgs } from 'node:util';
import { DEMO_PROFILES, formatQuantizationTable, formatTable, runDemo, type DemoOptions } from '../../demo/demo.js';
import { formatMoeTable, MOE_DEMO_PROFILES, runMoeDemo } from '../../demo/moe-demo.js';
import { AbortError } from '../../errors.js';
import { parseFlags, type Command } from '../command.js';
import { progressBar } from '../progress.js';

async function run(args: string[]): Promise<void> {
  const { values } = parseFlags('demo', () =>
    parseArgs({
      args,
      strict: true,
      options: {
        out: { type: 'string', default: 'sparq-demo' },
        quick: { type: 'boolean', default: false },
        moe: { type: 'boolean', default: false },
        retrain: { type: 'boolean', default: false },
        'cache-dir': { type: 'string' },
        json: { type: 'boolean', default: false },
      },
    }),
  );
  const controller = new AbortController();
  const interrupt = () => controller.abort();
  process.once('SIGINT', interrupt);
  let bar = progressBar('demo');
  let stage = '';
  try {
    const common: DemoOptions = {
      out: values.out!,
      retrain: values.retrain,
      cacheDir: values['cache-dir'],
      log: (line) => {
        bar.done();
        process.stderr.write(`${line}\n`);
        bar = progressBar('demo');
      },
      onProgress: (step, steps, what) => {
        // A new kind of work starts a fresh bar, so its ETA is its own.
        const kind = what.split(':')[0];
        if (kind !== stage) {
          bar.done();
          bar = progressBar(kind);
          stage = kind;
        }
        bar.update(step, steps, what.slice(kind.length + 1).trim());
      },
      signal: controller.signal,
    };
    const report = values.moe
      ? await runMoeDemo({ ...common, moeProfile: values.quick ? MOE_DEMO_PROFILES.quick : MOE_DEMO_PROFILES.default })
      : await runDemo({ ...common, profile: values.quick ? DEMO_PROFILES.quick : DEMO_PROFILES.default });
    bar.done();
    if (values.json) {
      process.stdout.write(`${JSON.stringify(report)}\n`);
    } else {
      if ('statisticsSeconds' in report) {
        process.stdout.write(`\n${formatMoeTable(report)}\nwrote ${values.out}/report.json and ${values.out}/perplexity.svg in ${report.seconds.toFixed(0)} s\n`);
      } else {
        process.stdout.write(`\n${formatTable(report)}\n${formatQuantizationTable(report)}\nwrote ${values.out}/report.json, perplexity.svg and quantization.svg in ${report.seconds.toFixed(0)} s\n`);
      }
    }
  } catch (error) {
    bar.done();
    if (controller.signal.aborted) throw new AbortError('demo: interrupted');
    throw error;
  } finally {
    process.off('SIGINT', interrupt);
  }
}


export const demoCommand: Command = {
  name: 'demo',
  usage: `demo [--out DIR] [--moe] [--quick] [--retrain] [--cache-dir DIR] [--json]
                   the whole product with nothing but npm: trains a small Llama on State-of-the-
                   Union text (cached for the next run), prunes it with magnitude, Wanda, SparseGPT
                   and ALPS at several sparsities, quantizes it with RTN, GPTQ, GWQ (W4/W3 g32) and
                   HWPQ (FP8), prints perplexity tables and writes report.json, perplexity.svg
                   (against sparsity) and quantization.svg (against bits per weight) to --out
                   (default ./sparq-demo); --quick runs a tiny version;
                   --moe trains a small Qwen3-MoE (8 experts, top-2, with the router's load-balancing
                   loss) instead and prunes 10–50% of its routed-expert parameters with HEAPr (global
                   and per-layer), activation-ranked atoms and frequency-based expert dropping`,
  run,
};
