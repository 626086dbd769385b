// The trainer: exact SGD updates, AdamW lowering held-out perplexity, window order, saving and the CLI.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { AbortError, DecoderModel, evaluatePerplexity, InvalidArgumentError, loadTokenizer, lossAndGradients, makeBatch, SafetensorsFile, train, } from '../lib/index.js';
import { readTextFile } from '../lib/io/text.js';
import { sharedDir } from './helpers.js';
const run = promisify(execFile);
const fixtures = join(sharedDir(), 'fixtures');
// The CLI as compiled with the tests (.out/lib/cli/main.js).
const cli = join(dirname(fileURLToPath(import.meta.url)), '..', 'lib', 'cli', 'main.js');
async function parametersOf(dir) {
    const model = await DecoderModel.open(dir);
    const parameters = new Map();
    for (const name of model.checkpoint.names())
        parameters.set(name, await model.checkpoint.read(name, { dtype: 'f32' }));
    await model.close();
    return parameters;
}
const TINY_CONFIG = {
    model_type: 'llama',
    hidden_size: 64,
    intermediate_size: 160,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    vocab_size: 1024,
    max_position_embeddings: 128,
    rms_norm_eps: 1e-5,
    tie_word_embeddings: false,
};
describe('training', () => {
    let scratch;
    before(async () => {
        scratch = await mkdtemp(join(tmpdir(), 'sparq-train-'));
    });
    after(async () => {
        await rm(scratch, { recursive: true, force: true });
    });
    it('plain SGD updates every weight to W − lr·∇W exactly (to f32 rounding) on the golden batch', async () => {
        const dir = join(fixtures, 'tiny-llama');
        const golden = await SafetensorsFile.open(join(dir, 'golden.safetensors'));
        const ids = (await golden.read('input_ids')).data;
        const length = golden.info('input_ids').shape[1];
        await golden.close();
        // seq-len = the golden window length: the two golden sequences are exactly the two windows.
        const before = await parametersOf(dir);
        const model = await DecoderModel.open(dir);
        const { gradients } = await lossAndGradients(model, before, makeBatch([ids.subarray(0, length), ids.subarray(length)]));
        await model.close();
        const out = join(scratch, 'sgd');
        const lr = 0.05;
        const report = await train({ model: dir, tokens: ids, seqLen: length, batch: 2, steps: 1, optimizer: 'sgd', lr, out });
        assert.equal(report.steps, 1);
        const after = await parametersOf(out);
        assert.deepEqual([...after.keys()], [...before.keys()], 'same tensors, same order');
        for (const [name, w] of before) {
            const w0 = w.data;
            const g = gradients.get(name).data;
            const w1 = after.get(name).data;
            let changed = 0;
            for (let i = 0; i < w0.length; ++i) {
                const exact = w0[i] - lr * g[i];
                // f32 arithmetic: rounding lr·g and the sum each cost half an ulp of their magnitude.
                assert.ok(Math.abs(w1[i] - exact) <= 2 ** -24 * (Math.abs(w0[i]) + 2 * Math.abs(lr * g[i])) + 1e-45, `${name}[${i}]: ${w1[i]} vs ${exact}`);
                if (w1[i] !== w0[i])
                    changed += 1;
            }
            assert.ok(changed > 0, `${name} was updated`);
        }
        const config = JSON.parse(await readFile(join(out, 'config.json'), 'utf8'));
        assert.equal(config.torch_dtype, 'float32');
        assert.equal(config.sparq.training.optimizer, 'sgd');
        // The folder holds the model and the run's record (tiny-llama has no tokenizer to carry along).
        assert.deepEqual((await readdir(out)).sort(), ['config.json', 'model.safetensors', 'training.json']);
    });
    it('a few hundred AdamW steps from a fresh model lower the held-out perplexity on SOTU text', async function () {
        this.timeout(600_000);
        const tokenizer = await loadTokenizer(join(fixtures, 'sotu-llama'));
        const trainTokens = tokenizer.encode(await readTextFile(join(sharedDir(), 'data', 'sotu_calib.txt')));
        const evalTokens = tokenizer.encode(await readTextFile(join(sharedDir(), 'data', 'sotu_eval.txt')));
        const out = join(scratch, 'adamw');
        const report = await train({ init: TINY_CONFIG, initSeed: 3, tokens: trainTokens, seqLen: 65, batch: 8, steps: 200, optimizer: 'adamw', lr: 3e-3, weightDecay: 0.01, gradClip: 1, shuffle: true, seed: 1, out });
        // A fresh model predicts roughly uniformly: perplexity near the vocabulary size.
        const initial = join(scratch, 'adamw-init');
        await train({ init: TINY_CONFIG, initSeed: 3, tokens: trainTokens, seqLen: 65, batch: 1, steps: 1, optimizer: 'sgd', lr: 0, out: initial });
        const perplexity = async (dir) => {
            const model = await DecoderModel.open(dir);
            try {
                return (await evaluatePerplexity(model, evalTokens, { seqLen: 64, maxTokens: 16384 })).perplexity;
            }
            finally {
                await model.close();
            }
        };
        const before = await perplexity(initial);
        const after = await perplexity(out);
        assert.ok(before > 500, `a fresh model's perplexity ${before} is near the vocabulary size`);
        assert.ok(after < 0.25 * before, `perplexity ${before} → ${after} after 200 AdamW steps`);
        assert.ok(report.losses[199] < report.losses[0] - 1, `loss ${report.losses[0]} → ${report.losses[199]}`);
    });
    it('takes windows in order, or in a seeded shuffled order that repeats for the same seed', async () => {
        // Each window is one repeated token, so a model trained by SGD on one window at a time with lr 0
        // still reports per-step losses that identify the window: compare the loss sequences.
        const tokens = Int32Array.from({ length: 8 * 9 }, (_, i) => 1 + Math.floor(i / 9) * 7);
        const lossesOf = async (shuffle, seed, name) => (await train({ init: TINY_CONFIG, initSeed: 1, tokens, seqLen: 9, batch: 1, steps: 8, optimizer: 'sgd', lr: 0, shuffle, seed, out: join(scratch, name) })).losses;
        const ordered = await lossesOf(false, 0, 'o');
        const orderedAgain = await lossesOf(false, 0, 'o2');
        const shuffled = await lossesOf(true, 5, 's1');
        const shuffledAgain = await lossesOf(true, 5, 's2');
        const otherSeed = await lossesOf(true, 6, 's3');
        assert.deepEqual(ordered, orderedAgain);
        assert.deepEqual(shuffled, shuffledAgain);
        assert.notDeepEqual(shuffled, ordered);
        assert.notDeepEqual(otherSeed, shuffled);
        // A shuffle is a permutation of the same windows within a pass.
        assert.deepEqual([...shuffled].sort(), [...ordered].sort());
    });
    it('saves in bfloat16 when asked and refuses bad settings with named errors', async () => {
        const tokens = Int32Array.from({ length: 200 }, (_, i) => (i * 37) % 1024);
        const out = join(scratch, 'bf16');
        await train({ init: TINY_CONFIG, tokens, seqLen: 20, batch: 2, steps: 2, optimizer: 'adamw', lr: 1e-3, saveDtype: 'bfloat16', out });
        const file = await SafetensorsFile.open(join(out, 'model.safetensors'));
        assert.equal(file.info('model.layers.0.self_attn.q_proj.weight').dtype, 'BF16');
        await file.close();
        assert.equal(JSON.parse(await readFile(join(out, 'config.json'), 'utf8')).torch_dtype, 'bfloat16');
        const base = { init: TINY_CONFIG, tokens, seqLen: 20, batch: 2, steps: 1, optimizer: 'sgd', lr: 0.1 };
        await assert.rejects(train({ ...base, out: join(scratch, 'x1'), batch: 11 }), (e) => e instanceof InvalidArgumentError && /200 tokens make 10 windows of 20; a batch needs 11/.test(e.message));
        await assert.rejects(train({ ...base, out: join(scratch, 'x2'), tokens: Int32Array.of(...tokens.subarray(0, 39), 5000) }), /token 5000 at position 39 is outside the model's vocabulary of 1024/);
        await assert.rejects(train({ ...base, out: join(scratch, 'x3'), model: join(fixtures, 'tiny-llama') }), /exactly one of model/);
        await assert.rejects(train({ ...base, out: join(scratch, 'x4'), optimizer: 'adam' }), /optimizer/);
        await assert.rejects(train({ ...base, out }), /already exists/);
        await assert.rejects(train({ ...base, out: join(scratch, 'x5'), init: { ...TINY_CONFIG, model_type: 'mistral', sliding_window: 8 } }), /windows of 19 positions exceed the model's sliding attention window of 8/);
        await assert.rejects(train({ ...base, out: join(scratch, 'x6'), init: { ...TINY_CONFIG, max_position_embeddings: 16 } }), /windows of 19 positions exceed the model's context of 16/);
        for (const name of ['x1', 'x2', 'x3', 'x4', 'x5', 'x6'])
            await assert.rejects(stat(join(scratch, name)), 'nothing written for a refused run');
    });
    it('an aborted run leaves no output folder', async () => {
        const tokens = Int32Array.from({ length: 400 }, (_, i) => (i * 13) % 1024);
        const controller = new AbortController();
        const out = join(scratch, 'aborted');
        await assert.rejects(train({ init: TINY_CONFIG, tokens, seqLen: 20, batch: 2, steps: 50, optimizer: 'sgd', lr: 0.1, out, signal: controller.signal, onProgress: ({ step }) => step === 3 && controller.abort() }), (e) => e instanceof AbortError && /interrupted at step 4 of 50/.test(e.message));
        await assert.rejects(stat(out));
    });
    it('sparq train runs from the command line and prints a JSON line', async () => {
        const tokensFile = join(scratch, 'tokens.json');
        await writeFile(tokensFile, JSON.stringify(Array.from({ length: 300 }, (_, i) => (i * 7) % 512)));
        const configFile = join(scratch, 'config.json');
        await writeFile(configFile, JSON.stringify({ ...TINY_CONFIG, vocab_size: 512 }));
        const out = join(scratch, 'cli');
        const { stdout } = await run(process.execPath, [
            cli,
            'train', '--init', configFile, '--tokens', tokensFile, '--seq-len', '30', '--batch', '2', '--steps', '3',
            '--optimizer', 'adamw', '--lr', '1e-3', '--weight-decay', '0.1', '--grad-clip', '1', '--shuffle', '--seed', '4', '--out', out, '--json',
        ]);
        const line = JSON.parse(stdout.trim().split('\n').pop());
        assert.equal(line.out, out);
        assert.equal(line.steps, 3);
        assert.ok(Number.isFinite(line.final_loss) && line.tokens_per_second > 0);
        const training = JSON.parse(await readFile(join(out, 'training.json'), 'utf8'));
        assert.equal(training.losses.length, 3);
        await assert.rejects(run(process.execPath, [cli, 'train', '--init', configFile, '--tokens', tokensFile, '--seq-len', '30', '--batch', '2', '--steps', '3', '--optimizer', 'adamw', '--lr', '1e-3', '--out', out]), /already exists/);
    });
});
//# sourceMappingURL=train.test.js.map