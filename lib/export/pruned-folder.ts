// The output of a pruning run: a Hugging Face model folder identical to the input except for the
// compressed weights (pruned entries as zeros, same dtypes, names and shards) and config.json's `sparq`
// key. It is built in a staging folder beside the target (see staging.ts): the input's files are copied
// there first, by their names in the model folder (a Hugging Face cache snapshot's files are symlinks
// into its blobs; they are read through, never written through), and each finished block's weights are
// written over their bytes in place (same header, same offsets). A progress file records the finished
// blocks so that --resume can continue an interrupted run; only a complete folder is renamed to the target.
import { createHash } from 'node:crypto';
import { copyFile, mkdir, open, readdir, readFile, stat, writeFile, type FileHandle } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { InvalidArgumentError, InvalidFileError } from '../errors.js';
import type { Checkpoint } from '../io/checkpoint.js';
import type { TensorInfo } from '../io/safetensors.js';
import type { DType } from '../dtype.js';
import type { Tensor } from '../tensor.js';
import { insideFolder, StagingFolder } from './staging.js';

/** The tensor dtypes a compressed weight can be written back as. */
const WRITABLE: Record<string, DType> = { F32: 'f32', F16: 'f16', BF16: 'bf16', F64: 'f64' };

export interface ResumeState<Entry> {
  fingerprint: string;
  blocksDone: number;
  entries: Entry[];
  extra: Record<string, unknown>;
}

function writableDType(name: string, info: TensorInfo): DType {
  const dtype = WRITABLE[info.dtype];
  if (!dtype) throw new InvalidFileError(`${name}: stored as ${info.dtype}; only float weights (F32, F16, BF16, F64) can be compressed`);
  return dtype;
}

/** A stable digest of the run's inputs: a resumed run must match the interrupted one exactly. */
export function fingerprint(parts: unknown[], windows: readonly Int32Array[]): string {
  const hash = createHash('sha256');
  hash.update(JSON.stringify(parts));
  for (const w of windows) hash.update(new Uint8Array(w.buffer, w.byteOffset, w.byteLength));
  return hash.digest('hex');
}

export class PrunedFolder<Entry> {
  private readonly handles = new Map<string, FileHandle>();

  private constructor(
    private readonly staged: StagingFolder<ResumeState<Entry>>,
    private readonly checkpoint: Checkpoint,
    private readonly runFingerprint: string,
  ) {}

  get target(): string {
    return this.staged.target;
  }

  get staging(): string {
    return this.staged.path;
  }

  get resumed(): ResumeState<Entry> | undefined {
    return this.staged.resumed;
  }

  /** The staging folder used for a target (stable, so that --resume finds it). */
  static stagingPath(target: string): string {
    return StagingFolder.resumablePath(target);
  }

  /**
   * Checks the target and prepares the staging folder: resumed when `resume` is set and a partial run with
   * the same fingerprint exists, else a fresh copy of the input folder.
   */
  static async begin<Entry>(
    checkpoint: Checkpoint,
    target: string,
    options: { overwrite?: boolean; resume?: boolean; fingerprint: string },
  ): Promise<PrunedFolder<Entry>> {
    const staged = await StagingFolder.open<ResumeState<Entry>>({
      target,
      inputs: [checkpoint.dir],
      overwrite: options.overwrite,
      resumable: true,
      resume: options.resume,
      matches: (state) => state.fingerprint === options.fingerprint,
    });
    const folder = new PrunedFolder<Entry>(staged, checkpoint, options.fingerprint);
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

  /**
   * Copies the input's top-level files and every shard (which may sit in subfolders) by their names in
   * the model folder, reading through symlinks.
   */
  private async copyInput(): Promise<void> {
    const input = resolve(this.checkpoint.dir);
    const files = new Set<string>();
    for (const name of await readdir(input)) {
      if ((await stat(join(input, name)).catch(() => undefined))?.isFile()) files.add(name);
    }
    for (const shard of this.checkpoint.shardPaths()) files.add(insideFolder(input, shard));
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

  /** The dtype a weight is stored as (compressed weights are rounded to it before they are used). */
  async storageDType(name: string): Promise<DType> {
    return writableDType(name, await this.checkpoint.info(name));
  }

  /** Writes a weight over its bytes in the staged copy, converted to the stored dtype. */
  async write(name: string, weight: Tensor): Promise<void> {
    const info = await this.checkpoint.info(name);
    const stored = weight.to(writableDType(name, info)).contiguous();
    const bytes = new Uint8Array(stored.data.buffer, stored.data.byteOffset, stored.data.byteLength);
    if (bytes.byteLength !== info.byteLength) throw new InvalidArgumentError(`${name}: ${bytes.byteLength} bytes to write over ${info.byteLength}`);
    const file = this.staged.file(insideFolder(this.checkpoint.dir, this.checkpoint.shardPath(name)));
    await this.staged.guard(file, async () => {
      let handle = this.handles.get(file);
      if (!handle) {
        handle = await open(file, 'r+');
        this.handles.set(file, handle);
      }
      let done = 0;
      while (done < bytes.byteLength) {
        const { bytesWritten } = await handle.write(bytes, done, bytes.byteLength - done, info.offset + done);
        done += bytesWritten;
      }
    });
  }

  /** Makes a finished block durable, then records it (and the report so far) as done. */
  async finishBlock(blocksDone: number, entries: Entry[], extra: Record<string, unknown>): Promise<void> {
    for (const [file, handle] of this.handles) await this.staged.guard(file, () => handle.sync());
    await this.staged.saveProgress({ fingerprint: this.runFingerprint, blocksDone, entries, extra });
  }

  async closeFiles(): Promise<void> {
    for (const handle of this.handles.values()) await handle.close();
    this.handles.clear();
  }

  /** Closes the files and gives up the staging folder's lock; an unfinished run stays resumable. */
  async close(): Promise<void> {
    await this.closeFiles();
    await this.staged.close();
  }

  /** Adds the `sparq` key to config.json, writes report.json, and renames the folder into place. */
  async commit(sparq: Record<string, unknown>, report: unknown): Promise<void> {
    await this.closeFiles();
    const configPath = this.staged.file('config.json');
    const config = JSON.parse(await readFile(configPath, 'utf8')) as Record<string, unknown>;
    config.sparq = sparq;
    await this.staged.guard(configPath, () => writeFile(configPath, `${JSON.stringify(config, null, 2)}\n`));
    const reportPath = this.staged.file('report.json');
    await this.staged.guard(reportPath, () => writeFile(reportPath, `${JSON.stringify(report, null, 2)}\n`));
    await this.staged.commit();
  }
}
