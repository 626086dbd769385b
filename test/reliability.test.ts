// Regressions for the bad-input and fault report (issue 11): each case failed before its fix. Output
// folders that contain their input, Hugging Face cache snapshots made of symlinks, non-finite weights and
// activations, checkpoints whose tensors disagree with their config, token ids that wrap, runs that race
// for one --out, full disks, and the messages that used to mislead.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import {
  DecoderModel,
  evaluatePerplexity,
  InvalidArgumentError,
  InvalidFileError,
  NonFiniteError,
  parseConfig,
  parseRecipe,
  prune,
  DenseFolder,
  quantize,
  Tensor,
  train,
  WriteFailedError,
} from '../lib/index.js';
import { CLI, fixturePath, sharedDir } from './helpers.js';
import { editModel, poisoned } from './model-edit.js';

const work = mkdtempSync(join(tmpdir(), 'sparq-reliability-'));
after(() => rmSync(work, { recursive: true, force: true }));
let counter = 0;
const fresh = (label: string) => join(work, `${label}-${++counter}`);
const stories = () => fixturePath('stories260K');
const calib = () => join(sharedDir(), 'data', 'tinystories_calib.txt');
const cli = (args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });

/** Every file under `dir` (not following symlinks) with its type and content hash. */
function tree(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const path = join(d, name);
      const info = lstatSync(path);
      if (info.isDirectory()) walk(path);
      else out[relative(dir, path)] = info.isSymbolicLink() ? `link` : createHash('sha256').update(readFileSync(path)).digest('hex');
    }
  };
  walk(dir);
  return out;
}

const tokensOf = (count: number, vocab: number) => Int32Array.from({ length: count }, (_, i) => (i * 7919 + 13) % vocab);

describe('reliability: output folders', function () {
  this.timeout(300_000);

  it('refuses an --out that is a parent of the model (with --overwrite), inside it, or the model through a symlink, and deletes nothing', async () => {
    const root = fresh('parent');
    const models = join(root, 'models');
    mkdirSync(models, { recursive: true });
    await editModel(stories(), join(models, 'm'));
    writeFileSync(join(models, 'notes.txt'), 'keep');
    const before = tree(root);
    const base = { model: join(models, 'm'), recipe: parseRecipe({ method: 'magnitude', sparsity: 0.5 }), overwrite: true };
    await assert.rejects(prune({ ...base, out: models }), (e: Error) => e instanceof InvalidArgumentError && /contains the input folder .*replacing it would delete the input/.test(e.message));
    await assert.rejects(prune({ ...base, out: root }), /contains the input folder/);
    await assert.rejects(prune({ ...base, out: join(models, 'm', 'inner') }), /is inside the input folder/);
    symlinkSync(join(models, 'm'), join(root, 'alias'));
    await assert.rejects(prune({ ...base, out: join(root, 'alias') }), /is the input folder/);
    symlinkSync(models, join(root, 'models-link'));
    await assert.rejects(prune({ ...base, out: join(root, 'models-link') }), /contains the input folder/);
    // The CLI says the same and exits 1; the same rule guards train's output.
    const result = cli(['prune', '--model', join(models, 'm'), '--method', 'magnitude', '--sparsity', '0.5', '--out', models, '--overwrite']);
    assert.equal(result.status, 1);
    assert.match(result.stderr, /contains the input folder/);
    await assert.rejects(
      train({ model: join(models, 'm'), tokens: tokensOf(600, 512), seqLen: 32, batch: 2, steps: 1, optimizer: 'sgd', lr: 0.1, out: models, overwrite: true }),
      /contains the input folder/,
    );
    assert.deepEqual(tree(root), { ...before, alias: 'link', 'models-link': 'link' }, 'nothing was deleted or written');
  });

  it('prunes, resumes and evaluates a Hugging Face cache snapshot (symlinks into blobs/) without writing outside --out', async () => {
    const cache = fresh('hub');
    const repo = join(cache, 'models--tiny--stories');
    const snapshot = join(repo, 'snapshots', 'abc123');
    mkdirSync(join(repo, 'blobs'), { recursive: true });
    mkdirSync(snapshot, { recursive: true });
    for (const file of ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']) {
      const content = readFileSync(join(stories(), file));
      const blob = createHash('sha256').update(content).digest('hex');
      writeFileSync(join(repo, 'blobs', blob), content);
      symlinkSync(join('..', '..', 'blobs', blob), join(snapshot, file));
    }
    const cacheBefore = tree(cache);
    const outParent = fresh('snapshot-out');
    mkdirSync(outParent);
    const out = join(outParent, 'pruned');
    const options = { model: snapshot, out, recipe: parseRecipe({ method: 'sparsegpt', sparsity: 0.5 }), calibrationFile: calib(), nsamples: 8, seqLen: 64 };
    const controller = new AbortController();
    await assert.rejects(prune({ ...options, signal: controller.signal, onProgress: (p) => (p.block === 2 ? controller.abort() : undefined) }), /aborted/);
    assert.deepEqual(tree(cache), cacheBefore, 'the interrupted run wrote nothing into the cache');
    const report = await prune({ ...options, resume: true });
    assert.equal(report.totals.resumedAtBlock, 2);
    assert.deepEqual(tree(cache), cacheBefore, 'the cache is untouched: no blob overwritten or added');
    assert.deepEqual(readdirSync(outParent), ['pruned'], 'nothing left beside --out');
    for (const file of readdirSync(out)) assert.ok(statSync(join(out, file)).isFile() && !lstatSync(join(out, file)).isSymbolicLink(), `${file} is a real file`);
    const model = await DecoderModel.open(snapshot);
    const result = await evaluatePerplexity(model, tokensOf(512, 512), { seqLen: 128 });
    await model.close();
    assert.ok(Number.isFinite(result.perplexity));
    // Quantizing reads the snapshot the same way, in both output formats.
    for (const format of ['dense', 'compressed-tensors'] as const) {
      const quantized = join(outParent, `quantized-${format}`);
      await quantize({ model: snapshot, out: quantized, format, recipe: parseRecipe({ method: 'rtn', quantize: { bits: 8, groupSize: 0 } }) });
      assert.ok(statSync(join(quantized, 'model.safetensors')).isFile());
    }
    assert.deepEqual(tree(cache), cacheBefore, 'quantizing wrote nothing into the cache either');
  });

  it('refuses a missing --out parent by naming --out, and a second run on a live run\'s --out even with --overwrite', async () => {
    const base = { model: stories(), recipe: parseRecipe({ method: 'magnitude', sparsity: 0.5 }) };
    const missing = join(fresh('nowhere'), 'deeper', 'out');
    await assert.rejects(prune({ ...base, out: missing }), (e: Error) => /--out .*deeper\/out: its parent folder .* does not exist/.test(e.message) && !/sparq-partial/.test(e.message));
    // A live run holds the staging folder's lock (this process stands in for it); a dead one's lock is stale.
    const out = fresh('locked');
    const staging = DenseFolder.stagingPath(out);
    mkdirSync(staging);
    writeFileSync(join(staging, 'sparq.lock'), JSON.stringify({ pid: process.pid, host: (await import('node:os')).hostname(), started: 'earlier' }));
    writeFileSync(join(staging, 'keep.txt'), 'live');
    for (const flags of [{}, { overwrite: true }, { resume: true }]) {
      await assert.rejects(prune({ ...base, out, ...flags }), /another sparq run \(pid \d+ on .*\) is writing/);
    }
    assert.equal(readFileSync(join(staging, 'keep.txt'), 'utf8'), 'live', 'the live run\'s folder survives --overwrite');
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout;
    writeFileSync(join(staging, 'sparq.lock'), JSON.stringify({ pid: Number(dead), host: (await import('node:os')).hostname(), started: 'earlier' }));
    await prune({ ...base, out, overwrite: true });
    assert.ok(existsSync(join(out, 'model.safetensors')) && !existsSync(staging));
    assert.ok(!existsSync(join(out, 'sparq.lock')), 'the lock does not travel into the output');
  });

  it('says a progress file is missing or corrupt instead of blaming a different model', async () => {
    const options = { model: stories(), out: fresh('progress'), recipe: parseRecipe({ method: 'magnitude', sparsity: 0.5 }) };
    const controller = new AbortController();
    await assert.rejects(prune({ ...options, signal: controller.signal, onProgress: (p) => (p.block === 1 ? controller.abort() : undefined) }));
    const progress = join(DenseFolder.stagingPath(options.out), 'sparq-progress.json');
    writeFileSync(progress, '{"fingerprint": "trunc');
    await assert.rejects(prune({ ...options, resume: true }), /cannot be resumed: its progress file is corrupt\. Pass --overwrite/);
    rmSync(progress);
    await assert.rejects(prune({ ...options, resume: true }), /cannot be resumed: its progress file is missing/);
    await assert.rejects(prune({ ...options, out: fresh('never-run'), resume: true }), /--resume: there is no interrupted run/);
  });

  it('reports a full disk naming the file and leaves nothing at --out', async function () {
    const mount = fresh('tmpfs');
    mkdirSync(mount);
    if (spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1200k', 'tmpfs', mount]).status !== 0) {
      this.skip(); // needs root and a kernel that lets this container mount tmpfs
    }
    try {
      const out = join(mount, 'big');
      // The copy of the 1 MB model fits; the pruned weights, config and report still do, so fill the rest.
      writeFileSync(join(mount, 'filler'), Buffer.alloc(600 * 1024));
      await assert.rejects(
        prune({ model: stories(), out, recipe: parseRecipe({ method: 'magnitude', sparsity: 0.5 }) }),
        (e: Error) => e instanceof WriteFailedError && /cannot write .*: the disk is full; nothing was written to .*big/.test(e.message),
      );
      assert.ok(!existsSync(out));
      assert.deepEqual(readdirSync(mount), ['filler'], 'a fresh copy that could not be completed is removed');
    } finally {
      spawnSync('umount', [mount]);
    }
  });
});

describe('reliability: models and numbers', function () {
  this.timeout(300_000);

  it('refuses NaN/Inf weights by name in eval, prune --eval and the CLI, and names the block whose activations overflow', async () => {
    const cases: [string, string, number][] = [
      ['nan-q', 'model.layers.0.self_attn.q_proj.weight', Number.NaN],
      ['inf-norm', 'model.layers.2.post_attention_layernorm.weight', Number.POSITIVE_INFINITY],
      ['nan-embed', 'model.embed_tokens.weight', Number.NaN],
    ];
    for (const [label, tensor, value] of cases) {
      const dir = await editModel(stories(), fresh(label), { tensor: (name, t) => (name === tensor ? poisoned(t, 5, value) : undefined) });
      const model = await DecoderModel.open(dir);
      await assert.rejects(evaluatePerplexity(model, tokensOf(300, 512), { seqLen: 128 }), (e: Error) => e instanceof NonFiniteError && e.message.startsWith(`${tensor} holds NaN or infinite values`));
      await model.close();
      const result = cli(['eval', '--model', dir, '--text', join(sharedDir(), 'data', 'tinystories_val.txt'), '--max-tokens', '512', '--seq-len', '128']);
      assert.equal(result.status, 1, label);
      assert.match(result.stderr, new RegExp(`${tensor.replace(/\./g, '\\.')} holds NaN or infinite values.*\\[SPARQ_NON_FINITE\\]`));
      assert.doesNotMatch(result.stdout, /perplexity/);
    }
    const dir = await editModel(stories(), fresh('nan-prune'), { tensor: (name, t) => (name === 'model.layers.3.mlp.down_proj.weight' ? poisoned(t, 0, Number.NaN) : undefined) });
    await assert.rejects(
      prune({ model: dir, out: fresh('nan-out'), recipe: parseRecipe({ method: 'magnitude', sparsity: 0.5, targets: ['model.layers.0.*'] }), evalTokens: tokensOf(300, 512), evalSeqLen: 128 }),
      /model\.layers\.3\.mlp\.down_proj\.weight holds NaN/,
    );
    // Finite but huge weights: block 1's MLP output overflows float32, and the error says where.
    const huge = await editModel(stories(), fresh('overflow'), { tensor: (name, t) => (name === 'model.layers.1.mlp.down_proj.weight' ? Tensor.full(t.shape, 3e38) : undefined) });
    const model = await DecoderModel.open(huge);
    await assert.rejects(evaluatePerplexity(model, tokensOf(300, 512), { seqLen: 128 }), /block 1 \(model\.layers\.1\.\*\) produced NaN or infinite activations although every weight is finite/);
    await model.close();
  });

  it('refuses checkpoints whose tensors disagree with the config, naming the tensor and the field', async () => {
    const untied = await editModel(fixturePath('tiny-llama'), fresh('no-head'), { tensor: (name) => (name === 'lm_head.weight' ? null : undefined) });
    await assert.rejects(DecoderModel.open(untied), (e: Error) => e instanceof InvalidFileError && /tensor 'lm_head\.weight' is missing \(tie_word_embeddings is false/.test(e.message));
    const noBias = await editModel(fixturePath('tiny-qwen2'), fresh('no-bias'), { tensor: (name) => (name === 'model.layers.0.self_attn.q_proj.bias' ? null : undefined) });
    await assert.rejects(DecoderModel.open(noBias), /tensor 'model\.layers\.0\.self_attn\.q_proj\.bias' is missing \(the config implies biases/);
    const fewer = await editModel(stories(), fresh('fewer-layers'), { config: { num_hidden_layers: 4 } });
    await assert.rejects(DecoderModel.open(fewer), /tensor 'model\.layers\.4\.[a-z_.]+' belongs to layer 4, but .*config\.json has num_hidden_layers 4/);
    const extra = await editModel(stories(), fresh('extra'), { add: { 'model.layers.0.self_attn.o_proj.bias': Tensor.zeros([64]) } });
    await assert.rejects(DecoderModel.open(extra), /'model\.layers\.0\.self_attn\.o_proj\.bias'\) is not part of a llama model/);
    const wider = await editModel(stories(), fresh('wider'), { config: { intermediate_size: 176 } });
    await assert.rejects(DecoderModel.open(wider), /tensor 'model\.layers\.0\.mlp\.gate_proj\.weight' has shape \[172, 64\], but .*config\.json implies \[176, 64\] \(intermediate_size = 176, hidden_size = 64\)/);
    const kv = await editModel(stories(), fresh('kv'), { config: { num_key_value_heads: 8 } });
    await assert.rejects(DecoderModel.open(kv), /k_proj\.weight' has shape \[32, 64\], but .* implies \[64, 64\] \(num_key_value_heads × head_dim = 64/);
    // Optional extras are accepted: a rotary cache and a tied copy of the embedding.
    const extras = await editModel(stories(), fresh('extras'), { add: { 'model.layers.0.self_attn.rotary_emb.inv_freq': Tensor.zeros([4]), 'lm_head.weight': Tensor.zeros([512, 64]) } });
    await (await DecoderModel.open(extras)).close();
    // hidden_size not divisible by the heads blames the two fields the user set, not head_dim.
    assert.throws(() => parseConfig({ model_type: 'llama', hidden_size: 100, num_attention_heads: 8, intermediate_size: 64, num_hidden_layers: 1, vocab_size: 10 }), /hidden_size 100 is not a multiple of num_attention_heads 8, and no head_dim is given/);
  });

  it('refuses token ids outside the vocabulary before they wrap, empty texts and binary calibration files', () => {
    const tokens = join(work, 'tokens.json');
    writeFileSync(tokens, JSON.stringify([1, 2, 4294967301]));
    let result = cli(['eval', '--model', stories(), '--tokens', tokens]);
    assert.equal(result.status, 1);
    assert.match(result.stderr, /token 2 is 4294967301; ids must be integers from 0 to 511/);
    writeFileSync(tokens, JSON.stringify([1, -1]));
    assert.match(cli(['eval', '--model', stories(), '--tokens', tokens]).stderr, /token 1 is -1/);
    const empty = join(work, 'empty.txt');
    writeFileSync(empty, '');
    assert.match(cli(['eval', '--model', stories(), '--text', empty]).stderr, /empty\.txt: the text encodes to no tokens/);
    const binary = join(work, 'calib.bin');
    writeFileSync(binary, Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0x02, 0x01, 0x01, 0x00, 0x00]));
    result = cli(['prune', '--model', stories(), '--method', 'wanda', '--sparsity', '0.5', '--calib', binary, '--out', fresh('bin')]);
    assert.match(result.stderr, /calib\.bin: not a text file \(a NUL byte at offset 7/);
    writeFileSync(binary, Buffer.from([0x61, 0xff, 0xfe, 0x62]));
    assert.match(cli(['prune', '--model', stories(), '--method', 'wanda', '--sparsity', '0.5', '--calib', binary, '--out', fresh('bin')]).stderr, /not valid UTF-8 text/);
  });

  it('names a folder called model.safetensors instead of failing with EISDIR', async () => {
    const dir = fresh('eisdir');
    mkdirSync(join(dir, 'model.safetensors'), { recursive: true });
    writeFileSync(join(dir, 'config.json'), readFileSync(join(stories(), 'config.json')));
    await assert.rejects(DecoderModel.open(dir), (e: Error) => e instanceof InvalidFileError && /model\.safetensors: is a folder; a safetensors file was expected/.test(e.message));
  });

  it('matches a catastrophic recipe regex at once, so prune answers instead of hanging', async () => {
    const started = performance.now();
    await assert.rejects(
      prune({ model: stories(), out: fresh('regex'), recipe: parseRecipe({ method: 'magnitude', sparsity: 0.5, targets: ['re:(.*)*X'] }) }),
      /targets: 're:\(\.\*\)\*X' matches no linear layer/,
    );
    assert.ok(performance.now() - started < 5000);
  });
});

describe('reliability: the command line', function () {
  this.timeout(120_000);

  it('names an unknown option and points at the command\'s --help (exit 2; test/cli.test.ts covers every command)', () => {
    const unknown = cli(['eval', '--bogus']);
    assert.equal(unknown.status, 2);
    assert.match(unknown.stderr, /eval: Unknown option '--bogus' \(sparq eval --help lists its options\)/);
  });

  it('treats --grad-clip 0 as no clipping, so training still moves the weights', () => {
    const out = fresh('clip0');
    const stdout = execFileSync(
      process.execPath,
      [CLI, 'train', '--model', stories(), '--text', join(sharedDir(), 'data', 'tinystories_val.txt'), '--seq-len', '64', '--batch', '2', '--steps', '3', '--optimizer', 'sgd', '--lr', '0.05', '--grad-clip', '0', '--out', out, '--json'],
      { encoding: 'utf8' },
    );
    const result = JSON.parse(stdout.trim());
    const training = JSON.parse(readFileSync(join(out, 'training.json'), 'utf8'));
    assert.equal(JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')).sparq.training.grad_clip, null);
    assert.ok(result.final_loss < result.first_loss, `losses ${training.losses}`);
    assert.notDeepEqual(readFileSync(join(out, 'model.safetensors')), readFileSync(join(stories(), 'model.safetensors')), 'the weights moved');
  });
});
