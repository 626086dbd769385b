// The output of expert pruning (compress/expert-pruning.ts): a model folder whose routed experts lost
// atoms (or whole experts), in one of two forms (models/expert-widths.ts describes the record):
//   padded  every expert at its original shape, pruned atoms as zeros — exact, loads anywhere;
//   shrunk  each expert's kept atoms first, zero-padded to the layer's widest kept expert (one width per
//           layer, as vLLM's fused MoE kernels need); sparq runs each expert at its own kept width.
// Removed experts (kept width 0) get a router bias of −1e9 on their logit in both forms. Every other
// tensor is copied as stored (same dtype); the folder is staged and renamed into place when complete,
// one tensor in memory at a time.
import { copyFile, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ExpertPlan } from '../compress/expert-pruning.js';
import { InvalidArgumentError, InvalidFileError } from '../errors.js';
import { CheckpointWriter } from '../io/checkpoint.js';
import type { PlannedTensor } from '../io/safetensors.js';
import { readJsonObject } from '../io/text.js';
import type { DecoderModel } from '../models/decoder.js';
import { REMOVED_EXPERT_LOGIT_BIAS } from '../models/expert-widths.js';
import type { DType } from '../tensor/dtype.js';
import { Tensor } from '../tensor/tensor.js';
import { StagingFolder } from './staging.js';

export type ExpertFormat = 'padded' | 'shrunk';

const STORED: Record<string, DType> = { F32: 'f32', F16: 'f16', BF16: 'bf16', F64: 'f64' };

/** What to do with one stored tensor. */
type TensorJob =
  | { kind: 'copy' }
  | { kind: 'expert'; axis: 0 | 1; kept: Int32Array; width: number }
  | { kind: 'router-bias'; removed: boolean[] };

/** The layer's stored expert width in `format`: the original, or its widest kept expert. */
export function layerWidth(plan: ExpertPlan['layers'][number], format: ExpertFormat): number {
  return format === 'padded' ? Math.max(...plan.experts.map((e) => e.width)) : Math.max(1, ...plan.experts.map((e) => e.kept.length));
}

/** The `sparq_experts` record of a plan in `format`. */
export function expertRecord(plan: ExpertPlan, format: ExpertFormat): Record<string, unknown> {
  return {
    format,
    layers: Object.fromEntries(plan.layers.map((l) => [String(l.layer), { stored: layerWidth(l, format), kept: l.experts.map((e) => e.kept.length) }])),
  };
}

/** Copies a row-major [R, C] typed array's kept rows (axis 0) or columns (axis 1) into a zeroed one. */
function placeAtoms(source: Tensor, axis: 0 | 1, kept: Int32Array, width: number, format: ExpertFormat): Tensor {
  const [R, C] = source.shape;
  const data = source.contiguous().data as Float32Array;
  const shape = axis === 0 ? [format === 'padded' ? R : width, C] : [R, format === 'padded' ? C : width];
  const out = new (data.constructor as new (n: number) => Float32Array)(shape[0] * shape[1]);
  kept.forEach((atom, i) => {
    const to = format === 'padded' ? atom : i;
    if (axis === 0) out.set(data.subarray(atom * C, (atom + 1) * C), to * C);
    else for (let r = 0; r < R; ++r) out[r * shape[1] + to] = data[r * C + atom];
  });
  return Tensor.fromTypedArray(out, shape, source.dtype);
}

/**
 * Writes `model` with `plan` applied as `format` into `out` (refused if it exists, unless overwrite);
 * config.json gains `sparq_experts` and `sparq` (`extra`).
 */
export async function writeExpertPrunedFolder(model: DecoderModel, plan: ExpertPlan, options: { out: string; format: ExpertFormat; overwrite?: boolean; extra: Record<string, unknown> }): Promise<void> {
  const { layout, checkpoint } = model;
  const moe = layout.experts;
  if (!moe) throw new InvalidArgumentError(`${model.dir}: ${model.config.architecture} has no routed experts`);
  const jobs = new Map<string, TensorJob>();
  const biases = new Map<string, string>();
  for (const layerPlan of plan.layers) {
    const prefix = layout.block(layerPlan.layer);
    const width = layerWidth(layerPlan, options.format);
    for (const e of layerPlan.experts) {
      const base = `${prefix}${moe.expert(e.expert)}`;
      jobs.set(`${base}${moe.gate}.weight`, { kind: 'expert', axis: 0, kept: e.kept, width });
      jobs.set(`${base}${moe.up}.weight`, { kind: 'expert', axis: 0, kept: e.kept, width });
      jobs.set(`${base}${moe.down}.weight`, { kind: 'expert', axis: 1, kept: e.kept, width });
    }
    if (layerPlan.experts.some((e) => e.removed)) {
      const router = `${prefix}${moe.router}`;
      if (checkpoint.has(`${router}.bias`)) throw new InvalidArgumentError(`${router} already has a bias; removing experts needs its own logit mask`);
      const removed = layerPlan.experts.map((e) => e.removed);
      jobs.set(`${router}.bias`, { kind: 'router-bias', removed });
      biases.set(`${router}.weight`, `${router}.bias`);
    }
  }

  // The tensors in checkpoint order, each router bias right after its router's weight.
  const tensors: PlannedTensor[] = [];
  for (const name of checkpoint.names()) {
    const info = await checkpoint.info(name);
    const dtype = STORED[info.dtype];
    if (!dtype) throw new InvalidFileError(`${model.dir}: tensor '${name}' is stored as ${info.dtype}; expert pruning copies float tensors only`);
    const job = jobs.get(name);
    const shape = [...info.shape];
    if (job?.kind === 'expert' && options.format === 'shrunk') shape[job.axis] = job.width;
    tensors.push({ name, dtype, shape });
    const bias = biases.get(name);
    if (bias) tensors.push({ name: bias, dtype: 'f32', shape: [info.shape[0]] });
  }

  const staged = await StagingFolder.open({ target: options.out, inputs: [model.dir], overwrite: options.overwrite, resumable: false });
  try {
    const writer = await CheckpointWriter.create(staged.path, tensors, { maxShardBytes: 4 * 2 ** 30, metadata: { format: 'pt' } });
    try {
      for (const t of tensors) {
        const job = jobs.get(t.name) ?? { kind: 'copy' };
        if (job.kind === 'router-bias') {
          await writer.write(t.name, Tensor.fromTypedArray(Float32Array.from(job.removed, (r) => (r ? REMOVED_EXPERT_LOGIT_BIAS : 0))));
          continue;
        }
        const stored = await checkpoint.read(t.name);
        await writer.write(t.name, job.kind === 'expert' ? placeAtoms(stored, job.axis, job.kept, job.width, options.format) : stored);
      }
      await staged.guard(staged.path, () => writer.close());
    } catch (error) {
      await writer.abort();
      throw error;
    }
    const config = await readJsonObject(join(model.dir, 'config.json'));
    config.sparq_experts = expertRecord(plan, options.format);
    config.sparq = options.extra;
    await staged.guard(staged.path, async () => {
      await writeFile(join(staged.path, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
      await copyCompanions(model.dir, staged.path);
    });
    await staged.commit();
  } catch (error) {
    await staged.close();
    throw error;
  }
}

/** The input's other top-level files (tokenizer, generation config, …), not its weights or config. */
async function copyCompanions(from: string, to: string): Promise<void> {
  for (const name of await readdir(from)) {
    if (name === 'config.json' || name.endsWith('.safetensors') || name === 'model.safetensors.index.json' || name === 'report.json') continue;
    if ((await stat(join(from, name))).isFile()) await copyFile(join(from, name), join(to, name));
  }
}
