// safetensors and checkpoint folders: reading the shared fixtures (single and sharded), writing and
// reading back byte for byte, and a typed error for every malformed file, written here by hand.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  Checkpoint,
  CheckpointWriter,
  InvalidArgumentError,
  InvalidFileError,
  MAX_HEADER_BYTES,
  SafetensorsFile,
  SafetensorsWriter,
  StagingFolder,
  Tensor,
  UnsupportedFormatError,
} from '../lib/index.js';
import { decodeE4M3 } from '../lib/tensor/fp8.js';
import { sharedDir } from './helpers.js';

const fixtures = join(sharedDir(), 'fixtures');

/** A safetensors file from a raw header object (or string) and a data length. */
function rawFile(header: unknown, dataBytes: number, options: { claimedLength?: bigint } = {}): Buffer {
  const json = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header));
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(options.claimedLength ?? BigInt(json.length));
  return Buffer.concat([prefix, json, Buffer.alloc(dataBytes)]);
}

describe('safetensors', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sparq-st-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reads a fixture lazily, converting bf16 to f32 exactly', async () => {
    const file = await SafetensorsFile.open(join(fixtures, 'tiny-llama', 'model.safetensors'));
    try {
      const info = file.info('model.embed_tokens.weight');
      assert.equal(info.dtype, 'BF16');
      const raw = await file.read('model.embed_tokens.weight');
      assert.equal(raw.dtype, 'bf16');
      const f32 = await file.read('model.embed_tokens.weight', { dtype: 'f32' });
      const bits = new Uint32Array((f32.data as Float32Array).buffer);
      const source = raw.data as Uint16Array;
      for (let i = 0; i < source.length; ++i) assert.equal(bits[i], (source[i] << 16) >>> 0);
    } finally {
      await file.close();
    }
  });

  it('opens a sharded checkpoint through its index and round-trips it, single and sharded', async () => {
    const source = await Checkpoint.open(join(fixtures, 'tiny-qwen3'));
    const index = JSON.parse(await readFile(join(fixtures, 'tiny-qwen3', 'model.safetensors.index.json'), 'utf8'));
    assert.deepEqual(source.names().sort(), Object.keys(index.weight_map).sort());
    const names = source.names();
    const tensors = await Promise.all(names.map((n) => source.read(n)));
    const plan = names.map((name, i) => ({ name, dtype: tensors[i].dtype, shape: tensors[i].shape }));
    for (const maxShardBytes of [Infinity, 40_000]) {
      const out = join(dir, `out-${maxShardBytes}`);
      await mkdir(out);
      const writer = await CheckpointWriter.create(out, plan, { maxShardBytes, metadata: { format: 'pt' } });
      for (let i = 0; i < names.length; ++i) await writer.write(names[i], tensors[i]);
      await writer.close();
      const files = await readdir(out);
      if (maxShardBytes === Infinity) assert.deepEqual(files, ['model.safetensors']);
      else assert.ok(files.includes('model.safetensors.index.json') && files.length > 3, files.join(', '));
      const back = await Checkpoint.open(out);
      for (let i = 0; i < names.length; ++i) {
        const t = await back.read(names[i]);
        assert.deepEqual(t.shape, tensors[i].shape);
        assert.deepEqual(Buffer.from((t.data as Uint16Array).buffer), Buffer.from((tensors[i].data as Uint16Array).buffer), names[i]);
      }
      await back.close();
    }
    await source.close();
  });

  const malformed: [string, () => Buffer, RegExp][] = [
    ['a file shorter than the length prefix', () => Buffer.alloc(5), /fewer than the 8-byte header length/],
    ['a header length over the cap', () => rawFile({}, 0, { claimedLength: BigInt(MAX_HEADER_BYTES + 1) }), /limit/],
    ['a header length past the end of the file', () => rawFile({}, 0, { claimedLength: 1000n }), /truncated/],
    ['a header that is not JSON', () => rawFile('{"a": ', 0), /not valid UTF-8 JSON/],
    ['a header that is not an object', () => rawFile('[1, 2]', 0), /not a JSON object/],
    ['an unknown dtype', () => rawFile({ w: { dtype: 'F8', shape: [1], data_offsets: [0, 1] } }, 1), /tensor 'w': unknown dtype "F8"/],
    ['a shape with a fraction', () => rawFile({ w: { dtype: 'F32', shape: [1.5], data_offsets: [0, 4] } }, 4), /tensor 'w': shape/],
    ['offsets past the data (truncated file)', () => rawFile({ w: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, 8), /past the end of the data/],
    ['a byte length that does not match the shape', () => rawFile({ w: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, 8), /needs 12 bytes, data_offsets cover 8/],
    ['an F8_E4M3 byte length that does not match the shape', () => rawFile({ w: { dtype: 'F8_E4M3', shape: [2, 3], data_offsets: [0, 12] } }, 12), /F8_E4M3\[2, 3\] needs 6 bytes, data_offsets cover 12/],
    ['overlapping tensors', () => rawFile({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }, 12), /overlaps/],
    ['a hole between tensors', () => rawFile({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] }, b: { dtype: 'F32', shape: [1], data_offsets: [8, 12] } }, 12), /hole/],
    ['bytes after the last tensor', () => rawFile({ a: { dtype: 'U8', shape: [2], data_offsets: [0, 2] } }, 5), /3 bytes after the last tensor/],
    ['offsets that end before they begin', () => rawFile({ a: { dtype: 'U8', shape: [0], data_offsets: [2, 1] } }, 2), /end before they begin/],
    ['non-string metadata', () => rawFile({ __metadata__: { n: 1 } }, 0), /__metadata__.n is not a string/],
  ];
  for (const [what, make, message] of malformed) {
    it(`rejects ${what} with InvalidFileError naming the file`, async () => {
      const path = join(dir, 'bad.safetensors');
      await writeFile(path, make());
      await assert.rejects(SafetensorsFile.open(path), (e: unknown) => e instanceof InvalidFileError && e.message.startsWith(path) && message.test(e.message));
    });
  }

  it('refuses index shard names that escape the folder, missing shards and missing tensors', async () => {
    const model = join(dir, 'model');
    await mkdir(model);
    const good = rawFile({ w: { dtype: 'U8', shape: [1], data_offsets: [0, 1] } }, 1);
    await writeFile(join(model, 'a.safetensors'), good);
    await writeFile(join(dir, 'outside.safetensors'), good);
    const cases: [Record<string, string>, RegExp][] = [
      [{ w: '../outside.safetensors' }, /points outside the model folder/],
      [{ w: '/etc/passwd' }, /points outside the model folder/],
      [{ w: 'sub/../../outside.safetensors' }, /points outside the model folder/],
      [{ w: 'missing.safetensors' }, /does not exist/],
      [{ v: 'a.safetensors' }, /tensor 'v' is listed in a.safetensors but that shard does not contain it/],
    ];
    for (const [weightMap, message] of cases) {
      await writeFile(join(model, 'model.safetensors.index.json'), JSON.stringify({ weight_map: weightMap }));
      await assert.rejects(Checkpoint.open(model), (e: unknown) => e instanceof InvalidFileError && message.test(e.message), JSON.stringify(weightMap));
    }
  });

  it('refuses pickled PyTorch checkpoints with a message saying how to convert', async () => {
    await writeFile(join(dir, 'pytorch_model.bin'), Buffer.alloc(16));
    await assert.rejects(Checkpoint.open(dir), (e: unknown) => e instanceof UnsupportedFormatError && /safetensors/.test(e.message));
  });

  it('writes atomically: nothing at the target until close, nothing left after a failed write', async () => {
    const path = join(dir, 'w.safetensors');
    const plan = [
      { name: 'a', dtype: 'f32' as const, shape: [2] },
      { name: 'b', dtype: 'bf16' as const, shape: [1, 3] },
    ];
    const writer = await SafetensorsWriter.create(path, plan, { note: 'x' });
    await writer.write('a', Tensor.fromTypedArray(new Float32Array([1, 2])));
    assert.equal(existsSync(path), false);
    await assert.rejects(writer.write('a', Tensor.fromTypedArray(new Float32Array([1, 2]))), (e: unknown) => e instanceof InvalidArgumentError && /expected tensor 'b'/.test(e.message));
    assert.deepEqual(await readdir(dir), [], 'the partial file is removed');

    const ok = await SafetensorsWriter.create(path, plan);
    await ok.write('a', Tensor.fromTypedArray(new Float32Array([1, 2])));
    await assert.rejects(ok.write('b', Tensor.zeros([3], 'bf16')), /planned as bf16\[1, 3\]/);
    const good = await SafetensorsWriter.create(path, plan, { note: 'x' });
    await good.write('a', Tensor.fromTypedArray(new Float32Array([1, 2])));
    await good.write('b', Tensor.fromNumbers([0.5, -1, 3], [1, 3], 'bf16'));
    await good.close();
    const back = await SafetensorsFile.open(path);
    assert.deepEqual(back.metadata, { note: 'x' });
    assert.deepEqual([...((await back.read('b', { dtype: 'f32' })).data as Float32Array)], [0.5, -1, 3]);
    await back.close();
    assert.deepEqual(await readdir(dir), ['w.safetensors']);
  });

  it('writes F8_E4M3 tensors from u8 codes and reads them back as their f32 values, header and bytes intact', async () => {
    const path = join(dir, 'fp8.safetensors');
    const codes = Uint8Array.from({ length: 256 }, (_, i) => (i * 37) % 256); // every code once, NaN codes too
    const plan = [
      { name: 'w', dtype: 'u8' as const, storedAs: 'F8_E4M3' as const, shape: [16, 16] },
      { name: 's', dtype: 'f32' as const, shape: [16, 1] },
    ];
    const writer = await SafetensorsWriter.create(path, plan);
    await writer.write('w', Tensor.fromTypedArray(codes, [16, 16]));
    await writer.write('s', Tensor.fromTypedArray(new Float32Array(16).fill(0.5), [16, 1]));
    await writer.close();
    const bytes = await readFile(path);
    const headerLength = Number(bytes.readBigUInt64LE(0));
    const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString('utf8'));
    assert.deepEqual(header.w, { dtype: 'F8_E4M3', shape: [16, 16], data_offsets: [0, 256] });
    assert.deepEqual(new Uint8Array(bytes.subarray(8 + headerLength, 8 + headerLength + 256)), codes, 'the codes are the bytes');
    const back = await SafetensorsFile.open(path);
    try {
      assert.deepEqual(back.info('w'), { name: 'w', dtype: 'F8_E4M3', shape: [16, 16], offset: 8 + headerLength, byteLength: 256 });
      const values = await back.read('w');
      assert.equal(values.dtype, 'f32');
      assert.deepEqual(values.shape, [16, 16]);
      const data = values.data as Float32Array;
      for (let i = 0; i < 256; ++i) assert.ok(Object.is(data[i], decodeE4M3(codes[i])), `element ${i} (code 0x${codes[i].toString(16)})`);
      assert.deepEqual([...((await back.read('w', { dtype: 'bf16' })).to('f32').data as Float32Array)].slice(0, 4), [...data.slice(0, 4)], 'converts on to other dtypes (E4M3 values are exact in bf16)');
    } finally {
      await back.close();
    }
    await assert.rejects(SafetensorsWriter.create(join(dir, 'x.safetensors'), [{ name: 'w', dtype: 'f32', storedAs: 'F8_E4M3', shape: [2] }]), (e: unknown) => e instanceof InvalidArgumentError && /tensor 'w'.*needs dtype u8/.test(e.message));
  });

  it('stages a folder and renames it into place; refuses an existing target without overwrite', async () => {
    const target = join(dir, 'out');
    const staged = await StagingFolder.open({ target, inputs: [], resumable: false });
    await writeFile(join(staged.path, 'config.json'), '{}');
    assert.equal(existsSync(target), false);
    await staged.commit();
    assert.deepEqual(await readdir(target), ['config.json']);
    await assert.rejects(StagingFolder.open({ target, inputs: [], resumable: false }), (e: unknown) => e instanceof InvalidArgumentError && /already exists/.test(e.message));
    const again = await StagingFolder.open({ target, inputs: [], overwrite: true, resumable: false });
    await writeFile(join(again.path, 'other.json'), '{}');
    await again.commit();
    assert.deepEqual(await readdir(target), ['other.json']);
    const aborted = await StagingFolder.open({ target: join(dir, 'never'), inputs: [], resumable: false });
    await aborted.close();
    assert.deepEqual((await readdir(dir)).sort(), ['out']);
  });
});
