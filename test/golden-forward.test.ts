// The building blocks composed into the Hugging Face Llama-family forward pass (Llama, Llama-3 rope
// scaling, Qwen2 q/k/v bias, Qwen3 q/k norm) must reproduce the independent PyTorch goldens in
// ../shared/fixtures. This is a check that the kernels are right together; the model runtime proper
// (streaming, architectures as data, OPT, Mixtral) lives in lib/models when it lands.
// Tolerance: f32 compute from the stored weights; logits within 5e-5 absolute + 1e-4 relative (the
// largest difference seen is 1.4e-5, on sotu-llama).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  attention,
  axpy,
  Checkpoint,
  crossEntropy,
  embedding,
  gemm,
  addBias,
  rmsNorm,
  rope,
  ropeInverseFrequencies,
  SafetensorsFile,
  siluMul,
  Tensor,
} from '../lib/index.js';
import { assertClose } from './helpers.js';

const fixtures = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'shared', 'fixtures');

interface LlamaConfig {
  hidden_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads?: number;
  head_dim?: number;
  rms_norm_eps: number;
  rope_theta?: number;
  rope_parameters?: { rope_type: string; rope_theta: number; factor?: number; low_freq_factor?: number; high_freq_factor?: number; original_max_position_embeddings?: number };
  tie_word_embeddings?: boolean;
}

async function llamaLogits(dir: string, ids: Int32Array): Promise<Float32Array> {
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as LlamaConfig;
  const ckpt = await Checkpoint.open(dir);
  const w = async (name: string) => ckpt.read(name, { dtype: 'f32' });
  const linear = async (x: Tensor, name: string) => {
    const y = gemm(x, await w(`${name}.weight`), { transB: true });
    if (ckpt.has(`${name}.bias`)) addBias(y, await w(`${name}.bias`));
    return y;
  };
  const heads = config.num_attention_heads;
  const kvHeads = config.num_key_value_heads ?? heads;
  const headDim = config.head_dim ?? config.hidden_size / heads;
  const rp = config.rope_parameters;
  const theta = rp?.rope_theta ?? config.rope_theta ?? 10000;
  const invFreq = Tensor.fromTypedArray(
    ropeInverseFrequencies(
      headDim,
      theta,
      rp?.rope_type === 'llama3'
        ? { type: 'llama3', factor: rp.factor!, lowFreqFactor: rp.low_freq_factor!, highFreqFactor: rp.high_freq_factor!, originalMaxPositions: rp.original_max_position_embeddings! }
        : undefined,
    ),
  );
  const T = ids.length;
  const positions = Tensor.fromTypedArray(Int32Array.from({ length: T }, (_, i) => i));
  const eps = config.rms_norm_eps;
  let h = embedding(await w('model.embed_tokens.weight'), Tensor.fromTypedArray(ids));
  for (let l = 0; l < config.num_hidden_layers; ++l) {
    const p = `model.layers.${l}`;
    const x = rmsNorm(h, await w(`${p}.input_layernorm.weight`), eps);
    let q = (await linear(x, `${p}.self_attn.q_proj`)).reshape([T, heads, headDim]);
    let k = (await linear(x, `${p}.self_attn.k_proj`)).reshape([T, kvHeads, headDim]);
    const v = (await linear(x, `${p}.self_attn.v_proj`)).reshape([T, kvHeads, headDim]);
    if (ckpt.has(`${p}.self_attn.q_norm.weight`)) {
      q = rmsNorm(q, await w(`${p}.self_attn.q_norm.weight`), eps);
      k = rmsNorm(k, await w(`${p}.self_attn.k_norm.weight`), eps);
    }
    rope(q, positions, invFreq);
    rope(k, positions, invFreq);
    const attended = attention(q, k, v).reshape([T, heads * headDim]);
    axpy(1, await linear(attended, `${p}.self_attn.o_proj`), h);
    const y = rmsNorm(h, await w(`${p}.post_attention_layernorm.weight`), eps);
    const mlp = siluMul(await linear(y, `${p}.mlp.gate_proj`), await linear(y, `${p}.mlp.up_proj`));
    axpy(1, await linear(mlp, `${p}.mlp.down_proj`), h);
  }
  h = rmsNorm(h, await w('model.norm.weight'), eps);
  const head = ckpt.has('lm_head.weight') ? 'lm_head.weight' : 'model.embed_tokens.weight';
  const logits = gemm(h, await w(head), { transB: true });
  await ckpt.close();
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

describe('Llama-family forward from the building blocks matches the PyTorch goldens', () => {
  for (const name of ['tiny-llama', 'tiny-llama3', 'tiny-qwen2', 'tiny-qwen3', 'stories260K', 'sotu-llama']) {
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
