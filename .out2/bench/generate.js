// `npm run bench:generate`: decode tokens/s and peak RSS of KV-cached greedy generation (`sparq generate`'s
// path: GenerationSession.load + generate) on a generated Llama of ~1.1B parameters (TinyLlama's shape:
// hidden 2048, MLP 5632, 22 layers, 32 heads, 4 KV heads, vocab 32,000), for each way sparq can hold its
// linears, against a plain-PyTorch KV-cached decode (bench/torch_generate.py) of the same folder, same
// prompt, same threads. Each run is its own process; every variant runs twice and the better decode rate
// is kept (the VM's 2 cores are shared).
//
//   variant     how it is made (sparq CLI unless noted)                                  runs as
//   dense f32   writeRandomLlama                                                         dense-f32
//   dense bf16  the f32 folder rewritten in bf16 (convertFolder below)                   dense-bf16
//   int4        quantize --method rtn --bits 4 --group-size 128 (compressed-tensors)     int4 (compressed-tensors)
//   2:4         prune --method magnitude --sparsity 2:4, rewritten in f16, export 2:4    2:4 (f16 values)
//   2:4+int4    quantize --method rtn --bits 4 --group-size 128 --sparsity 2:4
//               --prune-method magnitude, export --format 2:4+int4                       2:4+int4
//   bsr-int4    block-sparse f32 made here (no sparq method prunes whole blocks: per row, the half of the
//               32-input blocks with the smallest L2 norm is zeroed), quantize --method rtn --bits 4
//               --group-size 32, export --format bsr-int4 --block-size 32                bsr-int4
//
// The generated model has no tokenizer (and none of the fixtures' has 32,000 tokens), so the prompt is 16
// token ids and generation is called through the API with them, as the CLI calls it.
//
// The folders are cached in SPARQ_BENCH_GENERATE_DIR (default $TMPDIR/sparq-bench-generate) and reused;
// SPARQ_BENCH_GENERATE_SIZE=0.5b uses a ~0.5B model, =tiny a small one for trying the script out.
// Writes bench/generate-results.json and prints the table.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Checkpoint, CheckpointWriter, generate, GenerationSession, setThreads, writeRandomLlama } from '../lib/index.js';
import { folderBytes, python, repo, runJson } from './util.js';
const THREADS = 2;
const PROMPT_TOKENS = 16;
const NEW_TOKENS = 32;
const RUNS = 2;
/** The prompt: 16 ids spread over the vocabulary (both sides use the same ones). */
const promptIds = (vocabSize) => Array.from({ length: PROMPT_TOKENS }, (_, i) => (1 + i * 7919) % vocabSize);
// Child mode: one generation, as `sparq generate --json --threads 2` runs it; prints one JSON line.
if (process.argv[2] === 'child') {
    const dir = process.argv[3];
    setThreads(THREADS);
    const start = performance.now();
    const session = await GenerationSession.load(dir);
    const loadSeconds = (performance.now() - start) / 1000;
    const result = await generate(session, promptIds(session.config.vocabSize), { maxNewTokens: NEW_TOKENS });
    const peakRssBytes = process.resourceUsage().maxRSS * 1024; // maxRSS is in KiB
    process.stdout.write(`${JSON.stringify({ ...result, text: undefined, loadSeconds, peakRssBytes, linearFormats: session.linearFormats() })}\n`);
    process.exit(0);
}
const SIZES = {
    '1b': { hiddenSize: 2048, intermediateSize: 5632, layers: 22, heads: 32, kvHeads: 4, vocabSize: 32000, maxPositions: 2048, seed: 3, maxShardBytes: 2 ** 31 },
    '0.5b': { hiddenSize: 1536, intermediateSize: 4096, layers: 18, heads: 24, kvHeads: 4, vocabSize: 32000, maxPositions: 2048, seed: 3, maxShardBytes: 2 ** 31 },
    tiny: { hiddenSize: 256, intermediateSize: 768, layers: 2, heads: 8, kvHeads: 2, vocabSize: 1000, maxPositions: 512, seed: 3 },
};
const size = process.env.SPARQ_BENCH_GENERATE_SIZE ?? '1b';
const shape = SIZES[size];
if (!shape)
    throw new Error(`SPARQ_BENCH_GENERATE_SIZE must be one of ${Object.keys(SIZES).join(', ')}`);
const scratch = join(process.env.SPARQ_BENCH_GENERATE_DIR ?? join(tmpdir(), 'sparq-bench-generate'), `llama-${size}`);
mkdirSync(scratch, { recursive: true });
const cli = join(repo, '.out', 'lib', 'cli', 'main.js');
const folder = (name) => join(scratch, name);
const timings = {};
/** Makes `name` with `make(tmp)` into a temporary folder renamed into place, unless it is already there. */
async function ensure(name, make) {
    const dir = folder(name);
    if (existsSync(join(dir, 'config.json')))
        return dir;
    const partial = `${dir}.partial`;
    rmSync(partial, { recursive: true, force: true });
    const start = performance.now();
    console.error(`making ${name} …`);
    await make(partial);
    renameSync(partial, dir);
    timings[name] = Number(((performance.now() - start) / 1000).toFixed(1));
    return dir;
}
/** Runs the sparq CLI (its output folder is written atomically by the CLI itself). */
function sparq(args) {
    const run = spawnSync(process.execPath, [cli, ...args], { stdio: ['ignore', 'ignore', 'inherit'] });
    if (run.status !== 0)
        throw new Error(`sparq ${args.join(' ')} failed (exit ${run.status})`);
}
/**
 * A copy of a model folder with every floating tensor rewritten in `dtype`, after `edit` (config.json's
 * torch_dtype updated, other files copied). Streams tensor by tensor.
 */
async function convertFolder(source, out, dtype, edit = () => { }) {
    mkdirSync(out, { recursive: true });
    for (const file of readdirSync(source))
        if (!file.includes('safetensors') && file !== 'config.json')
            copyFileSync(join(source, file), join(out, file));
    const config = JSON.parse(readFileSync(join(source, 'config.json'), 'utf8'));
    config.torch_dtype = { f32: 'float32', f16: 'float16', bf16: 'bfloat16' }[dtype] ?? config.torch_dtype;
    writeFileSync(join(out, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
    const input = await Checkpoint.open(source);
    try {
        const infos = await Promise.all(input.names().map((name) => input.info(name)));
        const plan = infos.map((t) => ({ name: t.name, dtype, shape: t.shape }));
        const writer = await CheckpointWriter.create(out, plan, { maxShardBytes: 2 ** 31, metadata: { format: 'pt' } });
        for (const t of plan) {
            const values = await input.read(t.name, { dtype: 'f32' });
            edit(t.name, values.data, t.shape);
            await writer.write(t.name, values.to(dtype));
        }
        await writer.close();
    }
    finally {
        await input.close();
    }
}
const BLOCK = 32;
/** Zeroes, in each row of a block linear, the half of its 32-input blocks with the smallest L2 norm. */
function blockPrune(name, values, shape) {
    if (!/\.layers\.\d+\.(self_attn|mlp)\.\w+_proj\.weight$/.test(name))
        return;
    const [rows, cols] = shape;
    const blocks = cols / BLOCK;
    const norms = new Float64Array(blocks);
    const order = Array.from({ length: blocks }, (_, b) => b);
    for (let r = 0; r < rows; ++r) {
        const row = values.subarray(r * cols, (r + 1) * cols);
        for (let b = 0; b < blocks; ++b) {
            let s = 0;
            for (let i = b * BLOCK; i < (b + 1) * BLOCK; ++i)
                s += row[i] * row[i];
            norms[b] = s;
        }
        order.sort((a, b) => norms[a] - norms[b] || a - b);
        for (let j = 0; j < blocks / 2; ++j)
            row.fill(0, order[j] * BLOCK, (order[j] + 1) * BLOCK);
    }
}
// ---- the variants ----
const dense = await ensure('dense-f32', (out) => writeRandomLlama(out, shape));
const variants = [
    { name: 'dense f32', dir: dense, note: 'writeRandomLlama' },
    { name: 'dense bf16', dir: await ensure('dense-bf16', (out) => convertFolder(dense, out, 'bf16')), note: 'the f32 folder rewritten in bf16' },
    {
        name: 'int4 (compressed-tensors W4 g128)',
        dir: await ensure('w4-g128', (out) => sparq(['quantize', '--model', dense, '--method', 'rtn', '--bits', '4', '--group-size', '128', '--out', out])),
        note: 'quantize --method rtn --bits 4 --group-size 128',
    },
];
const pruned24 = await ensure('pruned-24-f32', (out) => sparq(['prune', '--model', dense, '--method', 'magnitude', '--sparsity', '2:4', '--out', out]));
const pruned24f16 = await ensure('pruned-24-f16', (out) => convertFolder(pruned24, out, 'f16'));
variants.push({
    name: '2:4 (f16 values)',
    dir: await ensure('export-24', (out) => sparq(['export', '--model', pruned24f16, '--format', '2:4', '--out', out])),
    note: 'prune --method magnitude --sparsity 2:4, rewritten in f16, export --format 2:4',
});
const w424 = await ensure('w4-g128-24', (out) => sparq(['quantize', '--model', dense, '--method', 'rtn', '--bits', '4', '--group-size', '128', '--sparsity', '2:4', '--prune-method', 'magnitude', '--out', out]));
variants.push({
    name: '2:4+int4 (W4 g128)',
    dir: await ensure('export-24int4', (out) => sparq(['export', '--model', w424, '--format', '2:4+int4', '--out', out])),
    note: 'quantize --method rtn --bits 4 --group-size 128 --sparsity 2:4 --prune-method magnitude, export --format 2:4+int4',
});
const blockSparse = await ensure('blocksparse-f32', (out) => convertFolder(dense, out, 'f32', blockPrune));
const w4bs = await ensure('w4-g32-blocksparse', (out) => sparq(['quantize', '--model', blockSparse, '--method', 'rtn', '--bits', '4', '--group-size', '32', '--out', out]));
variants.push({
    name: 'bsr-int4 (block 32, 50% blocks, W4 g32)',
    dir: await ensure('export-bsrint4', (out) => sparq(['export', '--model', w4bs, '--format', 'bsr-int4', '--block-size', '32', '--out', out])),
    note: 'synthetic: per row, the half of the 32-input blocks with the smallest L2 norm zeroed (bench/generate.ts), quantize --method rtn --bits 4 --group-size 32, export --format bsr-int4 --block-size 32',
});
const self = fileURLToPath(import.meta.url);
const prompt = promptIds(shape.vocabSize);
const torchRuns = [
    { name: 'torch dense f32', dir: dense, dtype: 'f32' },
    { name: 'torch dense bf16', dir: folder('dense-bf16'), dtype: 'bf16' },
];
const runs = {};
const record = (name, run) => {
    (runs[name] ??= []).push({ ...run, loadAverage1m: Number(loadavg()[0].toFixed(2)) });
    console.error(`${name}: ${run.error ?? `decode ${run.decodeTokensPerSecond?.toFixed(2)} tokens/s, peak RSS ${(run.peakRssBytes / 2 ** 30).toFixed(2)} GiB`} (load ${loadavg()[0].toFixed(2)})`);
};
// Rounds interleave the variants, so the load of the shared VM spreads over all of them.
for (let round = 0; round < RUNS; ++round) {
    for (const v of variants)
        record(v.name, runJson(process.execPath, [self, 'child', v.dir]));
    for (const t of torchRuns) {
        record(t.name, runJson(python, [join(repo, 'bench', 'torch_generate.py'), t.dir, prompt.join(','), String(NEW_TOKENS), String(THREADS), t.dtype]));
    }
}
const best = (list) => list.filter((r) => !r.error).sort((a, b) => b.decodeTokensPerSecond - a.decodeTokensPerSecond)[0] ?? list[0];
const reference = best(runs['dense f32']);
const rows = [...variants.map((v) => ({ ...v, side: 'sparq' })), ...torchRuns.map((t) => ({ name: t.name, dir: t.dir, note: `bench/torch_generate.py ${t.dtype}`, side: 'torch' }))].map((v) => {
    const r = best(runs[v.name]);
    return {
        variant: v.name,
        decodeTokensPerSecond: r.error ? null : Number(r.decodeTokensPerSecond.toFixed(2)),
        decodeRuns: runs[v.name].map((x) => (x.error ? x.error : Number(x.decodeTokensPerSecond.toFixed(2)))),
        prefillTokensPerSecond: r.error ? null : Number(r.prefillTokensPerSecond.toFixed(1)),
        peakRssGiB: r.error ? null : Number((r.peakRssBytes / 2 ** 30).toFixed(2)),
        folderGiB: Number((folderBytes(v.dir) / 2 ** 30).toFixed(2)),
        linearFormats: r.linearFormats ?? null,
        // Compressed variants run other weights than dense f32, so their tokens differ; the dense ones should not.
        sameTokensAsSparqF32: r.tokens ? r.tokens.join(',') === reference.tokens?.join(',') : null,
        made: v.note,
    };
});
console.table(rows.map(({ variant, decodeTokensPerSecond, decodeRuns, prefillTokensPerSecond, peakRssGiB, folderGiB, sameTokensAsSparqF32 }) => ({ variant, decodeTokensPerSecond, decodeRuns: decodeRuns.join(' / '), prefillTokensPerSecond, peakRssGiB, folderGiB, sameTokensAsSparqF32 })));
const torchVersion = best(runs['torch dense f32']).torch;
writeFileSync(join(repo, 'bench', 'generate-results.json'), `${JSON.stringify({
    date: new Date().toISOString(),
    cpu: cpus()[0]?.model,
    cores: cpus().length,
    memoryGiB: Number((totalmem() / 2 ** 30).toFixed(1)),
    threads: THREADS,
    torch: torchVersion,
    model: { size, ...shape, parameters: parameterCount(shape), f32GiB: Number((folderBytes(dense) / 2 ** 30).toFixed(2)) },
    promptTokens: PROMPT_TOKENS,
    newTokens: NEW_TOKENS,
    runsPerVariant: RUNS,
    kept: 'the run with the higher decode tokens/s',
    secondsToMake: timings,
    rows,
    runs,
}, null, 2)}\n`);
function parameterCount(o) {
    const kv = (o.kvHeads ?? o.heads) * (o.hiddenSize / o.heads);
    const block = 2 * o.hiddenSize * o.hiddenSize + 2 * kv * o.hiddenSize + 3 * o.hiddenSize * o.intermediateSize + 2 * o.hiddenSize;
    return o.layers * block + (o.tiedEmbeddings ? 1 : 2) * o.vocabSize * o.hiddenSize + o.hiddenSize;
}
//# sourceMappingURL=generate.js.map