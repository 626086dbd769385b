// `npm run bench:alps`: (1) perplexity of stories260K and sotu-llama pruned by magnitude, Wanda,
// SparseGPT and ALPS at 50–90% and 2:4 (calibration 64×256 windows of the shared calibration text,
// perplexity on the first 32,768 tokens of the shared eval text in windows of 256), with seconds per
// run; (2) ALPS against a PyTorch CPU implementation of the reference algorithm (bench/torch_alps.py)
// at equal ADMM iterations (30 per layer), same windows and threads, each in its own process.
// SPARQ_BENCH_ALPS_GENERATED=1 adds (2) on a generated 134M-parameter Llama (8×512 random windows), where
// the layers are large enough for GEMMs to dominate; SPARQ_BENCH_ALPS_SKIP_TABLE=1 skips (1).
// Writes bench/alps-results.json and prints the tables.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { backendInfo, DecoderModel, evaluatePerplexity, loadTokenizer, parseRecipe, prune, sampleWindows } from '../lib/index.js';
import { generatedLlama134M, python, repo, runJson, writeCalibration } from './util.js';
const shared = join(repo, '..', 'shared');
const ITERATIONS = 30;
if (process.argv[2] === 'child') {
    const [, , , model, calibFile, sparsity, out] = process.argv;
    const calib = JSON.parse(readFileSync(calibFile, 'utf8'));
    const report = await prune({
        model,
        out,
        overwrite: true,
        recipe: parseRecipe({ method: 'alps', sparsity, options: { fixedIterations: ITERATIONS } }),
        calibrationWindows: calib.windows.map((w) => Int32Array.from(w)),
    });
    process.stdout.write(`${JSON.stringify({ seconds: report.totals.seconds, compressSeconds: report.totals.stageSeconds.compress })}\n`);
    process.exit(0);
}
const threads = backendInfo('cpu').threads;
const scratch = mkdtempSync(join(tmpdir(), 'sparq-bench-alps-'));
const models = [
    { name: 'stories260K', dir: join(shared, 'fixtures', 'stories260K'), calib: join(shared, 'data', 'tinystories_calib.txt'), eval: join(shared, 'data', 'tinystories_val.txt') },
    { name: 'sotu-llama', dir: join(shared, 'fixtures', 'sotu-llama'), calib: join(shared, 'data', 'sotu_calib.txt'), eval: join(shared, 'data', 'sotu_eval.txt') },
];
const SPARSITIES = ['0.5', '0.6', '0.7', '0.8', '0.9', '2:4'];
const METHODS = ['magnitude', 'wanda', 'sparsegpt', 'alps'];
/** ALPS at 70% with 30 iterations per layer, sparq and torch each in its own process on the same windows. */
function compareRuntime(name, dir, calibFile) {
    const ours = runJson(process.execPath, [fileURLToPath(import.meta.url), 'child', dir, calibFile, '0.7', join(scratch, 'alps-out')]);
    const torch = runJson(python, [join(repo, 'bench', 'torch_alps.py'), dir, calibFile, String(threads), '--sparsity', '0.7', '--iterations', String(ITERATIONS)]);
    const row = {
        model: name,
        iterations: ITERATIONS,
        sparqSeconds: ours.seconds,
        torchSeconds: torch.seconds ?? torch.error,
        speedup: ours.seconds && torch.seconds ? Number((torch.seconds / ours.seconds).toFixed(2)) : null,
        sparqAlpsSeconds: ours.compressSeconds,
        torchAlpsSeconds: torch.stages?.prune,
        alpsSpeedup: ours.compressSeconds && torch.stages ? Number((torch.stages.prune / ours.compressSeconds).toFixed(2)) : null,
    };
    console.log(JSON.stringify(row));
    return row;
}
try {
    const table = [];
    const speed = [];
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
        if (process.env.SPARQ_BENCH_ALPS_SKIP_TABLE !== '1') {
            const dense = await perplexity(m.dir);
            for (const sparsity of SPARSITIES) {
                const row = { model: m.name, dense, sparsity };
                for (const method of METHODS) {
                    const out = join(scratch, 'out');
                    const report = await prune({ model: m.dir, out, overwrite: true, recipe: parseRecipe({ method, sparsity }), calibrationWindows: windows });
                    row[method] = await perplexity(out);
                    row[`${method} s`] = Number(report.totals.seconds.toFixed(1));
                }
                console.log(JSON.stringify(row));
                table.push(row);
            }
        }
        const calibFile = writeCalibration(join(scratch, `${m.name}.calib.json`), windows.slice(0, 32));
        speed.push(compareRuntime(m.name, m.dir, calibFile));
    }
    if (process.env.SPARQ_BENCH_ALPS_GENERATED === '1') {
        const { dir, calibFile } = await generatedLlama134M(scratch);
        speed.push(compareRuntime('generated Llama 134M, 8×512', dir, calibFile));
    }
    const resultsFile = join(repo, 'bench', 'alps-results.json');
    // A run that skipped the table keeps the previous run's table.
    const perplexityTable = table.length > 0 || !existsSync(resultsFile) ? table : JSON.parse(readFileSync(resultsFile, 'utf8')).perplexity;
    writeFileSync(resultsFile, `${JSON.stringify({ date: new Date().toISOString(), cpu: cpus()[0]?.model, threads, perplexity: perplexityTable, runtime: speed }, null, 2)}\n`);
}
finally {
    rmSync(scratch, { recursive: true, force: true });
}
//# sourceMappingURL=alps.js.map