// What `sparq inspect` reports about a model folder: architecture, parameter count, dtypes, bytes, and
// the sparsity (fraction of exact zeros) of every linear layer's weight.
import type { SafetensorsDType } from '../io/safetensors.js';
import { countZeros } from '../compress/pattern.js';
import { shapeNumel } from '../tensor.js';
import type { ModelConfig } from './config.js';
import { DecoderModel } from './decoder.js';

export interface LinearReport {
  name: string;
  shape: number[];
  sparsity: number;
}

export interface ModelReport {
  dir: string;
  config: ModelConfig;
  parameters: number;
  bytes: number;
  dtypes: Partial<Record<SafetensorsDType, number>>;
  linears: LinearReport[];
}

export async function inspectModel(dir: string, options: { onProgress?: (done: number, total: number) => void } = {}): Promise<ModelReport> {
  const model = await DecoderModel.open(dir);
  const { config, checkpoint } = model;
  try {
    let parameters = 0;
    let bytes = 0;
    const dtypes: Partial<Record<SafetensorsDType, number>> = {};
    for (const name of checkpoint.names()) {
      const info = await checkpoint.info(name);
      const count = shapeNumel(info.shape);
      parameters += count;
      bytes += info.byteLength;
      dtypes[info.dtype] = (dtypes[info.dtype] ?? 0) + count;
    }
    const linearNames = model.linearNames();
    const linears: LinearReport[] = [];
    for (const name of linearNames) {
      const weight = await checkpoint.read(name, { dtype: 'f32' });
      linears.push({ name, shape: [...weight.shape], sparsity: weight.numel === 0 ? 0 : countZeros(weight) / weight.numel });
      options.onProgress?.(linears.length, linearNames.length);
    }
    return { dir, config, parameters, bytes, dtypes, linears };
  } finally {
    await model.close();
  }
}
