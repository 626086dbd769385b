// `npm run bench:train`:
// (1) training throughput on sotu-llama's shape (its weights as the start, its tokenizer on the shared
//     SOTU calibration text), AdamW, against a plain-PyTorch trainer (bench/torch_train.py) at equal batch,
//     window length and threads, each in its own process; tokens/s counts next-token predictions over the
//     timed steps (the first WARMUP steps excluded);
// (2) with SPARQ_BENCH_BIG=1, peak RSS of one streaming backward pass (forward block by block keeping the
//     boundary states, then backward block by block) over a generated Llama of more than 4 GB on disk.
// Writes bench/train-results.json and prints a summary.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { backendInfo, DecoderModel, loadTokenizer, makeBatch, streamGradients, train, writeRandomLlama } from '../lib/index.js';
import { readTextFile } from '../lib/io/text.js';
import { folderBytes, python, repo, runJson } from './util.js';
const shared = join(repo, '..', 'shared');
const BATCH = 8;
const SEQ_LEN = 256;
const STEPS = 12;
const WARMUP = 2;
if (process.argv[2] === 'child-train') {
    const [, , , model, tokensFile, out] = process.argv;
    const tokens = Int32Array.from(JSON.parse(readFileSync(tokensFile, 'utf8')));
    const stamps = [];
    const report = await train({
        model,
        tokens,
        seqLen: SEQ_LEN,
        batch: BATCH,
        steps: STEPS,
        optimizer: 'adamw',
        lr: 1e-3,
        out,
        overwrite: true,
        onProgress: () => stamps.push(performance.now()),
    });
    const timed = (stamps[STEPS - 1] - stamps[WARMUP - 1]) / 1000;
    process.stdout.write(`${JSON.stringify({ tokens_per_second: ((STEPS - WARMUP) * report.tokensPerStep) / timed, losses: report.losses, peak_rss_bytes: report.peakRssBytes, step_seconds: stamps.map((t, i) => (t - (i ? stamps[i - 1] : t)) / 1000).slice(1) })}\n`);
    process.exit(0);
}
if (process.argv[2] === 'child-stream') {
    const [, , , model, tokenCount] = process.argv;
    const opened = await DecoderModel.open(model);
    const T = Number(tokenCount);
    const windows = [0, 1].map((w) => Int32Array.from({ length: T + 1 }, (_, i) => (i * 7919 + w * 104729) % opened.config.vocabSize));
    const started = performance.now();
    let squares = 0;
    let tensors = 0;
    const loss = await streamGradients(opened, makeBatch(windows), {
        // Consume each block's gradients (a norm) and let them go: nothing is kept across blocks.
        onGradients: (_part, grads) => {
            for (const g of grads.values()) {
                for (const x of g.data)
                    squares += x * x;
                tensors += 1;
            }
        },
    });
    await opened.close();
    process.stdout.write(`${JSON.stringify({ loss, gradient_norm: Math.sqrt(squares), tensors, seconds: (performance.now() - started) / 1000, peak_rss_bytes: process.resourceUsage().maxRSS * 1024 })}\n`);
    process.exit(0);
}
const threads = backendInfo('cpu').threads;
const scratch = mkdtempSync(join(tmpdir(), 'sparq-bench-train-'));
const results = { date: new Date().toISOString(), cpu: cpus()[0]?.model, threads, batch: BATCH, seqLen: SEQ_LEN, steps: STEPS, warmup: WARMUP };
try {
    const model = join(shared, 'fixtures', 'sotu-llama');
    const tokenizer = await loadTokenizer(model);
    const tokens = tokenizer.encode(await readTextFile(join(shared, 'data', 'sotu_calib.txt')));
    const tokensFile = join(scratch, 'tokens.json');
    writeFileSync(tokensFile, JSON.stringify(Array.from(tokens)));
    const sparq = runJson(process.execPath, [fileURLToPath(import.meta.url), 'child-train', model, tokensFile, join(scratch, 'out')]);
    const torch = runJson(python, [
        join(repo, 'bench', 'torch_train.py'), model, '--tokens', tokensFile, '--seq-len', String(SEQ_LEN), '--batch', String(BATCH),
        '--steps', String(STEPS), '--warmup', String(WARMUP), '--threads', String(threads), '--optimizer', 'adamw', '--lr', '1e-3',
    ]);
    results.throughput = { model: 'sotu-llama', sparq, torch, speedup: sparq.tokens_per_second / torch.tokens_per_second };
    console.log(`training sotu-llama (B ${BATCH}, T ${SEQ_LEN}, ${threads} threads, AdamW): sparq ${sparq.tokens_per_second?.toFixed(0)} tokens/s, torch ${torch.tokens_per_second?.toFixed(0) ?? torch.error} tokens/s → ${(sparq.tokens_per_second / torch.tokens_per_second).toFixed(2)}×`);
    console.log(`first losses: sparq ${sparq.losses?.slice(0, 3).map((x) => x.toFixed(4)).join(' ')}, torch ${torch.losses?.slice(0, 3).map((x) => x.toFixed(4)).join(' ')}`);
    if (process.env.SPARQ_BENCH_BIG === '1') {
        const big = join(scratch, 'big');
        await writeRandomLlama(big, { hiddenSize: 2048, intermediateSize: 5632, layers: 20, heads: 16, vocabSize: 32000, maxPositions: 2048, seed: 2, maxShardBytes: 2 ** 30 });
        const bytes = folderBytes(big);
        const measured = runJson(process.execPath, [fileURLToPath(import.meta.url), 'child-stream', big, '256']);
        results.streaming = { modelBytes: bytes, tokens: 2 * 256, ...measured, rssOverModel: measured.peak_rss_bytes / bytes };
        console.log(`streaming backward over a ${(bytes / 2 ** 30).toFixed(2)} GiB model (2 × 256 tokens): peak RSS ${(measured.peak_rss_bytes / 2 ** 30).toFixed(2)} GiB (${(measured.peak_rss_bytes / bytes).toFixed(2)}× the model) in ${measured.seconds?.toFixed(0)} s`);
    }
}
finally {
    rmSync(scratch, { recursive: true, force: true });
}
writeFileSync(join(repo, 'bench', 'train-results.json'), `${JSON.stringify(results, null, 2)}\n`);
//# sourceMappingURL=train.js.map