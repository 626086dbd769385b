// HWPQ: the EWMA threshold corrected to the exact count (per row: the k lowest ½·w²·H_jj, the same mask
// as a sort; over the matrix; 2:4), joint INT and FP8 quantization of the survivors, the FP8 output as
// compressed-tensors float-quantized (decoding to the dense output bit for bit; read by Python where there
// is one), and the refusals. The E4M3 codec itself is tested in fp8.test.ts.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AbortError, Checkpoint, DecoderModel, evaluatePerplexity, getMethod, InvalidArgumentError, InvalidFileError, parseRecipe, quantize, SafetensorsFile, Tensor, UnsupportedFormatError } from '../lib/index.js';
import { decodeCtFloatLinear } from '../lib/io/compressed-tensors.js';
import { normalQuantile } from '../lib/compress/hwpq.js';
import { decodeE4M3 } from '../lib/tensor/fp8.js';
import { assertSchema, CLI, fixturePath, float8Python, randomF32, rng, sharedDir } from './helpers.js';
import { rtnRef } from './quant-reference.js';

const work = mkdtempSync(join(tmpdir(), 'sparq-hwpq-'));
after(() => rmSync(work, { recursive: true, force: true }));

/** Every finite non-negative E4M3 ('fn') value, by code: exponent bias 7, 3 mantissa bits, S.1111.111 is NaN. */
function e4m3Values(): number[] {
  const values: number[] = [];
  for (let code = 0; code < 127; ++code) {
    const e = code >> 3;
    const m = code & 7;
    values.push(e === 0 ? (m / 8) * 2 ** -6 : (1 + m / 8) * 2 ** (e - 7));
  }
  return values;
}

/** Nearest E4M3 value by search, ties to the even code; beyond 448 saturates. */
function fp8Ref(x: number): number {
  const values = e4m3Values();
  const a = Math.min(Math.abs(x), 448);
  let best = 0;
  for (let code = 1; code < values.length; ++code) {
    const d = Math.abs(values[code] - a) - Math.abs(values[best] - a);
    if (d < 0 || (d === 0 && code % 2 === 0)) best = code;
  }
  return x < 0 ? -values[best] : values[best];
}

/** One weight of a model folder as the model reads it (f32). */
async function ct0(dir: string, name: string): Promise<Tensor> {
  const model = await DecoderModel.open(dir);
  try {
    return await model.read(name);
  } finally {
    await model.close();
  }
}

/** Per row, the positions of the k lowest scores (ties to the lower index), by a sort. */
function lowestRef(scores: ArrayLike<number>, begin: number, end: number, k: number): Set<number> {
  return new Set(
    Array.from({ length: end - begin }, (_, i) => begin + i)
      .sort((a, b) => scores[a] - scores[b] || a - b)
      .slice(0, k),
  );
}

describe('hwpq', () => {
  const hwpq = getMethod('hwpq');

  it('computes the standard normal quantile of the threshold', () => {
    assert.ok(Math.abs(normalQuantile(0.975) - 1.959963985) < 1e-8 && Math.abs(normalQuantile(0.01) + 2.326347874) < 1e-8);
  });

  it('prunes exactly round(p·n) per row — the lowest ½·w²·H_jj, as a sort would — and rounds the survivors to the grid', async () => {
    const random = rng(52);
    for (const [rows, cols, sparsity] of [
      [17, 64, 0.5],
      [9, 37, 0.7],
      [5, 33, 0.1],
    ] as const) {
      const w = randomF32(rows * cols, random);
      const squares = Float32Array.from({ length: cols }, () => 0.1 + 3 * random() ** 2);
      const scheme = { bits: 4 as const, groupSize: 16, symmetric: true };
      const result = await hwpq.compress!({ name: 'l', weight: Tensor.fromTypedArray(w.slice(), [rows, cols]), pattern: { kind: 'unstructured', sparsity }, quantization: scheme, stats: { tokens: 10, inputSquares: Tensor.fromTypedArray(squares) }, options: hwpq.parseOptions({}, 'o') });
      const scores = Array.from(w, (v, i) => 0.5 * v * v * ((2 / 10) * squares[i % cols]));
      const keep = result.mask!.data as Uint8Array;
      const masked = w.slice();
      for (let r = 0; r < rows; ++r) {
        const k = Math.round(sparsity * cols);
        const pruned = lowestRef(scores, r * cols, (r + 1) * cols, k);
        for (let c = 0; c < cols; ++c) {
          assert.equal(keep[r * cols + c], pruned.has(r * cols + c) ? 0 : 1, `${rows}x${cols} p=${sparsity}: (${r}, ${c})`);
          if (pruned.has(r * cols + c)) masked[r * cols + c] = 0;
        }
      }
      const rtn = rtnRef(masked, rows, cols, { ...scheme, scaleDType: 'f32' });
      assert.deepEqual(result.weight.data, rtn.out, 'the survivors are rounded to nearest; pruned weights stay 0');
      assert.ok(typeof result.details!.thresholdMiss === 'number' && (result.details!.thresholdMiss as number) < 0.5);
    }
  });

  it('meets the exact count over the matrix, prunes 2:4, and quantizes to FP8 per channel', async () => {
    const random = rng(53);
    const [rows, cols] = [8, 48];
    const w = randomF32(rows * cols, random);
    const stats = { tokens: 4, inputSquares: Tensor.fromTypedArray(Float32Array.from({ length: cols }, () => 0.5 + random())) };
    const matrix = await hwpq.compress!({ name: 'l', weight: Tensor.fromTypedArray(w.slice(), [rows, cols]), pattern: { kind: 'unstructured', sparsity: 0.6 }, stats, options: hwpq.parseOptions({ compare: 'matrix' }, 'o') });
    const kept = (matrix.mask!.data as Uint8Array).reduce((s, v) => s + v, 0);
    assert.equal(kept, rows * cols - Math.round(0.6 * rows * cols));
    const nm = await hwpq.compress!({ name: 'l', weight: Tensor.fromTypedArray(w.slice(), [rows, cols]), pattern: { kind: 'nm', n: 2, m: 4 }, stats, options: hwpq.parseOptions({ format: 'fp8' }, 'o'), quantization: { bits: 8, groupSize: 0, symmetric: true } });
    const keep = nm.mask!.data as Uint8Array;
    for (let g = 0; g < rows * cols; g += 4) assert.equal(keep[g] + keep[g + 1] + keep[g + 2] + keep[g + 3], 2, `group ${g}`);
    const scales = nm.floatQuantized!.scales.data as Float32Array;
    const codes = nm.floatQuantized!.codes.data as Uint8Array;
    const out = nm.weight.data as Float32Array;
    for (let r = 0; r < rows; ++r) {
      let max = 0;
      for (let c = 0; c < cols; ++c) if (keep[r * cols + c]) max = Math.max(max, Math.abs(w[r * cols + c]));
      assert.equal(scales[r], Math.fround(max / 448), `row ${r} scale`);
      for (let c = 0; c < cols; ++c) {
        const expected = keep[r * cols + c] ? Math.fround(fp8Ref(w[r * cols + c] / scales[r]) * scales[r]) : 0;
        assert.equal(out[r * cols + c], expected, `(${r}, ${c})`);
        assert.equal(Math.fround(decodeE4M3(codes[r * cols + c]) * scales[r]), expected, `(${r}, ${c}): the code stands for the weight`);
        if (!keep[r * cols + c]) assert.equal(codes[r * cols + c], 0, `(${r}, ${c}): a pruned weight is code 0`);
      }
    }
  });

  it('writes FP8 to the CLI\'s default compressed-tensors; refuses bad options, FP8 with an integer grid, and FP8 where the format stores int codes (packed, bsr-int4)', async () => {
    assert.throws(() => hwpq.parseOptions({ beta: 1 }, 'stage 1 options'), (e: Error) => e instanceof InvalidArgumentError && /stage 1 options\.beta/.test(e.message));
    assert.throws(() => hwpq.parseOptions({ format: 'fp4' }, 'o'), InvalidArgumentError);
    await assert.rejects(hwpq.compress!({ name: 'layer.x', weight: Tensor.zeros([2, 8]), quantization: { bits: 4, groupSize: 8, symmetric: true }, options: hwpq.parseOptions({ format: 'fp8' }, 'o') }), (e: Error) => e instanceof InvalidArgumentError && /layer\.x/.test(e.message));
    const recipe = parseRecipe({ method: 'hwpq', quantize: { bits: 8, groupSize: 0 }, options: { format: 'fp8' } });
    const windows = [Int32Array.from({ length: 16 }, (_, i) => i)];
    await assert.rejects(quantize({ model: fixturePath('tiny-llama'), out: join(work, 'packed'), recipe, format: 'packed', calibrationWindows: windows }), (e: Error) => e instanceof InvalidArgumentError && /fp8-e4m3.*--format packed stores int4 codes/.test(e.message));
    // The CLI's default format for hwpq is compressed-tensors, as for the other quantizers: FP8 goes there.
    const cliOut = join(work, 'cli-default');
    const ok = spawnSync(process.execPath, [CLI, 'quantize', '--model', fixturePath('stories260K'), '--method', 'hwpq', '--bits', 'fp8', '--calib', join(sharedDir(), 'data', 'tinystories_calib.txt'), '--nsamples', '4', '--seq-len', '32', '--out', cliOut, '--json'], { encoding: 'utf8' });
    assert.equal(ok.status, 0, ok.stderr);
    const line = JSON.parse(ok.stdout.trim().split('\n').pop()!);
    assertSchema('quantize', line);
    assert.equal(line.format, 'compressed-tensors');
    assert.equal(JSON.parse(readFileSync(join(cliOut, 'config.json'), 'utf8')).quantization_config.format, 'float-quantized');
    for (const format of ['packed', 'bsr-int4']) {
      const run = spawnSync(process.execPath, [CLI, 'quantize', '--model', fixturePath('stories260K'), '--method', 'hwpq', '--bits', 'fp8', '--calib', join(sharedDir(), 'data', 'tinystories_calib.txt'), '--nsamples', '4', '--seq-len', '32', '--format', format, '--out', join(work, `cli-${format}`)], { encoding: 'utf8' });
      assert.equal(run.status, 1, run.stderr);
      assert.match(run.stderr, new RegExp(`--format ${format} stores int4 codes`));
    }
  });

  it('rounds an idle expert (compressed by the fallback) to the stage\'s FP8 too, in both formats alike', async () => {
    // With these two tokens, no token of tiny-mixtral's layer 0 is routed to expert 0 (as in framework.test.ts).
    const recipe = parseRecipe({ method: 'hwpq', sparsity: 0.5, quantize: { bits: 8, groupSize: 0 }, options: { format: 'fp8' }, targets: ['*.experts.*'] });
    const run = (format: 'dense' | 'compressed-tensors') => quantize({ model: fixturePath('tiny-mixtral'), out: join(work, `moe-${format}`), recipe, format, calibrationWindows: [Int32Array.of(1, 2)] });
    const report = await run('compressed-tensors');
    await run('dense');
    const idle = report.linears.filter((l) => l.details?.fallback);
    assert.ok(idle.length >= 3, 'expert 0 of layer 0 is idle');
    assert.ok(idle.every((l) => l.quantizer === 'fp8 after magnitude' && l.floatFormat === 'fp8-e4m3'), JSON.stringify(idle.map((l) => l.quantizer)));
    const ct = await DecoderModel.open(join(work, 'moe-compressed-tensors'));
    const dense = await DecoderModel.open(join(work, 'moe-dense'));
    try {
      assert.equal(ct.quantized!.size, report.linears.length);
      for (const l of report.linears) assert.deepEqual(Buffer.from((await ct.read(l.name + '.weight')).data.buffer as ArrayBuffer), Buffer.from((await dense.read(l.name + '.weight')).data.buffer as ArrayBuffer), l.name);
    } finally {
      await ct.close();
      await dense.close();
    }
  });

  it('writes FP8 as compressed-tensors float-quantized: F8_E4M3 codes and [out, 1] scales that decode to the dense output bit for bit', async () => {
    const recipe = parseRecipe({ method: 'hwpq', sparsity: 0.5, quantize: { bits: 8, groupSize: 0 }, options: { format: 'fp8' } });
    const random = rng(54);
    const windows = Array.from({ length: 4 }, () => Int32Array.from({ length: 32 }, () => Math.floor(random() * 128)));
    const ctDir = join(work, 'fp8-ct');
    const denseDir = join(work, 'fp8-dense');
    const ctReport = await quantize({ model: fixturePath('tiny-llama'), out: ctDir, recipe, format: 'compressed-tensors', calibrationWindows: windows });
    await quantize({ model: fixturePath('tiny-llama'), out: denseDir, recipe, format: 'dense', calibrationWindows: windows });
    assert.ok(ctReport.linears.every((l) => l.floatFormat === 'fp8-e4m3'));
    // Interrupted after the first block and resumed: the same bytes (the FP8 slots are planned up front like the others).
    const resumedDir = join(work, 'fp8-resumed');
    const controller = new AbortController();
    const options = { model: fixturePath('tiny-llama'), out: resumedDir, recipe, format: 'compressed-tensors' as const, calibrationWindows: windows };
    await assert.rejects(quantize({ ...options, signal: controller.signal, onProgress: (p) => (p.block === 1 && p.stage === 'calibrating' ? controller.abort() : undefined) }), AbortError);
    assert.equal((await quantize({ ...options, resume: true })).totals.resumedAtBlock, 1);
    assert.deepEqual(readFileSync(join(resumedDir, 'model.safetensors')), readFileSync(join(ctDir, 'model.safetensors')));

    const config = JSON.parse(readFileSync(join(ctDir, 'config.json'), 'utf8')).quantization_config;
    assert.equal(config.quant_method, 'compressed-tensors');
    assert.equal(config.format, 'float-quantized');
    assert.equal(config.quantization_status, 'compressed');
    assert.deepEqual(config.ignore, ['lm_head']);
    const group = config.config_groups.group_0;
    assert.deepEqual(Object.keys(config.config_groups), ['group_0']);
    assert.equal(group.format, 'float-quantized');
    assert.deepEqual(group.targets, ['Linear']);
    assert.equal(group.input_activations, null);
    const { num_bits, type, strategy, symmetric, dynamic, group_size, actorder } = group.weights;
    assert.deepEqual({ num_bits, type, strategy, symmetric, dynamic, group_size, actorder }, { num_bits: 8, type: 'float', strategy: 'channel', symmetric: true, dynamic: false, group_size: null, actorder: null });

    const stored = await SafetensorsFile.open(join(ctDir, 'model.safetensors'));
    const dense = await Checkpoint.open(denseDir);
    const fp8Weights: string[] = [];
    try {
      const bytes = readFileSync(stored.path);
      for (const name of stored.names().filter((n) => n.endsWith('.weight_scale'))) {
        const base = name.slice(0, -'_scale'.length);
        fp8Weights.push(base);
        const w = stored.info(base);
        const s = stored.info(name);
        assert.equal(w.dtype, 'F8_E4M3', base);
        assert.equal(s.dtype, 'BF16', `${name}: the model's dtype`);
        const [rows, cols] = w.shape;
        assert.deepEqual(s.shape, [rows, 1], name);
        assert.ok(!stored.tensors.has(`${base}_shape`) && !stored.tensors.has(`${base}_packed`));
        const codes = bytes.subarray(w.offset, w.offset + w.byteLength);
        const scales = (await stored.read(name, { dtype: 'f32' })).data as Float32Array;
        // compressed-tensors' decoding, fp8.to(bf16)·s in bf16: the f32 product of two short significands is exact, then one bf16 rounding.
        const products = Float32Array.from(codes, (code, i) => Math.fround(decodeE4M3(code) * scales[Math.floor(i / cols)]));
        const decoded = Tensor.fromTypedArray(products, [rows, cols]).to('bf16').to('f32').data as Float32Array;
        const reference = (await dense.read(base, { dtype: 'f32' })).data as Float32Array;
        assert.deepEqual(Buffer.from(decoded.buffer), Buffer.from(reference.buffer), `${base}: codes·scale is the dense output`);
        let zeros = 0;
        for (let i = 0; i < codes.length; ++i) {
          if (reference[i] === 0) assert.equal(codes[i], 0, `${base}[${i}]: a zero is code 0`);
          zeros += codes[i] === 0 ? 1 : 0;
        }
        assert.ok(zeros >= Math.round(0.5 * rows * cols), `${base}: half pruned`);
      }
    } finally {
      await stored.close();
      await dense.close();
    }
    assert.equal(fp8Weights.length, 14, 'every linear of the 2 blocks but lm_head is FP8');

    // sparq reads the folder back as the same model: the same weights, the same perplexity.
    const ct = await DecoderModel.open(ctDir);
    const denseModel = await DecoderModel.open(denseDir);
    try {
      for (const base of fp8Weights) assert.deepEqual(Buffer.from((await ct.read(base)).data.buffer as ArrayBuffer), Buffer.from((await denseModel.read(base)).data.buffer as ArrayBuffer), base);
      const tokens = Int32Array.from({ length: 256 }, () => Math.floor(random() * 128));
      assert.equal((await evaluatePerplexity(ct, tokens, { seqLen: 64 })).perplexity, (await evaluatePerplexity(denseModel, tokens, { seqLen: 64 })).perplexity);
    } finally {
      await ct.close();
      await denseModel.close();
    }
    const inspected = JSON.parse(execFileSync(process.execPath, [CLI, 'inspect', ctDir, '--json'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }));
    assertSchema('inspect', inspected);
    assert.ok(inspected.linears.filter((l: { format: string }) => l.format === 'float-quantized').length === 14 && inspected.dtypes.F8_E4M3 > 0);

    // The same files under compressed-tensors' other name for them read alike; a config that disagrees with them is refused.
    const edited = join(work, 'fp8-edited');
    cpSync(ctDir, edited, { recursive: true });
    const full = JSON.parse(readFileSync(join(ctDir, 'config.json'), 'utf8'));
    const withConfig = (edit: (q: Record<string, any>) => void) => {
      const copy = structuredClone(full);
      edit(copy.quantization_config);
      writeFileSync(join(edited, 'config.json'), JSON.stringify(copy));
    };
    withConfig((q) => {
      q.format = 'naive-quantized';
      q.config_groups.group_0.format = 'naive-quantized';
    });
    const naive = await DecoderModel.open(edited);
    try {
      assert.deepEqual(Buffer.from((await naive.read(fp8Weights[0])).data.buffer as ArrayBuffer), Buffer.from((await ct0(ctDir, fp8Weights[0])).data.buffer as ArrayBuffer));
    } finally {
      await naive.close();
    }
    withConfig((q) => {
      q.config_groups.group_0.weights.type = 'int';
      q.config_groups.group_0.format = 'pack-quantized';
      q.format = 'pack-quantized';
    });
    await assert.rejects(DecoderModel.open(edited), (e: Error) => e instanceof InvalidFileError && /weight_scale \(float-quantized\), but its group group_0 quantizes to int/.test(e.message));
    withConfig((q) => {
      q.config_groups.group_0.weights.num_bits = 4;
    });
    await assert.rejects(DecoderModel.open(edited), (e: Error) => e instanceof UnsupportedFormatError && /group_0\.weights: float weights are read as FP8 E4M3 with one scale per output channel/.test(e.message));
    withConfig((q) => {
      q.config_groups.group_0.weights.type = 'int';
    });
    await assert.rejects(DecoderModel.open(edited), (e: Error) => e instanceof UnsupportedFormatError && /weights.type "int" stored as "float-quantized"/.test(e.message));
    assert.throws(() => decodeCtFloatLinear(Tensor.zeros([4, 8]), Tensor.zeros([4, 2]), 'F32', 'm: l'), (e: Error) => e instanceof InvalidFileError && /m: l\.weight_scale is F32 \[4, 2\]; .* need F32\/F16\/BF16 \[4, 1\]/.test(e.message));

    // Python's view of the file: its own header parse, and torch's float8_e4m3fn decoding where there is one.
    const python = float8Python() ?? ['/usr/bin/python3', 'python3'].find((p) => spawnSync(p, ['-c', 'pass']).status === 0);
    if (!python) {
      console.log('      (Python check skipped: no python3 here)');
      return;
    }
    const script = `
import json, struct, sys
data = open(sys.argv[1], 'rb').read()
n = struct.unpack('<Q', data[:8])[0]
header = json.loads(data[8:8 + n])
start = 8 + n
sizes = {'F8_E4M3': 1, 'BF16': 2, 'F16': 2, 'F32': 4}
result = {'dtypes': {}, 'torch': False}
for name, e in header.items():
    if name == '__metadata__':
        continue
    count = 1
    for d in e['shape']:
        count *= d
    begin, end = e['data_offsets']
    assert end - begin == count * sizes.get(e['dtype'], 0) or e['dtype'] not in sizes, name
    result['dtypes'][name] = e['dtype']
try:
    import torch
    f8 = torch.float8_e4m3fn
except (ImportError, AttributeError):
    f8 = None
if f8 is not None:
    kinds = {'F8_E4M3': f8, 'BF16': torch.bfloat16, 'F16': torch.float16, 'F32': torch.float32}
    def tensor(name):
        e = header[name]
        begin, end = e['data_offsets']
        return torch.frombuffer(bytearray(data[start + begin:start + end]), dtype=kinds[e['dtype']]).reshape(e['shape'])
    chunks = []
    for name in json.loads(sys.argv[2]):
        w, s = tensor(name), tensor(name + '_scale')
        assert w.dtype == f8, name
        chunks.append((w.to(s.dtype) * s).float().numpy().tobytes())
    open(sys.argv[3], 'wb').write(b''.join(chunks))
    result['torch'] = True
print(json.dumps(result))
`;
    const decodedPath = join(work, 'torch-decoded.f32');
    const run = spawnSync(python, ['-c', script, join(ctDir, 'model.safetensors'), JSON.stringify(fp8Weights), decodedPath], { encoding: 'utf8' });
    assert.equal(run.status, 0, run.stderr);
    const seen = JSON.parse(run.stdout);
    for (const base of fp8Weights) assert.equal(seen.dtypes[base], 'F8_E4M3', `${base} as Python parses the header`);
    if (!seen.torch) {
      console.log(`      (torch decoding skipped: ${python} has no torch.float8_e4m3fn)`);
      return;
    }
    const theirs = new Float32Array(readFileSync(decodedPath).buffer.slice(0));
    const denseAgain = await Checkpoint.open(denseDir);
    try {
      let offset = 0;
      for (const base of fp8Weights) {
        const reference = (await denseAgain.read(base, { dtype: 'f32' })).data as Float32Array;
        assert.deepEqual(Buffer.from(theirs.buffer, offset * 4, reference.length * 4), Buffer.from(reference.buffer), `${base}: torch decodes the dense output`);
        offset += reference.length;
      }
    } finally {
      await denseAgain.close();
    }
  });
});
