// Structured pruning (magnitude-sp, wanda-sp, structprune): the shrunk model computes what the zero-padded
// one does on every family (GQA, q/k norms, biases, OPT), per-layer widths load everywhere (forward,
// KV-cached generation, inspect), the allocation keeps the target and clamps, the methods order as the
// papers say on a trained model, and bad input gets typed errors.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, cpSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  allocateStructured,
  DecoderModel,
  evaluatePerplexity,
  GenerationSession,
  inspectModel,
  InvalidArgumentError,
  InvalidFileError,
  loadTokenizer,
  parseConfig,
  parseRecipe,
  prune,
  Tensor,
  type PruneOptions,
} from '../lib/index.js';
import { assertClose, assertSchema, CLI, fixturePath, sharedDir } from './helpers.js';

const work = mkdtempSync(join(tmpdir(), 'sparq-structured-'));
after(() => rmSync(work, { recursive: true, force: true }));
let counter = 0;
const outDir = (label: string) => join(work, `${label}-${++counter}`);

function tokens(count: number, vocab: number, seed: number): Int32Array {
  let state = seed;
  return Int32Array.from({ length: count }, () => {
    state = (state * 1103515245 + 12345) >>> 0;
    return state % vocab;
  });
}

/** Logits [T, vocab] of one sequence through the block-by-block forward. */
async function logitsOf(dir: string, ids: Int32Array): Promise<Float32Array> {
  const model = await DecoderModel.open(dir);
  try {
    const h = model.embed(await model.loadEmbeddings(), ids);
    const positions = Tensor.fromTypedArray(Int32Array.from({ length: ids.length }, (_, i) => i));
    for (let layer = 0; layer < model.config.layers; ++layer) await (await model.loadBlock(layer)).forward(h, positions, model.invFreq);
    return (await model.logits(await model.loadHead(), h)).data as Float32Array;
  } finally {
    await model.close();
  }
}

/** Prunes into a padded and a shrunk folder with the same options; returns both paths and the shrunk report. */
async function padAndShrink(model: string, method: string, sparsity: number, options: Record<string, unknown>, extra: Partial<PruneOptions> = {}) {
  const config = (await DecoderModel.open(model).then(async (m) => (await m.close(), m.config)));
  const base = { model, recipe: parseRecipe({ method, sparsity, options }), calibrationTokens: tokens(4096, config.vocabSize, 3), nsamples: 8, seqLen: 32, seed: 1, ...extra };
  const padded = outDir(`${method}-padded`);
  const shrunk = outDir(`${method}-shrunk`);
  await prune({ ...base, out: padded, layout: 'padded' });
  const report = await prune({ ...base, out: shrunk });
  return { padded, shrunk, report };
}

// Removing a unit drops exact zeros from the sums the padded model computes, so the two differ only by
// float32 summation order over ≤ 256-term dot products (≈1e-6 relative); 1e-4 relative plus 1e-4 absolute
// is far above that and far below what a wrong row or column would change.
const SAME_FUNCTION = { atol: 1e-4, rtol: 1e-4 };

describe('structured pruning', function () {
  this.timeout(300_000);

  const families: [string, string, Record<string, unknown>][] = [
    ['tiny-llama', 'wanda-sp', { allocation: 'softmax' }], // GQA 4/2, per-layer widths
    ['tiny-qwen3', 'magnitude-sp', { heads: 'queries' }], // q/k norms, head_dim apart from hidden/heads, query heads only
    ['tiny-qwen2', 'structprune', {}], // q/k/v biases, refit
    ['tiny-opt', 'wanda-sp', {}], // biases everywhere, ReLU MLP, learned positions, no GQA
    ['tiny-qwen2-moe', 'wanda-sp', {}], // MoE layers: heads pruned, routed and shared experts kept
    ['tiny-deepseek-moe', 'structprune', { allocation: 'softmax' }], // a dense first layer among MoE layers
  ];
  for (const [fixture, method, options] of families) {
    it(`${fixture}: the shrunk model's logits equal the zero-padded model's (${method} ${JSON.stringify(options)})`, async () => {
      const { padded, shrunk, report } = await padAndShrink(fixturePath(fixture), method, 0.4, options);
      const vocab = (await inspectModel(shrunk)).config.vocabSize;
      const ids = tokens(24, vocab, 11);
      assertClose(await logitsOf(shrunk, ids), await logitsOf(padded, ids), SAME_FUNCTION, `${fixture} logits`);
      const s = report.shrunk!;
      assert.ok(s.parametersAfter < s.parametersBefore, 'fewer parameters');
      const inspected = await inspectModel(shrunk);
      assert.equal(inspected.parameters, s.parametersAfter);
      assert.deepEqual(inspected.layers, s.layers);
      for (const l of s.layers) assert.equal(l.heads % l.kvHeads, 0, 'GQA groups stay equal');
      const config = JSON.parse(readFileSync(join(shrunk, 'config.json'), 'utf8'));
      if (!s.perLayer) {
        assert.equal(config.sparq_layer_widths, undefined);
        assert.equal(config.intermediate_size ?? config.ffn_dim, s.layers[0].intermediateSize);
      } else assert.equal(config.sparq_layer_widths.length, s.layers.length);
    });
  }

  it('heads: queries removes the same number of query heads from every kv group and keeps every kv head', async () => {
    const { shrunk, report } = await padAndShrink(fixturePath('tiny-llama'), 'magnitude-sp', 0.15, { structures: ['heads'], heads: 'queries' });
    for (const l of report.shrunk!.layers) assert.deepEqual([l.heads, l.kvHeads], [2, 2]);
    const config = JSON.parse(readFileSync(join(shrunk, 'config.json'), 'utf8'));
    assert.deepEqual([config.num_attention_heads, config.num_key_value_heads, config.head_dim, config.intermediate_size], [2, 2, 16, 160]);
  });

  it('a per-layer-width model generates through the KV cache what its full forward computes', async () => {
    const { shrunk, report } = await padAndShrink(fixturePath('tiny-llama'), 'wanda-sp', 0.5, { allocation: 'softmax', temperature: 0.2 });
    assert.ok(report.shrunk!.perLayer, 'widths differ per layer');
    const session = await GenerationSession.load(shrunk);
    const prompt = tokens(6, session.config.vocabSize, 5);
    const ids = [...prompt];
    let logits = await session.prefill(prompt);
    const cached = [logits];
    for (let i = 0; i < 4; ++i) {
      let best = 0;
      for (let v = 1; v < logits.length; ++v) if (logits[v] > logits[best]) best = v;
      ids.push(best);
      logits = await session.append([best]);
      cached.push(logits);
    }
    const full = await logitsOf(shrunk, Int32Array.from(ids));
    const vocab = session.config.vocabSize;
    cached.forEach((row, i) => assertClose(row, full.subarray((prompt.length - 1 + i) * vocab, (prompt.length + i) * vocab), SAME_FUNCTION, `step ${i}`));
  });

  it('the allocation keeps the mean sparsity at the target, follows the energy, and clamps at one unit', () => {
    const mlp = (block: number, scores: number[]) => ({ block, group: 'mlp', shapes: { gate: [10, 8], up: [10, 8], down: [8, 10] }, scores });
    const flat = Array.from({ length: 10 }, (_, i) => i + 1);
    const spiky = Array.from({ length: 10 }, (_, i) => (i < 9 ? 1 : 100));
    const options = { structures: ['mlp' as const], heads: 'groups' as const, allocation: 'softmax' as const, temperature: 1 };
    const { sparsities, notes } = allocateStructured([mlp(0, flat), mlp(1, spiky)], 0.4, options);
    assert.ok(Math.abs((sparsities[0] + sparsities[1]) / 2 - 0.4) < 1e-12, `mean ${sparsities}`);
    // The spiky layer loses little of its score mass at 40% (its mass sits in one neuron): it takes more.
    assert.ok(sparsities[1] > sparsities[0], `${sparsities}`);
    assert.deepEqual(notes, []);
    const uniform = allocateStructured([mlp(0, flat), mlp(1, spiky)], 0.4, { ...options, temperature: 1e9 }).sparsities;
    assert.ok(uniform.every((s) => Math.abs(s - 0.4) < 1e-6), `large τ is uniform: ${uniform}`);
    // 95% asks for more than all-but-one neuron (90%): clamped, reported.
    const clamped = allocateStructured([mlp(0, flat), mlp(1, spiky)], 0.95, { ...options, allocation: 'uniform' });
    assert.deepEqual(clamped.sparsities, [0.9, 0.9]);
    assert.match(clamped.notes[0], /each layer must keep one unit/);
  });

  it('a target that would empty a layer keeps one neuron and says so in the report', async () => {
    const { report, shrunk } = await padAndShrink(fixturePath('tiny-llama'), 'magnitude-sp', 0.9, { structures: 'mlp' });
    for (const l of report.shrunk!.layers) assert.equal(l.intermediateSize, 1);
    assert.ok(report.allocation!.notes.some((n) => /keep one unit/.test(n)), JSON.stringify(report.allocation!.notes));
    assert.ok(Number.isFinite((await logitsOf(shrunk, tokens(8, 128, 2)))[0]));
  });

  it('refuses unknown structures, options, layouts and broken per-layer configs with typed errors', async () => {
    assert.throws(() => parseRecipe({ method: 'structprune', sparsity: 0.3, options: { structures: ['mlp', 'attn'] } }), (e: unknown) => e instanceof InvalidArgumentError && /unknown structure 'attn'/.test(e.message));
    assert.throws(() => parseRecipe({ method: 'wanda-sp', sparsity: 0.3, options: { heads: 'kv' } }), InvalidArgumentError);
    assert.throws(() => parseRecipe({ method: 'magnitude-sp', sparsity: 0.3, options: { allocation: 'global' } }), InvalidArgumentError);
    await assert.rejects(prune({ model: fixturePath('tiny-llama'), out: outDir('bad'), recipe: parseRecipe({ method: 'magnitude', sparsity: 0.5 }), layout: 'shrunk' }), (e: unknown) => e instanceof InvalidArgumentError && /only structured pruning/.test(e.message));
    await assert.rejects(prune({ model: fixturePath('tiny-llama'), out: outDir('bad'), recipe: parseRecipe({ method: 'magnitude-sp', sparsity: '2:4' }) }), InvalidArgumentError);
    const json = JSON.parse(readFileSync(join(fixturePath('tiny-llama'), 'config.json'), 'utf8'));
    const widths = (heads: number, kv: number) => Array.from({ length: 2 }, () => ({ intermediate_size: 160, num_attention_heads: heads, num_key_value_heads: kv }));
    assert.throws(() => parseConfig({ ...json, sparq_layer_widths: widths(3, 2) }), (e: unknown) => e instanceof InvalidFileError && /not a multiple of num_key_value_heads/.test(e.message));
    assert.throws(() => parseConfig({ ...json, sparq_layer_widths: widths(4, 2).slice(1) }), (e: unknown) => e instanceof InvalidFileError && /2 entries/.test(e.message));
    // Widths that disagree with the stored tensors name the tensor and the list entry.
    const dir = outDir('mismatch');
    cpSync(fixturePath('tiny-llama'), dir, { recursive: true });
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...json, sparq_layer_widths: widths(2, 2) }));
    await assert.rejects(DecoderModel.open(dir), (e: unknown) => e instanceof InvalidFileError && /sparq_layer_widths\[0\]/.test(e.message));
  });

  it('`sparq prune --json` reports the shrunk widths, and `sparq inspect --json` reads them back; bad flags exit 1 with a named error', () => {
    const out = outDir('cli');
    const run = (args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
    const pruned = run(['prune', '--model', fixturePath('tiny-llama'), '--method', 'magnitude-sp', '--sparsity', '0.3', '--structures', 'mlp', '--allocation', 'softmax', '--out', out, '--json']);
    assert.equal(pruned.status, 0, pruned.stderr);
    const result = JSON.parse(pruned.stdout.trim().split('\n').pop()!);
    assertSchema('prune', result);
    assert.ok(result.parameters_after < result.parameters_before);
    const inspected = JSON.parse(run(['inspect', out, '--json']).stdout.trim().split('\n').pop()!);
    assertSchema('inspect', inspected);
    assert.equal(inspected.parameters, result.parameters_after);
    assert.deepEqual(
      inspected.layers.map((l: { intermediateSize: number; heads: number; kvHeads: number }) => ({ intermediate_size: l.intermediateSize, num_attention_heads: l.heads, num_key_value_heads: l.kvHeads })),
      result.layer_widths,
    );
    const bad = run(['prune', '--model', fixturePath('tiny-llama'), '--method', 'magnitude-sp', '--sparsity', '0.3', '--structures', 'mlp,ffn', '--out', outDir('bad')]);
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /unknown structure 'ffn'/);
    const layout = run(['prune', '--model', fixturePath('tiny-llama'), '--method', 'magnitude-sp', '--sparsity', '0.3', '--layout', 'thin', '--out', outDir('bad')]);
    assert.match(layout.stderr, /--layout must be shrunk or padded/);
  });

  // The papers' order at 30% of the decoder-linear parameters: the ADMM refit beats Wanda-sp's selection
  // alone, which beats weight norms; the softmax allocation is not worse than uniform here.
  it('orders perplexity structprune < wanda-sp < magnitude-sp on stories260K at 30%', async () => {
    const model = fixturePath('stories260K');
    const tokenizer = await loadTokenizer(model);
    const evalTokens = tokenizer.encode(readFileSync(join(sharedDir(), 'data', 'tinystories_val.txt'), 'utf8')).slice(0, 8192);
    const perplexity: Record<string, number> = {};
    for (const method of ['magnitude-sp', 'wanda-sp', 'structprune']) {
      const out = outDir(method);
      await prune({ model, out, recipe: parseRecipe({ method, sparsity: 0.3 }), calibrationFile: join(sharedDir(), 'data', 'tinystories_calib.txt'), nsamples: 16, seqLen: 128, seed: 1 });
      const pruned = await DecoderModel.open(out);
      perplexity[method] = (await evaluatePerplexity(pruned, evalTokens, { seqLen: 256 })).perplexity;
      await pruned.close();
    }
    assert.ok(perplexity.structprune < perplexity['wanda-sp'] && perplexity['wanda-sp'] < perplexity['magnitude-sp'], JSON.stringify(perplexity));
    console.log(`      stories260K 30%: ${Object.entries(perplexity).map(([m, p]) => `${m} ${p.toFixed(3)}`).join(', ')}`);
  });
});
