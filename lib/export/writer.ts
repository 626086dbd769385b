// Writers of a compression run's output folder, one per output format: `dense` (the input's files with
// the compressed weights written over their bytes: zeros in place, dequantized values; loads anywhere)
// and `compressed-tensors` (quantized linears as pack-quantized tensors, for vLLM). Each builds its folder
// in a staging folder (staging.ts) that is a loadable model from the start — a resumed run replays its
// finished blocks from it, and the perplexity after compression is measured on it — and renames it into
// place when complete. Progress is recorded per finished block, so an interrupted run can resume.
import { createHash } from 'node:crypto';
import { open, readFile, writeFile, type FileHandle } from 'node:fs/promises';
import type { CompressedLinear } from '../compress/method.js';
import type { DType } from '../tensor/dtype.js';
import type { Checkpoint } from '../io/checkpoint.js';
import type { Tensor } from '../tensor/tensor.js';
import { StagingFolder } from './staging.js';

export const OUTPUT_FORMATS = ['dense', 'compressed-tensors', 'packed'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

export interface ResumeState<Entry> {
  fingerprint: string;
  blocksDone: number;
  entries: Entry[];
  extra: Record<string, unknown>;
}

/** A stable digest of the run's inputs: a resumed run must match the interrupted one exactly. */
export function fingerprint(parts: unknown[], windows: readonly Int32Array[]): string {
  const hash = createHash('sha256');
  hash.update(JSON.stringify(parts));
  for (const w of windows) hash.update(new Uint8Array(w.buffer, w.byteOffset, w.byteLength));
  return hash.digest('hex');
}

/** The resumable staging folder of a writer: resumed when `resume` is set and the partial run's fingerprint matches. */
export function openResumableStaging<Entry>(input: Checkpoint, target: string, options: { overwrite?: boolean; resume?: boolean; fingerprint: string }): Promise<StagingFolder<ResumeState<Entry>>> {
  return StagingFolder.open<ResumeState<Entry>>({
    target,
    inputs: [input.dir],
    overwrite: options.overwrite,
    resumable: true,
    resume: options.resume,
    matches: (state) => state.fingerprint === options.fingerprint,
  });
}

export abstract class ModelFolderWriter<Entry> {
  private readonly handles = new Map<string, FileHandle>();

  protected constructor(
    protected readonly staged: StagingFolder<ResumeState<Entry>>,
    protected readonly input: Checkpoint,
    private readonly runFingerprint: string,
  ) {}

  get target(): string {
    return this.staged.target;
  }

  /** The staging folder: a loadable model folder whose finished blocks hold the compressed weights. */
  get staging(): string {
    return this.staged.path;
  }

  get resumed(): ResumeState<Entry> | undefined {
    return this.staged.resumed;
  }

  /** The dtype a linear's weight (and its quantization scales) is stored in. */
  abstract storageDType(name: string): Promise<DType>;

  /**
   * Stores one compressed linear: `result` as the method returned it, `weight` the f32 weight the model
   * computes with (rounded to the storage dtype).
   */
  abstract writeLinear(name: string, result: CompressedLinear, weight: Tensor): Promise<void>;

  /**
   * Test hook (CompressOptions.testHook 'write'): when set, each staged write stops half way and calls it,
   * so a test can interrupt a run with a tensor half written.
   */
  midWrite: (() => void | Promise<void>) | undefined;

  /** Writes bytes at an offset of a staged file (handles stay open until the block is finished). */
  protected async writeAt(file: string, offset: number, bytes: Uint8Array): Promise<void> {
    await this.staged.guard(file, async () => {
      let handle = this.handles.get(file);
      if (!handle) {
        handle = await open(file, 'r+');
        this.handles.set(file, handle);
      }
      const opened = handle;
      const writeRange = async (from: number, to: number) => {
        for (let done = from; done < to; ) done += (await opened.write(bytes, done, to - done, offset + done)).bytesWritten;
      };
      const half = this.midWrite ? Math.floor(bytes.byteLength / 2) : bytes.byteLength;
      await writeRange(0, half);
      if (half < bytes.byteLength) {
        await this.midWrite?.();
        await writeRange(half, bytes.byteLength);
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

  /** Removes the staging folder: a run that failed in a way no --resume can fix (nothing is kept). */
  async discard(): Promise<void> {
    await this.closeFiles();
    await this.staged.discard();
  }

  /** Closes the files and gives up the staging folder's lock; an unfinished run stays resumable. */
  async close(): Promise<void> {
    await this.closeFiles();
    await this.staged.close();
  }

  /** Adds the `sparq` key to config.json, writes report.json, and renames the folder into place. */
  async commit(sparq: Record<string, unknown>, report: unknown, configKeys: Record<string, unknown> = {}): Promise<void> {
    await this.closeFiles();
    const configPath = this.staged.file('config.json');
    const config = JSON.parse(await readFile(configPath, 'utf8')) as Record<string, unknown>;
    config.sparq = sparq;
    Object.assign(config, configKeys);
    await this.staged.guard(configPath, () => writeFile(configPath, `${JSON.stringify(config, null, 2)}\n`));
    const reportPath = this.staged.file('report.json');
    await this.staged.guard(reportPath, () => writeFile(reportPath, `${JSON.stringify(report, null, 2)}\n`));
    await this.staged.commit();
  }
}
