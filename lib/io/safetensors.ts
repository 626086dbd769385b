// safetensors files: an 8-byte little-endian header length, a JSON header naming each tensor's dtype,
// shape and byte range, then the data. The reader validates the header before trusting any of it and
// reads tensors lazily by offset (never the whole file); the writer streams tensors one by one into a
// temporary file that is renamed into place only when complete. F8_E4M3 (FP8, lib/tensor/fp8.ts) has no
// sparq dtype: it is read as its f32 values and written from u8 codes planned with `storedAs`.
import { constants } from 'node:fs';
import { open, rename, rm, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { arrayTypeFor, dtypeSize, type DType, type TypedArray } from '../tensor/dtype.js';
import { decodeE4M3Array } from '../tensor/fp8.js';
import { InvalidArgumentError, InvalidFileError, writeFailure } from '../errors.js';
import { formatShape, shapeNumel, Tensor } from '../tensor/tensor.js';

/** Element types a safetensors header may name. */
export type SafetensorsDType = 'F64' | 'F32' | 'F16' | 'BF16' | 'F8_E4M3' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

const STORAGE: Record<SafetensorsDType, { size: number; dtype: DType | 'i16' | 'f8_e4m3' }> = {
  F64: { size: 8, dtype: 'f64' },
  F32: { size: 4, dtype: 'f32' },
  F16: { size: 2, dtype: 'f16' },
  BF16: { size: 2, dtype: 'bf16' },
  F8_E4M3: { size: 1, dtype: 'f8_e4m3' },
  I64: { size: 8, dtype: 'i64' },
  I32: { size: 4, dtype: 'i32' },
  I16: { size: 2, dtype: 'i16' },
  I8: { size: 1, dtype: 'i8' },
  U8: { size: 1, dtype: 'u8' },
  BOOL: { size: 1, dtype: 'u8' },
};

const TO_SAFETENSORS: Record<DType, SafetensorsDType> = {
  f64: 'F64',
  f32: 'F32',
  f16: 'F16',
  bf16: 'BF16',
  i64: 'I64',
  i32: 'I32',
  i8: 'I8',
  u8: 'U8',
};

/** Headers larger than this are refused: real ones are a few MB even for the largest models. */
export const MAX_HEADER_BYTES = 100 * 1024 * 1024;

export interface TensorInfo {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
  /** Absolute byte offset of the tensor's data in the file. */
  offset: number;
  byteLength: number;
}

function bad(file: string, what: string): never {
  throw new InvalidFileError(`${file}: ${what}`);
}

/** Parses and validates a header: every check happens before any offset is trusted. */
export function parseHeader(file: string, headerBytes: Uint8Array, dataStart: number, fileSize: number) {
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(headerBytes));
  } catch (error) {
    bad(file, `the header is not valid UTF-8 JSON (${(error as Error).message})`);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) bad(file, 'the header is not a JSON object');
  const dataLength = fileSize - dataStart;
  const tensors = new Map<string, TensorInfo>();
  let metadata: Record<string, string> = {};
  for (const [name, entry] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) bad(file, '__metadata__ is not an object');
      for (const [k, v] of Object.entries(entry as Record<string, unknown>)) {
        if (typeof v !== 'string') bad(file, `__metadata__.${k} is not a string`);
      }
      metadata = entry as Record<string, string>;
      continue;
    }
    const where = `tensor '${name}'`;
    if (entry === null || typeof entry !== 'object') bad(file, `${where}: entry is not an object`);
    const { dtype, shape, data_offsets: offsets } = entry as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof dtype !== 'string' || !Object.prototype.hasOwnProperty.call(STORAGE, dtype)) {
      bad(file, `${where}: unknown dtype ${JSON.stringify(dtype)} (expected one of ${Object.keys(STORAGE).join(', ')})`);
    }
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      bad(file, `${where}: shape ${JSON.stringify(shape)} is not a list of non-negative integers`);
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)) {
      bad(file, `${where}: data_offsets ${JSON.stringify(offsets)} is not a pair of non-negative integers`);
    }
    const [begin, end] = offsets as [number, number];
    if (end < begin) bad(file, `${where}: data_offsets [${begin}, ${end}] end before they begin`);
    if (end > dataLength) {
      bad(file, `${where}: data_offsets [${begin}, ${end}] reach past the end of the data (${dataLength} bytes; the file may be truncated)`);
    }
    const expected = shapeNumel(shape as number[]) * STORAGE[dtype as SafetensorsDType].size;
    if (end - begin !== expected) {
      bad(file, `${where}: ${dtype}${formatShape(shape as number[])} needs ${expected} bytes, data_offsets cover ${end - begin}`);
    }
    tensors.set(name, { name, dtype: dtype as SafetensorsDType, shape: shape as number[], offset: dataStart + begin, byteLength: end - begin });
  }
  // The byte ranges must tile the data region exactly: no overlaps, no holes, nothing after the end.
  const ranges = [...tensors.values()].sort((a, b) => a.offset - b.offset || a.byteLength - b.byteLength);
  let cursor = dataStart;
  for (const t of ranges) {
    if (t.offset < cursor) bad(file, `tensor '${t.name}' overlaps the tensor before it`);
    if (t.offset > cursor) bad(file, `the data has a ${t.offset - cursor}-byte hole before tensor '${t.name}'`);
    cursor = t.offset + t.byteLength;
  }
  if (cursor !== fileSize) bad(file, `${fileSize - cursor} bytes after the last tensor are not described by the header`);
  return { tensors, metadata };
}

/** An open safetensors file. Tensors are read on demand by offset; close() releases the file. */
export class SafetensorsFile {
  private constructor(
    readonly path: string,
    private readonly handle: FileHandle,
    readonly tensors: ReadonlyMap<string, TensorInfo>,
    readonly metadata: Readonly<Record<string, string>>,
  ) {}

  static async open(path: string): Promise<SafetensorsFile> {
    const handle = await open(path, constants.O_RDONLY).catch((error: NodeJS.ErrnoException) => {
      throw new InvalidFileError(`${path}: cannot be opened (${error.code === 'ENOENT' ? 'no such file' : error.message})`, { cause: error });
    });
    try {
      const stats = await handle.stat();
      if (!stats.isFile()) bad(path, `is ${stats.isDirectory() ? 'a folder' : 'not a regular file'}; a safetensors file was expected`);
      const { size } = stats;
      if (size < 8) bad(path, `the file has ${size} bytes, fewer than the 8-byte header length`);
      const prefix = Buffer.alloc(8);
      await handle.read(prefix, 0, 8, 0);
      const headerLength = prefix.readBigUInt64LE(0);
      if (headerLength > BigInt(MAX_HEADER_BYTES)) bad(path, `the header claims ${headerLength} bytes, more than the ${MAX_HEADER_BYTES}-byte limit`);
      const length = Number(headerLength);
      if (8 + length > size) bad(path, `the header claims ${length} bytes but the file has only ${size - 8} after the length (truncated?)`);
      const headerBytes = Buffer.alloc(length);
      await handle.read(headerBytes, 0, length, 8);
      const { tensors, metadata } = parseHeader(path, headerBytes, 8 + length, size);
      return new SafetensorsFile(path, handle, tensors, metadata);
    } catch (error) {
      await handle.close();
      throw error;
    }
  }

  names(): string[] {
    return [...this.tensors.keys()];
  }

  info(name: string): TensorInfo {
    const info = this.tensors.get(name);
    if (!info) throw new InvalidArgumentError(`${this.path}: no tensor named '${name}'`);
    return info;
  }

  /**
   * Reads one tensor (only its bytes) and converts it to `dtype` if given. I16 arrives as i32, BOOL as u8
   * and F8_E4M3 as f32 (its exact values), the nearest types sparq computes with.
   */
  async read(name: string, options: { dtype?: DType } = {}): Promise<Tensor> {
    const info = this.info(name);
    const bytes = new Uint8Array(info.byteLength);
    let done = 0;
    while (done < info.byteLength) {
      const { bytesRead } = await this.handle.read(bytes, done, info.byteLength - done, info.offset + done);
      if (bytesRead === 0) bad(this.path, `tensor '${name}': the file ended while reading it (changed on disk?)`);
      done += bytesRead;
    }
    const storage = STORAGE[info.dtype];
    let tensor: Tensor;
    if (storage.dtype === 'i16') {
      const wide = Int32Array.from(new Int16Array(bytes.buffer, 0, bytes.length / 2));
      tensor = Tensor.fromTypedArray(wide, info.shape);
    } else if (storage.dtype === 'f8_e4m3') {
      tensor = Tensor.fromTypedArray(decodeE4M3Array(bytes), info.shape);
    } else {
      const ArrayType = arrayTypeFor(storage.dtype);
      tensor = Tensor.fromTypedArray(new ArrayType(bytes.buffer, 0, bytes.length / storage.size), info.shape, storage.dtype);
    }
    return options.dtype && options.dtype !== tensor.dtype ? tensor.toAsync(options.dtype) : tensor;
  }

  async close(): Promise<void> {
    await this.handle.close();
  }
}

export interface PlannedTensor {
  name: string;
  dtype: DType;
  shape: readonly number[];
  /** 'F8_E4M3': the tensor given to the writer holds u8 E4M3 codes (dtype 'u8'); the header names them F8_E4M3. */
  storedAs?: 'F8_E4M3';
}

/** The dtype a planned tensor's header entry names. */
function plannedDType(t: PlannedTensor): SafetensorsDType {
  if (t.storedAs === undefined) return TO_SAFETENSORS[t.dtype];
  if (t.storedAs !== 'F8_E4M3' || t.dtype !== 'u8') throw new InvalidArgumentError(`tensor '${t.name}': storedAs ${JSON.stringify(t.storedAs)} needs dtype u8 codes and is F8_E4M3 only, got ${t.dtype}`);
  return t.storedAs;
}

/** The header a writer will emit for these tensors, in this order, and the data size. */
export function planHeader(tensors: readonly PlannedTensor[], metadata: Record<string, string> = {}) {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  const seen = new Set<string>();
  for (const t of tensors) {
    if (seen.has(t.name)) throw new InvalidArgumentError(`tensor '${t.name}' is planned twice`);
    if (t.name === '__metadata__') throw new InvalidArgumentError("'__metadata__' cannot name a tensor");
    seen.add(t.name);
    const bytes = shapeNumel(t.shape) * dtypeSize(t.dtype);
    header[t.name] = { dtype: plannedDType(t), shape: [...t.shape], data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  // Pad the JSON with spaces to a multiple of 8 so the data starts aligned.
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  return { json, dataBytes: offset };
}

/** Where each planned tensor's bytes will lie in a file written from this plan. */
export interface PlannedLayout {
  /** The 8-byte length prefix and the header. */
  head: Buffer;
  tensors: Map<string, TensorInfo>;
  fileSize: number;
}

export function planLayout(tensors: readonly PlannedTensor[], metadata: Record<string, string> = {}): PlannedLayout {
  const { json, dataBytes } = planHeader(tensors, metadata);
  const headerBytes = Buffer.from(json, 'utf8');
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(headerBytes.length));
  const dataStart = 8 + headerBytes.length;
  const infos = new Map<string, TensorInfo>();
  let offset = dataStart;
  for (const t of tensors) {
    const byteLength = shapeNumel(t.shape) * dtypeSize(t.dtype);
    infos.set(t.name, { name: t.name, dtype: plannedDType(t), shape: [...t.shape], offset, byteLength });
    offset += byteLength;
  }
  return { head: Buffer.concat([prefix, headerBytes]), tensors: infos, fileSize: dataStart + dataBytes };
}

/** The tensor's bytes as stored (little-endian, row-major), after converting to `dtype` if it differs. */
export function tensorBytes(tensor: Tensor): Uint8Array {
  const data = tensor.cpu().contiguous().data as TypedArray;
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/**
 * Streams tensors into a safetensors file: the plan fixes names, dtypes, shapes and order up front (the
 * header comes first), then write() takes each tensor in that order. Data goes to a temporary file beside
 * the target, renamed over it by close(); abort() (or any failure) removes it.
 */
export class SafetensorsWriter {
  private next = 0;
  private constructor(
    readonly path: string,
    private readonly temporary: string,
    private readonly handle: FileHandle,
    private readonly plan: readonly PlannedTensor[],
    private position: number,
  ) {}

  static async create(path: string, plan: readonly PlannedTensor[], metadata: Record<string, string> = {}): Promise<SafetensorsWriter> {
    const { json } = planHeader(plan, metadata);
    const temporary = join(dirname(path), `.${basename(path)}.partial-${process.pid}-${Date.now()}`);
    const handle = await open(temporary, 'wx').catch((error: unknown) => {
      throw writeFailure(path, error);
    });
    try {
      const headerBytes = Buffer.from(json, 'utf8');
      const prefix = Buffer.alloc(8);
      prefix.writeBigUInt64LE(BigInt(headerBytes.length));
      await handle.write(prefix, 0, 8, 0);
      await handle.write(headerBytes, 0, headerBytes.length, 8);
      return new SafetensorsWriter(path, temporary, handle, plan, 8 + headerBytes.length);
    } catch (error) {
      await handle.close();
      await rm(temporary, { force: true });
      throw writeFailure(path, error);
    }
  }

  /** Writes the next planned tensor; its name, dtype and shape must match the plan. */
  async write(name: string, tensor: Tensor): Promise<void> {
    const expected = this.plan[this.next];
    try {
      if (!expected) throw new InvalidArgumentError(`${this.path}: '${name}' is past the end of the plan`);
      if (expected.name !== name) throw new InvalidArgumentError(`${this.path}: expected tensor '${expected.name}' next, received '${name}'`);
      if (tensor.dtype !== expected.dtype || formatShape(tensor.shape) !== formatShape(expected.shape)) {
        throw new InvalidArgumentError(`${this.path}: tensor '${name}' was planned as ${expected.dtype}${formatShape(expected.shape)}, received ${tensor.dtype}${formatShape(tensor.shape)}`);
      }
      const data = tensor.cpu().contiguous().data as TypedArray;
      const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
      let done = 0;
      while (done < bytes.length) {
        const { bytesWritten } = await this.handle.write(bytes, done, bytes.length - done, this.position + done);
        done += bytesWritten;
      }
      this.position += bytes.length;
      this.next += 1;
    } catch (error) {
      await this.abort();
      throw writeFailure(this.path, error);
    }
  }

  /** Flushes and renames the finished file into place. */
  async close(): Promise<void> {
    if (this.next !== this.plan.length) {
      const missing = this.plan[this.next].name;
      await this.abort();
      throw new InvalidArgumentError(`${this.path}: closed before tensor '${missing}' was written; nothing was kept`);
    }
    try {
      await this.handle.sync();
      await this.handle.close();
      await rename(this.temporary, this.path);
    } catch (error) {
      await this.abort();
      throw writeFailure(this.path, error);
    }
  }

  /** Drops the partial file. */
  async abort(): Promise<void> {
    await this.handle.close().catch(() => undefined);
    await rm(this.temporary, { force: true });
  }
}
