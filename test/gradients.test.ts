// Gradients of the language-model loss through the whole decoder must reproduce the independent PyTorch
// goldens (`grad.<param>` in each tiny fixture), in memory and streamed block by block.
// Tolerance: both sides compute in f32 from the same stored weights, so they differ by f32 rounding
// accumulated along different summation orders, which scales with the tensor's largest gradient, not
// with each element: each gradient tensor must be within 8e-6·max|golden| + 1e-7 elementwise, about 10×
// the largest deviation measured over the six fixtures (7.5e-7·max|golden|, tiny-llama3). No relative
// term: elements 1000× below the tensor's largest differ by up to 5e-4 of themselves, which says nothing.
// The 1e-7 floor is for gradients that are zero in exact arithmetic, where both sides hold f32 noise:
// a key bias adds the same amount to every score of a query, which the softmax cancels (OPT's
// k_proj.bias gradients are ~1e-9 here; the largest difference there is 8e-9).
// The loss within 1e-6 relative (largest seen: 9e-8, tiny-qwen3). Streaming and in-memory run the same
// kernels on the same values, so they agree to 1e-6 relative (loss: exactly; gradients: 7e-8·max seen,
// where a block's recomputed forward sums in another order).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DecoderModel, SafetensorsFile, Tensor } from '../lib/index.js';
import { lossAndGradients, makeBatch, streamGradients, type ModelPart } from '../lib/autograd/decoder.js';
import { assertClose, sharedDir } from './helpers.js';

const fixtures = join(sharedDir(), 'fixtures');
const TINY = ['tiny-llama', 'tiny-llama3', 'tiny-qwen2', 'tiny-qwen3', 'tiny-opt', 'tiny-mixtral', 'tiny-qwen2-moe', 'tiny-qwen3-moe', 'tiny-deepseek-moe'];

async function loadGolden(dir: string) {
  const file = await SafetensorsFile.open(join(dir, 'golden.safetensors'));
  const ids = (await file.read('input_ids')).data as Int32Array;
  const [batch, length] = file.info('input_ids').shape;
  const grads = new Map<string, Float32Array>();
  for (const name of file.names()) if (name.startsWith('grad.')) grads.set(name.slice(5), (await file.read(name, { dtype: 'f32' })).data as Float32Array);
  await file.close();
  const windows = Array.from({ length: batch }, (_, b) => ids.slice(b * length, (b + 1) * length));
  return { windows, grads, loss: JSON.parse(readFileSync(join(dir, 'golden.json'), 'utf8')).loss as number };
}

async function loadParameters(model: DecoderModel): Promise<Map<string, Tensor>> {
  const parameters = new Map<string, Tensor>();
  for (const name of model.checkpoint.names()) parameters.set(name, await model.checkpoint.read(name, { dtype: 'f32' }));
  return parameters;
}

function maxAbs(values: Float32Array): number {
  let m = 0;
  for (const v of values) m = Math.max(m, Math.abs(v));
  return m;
}

describe('gradients of the loss match the PyTorch goldens', () => {
  for (const name of TINY) {
    it(`${name}: loss and every parameter's gradient, in memory and streamed`, async () => {
      const dir = join(fixtures, name);
      const golden = await loadGolden(dir);
      const model = await DecoderModel.open(dir);
      try {
        const batch = makeBatch(golden.windows);
        const { loss, gradients } = await lossAndGradients(model, await loadParameters(model), batch);
        assert.ok(Math.abs(loss - golden.loss) <= 1e-6 * golden.loss, `loss ${loss}, golden ${golden.loss}`);
        assert.deepEqual([...gradients.keys()].sort(), [...golden.grads.keys()].sort(), 'one gradient per parameter');
        for (const [param, expected] of golden.grads) {
          const scale = maxAbs(expected);
          assertClose(gradients.get(param)!.data as Float32Array, expected, { atol: 8e-6 * scale + 1e-7, rtol: 0 }, `${name} grad.${param}`);
        }

        const parts: ModelPart[] = [];
        const streamed = new Map<string, Tensor>();
        const streamedLoss = await streamGradients(model, batch, {
          onGradients: (part, grads) => {
            parts.push(part);
            for (const [param, g] of grads) {
              assert.ok(!streamed.has(param), `${param} handed over twice`);
              streamed.set(param, g.clone()); // lent only for the callback
            }
          },
        });
        assert.ok(Math.abs(streamedLoss - loss) <= 1e-6 * loss, `streamed loss ${streamedLoss}, in memory ${loss}`);
        const blocks = Array.from({ length: model.config.layers }, (_, i) => ({ kind: 'block', index: model.config.layers - 1 - i }));
        assert.deepEqual(parts, [{ kind: 'head' }, ...blocks, { kind: 'embeddings' }]);
        assert.deepEqual([...streamed.keys()].sort(), [...gradients.keys()].sort());
        for (const [param, g] of gradients) {
          const scale = maxAbs(g.data as Float32Array);
          assertClose(streamed.get(param)!.data as Float32Array, g.data as Float32Array, { atol: 1e-6 * scale, rtol: 1e-6 }, `${name} streamed grad.${param}`);
        }
      } finally {
        await model.close();
      }
    });
  }
});

describe('an expert no token reaches', () => {
  // The fixtures' README: expert 5 of tiny-qwen2-moe's layer 2 and expert 4 of tiny-qwen3-moe's layer 3 get
  // no golden token. Their gradients must be exactly zero (not f32 noise), and every other expert of those
  // layers must have a gradient (so the check would fail on a model that routed differently).
  for (const [name, layer, idle] of [['tiny-qwen2-moe', 2, 5], ['tiny-qwen3-moe', 3, 4]] as const) {
    it(`${name}: expert ${idle} of layer ${layer} has exactly zero gradient, the others do not`, async () => {
      const dir = join(fixtures, name);
      const golden = await loadGolden(dir);
      const model = await DecoderModel.open(dir);
      try {
        const { gradients } = await lossAndGradients(model, await loadParameters(model), makeBatch(golden.windows));
        for (let e = 0; e < model.config.moe!.experts; ++e) {
          for (const projection of ['gate_proj', 'up_proj', 'down_proj']) {
            const param = `model.layers.${layer}.mlp.experts.${e}.${projection}.weight`;
            const g = gradients.get(param)!.data as Float32Array;
            if (e === idle) assert.ok(g.every((v) => v === 0), `${param} should be exactly zero`);
            else assert.ok(maxAbs(g) > 0, `${param} should have a gradient`);
            assert.equal(maxAbs(golden.grads.get(param)!) === 0, e === idle, `the golden agrees on ${param}`);
          }
        }
      } finally {
        await model.close();
      }
    });
  }
});
