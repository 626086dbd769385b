// sparq export and packed folders: every format round-trips bit for bit (the packed weight decodes to
// exactly the source's dense-zeros or dequantized weight, other tensors copied unchanged); generating from
// a packed folder chooses the same tokens as from its source (logits within float tolerance); weights that
// do not fit a format, and corrupt packed folders, are refused with typed errors naming the tensor; an
// interrupted export leaves nothing behind.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { promisify } from 'node:util';
import {
  AbortError,
  argmax,
  Checkpoint,
  CheckpointWriter,
  DecoderModel,
  exportPacked,
  GenerationSession,
  InvalidArgumentError,
  InvalidFileError,
  NonFiniteError,
  PackedCheckpoint,
  parseRecipe,
  prune,
  quantize,
  SafetensorsFile,
  ShapeMismatchError,
  Tensor,
  UnsupportedFormatError,
  unpackWeight,
  packedLinear,
  type ExportOptions,
  type ExportSummary,
  type WeightsMode,
} from '../lib/index.js';
import { assertClose, fixturePath } from './helpers.js';

const run = promisify(execFile);
const CLI = join(process.cwd(), '.out', 'lib', 'cli', 'main.js');

let root: string;
const dir = (name: string) => join(root, name);

async function goldenPrompt(name: string, length: number): Promise<Int32Array> {
  const file = await SafetensorsFile.open(join(fixturePath(name), 'golden.safetensors'));
  try {
    return ((await file.read('input_ids')).data as Int32Array).slice(0, length);
  } finally {
    await file.close();
  }
}

/** Greedy decoding (EOS ignored): the chosen tokens and the logits each was chosen from. */
async function greedy(model: string, weights: WeightsMode, prompt: Int32Array, steps: number) {
  const session = await GenerationSession.load(model, { weights });
  const tokens: number[] = [];
  const logits: Float32Array[] = [];
  let current = await session.prefill(prompt);
  for (let i = 0; i < steps; ++i) {
    tokens.push(argmax(current));
    logits.push(current);
    if (i < steps - 1) current = await session.append([tokens[i]]);
  }
  return { tokens, logits, formats: session.linearFormats() };
}

/**
 * The same tokens and logits from two storages of one model. Tolerance: the kernels sum the same products
 * in other orders (f32 accumulation, ~1e-6 of the logits' scale after a few layers); 1e-4 relative plus
 * 1e-5 absolute is far above that and far below a wrong weight.
 */
async function assertSameGeneration(reference: { dir: string; weights: WeightsMode }, packed: { dir: string; weights: WeightsMode }, fixture: string) {
  const prompt = await goldenPrompt(fixture, 6);
  const a = await greedy(reference.dir, reference.weights, prompt, 10);
  const b = await greedy(packed.dir, packed.weights, prompt, 10);
  assert.deepEqual(b.tokens, a.tokens, `${basename(packed.dir)} chose other tokens than ${basename(reference.dir)}`);
  a.logits.forEach((row, i) => assertClose(b.logits[i], row, { atol: 1e-5, rtol: 1e-4 }, `${basename(packed.dir)}: logits of step ${i}`));
  return { reference: a.formats, packed: b.formats };
}

/** The raw bytes of a tensor. */
const bytesOf = (t: Tensor) => Buffer.from(new Uint8Array((t.data as Uint8Array).buffer, (t.data as Uint8Array).byteOffset, t.byteLength));

/**
 * Checks an exported folder against its source: every packed layer decodes (unpackWeight) to exactly the
 * source's weight (as the source stores it; f32-decoded for a quantized source), every other tensor is
 * byte-identical. Returns the number of packed layers.
 */
async function assertRoundTrip(source: string, exported: string): Promise<number> {
  const from = await DecoderModel.open(source);
  const to = await DecoderModel.open(exported);
  try {
    assert.ok(to.checkpoint instanceof PackedCheckpoint);
    const packed = to.checkpoint as PackedCheckpoint;
    for (const [base] of packed.layers) {
      const decoded = await unpackWeight(await packed.readPacked(base));
      const quantized = from.quantized?.has(base);
      const expected = await from.checkpoint.read(`${base}.weight`, quantized ? { dtype: 'f32' } : {});
      assert.equal(decoded.dtype, expected.dtype, `${base}: dtype`);
      assert.ok(bytesOf(decoded).equals(bytesOf(expected)), `${exported}: ${base} does not decode to the source's weight bit for bit`);
    }
    for (const name of to.checkpoint.names()) {
      if (name.endsWith('.weight') && packed.layers.has(name.slice(0, -'.weight'.length))) continue;
      assert.ok(bytesOf(await to.checkpoint.read(name)).equals(bytesOf(await from.checkpoint.read(name))), `${name} was not copied unchanged`);
    }
    return packed.layers.size;
  } finally {
    await from.close();
    await to.close();
  }
}

const exportTo = (model: string, out: string, format: ExportOptions['format'], blockSize?: number) => exportPacked({ model: dir(model), out: dir(out), format, blockSize });

/** A copy of a folder with its tensors rewritten by `edit` (one model.safetensors) and its config by `editConfig`. */
async function tamper(source: string, out: string, edit: (name: string, t: Tensor) => Tensor, editConfig: (config: Record<string, any>) => void = () => {}): Promise<string> {
  const target = dir(out);
  mkdirSync(target);
  for (const file of readdirSync(dir(source))) {
    if (!file.endsWith('.safetensors') && file !== 'model.safetensors.index.json') copyFileSync(join(dir(source), file), join(target, file));
  }
  const config = JSON.parse(readFileSync(join(target, 'config.json'), 'utf8'));
  editConfig(config);
  writeFileSync(join(target, 'config.json'), JSON.stringify(config));
  const input = await Checkpoint.open(dir(source));
  try {
    const tensors = await Promise.all(input.names().map(async (name) => [name, edit(name, await input.read(name))] as const));
    const writer = await CheckpointWriter.create(target, tensors.map(([name, t]) => ({ name, dtype: t.dtype, shape: t.shape })));
    for (const [name, t] of tensors) await writer.write(name, t);
    await writer.close();
  } finally {
    await input.close();
  }
  return target;
}

const Q = 'model.layers.0.self_attn.q_proj';

/** source, output, format, block size, packed linears */
const CASES: [string, string, ExportOptions['format'], number | undefined, number][] = [
  ['stories-2of4', 'stories-24', '2:4', undefined, 35],
  ['stories-2of4', 'stories-bsr8', 'bsr', 8, 35],
  ['stories-2of4', 'stories-bsr16', 'bsr', undefined, 35],
  ['qwen2-2of4', 'qwen2-24', '2:4', undefined, 14],
  ['qwen2-2of4', 'qwen2-bsr32', 'bsr', 32, 14],
  ['stories-w4', 'stories-int4', 'int4', undefined, 30],
  ['stories-w4-asym', 'stories-int4-asym', 'int4', undefined, 30],
  ['stories-2of4-w4', 'stories-24int4', '2:4+int4', undefined, 30],
  ['stories-2of4-w4', 'stories-bsrint4', 'bsr-int4', 32, 30],
];
const summaries: Record<string, ExportSummary> = {};

describe('export: sparq packed folders', function () {
  this.timeout(600_000);

  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'sparq-export-'));
    const magnitude24 = parseRecipe({ method: 'magnitude', sparsity: '2:4' });
    await prune({ model: fixturePath('stories260K'), out: dir('stories-2of4'), recipe: magnitude24 });
    await prune({ model: fixturePath('tiny-qwen2'), out: dir('qwen2-2of4'), recipe: magnitude24 });
    // stories260K's down_proj (172 inputs) does not fill whole words of codes: quantization leaves it dense.
    const w4 = { bits: 4, groupSize: 32 };
    await quantize({ model: fixturePath('stories260K'), out: dir('stories-w4'), format: 'compressed-tensors', recipe: parseRecipe({ method: 'rtn', quantize: w4, ignore: ['*.down_proj'] }) });
    await quantize({
      model: fixturePath('stories260K'),
      out: dir('stories-2of4-w4'),
      format: 'compressed-tensors',
      recipe: parseRecipe({ method: 'magnitude', sparsity: '2:4', quantize: w4, ignore: ['*.down_proj'] }),
    });
    await quantize({ model: fixturePath('stories260K'), out: dir('stories-w4-asym'), format: 'compressed-tensors', recipe: parseRecipe({ method: 'rtn', quantize: { ...w4, symmetric: false }, ignore: ['*.down_proj'] }) });
    for (const [source, out, format, blockSize] of CASES) summaries[out] = await exportTo(source, out, format, blockSize);
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  it('round-trips every format bit for bit, packing every block linear and copying the rest', async () => {
    for (const [source, out, format, , layers] of CASES) {
      assert.equal(summaries[out].byFormat[format].linears, layers, `${out}: packed linears`);
      assert.equal(await assertRoundTrip(dir(source), dir(out)), layers, `${out}: sparq_format layers`);
      // The index's total_size is the tensors' bytes, as Hugging Face counts them (headers excluded).
      const index = JSON.parse(readFileSync(join(dir(out), 'model.safetensors.index.json'), 'utf8'));
      let tensorBytes = 0;
      for (const file of new Set(Object.values(index.weight_map) as string[])) {
        const shard = await SafetensorsFile.open(join(dir(out), file));
        for (const name of shard.names()) tensorBytes += shard.info(name).byteLength;
        await shard.close();
      }
      assert.equal(index.metadata.total_size, tensorBytes, `${out}: total_size`);
    }
    const sizes = Object.fromEntries(Object.entries(summaries).map(([out, s]) => [out, s.fileBytesAfter]));
    // 2:4 halves the values and adds 2 bits per kept value; the f16 qwen2 values stay f16.
    const qwen = JSON.parse(readFileSync(join(dir('qwen2-24'), 'config.json'), 'utf8'));
    assert.equal(qwen.sparq_format.layers[Q].dtype, 'f16');
    assert.ok(sizes['stories-24'] < 0.6 * sizes['stories-bsr16'] + 1e6);
    // int4 keeps compressed-tensors' tensors and quantization_config (Hugging Face and vLLM load it).
    const int4 = JSON.parse(readFileSync(join(dir('stories-int4'), 'config.json'), 'utf8'));
    assert.deepEqual(int4.quantization_config, JSON.parse(readFileSync(join(dir('stories-w4'), 'config.json'), 'utf8')).quantization_config);
    assert.deepEqual(int4.sparq_format.layers[Q], { format: 'int4', shape: [64, 64], group_size: 32, symmetric: true });
  });

  it('generates the same tokens from dense zeros and packed 2:4 / BSR (f32 and f16 values)', async () => {
    const stories = await assertSameGeneration({ dir: dir('stories-2of4'), weights: 'stored' }, { dir: dir('stories-24'), weights: 'stored' }, 'stories260K');
    assert.deepEqual(stories, { reference: { 'dense-f32': 36 }, packed: { '2:4': 35, 'dense-f32': 1 } });
    await assertSameGeneration({ dir: dir('stories-2of4'), weights: 'stored' }, { dir: dir('stories-bsr8'), weights: 'stored' }, 'stories260K');
    // f16: the dense-zeros folder runs in f16 (denseLinear), the 2:4 folder keeps f16 values.
    const qwen = await assertSameGeneration({ dir: dir('qwen2-2of4'), weights: 'stored' }, { dir: dir('qwen2-24'), weights: 'stored' }, 'tiny-qwen2');
    assert.deepEqual(qwen, { reference: { 'dense-f16': 14, 'dense-f32': 1 }, packed: { '2:4': 14, 'dense-f32': 1 } });
    await assertSameGeneration({ dir: dir('qwen2-2of4'), weights: 'f32' }, { dir: dir('qwen2-bsr32'), weights: 'stored' }, 'tiny-qwen2');
  });

  it('runs compressed-tensors W4 on the int4 kernel with the tokens of the decoded f32 weights, and 2:4+int4 / bsr-int4 alike', async () => {
    const ct = await assertSameGeneration({ dir: dir('stories-w4'), weights: 'f32' }, { dir: dir('stories-w4'), weights: 'stored' }, 'stories260K');
    assert.deepEqual(ct, { reference: { 'pack-quantized (decoded to dense-f32)': 30, 'dense-f32': 6 }, packed: { 'int4 (compressed-tensors)': 30, 'dense-f32': 6 } });
    await assertSameGeneration({ dir: dir('stories-w4-asym'), weights: 'f32' }, { dir: dir('stories-int4-asym'), weights: 'stored' }, 'stories260K');
    await assertSameGeneration({ dir: dir('stories-w4'), weights: 'f32' }, { dir: dir('stories-int4'), weights: 'stored' }, 'stories260K');
    const sparse = await assertSameGeneration({ dir: dir('stories-2of4-w4'), weights: 'f32' }, { dir: dir('stories-24int4'), weights: 'stored' }, 'stories260K');
    assert.deepEqual(sparse.packed, { '2:4+int4': 30, 'dense-f32': 6 });
    await assertSameGeneration({ dir: dir('stories-2of4-w4'), weights: 'f32' }, { dir: dir('stories-bsrint4'), weights: 'stored' }, 'stories260K');
  });

  it('packs MoE experts (routers stay dense) and runs them', async () => {
    const out = dir('mixtral-bsr');
    const summary = await exportPacked({ model: fixturePath('tiny-mixtral'), out, format: 'bsr', blockSize: 8 });
    // 2 layers × (q, k, v, o + 4 experts × w1, w2, w3).
    assert.equal(summary.byFormat.bsr.linears, 32);
    assert.equal(await assertRoundTrip(fixturePath('tiny-mixtral'), out), 32);
    const formats = await assertSameGeneration({ dir: fixturePath('tiny-mixtral'), weights: 'stored' }, { dir: out, weights: 'stored' }, 'tiny-mixtral');
    assert.deepEqual(formats.packed, { bsr: 32, 'dense-f32': 3 });
  });

  it('reads CSR outliers beside a packed weight and adds them to its output', async () => {
    // Three outliers in q_proj: (row 0, input 5) = 2, (row 0, input 60) = -1.5, (row 7, input 1) = 0.25.
    const rowPtr = Int32Array.from({ length: 65 }, (_, r) => (r === 0 ? 0 : r <= 7 ? 2 : 3));
    const cols = Int32Array.from([5, 60, 1]);
    const values = Tensor.fromTypedArray(Float32Array.from([2, -1.5, 0.25]), [3]).to('f16');
    const outDir = await tamper('stories-24', 'outliers', (_, t) => t, (c) => (c.sparq_format.layers[Q].outliers = true));
    // tamper writes one model.safetensors; rewrite it with the outlier tensors added.
    const input = await Checkpoint.open(outDir);
    const tensors = await Promise.all(input.names().map(async (name) => [name, await input.read(name)] as const));
    await input.close();
    const extra: [string, Tensor][] = [[`${Q}.weight_outlier_row_ptr`, Tensor.fromTypedArray(rowPtr)], [`${Q}.weight_outlier_cols`, Tensor.fromTypedArray(cols)], [`${Q}.weight_outlier_values`, values]];
    const all = [...tensors, ...extra];
    rmSync(join(outDir, 'model.safetensors'));
    const writer = await CheckpointWriter.create(outDir, all.map(([name, t]) => ({ name, dtype: t.dtype, shape: t.shape })));
    for (const [name, t] of all) await writer.write(name, t);
    await writer.close();

    const model = await DecoderModel.open(outDir);
    try {
      const w = await (model.checkpoint as PackedCheckpoint).readPacked(Q);
      assert.equal(w.outliers?.format, 'bsr');
      const x = Tensor.fromTypedArray(Float32Array.from({ length: 2 * 64 }, (_, i) => Math.sin(i)), [2, 64]);
      const y = packedLinear(x, w).data as Float32Array;
      const base = packedLinear(x, { ...w, outliers: undefined }).data as Float32Array;
      const xs = x.data as Float32Array;
      const expected = Float32Array.from(base);
      for (let t = 0; t < 2; ++t) {
        expected[t * 64 + 0] += 2 * xs[t * 64 + 5] - 1.5 * xs[t * 64 + 60];
        expected[t * 64 + 7] += 0.25 * xs[t * 64 + 1];
      }
      // Tolerance: the outliers are added to an f32 accumulator in another order; 1e-6 relative covers it.
      assertClose(y, expected, { atol: 1e-6, rtol: 1e-6 }, 'q_proj with outliers');
    } finally {
      await model.close();
    }
  });

  it('refuses weights that do not fit the format, naming the tensor', async () => {
    const refuses = (options: Omit<ExportOptions, 'out'>, type: Function, pattern: RegExp) =>
      assert.rejects(exportPacked({ ...options, out: dir('refused') }), (e: Error) => e instanceof type && pattern.test(e.message) && !existsSync(dir('refused')));
    await refuses({ model: fixturePath('stories260K'), format: '2:4' }, InvalidArgumentError, new RegExp(`${Q}\\.weight is not 2:4 sparse: .*row \\d+`));
    await refuses({ model: dir('stories-2of4'), format: 'int4' }, InvalidArgumentError, /is not quantized/);
    await refuses({ model: dir('stories-2of4-w4'), format: 'bsr-int4' }, InvalidArgumentError, new RegExp(`${Q}: its scales cover groups of 32 inputs; bsr-int4 needs .* block size 16`));
    await refuses({ model: dir('stories-w4'), format: '2:4+int4' }, InvalidArgumentError, new RegExp(`${Q} \\(its int4 codes\\) is not 2:4 sparse: .*row \\d+`));
    await refuses({ model: dir('stories-w4-asym'), format: '2:4+int4' }, InvalidArgumentError, new RegExp(`${Q}: asymmetric codes`));
    await refuses({ model: dir('stories-w4'), format: '2:4' }, InvalidArgumentError, new RegExp(`${Q} is quantized`));
    await refuses({ model: dir('stories-24'), format: 'bsr' }, UnsupportedFormatError, /already a sparq packed folder/);
    await refuses({ model: dir('stories-2of4'), format: 'ternary' as never }, UnsupportedFormatError, /not a packed format/);
  });

  it('refuses corrupt packed folders with typed errors naming the tensor', async () => {
    const load = (d: string) => GenerationSession.load(d);
    const nanScale = await tamper('stories-int4', 'bad-nan', (name, t) => {
      if (name === `${Q}.weight_scale`) (t.data as Float32Array)[3] = NaN;
      return t;
    });
    await assert.rejects(load(nanScale), (e: Error) => e instanceof NonFiniteError && e.message.includes(`${Q}.weight_scale`));
    const wrongShape = await tamper('stories-24', 'bad-shape', (name, t) => (name === `${Q}.weight_values` ? Tensor.zeros([63, t.shape[1]]) : t));
    await assert.rejects(load(wrongShape), (e: Error) => e instanceof ShapeMismatchError && e.message.includes(`${Q}.weight_values`));
    const wrongEntry = await tamper('stories-24', 'bad-entry', (_, t) => t, (c) => (c.sparq_format.layers[Q].shape = [64, 65]));
    await assert.rejects(load(wrongEntry), (e: Error) => e instanceof ShapeMismatchError && e.message.includes(Q) && /hidden_size/.test(e.message));
    const repeated = await tamper('stories-24', 'bad-meta', (name, t) => {
      if (name === `${Q}.weight_meta`) (t.data as Int32Array)[0] &= ~0b1111; // group 0 keeps positions 0 and 0
      return t;
    });
    await assert.rejects(load(repeated), (e: Error) => e instanceof InvalidFileError && e.message.includes(`${Q}.weight_meta`) && /row 0, group 0/.test(e.message));
    const column = await tamper('stories-bsr16', 'bad-column', (name, t) => {
      if (name === `${Q}.weight_block_cols`) (t.data as Int32Array)[0] = 9;
      return t;
    });
    await assert.rejects(load(column), (e: Error) => e instanceof InvalidFileError && e.message.includes(`${Q}.weight_row_ptr/weight_block_cols`) && /column 9/.test(e.message));
    const rowPtr = await tamper('stories-bsr16', 'bad-row-ptr', (name, t) => {
      if (name === `${Q}.weight_row_ptr`) (t.data as Int32Array)[5] = 0;
      return t;
    });
    await assert.rejects(load(rowPtr), (e: Error) => e instanceof InvalidFileError && e.message.includes(`${Q}.weight_row_ptr`) && /decreases at row/.test(e.message));
    const unknown = await tamper('stories-24', 'bad-format', (_, t) => t, (c) => (c.sparq_format.layers[Q].format = 'ternary'));
    await assert.rejects(load(unknown), (e: Error) => e instanceof UnsupportedFormatError && e.message.includes(Q) && /ternary/.test(e.message));
  });

  it('an interrupted export leaves no output folder and no staging folder', async () => {
    const controller = new AbortController();
    const out = dir('interrupted');
    await assert.rejects(
      exportPacked({ model: dir('stories-2of4'), out, format: '2:4', signal: controller.signal, onProgress: (p) => (p.step === 9 ? controller.abort() : undefined) }),
      AbortError,
    );
    assert.ok(!existsSync(out));
    assert.deepEqual(readdirSync(root).filter((f) => f.includes('interrupted')), []);
  });

  it('sparq export --json and sparq generate --json report the formats', async () => {
    const { stdout } = await run('node', [CLI, 'export', '--model', dir('stories-2of4'), '--format', 'bsr', '--block-size', '32', '--out', dir('cli-bsr'), '--json']);
    const summary = JSON.parse(stdout);
    assert.equal(summary.byFormat.bsr.linears, 35);
    assert.equal(summary.blockSize, 32);
    const generated = JSON.parse((await run('node', [CLI, 'generate', '--model', dir('cli-bsr'), '--prompt', 'Once upon a time', '--max-new-tokens', '4', '--json'])).stdout);
    assert.deepEqual(generated.linearFormats, { bsr: 35, 'dense-f32': 1 });
    assert.equal(generated.weights, 'stored');
  });
});
