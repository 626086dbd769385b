// `npm run bench:heapr`: the cost of HEAPr's scoring pass (compress/heapr.ts, pipeline/expert-statistics.ts)
// against a training step over the same tokens, and its memory.
//   time    on a Qwen3-MoE of hidden 256, 4 layers, 8 experts of 256, top-2 (random weights: the work does
//           not depend on them),
//           over the same windows, interleaved and repeated (medians; the machine is shared, so only the
//           ratios measured side by side mean much):
//             train step (in memory)   lossAndGradients with the load-balancing loss, as the trainer runs it
//             train step (streamed)    streamGradients with every parameter gradient
//             HEAPr scoring            gatherExpertStatistics with gradients (streamed, activation gradients only)
//             forward-only statistics  what activation-atoms and expert-drop need
//           target: the scoring pass ≤ 2× a training step.
//   memory  the accumulators: 2 float64 per atom (O(atoms)), against the d×d float64 G_e per expert that
//           the explicit form (and the reference code) keeps.
// Writes bench/heapr-results.json.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { lossAndGradients, makeBatch, streamGradients } from '../lib/autograd/decoder.js';
import { MOE_DEMO_PROFILES, moeDemoConfig } from '../lib/demo/moe-demo.js';
import { CheckpointWriter } from '../lib/io/checkpoint.js';
import { parseConfig } from '../lib/models/config.js';
import { DecoderModel } from '../lib/models/decoder.js';
import { gatherExpertStatistics, moeLayers } from '../lib/pipeline/expert-statistics.js';
import { TensorArena } from '../lib/tensor/tensor.js';
import { initialParameters } from '../lib/train/init.js';
import { repo, syntheticWindows } from './util.js';

const REPEATS = Number(process.env.SPARQ_BENCH_REPEATS ?? 3);
/** A first round (JIT, first allocations, page cache) that the medians leave out. */
const WARMUP = 1;
const WINDOWS = 8;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function timed(work: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await work();
  return (performance.now() - t) / 1000;
}

// Pinned here (not the demo's current profile), so the results stay comparable run to run.
const profile = { ...MOE_DEMO_PROFILES.default.model, hiddenSize: 256, expertSize: 256, heads: 8, kvHeads: 4, seqLen: 256 };
const configJson = moeDemoConfig(profile);
const scratch = mkdtempSync(join(tmpdir(), 'sparq-bench-heapr-'));
try {
  const config = parseConfig(configJson, 'bench config');
  const parameters = initialParameters(config, { seed: 1 });
  writeFileSync(join(scratch, 'config.json'), JSON.stringify(configJson));
  const writer = await CheckpointWriter.create(scratch, [...parameters].map(([name, t]) => ({ name, dtype: 'f32' as const, shape: [...t.shape] })));
  for (const [name, t] of parameters) await writer.write(name, t);
  await writer.close();
  const model = await DecoderModel.open(scratch);
  const layers = await moeLayers(model);
  const windows = syntheticWindows(WINDOWS, profile.seqLen, profile.vocabSize).map((w) => Int32Array.from(w));
  const batch = makeBatch(windows);
  const arena = new TensorArena();
  const times = { trainInMemory: [] as number[], trainStreamed: [] as number[], heaprScoring: [] as number[], forwardStatistics: [] as number[] };
  for (let r = 0; r < WARMUP + REPEATS; ++r) {
    times.trainInMemory.push(
      await timed(async () => {
        await arena.run(() => lossAndGradients(model, parameters, batch, { routerAuxLossCoef: profile.routerAuxLossCoef }));
        arena.recycle();
      }),
    );
    times.trainStreamed.push(await timed(() => streamGradients(model, batch, { onGradients: () => undefined })));
    times.heaprScoring.push(await timed(() => gatherExpertStatistics(model, layers, windows, { gradients: true, batchTokens: WINDOWS * profile.seqLen })));
    times.forwardStatistics.push(await timed(() => gatherExpertStatistics(model, layers, windows, { gradients: false, batchTokens: WINDOWS * profile.seqLen })));
    process.stderr.write(`round ${r + 1}/${WARMUP + REPEATS}${r < WARMUP ? ' (warm-up)' : ''}: ${Object.entries(times).map(([k, v]) => `${k} ${v[r].toFixed(2)} s`).join(', ')}\n`);
  }
  await model.close();
  const atoms = layers.reduce((s, l) => s + l.widths.reduce((a, b) => a + b, 0), 0);
  const experts = layers.reduce((s, l) => s + l.widths.length, 0);
  const D = profile.hiddenSize;
  const medians = Object.fromEntries(Object.entries(times).map(([k, v]) => [k, median(v.slice(WARMUP))])) as Record<keyof typeof times, number>;
  const results = {
    date: new Date().toISOString(),
    cpus: cpus().length,
    note: 'shared 2-core machine under load from other work: absolute seconds are noisy; ratios are measured side by side, interleaved',
    model: { shape: 'qwen3_moe', ...profile, moeLayers: layers.length, routedExperts: experts, atoms },
    tokens: batch.inputs.numel,
    repeats: REPEATS,
    warmupRounds: WARMUP,
    seconds: times,
    medianSeconds: medians,
    ratios: {
      heaprScoringVsTrainStepInMemory: medians.heaprScoring / medians.trainInMemory,
      heaprScoringVsTrainStepStreamed: medians.heaprScoring / medians.trainStreamed,
      forwardStatisticsVsTrainStepInMemory: medians.forwardStatistics / medians.trainInMemory,
    },
    memory: {
      accumulatorBytes: atoms * 2 * 8,
      explicitHessianBytes: experts * D * D * 8,
      perAtomBytes: 16,
    },
  };
  writeFileSync(join(repo, 'bench', 'heapr-results.json'), `${JSON.stringify(results, null, 2)}\n`);
  process.stdout.write(`${JSON.stringify(results.ratios)}\n${JSON.stringify(results.memory)}\n`);
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
