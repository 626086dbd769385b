// A structurally pruned model made smaller: from a dense folder whose removed units are zero (what
// magnitude-sp, wanda-sp and structprune write, the `padded` layout), the folder without them.
//   MLP neuron j is removed where column j of down (fc2) is all zeros: nothing it computes reaches the
//   output, so its rows of gate/up (fc1), their biases and that column go.
//   Query head h is removed where its o_proj columns are all zeros; a kv group goes with its k/v rows
//   once none of its query heads is left. Grouped-query attention needs every kv group to keep the same
//   number of query heads, so a group keeps as many as the fullest group does (zero heads fill the rest).
//   At least one neuron and one head per layer stay (a layer of zeros keeps one, reported).
// The shrunk model computes exactly what the padded one does (up to float summation order). Every layer
// with the same widths → a standard config (intermediate_size / ffn_dim, num_attention_heads,
// num_key_value_heads, head_dim); otherwise the top-level widths stay and `sparq_layer_widths` lists each
// layer's (config.ts), which only sparq reads. OPT cannot state a head_dim apart from hidden/heads, so
// OPT with fewer heads always uses the list. Mixture-of-experts experts are left as they are.
import { copyFile, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { InvalidArgumentError, UnsupportedFormatError } from '../errors.js';
import { Checkpoint, CheckpointWriter, INDEX_FILE } from '../io/checkpoint.js';
import { readJsonObject } from '../io/text.js';
import { blockConfig, isMoeLayer, type LayerWidths } from '../models/config.js';
import { DecoderModel } from '../models/decoder.js';
import type { DType } from '../tensor/dtype.js';
import { shapeNumel, Tensor } from '../tensor/tensor.js';
import { StagingFolder } from './staging.js';

export interface ShrinkOptions {
  /** A dense model folder with zeroed units (the padded layout). */
  model: string;
  out: string;
  overwrite?: boolean;
  /** Extra files to write into the folder (e.g. the run's report.json), given the summary. */
  files?: (summary: ShrinkSummary) => Record<string, string>;
  /** Default 2 GiB shards. */
  maxShardBytes?: number;
  signal?: AbortSignal;
}

export interface ShrinkSummary {
  out: string;
  parametersBefore: number;
  parametersAfter: number;
  /** Each layer's widths after shrinking. */
  layers: LayerWidths[];
  /** Whether config.json needed the per-layer list (sparq_layer_widths). */
  perLayer: boolean;
  notes: string[];
}

/** Which rows/columns each linear keeps, by role. */
interface LayerPlan {
  widths: LayerWidths;
  keptNeurons?: number[];
  keptHeads: number[];
  keptKvGroups: number[];
}

function columnHasNonzero(weight: Tensor, start: number, length: number): boolean {
  const [rows, columns] = weight.shape;
  const w = weight.data as Float32Array;
  for (let r = 0; r < rows; ++r) for (let c = start; c < start + length; ++c) if (w[r * columns + c] !== 0) return true;
  return false;
}

async function planLayer(model: DecoderModel, layer: number, notes: string[]): Promise<LayerPlan> {
  const config = blockConfig(model.config, layer);
  const roles = model.linearRoles(layer);
  const prefix = model.layout.block(layer);
  const { heads, kvHeads, headDim } = config;
  const perGroup = heads / kvHeads;
  const o = await model.read(`${prefix}${roles.o}.weight`);
  const alive = Array.from({ length: heads }, (_, h) => columnHasNonzero(o, h * headDim, headDim));
  let groups = Array.from({ length: kvHeads }, (_, g) => alive.slice(g * perGroup, (g + 1) * perGroup).filter(Boolean).length);
  if (groups.every((c) => c === 0)) {
    notes.push(`layer ${layer}: every attention head is zero; kept one`);
    groups = groups.map((_, g) => (g === 0 ? 1 : 0));
    alive[0] = true;
  }
  const keep = Math.max(...groups);
  const keptKvGroups = groups.map((c, g) => (c > 0 ? g : -1)).filter((g) => g >= 0);
  const keptHeads: number[] = [];
  for (const g of keptKvGroups) {
    const members = Array.from({ length: perGroup }, (_, i) => g * perGroup + i);
    const chosen = [...members.filter((h) => alive[h]), ...members.filter((h) => !alive[h])].slice(0, keep).sort((a, b) => a - b);
    keptHeads.push(...chosen);
  }
  let keptNeurons: number[] | undefined;
  let intermediateSize = config.intermediateSize;
  if (!isMoeLayer(model.config, layer)) {
    const down = await model.read(`${prefix}${roles.down ?? roles.fc2}.weight`);
    keptNeurons = Array.from({ length: down.shape[1] }, (_, j) => j).filter((j) => columnHasNonzero(down, j, 1));
    if (keptNeurons.length === 0) {
      notes.push(`layer ${layer}: every MLP neuron is zero; kept one`);
      keptNeurons = [0];
    }
    intermediateSize = keptNeurons.length;
  }
  return { widths: { intermediateSize, heads: keptHeads.length, kvHeads: keptKvGroups.length }, keptNeurons, keptHeads, keptKvGroups };
}

/** Indices of the rows (or columns) kept: `units` of `size` consecutive ones each. */
function expand(units: number[], size: number): number[] {
  return units.flatMap((u) => Array.from({ length: size }, (_, i) => u * size + i));
}

function takeRows(t: Tensor, rows: number[]): Tensor {
  const columns = t.shape.length > 1 ? t.shape[1] : 1;
  const src = t.data as Float32Array;
  const out = new Float32Array(rows.length * columns);
  rows.forEach((r, i) => out.set(src.subarray(r * columns, (r + 1) * columns), i * columns));
  return Tensor.fromTypedArray(out, t.shape.length > 1 ? [rows.length, columns] : [rows.length]);
}

function takeColumns(t: Tensor, kept: number[]): Tensor {
  const [rows, columns] = t.shape;
  const src = t.data as Float32Array;
  const out = new Float32Array(rows * kept.length);
  for (let r = 0; r < rows; ++r) kept.forEach((c, i) => (out[r * kept.length + i] = src[r * columns + c]));
  return Tensor.fromTypedArray(out, [rows, kept.length]);
}

/** Which rows / columns a tensor keeps (absent: all). */
interface Cut {
  rows?: number[];
  columns?: number[];
}

function applyCut(t: Tensor, cut: Cut): Tensor {
  let out = cut.rows ? takeRows(t, cut.rows) : t;
  if (cut.columns) out = takeColumns(out, cut.columns);
  return out;
}

function cutShape(shape: readonly number[], cut: Cut): number[] {
  const out = [...shape];
  if (cut.rows) out[0] = cut.rows.length;
  if (cut.columns) out[1] = cut.columns.length;
  return out;
}

/** How a tensor of layer `plan` is cut, or undefined when it is kept whole. */
function cutOf(model: DecoderModel, layer: number, plan: LayerPlan, name: string): Cut | undefined {
  const roles = model.linearRoles(layer);
  const prefix = model.layout.block(layer);
  const { headDim } = model.config;
  const qRows = expand(plan.keptHeads, headDim);
  const kvRows = expand(plan.keptKvGroups, headDim);
  const is = (role: string | undefined, suffix: string) => role !== undefined && name === `${prefix}${role}.${suffix}`;
  if (is(roles.q, 'weight') || is(roles.q, 'bias')) return { rows: qRows };
  if (is(roles.k, 'weight') || is(roles.k, 'bias') || is(roles.v, 'weight') || is(roles.v, 'bias')) return { rows: kvRows };
  if (is(roles.o, 'weight')) return { columns: qRows };
  if (plan.keptNeurons) {
    for (const role of ['gate', 'up', 'fc1']) if (is(roles[role], 'weight') || is(roles[role], 'bias')) return { rows: plan.keptNeurons };
    for (const role of ['down', 'fc2']) if (is(roles[role], 'weight')) return { columns: plan.keptNeurons };
  }
  return undefined;
}

/** config.json for the shrunk widths (see the file comment). */
function shrunkConfig(json: Record<string, unknown>, model: DecoderModel, layers: LayerWidths[]): { json: Record<string, unknown>; perLayer: boolean } {
  const config = model.config;
  const first = layers[0];
  const uniform = layers.every((l) => l.intermediateSize === first.intermediateSize && l.heads === first.heads && l.kvHeads === first.kvHeads);
  const headsChanged = layers.some((l) => l.heads !== config.heads);
  const out: Record<string, unknown> = { ...json };
  delete out.sparq_layer_widths;
  if (uniform && !(config.architecture === 'opt' && headsChanged)) {
    out[config.architecture === 'opt' ? 'ffn_dim' : 'intermediate_size'] = first.intermediateSize;
    if (config.architecture !== 'opt') {
      out.num_attention_heads = first.heads;
      out.num_key_value_heads = first.kvHeads;
      out.head_dim = config.headDim;
    }
    return { json: out, perLayer: false };
  }
  out.sparq_layer_widths = layers.map((l) => ({ intermediate_size: l.intermediateSize, num_attention_heads: l.heads, num_key_value_heads: l.kvHeads }));
  return { json: out, perLayer: true };
}

/** Writes the shrunk folder (atomically: staged, then renamed into place). */
export async function shrinkModel(options: ShrinkOptions): Promise<ShrinkSummary> {
  const model = await DecoderModel.open(options.model);
  let staged: StagingFolder | undefined;
  try {
    if (!(model.checkpoint instanceof Checkpoint)) throw new UnsupportedFormatError(`${options.model} is quantized or packed; shrink the dense pruned folder (--layout padded output) before quantizing`);
    const notes: string[] = [];
    const plans: LayerPlan[] = [];
    for (let layer = 0; layer < model.config.layers; ++layer) {
      if (options.signal?.aborted) throw new InvalidArgumentError('shrink: interrupted');
      plans.push(await planLayer(model, layer, notes));
    }
    const layerOf = (name: string) => {
      for (let l = 0; l < model.config.layers; ++l) if (name.startsWith(model.layout.block(l))) return l;
      return -1;
    };
    const names = model.checkpoint.names();
    const planned: { name: string; dtype: DType; shape: number[]; cut?: Cut }[] = [];
    let parametersBefore = 0;
    let parametersAfter = 0;
    for (const name of names) {
      const info = await model.checkpoint.info(name);
      const layer = layerOf(name);
      const cut = layer >= 0 ? cutOf(model, layer, plans[layer], name) : undefined;
      const shape = cut ? cutShape(info.shape, cut) : info.shape;
      parametersBefore += shapeNumel(info.shape);
      parametersAfter += shapeNumel(shape);
      planned.push({ name, dtype: dtypeOf(info.dtype), shape: [...shape], cut });
    }
    staged = await StagingFolder.open({ target: options.out, inputs: [model.dir], overwrite: options.overwrite, resumable: false });
    const writer = await CheckpointWriter.create(staged.path, planned, { maxShardBytes: options.maxShardBytes ?? 2 * 2 ** 30, metadata: { format: 'pt' } });
    try {
      for (const p of planned) {
        if (options.signal?.aborted) throw new InvalidArgumentError('shrink: interrupted');
        const stored = await model.checkpoint.read(p.name);
        const value = p.cut ? await applyCut(await stored.toAsync('f32'), p.cut).toAsync(stored.dtype) : stored;
        await writer.write(p.name, value);
      }
      await writer.close();
    } catch (error) {
      await writer.abort();
      throw error;
    }
    const { json, perLayer } = shrunkConfig(await readJsonObject(join(model.dir, 'config.json')), model, plans.map((p) => p.widths));
    await writeFile(staged.file('config.json'), `${JSON.stringify(json, null, 2)}\n`);
    for (const file of await readdir(model.dir)) {
      if (file === 'config.json' || file === INDEX_FILE || file.endsWith('.safetensors')) continue;
      if ((await stat(join(model.dir, file))).isFile()) await copyFile(join(model.dir, file), staged.file(file));
    }
    const summary: ShrinkSummary = { out: options.out, parametersBefore, parametersAfter, layers: plans.map((p) => p.widths), perLayer, notes };
    for (const [file, text] of Object.entries(options.files?.(summary) ?? {})) await writeFile(staged.file(file), text);
    await staged.commit();
    return summary;
  } finally {
    await staged?.close();
    await model.close();
  }
}

function dtypeOf(stored: string): DType {
  const map: Record<string, DType> = { F32: 'f32', F16: 'f16', BF16: 'bf16', F64: 'f64' };
  const dtype = map[stored];
  if (!dtype) throw new UnsupportedFormatError(`shrink: tensors stored as ${stored} are not supported (float checkpoints only)`);
  return dtype;
}
