// `npm run bench:structured-memory`: peak RSS of structured pruning on a generated Llama of over 4 GB on
// disk (hidden 2048, MLP 5632, 20 layers, vocab 32,000, f32, shards of 1 GiB), against the size of one
// decoder block in f32 — the streaming claim: the run holds about one block plus the calibration states,
// never the model. Each method runs in its own process (peak RSS is the process's maxRSS) on 8 synthetic
// windows of 256 tokens, removing 30% of the decoder linears' parameters, output shrunk. Writes
// bench/structured-memory-results.json. SPARQ_BENCH_STRUCTURED_METHODS (default wanda-sp,structprune).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { backendInfo, parseRecipe, prune, writeRandomLlama } from '../lib/index.js';
import { folderBytes, repo, runJson, syntheticWindows, writeCalibration } from './util.js';

if (process.argv[2] === 'child') {
  const [, , , model, calibFile, method, out] = process.argv;
  const calib = JSON.parse(readFileSync(calibFile, 'utf8')) as { windows: number[][] };
  const started = performance.now();
  const report = await prune({ model, out, overwrite: true, recipe: parseRecipe({ method, sparsity: 0.3 }), calibrationWindows: calib.windows.map((w) => Int32Array.from(w)) });
  const seconds = (performance.now() - started) / 1000;
  process.stdout.write(`${JSON.stringify({ seconds, reportPeakRssBytes: report.totals.peakRssBytes, maxRssBytes: process.resourceUsage().maxRSS * 1024, outBytes: folderBytes(out) })}\n`);
  process.exit(0);
}

const scratch = mkdtempSync(join(tmpdir(), 'sparq-bench-structured-memory-'));
try {
  const model = join(scratch, 'llama-big');
  const shape = { hiddenSize: 2048, intermediateSize: 5632, layers: 20, heads: 16, vocabSize: 32000 };
  await writeRandomLlama(model, { ...shape, maxPositions: 2048, seed: 2, maxShardBytes: 2 ** 30 });
  const diskBytes = folderBytes(model);
  const blockBytesF32 = 4 * (4 * shape.hiddenSize ** 2 + 3 * shape.hiddenSize * shape.intermediateSize);
  const calib = writeCalibration(join(scratch, 'calib.json'), syntheticWindows(8, 256, shape.vocabSize));
  const rows = [];
  for (const method of (process.env.SPARQ_BENCH_STRUCTURED_METHODS ?? 'wanda-sp,structprune').split(',')) {
    const measured = runJson(process.execPath, [fileURLToPath(import.meta.url), 'child', model, calib, method, join(scratch, `out-${method}`)]);
    const peak = typeof measured.maxRssBytes === 'number' ? measured.maxRssBytes : null;
    const row = { method, sparsity: 0.3, ...measured, peakOverDisk: peak ? Number((peak / diskBytes).toFixed(3)) : null, peakOverBlock: peak ? Number((peak / blockBytesF32).toFixed(2)) : null };
    console.log(JSON.stringify(row));
    rows.push(row);
    rmSync(join(scratch, `out-${method}`), { recursive: true, force: true });
    // Written after every method: a long run stopped part way keeps what it measured.
    const result = { date: new Date().toISOString(), cpu: cpus()[0]?.model, threads: backendInfo('cpu').threads, model: { ...shape, diskBytes, blockBytesF32 }, calibration: '8×256 synthetic', rows };
    writeFileSync(join(repo, 'bench', 'structured-memory-results.json'), `${JSON.stringify(result, null, 2)}\n`);
  }
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
