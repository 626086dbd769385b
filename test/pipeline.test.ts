// The layer-wise pruning pipeline end to end on the shared fixtures: perplexity ordering of the three
// baselines on a real trained model, exact patterns in the written folder, an output that is the input
// with only the compressed weights changed, resume equal to an uninterrupted run, recipes, MoE, and the
// errors for every bad input the pipeline can meet.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AbortError,
  Checkpoint,
  DecoderModel,
  evaluatePerplexity,
  inspectModel,
  InvalidArgumentError,
  InvalidFileError,
  loadTokenizer,
  parseRecipe,
  prune,
  DenseFolder,
  SafetensorsFile,
  type PruneOptions,
} from '../lib/index.js';
import { assertSchema, CLI, fixturePath, sharedDir } from './helpers.js';

const stories = () => fixturePath('stories260K');
const calib = () => join(sharedDir(), 'data', 'tinystories_calib.txt');
const work = mkdtempSync(join(tmpdir(), 'sparq-pipeline-'));
after(() => rmSync(work, { recursive: true, force: true }));

let counter = 0;
const outDir = (label: string) => join(work, `${label}-${++counter}`);

/** Small but real: 16 windows of 128 tokens of TinyStories text. */
function storiesOptions(method: string, sparsity: string, extra: Partial<PruneOptions> = {}): PruneOptions {
  return { model: stories(), out: outDir(`${method}-${sparsity.replace(':', '-')}`), recipe: parseRecipe({ method, sparsity }), calibrationFile: calib(), nsamples: 16, seqLen: 128, seed: 1, ...extra };
}

function randomTokens(count: number, vocab: number, seed: number): Int32Array {
  let state = seed;
  return Int32Array.from({ length: count }, () => {
    state = (state * 1103515245 + 12345) >>> 0;
    return state % vocab;
  });
}

function shardBytes(dir: string): Map<string, Buffer> {
  const files = new Map<string, Buffer>();
  for (const f of readdirSync(dir)) if (f.endsWith('.safetensors')) files.set(f, readFileSync(join(dir, f)));
  return files;
}

describe('pruning pipeline', function () {
  this.timeout(600_000);

  // The papers find SparseGPT and Wanda about tied at 50% unstructured (LLaMA-7B: 7.22 vs 7.26 in the
  // Wanda paper) and SparseGPT clearly ahead at 2:4; on this 64-wide model the 50% results differ by
  // well under 1%, so 50% allows SparseGPT 1% above Wanda, and 2:4 needs the strict order.
  it('orders perplexity SparseGPT ≤ Wanda < magnitude on stories260K (2:4 strictly, 50% within 1%)', async () => {
    const tokenizer = await loadTokenizer(stories());
    const evalTokens = tokenizer.encode(readFileSync(join(sharedDir(), 'data', 'tinystories_val.txt'), 'utf8')).slice(0, 32768);
    const dense = await DecoderModel.open(stories());
    const before = (await evaluatePerplexity(dense, evalTokens, { seqLen: 256 })).perplexity;
    await dense.close();
    for (const sparsity of ['0.5', '2:4']) {
      const perplexity: Record<string, number> = {};
      for (const method of ['magnitude', 'wanda', 'sparsegpt']) {
        const options = storiesOptions(method, sparsity, { nsamples: 64, seqLen: 256 });
        await prune(options);
        const pruned = await DecoderModel.open(options.out);
        perplexity[method] = (await evaluatePerplexity(pruned, evalTokens, { seqLen: 256 })).perplexity;
        await pruned.close();
        assert.ok(perplexity[method] > before, `${method} ${sparsity} should lose some perplexity`);
      }
      const slack = sparsity === '2:4' ? 1 : 1.01;
      assert.ok(perplexity.sparsegpt <= slack * perplexity.wanda, `${sparsity}: sparsegpt ${perplexity.sparsegpt} vs wanda ${perplexity.wanda}`);
      assert.ok(perplexity.wanda < perplexity.magnitude, `${sparsity}: wanda ${perplexity.wanda} >= magnitude ${perplexity.magnitude}`);
      console.log(`      stories260K ${sparsity}: dense ${before.toFixed(3)}, ${Object.entries(perplexity).map(([m, p]) => `${m} ${p.toFixed(3)}`).join(', ')}`);
    }
  });

  it('writes the input folder with only the compressed weights changed, exact patterns, and a sparq config key', async () => {
    for (const sparsity of ['0.5', '2:4']) {
      const options = storiesOptions('sparsegpt', sparsity);
      const report = await prune(options);
      const out = options.out;
      assert.ok(!existsSync(DenseFolder.stagingPath(out)), 'the staging folder is renamed into place');
      for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'report.json', 'model.safetensors']) assert.ok(existsSync(join(out, f)), f);
      const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
      assert.equal(config.sparq.sparsity, 0.5);
      assert.equal(config.sparq.recipe.stages[0].method, 'sparsegpt');
      assert.equal(config.hidden_size, 64);
      const inspected = await inspectModel(out);
      assert.equal(inspected.linears.length, 35);
      for (const l of inspected.linears) assert.equal(l.sparsity, 0.5, l.name);
      const input = await SafetensorsFile.open(join(stories(), 'model.safetensors'));
      const output = await SafetensorsFile.open(join(out, 'model.safetensors'));
      try {
        const linears = new Set(report.linears.map((l) => `${l.name}.weight`));
        assert.equal(linears.size, 35);
        for (const name of input.names()) {
          const a = (await input.read(name)).data as Float32Array;
          const b = (await output.read(name)).data as Float32Array;
          if (linears.has(name)) {
            assert.notDeepEqual(a, b, name);
            if (sparsity === '2:4') {
              for (let g = 0; g < b.length; g += 4) assert.ok([b[g], b[g + 1], b[g + 2], b[g + 3]].filter((v) => v !== 0).length === 2, `${name} group ${g}`);
            }
          } else {
            assert.deepEqual(a, b, `${name} is unchanged`);
          }
        }
      } finally {
        await input.close();
        await output.close();
      }
      const saved = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8'));
      assert.equal(saved.linears.length, 35);
      for (const l of saved.linears) assert.ok(l.relativeError > 0 && l.relativeError < 1, `${l.name} error ${l.relativeError}`);
    }
  });

  it('resumes an interrupted run from its last finished block with the same result as an uninterrupted run', async () => {
    const whole = storiesOptions('sparsegpt', '0.6');
    await prune(whole);
    const interrupted = storiesOptions('sparsegpt', '0.6');
    const controller = new AbortController();
    await assert.rejects(
      prune({ ...interrupted, signal: controller.signal, onProgress: (p) => (p.block === 2 && p.stage === 'calibrating' ? controller.abort() : undefined) }),
      AbortError,
    );
    assert.ok(!existsSync(interrupted.out), 'nothing at --out after an interruption');
    assert.ok(existsSync(DenseFolder.stagingPath(interrupted.out)));
    await assert.rejects(prune(interrupted), /interrupted run is kept at .*--resume/);
    const report = await prune({ ...interrupted, resume: true });
    assert.equal(report.totals.resumedAtBlock, 2);
    assert.equal(report.linears.length, 35);
    assert.deepEqual(shardBytes(interrupted.out), shardBytes(whole.out));
    const a = JSON.parse(readFileSync(join(whole.out, 'report.json'), 'utf8')).linears.map((l: { relativeError: number }) => l.relativeError);
    const b = report.linears.map((l) => l.relativeError);
    assert.deepEqual(b, a);
  });

  it('applies a YAML recipe: stages, targets, ignore lists and per-layer overrides', async () => {
    const recipeFile = join(work, 'recipe.yaml');
    writeFileSync(
      recipeFile,
      [
        'stages:',
        '  - method: sparsegpt',
        '    sparsity: 0.5',
        '    targets: ["*.mlp.*"]',
        '    overrides: [{ match: "model.layers.0.*", sparsity: "25%" }]',
        '    options: { damp: 0.02 }',
        '  - method: magnitude',
        '    sparsity: "2:4"',
        '    targets: ["re:.*self_attn\\\\.[qkv]_proj"]',
        '    ignore: ["model.layers.4.*"]',
        'sequential: linear',
        'calibration: { nsamples: 8, seqLen: 64, seed: 3 }',
      ].join('\n'),
    );
    const out = outDir('recipe');
    execFileSync(process.execPath, [CLI, 'prune', '--model', stories(), '--recipe', recipeFile, '--calib', calib(), '--out', out, '--json'], { stdio: 'pipe' });
    const report = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8'));
    const byName = new Map<string, { sparsity: number; method: string; pattern: string; details?: { damping: number } }>(report.linears.map((l: { name: string }) => [l.name, l]));
    assert.equal(byName.get('model.layers.0.mlp.down_proj')!.sparsity, 0.25);
    assert.equal(byName.get('model.layers.1.mlp.up_proj')!.sparsity, 0.5);
    assert.equal(byName.get('model.layers.1.mlp.up_proj')!.details!.damping, 0.02);
    assert.equal(byName.get('model.layers.3.self_attn.k_proj')!.pattern, '2:4');
    assert.equal(byName.get('model.layers.3.self_attn.k_proj')!.method, 'magnitude');
    assert.ok(!byName.has('model.layers.4.self_attn.q_proj'), 'ignored');
    assert.ok(!byName.has('model.layers.2.self_attn.o_proj'), 'not targeted');
    assert.equal(byName.size, 5 * 3 + 4 * 3);
    assert.equal(report.calibration.windows, 8);
    assert.equal(report.calibration.seqLen, 64);
  });

  it('prunes sharded, fp16 and MoE models; routers stay dense; outputs load and evaluate', async () => {
    for (const fixture of ['tiny-qwen3', 'tiny-qwen2', 'tiny-mixtral', 'tiny-opt']) {
      const dir = fixturePath(fixture);
      const model = await DecoderModel.open(dir);
      const vocab = model.config.vocabSize;
      await model.close();
      const out = outDir(fixture);
      const report = await prune({ model: dir, out, recipe: parseRecipe({ method: 'sparsegpt', sparsity: 0.5 }), calibrationTokens: randomTokens(4096, vocab, 7), nsamples: 16, seqLen: 32 });
      assert.equal(report.totals.sparsity, 0.5, fixture);
      const checkpoint = await Checkpoint.open(out);
      const input = await Checkpoint.open(dir);
      assert.deepEqual(checkpoint.names().sort(), input.names().sort());
      assert.deepEqual(readdirSync(out).filter((f) => f.endsWith('.safetensors')).sort(), readdirSync(dir).filter((f) => f.endsWith('.safetensors')).sort());
      for (const name of input.names()) assert.equal((await checkpoint.info(name)).dtype, (await input.info(name)).dtype);
      await checkpoint.close();
      await input.close();
      if (fixture === 'tiny-mixtral') {
        assert.ok(report.linears.some((l) => l.name.endsWith('experts.3.w2')));
        // An expert that no calibration token reached is pruned by magnitude, and the report says so.
        for (const l of report.linears) if (l.details?.fallback) assert.match(l.name, /experts\.\d+\.w[123]$/);
        assert.ok(!report.linears.some((l) => l.name.endsWith('block_sparse_moe.gate')), 'router left dense');
      }
      const pruned = await DecoderModel.open(out);
      const result = await evaluatePerplexity(pruned, randomTokens(256, vocab, 9), { seqLen: 32 });
      await pruned.close();
      assert.ok(Number.isFinite(result.perplexity), fixture);
    }
  });

  it('refuses bad inputs with errors that name the problem', async () => {
    const base = storiesOptions('sparsegpt', '0.5');
    const shortText = join(work, 'short.txt');
    writeFileSync(shortText, 'Once upon a time.');
    await assert.rejects(prune({ ...base, calibrationFile: shortText }), (e: Error) => e instanceof InvalidArgumentError && /has \d+ tokens; one calibration window needs 128/.test(e.message));
    await assert.rejects(prune({ ...base, calibrationFile: join(work, 'missing.txt') }), InvalidFileError);
    await assert.rejects(prune({ ...base, out: stories() }), /is the input folder/);
    await assert.rejects(prune({ ...base, out: work }), /already exists \(pass --overwrite/);
    await assert.rejects(prune({ ...base, calibrationFile: undefined }), /sparsegpt needs calibration data: pass --calib/);
    await assert.rejects(prune({ ...base, recipe: parseRecipe({ method: 'sparsegpt', sparsity: '4:8' }) }), /model.layers.0.mlp.down_proj: 4:8 groups inputs by 8, but its input size 172/);
    await assert.rejects(prune({ ...base, recipe: parseRecipe({ method: 'wanda', sparsity: 0.5, targets: ['*.attn.*'] }) }), /targets: '\*.attn.\*' matches no linear layer/);
    assert.throws(() => parseRecipe({ method: 'sparsgpt', sparsity: 0.5 }), /unknown method 'sparsgpt' \(available: magnitude, wanda, sparsegpt, alps, elsa, rtn, gptq, gwq, hwpq, gqsa, magnitude-sp, wanda-sp, structprune\)/);
    assert.throws(() => parseRecipe({ method: 'wanda', sparsity: 0.5, sparsityy: 1 }), /unknown key 'sparsityy'/);
    assert.throws(() => parseRecipe({ method: 'wanda', sparsity: 1.2 }), /recipe.sparsity: sparsity must be a fraction/);
    assert.throws(() => parseRecipe({ method: 'wanda', sparsity: 0.5, sequential: 'layer' }), /sequential: expected 'block' or 'linear'/);
    // A NaN weight is refused by name.
    const broken = join(work, 'nan-model');
    cpSync(stories(), broken, { recursive: true });
    const file = await SafetensorsFile.open(join(broken, 'model.safetensors'));
    const info = file.info('model.layers.1.mlp.up_proj.weight');
    await file.close();
    const bytes = readFileSync(join(broken, 'model.safetensors'));
    bytes.writeFloatLE(Number.NaN, info.offset + 40);
    writeFileSync(join(broken, 'model.safetensors'), bytes);
    await assert.rejects(prune({ ...base, model: broken, out: outDir('nan') }), /model.layers.1.mlp.up_proj.weight holds NaN/);
  });

  it('prints one JSON line with sparsity, seconds, out and perplexities from `sparq prune --json`', () => {
    const out = outDir('cli');
    const stdout = execFileSync(
      process.execPath,
      [CLI, 'prune', '--model', stories(), '--method', 'wanda', '--sparsity', '2:4', '--calib', calib(), '--nsamples', '8', '--seq-len', '64', '--out', out, '--eval', join(sharedDir(), 'data', 'tinystories_val.txt'), '--eval-max-tokens', '4096', '--eval-seq-len', '256', '--skip-error', '--json'],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const result = JSON.parse(stdout.trim().split('\n').pop()!);
    assertSchema('prune', result); // with the optional perplexity fields --eval adds
    const saved = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8'));
    assert.ok(saved.linears.every((l: { relativeError: number | null }) => l.relativeError === null), '--skip-error leaves the errors unmeasured');
    assert.equal(result.out, out);
    assert.equal(result.sparsity, 0.5);
    assert.ok(result.seconds > 0);
    assert.ok(result.perplexity_after > result.perplexity_before);
  });
});
