// What `sparq inspect` reports about a model folder: architecture, parameter count, dtypes, bytes, and
// the sparsity (fraction of exact zeros) of every linear layer's weight.
import { Checkpoint } from '../io/checkpoint.js';
import type { SafetensorsDType } from '../io/safetensors.js';
import { abs, thresholdMask } from '../ops.js';
import { shapeNumel } from '../tensor.js';
import { readConfig, type ModelConfig } from './config.js';
import { LLAMA_LAYOUT } from './decoder.js';

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
  const config = await readConfig(dir);
  const checkpoint = await Checkpoint.open(dir);
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
    const linearNames: string[] = [];
    for (let layer = 0; layer < config.layers; ++layer) {
      for (const linear of Object.values(LLAMA_LAYOUT.linears)) linearNames.push(`${LLAMA_LAYOUT.block(layer)}${linear}.weight`);
    }
    const linears: LinearReport[] = [];
    for (const name of linearNames) {
      const weight = await checkpoint.read(name, { dtype: 'f32' });
      const nonzero = thresholdMask(abs(weight, { inPlace: true }).reshape([1, -1]), 0).data as Uint8Array;
      let kept = 0;
      for (let i = 0; i < nonzero.length; ++i) kept += nonzero[i];
      linears.push({ name, shape: [...weight.shape], sparsity: weight.numel === 0 ? 0 : 1 - kept / weight.numel });
      options.onProgress?.(linears.length, linearNames.length);
    }
    return { dir, config, parameters, bytes, dtypes, linears };
  } finally {
    await checkpoint.close();
  }
}
