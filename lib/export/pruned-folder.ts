// The output of a pruning run: a Hugging Face model folder identical to the input except for the
// compressed weights (pruned entries as zeros, same dtypes, names and shards) and config.json's `sparq`
// key. It is built in a staging folder beside the target: the input's files are copied there first, and
// each finished block's weights are written over their bytes in place (same header, same offsets). A
// progress file records the finished blocks so that --resume can continue an interrupted run; only a
// complete folder is renamed to the target.
import { createHash } from 'node:crypto';
import { copyFile, mkdir, open, readdir, readFile, realpath, rename, rm, stat, writeFile, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { InvalidArgumentError, InvalidFileError } from '../errors.js';
import type { Checkpoint } from '../io/checkpoint.js';
import type { TensorInfo } from '../io/safetensors.js';
import type { DType } from '../dtype.js';
import type { Tensor } from '../tensor.js';

const PROGRESS_FILE = 'sparq-progress.json';

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

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
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
    readonly target: string,
    readonly staging: string,
    private readonly checkpoint: Checkpoint,
    private readonly overwrite: boolean,
    private readonly runFingerprint: string,
    readonly resumed: ResumeState<Entry> | undefined,
  ) {}

  /** The staging folder used for a target (stable, so that --resume finds it). */
  static stagingPath(target: string): string {
    return join(dirname(resolve(target)), `.${basename(resolve(target))}.sparq-partial`);
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
    const input = await realpath(checkpoint.dir);
    const out = resolve(target);
    if ((await exists(out)) && (await realpath(out)) === input) {
      throw new InvalidArgumentError(`--out ${target} is the input model folder; write the pruned model to a new folder`);
    }
    if (out === input || out.startsWith(`${input}/`)) throw new InvalidArgumentError(`--out ${target} is inside the input model folder; choose a folder outside it`);
    if ((await exists(out)) && !options.overwrite) {
      throw new InvalidArgumentError(`output folder ${target} already exists (pass --overwrite to replace it)`);
    }
    const staging = PrunedFolder.stagingPath(target);
    if (await exists(staging)) {
      if (options.resume) {
        const state = await PrunedFolder.readState<Entry>(staging);
        if (state && state.fingerprint === options.fingerprint) {
          return new PrunedFolder(target, staging, checkpoint, options.overwrite ?? false, options.fingerprint, state);
        }
        if (!options.overwrite) {
          throw new InvalidArgumentError(
            `the interrupted run at ${staging} used a different model, recipe or calibration; it cannot be resumed with these options (pass --overwrite to start over)`,
          );
        }
      } else if (!options.overwrite) {
        throw new InvalidArgumentError(`an interrupted run is kept at ${staging}: pass --resume to continue it, or --overwrite to start over`);
      }
      await rm(staging, { recursive: true, force: true });
    }
    await mkdir(staging);
    const folder = new PrunedFolder<Entry>(target, staging, checkpoint, options.overwrite ?? false, options.fingerprint, undefined);
    await folder.copyInput(input);
    await folder.saveState({ fingerprint: options.fingerprint, blocksDone: 0, entries: [], extra: {} });
    return folder;
  }

  private static async readState<Entry>(staging: string): Promise<ResumeState<Entry> | undefined> {
    try {
      return JSON.parse(await readFile(join(staging, PROGRESS_FILE), 'utf8')) as ResumeState<Entry>;
    } catch {
      return undefined;
    }
  }

  /** Copies the input's top-level files and every shard (which may sit in subfolders). */
  private async copyInput(input: string): Promise<void> {
    const files = new Set<string>();
    for (const entry of await readdir(input, { withFileTypes: true })) if (entry.isFile()) files.add(entry.name);
    for (const shard of this.checkpoint.shardPaths()) files.add(relative(input, await realpath(shard)));
    for (const file of files) {
      await mkdir(dirname(join(this.staging, file)), { recursive: true });
      await copyFile(join(input, file), join(this.staging, file));
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
    const file = join(this.staging, relative(this.checkpoint.dir, this.checkpoint.shardPath(name)));
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
  }

  /** Makes a finished block durable, then records it (and the report so far) as done. */
  async finishBlock(blocksDone: number, entries: Entry[], extra: Record<string, unknown>): Promise<void> {
    for (const handle of this.handles.values()) await handle.sync();
    await this.saveState({ fingerprint: this.runFingerprint, blocksDone, entries, extra });
  }

  private async saveState(state: ResumeState<Entry>): Promise<void> {
    const path = join(this.staging, PROGRESS_FILE);
    await writeFile(`${path}.tmp`, JSON.stringify(state));
    await rename(`${path}.tmp`, path);
  }

  async closeFiles(): Promise<void> {
    for (const handle of this.handles.values()) await handle.close();
    this.handles.clear();
  }

  /** Adds the `sparq` key to config.json, writes report.json, and renames the folder into place. */
  async commit(sparq: Record<string, unknown>, report: unknown): Promise<void> {
    await this.closeFiles();
    const configPath = join(this.staging, 'config.json');
    const config = JSON.parse(await readFile(configPath, 'utf8')) as Record<string, unknown>;
    config.sparq = sparq;
    await writeFile(configPath, `${JSON.stringify(config, null, 2)}\n`);
    await writeFile(join(this.staging, 'report.json'), `${JSON.stringify(report, null, 2)}\n`);
    await rm(join(this.staging, PROGRESS_FILE), { force: true });
    const out = resolve(this.target);
    const previous = `${this.staging}.previous`;
    const replace = await exists(out);
    if (replace && !this.overwrite) throw new InvalidArgumentError(`output folder ${this.target} appeared during the run; not replacing it without --overwrite`);
    // Move the old folder aside first, so there is no moment without a complete folder at the target.
    if (replace) await rename(out, previous);
    await rename(this.staging, out);
    if (replace) await rm(previous, { recursive: true, force: true });
  }
}
