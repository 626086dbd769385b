// Writes a random Hugging Face model folder of any shape (config.json + safetensors, sharded if asked),
// streaming tensor by tensor so that models larger than memory can be made for tests and benchmarks.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { InvalidArgumentError } from '../errors.js';
import { CheckpointWriter } from '../io/checkpoint.js';
import { shapeNumel, Tensor } from '../tensor/tensor.js';
/** Tensor names and shapes of a Llama checkpoint with these dimensions, in file order. */
export function llamaPlan(o) {
    const dtype = o.dtype ?? 'f32';
    const kvHeads = o.kvHeads ?? o.heads;
    const headDim = o.hiddenSize / o.heads;
    const kvDim = kvHeads * headDim;
    const plan = [{ name: 'model.embed_tokens.weight', dtype, shape: [o.vocabSize, o.hiddenSize] }];
    for (let l = 0; l < o.layers; ++l) {
        const p = `model.layers.${l}.`;
        plan.push({ name: `${p}input_layernorm.weight`, dtype, shape: [o.hiddenSize] }, { name: `${p}self_attn.q_proj.weight`, dtype, shape: [o.hiddenSize, o.hiddenSize] }, { name: `${p}self_attn.k_proj.weight`, dtype, shape: [kvDim, o.hiddenSize] }, { name: `${p}self_attn.v_proj.weight`, dtype, shape: [kvDim, o.hiddenSize] }, { name: `${p}self_attn.o_proj.weight`, dtype, shape: [o.hiddenSize, o.hiddenSize] }, { name: `${p}post_attention_layernorm.weight`, dtype, shape: [o.hiddenSize] }, { name: `${p}mlp.gate_proj.weight`, dtype, shape: [o.intermediateSize, o.hiddenSize] }, { name: `${p}mlp.up_proj.weight`, dtype, shape: [o.intermediateSize, o.hiddenSize] }, { name: `${p}mlp.down_proj.weight`, dtype, shape: [o.hiddenSize, o.intermediateSize] });
    }
    plan.push({ name: 'model.norm.weight', dtype, shape: [o.hiddenSize] });
    if (!o.tiedEmbeddings)
        plan.push({ name: 'lm_head.weight', dtype, shape: [o.vocabSize, o.hiddenSize] });
    return plan;
}
/**
 * Writes a random Llama model to `dir` (created if missing): norms are ones; every other weight is
 * uniform in ±1/sqrt(fan-in), so activations stay in range through many layers. Deterministic for a seed.
 */
export async function writeRandomLlama(dir, o) {
    if (o.hiddenSize % o.heads !== 0 || (o.hiddenSize / o.heads) % 2 !== 0) {
        throw new InvalidArgumentError(`hiddenSize ${o.hiddenSize} must split into ${o.heads} heads of an even size`);
    }
    if (o.heads % (o.kvHeads ?? o.heads) !== 0)
        throw new InvalidArgumentError(`heads ${o.heads} must be a multiple of kvHeads ${o.kvHeads}`);
    await mkdir(dir, { recursive: true });
    const config = {
        model_type: 'llama',
        architectures: ['LlamaForCausalLM'],
        hidden_size: o.hiddenSize,
        intermediate_size: o.intermediateSize,
        num_hidden_layers: o.layers,
        num_attention_heads: o.heads,
        num_key_value_heads: o.kvHeads ?? o.heads,
        vocab_size: o.vocabSize,
        max_position_embeddings: o.maxPositions ?? 2048,
        rms_norm_eps: 1e-5,
        rope_theta: 10000,
        tie_word_embeddings: o.tiedEmbeddings ?? false,
        hidden_act: 'silu',
        torch_dtype: { f32: 'float32', f16: 'float16', bf16: 'bfloat16' }[o.dtype ?? 'f32'],
    };
    await writeFile(join(dir, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
    const plan = llamaPlan(o);
    const writer = await CheckpointWriter.create(dir, plan, { maxShardBytes: o.maxShardBytes, metadata: { format: 'pt' } });
    let state = (o.seed ?? 1) >>> 0;
    try {
        for (const t of plan) {
            const values = new Float32Array(shapeNumel(t.shape));
            if (t.shape.length === 1) {
                values.fill(1);
            }
            else {
                const bound = 1 / Math.sqrt(t.shape[1]);
                for (let i = 0; i < values.length; ++i) {
                    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
                    values[i] = (state / 2147483648 - 1) * bound;
                }
            }
            await writer.write(t.name, Tensor.fromTypedArray(values, t.shape).to(t.dtype));
        }
        await writer.close();
    }
    catch (error) {
        await writer.abort();
        throw error;
    }
}
//# sourceMappingURL=random-model.js.map