// The `dense` output: a Hugging Face model folder identical to the input except for the compressed
// weights (pruned entries as zeros, quantized ones as their decoded values, same dtypes, names and shards)
// and config.json's `sparq` key; Hugging Face, vLLM and `sparq eval` load it. The input's files are copied
// into the staging folder first, by their names in the model folder (a Hugging Face cache snapshot's files
// are symlinks into its blobs: read through, never written through), and each compressed weight is written
// over its bytes in place (same header, same offsets).
import { copyFile, mkdir, readdir, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import type { CompressedLinear } from '../compress/method.js';
import { InvalidArgumentError, InvalidFileError } from '../errors.js';
import type { Checkpoint } from '../io/checkpoint.js';
import { tensorBytes, type TensorInfo } from '../io/safetensors.js';
import type { DType } from '../tensor/dtype.js';
import type { Tensor } from '../tensor/tensor.js';
import { insideFolder, StagingFolder } from './staging.js';
import { ModelFolderWriter, openResumableStaging, type ResumeState } from './writer.js';

/** The tensor dtypes a compressed weight can be written back as. */
const WRITABLE: Record<string, DType> = { F32: 'f32', F16: 'f16', BF16: 'bf16', F64: 'f64' };

function writableDType(name: string, info: TensorInfo): DType {
  const dtype = WRITABLE[info.dtype];
  if (!dtype) throw new InvalidFileError(`${name}: stored as ${info.dtype}; only float weights (F32, F16, BF16, F64) can be compressed`);
  return dtype;
}

export class DenseFolder<Entry> extends ModelFolderWriter<Entry> {
  /** The staging folder used for a target (stable, so that --resume finds it). */
  static stagingPath(target: string): string {
    return StagingFolder.resumablePath(target);
  }

  /**
   * Checks the target and prepares the staging folder: resumed when `resume` is set and a partial run with
   * the same fingerprint exists, else a fresh copy of the input folder.
   */
  static async begin<Entry>(input: Checkpoint, target: string, options: { overwrite?: boolean; resume?: boolean; fingerprint: string }): Promise<DenseFolder<Entry>> {
    return DenseFolder.beginAs<Entry, DenseFolder<Entry>>(input, target, options, (staged) => new DenseFolder<Entry>(staged, input, options.fingerprint));
  }

  /** `begin` for a writer built on the dense one (`make` constructs it on the staging folder). */
  protected static async beginAs<Entry, W extends DenseFolder<Entry>>(input: Checkpoint, target: string, options: { overwrite?: boolean; resume?: boolean; fingerprint: string }, make: (staged: StagingFolder<ResumeState<Entry>>) => W): Promise<W> {
    const staged = await openResumableStaging<Entry>(input, target, options);
    const folder = make(staged);
    if (staged.resumed) return folder;
    try {
      await folder.copyInput();
      await staged.saveProgress({ fingerprint: options.fingerprint, blocksDone: 0, entries: [], extra: {} });
    } catch (error) {
      await staged.discard();
      throw error;
    }
    return folder;
  }

  /** Copies the input's top-level files and every shard (which may sit in subfolders), reading through symlinks. */
  private async copyInput(): Promise<void> {
    const input = resolve(this.input.dir);
    const files = new Set<string>();
    for (const name of await readdir(input)) {
      if ((await stat(join(input, name)).catch(() => undefined))?.isFile()) files.add(name);
    }
    for (const shard of this.input.shardPaths()) files.add(insideFolder(input, shard));
    for (const file of files) {
      const destination = this.staged.file(file);
      await this.staged.guard(
        destination,
        async () => {
          await mkdir(dirname(destination), { recursive: true });
          await copyFile(join(input, file), destination);
        },
        { keptForResume: false },
      );
    }
  }

  async storageDType(name: string): Promise<DType> {
    return writableDType(name, await this.input.info(`${name}.weight`));
  }

  /** Writes the weight over its bytes in the staged copy, converted to the stored dtype. */
  async writeLinear(name: string, _result: CompressedLinear, weight: Tensor): Promise<void> {
    await this.writeTensor(`${name}.weight`, weight);
  }

  /** Writes any float tensor of the checkpoint over its bytes in the staged copy (a model-scope method
   * may change norms and embeddings too), converted to the stored dtype. */
  async writeTensor(tensorName: string, value: Tensor): Promise<void> {
    const info = await this.input.info(tensorName);
    const bytes = tensorBytes(await value.toAsync(writableDType(tensorName, info)));
    if (bytes.byteLength !== info.byteLength) throw new InvalidArgumentError(`${tensorName}: ${bytes.byteLength} bytes to write over ${info.byteLength}`);
    await this.writeAt(this.staged.file(insideFolder(this.input.dir, this.input.shardPath(tensorName))), info.offset, bytes);
  }
}
