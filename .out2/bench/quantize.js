// `npm run bench:quantize`:
// (1) perplexity of stories260K and sotu-llama quantized by RTN and GPTQ at W8, W4 (per channel and
//     groups of 64 and 32), W3 and W2, and SparseGPT 2:4 + W4 jointly (one sweep) against sequentially
//     (prune, then round to nearest); calibration 64×256 windows of the shared calibration text, perplexity
//     on the first 32,768 tokens of the shared eval text in windows of 256 (format dense: the decoded
//     weights; a short last group where the widths do not divide, as stories260K's 172-wide down_proj);
// (2) GPTQ seconds per linear against a plain-PyTorch CPU GPTQ (bench/torch_gptq.py) on the same windows
//     and threads, each side in its own process; SPARQ_BENCH_QUANTIZE_GENERATED=1 adds a generated
//     134M-parameter Llama (8×512 windows), where the layers are large enough for the sweep to dominate;
// (3) with SPARQ_BENCH_BIG=1, the peak RSS quantizing a generated model of over 4 GB (GPTQ W4 g128,
//     compressed-tensors).
// SPARQ_BENCH_QUANTIZE_SKIP_TABLE=1 skips (1). Writes bench/quantize-results.json and prints each row.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { backendInfo, DecoderModel, evaluatePerplexity, loadTokenizer, parseRecipe, quantize, sampleWindows, writeRandomLlama } from '../lib/index.js';
import { folderBytes, generatedLlama134M, python, repo, runJson, syntheticWindows, writeCalibration } from './util.js';
const shared = join(repo, '..', 'shared');
// Child mode: GPTQ W4 g128 on the windows of a calibration file; prints one JSON line.
if (process.argv[2] === 'child') {
    const [, , , model, calibFile, out, format] = process.argv;
    const calib = JSON.parse(readFileSync(calibFile, 'utf8'));
    const report = await quantize({
        model,
        out,
        overwrite: true,
        format: format,
        recipe: parseRecipe({ method: 'gptq', quantize: { bits: 4, groupSize: 128 } }),
        calibrationWindows: calib.windows.map((w) => Int32Array.from(w)),
        measureError: false,
    });
    const linears = report.linears.length;
    process.stdout.write(`${JSON.stringify({ seconds: report.totals.seconds, compressSeconds: report.totals.stageSeconds.compress, linears, secondsPerLinear: report.totals.stageSeconds.compress / linears, peakRssBytes: report.totals.peakRssBytes, stages: report.totals.stageSeconds })}\n`);
    process.exit(0);
}
const threads = backendInfo('cpu').threads;
const scratch = mkdtempSync(join(tmpdir(), 'sparq-bench-quantize-'));
const models = [
    { name: 'stories260K', dir: join(shared, 'fixtures', 'stories260K'), calib: join(shared, 'data', 'tinystories_calib.txt'), eval: join(shared, 'data', 'tinystories_val.txt') },
    { name: 'sotu-llama', dir: join(shared, 'fixtures', 'sotu-llama'), calib: join(shared, 'data', 'sotu_calib.txt'), eval: join(shared, 'data', 'sotu_eval.txt') },
];
const SCHEMES = [
    { label: 'W8 per channel', quantize: { bits: 8, groupSize: 0 } },
    { label: 'W4 per channel', quantize: { bits: 4, groupSize: 0 } },
    { label: 'W4 g64', quantize: { bits: 4, groupSize: 64 } },
    { label: 'W4 g32', quantize: { bits: 4, groupSize: 32 } },
    { label: 'W3 g32', quantize: { bits: 3, groupSize: 32 } },
    { label: 'W2 g32', quantize: { bits: 2, groupSize: 32 } },
];
function compareRuntime(name, dir, calibFile) {
    const ours = runJson(process.execPath, [fileURLToPath(import.meta.url), 'child', dir, calibFile, join(scratch, 'gptq-out'), 'dense']);
    const torch = runJson(python, [join(repo, 'bench', 'torch_gptq.py'), dir, calibFile, String(threads), '--bits', '4', '--group-size', '128']);
    const row = {
        model: name,
        sparqSecondsPerLinear: ours.secondsPerLinear ?? ours.error,
        torchSecondsPerLinear: torch.secondsPerLinear ?? torch.error,
        speedup: ours.secondsPerLinear && torch.secondsPerLinear ? Number((torch.secondsPerLinear / ours.secondsPerLinear).toFixed(2)) : null,
        sparqSeconds: ours.seconds,
        torchSeconds: torch.seconds,
        wholeRunSpeedup: ours.seconds && torch.seconds ? Number((torch.seconds / ours.seconds).toFixed(2)) : null,
        sparqStages: ours.stages,
        torchStages: torch.stages,
    };
    console.log(JSON.stringify(row));
    return row;
}
try {
    const table = [];
    const speed = [];
    let memory = null;
    for (const m of models) {
        const tokenizer = await loadTokenizer(m.dir);
        const windows = sampleWindows(tokenizer.encode(readFileSync(m.calib, 'utf8')), { nsamples: 64, seqLen: 256, seed: 0 });
        const evalTokens = tokenizer.encode(readFileSync(m.eval, 'utf8')).slice(0, 32768);
        const perplexity = async (dir) => {
            const model = await DecoderModel.open(dir);
            const result = await evaluatePerplexity(model, evalTokens, { seqLen: 256 });
            await model.close();
            return Number(result.perplexity.toFixed(3));
        };
        const run = async (recipe) => {
            const out = join(scratch, 'out');
            const report = await quantize({ model: m.dir, out, overwrite: true, format: 'dense', recipe: parseRecipe(recipe), calibrationWindows: windows, measureError: false });
            return { perplexity: await perplexity(out), seconds: Number(report.totals.seconds.toFixed(1)), bits: Number(report.totals.bitsPerWeight?.toFixed(3)) };
        };
        if (process.env.SPARQ_BENCH_QUANTIZE_SKIP_TABLE !== '1') {
            const dense = await perplexity(m.dir);
            for (const scheme of SCHEMES) {
                const rtn = await run({ method: 'rtn', quantize: scheme.quantize });
                const gptq = await run({ method: 'gptq', quantize: scheme.quantize });
                const row = { model: m.name, dense, scheme: scheme.label, bitsPerWeight: rtn.bits, rtn: rtn.perplexity, gptq: gptq.perplexity, 'rtn s': rtn.seconds, 'gptq s': gptq.seconds };
                console.log(JSON.stringify(row));
                table.push(row);
            }
            for (const scheme of SCHEMES.filter((s) => s.label === 'W4 per channel' || s.label === 'W4 g32')) {
                const joint = await run({ method: 'sparsegpt', sparsity: '2:4', quantize: scheme.quantize });
                const sequential = await run({ method: 'sparsegpt', sparsity: '2:4', quantize: scheme.quantize, options: { joint: false } });
                const pruned = await run({ method: 'sparsegpt', sparsity: '2:4', quantize: { bits: 8, groupSize: 0 }, options: { joint: false } });
                const row = { model: m.name, dense, scheme: `2:4 + ${scheme.label}`, joint: joint.perplexity, sequential: sequential.perplexity, '2:4 + W8 (≈ pruning alone)': pruned.perplexity };
                console.log(JSON.stringify(row));
                table.push(row);
            }
        }
        const calibFile = writeCalibration(join(scratch, `${m.name}.calib.json`), windows.slice(0, 32));
        speed.push(compareRuntime(m.name, m.dir, calibFile));
    }
    if (process.env.SPARQ_BENCH_QUANTIZE_GENERATED === '1') {
        const { dir, calibFile } = await generatedLlama134M(scratch);
        speed.push(compareRuntime('generated Llama 134M, 8×512', dir, calibFile));
    }
    if (process.env.SPARQ_BENCH_BIG === '1') {
        const bigDir = join(scratch, 'llama-big');
        await writeRandomLlama(bigDir, { hiddenSize: 2048, intermediateSize: 5632, layers: 20, heads: 16, vocabSize: 32000, maxPositions: 2048, seed: 2, maxShardBytes: 2 ** 30 });
        const calibFile = writeCalibration(join(scratch, 'big.calib.json'), syntheticWindows(8, 256, 32000));
        const measured = runJson(process.execPath, [fileURLToPath(import.meta.url), 'child', bigDir, calibFile, join(scratch, 'big-out'), 'compressed-tensors']);
        const bytes = folderBytes(bigDir);
        memory = { diskBytes: bytes, blockBytesF32: 4 * (4 * 2048 * 2048 + 3 * 2048 * 5632), calibration: '8×256', ...measured, rssOverDisk: typeof measured.peakRssBytes === 'number' ? Number((measured.peakRssBytes / bytes).toFixed(3)) : null };
        console.log('peak RSS quantizing the generated model:', memory);
    }
    const resultsFile = join(repo, 'bench', 'quantize-results.json');
    const previous = existsSync(resultsFile) ? JSON.parse(readFileSync(resultsFile, 'utf8')) : {};
    writeFileSync(resultsFile, `${JSON.stringify({ date: new Date().toISOString(), cpu: cpus()[0]?.model, threads, perplexity: table.length > 0 ? table : previous.perplexity ?? [], runtime: speed, memory: memory ?? previous.memory ?? null }, null, 2)}\n`);
}
finally {
    rmSync(scratch, { recursive: true, force: true });
}
//# sourceMappingURL=quantize.js.map