// `npm run bench:forward`: forward tokens/s of sparq's streaming evaluator against a plain-torch Llama on
// the same windows and threads (bench/torch_llama.py, Debian's python3-torch), on sotu-llama and on a
// generated ~134M-parameter Llama; with SPARQ_BENCH_BIG=1 also the peak RSS while evaluating a generated
// model of over 4 GB on disk. Writes bench/forward-results.json.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { backendInfo, DecoderModel, evaluatePerplexity, writeRandomLlama } from '../lib/index.js';
import { folderBytes, python, repo } from './util.js';
const threads = backendInfo('cpu').threads;
async function sparqTokensPerSecond(dir, windows, seqLen) {
    const model = await DecoderModel.open(dir);
    const tokens = Int32Array.from({ length: windows * seqLen }, (_, i) => i % model.config.vocabSize);
    const result = await evaluatePerplexity(model, tokens, { seqLen });
    await model.close();
    return { seconds: result.seconds, tokensPerSecond: result.tokens / result.seconds };
}
function torchTokensPerSecond(dir, windows, seqLen) {
    const run = spawnSync(python, [join(repo, 'bench', 'torch_llama.py'), dir, String(windows), String(seqLen), String(threads)], { encoding: 'utf8' });
    if (run.status !== 0)
        return { error: (run.stderr || run.stdout).trim().split('\n').pop() };
    return JSON.parse(run.stdout.trim().split('\n').pop());
}
async function compare(name, dir, windows, seqLen) {
    const sparq = await sparqTokensPerSecond(dir, windows, seqLen);
    const torch = torchTokensPerSecond(dir, windows, seqLen);
    const ratio = 'tokensPerSecond' in torch ? sparq.tokensPerSecond / torch.tokensPerSecond : null;
    return { model: name, windows, seqLen, sparqTokensPerSecond: Math.round(sparq.tokensPerSecond), torchTokensPerSecond: 'tokensPerSecond' in torch ? Math.round(torch.tokensPerSecond) : torch.error, ratio: ratio === null ? null : Number(ratio.toFixed(2)) };
}
const rows = [];
const sotu = join(repo, '..', 'shared', 'fixtures', 'sotu-llama');
if (existsSync(sotu))
    rows.push(await compare('sotu-llama (3.6M)', sotu, 32, 256));
const scratch = mkdtempSync(join(tmpdir(), 'sparq-bench-'));
try {
    const medium = { hiddenSize: 768, intermediateSize: 2048, layers: 12, heads: 12, vocabSize: 32000, maxPositions: 2048, seed: 1 };
    const mediumDir = join(scratch, 'llama-134m');
    await writeRandomLlama(mediumDir, medium);
    rows.push(await compare(`generated Llama (${(folderBytes(mediumDir) / 2 ** 20).toFixed(0)} MiB f32)`, mediumDir, 4, 512));
    console.table(rows);
    let memory = null;
    if (process.env.SPARQ_BENCH_BIG === '1') {
        const bigDir = join(scratch, 'llama-big');
        await writeRandomLlama(bigDir, { hiddenSize: 2048, intermediateSize: 5632, layers: 20, heads: 16, vocabSize: 32000, maxPositions: 2048, seed: 2, maxShardBytes: 2 ** 30 });
        const bytes = folderBytes(bigDir);
        const script = `import('${join(repo, '.out', 'lib', 'index.js')}').then(async (s) => { const m = await s.DecoderModel.open('${bigDir}'); const t = Int32Array.from({ length: 512 }, (_, i) => i % 32000); const r = await s.evaluatePerplexity(m, t, { seqLen: 256 }); await m.close(); console.log(JSON.stringify({ seconds: r.seconds, maxRssBytes: process.resourceUsage().maxRSS * 1024 })); })`;
        const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
        const measured = JSON.parse(run.stdout.trim().split('\n').pop());
        const blockBytes = 4 * (4 * 2048 * 2048 + 3 * 2048 * 5632);
        memory = { diskBytes: bytes, blockBytesF32: blockBytes, embeddingBytesF32: 4 * 32000 * 2048, ...measured, rssOverDisk: Number((measured.maxRssBytes / bytes).toFixed(3)) };
        console.log('peak RSS while evaluating the generated model:', memory);
    }
    writeFileSync(join(repo, 'bench', 'forward-results.json'), `${JSON.stringify({ date: new Date().toISOString(), cpu: cpus()[0]?.model, threads, rows, memory }, null, 2)}\n`);
}
finally {
    rmSync(scratch, { recursive: true, force: true });
}
//# sourceMappingURL=forward.js.map