// Mixture-of-experts families beyond Mixtral (Qwen2-MoE, Qwen3-MoE, DeepSeek-MoE v1): which layers route,
// refusing what sparq does not implement (DeepSeek-V2/V3), the router load-balancing loss (value against
// a float64 computation, gradient against finite differences), and every command on the tiny fixtures.
// Forward and gradient goldens are in golden-forward.test.ts and gradients.test.ts.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import {
  checkParameters,
  Checkpoint,
  DecoderModel,
  evaluatePerplexity,
  exportPacked,
  generate,
  InvalidArgumentError,
  InvalidFileError,
  inspectModel,
  lossAndGradients,
  makeBatch,
  parseConfig,
  parseRecipe,
  prune,
  quantize,
  SafetensorsFile,
  streamGradients,
  Tensor,
  train,
  UnsupportedFormatError,
  type Batch,
} from '../lib/index.js';
import { assertClose, fixturePath } from './helpers.js';

const run = promisify(execFile);
const cli = join(dirname(fileURLToPath(import.meta.url)), '..', 'lib', 'cli', 'main.js');
const work = mkdtempSync(join(tmpdir(), 'sparq-moe-'));
let counter = 0;
const outDir = (label: string) => join(work, `${label}-${++counter}`);
const configOf = (name: string) => JSON.parse(readFileSync(join(fixturePath(name), 'config.json'), 'utf8')) as Record<string, unknown>;

function randomTokens(count: number, vocab: number, seed: number): Int32Array {
  let state = seed;
  return Int32Array.from({ length: count }, () => {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    return state % vocab;
  });
}

async function goldenWindows(name: string): Promise<Int32Array[]> {
  const file = await SafetensorsFile.open(join(fixturePath(name), 'golden.safetensors'));
  const ids = (await file.read('input_ids')).data as Int32Array;
  const [batch, length] = file.info('input_ids').shape;
  await file.close();
  return Array.from({ length: batch }, (_, b) => ids.slice(b * length, (b + 1) * length));
}

async function parametersOf(model: DecoderModel): Promise<Map<string, Tensor>> {
  const parameters = new Map<string, Tensor>();
  for (const name of model.checkpoint.names()) parameters.set(name, await model.checkpoint.read(name, { dtype: 'f32' }));
  return parameters;
}

describe('MoE configs', () => {
  it('route the layers the config names, with each family’s top-k and shared expert', () => {
    const qwen2 = parseConfig(configOf('tiny-qwen2-moe'));
    assert.deepEqual(qwen2.moe, { experts: 8, topK: 2, normalizeTopK: false, normalizeEpsilon: 0, expertSize: 32, shared: { size: 64, gated: true }, layers: [1, 2], routerAuxLossCoef: 0.001 });
    assert.deepEqual(qwen2.bias, { qkv: true, output: false, mlp: false });
    const qwen3 = parseConfig(configOf('tiny-qwen3-moe'));
    assert.deepEqual([qwen3.moe!.layers, qwen3.moe!.normalizeTopK, qwen3.moe!.shared, qwen3.qkNorm], [[1, 3], true, undefined, true]);
    const deepseek = parseConfig(configOf('tiny-deepseek-moe'));
    assert.deepEqual([deepseek.moe!.layers, deepseek.moe!.topK, deepseek.moe!.shared, deepseek.moe!.normalizeEpsilon], [[1, 2], 3, { size: 64, gated: false }, 1e-20]);
    // moe_layer_freq and first_k_dense_replace together; mlp_only_layers with decoder_sparse_step.
    assert.deepEqual(parseConfig({ ...configOf('tiny-deepseek-moe'), num_hidden_layers: 7, moe_layer_freq: 2, first_k_dense_replace: 1 }).moe!.layers, [2, 4, 6]);
    assert.deepEqual(parseConfig({ ...configOf('tiny-qwen2-moe'), num_hidden_layers: 6, decoder_sparse_step: 2, mlp_only_layers: [3] }).moe!.layers, [1, 5]);
    assert.throws(() => parseConfig({ ...configOf('tiny-qwen2-moe'), mlp_only_layers: [9] }), (e: unknown) => e instanceof InvalidFileError && /mlp_only_layers/.test((e as Error).message));
  });

  it('refuses DeepSeek-V2/V3 fields (latent attention, group-limited routing, sigmoid scores) by name', () => {
    const base = configOf('tiny-deepseek-moe');
    const unsupported: Record<string, unknown>[] = [
      { kv_lora_rank: 512 },
      { q_lora_rank: 1536 },
      { qk_rope_head_dim: 64 },
      { topk_method: 'group_limited_greedy' },
      { topk_method: 'noaux_tc' },
      { n_group: 8 },
      { topk_group: 3 },
      { scoring_func: 'sigmoid' },
      { routed_scaling_factor: 2.5 },
    ];
    for (const extra of unsupported) {
      const field = Object.keys(extra)[0];
      assert.throws(() => parseConfig({ ...base, ...extra }), (e: unknown) => e instanceof UnsupportedFormatError && (e as Error).message.includes(`${field} ${JSON.stringify(extra[field])}`), field);
    }
    // The v1 defaults of those fields are accepted.
    parseConfig({ ...base, topk_method: 'greedy', n_group: 1, topk_group: 1, scoring_func: 'softmax', routed_scaling_factor: 1, q_lora_rank: null });
    // A DeepSeek-V3 config is refused by the field that makes it different, a bare V2 one by its type.
    assert.throws(() => parseConfig({ ...base, model_type: 'deepseek_v3', kv_lora_rank: 512, q_lora_rank: 1536 }), (e: unknown) => e instanceof UnsupportedFormatError && /kv_lora_rank 512 \(multi-head latent attention/.test((e as Error).message));
    assert.throws(() => parseConfig({ ...base, model_type: 'deepseek_v2' }), (e: unknown) => e instanceof UnsupportedFormatError && /model_type deepseek_v2 is not supported .*DeepSeek-MoE v1 is model_type deepseek/.test((e as Error).message));
  });

  it('names moe_intermediate_size when an expert’s width disagrees with the config', async () => {
    const checkpoint = await Checkpoint.open(fixturePath('tiny-qwen3-moe'));
    const stored = await Promise.all(checkpoint.names().map((n) => checkpoint.info(n)));
    await checkpoint.close();
    const config = parseConfig({ ...configOf('tiny-qwen3-moe'), moe_intermediate_size: 40 });
    assert.throws(() => checkParameters(config, stored, 'tiny-qwen3-moe', 'config.json'), /experts\.0\.gate_proj\.weight' has shape \[48, 64\], but config.json implies \[40, 64\] \(moe_intermediate_size = 40, hidden_size = 64\)/);
  });
});

/** Each MoE layer's router input y [rows, hidden] for the batch, from the eager forward pass. */
async function routerInputs(model: DecoderModel, batch: Batch): Promise<Map<number, Float32Array>> {
  const T = batch.sequenceLength;
  const h = model.embed(await model.loadEmbeddings(), batch.inputs.data as Int32Array, T);
  const inputs = new Map<number, Float32Array>();
  for (let layer = 0; layer < model.config.layers; ++layer) {
    const block = await model.loadBlock(layer);
    await block.forward(h, batch.positions, model.invFreq, {
      sequenceLength: T,
      observe: (group, x) => {
        if (group === 'router') inputs.set(layer, Float32Array.from(x.data as Float32Array));
      },
    });
  }
  return inputs;
}

/**
 * The float64 reference of HF's load_balancing_loss_func: every MoE layer's logits y·Wᵀ and softmax in
 * float64, its top-k, then E · Σ_e (count_e / N) · (Σ p_e / N) over the N = layers·rows decisions.
 */
function referenceAux(routers: { y: Float32Array; w: Float64Array }[], E: number, K: number, D: number): { aux: number; chosen: number[][] } {
  const counts = new Float64Array(E);
  const sums = new Float64Array(E);
  let rows = 0;
  const chosen: number[][] = [];
  for (const { y, w } of routers) {
    const T = y.length / D;
    for (let t = 0; t < T; ++t) {
      const z = Array.from({ length: E }, (_, e) => {
        let s = 0;
        for (let j = 0; j < D; ++j) s += y[t * D + j] * w[e * D + j];
        return s;
      });
      const max = Math.max(...z);
      const exp = z.map((v) => Math.exp(v - max));
      const total = exp.reduce((a, b) => a + b, 0);
      const p = exp.map((v) => v / total);
      const top = p.map((v, e) => [v, e]).sort((a, b) => b[0] - a[0]).slice(0, K).map(([, e]) => e).sort((a, b) => a - b);
      chosen.push(top);
      for (const e of top) counts[e] += 1;
      p.forEach((v, e) => (sums[e] += v));
      rows += 1;
    }
  }
  let aux = 0;
  for (let e = 0; e < E; ++e) aux += (counts[e] / rows) * (sums[e] / rows);
  return { aux: E * aux, chosen };
}

describe('the router load-balancing loss', () => {
  it('equals a float64 computation of HF’s load_balancing_loss_func, and its gradient matches finite differences', async () => {
    const model = await DecoderModel.open(fixturePath('tiny-qwen3-moe'));
    try {
      const { experts: E, topK: K, layers: moeLayers } = model.config.moe!;
      const D = model.config.hiddenSize;
      const batch = makeBatch(await goldenWindows('tiny-qwen3-moe'));
      const parameters = await parametersOf(model);
      const routerName = (layer: number) => `model.layers.${layer}.mlp.gate.weight`;
      const plain = await lossAndGradients(model, parameters, batch);
      const coefficient = 0.5;
      const balanced = await lossAndGradients(model, parameters, batch, { routerAuxLossCoef: coefficient });
      assert.equal(balanced.loss, plain.loss, 'the language-model loss is reported alone');
      assert.equal(balanced.routerAuxLoss, plain.routerAuxLoss, 'the value does not depend on the coefficient');

      // Value: float64 from the same router inputs. Tolerance: the tape's and the eager pass's router
      // inputs differ by f32 rounding (~1e-6 relative), which moves aux by less than 1e-5 relative.
      const ys = await routerInputs(model, batch);
      const weights = new Map(moeLayers.map((l) => [l, Float64Array.from(parameters.get(routerName(l))!.data as Float32Array)]));
      const reference = referenceAux(moeLayers.map((l) => ({ y: ys.get(l)!, w: weights.get(l)! })), E, K, D);
      assert.ok(Math.abs(plain.routerAuxLoss! - reference.aux) <= 1e-5 * reference.aux, `aux ${plain.routerAuxLoss}, float64 ${reference.aux}`);
      assert.ok(reference.aux > K && reference.aux < E, `an unbalanced random router: aux ${reference.aux} lies between k (balanced) and E`);

      // Gradient of the last MoE layer's router weight: its input does not depend on it, so aux(W) is the
      // float64 function above with the other layers fixed; central differences (h = 1e-5, far from any
      // top-k change, which the check asserts) are exact to ~1e-9. The implementation's share is the
      // difference of the two gradients (the language-model part cancels), divided by the coefficient.
      // Tolerance 1e-3 relative + 2e-6·max: f32 rounding of both backward passes.
      const last = moeLayers[moeLayers.length - 1];
      const w = weights.get(last)!;
      const numeric = new Float64Array(w.length);
      const h = 1e-5;
      const aux = () => referenceAux(moeLayers.map((l) => ({ y: ys.get(l)!, w: l === last ? w : weights.get(l)! })), E, K, D);
      for (let i = 0; i < w.length; ++i) {
        const saved = w[i];
        w[i] = saved + h;
        const up = aux();
        w[i] = saved - h;
        const down = aux();
        w[i] = saved;
        assert.deepEqual(up.chosen, reference.chosen, 'a perturbation changed the top-k');
        assert.deepEqual(down.chosen, reference.chosen, 'a perturbation changed the top-k');
        numeric[i] = (up.aux - down.aux) / (2 * h);
      }
      const analytic = Float32Array.from(balanced.gradients.get(routerName(last))!.data as Float32Array, (g, i) => (g - (plain.gradients.get(routerName(last))!.data as Float32Array)[i]) / coefficient);
      const scale = Math.max(...Array.from(numeric, Math.abs));
      assertClose(analytic, Float32Array.from(numeric), { atol: 2e-6 * scale + 1e-8, rtol: 1e-3 }, 'd aux / d W_router (last MoE layer)');

      // An earlier router moves aux through its own logits and through the hidden states the later
      // router reads: the full model in f32, central differences with h = 2e-3 on the entry with the
      // largest gradient. Tolerance 2% + 5e-4: f32 forward noise (~2e-7 on aux ≈ 2.5) over 2h.
      const first = routerName(moeLayers[0]);
      const difference = Float32Array.from(balanced.gradients.get(first)!.data as Float32Array, (g, i) => (g - (plain.gradients.get(first)!.data as Float32Array)[i]) / coefficient);
      let index = 0;
      difference.forEach((v, i) => (Math.abs(v) > Math.abs(difference[index]) ? (index = i) : 0));
      const entry = parameters.get(first)!.data as Float32Array;
      const saved = entry[index];
      const step = 2e-3;
      entry[index] = saved + step;
      const up = (await lossAndGradients(model, parameters, batch)).routerAuxLoss!;
      entry[index] = saved - step;
      const down = (await lossAndGradients(model, parameters, batch)).routerAuxLoss!;
      entry[index] = saved;
      const estimate = (up - down) / (2 * step);
      assert.ok(Math.abs(estimate - difference[index]) <= 0.02 * Math.abs(difference[index]) + 5e-4, `d aux / d ${first}[${index}]: tape ${difference[index]}, finite differences ${estimate}`);
    } finally {
      await model.close();
    }
  });

  it('streams block by block to the same gradients and value as in memory', async () => {
    const model = await DecoderModel.open(fixturePath('tiny-qwen2-moe'));
    try {
      const batch = makeBatch(await goldenWindows('tiny-qwen2-moe'));
      const memory = await lossAndGradients(model, await parametersOf(model), batch, { routerAuxLossCoef: 0.1 });
      const streamed = new Map<string, Tensor>();
      let value: number | undefined;
      const loss = await streamGradients(model, batch, {
        routerAuxLossCoef: 0.1,
        onRouterAuxLoss: (v) => (value = v),
        onGradients: (_, grads) => {
          for (const [name, g] of grads) streamed.set(name, g.clone());
        },
      });
      assert.ok(Math.abs(loss - memory.loss) <= 1e-6 * memory.loss);
      assert.ok(Math.abs(value! - memory.routerAuxLoss!) <= 1e-6 * memory.routerAuxLoss!);
      for (const [name, g] of memory.gradients) {
        const expected = g.data as Float32Array;
        const scale = Math.max(...Array.from(expected, Math.abs));
        assertClose(streamed.get(name)!.data as Float32Array, expected, { atol: 1e-6 * scale, rtol: 1e-6 }, name);
      }
      await assert.rejects(lossAndGradients(model, await parametersOf(model), batch, { routerAuxLossCoef: -1 }), InvalidArgumentError);
    } finally {
      await model.close();
    }
  });

  it('trains with the loss (API and CLI), which balances the routers better than training without it', async () => {
    const tokens = randomTokens(4096, 128, 3);
    const common = { model: fixturePath('tiny-qwen2-moe'), tokens, seqLen: 33, batch: 4, steps: 12, optimizer: 'adamw' as const, lr: 3e-3 };
    const without = await train({ ...common, routerAuxLossCoef: 0, out: outDir('train-plain') });
    const withLoss = await train({ ...common, routerAuxLossCoef: 1, out: outDir('train-balanced') });
    assert.equal(withLoss.routerAuxLosses!.length, 12);
    assert.ok(withLoss.routerAuxLosses!.at(-1)! < without.routerAuxLosses!.at(-1)!, `aux after training: with the loss ${withLoss.routerAuxLosses!.at(-1)}, without ${without.routerAuxLosses!.at(-1)}`);
    const saved = JSON.parse(readFileSync(join(withLoss.out, 'config.json'), 'utf8'));
    assert.equal(saved.sparq.training.router_aux_loss_coef, 1);
    await assert.rejects(train({ ...common, model: fixturePath('tiny-llama'), routerAuxLossCoef: 0.1, out: outDir('dense') }), /routerAuxLossCoef applies to mixture-of-experts models; llama has no router/);

    // A new MoE model from a config (the way a demo trains one): 4 layers, 8 experts top-2, every other layer MoE.
    const init = { ...configOf('tiny-qwen3-moe'), num_hidden_layers: 4, decoder_sparse_step: 2, output_router_logits: true, router_aux_loss_coef: 0.02 };
    const fresh = await train({ ...common, model: undefined, init, steps: 3, out: outDir('train-init') });
    assert.equal(fresh.routerAuxLossCoef, 0.02, 'output_router_logits turns the loss on with the config coefficient');
    const trained = await DecoderModel.open(fresh.out);
    assert.deepEqual(trained.config.moe!.layers, [1, 3]);
    assert.ok(Number.isFinite((await evaluatePerplexity(trained, randomTokens(128, 128, 4), { seqLen: 32 })).perplexity));
    await trained.close();

    const tokensFile = join(work, 'tokens.json');
    writeFileSync(tokensFile, JSON.stringify(Array.from(tokens.subarray(0, 512))));
    const out = outDir('train-cli');
    const { stdout } = await run(process.execPath, [cli, 'train', '--model', fixturePath('tiny-deepseek-moe'), '--tokens', tokensFile, '--seq-len', '33', '--batch', '2', '--steps', '2', '--optimizer', 'sgd', '--lr', '0.01', '--router-aux-loss', '--out', out, '--json']);
    const report = JSON.parse(stdout);
    assert.equal(report.router_aux_loss_coef, 0.001, "DeepSeek's aux_loss_alpha");
    assert.ok(report.final_router_aux_loss > 0);
  });
});

describe('commands on the MoE fixtures', () => {
  it('prune: experts and shared experts are pruned, routers and the shared-expert gate stay dense; the result evaluates and generates', async () => {
    const out = outDir('prune-qwen2-moe');
    const report = await prune({ model: fixturePath('tiny-qwen2-moe'), out, recipe: parseRecipe({ method: 'sparsegpt', sparsity: 0.5, fallback: 'magnitude' }), calibrationTokens: randomTokens(2048, 128, 5), nsamples: 8, seqLen: 32 });
    const names = report.linears.map((l) => l.name);
    assert.ok(names.includes('model.layers.1.mlp.shared_expert.down_proj'));
    assert.ok(names.includes('model.layers.2.mlp.experts.7.up_proj'));
    assert.ok(names.includes('model.layers.0.mlp.gate_proj'), 'the dense layer');
    assert.ok(!names.some((n) => /mlp\.gate$|shared_expert_gate$/.test(n)), 'routers and the shared-expert gate stay dense');
    assert.equal(report.totals.sparsity, 0.5);
    const pruned = await DecoderModel.open(out);
    const result = await evaluatePerplexity(pruned, randomTokens(256, 128, 9), { seqLen: 32 });
    await pruned.close();
    assert.ok(Number.isFinite(result.perplexity));
    const generated = await generate(out, [1, 2, 3], { maxNewTokens: 4 });
    assert.equal(generated.tokens.length, 4);

    // A target that names the router compresses it; `*.mlp.*` alone does not.
    const named = await prune({ model: fixturePath('tiny-qwen2-moe'), out: outDir('prune-router'), recipe: parseRecipe({ method: 'magnitude', sparsity: 0.5, targets: ['*.mlp.*'] }) });
    assert.ok(!named.linears.some((l) => l.name.endsWith('mlp.gate')));
    const router = await prune({ model: fixturePath('tiny-qwen2-moe'), out: outDir('prune-router'), recipe: parseRecipe({ method: 'magnitude', sparsity: 0.5, targets: ['*.mlp.gate'] }) });
    assert.deepEqual(router.linears.map((l) => l.name), ['model.layers.1.mlp.gate', 'model.layers.2.mlp.gate']);
  });

  it('quantize to compressed-tensors, inspect, export and generate (DeepSeek-MoE)', async () => {
    const model = fixturePath('tiny-deepseek-moe');
    const out = outDir('gptq-deepseek');
    const report = await quantize({ model, out, format: 'compressed-tensors', recipe: parseRecipe({ method: 'gptq', quantize: { bits: 4, groupSize: 32 }, fallback: 'rtn' }), calibrationTokens: randomTokens(2048, 128, 6), nsamples: 8, seqLen: 32 });
    assert.ok(report.linears.some((l) => l.name === 'model.layers.2.mlp.shared_experts.up_proj' && l.bits === 4));
    const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
    // vLLM's module names are Hugging Face's; routers are built unquantized, so they are listed as ignored.
    assert.ok(config.quantization_config.ignore.includes('model.layers.1.mlp.gate'));
    const inspected = await inspectModel(out);
    const expert = inspected.linears.find((l) => l.name === 'model.layers.1.mlp.experts.3.down_proj.weight')!;
    assert.deepEqual([expert.format, expert.bits], ['pack-quantized', 4]);
    assert.equal(inspected.linears.find((l) => l.name === 'model.layers.1.mlp.gate.weight')!.format, 'dense');
    const packed = outDir('int4-deepseek');
    await exportPacked({ model: out, out: packed, format: 'int4' });
    const fromQuantized = await generate(out, [5, 6, 7], { maxNewTokens: 6 });
    const fromPacked = await generate(packed, [5, 6, 7], { maxNewTokens: 6 });
    assert.deepEqual(fromPacked.tokens, fromQuantized.tokens, 'the packed int4 folder runs as the quantized one');

    // vLLM loads routers unquantized and runs a layer's experts as one fused layer with one scheme.
    await assert.rejects(
      quantize({ model, out: outDir('bad'), format: 'compressed-tensors', recipe: parseRecipe({ method: 'rtn', quantize: { bits: 4, groupSize: 32 }, targets: ['*.mlp.gate'] }) }),
      /model\.layers\.1\.mlp\.gate: vLLM loads MoE routers and shared-expert gates unquantized/,
    );
    await assert.rejects(
      quantize({ model, out: outDir('bad'), format: 'compressed-tensors', recipe: parseRecipe({ method: 'rtn', quantize: { bits: 4, groupSize: 32 }, ignore: ['*.experts.0.*'] }) }),
      /vLLM runs these as one layer/,
    );
  });

  it('eval and inspect from the CLI (Qwen3-MoE)', async () => {
    const tokensFile = join(work, 'eval-tokens.json');
    writeFileSync(tokensFile, JSON.stringify(Array.from(randomTokens(300, 128, 8))));
    const evalOut = JSON.parse((await run(process.execPath, [cli, 'eval', '--model', fixturePath('tiny-qwen3-moe'), '--tokens', tokensFile, '--seq-len', '32', '--json'])).stdout);
    assert.ok(evalOut.perplexity > 1 && Number.isFinite(evalOut.perplexity));
    const inspected = JSON.parse((await run(process.execPath, [cli, 'inspect', fixturePath('tiny-qwen3-moe'), '--json'])).stdout);
    assert.equal(inspected.config.architecture, 'qwen3_moe');
    assert.deepEqual(inspected.config.moe.layers, [1, 3]);
  });
});
