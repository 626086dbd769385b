// Recipe precedence, as lib/pipeline/recipe.ts documents it: the first matching stage wins, the last
// matching override wins, override options and grids merge over the stage's, `ignore` beats `targets`
// (and hands the linear to a later stage), MoE routers are compressed only when a target names them; the
// CLI's --nsamples/--seq-len/--seed/--sequential override the recipe file; and `sequential: linear`
// really changes what later linears see.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadTokenizer, parseRecipe, prune, SafetensorsFile } from '../lib/index.js';
import { assignLinears, type LinearEntry } from '../lib/pipeline/recipe.js';
import { CLI, fixturePath, sharedDir } from './helpers.js';

const work = mkdtempSync(join(tmpdir(), 'sparq-recipe-'));
after(() => rmSync(work, { recursive: true, force: true }));

/** Two Mixtral-like blocks: attention, a router and two experts each. */
const LINEARS: LinearEntry[] = [0, 1].flatMap((b) => [
  ...['q', 'k', 'v', 'o'].map((r) => ({ name: `model.layers.${b}.self_attn.${r}_proj`, role: r })),
  { name: `model.layers.${b}.block_sparse_moe.gate`, role: 'router' },
  ...[0, 1].flatMap((e) => ['w1', 'w2', 'w3'].map((w) => ({ name: `model.layers.${b}.block_sparse_moe.experts.${e}.${w}`, role: `expert.${e}.${w}` }))),
]);

const assign = (recipe: Record<string, unknown>) => assignLinears(parseRecipe(recipe), LINEARS);
const sparsityOf = (assignments: ReturnType<typeof assign>, name: string) => {
  const p = assignments.get(name)?.pattern;
  return p === undefined ? undefined : p.kind === 'unstructured' ? p.sparsity : `${p.n}:${p.m}`;
};

describe('recipe precedence', () => {
  it('the first stage whose targets match a linear takes it; later stages get only the rest', () => {
    const a = assign({
      stages: [
        { method: 'magnitude', sparsity: 0.3, targets: ['*.q_proj'] },
        { method: 'wanda', sparsity: 0.5, targets: ['*_proj'] },
      ],
    });
    assert.equal(a.get('model.layers.1.self_attn.q_proj')!.stage, 0);
    assert.equal(a.get('model.layers.1.self_attn.q_proj')!.method.name, 'magnitude');
    assert.equal(sparsityOf(a, 'model.layers.1.self_attn.q_proj'), 0.3);
    assert.equal(a.get('model.layers.1.self_attn.k_proj')!.method.name, 'wanda');
    assert.equal(a.size, 8, 'q, k, v, o of two blocks; experts and routers are not *_proj');
  });

  it('the last matching override wins, whatever its breadth', () => {
    const narrowLast = assign({ method: 'magnitude', sparsity: 0.5, overrides: [{ match: 'model.layers.*', sparsity: 0.3 }, { match: 'model.layers.1.*', sparsity: 0.4 }] });
    assert.equal(sparsityOf(narrowLast, 'model.layers.0.self_attn.q_proj'), 0.3);
    assert.equal(sparsityOf(narrowLast, 'model.layers.1.self_attn.q_proj'), 0.4);
    const broadLast = assign({ method: 'magnitude', sparsity: 0.5, overrides: [{ match: 'model.layers.1.*', sparsity: 0.4 }, { match: 'model.layers.*', sparsity: '2:4' }] });
    assert.equal(sparsityOf(broadLast, 'model.layers.1.self_attn.q_proj'), '2:4');
  });

  it('override options and grids merge over the stage\'s, key by key, in override order', () => {
    const a = assign({
      method: 'sparsegpt',
      sparsity: 0.5,
      quantize: { bits: 4, groupSize: 128 },
      options: { damp: 0.02, blockSize: 64 },
      overrides: [
        { match: 'model.layers.1.*', options: { damp: 0.05 }, quantize: { bits: 8 } },
        { match: '*.q_proj', options: { joint: false } },
      ],
    });
    assert.deepEqual(a.get('model.layers.0.self_attn.k_proj')!.options, { damp: 0.02, blockSize: 64, joint: true, grids: 'refit' });
    assert.deepEqual(a.get('model.layers.1.self_attn.k_proj')!.options, { damp: 0.05, blockSize: 64, joint: true, grids: 'refit' });
    assert.deepEqual(a.get('model.layers.1.self_attn.q_proj')!.options, { damp: 0.05, blockSize: 64, joint: false, grids: 'refit' });
    const q = a.get('model.layers.1.self_attn.k_proj')!.quantization!;
    assert.deepEqual([q.bits, q.groupSize], [8, 128], 'bits from the override, the group size kept from the stage');
    assert.deepEqual([a.get('model.layers.0.self_attn.k_proj')!.quantization!.bits], [4]);
  });

  it('ignore beats targets, and an ignored linear falls to the next stage that takes it', () => {
    const a = assign({
      stages: [
        { method: 'wanda', sparsity: 0.5, targets: ['*.self_attn.*'], ignore: ['model.layers.0.*'] },
        { method: 'magnitude', sparsity: 0.25, targets: ['*.q_proj'] },
      ],
    });
    assert.equal(a.get('model.layers.1.self_attn.q_proj')!.method.name, 'wanda');
    assert.equal(a.get('model.layers.0.self_attn.q_proj')!.method.name, 'magnitude', 'ignored by stage 0, taken by stage 1');
    assert.ok(!a.has('model.layers.0.self_attn.k_proj'), 'ignored and targeted by no later stage: left dense');
  });

  it('compresses MoE routers only when a target names them, never through the default or a bare *', () => {
    const routers = (a: ReturnType<typeof assign>) => [...a.keys()].filter((n) => n.endsWith('block_sparse_moe.gate'));
    assert.deepEqual(routers(assign({ method: 'magnitude', sparsity: 0.5 })), []);
    assert.deepEqual(routers(assign({ method: 'magnitude', sparsity: 0.5, targets: ['*'] })), []);
    assert.equal(assign({ method: 'magnitude', sparsity: 0.5 }).size, 2 * (4 + 6), 'every other linear is taken');
    assert.deepEqual(routers(assign({ method: 'magnitude', sparsity: 0.5, targets: ['*', '*.block_sparse_moe.gate'] })), ['model.layers.0.block_sparse_moe.gate', 'model.layers.1.block_sparse_moe.gate']);
    assert.deepEqual(routers(assign({ method: 'magnitude', sparsity: 0.5, targets: ['re:model\\.layers\\.1\\..*gate'] })), ['model.layers.1.block_sparse_moe.gate']);
  });
});

describe('recipe precedence in runs', function () {
  this.timeout(300_000);
  const stories = () => fixturePath('stories260K');
  const calib = join(work, 'calib.txt');
  before(() => writeFileSync(calib, readFileSync(join(sharedDir(), 'data', 'tinystories_calib.txt'), 'utf8').slice(0, 16384)));

  it('the CLI\'s --nsamples, --seq-len, --seed and --sequential override the recipe file', () => {
    const recipeFile = join(work, 'recipe.yaml');
    writeFileSync(recipeFile, ['method: wanda', 'sparsity: 0.5', 'sequential: block', 'calibration: { nsamples: 8, seqLen: 64, seed: 3 }'].join('\n'));
    const out = join(work, 'cli-override');
    const result = spawnSync(process.execPath, [CLI, 'prune', '--model', stories(), '--recipe', recipeFile, '--calib', calib, '--nsamples', '4', '--seq-len', '32', '--seed', '9', '--sequential', 'linear', '--out', out, '--json'], { encoding: 'utf8' });
    assert.equal(result.status, 0, result.stderr);
    const report = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8'));
    assert.deepEqual(report.calibration, { windows: 4, seqLen: 32, seed: 9, tokens: 128 });
    assert.equal(report.recipe.sequential, 'linear');
    assert.deepEqual(report.recipe.calibration, { nsamples: 8, seqLen: 64, seed: 3 }, 'the file itself is recorded as written');
  });

  it('sequential: linear feeds later linears the outputs of already-compressed ones; block feeds them the dense block\'s', async () => {
    const tokens = (await loadTokenizer(stories())).encode(readFileSync(calib, 'utf8'));
    const bytes: Record<string, Map<string, Uint8Array>> = {};
    for (const sequential of ['block', 'linear']) {
      const out = join(work, `sequential-${sequential}`);
      await prune({ model: stories(), out, recipe: parseRecipe({ method: 'wanda', sparsity: 0.5, sequential }), calibrationTokens: tokens, nsamples: 8, seqLen: 64 });
      const file = await SafetensorsFile.open(join(out, 'model.safetensors'));
      bytes[sequential] = new Map();
      for (const name of file.names()) if (name.startsWith('model.layers.0.')) bytes[sequential].set(name, new Uint8Array((await file.read(name)).data.buffer));
      await file.close();
    }
    // In block 0, q/k/v read the embeddings in both modes: the same weights. o_proj reads the attention
    // output, which in linear mode is recomputed with the pruned q/k/v, so Wanda's input norms — and the
    // weights it keeps — change; likewise the MLP after the pruned attention.
    for (const role of ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj']) {
      assert.deepEqual(bytes.linear.get(`model.layers.0.${role}.weight`), bytes.block.get(`model.layers.0.${role}.weight`), role);
    }
    for (const role of ['self_attn.o_proj', 'mlp.gate_proj', 'mlp.up_proj', 'mlp.down_proj']) {
      assert.notDeepEqual(bytes.linear.get(`model.layers.0.${role}.weight`), bytes.block.get(`model.layers.0.${role}.weight`), role);
    }
  });
});
