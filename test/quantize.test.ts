// Quantizing whole models: RTN and GPTQ end to end, the compressed-tensors pack-quantized output (the
// config and tensors vLLM loads; read back as the same weights as the dense output), a folder written the
// way llm-compressor writes it (built here by hand from the spec) loading and evaluating, inspect, joint
// 2:4 + W4, resume, and an error for every bad input.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AbortError,
  Checkpoint,
  DecoderModel,
  DenseFolder,
  evaluatePerplexity,
  InvalidArgumentError,
  loadTokenizer,
  parseRecipe,
  quantize,
  SafetensorsFile,
  SafetensorsWriter,
  Tensor,
  UnsupportedFormatError,
  type CompressOptions,
  type PlannedTensor,
} from '../lib/index.js';
import { assertSchema, CLI, fixturePath, rng, sharedDir } from './helpers.js';
import { codeRef, packRef, paramsRef } from './quant-reference.js';

const work = mkdtempSync(join(tmpdir(), 'sparq-quantize-'));
after(() => rmSync(work, { recursive: true, force: true }));
let counter = 0;
const outDir = (label: string) => join(work, `${label}-${++counter}`);
const stories = () => fixturePath('stories260K');
const calib = () => join(sharedDir(), 'data', 'tinystories_calib.txt');

/** stories260K's down_proj has 172 inputs: not whole 32-bit words of 4-bit codes, so vLLM's format leaves it out. */
function storiesOptions(method: 'rtn' | 'gptq', quantize: Record<string, unknown>, extra: Partial<CompressOptions> = {}): CompressOptions {
  return {
    model: stories(),
    out: outDir(method),
    recipe: parseRecipe({ method, quantize, ignore: ['*.down_proj'] }),
    calibrationFile: calib(),
    nsamples: 32,
    seqLen: 128,
    seed: 0,
    ...extra,
  };
}

async function evalTokens(): Promise<Int32Array> {
  const tokenizer = await loadTokenizer(stories());
  return tokenizer.encode(readFileSync(join(sharedDir(), 'data', 'tinystories_val.txt'), 'utf8')).slice(0, 16384);
}

async function perplexityOf(dir: string, tokens: Int32Array): Promise<number> {
  const model = await DecoderModel.open(dir);
  try {
    return (await evaluatePerplexity(model, tokens, { seqLen: 256 })).perplexity;
  } finally {
    await model.close();
  }
}

/** Every linear weight of a model folder as the model computes with it (decoded where quantized). */
async function linearWeights(dir: string): Promise<Map<string, Float32Array>> {
  const model = await DecoderModel.open(dir);
  const out = new Map<string, Float32Array>();
  try {
    for (const name of model.linearNames()) out.set(name, (await model.checkpoint.read(name, { dtype: 'f32' })).data as Float32Array);
  } finally {
    await model.close();
  }
  return out;
}

describe('quantize', function () {
  this.timeout(600_000);

  it('writes compressed-tensors pack-quantized as compressed-tensors 0.18 does, and reads it back as the dense output\'s weights', async () => {
    const tokens = await evalTokens();
    const dense = await perplexityOf(stories(), tokens);
    const perplexity: Record<string, number> = {};
    for (const method of ['rtn', 'gptq'] as const) {
      const scheme = { bits: 4, groupSize: 0 };
      const ct = storiesOptions(method, scheme);
      const report = await quantize(ct);
      assert.equal(report.format, 'compressed-tensors');
      assert.equal(report.totals.quantizedLinears, 30);
      // 4-bit codes plus one f32 scale per 64-input row: 4 + 32/64 bits per weight.
      assert.equal(report.totals.bitsPerWeight, 4.5);
      const config = JSON.parse(readFileSync(join(ct.out, 'config.json'), 'utf8'));
      assert.deepEqual(config.quantization_config, {
        config_groups: {
          group_0: {
            format: 'pack-quantized',
            input_activations: null,
            output_activations: null,
            targets: ['Linear'],
            weights: { actorder: null, block_structure: null, dynamic: false, group_size: null, num_bits: 4, observer: 'memoryless_minmax', observer_kwargs: {}, scale_dtype: null, strategy: 'channel', symmetric: true, type: 'int', zp_dtype: null },
          },
        },
        format: 'pack-quantized',
        global_compression_ratio: null,
        ignore: [0, 1, 2, 3, 4].map((b) => `model.layers.${b}.mlp.down_proj`).concat(['lm_head']),
        kv_cache_scheme: null,
        quant_method: 'compressed-tensors',
        quantization_status: 'compressed',
        sparsity_config: {},
        transform_config: {},
        version: '0.18.0',
      });
      const file = await SafetensorsFile.open(join(ct.out, 'model.safetensors'));
      try {
        const info = (name: string) => {
          const t = file.info(name);
          return `${t.dtype}[${t.shape.join(',')}]`;
        };
        assert.equal(info('model.layers.0.self_attn.q_proj.weight_packed'), 'I32[64,8]');
        assert.equal(info('model.layers.0.self_attn.q_proj.weight_scale'), 'F32[64,1]');
        assert.equal(info('model.layers.0.self_attn.q_proj.weight_shape'), 'I64[2]');
        assert.deepEqual(Array.from((await file.read('model.layers.0.mlp.up_proj.weight_shape')).data as BigInt64Array, Number), [172, 64]);
        assert.equal(info('model.layers.0.mlp.down_proj.weight'), 'F32[64,172]');
        assert.ok(!file.names().some((n) => n.endsWith('weight_zero_point') || n.endsWith('weight_g_idx') || n === 'model.layers.0.self_attn.q_proj.weight'));
      } finally {
        await file.close();
      }
      // The same run in the dense format stores the decoded weights: both read back identically.
      const denseOut = { ...ct, out: outDir(`${method}-dense`) };
      await quantize({ ...denseOut, format: 'dense' });
      const a = await linearWeights(ct.out);
      const b = await linearWeights(denseOut.out);
      for (const [name, weight] of a) assert.deepEqual(weight, b.get(name), name);
      perplexity[method] = await perplexityOf(ct.out, tokens);
      assert.equal(perplexity[method], await perplexityOf(denseOut.out, tokens), `${method}: the two formats evaluate alike`);
    }
    console.log(`      stories260K W4 per channel: dense ${dense.toFixed(3)}, rtn ${perplexity.rtn.toFixed(3)}, gptq ${perplexity.gptq.toFixed(3)}`);
    assert.ok(dense < perplexity.gptq && perplexity.gptq < perplexity.rtn, 'GPTQ lands between the dense model and RTN');
  });

  it('stores zero points and g_idx for an asymmetric grid in activation order, and decodes them', async () => {
    const options = storiesOptions('gptq', { bits: 8, groupSize: 32, symmetric: false, actOrder: 'group' }, { recipe: parseRecipe({ method: 'gptq', quantize: { bits: 8, groupSize: 32, symmetric: false, actOrder: 'group' }, targets: ['*.self_attn.*'] }) });
    await quantize(options);
    const config = JSON.parse(readFileSync(join(options.out, 'config.json'), 'utf8')).quantization_config;
    assert.equal(config.config_groups.group_0.weights.actorder, 'group');
    assert.equal(config.config_groups.group_0.weights.zp_dtype, 'torch.int8');
    assert.equal(config.config_groups.group_0.weights.strategy, 'group');
    const file = await SafetensorsFile.open(join(options.out, 'model.safetensors'));
    const gIdx = (await file.read('model.layers.1.self_attn.k_proj.weight_g_idx')).data as Int32Array;
    assert.equal(file.info('model.layers.1.self_attn.k_proj.weight_zero_point').shape.join(), '8,2');
    await file.close();
    const counts = [0, 0];
    for (const g of gIdx) counts[g] += 1;
    assert.deepEqual(counts, [32, 32], 'every group of 32 in the sweep order holds 32 inputs');
    const inspected = JSON.parse(execFileSync(process.execPath, [CLI, 'inspect', options.out, '--json'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }));
    const k = inspected.linears.find((l: { name: string }) => l.name === 'model.layers.1.self_attn.k_proj.weight');
    assert.deepEqual({ format: k.format, bits: k.bits, groupSize: k.groupSize, symmetric: k.symmetric, actOrder: k.actOrder }, { format: 'pack-quantized', bits: 8, groupSize: 32, symmetric: false, actOrder: 'group' });
    assert.equal(typeof k.sparsity, 'number');
    const up = inspected.linears.find((l: { name: string }) => l.name === 'model.layers.1.mlp.up_proj.weight');
    assert.equal(up.format, 'dense');
  });

  it('loads and evaluates a folder written the way llm-compressor writes it (built here from the spec)', async () => {
    // tiny-llama (bf16) quantized by hand: W4, groups of 32, asymmetric, actorder group, llm-compressor's
    // config (top-level format only, observer minmax, an older version), packing done by the reference.
    const source = fixturePath('tiny-llama');
    const dir = outDir('llmc');
    const expectedDir = outDir('llmc-expected');
    mkdirSync(dir);
    mkdirSync(expectedDir);
    const random = rng(3);
    const input = await Checkpoint.open(source);
    const tensors: [string, Tensor][] = [];
    const expected: [string, Tensor][] = [];
    const linear = /\.(q|k|v|o|gate|up|down)_proj\.weight$/;
    for (const name of input.names()) {
      const value = await input.read(name);
      if (!linear.test(name)) {
        tensors.push([name, value]);
        expected.push([name, value]);
        continue;
      }
      const [rows, cols] = value.shape;
      const w = (value.to('f32').data as Float32Array);
      const groups = cols / 32;
      const gIdx = Int32Array.from({ length: cols }, (_, c) => c % groups); // interleaved groups
      const scales = new Float32Array(rows * groups);
      const zeros = new Int8Array(rows * groups);
      const codes = new Int8Array(rows * cols);
      const decoded = new Float32Array(rows * cols);
      for (let r = 0; r < rows; ++r) {
        for (let g = 0; g < groups; ++g) {
          const members = Array.from({ length: cols }, (_, c) => c).filter((c) => gIdx[c] === g).map((c) => w[r * cols + c]);
          const { scale, zero } = paramsRef(members, { bits: 4, groupSize: 32, symmetric: false, scaleDType: 'bf16' });
          scales[r * groups + g] = scale;
          zeros[r * groups + g] = zero;
        }
        for (let c = 0; c < cols; ++c) {
          const g = gIdx[c];
          const code = codeRef(w[r * cols + c] + 0.01 * (random() - 0.5), scales[r * groups + g], zeros[r * groups + g], 4);
          codes[r * cols + c] = code;
          decoded[r * cols + c] = Math.fround((code - zeros[r * groups + g]) * scales[r * groups + g]) + 0;
        }
      }
      // zero points packed along the output dimension: pack the transposed [groups, rows] codes
      const zerosT = new Int8Array(groups * rows);
      for (let r = 0; r < rows; ++r) for (let g = 0; g < groups; ++g) zerosT[g * rows + r] = zeros[r * groups + g];
      const zpPackedT = packRef(zerosT, groups, rows, 4);
      const zpWords = Math.ceil((rows * 4) / 32);
      const zpPacked = new Int32Array(zpWords * groups);
      for (let g = 0; g < groups; ++g) for (let wd = 0; wd < zpWords; ++wd) zpPacked[wd * groups + g] = zpPackedT[g * zpWords + wd];
      const base = name.slice(0, -'.weight'.length);
      tensors.push(
        [`${base}.weight_packed`, Tensor.fromTypedArray(packRef(codes, rows, cols, 4), [rows, cols / 8])],
        [`${base}.weight_scale`, Tensor.fromTypedArray(scales, [rows, groups]).to('bf16')],
        [`${base}.weight_zero_point`, Tensor.fromTypedArray(zpPacked, [zpWords, groups])],
        [`${base}.weight_g_idx`, Tensor.fromTypedArray(gIdx)],
        [`${base}.weight_shape`, Tensor.fromTypedArray(BigInt64Array.of(BigInt(rows), BigInt(cols)), [2])],
      );
      expected.push([name, Tensor.fromTypedArray(decoded, [rows, cols]).to('bf16')]);
    }
    await input.close();
    const write = async (folder: string, list: [string, Tensor][]) => {
      const plan: PlannedTensor[] = list.map(([name, t]) => ({ name, dtype: t.dtype, shape: t.shape }));
      const writer = await SafetensorsWriter.create(join(folder, 'model.safetensors'), plan);
      for (const [name, t] of list) await writer.write(name, t);
      await writer.close();
    };
    await write(dir, tensors);
    await write(expectedDir, expected);
    const config = JSON.parse(readFileSync(join(source, 'config.json'), 'utf8'));
    writeFileSync(join(expectedDir, 'config.json'), JSON.stringify(config));
    config.quantization_config = {
      config_groups: { group_0: { targets: ['Linear'], weights: { num_bits: 4, type: 'int', symmetric: false, strategy: 'group', group_size: 32, actorder: 'group', dynamic: false, observer: 'minmax' }, input_activations: null } },
      format: 'pack-quantized',
      ignore: ['lm_head'],
      quant_method: 'compressed-tensors',
      quantization_status: 'compressed',
      version: '0.12.2',
    };
    writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
    const ids = Int32Array.from({ length: 512 }, () => Math.floor(random() * 128));
    const model = await DecoderModel.open(dir);
    const reference = await DecoderModel.open(expectedDir);
    try {
      for (const name of model.linearNames()) assert.deepEqual((await model.checkpoint.read(name)).data, (await reference.checkpoint.read(name, { dtype: 'f32' })).data, name);
      const a = await evaluatePerplexity(model, ids, { seqLen: 64 });
      const b = await evaluatePerplexity(reference, ids, { seqLen: 64 });
      assert.equal(a.perplexity, b.perplexity);
    } finally {
      await model.close();
      await reference.close();
    }
    // A scheme that does not match its tensors is refused by name.
    config.quantization_config.config_groups.group_0.weights.group_size = 64;
    writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
    const broken = await DecoderModel.open(dir);
    await assert.rejects(broken.loadBlock(0), /model\.layers\.0\.self_attn\.q_proj\.weight_scale is bf16 \[64, 2\]; the scheme \(W4, group 64\) and weight_shape \[64, 64\] need f32\/f16\/bf16 \[64, 1\]/);
    await broken.close();
  });

  it('prunes 2:4 and quantizes to W4 in one sweep: the pattern holds in the decoded weights and zeros are stored as zero points', async () => {
    const out = outDir('joint');
    const stdout = execFileSync(
      process.execPath,
      [CLI, 'quantize', '--model', stories(), '--method', 'gptq', '--bits', '4', '--group-size', '0', '--sparsity', '2:4', '--prune-method', 'sparsegpt', '--ignore', '*.down_proj', '--calib', calib(), '--nsamples', '16', '--seq-len', '128', '--out', out, '--json'],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const result = JSON.parse(stdout.trim().split('\n').pop()!);
    assertSchema('quantize', result);
    assert.equal(result.quantized_linears, 30);
    const report = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8'));
    assert.ok(report.linears.every((l: { method: string; quantizer: string }) => l.method === 'sparsegpt' && l.quantizer === 'sparsegpt'));
    for (const [name, w] of await linearWeights(out)) {
      if (name.endsWith('down_proj.weight')) continue;
      for (let g = 0; g < w.length; g += 4) assert.ok([w[g], w[g + 1], w[g + 2], w[g + 3]].filter((v) => v !== 0).length <= 2, `${name} group ${g}`);
    }
    // Sequential (prune, then round to nearest) is the same recipe with rtn: the report says who quantized.
    const sequential = outDir('sequential');
    execFileSync(process.execPath, [CLI, 'quantize', '--model', stories(), '--method', 'rtn', '--bits', '4', '--group-size', '0', '--sparsity', '2:4', '--prune-method', 'sparsegpt', '--ignore', '*.down_proj', '--calib', calib(), '--nsamples', '16', '--seq-len', '128', '--out', sequential], { stdio: 'ignore' });
    const sequentialReport = JSON.parse(readFileSync(join(sequential, 'report.json'), 'utf8'));
    assert.ok(sequentialReport.linears.every((l: { quantizer: string }) => l.quantizer === 'rtn after sparsegpt'));
  });

  it('resumes an interrupted compressed-tensors run to the same bytes as an uninterrupted one', async () => {
    const whole = storiesOptions('gptq', { bits: 4, groupSize: 0 });
    await quantize(whole);
    const interrupted = storiesOptions('gptq', { bits: 4, groupSize: 0 });
    const controller = new AbortController();
    await assert.rejects(quantize({ ...interrupted, signal: controller.signal, onProgress: (p) => (p.block === 2 && p.stage === 'calibrating' ? controller.abort() : undefined) }), AbortError);
    assert.ok(!existsSync(interrupted.out));
    const report = await quantize({ ...interrupted, resume: true });
    assert.equal(report.totals.resumedAtBlock, 2);
    for (const file of readdirSync(whole.out).filter((f) => f.endsWith('.safetensors'))) {
      assert.deepEqual(readFileSync(join(interrupted.out, file)), readFileSync(join(whole.out, file)), file);
    }
  });

  it('refuses bad inputs with errors that name the option, layer or file, and leaves nothing at --out', async () => {
    const cli = (args: string[]) => spawnSync(process.execPath, [CLI, 'quantize', ...args], { encoding: 'utf8' });
    const base = ['--model', stories(), '--calib', calib(), '--nsamples', '4', '--seq-len', '64'];
    const cases: [string[], RegExp][] = [
      [['--method', 'rtn', '--bits', '5'], /quantize options\.quantize\.bits: expected one of 2, 3, 4, 8, got number 5/],
      [['--method', 'rtn', '--bits', '4', '--group-size=-1'], /--group-size must be an integer >= 0, got '-1'/],
      [['--method', 'rtn', '--bits', '4', '--group-size', '32'], /model\.layers\.0\.mlp\.down_proj: its 172 inputs do not split into groups of 32, which vLLM requires; choose a --group-size that divides 172/],
      [['--method', 'rtn', '--bits', '3', '--group-size', '0', '--ignore', '*.down_proj'], /vLLM loads 4- and 8-bit pack-quantized weights only, not 3-bit; use --format dense/],
      [['--method', 'rtn', '--bits', '4', '--format', 'gguf'], /--format must be one of dense, compressed-tensors, packed, bsr-int4, got 'gguf'/],
      [['--method', 'rtn', '--bits', '4', '--act-order'], /activation order needs a method that quantizes with the Hessian/],
      [['--method', 'awq', '--bits', '4'], /--method must be one of rtn, gptq, gwq, hwpq, gqsa, got 'awq'/],
      [['--method', 'gptq', '--bits', '4', '--sparsity', '0.5', '--prune-method', 'wanda'], /GPTQ prunes jointly only with sparsegpt/],
      [['--method', 'rtn', '--bits', '4', '--group-size', '0', '--ignore', '*.down_proj', '--ignore', 'model.layers.0.self_attn.q_proj'], /q_proj, model\.layers\.0\.self_attn\.k_proj, model\.layers\.0\.self_attn\.v_proj: vLLM runs these as one layer/],
    ];
    for (const [args, message] of cases) {
      const out = outDir('bad');
      const result = cli([...base, ...args, '--out', out]);
      assert.equal(result.status, 1, `${args.join(' ')}: ${result.stderr}`);
      assert.match(result.stderr, message, args.join(' '));
      assert.ok(!existsSync(out) && !existsSync(DenseFolder.stagingPath(out)), `${args.join(' ')}: nothing at --out`);
    }
    const gptqWithoutData = spawnSync(process.execPath, [CLI, 'quantize', '--model', stories(), '--method', 'gptq', '--bits', '8', '--group-size', '0', '--out', outDir('nodata')], { encoding: 'utf8' });
    assert.match(gptqWithoutData.stderr, /gptq needs calibration data: pass --calib FILE/);
    // A quantized model is not quantized again.
    const first = storiesOptions('rtn', { bits: 8, groupSize: 0 });
    await quantize(first);
    await assert.rejects(quantize({ ...storiesOptions('rtn', { bits: 4, groupSize: 0 }), model: first.out }), (e: Error) => e instanceof UnsupportedFormatError && /already quantized/.test(e.message));
    assert.throws(() => parseRecipe({ method: 'rtn', sparsity: 0.5, quantize: { bits: 4 } }), (e: Error) => e instanceof InvalidArgumentError && /rtn does not prune/.test(e.message));
    assert.throws(() => parseRecipe({ method: 'sparsegpt', quantize: { bits: 4 } }), /sparsity: required by sparsegpt/);
    assert.throws(() => parseRecipe({ method: 'gptq', quantize: { bits: 4, groupSize: 128, mode: 'x' } }), /quantize: unknown key 'mode'/);
  });
});
