// `npm run bench:elsa`: Elsa (lib/compress/elsa.ts), each run in its own process.
//   grid    stories260K at 90%: a small grid over lr, interval and λ (400 steps of 8 × 256 tokens) — how the
//           defaults were chosen; perplexity on the first 32,768 tokens of the shared eval text (windows of
//           256, the protocol of bench:alps) and the last ‖x − z‖/‖x‖ before the hard projection
//   table   Elsa at 50/70/80/90% and 2:4 on stories260K and sotu-llama with the defaults (sotu-llama with
//           SPARQ_BENCH_ELSA_SOTU_STEPS steps, default 100: on a shared 2-core VM 400 steps of a 3.7M model
//           at five sparsities take too long); the one-shot baselines come from bench/alps-results.json
//           (64 × 256 calibration tokens, the same eval protocol)
//   speed   steps/s of one Elsa step (forward, backward, clip, proximal term, Adam; z/u every 4 steps) on
//           sotu-llama, 8 × 256 tokens, against the same ADMM step in plain PyTorch (bench/torch_elsa.py),
//           same windows and threads, 12 steps of which 2 are warm-up
//   memory  peak RSS of Elsa and Elsa-L (fp8 z/u, 8-bit moments) on a generated 34M-parameter Llama
//           (hidden 512, MLP 1408, 8 layers, vocab 4096), 2 steps of 1 × 64 tokens
// SPARQ_BENCH_ELSA_PARTS=grid,table,speed,memory picks parts (default: all). Writes bench/elsa-results.json
// (parts not run keep their previous results).
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { backendInfo, loadTokenizer, parseRecipe, prune, writeRandomLlama } from '../lib/index.js';
import { DecoderModel } from '../lib/models/decoder.js';
import { ELSA_DEFAULTS, elsaWindows } from '../lib/compress/elsa.js';
import { readTextFile } from '../lib/io/text.js';
import { python, repo, runJson, writeCalibration } from './util.js';

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
  const report = await prune({
    model,
    out,
    overwrite: true,
    recipe: parseRecipe({ method: 'elsa', sparsity: '0.9', options: JSON.parse(optionsJson) }),
    calibrationTokens: Int32Array.from({ length: 4096 }, (_, i) => (i * 7919) % 4096),
  });
  const t = report.training as Record<string, unknown>;
  process.stdout.write(`${JSON.stringify({ peakRssBytes: report.totals.peakRssBytes, estimatedPeakBytes: t.estimatedPeakBytes, seconds: t.seconds })}\n`);
  process.exit(0);
}

const parts = new Set((process.env.SPARQ_BENCH_ELSA_PARTS ?? 'grid,table,speed,memory').split(','));
const threads = backendInfo('cpu').threads;
const scratch = mkdtempSync(join(tmpdir(), 'sparq-bench-elsa-'));
const previous = existsSync(resultsFile) ? (JSON.parse(readFileSync(resultsFile, 'utf8')) as Record<string, unknown>) : {};
const results: Record<string, unknown> = { ...previous, date: new Date().toISOString(), cpu: cpus()[0]?.model, threads };
const stories = { name: 'stories260K', dir: join(shared, 'fixtures', 'stories260K'), calib: join(shared, 'data', 'tinystories_calib.txt'), eval: join(shared, 'data', 'tinystories_val.txt') };
const sotu = { name: 'sotu-llama', dir: join(shared, 'fixtures', 'sotu-llama'), calib: join(shared, 'data', 'sotu_calib.txt'), eval: join(shared, 'data', 'sotu_eval.txt') };
const self = fileURLToPath(import.meta.url);

function elsaRun(model: typeof stories, sparsity: string, options: Record<string, unknown>, evalFile: string | undefined = model.eval) {
  return runJson(process.execPath, [self, 'child', model.dir, model.calib, evalFile ?? '-', sparsity, JSON.stringify(options), join(scratch, 'out')]);
}

try {
  if (parts.has('grid')) {
    const grid: Record<string, unknown>[] = [];
    for (const [lr, interval, lambda] of [
      [1e-3, 16, 0.5],
      [1e-3, 64, 0.5],
      [4e-3, 16, 0.5],
      [1e-3, 16, 0.05],
    ]) {
      const row = { lr, interval, lambda, ...elsaRun(stories, '0.9', { lr, interval, lambda }) };
      console.log(JSON.stringify(row));
      grid.push(row);
    }
    results.grid = { model: 'stories260K', sparsity: 0.9, steps: 400, batch: 8, seqLen: 256, rows: grid };
  }

  if (parts.has('table')) {
    const sotuSteps = Number(process.env.SPARQ_BENCH_ELSA_SOTU_STEPS ?? 100);
    const table: Record<string, unknown>[] = [];
    for (const [model, options] of [
      [stories, {}],
      [sotu, { steps: sotuSteps }],
    ] as const) {
      for (const sparsity of ['0.5', '0.7', '0.8', '0.9', '2:4']) {
        const row = { model: model.name, sparsity, ...elsaRun(model, sparsity, options) };
        console.log(JSON.stringify(row));
        table.push(row);
      }
    }
    results.table = table;
  }

  if (parts.has('speed')) {
    // The windows sparq's sampler draws for steps 1..12 (seed 0), written out for torch.
    const tokens = (await loadTokenizer(sotu.dir)).encode(await readTextFile(sotu.calib));
    const steps = 12;
    const windows = Array.from({ length: steps }, (_, t) => elsaWindows(tokens, 8, 256, 0, t + 1)).flat();
    const windowsFile = writeCalibration(join(scratch, 'windows.json'), windows);
    const ours = elsaRun(sotu, '0.9', { steps, interval: 4, checkpointIntervals: 0 }, undefined);
    const oursTimed = (ours.stepSeconds as number[]).slice(1); // stamps start after step 1: drop one more warm-up step
    const sparqStepsPerSecond = oursTimed.length / oursTimed.reduce((a, b) => a + b, 0);
    const torch = runJson(python, [join(repo, 'bench', 'torch_elsa.py'), sotu.dir, '--windows', windowsFile, '--sparsity', '0.9', '--steps', String(steps), '--warmup', '2', '--threads', String(threads), '--interval', '4', '--lr', String(ELSA_DEFAULTS.lr), '--lmda', String(ELSA_DEFAULTS.lambda), '--grad-clip', String(ELSA_DEFAULTS.gradClip)]);
    results.speed = { model: 'sotu-llama', batch: 8, seqLen: 256, steps, warmup: 2, interval: 4, sparqStepsPerSecond, torch, speedup: sparqStepsPerSecond / torch.steps_per_second, sparqViolations: ours.violations, torchViolations: torch.violations };
    console.log(`Elsa step on sotu-llama (8 × 256, ${threads} threads): sparq ${sparqStepsPerSecond.toFixed(3)} steps/s, torch ${torch.steps_per_second?.toFixed(3) ?? torch.error} → ${(sparqStepsPerSecond / torch.steps_per_second).toFixed(2)}×`);
    console.log(`violations per interval: sparq ${JSON.stringify(ours.violations)}, torch ${JSON.stringify(torch.violations?.map((v: number) => Number(v.toFixed(4))))}`);
  }

  if (parts.has('memory')) {
    const dir = join(scratch, 'generated');
    await writeRandomLlama(dir, { hiddenSize: 512, intermediateSize: 1408, layers: 8, heads: 8, vocabSize: 4096, maxPositions: 256, seed: 4 });
    const opened = await DecoderModel.open(dir);
    let parameters = 0;
    for (const name of opened.checkpoint.names()) parameters += (await opened.checkpoint.info(name)).shape.reduce((a: number, b: number) => a * b, 1);
    await opened.close();
    const memory: Record<string, unknown> = { model: 'generated Llama', parameters, steps: 2, batch: 1, seqLen: 65 };
    for (const [label, options] of [
      ['elsa', {}],
      ['elsa-l', { splitStorage: 'fp8', momentBits: 8 }],
    ] as const) {
      memory[label] = runJson(process.execPath, [self, 'memory-child', dir, JSON.stringify({ steps: 2, batch: 1, seqLen: 65, interval: 1, checkpointIntervals: 0, ...options }), join(scratch, 'mem-out')]);
    }
    const a = memory.elsa as { peakRssBytes: number };
    const b = memory['elsa-l'] as { peakRssBytes: number };
    memory.ratio = b.peakRssBytes / a.peakRssBytes;
    results.memory = memory;
    console.log(`peak RSS on a ${(parameters / 1e6).toFixed(1)}M-parameter model: Elsa ${(a.peakRssBytes / 2 ** 20).toFixed(0)} MiB, Elsa-L ${(b.peakRssBytes / 2 ** 20).toFixed(0)} MiB (${(b.peakRssBytes / a.peakRssBytes).toFixed(2)}×)`);
  }
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
writeFileSync(resultsFile, `${JSON.stringify(results, null, 2)}\n`);
