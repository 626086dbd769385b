// `sparq export`: a pruned dense folder (zeros in place) or a sparq-quantized compressed-tensors folder
// converted into a sparq packed folder (lib/io/packed-folder.ts describes it). Every block linear is
// packed in the chosen format; embeddings, norms, biases, lm_head and MoE routers are copied unchanged.
//
//   int4      compressed-tensors W4 (contiguous groups, no g_idx): its tensors kept as they are
//   2:4       a dense 2:4-sparse weight: the kept half of each group of 4 and 2-bit positions
//   2:4+int4  compressed-tensors W4, symmetric, whose codes are 2:4 sparse (joint prune + quantize)
//   bsr       a dense weight: its nonzero blocks of --block-size inputs
//   bsr-int4  compressed-tensors W4, symmetric, group size = block size: nonzero blocks of codes
//
// A weight that does not fit is refused naming it (and the first offending row for 2:4). The folder is
// written one block per shard — a block is packed, written and dropped before the next is read — in a
// staging folder renamed into place when complete, so an interrupted export leaves nothing at --out.
import { copyFile, readdir, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { AbortError, InvalidArgumentError, UnsupportedFormatError } from '../errors.js';
import { INDEX_FILE } from '../io/checkpoint.js';
import { CtCheckpoint, ctIgnored, ctShape, type CtStoredLinear } from '../io/compressed-tensors.js';
import { int4WeightFromCt, PACKED_FOLDER_VERSION, packedLayerEntry, packedLayerTensors, PackedCheckpoint, type PackedLayerEntry } from '../io/packed-folder.js';
import { SafetensorsWriter } from '../io/safetensors.js';
import { readJsonObject } from '../io/text.js';
import { DecoderModel } from '../models/decoder.js';
import { BSR_BLOCK_SIZES, pack24, pack24Int4, packBsr, packBsrInt4, PACKED_FORMATS, type PackedFormat, type PackedWeight } from '../tensor/packed.js';
import { unpackCodesAsync } from '../tensor/quant.js';
import type { Tensor } from '../tensor/tensor.js';
import { StagingFolder } from './staging.js';

export interface ExportOptions {
  /** A pruned dense folder (2:4, bsr) or a compressed-tensors pack-quantized folder (int4, 2:4+int4, bsr-int4). */
  model: string;
  out: string;
  format: PackedFormat;
  /** Inputs per block for bsr and bsr-int4: 8, 16 or 32 (default 16). */
  blockSize?: number;
  overwrite?: boolean;
  onProgress?: (progress: ExportProgress) => void;
  signal?: AbortSignal;
}

export interface ExportProgress {
  step: number;
  steps: number;
  /** The linear just packed. */
  name: string;
}

/** Bytes of the linears stored in one way, before (as the input stored them) and after. */
export interface ExportBytes {
  linears: number;
  bytesBefore: number;
  bytesAfter: number;
}

export interface ExportSummary {
  model: string;
  out: string;
  format: PackedFormat;
  blockSize?: number;
  /** By how each linear is stored in the output: the packed format, or 'dense' for one left as it was. */
  byFormat: Record<string, ExportBytes>;
  /** The safetensors files of the input and the output. */
  fileBytesBefore: number;
  fileBytesAfter: number;
  seconds: number;
}

const NEEDS_QUANTIZED: readonly PackedFormat[] = ['int4', '2:4+int4', 'bsr-int4'];

function checkExportOptions(options: ExportOptions): number {
  if (!(PACKED_FORMATS as readonly string[]).includes(options.format)) {
    throw new UnsupportedFormatError(`format: '${options.format}' is not a packed format (${PACKED_FORMATS.join(', ')})`);
  }
  const blockSize = options.blockSize ?? 16;
  if (!(BSR_BLOCK_SIZES as readonly number[]).includes(blockSize)) throw new InvalidArgumentError(`blockSize: expected one of ${BSR_BLOCK_SIZES.join(', ')}, received ${blockSize}`);
  return blockSize;
}

/** The int4 formats' requirements on a compressed-tensors linear; `name` is the module. */
function checkInt4Source(stored: CtStoredLinear, format: PackedFormat, blockSize: number, name: string): void {
  const s = stored.scheme;
  if (s.bits !== 4) throw new InvalidArgumentError(`${name}: stored as W${s.bits}; ${format} holds 4-bit codes (quantize with --bits 4)`);
  if (s.actorder === 'group') throw new InvalidArgumentError(`${name}: act-order groups (weight_g_idx) put inputs out of order; ${format} needs contiguous groups (quantize with --act-order static or without it)`);
  if (format === 'int4') return;
  if (!s.symmetric) throw new InvalidArgumentError(`${name}: asymmetric codes (weight_zero_point); ${format} needs symmetric codes (quantize without --asym)`);
  const groupSize = s.strategy === 'channel' ? ctShape(stored.tensors.shape, name)[1] : s.groupSize!;
  if (format === 'bsr-int4' && (s.strategy !== 'group' || groupSize !== blockSize)) {
    throw new InvalidArgumentError(`${name}: its scales cover ${s.strategy === 'channel' ? 'whole rows (per channel)' : `groups of ${groupSize} inputs`}; bsr-int4 needs one scale per block, groups of the block size ${blockSize} (${[8, 16, 32].includes(groupSize) && s.strategy === 'group' ? `pass --block-size ${groupSize}, or ` : ''}quantize with --group-size ${blockSize})`);
  }
  if (format === '2:4+int4' && groupSize % 4 !== 0) throw new InvalidArgumentError(`${name}: groups of ${groupSize} inputs split 2:4 groups; 2:4+int4 needs a group size that is a multiple of 4`);
}

/** Packs one block linear (module `name`) of the source in `format`. */
async function packLinear(source: DecoderModel, name: string, format: PackedFormat, blockSize: number, signal?: AbortSignal): Promise<PackedWeight> {
  const checkpoint = source.checkpoint;
  const where = `${source.dir}: ${name}`;
  const isQuantized = checkpoint instanceof CtCheckpoint && checkpoint.quantized.has(name);
  if (NEEDS_QUANTIZED.includes(format)) {
    if (!isQuantized) {
      const fp8 = checkpoint instanceof CtCheckpoint && checkpoint.floatQuantized.has(name);
      throw new InvalidArgumentError(`${where}.weight is ${fp8 ? 'FP8 (float-quantized), not int4 codes' : 'not quantized'}; ${format} is made from a compressed-tensors W4 folder (sparq quantize --bits 4 …)`);
    }
    const stored = await (checkpoint as CtCheckpoint).readQuantized(name);
    checkInt4Source(stored, format, blockSize, where);
    const shape = ctShape(stored.tensors.shape, where);
    const groupSize = stored.scheme.strategy === 'channel' ? shape[1] : stored.scheme.groupSize!;
    const int4 = int4WeightFromCt({ packed: stored.tensors.packed, scale: stored.tensors.scale, zeroPoint: stored.tensors.zeroPoint }, shape, groupSize, stored.scheme.symmetric, where);
    if (format === 'int4') return int4;
    const codes = await unpackCodesAsync(int4.packed, 4, shape[1], { signal });
    if (format === 'bsr-int4') return packBsrInt4(codes, int4.scales, blockSize, { signal });
    try {
      return await pack24Int4(codes, int4.scales, groupSize, { signal });
    } catch (error) {
      throw notSparse24(error, `${where} (its int4 codes)`);
    }
  }
  if (isQuantized) throw new InvalidArgumentError(`${where} is quantized (compressed-tensors); ${format} is made from a dense folder — export it as int4, 2:4+int4 or bsr-int4`);
  const weight: Tensor = await checkpoint.read(`${name}.weight`);
  if (!['f32', 'f16', 'bf16'].includes(weight.dtype)) throw new InvalidArgumentError(`${where}.weight is ${weight.dtype}; ${format} stores f32, f16 or bf16 values`);
  if (format === 'bsr') return packBsr(weight, blockSize, { signal });
  try {
    return await pack24(weight, { signal });
  } catch (error) {
    throw notSparse24(error, `${where}.weight`);
  }
}

/** pack24's refusal (it names the first row that is not 2:4) with the tensor's name in front. */
function notSparse24(error: unknown, what: string): unknown {
  if (!(error instanceof InvalidArgumentError)) return error;
  return new InvalidArgumentError(`${what} is not 2:4 sparse: ${error.message}; prune it with --sparsity 2:4 first`, { cause: error });
}

/** Bytes the source stores a linear in: its dense weight, or its compressed-tensors tensors. */
async function sourceBytes(model: DecoderModel, name: string): Promise<number> {
  const checkpoint = model.checkpoint;
  if (checkpoint instanceof CtCheckpoint && checkpoint.quantized.has(name)) {
    const t = (await checkpoint.readQuantized(name)).tensors;
    return [t.packed, t.scale, t.shape, t.zeroPoint, t.gIdx].reduce((sum, x) => sum + (x?.byteLength ?? 0), 0);
  }
  const info = await checkpoint.info(`${name}.weight`);
  const bytes: Record<string, number> = { F32: 4, F16: 2, BF16: 2, F64: 8 };
  return info.shape.reduce((a, b) => a * b, 1) * (bytes[info.dtype] ?? 4);
}

async function safetensorsBytes(dir: string): Promise<number> {
  let total = 0;
  for (const name of await readdir(dir)) if (name.endsWith('.safetensors')) total += (await stat(join(dir, name))).size;
  return total;
}

async function writeShard(staged: StagingFolder, file: string, tensors: [string, Tensor][]): Promise<void> {
  const writer = await SafetensorsWriter.create(staged.file(file), tensors.map(([name, t]) => ({ name, dtype: t.dtype, shape: t.shape })), { format: 'pt' });
  for (const [name, t] of tensors) await writer.write(name, t);
  await writer.close();
}

/** Converts a model folder into a sparq packed folder (see the header); returns bytes per format. */
export async function exportPacked(options: ExportOptions): Promise<ExportSummary> {
  const started = performance.now();
  const blockSize = checkExportOptions(options);
  const { format, signal } = options;
  const model = await DecoderModel.open(options.model);
  let staged: StagingFolder | undefined;
  try {
    const checkpoint = model.checkpoint;
    if (checkpoint instanceof PackedCheckpoint) throw new UnsupportedFormatError(`${model.dir} is already a sparq packed folder; export from the pruned or quantized folder it was made from`);
    if (NEEDS_QUANTIZED.includes(format) && !(checkpoint instanceof CtCheckpoint)) {
      throw new InvalidArgumentError(`${model.dir} is not quantized (config.json has no quantization_config); ${format} is made from a compressed-tensors W4 folder (sparq quantize --bits 4 …)`);
    }
    const { config, layout } = model;
    // Routers (and Qwen2-MoE's one-output shared-expert gate) stay dense: a handful of outputs, read by
    // every token, never pruned.
    const blockLinears = new Set<string>();
    for (let layer = 0; layer < config.layers; ++layer) {
      for (const [role, linear] of Object.entries(model.linearRoles(layer))) if (role !== 'router' && role !== 'shared_expert_gate') blockLinears.add(layout.block(layer) + linear);
    }
    if (checkpoint instanceof CtCheckpoint) {
      for (const name of checkpoint.quantized.keys()) {
        if (!blockLinears.has(name)) throw new UnsupportedFormatError(`${model.dir}: '${name}' is quantized but is not a block linear; sparq export packs block linears only (quantize with --ignore '${name}')`);
      }
    }
    staged = await StagingFolder.open({ target: options.out, inputs: [model.dir], overwrite: options.overwrite, resumable: false });
    const shards = config.layers + 1;
    const shardName = (i: number) => `model-${String(i + 1).padStart(5, '0')}-of-${String(shards).padStart(5, '0')}.safetensors`;
    const weightMap: Record<string, string> = {};
    // total_size counts tensor bytes, as Hugging Face's index does (not the files' headers).
    let tensorBytes = 0;
    const record = (file: string, tensors: [string, Tensor][]) => {
      for (const [name, t] of tensors) {
        weightMap[name] = file;
        tensorBytes += t.byteLength;
      }
    };

    // Shard 1: every tensor that is not a block linear's weight, as stored.
    const rest: [string, Tensor][] = [];
    for (const name of checkpoint.names()) {
      if (name.endsWith('.weight') && blockLinears.has(name.slice(0, -'.weight'.length))) continue;
      rest.push([name, await checkpoint.read(name)]);
    }
    await writeShard(staged, shardName(0), rest);
    record(shardName(0), rest);
    rest.length = 0;

    const layers: Record<string, PackedLayerEntry> = {};
    const byFormat: Record<string, ExportBytes> = {};
    const steps = blockLinears.size;
    let step = 0;
    for (let layer = 0; layer < config.layers; ++layer) {
      const tensors: [string, Tensor][] = [];
      for (const name of [...blockLinears].filter((n) => n.startsWith(layout.block(layer)))) {
        if (signal?.aborted) throw new AbortError();
        const before = await sourceBytes(model, name);
        const quantizedSource = checkpoint instanceof CtCheckpoint && checkpoint.quantized.has(name);
        let stored: string;
        let after: number;
        if (NEEDS_QUANTIZED.includes(format) && !quantizedSource && checkpoint instanceof CtCheckpoint && ctIgnored(checkpoint.config.ignore, name)) {
          // A linear the quantization left dense (quantization_config.ignore) stays dense.
          const weight = await checkpoint.read(`${name}.weight`);
          tensors.push([`${name}.weight`, weight]);
          stored = 'dense';
          after = weight.byteLength;
        } else {
          const packed = await packLinear(model, name, format, blockSize, signal);
          after = 0;
          for (const [suffix, t] of packedLayerTensors(packed)) {
            tensors.push([`${name}.${suffix}`, t]);
            after += t.byteLength;
          }
          layers[name] = packedLayerEntry(packed);
          stored = packed.format;
        }
        const totals = (byFormat[stored] ??= { linears: 0, bytesBefore: 0, bytesAfter: 0 });
        totals.linears += 1;
        totals.bytesBefore += before;
        totals.bytesAfter += after;
        options.onProgress?.({ step: ++step, steps, name });
      }
      await writeShard(staged, shardName(layer + 1), tensors);
      record(shardName(layer + 1), tensors);
    }

    // The index, config.json with sparq_format, and the input's other files (tokenizer, generation config …).
    const indexPath = staged.file(INDEX_FILE);
    await staged.guard(indexPath, () => writeFile(indexPath, `${JSON.stringify({ metadata: { total_size: tensorBytes }, weight_map: weightMap }, null, 2)}\n`));
    const input = resolve(model.dir);
    for (const name of await readdir(input)) {
      if (name.endsWith('.safetensors') || name === INDEX_FILE || name === 'config.json') continue;
      if (!(await stat(join(input, name)).catch(() => undefined))?.isFile()) continue;
      const destination = staged.file(name);
      await staged.guard(destination, () => copyFile(join(input, name), destination));
    }
    const configJson = await readJsonObject(join(input, 'config.json'));
    // int4 layers are compressed-tensors' own tensors: the quantization_config still describes them for
    // Hugging Face and vLLM. The other formats are sparq's alone.
    if (format !== 'int4') delete configJson.quantization_config;
    configJson.sparq_format = { version: PACKED_FOLDER_VERSION, layers };
    const configPath = staged.file('config.json');
    await staged.guard(configPath, () => writeFile(configPath, `${JSON.stringify(configJson, null, 2)}\n`));
    if (signal?.aborted) throw new AbortError();
    await staged.commit();
    return {
      model: options.model,
      out: options.out,
      format,
      ...(format === 'bsr' || format === 'bsr-int4' ? { blockSize } : {}),
      byFormat,
      fileBytesBefore: await safetensorsBytes(input),
      fileBytesAfter: await safetensorsBytes(options.out),
      seconds: (performance.now() - started) / 1000,
    };
  } finally {
    await staged?.close();
    await model.close();
  }
}
