// The `packed` output of a compression run: a sparq packed folder (lib/io/packed-folder.ts) written by the
// run itself, for results that compressed-tensors cannot carry — int4 codes with 16-bit outliers beside
// them (GWQ). `sparq generate` runs such a linear through the int4 kernel and adds the outliers' CSR
// product. While the run goes, the staging folder is the dense output (dense-folder.ts: a loadable model
// for resuming and for the perplexity after compression) and each quantized linear's packed tensors go to a
// side file; at commit the folder is rebuilt as packed shards: one with every tensor that is not a packed
// linear, then one per block.
//   int4 layers    W4 codes in contiguous groups (no act-order groups), symmetric or not; scales in the
//                  model's dtype; outliers as weight_outlier_row_ptr / _cols / _values (f16)
//   other linears  as the dense output stores them (pruned-only, ignored, or not assigned)
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { CompressedLinear } from '../compress/method.js';
import { groupColumns, type QuantizationScheme } from '../compress/quantizer.js';
import { InvalidArgumentError } from '../errors.js';
import { Checkpoint, INDEX_FILE } from '../io/checkpoint.js';
import { PACKED_FOLDER_VERSION, packedLayerEntry, packedLayerTensors, type PackedLayerEntry } from '../io/packed-folder.js';
import { SafetensorsFile, SafetensorsWriter } from '../io/safetensors.js';
import type { Int4Weight } from '../tensor/packed.js';
import { packCodesAsync } from '../tensor/quant.js';
import type { Tensor } from '../tensor/tensor.js';
import { DenseFolder } from './dense-folder.js';
import { insideFolder } from './staging.js';

const SIDE_FOLDER = 'sparq-packed-linears';

/** Refuses a quantization scheme the int4 packed format cannot hold, naming the linear. */
export function checkPackable(name: string, scheme: QuantizationScheme): void {
  if (scheme.bits !== 4) throw new InvalidArgumentError(`${name}: --format packed stores 4-bit codes (the int4 kernels), not W${scheme.bits}; use --bits 4, or --format dense for a W${scheme.bits} fake-quantized model`);
  if (scheme.actOrder === 'group') throw new InvalidArgumentError(`${name}: act-order groups put inputs out of order; --format packed needs contiguous groups (--act-order static or none)`);
}

async function writeSafetensors(path: string, tensors: [string, Tensor][]): Promise<void> {
  const writer = await SafetensorsWriter.create(path, tensors.map(([name, t]) => ({ name, dtype: t.dtype, shape: t.shape })), { format: 'pt' });
  for (const [name, t] of tensors) await writer.write(name, t);
  await writer.close();
}

export class PackedOutputFolder<Entry> extends DenseFolder<Entry> {
  private blockLinears: string[][] = [];

  /** `blockLinears`: the block linears' module names, block by block (the packed shards' order). */
  static async beginPacked<Entry>(input: Checkpoint, target: string, blockLinears: string[][], options: { overwrite?: boolean; resume?: boolean; fingerprint: string }): Promise<PackedOutputFolder<Entry>> {
    const folder = await DenseFolder.beginAs<Entry, PackedOutputFolder<Entry>>(input, target, options, (staged) => new PackedOutputFolder<Entry>(staged, input, options.fingerprint));
    folder.blockLinears = blockLinears;
    return folder;
  }

  private sideFile(name: string, ext = 'safetensors'): string {
    return this.staged.file(join(SIDE_FOLDER, `${name}.${ext}`));
  }

  /** The dense weight over its bytes (as the dense output), and the packed linear in its side file. */
  override async writeLinear(name: string, result: CompressedLinear, weight: Tensor): Promise<void> {
    await super.writeLinear(name, result, weight);
    const q = result.quantized;
    if (!q) return;
    checkPackable(name, q.scheme);
    const [rows, cols] = weight.shape;
    const scaleDType = await this.storageDType(name);
    const int4: Int4Weight = {
      format: 'int4',
      outFeatures: rows,
      inFeatures: cols,
      packed: await packCodesAsync(q.codes, 4),
      scales: await q.scales.toAsync(scaleDType === 'f64' ? 'f32' : scaleDType),
      ...(q.zeros ? { zeros: q.zeros } : {}),
      groupSize: groupColumns(q.scheme, cols),
      ...(result.outliers ? { outliers: result.outliers } : {}),
    };
    const path = this.sideFile(name);
    await this.staged.guard(path, async () => {
      await mkdir(join(this.staging, SIDE_FOLDER), { recursive: true });
      await writeSafetensors(path, [...packedLayerTensors(int4)].map(([suffix, t]) => [`${name}.${suffix}`, t] as [string, Tensor]));
      await writeFile(this.sideFile(name, 'json'), JSON.stringify(packedLayerEntry(int4)));
    });
  }

  /** Rebuilds the staged dense folder as packed shards, then commits as every writer does. */
  override async commit(sparq: Record<string, unknown>, report: unknown): Promise<void> {
    await this.closeFiles();
    const dense = await Checkpoint.open(this.staging);
    const layers: Record<string, PackedLayerEntry> = {};
    const weightMap: Record<string, string> = {};
    const oldShards = new Set(dense.shardPaths().map((p) => insideFolder(this.staging, p)));
    const shards = this.blockLinears.length + 1;
    const shardName = (i: number) => `model-packed-${String(i + 1).padStart(5, '0')}-of-${String(shards).padStart(5, '0')}.safetensors`;
    const packedNames = new Set<string>();
    for (const names of this.blockLinears) for (const name of names) if (await exists(this.sideFile(name))) packedNames.add(name);
    try {
      const rest: [string, Tensor][] = [];
      for (const name of dense.names()) {
        if (name.endsWith('.weight') && packedNames.has(name.slice(0, -'.weight'.length))) continue;
        rest.push([name, await dense.read(name)]);
      }
      const first = this.staged.file(shardName(0));
      await this.staged.guard(first, () => writeSafetensors(first, rest));
      for (const [name] of rest) weightMap[name] = shardName(0);
      for (let b = 0; b < this.blockLinears.length; ++b) {
        const tensors: [string, Tensor][] = [];
        for (const name of this.blockLinears[b]) {
          if (!packedNames.has(name)) continue;
          const side = await SafetensorsFile.open(this.sideFile(name));
          try {
            for (const tensor of side.tensors.keys()) tensors.push([tensor, await side.read(tensor)]);
          } finally {
            await side.close();
          }
          layers[name] = JSON.parse(await readFile(this.sideFile(name, 'json'), 'utf8')) as PackedLayerEntry;
        }
        if (tensors.length === 0) continue;
        const file = this.staged.file(shardName(b + 1));
        await this.staged.guard(file, () => writeSafetensors(file, tensors));
        for (const [name] of tensors) weightMap[name] = shardName(b + 1);
      }
    } finally {
      await dense.close();
    }
    for (const shard of oldShards) await this.staged.guard(this.staged.file(shard), () => rm(this.staged.file(shard), { force: true }));
    await this.staged.guard(this.staged.file(SIDE_FOLDER), () => rm(this.staged.file(SIDE_FOLDER), { recursive: true, force: true }));
    let total = 0;
    for (const file of new Set(Object.values(weightMap))) total += (await stat(this.staged.file(file))).size;
    const indexPath = this.staged.file(INDEX_FILE);
    await this.staged.guard(indexPath, () => writeFile(indexPath, `${JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2)}\n`));
    await super.commit({ ...sparq, format: 'packed' }, report, { sparq_format: { version: PACKED_FOLDER_VERSION, layers } });
  }
}

async function exists(path: string): Promise<boolean> {
  return Boolean(await stat(path).catch(() => undefined));
}

