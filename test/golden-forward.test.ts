// The decoder (Llama, Llama-3 rope scaling, Qwen2 q/k/v bias, Qwen3 q/k norm and head_dim, OPT, Mixtral,
// Qwen2-MoE, Qwen3-MoE, DeepSeek-MoE)
// run block by block must reproduce the independent PyTorch goldens in ../shared/fixtures.
// Tolerance: f32 compute from the stored weights; logits within 5e-5 absolute + 1e-4 relative (the
// largest difference seen is 1.4e-5, on sotu-llama); the loss within 1e-4 relative.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { crossEntropy, DecoderModel, SafetensorsFile, Tensor } from '../lib/index.js';
import { assertClose, sharedDir } from './helpers.js';

const fixtures = join(sharedDir(), 'fixtures');

async function llamaLogits(dir: string, ids: Int32Array): Promise<Float32Array> {
  const model = await DecoderModel.open(dir);
  const positions = Tensor.fromTypedArray(Int32Array.from({ length: ids.length }, (_, i) => i));
  const h = model.embed(await model.loadEmbeddings(), ids);
  for (let layer = 0; layer < model.config.layers; ++layer) await (await model.loadBlock(layer)).forward(h, positions, model.invFreq);
  const logits = await model.logits(await model.loadHead(), h);
  await model.close();
  return logits.data as Float32Array;
}

async function golden(dir: string) {
  const file = await SafetensorsFile.open(join(dir, 'golden.safetensors'));
  const ids = (await file.read('input_ids')).data as Int32Array;
  const info = file.info('input_ids');
  const logits = (await file.read('logits')).data as Float32Array;
  await file.close();
  const meta = JSON.parse(readFileSync(join(dir, 'golden.json'), 'utf8'));
  return { ids, batch: info.shape[0], length: info.shape[1], logits, loss: meta.loss as number | undefined };
}

describe('the decoder matches the PyTorch goldens', () => {
  for (const name of ['tiny-llama', 'tiny-llama3', 'tiny-qwen2', 'tiny-qwen3', 'tiny-opt', 'tiny-mixtral', 'tiny-qwen2-moe', 'tiny-qwen3-moe', 'tiny-deepseek-moe', 'stories260K', 'sotu-llama']) {
    it(name, async () => {
      const dir = join(fixtures, name);
      const g = await golden(dir);
      // Tiny goldens score input_ids[:, :-1]; the trained ones score all 64 tokens.
      const scored = g.logits.length / g.batch / (g.length - (g.loss === undefined ? 0 : 1));
      const vocab = scored;
      const steps = g.loss === undefined ? g.length : g.length - 1;
      const nll: number[] = [];
      for (let b = 0; b < g.batch; ++b) {
        const ids = g.ids.slice(b * g.length, b * g.length + steps);
        const logits = await llamaLogits(dir, ids);
        const expected = g.logits.subarray(b * steps * vocab, (b + 1) * steps * vocab);
        assertClose(logits, expected, { atol: 5e-5, rtol: 1e-4 }, `${name} sequence ${b} logits`);
        if (g.loss !== undefined) {
          const targets = Tensor.fromTypedArray(g.ids.slice(b * g.length + 1, (b + 1) * g.length));
          nll.push(...(crossEntropy(Tensor.fromTypedArray(logits, [steps, vocab]), targets).data as Float32Array));
        }
      }
      if (g.loss !== undefined) {
        const loss = nll.reduce((a, c) => a + c, 0) / nll.length;
        assert.ok(Math.abs(loss - g.loss) < 1e-4 * Math.max(1, g.loss), `loss ${loss}, golden ${g.loss}`);
      }
    });
  }
});
