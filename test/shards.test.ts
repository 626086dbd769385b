// The shard planner (planShards, checkpointIndex, planLayout) on shapes alone — no disk — at the sizes
// real checkpoints have: a 7B-shaped bf16 model of 13.5 GB split at Hugging Face's 5 GB, a limit met
// exactly, a tensor larger than the limit, total_size, and byte offsets past 2³² in one file's header.
import assert from 'node:assert/strict';
import { checkpointIndex, planShards, type PlannedShard } from '../lib/io/checkpoint.js';
import { parseHeader, planLayout, type PlannedTensor } from '../lib/io/safetensors.js';

const GiB = 2 ** 30;
const bytesOf = (t: PlannedTensor) => t.shape.reduce((a, b) => a * b, 1) * { f32: 4, f16: 2, bf16: 2, f64: 8, i64: 8, i32: 4, i8: 1, u8: 1 }[t.dtype];
const shardBytes = (s: PlannedShard) => s.tensors.reduce((a, t) => a + bytesOf(t), 0);

/** Llama-2-7B's tensors in bf16, in checkpoint order (6.74 billion parameters, 13.5 GB). */
function llama7b(): PlannedTensor[] {
  const [hidden, inter, vocab] = [4096, 11008, 32000];
  const tensors: PlannedTensor[] = [{ name: 'model.embed_tokens.weight', dtype: 'bf16', shape: [vocab, hidden] }];
  for (let l = 0; l < 32; ++l) {
    const p = `model.layers.${l}.`;
    for (const proj of ['q', 'k', 'v', 'o']) tensors.push({ name: `${p}self_attn.${proj}_proj.weight`, dtype: 'bf16', shape: [hidden, hidden] });
    tensors.push({ name: `${p}mlp.gate_proj.weight`, dtype: 'bf16', shape: [inter, hidden] }, { name: `${p}mlp.up_proj.weight`, dtype: 'bf16', shape: [inter, hidden] }, { name: `${p}mlp.down_proj.weight`, dtype: 'bf16', shape: [hidden, inter] });
    tensors.push({ name: `${p}input_layernorm.weight`, dtype: 'bf16', shape: [hidden] }, { name: `${p}post_attention_layernorm.weight`, dtype: 'bf16', shape: [hidden] });
  }
  tensors.push({ name: 'model.norm.weight', dtype: 'bf16', shape: [hidden] }, { name: 'lm_head.weight', dtype: 'bf16', shape: [vocab, hidden] });
  return tensors;
}

/** The invariants of any plan: order kept, each shard within the limit unless it is one tensor, and greedy (no shard could have taken the next tensor). */
function checkPlan(tensors: PlannedTensor[], shards: PlannedShard[], limit: number): void {
  assert.deepEqual(shards.flatMap((s) => s.tensors.map((t) => t.name)), tensors.map((t) => t.name), 'every tensor once, in order');
  shards.forEach((s, i) => {
    assert.ok(s.tensors.length > 0, `shard ${i} is empty`);
    assert.ok(shardBytes(s) <= limit || s.tensors.length === 1, `shard ${i}: ${shardBytes(s)} bytes over the limit ${limit}`);
    if (i + 1 < shards.length) assert.ok(shardBytes(s) + bytesOf(shards[i + 1].tensors[0]) > limit, `shard ${i} could have held the next tensor`);
    assert.equal(s.file, shards.length === 1 ? 'model.safetensors' : `model-${String(i + 1).padStart(5, '0')}-of-${String(shards.length).padStart(5, '0')}.safetensors`);
  });
}

describe('shard planner (no disk)', () => {
  it('splits a 13.5 GB bf16 7B model at 5 GB into three shards, and indexes every tensor with total_size', () => {
    const tensors = llama7b();
    const total = tensors.reduce((a, t) => a + bytesOf(t), 0);
    assert.equal(total, 2 * 6_738_415_616);
    const shards = planShards(tensors, 5e9);
    checkPlan(tensors, shards, 5e9);
    assert.equal(shards.length, 3);
    const index = checkpointIndex(shards)!;
    assert.equal(index.metadata.total_size, total);
    assert.equal(Object.keys(index.weight_map).length, tensors.length);
    for (const s of shards) for (const t of s.tensors) assert.equal(index.weight_map[t.name], s.file);
    // Each shard's header: offsets tile its data exactly (parseHeader's own validation), sizes add up.
    for (const s of shards) {
      const layout = planLayout(s.tensors, { format: 'pt' });
      const dataStart = layout.head.length;
      const { tensors: parsed } = parseHeader(s.file, layout.head.subarray(8), dataStart, layout.fileSize);
      assert.equal(layout.fileSize - dataStart, shardBytes(s));
      assert.equal(parsed.size, s.tensors.length);
    }
  });

  it('keeps a shard of exactly the limit, and starts a new one one byte over', () => {
    const t = (name: string, n: number): PlannedTensor => ({ name, dtype: 'u8', shape: [n] });
    const exact = planShards([t('a', 3 * GiB), t('b', GiB), t('c', 1)], 4 * GiB);
    assert.deepEqual(exact.map((s) => s.tensors.map((x) => x.name)), [['a', 'b'], ['c']]);
    const over = planShards([t('a', 3 * GiB), t('b', GiB + 1), t('c', 1)], 4 * GiB);
    assert.deepEqual(over.map((s) => s.tensors.map((x) => x.name)), [['a'], ['b', 'c']]);
    checkPlan([t('a', 3 * GiB), t('b', GiB + 1), t('c', 1)], over, 4 * GiB);
    assert.equal(planShards([t('a', 4 * GiB)], 4 * GiB).length, 1);
    assert.equal(checkpointIndex(planShards([t('a', 4 * GiB)], 4 * GiB)), null, 'one shard: model.safetensors and no index');
  });

  it('gives a tensor larger than the limit a shard of its own, between neighbours that share theirs', () => {
    const tensors: PlannedTensor[] = [
      { name: 'small.0', dtype: 'f32', shape: [1024] },
      { name: 'small.1', dtype: 'f32', shape: [1024] },
      { name: 'huge', dtype: 'f32', shape: [2 * GiB] }, // 8 GiB
      { name: 'small.2', dtype: 'f32', shape: [1024] },
      { name: 'small.3', dtype: 'f32', shape: [1024] },
    ];
    const shards = planShards(tensors, GiB);
    checkPlan(tensors, shards, GiB);
    assert.deepEqual(shards.map((s) => s.tensors.map((x) => x.name)), [['small.0', 'small.1'], ['huge'], ['small.2', 'small.3']]);
    assert.equal(checkpointIndex(shards)!.metadata.total_size, 8 * GiB + 4 * 4096);
    assert.throws(() => planShards(tensors, 0), /maxShardBytes: expected a positive number/);
  });

  it('writes and reads back byte offsets past 2³² in one file\'s header (no shard limit)', () => {
    const tensors = llama7b();
    const [shard] = planShards(tensors, Infinity);
    assert.equal(shard.file, 'model.safetensors');
    const layout = planLayout(shard.tensors);
    const dataStart = layout.head.length;
    assert.equal(Number(layout.head.readBigUInt64LE(0)), dataStart - 8);
    assert.equal(dataStart % 8, 0, 'the data starts 8-byte aligned');
    const { tensors: parsed } = parseHeader('model.safetensors', layout.head.subarray(8), dataStart, layout.fileSize);
    let offset = dataStart;
    for (const t of tensors) {
      const info = parsed.get(t.name)!;
      assert.equal(info.offset, offset, t.name);
      assert.equal(info.byteLength, bytesOf(t), t.name);
      assert.deepEqual(layout.tensors.get(t.name), info, `${t.name}: the writer's layout and the reader's agree`);
      offset += info.byteLength;
    }
    const last = parsed.get('lm_head.weight')!;
    assert.ok(last.offset > 2 ** 32 && last.offset + last.byteLength === layout.fileSize);
    // The header holds the exact integers, not a rounded or exponent form.
    const header = JSON.parse(layout.head.subarray(8).toString('utf8')) as Record<string, { data_offsets: [number, number] }>;
    assert.deepEqual(header['lm_head.weight'].data_offsets, [last.offset - dataStart, layout.fileSize - dataStart]);
    assert.match(layout.head.toString('utf8'), new RegExp(`"data_offsets":\\[${last.offset - dataStart},${layout.fileSize - dataStart}\\]`));
  });
});
