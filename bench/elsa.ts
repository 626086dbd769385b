// `npm run bench:elsa`: Elsa (lib/compress/elsa.ts), each run in its own process.
//   grid    stories260K at 90%: a small grid over lr, interval and λ (400 steps of 8 × 256 tokens) — how the
//           defaults were chosen; perplexity on the first 32,768 tokens of the eval text (windows of 256, the
//           protocol of bench:alps) and the last ‖x − z‖/‖x‖ before the hard projection
//   table   Elsa with its defaults (SPARQ_BENCH_ELSA_STEPS overrides the steps) at 50/70/80/90% and 2:4 on
//           stories260K, sotu-llama and the demo's trained model (when cached), next to magnitude, Wanda,
//           SparseGPT and ALPS measured in the same run on 64 × 256 calibration tokens (seed 0) of the
//           calibration text. The demo model uses its own split (the end of its training text to
//           calibrate, addresses from 2001 on to evaluate), as bench:quant-methods does. Elsa trains on
//           stories260K's calibration text, and for sotu-llama and the demo model on the addresses
//           1790–2000 they were trained on (see sotuTrainingText: their 1 MB calibration text is too small
//           for a training run).
//           SPARQ_BENCH_ELSA_MODELS=stories260K,sotu-llama,demo and SPARQ_BENCH_ELSA_SPARSITIES=0.9,2:4 pick
//           cells; each finished cell is written at once and replaces the same cell of an earlier run
//   speed   steps/s of one Elsa step (forward, backward, clip, proximal term, Adam; z/u every 4 steps) on
//           sotu-llama, 8 × 256 tokens, against the same ADMM step in plain PyTorch (bench/torch_elsa.py),
//           same windows and threads, 12 steps of which 2 are warm-up
//   memory  peak RSS of Elsa and Elsa-L (fp8 z/u, 8-bit moments) on generated Llamas of 30M (hidden 512,
//           MLP 1408, 8 layers, vocab 4096) and 119M parameters (hidden 1024, MLP 2816, 8 layers, vocab
//           8192), 2 steps of 1 × 64 tokens with a z-step after each
//   sotu-grid  sotu-llama at 90%, 200 steps: training text × lr, interval and λ schedule (why the defaults
//           changed from stories260K's lr 4e-3, interval 16, constant λ)
// SPARQ_BENCH_ELSA_PARTS=grid,sotu-grid,table,speed,memory picks parts (default: all). Writes bench/elsa-results.json
// (parts not run keep their previous results).
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { backendInfo, loadTokenizer, parseRecipe, prune, writeRandomLlama } from '../lib/index.js';
import { DecoderModel } from '../lib/models/decoder.js';
import { evaluatePerplexity } from '../lib/eval/perplexity.js';
import { sampleWindows } from '../lib/pipeline/calibration.js';
import { defaultCacheDir, lastBytes } from '../lib/demo/demo.js';
import { loadSotuText } from '../lib/demo/dataset.js';
import { ELSA_DEFAULTS, elsaWindows } from '../lib/compress/elsa.js';
import { readTextFile } from '../lib/io/text.js';
import { cachedDemoModel, python, repo, runJson, writeCalibration } from './util.js';

const shared = join(repo, '..', 'shared');
const resultsFile = join(repo, 'bench', 'elsa-results.json');
const EVAL_TOKENS = 32768;

if (process.argv[2] === 'child') {
  // child MODEL CALIB EVAL SPARSITY OPTIONS_JSON OUT [STEPS_TIMES]
  const [, , , model, calib, evalFile, sparsity, optionsJson, out] = process.argv;
  const stamps: number[] = [];
  const evalTokens = evalFile === '-' ? undefined : (await loadTokenizer(model)).encode(await readTextFile(evalFile));
  const report = await prune({
    model,
    out,
    overwrite: true,
    recipe: parseRecipe({ method: 'elsa', sparsity, options: JSON.parse(optionsJson) }),
    calibrationFile: calib,
    evalTokens,
    evalSeqLen: 256,
    evalMaxTokens: EVAL_TOKENS,
    onProgress: (p) => (p.stage.startsWith('loss') ? stamps.push(performance.now()) : undefined),
  });
  const t = report.training as Record<string, unknown>;
  process.stdout.write(
    `${JSON.stringify({
      perplexity: report.perplexityAfter,
      dense: report.perplexityBefore,
      steps: t.steps,
      tokensSeen: t.tokensSeen,
      seconds: t.seconds,
      finalLoss: t.finalLoss,
      finalViolation: t.finalViolation,
      violations: (t.log as { violation: number }[]).map((e) => Number(e.violation.toFixed(4))),
      stepSeconds: stamps.map((s, i) => (i ? (s - stamps[i - 1]) / 1000 : 0)).slice(1),
      peakRssBytes: report.totals.peakRssBytes,
      estimatedPeakBytes: t.estimatedPeakBytes,
    })}\n`,
  );
  process.exit(0);
}

if (process.argv[2] === 'memory-child') {
  // memory-child MODEL OPTIONS_JSON OUT: a generated model has no tokenizer, so the text is token ids.
  const [, , , model, optionsJson, out] = process.argv;
  const startRssBytes = process.memoryUsage().rss;
  const report = await prune({
    model,
    out,
    overwrite: true,
    recipe: parseRecipe({ method: 'elsa', sparsity: '0.9', options: JSON.parse(optionsJson) }),
    calibrationTokens: Int32Array.from({ length: 4096 }, (_, i) => (i * 7919) % 4096),
  });
  const t = report.training as Record<string, unknown>;
  process.stdout.write(`${JSON.stringify({ startRssBytes, peakRssBytes: report.totals.peakRssBytes, estimatedPeakBytes: t.estimatedPeakBytes, seconds: t.seconds })}\n`);
  process.exit(0);
}

const parts = new Set((process.env.SPARQ_BENCH_ELSA_PARTS ?? 'grid,sotu-grid,table,speed,memory').split(','));
const threads = backendInfo('cpu').threads;
const scratch = mkdtempSync(join(tmpdir(), 'sparq-bench-elsa-'));
const readResults = () => (existsSync(resultsFile) ? (JSON.parse(readFileSync(resultsFile, 'utf8')) as Record<string, unknown>) : {});
const results: Record<string, unknown> = readResults();
/** Sets one part's results in the file, re-read first: two runs of different parts do not undo each other. */
function saveResult(key: string, value: unknown): void {
  results[key] = value;
  writeFileSync(resultsFile, `${JSON.stringify({ ...readResults(), [key]: value, date: new Date().toISOString(), cpu: cpus()[0]?.model, threads }, null, 2)}\n`);
}
interface BenchModel {
  name: string;
  dir: string;
  /** The one-shot methods' calibration text (64 windows of 256 tokens are drawn from it). */
  calib: string;
  eval: string;
  /** Elsa's training text, when not the calibration text. */
  train?: string;
}
const stories: BenchModel = { name: 'stories260K', dir: join(shared, 'fixtures', 'stories260K'), calib: join(shared, 'data', 'tinystories_calib.txt'), eval: join(shared, 'data', 'tinystories_val.txt') };
const sotu: BenchModel = { name: 'sotu-llama', dir: join(shared, 'fixtures', 'sotu-llama'), calib: join(shared, 'data', 'sotu_calib.txt'), eval: join(shared, 'data', 'sotu_eval.txt') };

/**
 * The State-of-the-Union addresses 1790–2000 (the npm dataset package the demo uses), written to the
 * scratch folder: the text sotu-llama and the demo model were trained on, disjoint from both eval texts
 * (2001 on). Elsa trains on it for those two models: on the 1 MB calibration text alone (≈ 280k tokens,
 * 1.5 passes at 200 steps) Elsa fits that text and not the language — sotu-llama at 2:4 reached a training
 * loss of 2.03 (perplexity 7.6, below the dense model's 18 on the same text) and 217 on the eval text.
 */
function sotuTrainingText(): string {
  const file = join(scratch, 'sotu-1790-2000.txt');
  if (!existsSync(file)) writeFileSync(file, sotuText().train);
  return file;
}
/** The dataset package's text, read once (both the demo model's split and the training text use it). */
let sotuLoaded: ReturnType<typeof loadSotuText> | undefined;
const sotuText = () => (sotuLoaded ??= loadSotuText());
const self = fileURLToPath(import.meta.url);

/** The demo's cached Llama (3.7M) with its own split written to the scratch folder, or undefined if not cached. */
function demoModel(): BenchModel | undefined {
  const dir = cachedDemoModel(defaultCacheDir());
  if (!dir) return undefined;
  const text = sotuText();
  const calib = join(scratch, 'demo-calib.txt');
  const evalFile = join(scratch, 'demo-eval.txt');
  writeFileSync(calib, lastBytes(text.train, 400_000));
  writeFileSync(evalFile, text.eval);
  return { name: 'demo sotu-llama (3.7M)', dir, calib, eval: evalFile, train: sotuTrainingText() };
}

/** Perplexity under the protocol of bench:alps: the first 32,768 eval tokens in windows of 256. */
async function perplexityOf(dir: string, evalTokens: Int32Array): Promise<number> {
  const model = await DecoderModel.open(dir);
  try {
    return (await evaluatePerplexity(model, evalTokens, { seqLen: 256, maxTokens: EVAL_TOKENS })).perplexity;
  } finally {
    await model.close();
  }
}

function elsaRun(model: BenchModel, sparsity: string, options: Record<string, unknown>, evalFile: string | undefined = model.eval) {
  return runJson(process.execPath, [self, 'child', model.dir, model.train ?? model.calib, evalFile ?? '-', sparsity, JSON.stringify(options), join(scratch, 'out')]);
}

try {
  if (parts.has('grid')) {
    // lr, interval and λ (constant), then the rising λ at two lr/interval pairs (the last row is the
    // default). Rows already in the results file are kept (SPARQ_BENCH_ELSA_FRESH=1 runs them again).
    const rows: Record<string, unknown>[] = [
      { lr: 1e-3, interval: 16, lambda: 0.5, lambdaSchedule: 'constant' },
      { lr: 1e-3, interval: 64, lambda: 0.5, lambdaSchedule: 'constant' },
      { lr: 4e-3, interval: 16, lambda: 0.5, lambdaSchedule: 'constant' },
      { lr: 1e-3, interval: 16, lambda: 0.05, lambdaSchedule: 'constant' },
      { lr: 4e-3, interval: 16, lambda: 0.5, lambdaFinal: 5, lambdaSchedule: 'cosine' },
      { lr: 1e-3, interval: 64, lambda: 0.5, lambdaFinal: 5, lambdaSchedule: 'cosine' },
    ];
    const key = (r: Record<string, unknown>) => JSON.stringify(['lr', 'interval', 'lambda', 'projection', 'lambdaFinal', 'lambdaSchedule'].map((k) => r[k] ?? null));
    const saved = ((readResults().grid as { rows?: Record<string, unknown>[] } | undefined)?.rows ?? []).filter((r) => process.env.SPARQ_BENCH_ELSA_FRESH !== '1');
    const grid = [...saved];
    for (const options of rows) {
      if (saved.some((r) => key(r) === key(options))) continue;
      const row = { ...options, ...elsaRun(stories, '0.9', options) };
      console.log(JSON.stringify(row));
      grid.push(row);
      saveResult('grid', { model: 'stories260K', sparsity: 0.9, steps: 400, batch: 8, seqLen: 256, rows: grid });
    }
  }

  if (parts.has('sotu-grid')) {
    // sotu-llama at 90%, 200 steps: the training text (its 1 MB calibration text, or the 1790–2000
    // addresses it was trained on) against lr, interval and λ schedule — why the defaults changed.
    const text = { calib: sotu.calib, 'sotu 1790-2000': sotuTrainingText() };
    const rows: [keyof typeof text, Record<string, unknown>][] = [
      ['calib', { lr: 4e-3, interval: 16, lambdaSchedule: 'constant' }],
      ['calib', { lr: 4e-3, interval: 16, lambdaFinal: 5, lambdaSchedule: 'cosine' }],
      ['calib', { lr: 1e-3, interval: 64, lambdaFinal: 5, lambdaSchedule: 'cosine' }],
      ['sotu 1790-2000', { lr: 4e-3, interval: 16, lambdaSchedule: 'constant' }],
      ['sotu 1790-2000', { lr: 4e-3, interval: 16, lambdaFinal: 5, lambdaSchedule: 'cosine' }],
      ['sotu 1790-2000', { lr: 2e-3, interval: 32, lambdaFinal: 5, lambdaSchedule: 'cosine' }],
      ['sotu 1790-2000', { lr: 1e-3, interval: 64, lambdaFinal: 5, lambdaSchedule: 'cosine' }],
    ];
    const key = (r: Record<string, unknown>) => JSON.stringify(['text', 'lr', 'interval', 'lambdaFinal', 'lambdaSchedule'].map((k) => r[k] ?? null));
    const grid = [...(((readResults()['sotu-grid'] as { rows?: Record<string, unknown>[] } | undefined)?.rows ?? []).filter(() => process.env.SPARQ_BENCH_ELSA_FRESH !== '1'))];
    for (const [which, options] of rows) {
      if (grid.some((r) => key(r) === key({ text: which, ...options }))) continue;
      const row = { text: which, ...options, ...elsaRun({ ...sotu, train: text[which] }, '0.9', { steps: 200, lambda: 0.5, ...options }) };
      console.log(JSON.stringify(row));
      grid.push(row);
      saveResult('sotu-grid', { model: 'sotu-llama', sparsity: 0.9, steps: 200, batch: 8, seqLen: 256, alps: 101.413, rows: grid });
    }
  }

  if (parts.has('table')) {
    const steps = Number(process.env.SPARQ_BENCH_ELSA_STEPS ?? ELSA_DEFAULTS.steps);
    const demo = demoModel();
    const models = [stories, { ...sotu, train: sotuTrainingText() }, ...(demo ? [demo] : [])].filter((m) => !process.env.SPARQ_BENCH_ELSA_MODELS || process.env.SPARQ_BENCH_ELSA_MODELS.split(',').some((n) => m.name.startsWith(n)));
    const sparsities = (process.env.SPARQ_BENCH_ELSA_SPARSITIES ?? '0.5,0.7,0.8,0.9,2:4').split(',');
    const oneShot = ['magnitude', 'wanda', 'sparsegpt', 'alps'];
    for (const m of models) {
      const tokenizer = await loadTokenizer(m.dir);
      const windows = sampleWindows(tokenizer.encode(await readTextFile(m.calib)), { nsamples: 64, seqLen: 256, seed: 0 });
      const evalTokens = tokenizer.encode(await readTextFile(m.eval));
      const dense = await perplexityOf(m.dir, evalTokens);
      for (const sparsity of sparsities) {
        const row: Record<string, unknown> = { model: m.name, sparsity, dense, oneShotTokens: 64 * 256, elsaText: m.train ? 'SOTU 1790–2000 (the model’s training text)' : 'the calibration text' };
        for (const method of oneShot) {
          const out = join(scratch, 'one-shot');
          const report = await prune({ model: m.dir, out, overwrite: true, recipe: parseRecipe({ method, sparsity }), calibrationWindows: windows });
          row[method] = Number((await perplexityOf(out, evalTokens)).toFixed(3));
          row[`${method} s`] = Number(report.totals.seconds.toFixed(1));
        }
        row.elsa = elsaRun(m, sparsity, { steps });
        console.log(JSON.stringify(row));
        // Re-read: another table run (other models or sparsities) may have added cells meanwhile. Rows of an
        // earlier layout (Elsa's fields at the top) are dropped, not mixed in.
        const saved = readResults().table;
        const table = Array.isArray(saved) ? (saved as Record<string, unknown>[]).filter((r) => 'elsa' in r) : [];
        const at = table.findIndex((r) => r.model === m.name && r.sparsity === sparsity);
        if (at >= 0) table[at] = row;
        else table.push(row);
        saveResult('table', table);
      }
    }
  }

  if (parts.has('speed')) {
    // The windows sparq's sampler draws for steps 1..12 (seed 0), written out for torch.
    const tokens = (await loadTokenizer(sotu.dir)).encode(await readTextFile(sotu.calib));
    const steps = 12;
    const windows = Array.from({ length: steps }, (_, t) => elsaWindows(tokens, 8, 256, 0, t + 1)).flat();
    const windowsFile = writeCalibration(join(scratch, 'windows.json'), windows);
    const ours = elsaRun(sotu, '0.9', { steps, interval: 4, lambdaSchedule: 'constant', checkpointIntervals: 0 }, undefined);
    const oursTimed = (ours.stepSeconds as number[]).slice(1); // stamps start after step 1: drop one more warm-up step
    const sparqStepsPerSecond = oursTimed.length / oursTimed.reduce((a, b) => a + b, 0);
    const torch = runJson(python, [join(repo, 'bench', 'torch_elsa.py'), sotu.dir, '--windows', windowsFile, '--sparsity', '0.9', '--steps', String(steps), '--warmup', '2', '--threads', String(threads), '--interval', '4', '--lr', String(ELSA_DEFAULTS.lr), '--lmda', String(ELSA_DEFAULTS.lambda), '--grad-clip', String(ELSA_DEFAULTS.gradClip)]);
    saveResult('speed', { model: 'sotu-llama', batch: 8, seqLen: 256, steps, warmup: 2, interval: 4, sparqStepsPerSecond, torch, speedup: sparqStepsPerSecond / torch.steps_per_second, sparqViolations: ours.violations, torchViolations: torch.violations });
    console.log(`Elsa step on sotu-llama (8 × 256, ${threads} threads): sparq ${sparqStepsPerSecond.toFixed(3)} steps/s, torch ${torch.steps_per_second?.toFixed(3) ?? torch.error} → ${(sparqStepsPerSecond / torch.steps_per_second).toFixed(2)}×`);
    console.log(`violations per interval: sparq ${JSON.stringify(ours.violations)}, torch ${JSON.stringify(torch.violations?.map((v: number) => Number(v.toFixed(4))))}`);
  }

  if (parts.has('memory')) {
    // Two sizes: the state Elsa-L shrinks is 24 → 12 bytes per weight, while the process itself (node,
    // the addon, OpenBLAS's buffers, the decode scratch) costs a fixed ~150 MiB, so the ratio of peak RSS
    // falls towards 0.5 as the model grows.
    const sizes = [
      { label: 'generated Llama 30M', config: { hiddenSize: 512, intermediateSize: 1408, layers: 8, heads: 8, vocabSize: 4096, maxPositions: 256, seed: 4 } },
      { label: 'generated Llama 119M', config: { hiddenSize: 1024, intermediateSize: 2816, layers: 8, heads: 16, vocabSize: 8192, maxPositions: 256, seed: 4 } },
    ];
    const memory: Record<string, unknown>[] = [];
    for (const size of sizes) {
      const dir = join(scratch, 'generated');
      rmSync(dir, { recursive: true, force: true });
      await writeRandomLlama(dir, size.config);
      const opened = await DecoderModel.open(dir);
      let parameters = 0;
      for (const name of opened.checkpoint.names()) parameters += (await opened.checkpoint.info(name)).shape.reduce((a: number, b: number) => a * b, 1);
      await opened.close();
      const row: Record<string, unknown> = { model: size.label, parameters, steps: 2, batch: 1, seqLen: 65, interval: 1 };
      for (const [label, options] of [
        ['elsa', {}],
        ['elsa-l', { splitStorage: 'fp8', momentBits: 8 }],
      ] as const) {
        row[label] = runJson(process.execPath, [self, 'memory-child', dir, JSON.stringify({ steps: 2, batch: 1, seqLen: 65, interval: 1, checkpointIntervals: 0, ...options }), join(scratch, 'mem-out')]);
      }
      const a = row.elsa as { peakRssBytes: number; estimatedPeakBytes: number };
      const b = row['elsa-l'] as { peakRssBytes: number; estimatedPeakBytes: number };
      row.ratio = b.peakRssBytes / a.peakRssBytes;
      row.estimatedRatio = b.estimatedPeakBytes / a.estimatedPeakBytes;
      memory.push(row);
      console.log(`peak RSS on a ${(parameters / 1e6).toFixed(1)}M-parameter model: Elsa ${(a.peakRssBytes / 2 ** 20).toFixed(0)} MiB, Elsa-L ${(b.peakRssBytes / 2 ** 20).toFixed(0)} MiB (${(b.peakRssBytes / a.peakRssBytes).toFixed(2)}×; estimated state ${(b.estimatedPeakBytes / a.estimatedPeakBytes).toFixed(2)}×)`);
    }
    saveResult('memory', memory);
  }
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
