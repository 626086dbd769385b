// Model configs, tokenization and streaming perplexity against the trained fixtures' goldens (stated
// protocol: whole text as one string, first 65,536 tokens, 256-token windows), within 0.1%.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import {
  abs,
  applyMask,
  Checkpoint,
  CheckpointWriter,
  DecoderModel,
  inspectModel,
  nmMask,
  writeRandomLlama,
  evaluatePerplexity,
  InvalidArgumentError,
  InvalidFileError,
  loadTokenizer,
  parseConfig,
  SafetensorsFile,
  UnsupportedFormatError,
} from '../lib/index.js';
import { fixturePath, sharedDir } from './helpers.js';

const shared = sharedDir();
const fixture = fixturePath;

describe('model configs', () => {
  it('reads both rope forms: rope_theta + rope_scaling, and rope_parameters with rope_theta inside', () => {
    const llama3 = parseConfig(JSON.parse(readFileSync(join(fixture('tiny-llama3'), 'config.json'), 'utf8')));
    assert.equal(llama3.ropeTheta, 500000);
    assert.deepEqual(llama3.ropeScaling, { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 64 });
    const qwen3 = parseConfig(JSON.parse(readFileSync(join(fixture('tiny-qwen3'), 'config.json'), 'utf8')));
    assert.equal(qwen3.headDim, 32);
    assert.equal(qwen3.qkNorm, true);
    const base = { model_type: 'llama', hidden_size: 8, intermediate_size: 16, num_hidden_layers: 1, num_attention_heads: 2, vocab_size: 10 };
    assert.deepEqual(parseConfig({ ...base, rope_theta: 1e4, rope_scaling: { type: 'linear', factor: 2 } }).ropeScaling, { type: 'linear', factor: 2 });
  });

  it('names what is wrong: unknown model_type (listing the supported), bad fields, unsupported rope types', () => {
    const base = { model_type: 'llama', hidden_size: 8, intermediate_size: 16, num_hidden_layers: 1, num_attention_heads: 2, vocab_size: 10 };
    assert.throws(() => parseConfig({ ...base, model_type: 'gpt2' }), (e: unknown) => e instanceof UnsupportedFormatError && /llama, mistral, qwen2, qwen3, mixtral, qwen2_moe, qwen3_moe, deepseek, opt/.test(e.message));
    assert.throws(() => parseConfig({ ...base, hidden_size: 7.5 }), (e: unknown) => e instanceof InvalidFileError && /'hidden_size' must be a positive integer/.test(e.message));
    assert.throws(() => parseConfig({ ...base, num_key_value_heads: 3, num_attention_heads: 4 }), /not a multiple/);
    assert.throws(() => parseConfig({ ...base, rope_scaling: { type: 'yarn', factor: 4 } }), (e: unknown) => e instanceof UnsupportedFormatError && /yarn/.test(e.message));
  });
});

describe('inspectModel', () => {
  it('reports parameters, dtypes and the exact sparsity of each linear', async () => {
    const source = fixture('tiny-llama');
    const out = await mkdtemp(join(tmpdir(), 'sparq-inspect-'));
    try {
      await copyFile(join(source, 'config.json'), join(out, 'config.json'));
      const ckpt = await Checkpoint.open(source);
      const names = ckpt.names();
      const tensors = await Promise.all(names.map((n) => ckpt.read(n)));
      await ckpt.close();
      // Zero 3 of every 4 weights of one projection (keeping the largest by magnitude).
      const target = 'model.layers.1.mlp.up_proj.weight';
      const i = names.indexOf(target);
      const f32 = tensors[i].to('f32');
      const keep = nmMask(abs(f32), 1, 4);
      tensors[i] = applyMask(f32, keep).to('bf16');
      const writer = await CheckpointWriter.create(out, names.map((name, j) => ({ name, dtype: tensors[j].dtype, shape: tensors[j].shape })));
      for (let j = 0; j < names.length; ++j) await writer.write(names[j], tensors[j]);
      await writer.close();
      const report = await inspectModel(out);
      assert.equal(report.parameters, tensors.reduce((s, t) => s + t.numel, 0));
      assert.deepEqual(Object.keys(report.dtypes), ['BF16']);
      assert.equal(report.linears.length, 2 * 7);
      for (const l of report.linears) assert.equal(l.sparsity, l.name === target ? 0.75 : 0, l.name);
    } finally {
      await rm(out, { recursive: true, force: true });
    }
  });
});

describe('writeRandomLlama', () => {
  it('writes a sharded random model that loads, inspects and evaluates', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sparq-random-'));
    try {
      await writeRandomLlama(dir, { hiddenSize: 32, intermediateSize: 48, layers: 3, heads: 4, kvHeads: 2, vocabSize: 50, maxPositions: 64, dtype: 'bf16', seed: 7, maxShardBytes: 8000 });
      const report = await inspectModel(dir);
      assert.equal(report.config.layers, 3);
      assert.equal(report.linears.length, 21);
      assert.deepEqual(Object.keys(report.dtypes), ['BF16']);
      const model = await DecoderModel.open(dir);
      const tokens = Int32Array.from({ length: 130 }, (_, i) => (i * 7) % 50);
      const result = await evaluatePerplexity(model, tokens, { seqLen: 64 });
      await model.close();
      assert.equal(result.windows, 2);
      // Near-uniform predictions from small random weights: perplexity close to the vocabulary size.
      assert.ok(result.perplexity > 25 && result.perplexity < 100, `perplexity ${result.perplexity}`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('perplexity', () => {
  for (const [name, text] of [
    ['stories260K', 'tinystories_val.txt'],
    ['sotu-llama', 'sotu_eval.txt'],
  ] as const) {
    it(`${name} matches its golden perplexity within 5e-7 relative, streaming block by block`, async function () {
      this.timeout(300_000);
      const dir = fixture(name);
      const tokens = (await loadTokenizer(dir)).encode(readFileSync(join(shared, 'data', text), 'utf8'));
      // The tokenizer reproduces the golden's first 64 tokens.
      const golden = await SafetensorsFile.open(join(dir, 'golden.safetensors'));
      assert.deepEqual([...tokens.subarray(0, 64)], [...((await golden.read('input_ids')).data as Int32Array)]);
      await golden.close();
      const expected = JSON.parse(readFileSync(join(dir, 'golden.json'), 'utf8')).perplexity;
      const model = await DecoderModel.open(dir);
      const stages: string[] = [];
      // A hidden-state budget of 64 windows forces four chunks through the blocks.
      const windowBytes = expected.seq_len * model.config.hiddenSize * 4;
      const result = await evaluatePerplexity(model, tokens, {
        seqLen: expected.seq_len,
        maxTokens: expected.max_tokens,
        maxHiddenBytes: 64 * windowBytes,
        onProgress: ({ stage }) => stages.push(stage),
      });
      await model.close();
      assert.equal(result.windows, expected.windows);
      // The logits match PyTorch's to f32 rounding; over 65,536 tokens the perplexity differs from the golden
      // by 5e-8 (stories260K) and 2e-8 (sotu-llama) relative, with the avx512 and avx2 kernels alike: 10×
      // the larger.
      assert.ok(Math.abs(result.perplexity / expected.value - 1) < 5e-7, `perplexity ${result.perplexity}, golden ${expected.value}`);
      assert.equal(stages.filter((s) => s === 'embedding').length, 4);
    });
  }

  it('refuses a text shorter than one window and a window longer than the context', async () => {
    const model = await DecoderModel.open(fixture('stories260K'));
    await assert.rejects(evaluatePerplexity(model, new Int32Array(100), { seqLen: 256 }), (e: unknown) => e instanceof InvalidArgumentError && /100 tokens/.test(e.message));
    await assert.rejects(evaluatePerplexity(model, new Int32Array(2000), { seqLen: 1024 }), /exceeds the model's context of 512/);
    await assert.rejects(evaluatePerplexity(model, new Int32Array(600).fill(9999), { seqLen: 256 }), /outside the model's vocabulary/);
    await model.close();
  });

  it('sparq eval prints a JSON line with perplexity, windows, tokens and seconds', () => {
    const cli = join(dirname(fileURLToPath(import.meta.url)), '..', 'lib', 'cli', 'main.js');
    const out = execFileSync(process.execPath, [cli, 'eval', '--model', fixture('stories260K'), '--text', join(shared, 'data', 'tinystories_val.txt'), '--seq-len', '256', '--max-tokens', '4096', '--json'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    const last = JSON.parse(out.trim().split('\n').pop()!);
    assert.equal(last.windows, 16);
    assert.equal(last.tokens, 4096);
    assert.ok(last.perplexity > 1 && last.seconds >= 0);
    const bad = spawnSync(process.execPath, [cli, 'eval', '--model', fixture('tiny-opt'), '--tokens', join(shared, 'README.md')], { encoding: 'utf8' });
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /SPARQ_INVALID_FILE|SPARQ_UNSUPPORTED_FORMAT/);
  });
});
