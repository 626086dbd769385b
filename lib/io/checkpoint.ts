// Hugging Face checkpoint folders: one model.safetensors, or shards listed by
// model.safetensors.index.json. Reading opens shards lazily and reads tensors by offset; writing shards
// at a size limit and stages the whole folder, renaming it into place only when complete.
import { existsSync } from 'node:fs';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { basename, isAbsolute, join, resolve, sep } from 'node:path';
import { dtypeSize, type DType } from '../tensor/dtype.js';
import { InvalidArgumentError, InvalidFileError, UnsupportedFormatError } from '../errors.js';
import { shapeNumel, type Tensor } from '../tensor/tensor.js';
import { SafetensorsFile, SafetensorsWriter, type PlannedTensor, type TensorInfo } from './safetensors.js';

export const INDEX_FILE = 'model.safetensors.index.json';
export const SINGLE_FILE = 'model.safetensors';
const PICKLE_FILES = /^(pytorch_model.*\.bin|.*\.pt|.*\.pth|.*\.ckpt)$/;

/** Resolves a shard name from an index, refusing anything that would leave the model folder. */
export function resolveShard(dir: string, indexPath: string, shard: unknown): string {
  if (typeof shard !== 'string' || shard.length === 0) throw new InvalidFileError(`${indexPath}: shard name ${JSON.stringify(shard)} is not a file name`);
  const root = resolve(dir);
  const path = resolve(root, shard);
  if (isAbsolute(shard) || shard.split(/[\\/]/).includes('..') || !path.startsWith(root + sep)) {
    throw new InvalidFileError(`${indexPath}: shard '${shard}' points outside the model folder ${root}`);
  }
  return path;
}

/** What a model reads its tensors through: a checkpoint folder, or a view that decodes a quantized one. */
export interface TensorSource {
  readonly dir: string;
  names(): string[];
  has(name: string): boolean;
  info(name: string): Promise<{ name: string; dtype: string; shape: number[] }>;
  /** One tensor, converted to `dtype` if given. */
  read(name: string, options?: { dtype?: DType }): Promise<Tensor>;
  /** The file that holds a tensor (for messages). */
  shardPath(name: string): string;
  close(): Promise<void>;
}

/**
 * A checkpoint whose linear weights are stored in another form (compressed-tensors codes, sparq packed
 * formats) and read back as `<module>.weight` decoded: the names a reader sees are the inner folder's,
 * with each stored-form layer's tensors replaced by its `.weight`. Subclasses decode (info and read).
 */
export abstract class DecodedWeightsCheckpoint implements TensorSource {
  protected constructor(
    protected readonly inner: Checkpoint,
    private readonly visibleNames: readonly string[],
  ) {}

  get dir(): string {
    return this.inner.dir;
  }

  names(): string[] {
    return [...this.visibleNames];
  }

  has(name: string): boolean {
    return this.visibleNames.includes(name);
  }

  /** The module of `<module>.weight` when that module is one of `stored`, else undefined. */
  protected storedModule(name: string, stored: { has(module: string): boolean }): string | undefined {
    if (!name.endsWith('.weight')) return undefined;
    const module = name.slice(0, -'.weight'.length);
    return stored.has(module) ? module : undefined;
  }

  abstract info(name: string): Promise<{ name: string; dtype: string; shape: number[] }>;
  abstract read(name: string, options?: { dtype?: DType }): Promise<Tensor>;
  abstract shardPath(name: string): string;
  abstract close(): Promise<void>;
}

/** A checkpoint folder opened for reading. */
export class Checkpoint implements TensorSource {
  private readonly open = new Map<string, Promise<SafetensorsFile>>();

  private constructor(
    readonly dir: string,
    /** tensor name -> shard file path */
    private readonly shardOf: ReadonlyMap<string, string>,
    readonly metadata: Readonly<Record<string, unknown>>,
  ) {}

  static async open(dir: string): Promise<Checkpoint> {
    let entries: string[];
    try {
      entries = await readdir(dir);
    } catch (error) {
      throw new InvalidArgumentError(`model folder ${dir} cannot be read: ${(error as Error).message}`);
    }
    const indexPath = join(dir, INDEX_FILE);
    if (entries.includes(INDEX_FILE)) {
      let index: { weight_map?: unknown; metadata?: unknown };
      try {
        index = JSON.parse(await readFile(indexPath, 'utf8'));
      } catch (error) {
        throw new InvalidFileError(`${indexPath}: not valid JSON (${(error as Error).message})`);
      }
      const map = index.weight_map;
      if (map === null || typeof map !== 'object' || Array.isArray(map)) throw new InvalidFileError(`${indexPath}: weight_map is missing or not an object`);
      const shardOf = new Map<string, string>();
      for (const [name, shard] of Object.entries(map as Record<string, unknown>)) shardOf.set(name, resolveShard(dir, indexPath, shard));
      for (const shard of new Set(shardOf.values())) {
        if (!existsSync(shard)) throw new InvalidFileError(`${indexPath}: shard ${basename(shard)} does not exist`);
      }
      const checkpoint = new Checkpoint(dir, shardOf, (index.metadata as Record<string, unknown>) ?? {});
      try {
        await checkpoint.verifyIndex(indexPath);
      } catch (error) {
        await checkpoint.close();
        throw error;
      }
      return checkpoint;
    }
    if (entries.includes(SINGLE_FILE)) {
      const path = join(dir, SINGLE_FILE);
      const file = await SafetensorsFile.open(path);
      const checkpoint = new Checkpoint(dir, new Map(file.names().map((n) => [n, path])), file.metadata);
      checkpoint.open.set(path, Promise.resolve(file));
      return checkpoint;
    }
    const pickles = entries.filter((e) => PICKLE_FILES.test(e));
    if (pickles.length > 0) {
      throw new UnsupportedFormatError(
        `${dir} holds a pickled PyTorch checkpoint (${pickles.join(', ')}), which sparq does not load: unpickling runs arbitrary code. ` +
          'Convert it to safetensors first, e.g. in Python: AutoModelForCausalLM.from_pretrained(dir).save_pretrained(out, safe_serialization=True).',
      );
    }
    throw new InvalidFileError(`${dir}: no ${SINGLE_FILE} or ${INDEX_FILE} found`);
  }

  /** Every tensor the index names must be in its shard. */
  private async verifyIndex(indexPath: string): Promise<void> {
    for (const [name, shard] of this.shardOf) {
      const file = await this.file(shard);
      if (!file.tensors.has(name)) throw new InvalidFileError(`${indexPath}: tensor '${name}' is listed in ${basename(shard)} but that shard does not contain it`);
    }
  }

  private file(path: string): Promise<SafetensorsFile> {
    let file = this.open.get(path);
    if (!file) {
      file = SafetensorsFile.open(path);
      this.open.set(path, file);
    }
    return file;
  }

  names(): string[] {
    return [...this.shardOf.keys()];
  }

  has(name: string): boolean {
    return this.shardOf.has(name);
  }

  /** The path of the shard file that holds a tensor. */
  shardPath(name: string): string {
    return this.shardFor(name);
  }

  /** Every shard file's path. */
  shardPaths(): string[] {
    return [...new Set(this.shardOf.values())];
  }

  async info(name: string): Promise<TensorInfo> {
    return (await this.file(this.shardFor(name))).info(name);
  }

  /** Reads one tensor from its shard, converted to `dtype` if given. */
  async read(name: string, options: { dtype?: DType } = {}): Promise<Tensor> {
    return (await this.file(this.shardFor(name))).read(name, options);
  }

  private shardFor(name: string): string {
    const shard = this.shardOf.get(name);
    if (!shard) throw new InvalidArgumentError(`${this.dir}: no tensor named '${name}'`);
    return shard;
  }

  async close(): Promise<void> {
    const files = await Promise.allSettled(this.open.values());
    this.open.clear();
    await Promise.all(files.map((f) => (f.status === 'fulfilled' ? f.value.close() : undefined)));
  }
}

export interface PlannedShard {
  /** model.safetensors, or model-0000i-of-0000N.safetensors when there are several. */
  file: string;
  tensors: PlannedTensor[];
}

/** model.safetensors.index.json: which shard holds each tensor, and the tensors' bytes in all. */
export interface CheckpointIndex {
  /** The sum of every tensor's data bytes (headers not counted), as Hugging Face writes it. */
  metadata: { total_size: number };
  weight_map: Record<string, string>;
}

/**
 * Splits tensors, in order, into shards of at most `limit` bytes of tensor data each (a shard may hold
 * exactly `limit`; a tensor larger than the limit gets a shard of its own), named as Hugging Face names
 * them. Pure: shapes in, plan out, no I/O.
 */
export function planShards(tensors: readonly PlannedTensor[], limit: number): PlannedShard[] {
  if (!(limit > 0)) throw new InvalidArgumentError(`maxShardBytes: expected a positive number, received ${limit}`);
  const groups: PlannedTensor[][] = [[]];
  let bytes = 0;
  for (const t of tensors) {
    const size = shapeNumel(t.shape) * dtypeSize(t.dtype);
    if (groups[groups.length - 1].length > 0 && bytes + size > limit) {
      groups.push([t]);
      bytes = size;
    } else {
      groups[groups.length - 1].push(t);
      bytes += size;
    }
  }
  const width = 5;
  return groups.map((g, i) => ({
    file: groups.length === 1 ? SINGLE_FILE : `model-${String(i + 1).padStart(width, '0')}-of-${String(groups.length).padStart(width, '0')}.safetensors`,
    tensors: g,
  }));
}

/** The index of a sharded checkpoint (null for a single file, which has none). Pure. */
export function checkpointIndex(shards: readonly PlannedShard[]): CheckpointIndex | null {
  if (shards.length <= 1) return null;
  const weightMap: Record<string, string> = {};
  let total = 0;
  for (const shard of shards) {
    for (const t of shard.tensors) {
      weightMap[t.name] = shard.file;
      total += shapeNumel(t.shape) * dtypeSize(t.dtype);
    }
  }
  return { metadata: { total_size: total }, weight_map: weightMap };
}

/** The index file's text. */
export const indexJson = (index: CheckpointIndex) => `${JSON.stringify(index, null, 2)}\n`;

/**
 * Writes tensors into a checkpoint folder, in plan order, sharded so that no shard exceeds
 * `maxShardBytes` (a single tensor larger than the limit gets a shard of its own). One shard is written
 * as model.safetensors; several as model-0000i-of-0000N.safetensors plus the index.
 */
export class CheckpointWriter {
  private shardIndex = 0;
  private current: SafetensorsWriter | undefined;
  private positionInShard = 0;

  private constructor(
    readonly dir: string,
    private readonly shards: PlannedShard[],
    private readonly metadata: Record<string, string>,
  ) {}

  static async create(dir: string, plan: readonly PlannedTensor[], options: { maxShardBytes?: number; metadata?: Record<string, string> } = {}): Promise<CheckpointWriter> {
    return new CheckpointWriter(dir, planShards(plan, options.maxShardBytes ?? Infinity), options.metadata ?? {});
  }

  private fileName(i: number): string {
    return this.shards[i].file;
  }

  async write(name: string, tensor: Tensor): Promise<void> {
    if (!this.current) {
      if (this.shardIndex >= this.shards.length) throw new InvalidArgumentError(`${this.dir}: '${name}' is past the end of the plan`);
      this.current = await SafetensorsWriter.create(join(this.dir, this.fileName(this.shardIndex)), this.shards[this.shardIndex].tensors, this.metadata);
      this.positionInShard = 0;
    }
    await this.current.write(name, tensor);
    this.positionInShard += 1;
    if (this.positionInShard === this.shards[this.shardIndex].tensors.length) {
      await this.current.close();
      this.current = undefined;
      this.shardIndex += 1;
    }
  }

  /** Finishes the last shard and writes the index when there are several. */
  async close(): Promise<void> {
    if (this.current || this.shardIndex < this.shards.length) {
      await this.current?.abort();
      throw new InvalidArgumentError(`${this.dir}: closed before every planned tensor was written`);
    }
    const index = checkpointIndex(this.shards);
    if (index) await writeFile(join(this.dir, INDEX_FILE), indexJson(index));
  }

  async abort(): Promise<void> {
    await this.current?.abort();
  }
}
