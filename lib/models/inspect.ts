// What `sparq inspect` reports about a model folder: architecture, parameter count, dtypes and bytes as
// stored, and for every linear layer its storage format (dense, or compressed-tensors pack-quantized with
// its bits, group size and symmetry, or float-quantized FP8) and sparsity (the fraction of exact zeros of its decoded weight).
import { Checkpoint } from '../io/checkpoint.js';
import type { SafetensorsDType } from '../io/safetensors.js';
import { countZerosAsync } from '../compress/pattern.js';
import { shapeNumel } from '../tensor/tensor.js';
import { blockConfig, type LayerWidths, type ModelConfig } from './config.js';
import { DecoderModel } from './decoder.js';

export interface LinearReport {
  name: string;
  shape: number[];
  sparsity: number;
  format: 'dense' | 'pack-quantized' | 'float-quantized';
  /** Quantized linears: code bits, inputs per group (null: one scale per output channel), symmetric grid. */
  bits?: number;
  groupSize?: number | null;
  symmetric?: boolean;
  actOrder?: 'static' | 'group' | null;
}

export interface ModelReport {
  dir: string;
  config: ModelConfig;
  /** Parameters of the model as it computes (a quantized weight counts its decoded elements). */
  parameters: number;
  /** Bytes of the stored tensors. */
  bytes: number;
  /** Stored elements by dtype (packed codes count as I32 words). */
  dtypes: Partial<Record<SafetensorsDType, number>>;
  linears: LinearReport[];
  /** Each layer's widths (differ per layer after structured pruning: config.json's sparq_layer_widths). */
  layers: LayerWidths[];
  /** Per MoE layer: the width its routed experts are stored at and each one's kept width (0: removed). */
  experts?: ExpertLayerReport[];
}

export interface ExpertLayerReport {
  layer: number;
  stored: number;
  kept: number[];
}

/** Each MoE layer's expert widths: from an expert-pruning record, else every expert at its stored width. */
async function expertWidthsOf(model: DecoderModel): Promise<ExpertLayerReport[] | undefined> {
  const { config, layout } = model;
  const moe = layout.experts;
  if (!config.moe || !moe) return undefined;
  const layers: ExpertLayerReport[] = [];
  for (let l = 0; l < config.layers; ++l) {
    const recorded = config.expertWidths?.layers.get(l);
    if (recorded) {
      layers.push({ layer: l, stored: recorded.stored, kept: [...recorded.kept] });
      continue;
    }
    const gate = (e: number) => `${layout.block(l)}${moe.expert(e)}${moe.gate}.weight`;
    if (!model.checkpoint.has(gate(0))) continue;
    const widths: number[] = [];
    for (let e = 0; e < config.moe.experts; ++e) widths.push((await model.checkpoint.info(gate(e))).shape[0]);
    layers.push({ layer: l, stored: Math.max(...widths), kept: widths });
  }
  return layers;
}

export async function inspectModel(dir: string, options: { onProgress?: (done: number, total: number) => void } = {}): Promise<ModelReport> {
  const model = await DecoderModel.open(dir);
  const files = await Checkpoint.open(dir);
  try {
    const { config, checkpoint } = model;
    let parameters = 0;
    for (const name of checkpoint.names()) parameters += shapeNumel((await checkpoint.info(name)).shape);
    let bytes = 0;
    const dtypes: Partial<Record<SafetensorsDType, number>> = {};
    for (const name of files.names()) {
      const info = await files.info(name);
      bytes += info.byteLength;
      dtypes[info.dtype] = (dtypes[info.dtype] ?? 0) + shapeNumel(info.shape);
    }
    const linearNames = model.linearNames();
    const linears: LinearReport[] = [];
    for (const name of linearNames) {
      const weight = await checkpoint.read(name, { dtype: 'f32' });
      const scheme = model.quantized?.get(name.slice(0, -'.weight'.length));
      linears.push({
        name,
        shape: [...weight.shape],
        sparsity: weight.numel === 0 ? 0 : (await countZerosAsync(weight)) / weight.numel,
        format: scheme ? (scheme.type === 'float' ? 'float-quantized' : 'pack-quantized') : 'dense',
        ...(scheme ? { bits: scheme.bits, groupSize: scheme.groupSize, symmetric: scheme.symmetric, actOrder: scheme.actorder } : {}),
      });
      options.onProgress?.(linears.length, linearNames.length);
    }
    const layers = Array.from({ length: config.layers }, (_, l) => {
      const { intermediateSize, heads, kvHeads } = blockConfig(config, l);
      return { intermediateSize, heads, kvHeads };
    });
    const experts = await expertWidthsOf(model);
    return { dir, config, parameters, bytes, dtypes, linears, layers, ...(experts ? { experts } : {}) };
  } finally {
    await files.close();
    await model.close();
  }
}
