// HEAPr and the expert-pruning framework: the one-pass score equals the explicit output-space Hessian
// form; the allocation keeps its promises (global vs per-layer budgets, one neuron per expert, top-k
// experts per layer, unreached experts first); the padded and shrunk outputs compute the same model, sparq
// loads, inspects and generates from both, and removed experts are never routed to.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { blockOnTape, embedOnTape, lossOnTape, makeBatch, type ParameterLookup } from '../lib/autograd/decoder.js';
import { Tape, type Variable } from '../lib/autograd/tape.js';
import { activationAtoms } from '../lib/compress/activation-atoms.js';
import { expertDrop } from '../lib/compress/expert-drop.js';
import { planExpertPruning, UNREACHED_SCORE, type ExpertStatistics } from '../lib/compress/expert-pruning.js';
import { heapr, heaprScores } from '../lib/compress/heapr.js';
import { evaluatePerplexity } from '../lib/eval/perplexity.js';
import { SafetensorsFile } from '../lib/io/safetensors.js';
import { DecoderModel } from '../lib/models/decoder.js';
import { inspectModel } from '../lib/models/inspect.js';
import { pruneExperts } from '../lib/pipeline/expert-prune.js';
import { gatherExpertStatistics, moeLayers } from '../lib/pipeline/expert-statistics.js';
import { generate } from '../lib/generate/generate.js';
import { Tensor } from '../lib/tensor/tensor.js';
import { byteLevelBpeTokenizerConfig, trainByteLevelBpe } from '../lib/demo/bpe.js';
import { MOE_DEMO_PROFILES, moeDemoConfig, runMoeDemo } from '../lib/demo/moe-demo.js';
import { loadTokenizer } from '../lib/io/tokenizer.js';
import { train } from '../lib/train/trainer.js';
import { assertSchema, CLI, fixturePath, sharedDir } from './helpers.js';

const work = mkdtempSync(join(tmpdir(), 'sparq-heapr-'));
after(() => rmSync(work, { recursive: true, force: true }));
const mixtral = () => fixturePath('tiny-mixtral');

async function goldenWindows(dir: string): Promise<Int32Array[]> {
  const file = await SafetensorsFile.open(join(dir, 'golden.safetensors'));
  const ids = (await file.read('input_ids')).data as Int32Array;
  const [batch, length] = file.info('input_ids').shape;
  await file.close();
  return Array.from({ length: batch }, (_, b) => ids.slice(b * length, (b + 1) * length));
}

/** A tape that also records, for each expert's down projection, its output and that output's gradient. */
class RecordingTape extends Tape {
  readonly downOf = new Map<Variable, string>();
  readonly outputGradients = new Map<string, Float64Array[]>();
  override linear(x: Variable, w: Variable, b?: Variable): Variable {
    const y = super.linear(x, w, b);
    const name = this.downOf.get(w);
    if (name) {
      this.watch(y, (_value, grad) => {
        const g = grad.data as Float32Array;
        const D = grad.shape[1];
        const rows = this.outputGradients.get(name) ?? [];
        for (let t = 0; t < grad.shape[0]; ++t) rows.push(Float64Array.from(g.subarray(t * D, (t + 1) * D)));
        this.outputGradients.set(name, rows);
      });
    }
    return y;
  }
}

const MOE_FIXTURES: [string, number[], string | undefined][] = [
  // fixture, its MoE layers, the expert its golden tokens never reach
  ['tiny-mixtral', [0, 1], undefined],
  ['tiny-qwen2-moe', [1, 2], '2.5'],
  ['tiny-qwen3-moe', [1, 3], '3.4'],
  ['tiny-deepseek-moe', [1, 2], undefined],
];

describe('Tape.watch', () => {
  it('sees an intermediate value\'s full gradient, summed over its consumers, before its producer consumes it', () => {
    const tape = new Tape();
    const x = tape.parameter(Tensor.fromTypedArray(Float32Array.of(1, -2, 3), [3]));
    const a = tape.add(x, x); // intermediate, used twice below
    const seen: number[][] = [];
    tape.watch(a, (value, grad) => seen.push([...(value.data as Float32Array)], [...(grad.data as Float32Array)]));
    const b = tape.add(a, a);
    tape.backward(b, Tensor.fromTypedArray(Float32Array.of(1, 2, 3), [3]));
    assert.deepEqual(seen, [[2, -4, 6], [2, 4, 6]]);
    assert.deepEqual([...(x.grad!.data as Float32Array)], [4, 8, 12]);
  });
});

describe('HEAPr score', () => {
  for (const [fixture, moeLayerIndices, unreached] of MOE_FIXTURES) it(`equals mean_t a_j² · d_jᵀ G_e d_j with the explicit G_e = mean_t g_t g_tᵀ (float64) on ${fixture}, batched per window`, async () => {
    const dir = fixturePath(fixture);
    const windows = await goldenWindows(dir);
    const model = await DecoderModel.open(dir);
    try {
      const layers = await moeLayers(model);
      assert.deepEqual(layers.map((l) => l.layer), moeLayerIndices);
      // The one-pass statistics, one window per batch (the scores must not depend on batching).
      const stats = await gatherExpertStatistics(model, layers, windows, { gradients: true, batchTokens: windows[0].length });

      // The reference: one tape over the whole model and both windows; g_t recorded at each down output.
      const tape = new RecordingTape();
      const downs = new Map<string, string>(layers.flatMap(({ layer, widths }) => widths.map((_, e) => [`${model.layout.block(layer)}${model.linearRoles(layer)[`expert.${e}.down`]}.weight`, `${layer}.${e}`] as const)));
      const variables = new Map<string, Variable>();
      const activations = new Map<string, Float64Array[]>();
      const downWeights = new Map<string, Tensor>();
      const lookup: ParameterLookup = (name) => variables.get(name);
      // Parameters are loaded first (lookup must be synchronous).
      for (const name of model.checkpoint.names()) {
        const value = await model.checkpoint.read(name, { dtype: 'f32' });
        const v = tape.parameter(value);
        variables.set(name, v);
        const key = downs.get(name);
        if (key) {
          tape.downOf.set(v, key);
          downWeights.set(key, value);
        }
      }
      assert.equal(downWeights.size, downs.size, 'every routed expert\'s down projection (never a shared expert\'s)');
      const batch = makeBatch(windows);
      let h = embedOnTape(tape, model, lookup, batch);
      for (let l = 0; l < model.config.layers; ++l) {
        h = await blockOnTape(tape, model, l, lookup, h, batch, undefined, (group, x) => {
          const m = /^expert\.(\d+)\.out$/.exec(group);
          if (!m) return;
          const a = x.value.data as Float32Array;
          const W = x.value.shape[1];
          const rows = Array.from({ length: x.value.shape[0] }, (_, t) => Float64Array.from(a.subarray(t * W, (t + 1) * W)));
          activations.set(`${l}.${m[1]}`, rows);
        });
      }
      tape.backward(lossOnTape(tape, model, lookup, h, batch));
      const predictions = batch.inputs.numel;

      let compared = 0;
      for (const s of stats) {
        const key = `${s.layer}.${s.expert}`;
        const a = activations.get(key);
        const g = tape.outputGradients.get(key);
        if (!a) {
          assert.equal(s.tokens, 0, `${key}: tokens without activations`);
          assert.ok(s.activationSquares.every((x) => x === 0) && s.gradientSquares!.every((x) => x === 0), `${key}: an unreached expert accumulates nothing`);
          continue;
        }
        assert.equal(s.tokens, a.length, `${key}: token count`);
        assert.equal(g!.length, a.length, `${key}: one output gradient per routed token`);
        const D = model.config.hiddenSize;
        const W = s.width;
        // G_e = mean_t g_t g_tᵀ with g_t = ∂L/∂y_e(t), L the summed NLL (predictions × the mean's gradient).
        const G = new Float64Array(D * D);
        for (const row of g!) for (let i = 0; i < D; ++i) for (let k = 0; k < D; ++k) G[i * D + k] += (predictions * row[i]) * (predictions * row[k]) / g!.length;
        const down = downWeights.get(key)!.data as Float32Array; // [D, W]: d_j is column j
        const expected = new Float64Array(W);
        for (let j = 0; j < W; ++j) {
          let quadratic = 0;
          for (let i = 0; i < D; ++i) {
            let row = 0;
            for (let k = 0; k < D; ++k) row += G[i * D + k] * down[k * W + j];
            quadratic += down[i * W + j] * row;
          }
          const meanSquare = a.reduce((sum, r) => sum + r[j] * r[j], 0) / a.length;
          expected[j] = meanSquare * quadratic;
        }
        const actual = heaprScores(s);
        // ∂L/∂a = W_downᵀ g in float32 (D = 64 terms) vs the float64 quadratic form: relative error ~1e-6
        // per element, squared and summed; 1e-4 of the expert's largest score leaves a wide margin.
        const scale = Math.max(...expected);
        assert.ok(scale > 0, `${key}: a reached expert has a positive score`);
        for (let j = 0; j < W; ++j) assert.ok(Math.abs(actual[j] - expected[j]) <= 1e-4 * scale, `${key} atom ${j}: ${actual[j]} vs explicit ${expected[j]}`);
        compared += 1;
      }
      assert.equal(compared, stats.length - (unreached ? 1 : 0), 'every reached expert compared');
      if (unreached) assert.equal(stats.find((s) => `${s.layer}.${s.expert}` === unreached)!.tokens, 0, `${unreached} is unreached`);
    } finally {
      await model.close();
    }
  });
});

/** Synthetic statistics: `layers` × `experts` experts of `width` atoms; score of atom j of expert e in layer l given. */
function synthetic(layers: number, experts: number, width: number, value: (l: number, e: number, j: number) => number, tokens = (_l: number, _e: number) => 100): ExpertStatistics[] {
  const out: ExpertStatistics[] = [];
  for (let l = 0; l < layers; ++l) {
    for (let e = 0; e < experts; ++e) {
      const n = tokens(l, e);
      // activation-atoms scores Σa²/tokens: make that the wanted value.
      out.push({ layer: l, expert: e, width, tokens: n, activationSquares: Float64Array.from({ length: width }, (_, j) => value(l, e, j) * n) });
    }
  }
  return out;
}

describe('expert-pruning allocation', () => {
  const base = { atomParameters: 3, topK: 2, allowExpertRemoval: false };

  it('ranks globally across layers or within each layer, reaching the budget in atoms', () => {
    // Layer 1's atoms all score below layer 0's: global takes them first, per-layer splits the budget.
    const stats = synthetic(2, 4, 4, (l, e, j) => (l === 0 ? 10 : 1) + e + j / 10);
    const global = planExpertPruning(activationAtoms, {}, stats, { ...base, sparsity: 0.25, ranking: 'global' });
    assert.equal(global.removedParameters, 0.25 * 2 * 4 * 4 * 3);
    assert.equal(global.layers[0].experts.reduce((s, e) => s + e.kept.length, 0), 16, 'layer 0 untouched');
    const perLayer = planExpertPruning(activationAtoms, {}, stats, { ...base, sparsity: 0.25, ranking: 'per-layer' });
    assert.deepEqual(perLayer.layers.map((l) => l.experts.reduce((s, e) => s + e.kept.length, 0)), [12, 12]);
    // Within a layer the lowest atoms go — expert 0's (10.0–10.3), but its best stays (no expert removal),
    // so expert 1's lowest goes instead.
    assert.deepEqual([...perLayer.layers[0].experts[0].kept], [3]);
    assert.ok(perLayer.layers[0].experts[0].keptLastNeuron);
    assert.deepEqual([...perLayer.layers[0].experts[1].kept], [1, 2, 3]);
  });

  it('keeps one neuron of an expert the ratio would empty, or removes it with allowExpertRemoval while a layer keeps top-k experts', () => {
    // Expert 0 of the single layer scores lowest everywhere; 60% of 4×4 atoms would empty it and more.
    const stats = synthetic(1, 4, 4, (_l, e, j) => e * 10 + j);
    const kept = planExpertPruning(activationAtoms, {}, stats, { ...base, sparsity: 0.3, ranking: 'global' });
    const e0 = kept.layers[0].experts[0];
    assert.equal(e0.kept.length, 1);
    assert.deepEqual([...e0.kept], [3], 'its best neuron stays');
    assert.ok(e0.keptLastNeuron && !e0.removed);
    const removed = planExpertPruning(activationAtoms, {}, stats, { ...base, sparsity: 0.3, ranking: 'global', allowExpertRemoval: true });
    assert.ok(removed.layers[0].experts[0].removed);
    assert.equal(removed.layers[0].experts[0].kept.length, 0);
    // Removal never goes below top-k = 2 experts per layer, even when asked for 90%.
    const most = planExpertPruning(activationAtoms, {}, stats, { ...base, sparsity: 0.9, ranking: 'global', allowExpertRemoval: true });
    assert.equal(most.layers[0].experts.filter((e) => !e.removed).length, 2);
  });

  it('drops whole experts least routed first, and puts unreached experts first for every method', () => {
    const tokens = (l: number, e: number) => [[50, 0, 20, 90], [70, 10, 30, 5]][l][e];
    const stats = synthetic(2, 4, 8, () => 1, tokens);
    const dropped = planExpertPruning(expertDrop, {}, stats, { ...base, sparsity: 0.25, ranking: 'per-layer' });
    assert.deepEqual(dropped.layers.map((l) => l.experts.filter((e) => e.removed).map((e) => e.expert)), [[1], [3]]);
    assert.equal(dropped.removedParameters, 2 * 8 * 3);
    // HEAPr on the same experts: the unreached one (layer 0, expert 1) goes first although its "score" is unknown.
    const withGradients = stats.map((s) => ({ ...s, gradientSquares: new Float64Array(s.width).fill(s.tokens) }));
    const plan = planExpertPruning(heapr, { weighting: 'mean' }, withGradients, { ...base, sparsity: 0.15, ranking: 'global' });
    const unreached = plan.layers[0].experts[1];
    assert.ok(unreached.keptLastNeuron && unreached.kept.length === 1, 'the unreached expert lost all atoms but one');
    assert.ok(UNREACHED_SCORE < 0);
  });
});

describe('expert-pruned model folders', () => {
  const calibration = async () => goldenWindows(mixtral());

  for (const [fixture, , unreached] of MOE_FIXTURES.filter(([f]) => f !== 'tiny-qwen3-moe')) it(`writes padded and shrunk ${fixture} folders that compute the same model, report kept widths, generate, and leave shared experts and dense layers as they were`, async () => {
    const source = fixturePath(fixture);
    const windows = await goldenWindows(source);
    const padded = join(work, `padded-${fixture}`);
    const shrunk = join(work, `shrunk-${fixture}`);
    const common = { model: source, method: 'heapr', sparsity: 0.4, calibrationWindows: windows, minExpertTokens: 1 };
    const report = await pruneExperts({ ...common, out: padded, format: 'padded' });
    await pruneExperts({ ...common, out: shrunk, format: 'shrunk' });
    assert.ok(Math.abs(report.sparsity - 0.4) < 0.01, `achieved ${report.sparsity}`);
    const input = await DecoderModel.open(source);
    const output = await DecoderModel.open(padded);
    try {
      const { moe, hiddenSize } = input.config;
      assert.equal(report.parameters.routed, moe!.layers.length * moe!.experts * moe!.expertSize * 3 * hiddenSize);
      // Everything but the routed experts is copied bit for bit (shared experts, dense layers, attention, router).
      for (const name of input.checkpoint.names().filter((n) => !/\.experts\.\d+\./.test(n))) {
        assert.deepEqual(await output.checkpoint.read(name), await input.checkpoint.read(name), name);
      }
    } finally {
      await input.close();
      await output.close();
    }
    if (unreached) {
      const [layer, expert] = unreached.split('.').map(Number);
      const entry = report.experts.find((e) => e.layer === layer && e.expert === expert)!;
      assert.equal(entry.kept, 1, 'the unreached expert goes first (down to its one kept neuron)');
      assert.deepEqual(report.starvedExperts.find((e) => e.layer === layer && e.expert === expert), { layer, expert, tokens: 0 });
    }
    assert.ok(report.flopsPerToken.run < report.flopsPerToken.before);
    const evalTokens = Int32Array.from(windows.flatMap((w) => [...w]));
    const nll = async (dir: string) => {
      const model = await DecoderModel.open(dir);
      try {
        return (await evaluatePerplexity(model, evalTokens, { seqLen: 17 })).meanNll;
      } finally {
        await model.close();
      }
    };
    const [dense, a, b] = [await nll(source), await nll(padded), await nll(shrunk)];
    // The same sums with and without the zero atoms: float32 reordering only.
    assert.ok(Math.abs(a - b) <= 1e-5 * Math.abs(a), `padded ${a} vs shrunk ${b}`);
    assert.notEqual(a, dense);
    // inspect reports each expert's kept width; shrunk tensors are stored at the layer's widest kept expert.
    const inspected = await inspectModel(shrunk);
    assert.deepEqual(
      inspected.experts!.map((l) => [l.layer, l.kept]),
      [...new Set(report.experts.map((e) => e.layer))].map((layer) => [layer, report.experts.filter((e) => e.layer === layer).map((e) => e.kept)]),
    );
    const config = JSON.parse(readFileSync(join(shrunk, 'config.json'), 'utf8'));
    assert.equal(config.sparq_experts.format, 'shrunk');
    const first = report.experts[0].layer;
    assert.equal(config.sparq_experts.layers[String(first)].stored, Math.max(...report.experts.filter((e) => e.layer === first).map((e) => e.kept)));
    // sparq generate runs both (each expert of the shrunk folder at its kept width): the same greedy tokens.
    const greedy = async (dir: string) => (await generate(dir, [1, 5, 9], { maxNewTokens: 6 })).tokens;
    assert.deepEqual(await greedy(shrunk), await greedy(padded));
  });

  it('masks removed experts: the router never selects them and the outputs stay finite', async () => {
    const windows = await calibration();
    const out = join(work, 'dropped');
    const report = await pruneExperts({ model: mixtral(), out, method: 'expert-drop', sparsity: 0.5, calibrationWindows: windows, format: 'shrunk', minExpertTokens: 1 });
    const removed = report.experts.filter((e) => e.removed);
    assert.equal(removed.length, 4, 'two of four experts per layer (top-2 stay)');
    const model = await DecoderModel.open(out);
    try {
      const embeddings = await model.loadEmbeddings();
      const ids = Int32Array.from({ length: 48 }, (_, i) => (i * 37 + 11) % 128);
      const h = model.embed(embeddings, ids);
      const positions = Tensor.fromTypedArray(Int32Array.from({ length: 48 }, (_, i) => i));
      for (let l = 0; l < model.config.layers; ++l) {
        const reached = new Set<string>();
        await (await model.loadBlock(l)).forward(h, positions, model.invFreq, { observe: (group) => void reached.add(group) });
        for (const e of removed.filter((r) => r.layer === l)) assert.ok(!reached.has(`expert.${e.expert}.in`), `layer ${l} expert ${e.expert} was routed to`);
      }
      const values = h.data as Float32Array;
      assert.ok(values.every(Number.isFinite), 'finite hidden states');
    } finally {
      await model.close();
    }
  });

  it('refuses dense models, a second expert pruning, and bad options, naming them', async () => {
    const windows = await calibration();
    await assert.rejects(pruneExperts({ model: fixturePath('tiny-llama'), out: join(work, 'x'), method: 'heapr', sparsity: 0.2, calibrationWindows: windows }), /has no routed experts; heapr prunes mixture-of-experts models/);
    await assert.rejects(pruneExperts({ model: mixtral(), out: join(work, 'y'), method: 'heapr', sparsity: 1, calibrationWindows: windows }), /sparsity: expected a fraction below 1/);
    await assert.rejects(pruneExperts({ model: mixtral(), out: join(work, 'y'), method: 'nope', sparsity: 0.2, calibrationWindows: windows }), /unknown expert-pruning method 'nope'/);
    await assert.rejects(pruneExperts({ model: join(work, 'padded-tiny-mixtral'), out: join(work, 'z'), method: 'heapr', sparsity: 0.2, calibrationWindows: windows }), /already expert-pruned/);
  });
});

describe('sparq prune --method heapr|expert-drop|activation-atoms (CLI)', function () {
  this.timeout(120_000);
  const sparq = (args: string[]) => execFileSync(process.execPath, [CLI, ...args], { stdio: 'pipe', encoding: 'utf8' });
  let model: string;
  let calib: string;

  before(async () => {
    // A Qwen3-MoE with a tokenizer, trained for two steps (the CLI reads --calib through the tokenizer).
    const text = readFileSync(join(sharedDir(), 'data', 'sotu_calib.txt'), 'utf8').slice(0, 60_000);
    const tokenizerDir = join(work, 'cli-tokenizer');
    mkdirSync(tokenizerDir);
    writeFileSync(join(tokenizerDir, 'tokenizer.json'), JSON.stringify(trainByteLevelBpe(text, 320)));
    writeFileSync(join(tokenizerDir, 'tokenizer_config.json'), JSON.stringify(byteLevelBpeTokenizerConfig()));
    const tokens = (await loadTokenizer(tokenizerDir)).encode(text);
    model = join(work, 'cli-moe');
    await train({ init: moeDemoConfig(MOE_DEMO_PROFILES.quick.model), initSeed: 1, tokenizer: tokenizerDir, tokens, seqLen: 64, batch: 2, steps: 2, optimizer: 'adamw', lr: 1e-3, out: model });
    calib = join(work, 'cli-calib.txt');
    writeFileSync(calib, text);
  });

  it('prunes with each method, prints one JSON line, and inspect --json reports the kept widths sparq generate runs', () => {
    const out = join(work, 'cli-heapr');
    const line = JSON.parse(sparq(['prune', '--model', model, '--method', 'heapr', '--sparsity', '25%', '--calib', calib, '--nsamples', '4', '--seq-len', '64', '--expert-format', 'shrunk', '--out', out, '--json']).trim());
    assertSchema('prune (expert methods)', line);
    assert.equal(line.method, 'heapr');
    assert.equal(line.ranking, 'global');
    assert.equal(line.format, 'shrunk');
    assert.ok(Math.abs(line.sparsity - 0.25) < 0.01, `sparsity ${line.sparsity}`);
    assert.ok(line.routed_parameters_stored < line.routed_parameters && line.expert_flops_per_token.run < line.expert_flops_per_token.before);
    const inspected = JSON.parse(sparq(['inspect', out, '--json']).trim());
    const kept = inspected.experts.flatMap((l: { kept: number[] }) => l.kept).reduce((a: number, b: number) => a + b, 0);
    const total = inspected.experts.length * 8 * 64;
    assert.ok(Math.abs(kept / total - 0.75) < 0.01, `kept ${kept} of ${total} atoms`);
    assert.match(sparq(['generate', '--model', out, '--prompt', 'The Union', '--max-new-tokens', '4']), /\S/);
    const perLayer = JSON.parse(sparq(['prune', '--model', model, '--method', 'heapr', '--per-layer', '--sparsity', '0.25', '--calib', calib, '--nsamples', '4', '--seq-len', '64', '--out', join(work, 'cli-heapr-l'), '--json']).trim());
    assertSchema('prune (expert methods)', perLayer);
    assert.equal(perLayer.ranking, 'per-layer');
    const drop = JSON.parse(sparq(['prune', '--model', model, '--method', 'expert-drop', '--sparsity', '0.25', '--calib', calib, '--nsamples', '4', '--seq-len', '64', '--out', join(work, 'cli-drop'), '--json']).trim());
    assertSchema('prune (expert methods)', drop);
    assert.equal(drop.removed_experts.length, 2 * 2, 'two of eight experts in each of the two layers');
    const atoms = JSON.parse(sparq(['prune', '--model', model, '--method', 'activation-atoms', '--sparsity', '0.25', '--calib', calib, '--nsamples', '4', '--seq-len', '64', '--out', join(work, 'cli-atoms'), '--json']).trim());
    assertSchema('prune (expert methods)', atoms);
    assert.equal(atoms.ranking, 'per-layer');
  });

  it('refuses expert flags with a layer-wise method, an out-of-range sparsity, and a recipe naming heapr', () => {
    const fails = (args: string[], pattern: RegExp) =>
      assert.throws(
        () => sparq(args),
        (error: { status: number; stderr: string }) => error.status === 1 && pattern.test(error.stderr),
      );
    fails(['prune', '--model', model, '--method', 'wanda', '--sparsity', '0.5', '--per-layer', '--calib', calib, '--out', join(work, 'no')], /--per-layer applies to the expert-pruning methods/);
    fails(['prune', '--model', model, '--method', 'heapr', '--sparsity', '1.5', '--calib', calib, '--out', join(work, 'no')], /--sparsity must be a fraction in \[0, 1\)/);
    fails(['prune', '--model', model, '--method', 'heapr', '--sparsity', '0.2', '--out', join(work, 'no')], /heapr needs calibration data: pass --calib FILE/);
    const recipe = join(work, 'recipe.json');
    writeFileSync(recipe, JSON.stringify({ method: 'heapr', sparsity: 0.2 }));
    fails(['prune', '--model', model, '--recipe', recipe, '--calib', calib, '--out', join(work, 'no')], /heapr prunes routed experts as one model-level decision/);
  });
});

describe('sparq demo --moe (quick profile)', function () {
  this.timeout(300_000);
  it('trains and caches a small Qwen3-MoE with the load-balancing loss, prunes it with every expert method at every fraction, and writes the report, chart and table', async () => {
    const profile = MOE_DEMO_PROFILES.quick;
    const out = join(work, 'moe-demo');
    const report = await runMoeDemo({ moeProfile: profile, out, cacheDir: join(work, 'moe-cache') });
    assert.equal(report.model.cached, false);
    const training = JSON.parse(readFileSync(join(report.model.dir, 'training.json'), 'utf8'));
    assert.ok(training.routerAuxLossCoef === profile.model.routerAuxLossCoef && training.routerAuxLosses.length === profile.model.steps, 'trained with the load-balancing loss');
    assert.equal(report.results.length, 1 + profile.runs.length * profile.sparsities.length);
    for (const r of report.results) assert.ok(Number.isFinite(r.perplexity) && r.perplexity > 1, `${r.method} ${r.sparsity}: ${r.perplexity}`);
    for (const r of report.results.filter((x) => x.method.startsWith('heapr') || x.method === 'activation-atoms')) assert.ok(Math.abs(r.achieved - r.sparsity) < 0.01, `${r.method} ${r.sparsity}: achieved ${r.achieved}`);
    assert.deepEqual(readdirSync(out).sort(), ['README.md', 'perplexity.svg', 'report.json']);
    const svg = readFileSync(join(out, 'perplexity.svg'), 'utf8');
    for (const run of profile.runs) assert.ok(svg.includes(`>${run.label}<`), `legend names ${run.label}`);
    assert.match(readFileSync(join(out, 'README.md'), 'utf8'), /\| method \| 25% \| 50% \|/);
  });
});
