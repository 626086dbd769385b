// sparq generate: the KV-cached decoder must choose exactly the tokens, with the logits, that the full
// forward (the golden-checked block-by-block path) gives for the same sequence; sampling is seeded; text
// streams correctly through multi-byte pieces; the CLI prints what the README documents; bad options get
// typed errors.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  AbortError,
  argmax,
  DecoderModel,
  generate,
  GenerationSession,
  IncrementalDetokenizer,
  InvalidArgumentError,
  KV_CACHE_CHUNK,
  loadTokenizer,
  parseRecipe,
  quantize,
  sampleToken,
  SafetensorsFile,
  SparqError,
  Tensor,
  uniformRandom,
} from '../lib/index.js';
import { assertClose, countLoopTurns, fixturePath, sharedDir } from './helpers.js';

const run = promisify(execFile);
const CLI = join(process.cwd(), '.out', 'lib', 'cli', 'main.js');

/** Logits [T, vocab] of the whole sequence through the existing full forward (no cache). */
async function fullForwardLogits(dir: string, ids: Int32Array): Promise<Float32Array> {
  const model = await DecoderModel.open(dir);
  try {
    const positions = Tensor.fromTypedArray(Int32Array.from({ length: ids.length }, (_, i) => i));
    const h = model.embed(await model.loadEmbeddings(), ids);
    for (let layer = 0; layer < model.config.layers; ++layer) await (await model.loadBlock(layer)).forward(h, positions, model.invFreq);
    return (await model.logits(await model.loadHead(), h)).data as Float32Array;
  } finally {
    await model.close();
  }
}

/**
 * Greedy decoding through the cache (prefill `prompt`, then one token per step; EOS ignored so every
 * model runs `steps` steps) checked row by row against the full forward of prompt + generated tokens.
 * Tolerance: the cached run multiplies [1, in] rows where the full one multiplies [T, in] matrices, so
 * OpenBLAS sums in another order; f32 rounding differences stay near 1e-6 of the logits' scale, and
 * 1e-4 relative (plus 1e-5 absolute for logits near zero) is far above that and far below any real error.
 */
async function checkAgainstFullForward(dir: string, prompt: Int32Array, steps: number): Promise<void> {
  const session = await GenerationSession.load(dir);
  const vocab = session.config.vocabSize;
  const generated: number[] = [];
  const cachedLogits: Float32Array[] = [];
  let logits = await session.prefill(prompt);
  for (let i = 0; i < steps; ++i) {
    const token = argmax(logits);
    generated.push(token);
    cachedLogits.push(logits);
    if (i < steps - 1) logits = await session.append([token]);
  }
  assert.equal(session.length, prompt.length + steps - 1);
  const sequence = Int32Array.from([...prompt, ...generated.slice(0, -1)]);
  const full = await fullForwardLogits(dir, sequence);
  for (let i = 0; i < steps; ++i) {
    const row = full.subarray((prompt.length - 1 + i) * vocab, (prompt.length + i) * vocab);
    assert.equal(generated[i], argmax(row), `${dir}: generated token ${i} is ${generated[i]}, the full forward's argmax is ${argmax(row)}`);
    assertClose(cachedLogits[i], row, { atol: 1e-5, rtol: 1e-4 }, `${dir}: logits of generated token ${i}`);
  }
}

async function goldenPrompt(name: string, length: number): Promise<Int32Array> {
  const file = await SafetensorsFile.open(join(fixturePath(name), 'golden.safetensors'));
  try {
    return ((await file.read('input_ids')).data as Int32Array).slice(0, length);
  } finally {
    await file.close();
  }
}

describe('generate', function () {
  this.timeout(120_000);

  describe('the KV cache reproduces the full forward', () => {
    for (const name of ['tiny-llama', 'tiny-llama3', 'tiny-qwen2', 'tiny-qwen3', 'tiny-opt', 'tiny-mixtral', 'tiny-qwen2-moe', 'tiny-qwen3-moe', 'tiny-deepseek-moe']) {
      it(name, async () => checkAgainstFullForward(fixturePath(name), await goldenPrompt(name, 7), 24));
    }

    it('sotu-llama', async () => checkAgainstFullForward(fixturePath('sotu-llama'), await goldenPrompt('sotu-llama', 8), 24));

    it(`stories260K, across the cache's growth past ${KV_CACHE_CHUNK} tokens`, async () => {
      const prompt = await goldenPrompt('stories260K', 16);
      await checkAgainstFullForward(fixturePath('stories260K'), prompt, KV_CACHE_CHUNK + 24 - prompt.length);
    });

    it('a prompt fed in several pieces gives the logits of one prefill', async () => {
      const session = await GenerationSession.load(fixturePath('tiny-qwen3'));
      const ids = await goldenPrompt('tiny-qwen3', 12);
      const whole = await session.prefill(ids);
      await session.prefill(ids.subarray(0, 5));
      await session.append(ids.subarray(5, 6));
      const pieces = await session.append(ids.subarray(6));
      assertClose(pieces, whole, { atol: 1e-5, rtol: 1e-4 }, 'logits after 5 + 1 + 6 tokens against 12 at once');
    });

    it('a compressed-tensors pack-quantized folder (decoded at load) runs as the full forward decodes it', async () => {
      const out = join(mkdtempSync(join(tmpdir(), 'sparq-generate-')), 'w8');
      try {
        // stories260K's down_proj (172 inputs) is not whole words of packed codes; it stays dense.
        await quantize({
          model: fixturePath('stories260K'),
          out,
          recipe: parseRecipe({ method: 'rtn', quantize: { bits: 8, groupSize: 32 }, ignore: ['*.down_proj'] }),
          calibrationFile: join(sharedDir(), 'data', 'tinystories_calib.txt'),
          nsamples: 2,
          seqLen: 32,
          seed: 0,
        });
        const session = await GenerationSession.load(out);
        // q, k, v, o, gate and up of 5 layers quantized; down_proj and the tied head dense.
        assert.deepEqual(session.linearFormats(), { 'pack-quantized W8 (decoded to dense-f32: the int4 kernel runs 4-bit contiguous groups only)': 30, 'dense-f32': 6 });
        await checkAgainstFullForward(out, await goldenPrompt('stories260K', 8), 8);
      } finally {
        rmSync(join(out, '..'), { recursive: true, force: true });
      }
    });
  });

  describe('stories260K with its tokenizer', () => {
    let session: GenerationSession;
    before(async () => {
      session = await GenerationSession.load(fixturePath('stories260K'));
    });

    it('greedy output is deterministic, streams as it decodes, and the text round-trips', async () => {
      const pieces: string[] = [];
      const first = await generate(session, 'Once upon a time', { maxNewTokens: 48, onText: (t) => pieces.push(t) });
      const second = await generate(session, 'Once upon a time', { maxNewTokens: 48 });
      assert.deepEqual(second.tokens, first.tokens);
      assert.equal(second.text, first.text);
      assert.equal(pieces.join(''), first.text);
      assert.ok(pieces.length > 10, `text arrived in ${pieces.length} pieces`);
      assert.equal(first.generatedTokens, first.tokens.length);
      assert.ok(first.generatedTokens === 48 || first.stopReason === 'eos');
      // The prompt was encoded after BOS (tokenizer_config: add_bos_token).
      const prompt = session.encode('Once upon a time');
      assert.equal(prompt[0], 1);
      assert.equal(first.promptTokens, prompt.length);
      const tokenizer = session.tokenizer!;
      const generatedText = first.stopReason === 'eos' ? first.tokens.slice(0, -1) : first.tokens;
      assert.equal(tokenizer.decode([...prompt, ...generatedText]), tokenizer.decode(prompt) + first.text);
      assert.match(first.text, /[a-z]+ [a-z]+/);
    });

    it('pieces of multi-byte characters are held back until complete (byte fallback and byte-level BPE)', async () => {
      for (const name of ['stories260K', 'sotu-llama']) {
        const tokenizer = await loadTokenizer(fixturePath(name));
        const ids = Array.from(tokenizer.encode('The café served crème brûlée 😀 — naïve ünïcödé ✓ text.'));
        const detokenizer = new IncrementalDetokenizer(tokenizer, ids.slice(0, 1));
        const pieces = ids.slice(1).map((id) => detokenizer.push(id));
        pieces.push(detokenizer.flush());
        assert.ok(pieces.every((p) => !p.includes('\uFFFD')), `${name}: a piece holds a partial character: ${JSON.stringify(pieces)}`);
        assert.equal(tokenizer.decode(ids.slice(0, 1)) + pieces.join(''), tokenizer.decode(ids), name);
      }
    });

    it('sampling with a seed is reproducible, and top-p 1e-9 is greedy', async () => {
      const options = { maxNewTokens: 32, temperature: 1, topP: 0.9, seed: 7 };
      const a = await generate(session, 'Once upon a time', options);
      const b = await generate(session, 'Once upon a time', options);
      assert.deepEqual(b.tokens, a.tokens);
      const greedy = await generate(session, 'Tom and Lily', { maxNewTokens: 24 });
      const nucleus = await generate(session, 'Tom and Lily', { maxNewTokens: 24, temperature: 1.3, topP: 1e-9, seed: 3 });
      assert.deepEqual(nucleus.tokens, greedy.tokens);
    });
  });

  it('keeps the event loop running and stops when its signal aborts', async () => {
    const session = await GenerationSession.load(fixturePath('sotu-llama'));
    // Structural, not timed: small models run each step inline, so generation must hand the loop a turn
    // (a setImmediate callback) between steps — at least one per generated token.
    const { result, turns } = await countLoopTurns(() => generate(session, 'The Congress', { maxNewTokens: 40 }));
    assert.ok(turns >= result.tokens.length - 1, `the event loop turned ${turns} times while ${result.tokens.length} tokens were generated`);
    const controller = new AbortController();
    await assert.rejects(
      generate(session, 'The Congress', { maxNewTokens: 40, signal: controller.signal, onToken: () => controller.abort() }),
      (e: Error) => e instanceof AbortError,
    );
  });

  it('samples in proportion to softmax(logits / T)', () => {
    // p = softmax([0, ln 3]) = [0.25, 0.75]; 4000 draws: standard error 0.007, so 0.03 is over 4 sigma.
    const random = uniformRandom(1);
    let ones = 0;
    for (let i = 0; i < 4000; ++i) ones += sampleToken([0, Math.log(3)], { temperature: 1, topP: 1 }, random);
    assert.ok(Math.abs(ones / 4000 - 0.75) < 0.03, `token 1 drawn ${ones} of 4000 times`);
    // Temperature 2 flattens it to softmax([0, ln 3 / 2]) = [0.366, 0.634].
    ones = 0;
    for (let i = 0; i < 4000; ++i) ones += sampleToken([0, Math.log(3)], { temperature: 2, topP: 1 }, random);
    assert.ok(Math.abs(ones / 4000 - Math.sqrt(3) / (1 + Math.sqrt(3))) < 0.03, `token 1 drawn ${ones} of 4000 times at T = 2`);
    // top-p 0.7 keeps only the 0.75 token.
    for (let i = 0; i < 100; ++i) assert.equal(sampleToken([0, Math.log(3)], { temperature: 1, topP: 0.7 }, random), 1);
  });

  describe('the CLI', () => {
    it('generate --json prints one object with the documented fields', async () => {
      const { stdout } = await run(process.execPath, [CLI, 'generate', '--model', fixturePath('stories260K'), '--prompt', 'Once upon a time', '--max-new-tokens', '12', '--json']);
      const result = JSON.parse(stdout);
      const fields = ['text', 'tokens', 'promptTokens', 'generatedTokens', 'stopReason', 'prefillSeconds', 'decodeSeconds', 'prefillTokensPerSecond', 'decodeTokensPerSecond', 'peakRssBytes', 'model', 'backend', 'weights', 'linearFormats'];
      assert.deepEqual(Object.keys(result).sort(), [...fields].sort());
      assert.equal(result.weights, 'stored');
      assert.deepEqual(result.linearFormats, { 'dense-f32': 36 });
      assert.equal(typeof result.text, 'string');
      assert.equal(result.tokens.length, result.generatedTokens);
      assert.ok(result.generatedTokens >= 1 && result.generatedTokens <= 12);
      assert.equal(result.promptTokens, 5);
      assert.ok(result.peakRssBytes > 1e6 && result.decodeTokensPerSecond > 0);
      assert.equal(result.model, fixturePath('stories260K'));
      assert.equal(result.backend, 'cpu');
    });

    it('streams the text to stdout and the summary to stderr; bad options exit 1 with their code', async () => {
      const { stdout, stderr } = await run(process.execPath, [CLI, 'generate', '--model', fixturePath('stories260K'), '--prompt', 'Once upon a time', '--max-new-tokens', '8', '--temperature', '0.7', '--top-p', '0.9', '--seed', '5', '--threads', '1']);
      assert.ok(stdout.trim().length > 0);
      assert.match(stderr, /5 prompt tokens, \d+ generated .* prefill [\d.]+ tokens\/s, decode [\d.]+ tokens\/s; peak RSS [\d.]+ MiB/);
      for (const [args, message] of [
        [['--max-new-tokens=-3'], /--max-new-tokens must be an integer >= 1/],
        [['--top-p', '1.5'], /--top-p must be in \(0, 1\]/],
        [['--temperature=-1'], /--temperature must be a number >= 0/],
      ] as const) {
        await assert.rejects(run(process.execPath, [CLI, 'generate', '--model', fixturePath('stories260K'), '--prompt', 'Hi', ...args]), (e: { code: number; stderr: string }) => {
          assert.equal(e.code, 1);
          assert.match(e.stderr, message);
          assert.match(e.stderr, /\[SPARQ_INVALID_ARGUMENT\]/);
          return true;
        });
      }
    });
  });

  it('bad options give typed errors naming the option', async () => {
    const stories = fixturePath('stories260K');
    const invalid = (pattern: RegExp) => (e: unknown) => e instanceof InvalidArgumentError && e instanceof SparqError && pattern.test(e.message);
    await assert.rejects(generate('/nonexistent/model-folder', 'Hi'), invalid(/model: expected a model folder/));
    await assert.rejects(generate(stories, ''), invalid(/prompt: expected a non-empty text/));
    await assert.rejects(generate(stories, 'Hi', { maxNewTokens: -1 }), invalid(/maxNewTokens/));
    await assert.rejects(generate(stories, 'Hi', { maxNewTokens: 2.5 }), invalid(/maxNewTokens/));
    await assert.rejects(generate(stories, 'Hi', { topP: 0 }), invalid(/topP: expected a number in \(0, 1\]/));
    await assert.rejects(generate(stories, 'Hi', { topP: 1.01 }), invalid(/topP/));
    await assert.rejects(generate(stories, 'Hi', { temperature: -0.5 }), invalid(/temperature: expected a finite number >= 0/));
    await assert.rejects(generate(stories, 'Hi', { seed: -1 }), invalid(/seed/));
    await assert.rejects(generate(stories, [1, 9999]), invalid(/ids\[1\]: expected a token id from 0 to 511/));
    await assert.rejects(generate(stories, new Array(512).fill(1)), invalid(/no room to generate/));
  });
});
