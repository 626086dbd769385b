// `npm run bench:prune`: seconds to prune with SparseGPT (50% unstructured and 2:4), sparq against a
// PyTorch CPU SparseGPT (bench/torch_sparsegpt.py, Debian's python3-torch) on the same calibration
// windows, threads and model: stories260K, sotu-llama and a generated ~134M-parameter Llama. Each side
// runs in its own process (sparq's includes reading and writing the model folder; torch's excludes
// loading). With SPARQ_BENCH_BIG=1 also the peak RSS pruning a generated model of over 4 GB on disk.
// Writes bench/prune-results.json.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { backendInfo, loadTokenizer, parseRecipe, prune, sampleWindows, writeRandomLlama } from '../lib/index.js';
import { folderBytes, python, repo, runJson, syntheticWindows, writeCalibration } from './util.js';
// Child mode: prune one model on the windows of a calibration file and print one JSON line.
if (process.argv[2] === 'child') {
    const [, , , model, calibFile, sparsity, out] = process.argv;
    const calib = JSON.parse(readFileSync(calibFile, 'utf8'));
    const report = await prune({ model, out, overwrite: true, recipe: parseRecipe({ method: 'sparsegpt', sparsity }), calibrationWindows: calib.windows.map((w) => Int32Array.from(w)) });
    process.stdout.write(`${JSON.stringify({ seconds: report.totals.seconds, sparsity: report.totals.sparsity, peakRssBytes: report.totals.peakRssBytes, stages: report.totals.stageSeconds })}\n`);
    process.exit(0);
}
const threads = backendInfo('cpu').threads;
const scratch = mkdtempSync(join(tmpdir(), 'sparq-bench-prune-'));
function compare(name, model, calib, sparsity) {
    const sparq = runJson(process.execPath, [fileURLToPath(import.meta.url), 'child', model, calib, sparsity, join(scratch, 'out')]);
    const torch = runJson(python, [join(repo, 'bench', 'torch_sparsegpt.py'), model, calib, String(threads), '--sparsity', sparsity]);
    const ratio = typeof sparq.seconds === 'number' && typeof torch.seconds === 'number' ? Number((torch.seconds / sparq.seconds).toFixed(2)) : null;
    const row = {
        model: name,
        sparsity,
        sparqSeconds: typeof sparq.seconds === 'number' ? Number(sparq.seconds.toFixed(2)) : sparq.error,
        torchSeconds: typeof torch.seconds === 'number' ? Number(torch.seconds.toFixed(2)) : torch.error,
        speedup: ratio,
        sparqPeakRssMiB: typeof sparq.peakRssBytes === 'number' ? Math.round(sparq.peakRssBytes / 2 ** 20) : null,
        torchPeakRssMiB: typeof torch.peak_rss_mb === 'number' ? Math.round(torch.peak_rss_mb) : null,
        sparqStages: sparq.stages,
        torchStages: torch.stages,
    };
    console.log(JSON.stringify(row));
    return row;
}
const rows = [];
let memory = null;
try {
    const shared = join(repo, '..', 'shared');
    for (const [name, dir, text, nsamples, seqLen] of [
        ['stories260K', join(shared, 'fixtures', 'stories260K'), join(shared, 'data', 'tinystories_calib.txt'), 128, 256],
        ['sotu-llama (3.6M)', join(shared, 'fixtures', 'sotu-llama'), join(shared, 'data', 'sotu_calib.txt'), 128, 256],
    ]) {
        if (!existsSync(dir))
            continue;
        const tokenizer = await loadTokenizer(dir);
        const calib = writeCalibration(join(scratch, `${name}.calib.json`), sampleWindows(tokenizer.encode(readFileSync(text, 'utf8')), { nsamples, seqLen, seed: 0 }));
        for (const sparsity of ['0.5', '2:4'])
            rows.push(compare(`${name}, ${nsamples}×${seqLen}`, dir, calib, sparsity));
    }
    const mediumDir = join(scratch, 'llama-134m');
    await writeRandomLlama(mediumDir, { hiddenSize: 768, intermediateSize: 2048, layers: 12, heads: 12, vocabSize: 32000, maxPositions: 2048, seed: 1 });
    const mediumCalib = writeCalibration(join(scratch, 'medium.calib.json'), syntheticWindows(32, 512, 32000));
    for (const sparsity of ['0.5', '2:4'])
        rows.push(compare(`generated Llama 134M (${(folderBytes(mediumDir) / 2 ** 20).toFixed(0)} MiB f32), 32×512`, mediumDir, mediumCalib, sparsity));
    if (process.env.SPARQ_BENCH_BIG === '1') {
        const bigDir = join(scratch, 'llama-big');
        await writeRandomLlama(bigDir, { hiddenSize: 2048, intermediateSize: 5632, layers: 20, heads: 16, vocabSize: 32000, maxPositions: 2048, seed: 2, maxShardBytes: 2 ** 30 });
        const calib = writeCalibration(join(scratch, 'big.calib.json'), syntheticWindows(8, 256, 32000));
        const measured = runJson(process.execPath, [fileURLToPath(import.meta.url), 'child', bigDir, calib, '0.5', join(scratch, 'big-out')]);
        const bytes = folderBytes(bigDir);
        memory = { diskBytes: bytes, blockBytesF32: 4 * (4 * 2048 * 2048 + 3 * 2048 * 5632), calibration: '8×256', ...measured, rssOverDisk: typeof measured.peakRssBytes === 'number' ? Number((measured.peakRssBytes / bytes).toFixed(3)) : null };
        console.log('peak RSS pruning the generated model:', memory);
    }
    writeFileSync(join(repo, 'bench', 'prune-results.json'), `${JSON.stringify({ date: new Date().toISOString(), cpu: cpus()[0]?.model, threads, rows, memory }, null, 2)}\n`);
}
finally {
    rmSync(scratch, { recursive: true, force: true });
}
//# sourceMappingURL=prune.js.map