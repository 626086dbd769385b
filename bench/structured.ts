// `npm run bench:structured`: structured pruning results.
//   quality  perplexity at 10/20/30/50% of the decoder-linear parameters removed (MLP neurons + kv head
//            groups), for magnitude-sp, wanda-sp, structprune with uniform allocation and structprune with
//            softmax allocation, on stories260K, sotu-llama and the demo's trained model (when cached);
//            64 × 256-token calibration windows, eval on up to 16,384 held-out tokens in 256-token windows.
//   speed    measured forward tokens/s of each shrunk model against its dense original on the same
//            machine in the same process (blocks preloaded; 8 × 256-token batch; dense and pruned timed
//            alternately, best of 5 each), plus a generated 33M-parameter Llama pruned data-free
//            (magnitude-sp) where the linears dominate the time.
// Writes bench/structured-results.json. Set SPARQ_BENCH_QUICK=1 for one sparsity (30%).
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { DecoderModel, evaluatePerplexity, inspectModel, loadTokenizer, parseRecipe, prune, Tensor, writeRandomLlama, type DecoderBlock } from '../lib/index.js';
import { loadSotuText } from '../lib/demo/dataset.js';
import { repo } from './util.js';

const scratch = mkdtempSync(join(tmpdir(), 'sparq-bench-structured-'));
const shared = join(repo, '..', 'shared');
const quick = process.env.SPARQ_BENCH_QUICK === '1';
const SPARSITIES = quick ? [0.3] : [0.1, 0.2, 0.3, 0.5];
const METHODS: { label: string; method: string; options: Record<string, unknown> }[] = [
  { label: 'magnitude-sp', method: 'magnitude-sp', options: {} },
  { label: 'wanda-sp', method: 'wanda-sp', options: {} },
  { label: 'structprune (uniform)', method: 'structprune', options: {} },
  { label: 'structprune (softmax)', method: 'structprune', options: { allocation: 'softmax' } },
];

async function perplexity(dir: string, tokens: Int32Array): Promise<number> {
  const model = await DecoderModel.open(dir);
  try {
    return (await evaluatePerplexity(model, tokens, { seqLen: 256 })).perplexity;
  } finally {
    await model.close();
  }
}

/** Forward tokens/s of a model (blocks preloaded, head included) on a fixed batch: the best of `repeats`. */
async function loaded(dir: string) {
  const model = await DecoderModel.open(dir);
  const blocks: DecoderBlock[] = [];
  for (let b = 0; b < model.config.layers; ++b) blocks.push(await model.loadBlock(b));
  return { model, blocks, embeddings: await model.loadEmbeddings(), head: await model.loadHead() };
}

async function forwardSeconds(m: Awaited<ReturnType<typeof loaded>>, ids: Int32Array, seqLen: number): Promise<number> {
  const started = performance.now();
  const h = m.model.embed(m.embeddings, ids, seqLen);
  const positions = Tensor.fromTypedArray(Int32Array.from({ length: ids.length }, (_, i) => i % seqLen));
  for (const block of m.blocks) await block.forward(h, positions, m.model.invFreq, { sequenceLength: seqLen });
  await m.model.logits(m.head, h);
  return (performance.now() - started) / 1000;
}

/** Dense and pruned timed alternately (noise on a shared machine hits both alike); best of `repeats` each. */
async function speed(denseDir: string, prunedDir: string, vocab: number, repeats = 5) {
  const seqLen = 256;
  const ids = Int32Array.from({ length: 8 * seqLen }, (_, i) => (i * 7919) % vocab);
  const dense = await loaded(denseDir);
  const pruned = await loaded(prunedDir);
  let bestDense = Infinity;
  let bestPruned = Infinity;
  try {
    await forwardSeconds(dense, ids, seqLen);
    await forwardSeconds(pruned, ids, seqLen);
    for (let r = 0; r < repeats; ++r) {
      bestDense = Math.min(bestDense, await forwardSeconds(dense, ids, seqLen));
      bestPruned = Math.min(bestPruned, await forwardSeconds(pruned, ids, seqLen));
    }
  } finally {
    await dense.model.close();
    await pruned.model.close();
  }
  return { denseTokensPerSecond: Math.round(ids.length / bestDense), prunedTokensPerSecond: Math.round(ids.length / bestPruned), speedup: Number((bestDense / bestPruned).toFixed(2)) };
}

function demoModel(): string | undefined {
  const root = join(homedir(), '.cache', 'sparq', 'demo');
  if (!existsSync(root)) return undefined;
  const found = readdirSync(root).find((d) => existsSync(join(root, d, 'training.json')));
  return found ? join(root, found) : undefined;
}

const models: { name: string; dir: string; calib: string; evalText: () => string }[] = [
  { name: 'stories260K', dir: join(shared, 'fixtures', 'stories260K'), calib: join(shared, 'data', 'tinystories_calib.txt'), evalText: () => readFileSync(join(shared, 'data', 'tinystories_val.txt'), 'utf8') },
  { name: 'sotu-llama', dir: join(shared, 'fixtures', 'sotu-llama'), calib: join(shared, 'data', 'sotu_calib.txt'), evalText: () => readFileSync(join(shared, 'data', 'sotu_eval.txt'), 'utf8') },
];
const demo = demoModel();
if (demo) models.push({ name: 'demo (sotu-llama trained by sparq demo)', dir: demo, calib: join(shared, 'data', 'sotu_calib.txt'), evalText: () => loadSotuText().eval });

const quality: Record<string, unknown>[] = [];
const speeds: Record<string, unknown>[] = [];
try {
  for (const m of models) {
    if (!existsSync(m.dir)) continue;
    const evalTokens = (await loadTokenizer(m.dir)).encode(m.evalText()).slice(0, 16384);
    const dense = await perplexity(m.dir, evalTokens);
    const denseParameters = (await inspectModel(m.dir)).parameters;
    console.log(JSON.stringify({ model: m.name, dense, denseParameters }));
    for (const sparsity of SPARSITIES) {
      const row: Record<string, unknown> = { model: m.name, sparsity, dense: Number(dense.toFixed(3)) };
      for (const { label, method, options } of METHODS) {
        const out = join(scratch, `${m.name.split(' ')[0]}-${method}-${options.allocation ?? 'uniform'}-${sparsity}`);
        const report = await prune({ model: m.dir, out, recipe: parseRecipe({ method, sparsity, options }), calibrationFile: m.calib, nsamples: 64, seqLen: 256, seed: 0 });
        row[label] = Number((await perplexity(out, evalTokens)).toFixed(3));
        row[`${label} parameters`] = report.shrunk!.parametersAfter;
        if (label === 'structprune (softmax)') row.softmaxWidths = report.shrunk!.layers.map((l) => `${l.intermediateSize}/${l.heads}/${l.kvHeads}`).join(' ');
        if (label.startsWith('structprune') && (sparsity === 0.3 || sparsity === 0.5)) {
          const measured = await speed(m.dir, out, (await inspectModel(m.dir)).config.vocabSize);
          speeds.push({ model: m.name, method: label, sparsity, denseParameters, prunedParameters: report.shrunk!.parametersAfter, ...measured });
          console.log(JSON.stringify(speeds[speeds.length - 1]));
        }
        rmSync(out, { recursive: true, force: true });
      }
      quality.push(row);
      console.log(JSON.stringify(row));
    }
  }
  // Where the linears dominate: a generated 33M-parameter Llama (hidden 512, MLP 1536, 8 layers, 8 heads /
  // 4 kv, vocab 8000), pruned data-free to 30% and 50% and timed against itself.
  const big = join(scratch, 'llama-33m');
  await writeRandomLlama(big, { hiddenSize: 512, intermediateSize: 1536, layers: 8, heads: 8, kvHeads: 4, vocabSize: 8000, maxPositions: 512, seed: 1 });
  const bigParameters = (await inspectModel(big)).parameters;
  for (const sparsity of [0.3, 0.5]) {
    const out = join(scratch, `llama-33m-${sparsity}`);
    const report = await prune({ model: big, out, recipe: parseRecipe({ method: 'magnitude-sp', sparsity }) });
    speeds.push({ model: 'generated Llama 33M', method: 'magnitude-sp', sparsity, denseParameters: bigParameters, prunedParameters: report.shrunk!.parametersAfter, ...(await speed(big, out, 8000)) });
    console.log(JSON.stringify(speeds[speeds.length - 1]));
    rmSync(out, { recursive: true, force: true });
  }
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
const file = join(repo, 'bench', quick ? 'structured-results-quick.json' : 'structured-results.json');
writeFileSync(file, `${JSON.stringify({ date: new Date().toISOString(), note: 'shared 2-core machine: speeds are ratios measured side by side', quality, speed: speeds }, null, 2)}\n`);
console.log(`wrote ${file}`);
