// A new model from a config: every parameter's name and shape follows the architecture's layout, and
// values follow Hugging Face's initialisation: weights (linear and embedding) normal(0, initializer_range,
// default 0.02), norm weights 1, biases 0. Deterministic for a seed.
import { LAYOUTS } from '../models/decoder.js';
import type { ModelConfig } from '../models/config.js';
import type { PlannedTensor } from '../io/safetensors.js';
import { seededRandom } from '../pipeline/calibration.js';
import { shapeNumel, Tensor } from '../tensor.js';

/** Names and shapes of every parameter of a model with this config, in checkpoint order (f32). */
export function parameterPlan(config: ModelConfig): PlannedTensor[] {
  const layout = LAYOUTS[config.architecture];
  const { hiddenSize: D, intermediateSize: I, heads, kvHeads, headDim } = config;
  const plan: PlannedTensor[] = [];
  const add = (name: string, shape: number[]) => plan.push({ name, dtype: 'f32', shape });
  const norm = (base: string, dim: number) => {
    add(`${base}.weight`, [dim]);
    if (config.norm === 'layer') add(`${base}.bias`, [dim]);
  };
  // OPT's linears all carry biases; Llama-family ones only q/k/v when attentionBias.
  const linear = (base: string, out: number, inputs: number, bias: boolean) => {
    add(`${base}.weight`, [out, inputs]);
    if (bias) add(`${base}.bias`, [out]);
  };
  const opt = config.architecture === 'opt';
  add(layout.embed, [config.vocabSize, D]);
  if (layout.positions) add(layout.positions, [config.maxPositions + (config.learnedPositionOffset ?? 0), D]);
  for (let l = 0; l < config.layers; ++l) {
    const p = layout.block(l);
    const qkvBias = opt || config.attentionBias;
    norm(p + layout.attentionNorm, D);
    linear(p + layout.linears.q, heads * headDim, D, qkvBias);
    linear(p + layout.linears.k, kvHeads * headDim, D, qkvBias);
    linear(p + layout.linears.v, kvHeads * headDim, D, qkvBias);
    linear(p + layout.linears.o, D, heads * headDim, opt);
    if (config.qkNorm && layout.qNorm && layout.kNorm) {
      norm(p + layout.qNorm, headDim);
      norm(p + layout.kNorm, headDim);
    }
    norm(p + layout.mlpNorm, D);
    if (config.mlp === 'moe') {
      const moe = layout.experts!;
      linear(p + moe.router, config.moe!.experts, D, false);
      for (let e = 0; e < config.moe!.experts; ++e) {
        linear(p + moe.expert(e) + moe.gate, I, D, false);
        linear(p + moe.expert(e) + moe.up, I, D, false);
        linear(p + moe.expert(e) + moe.down, D, I, false);
      }
    } else if (config.mlp === 'swiglu') {
      linear(p + layout.linears.gate, I, D, false);
      linear(p + layout.linears.up, I, D, false);
      linear(p + layout.linears.down, D, I, false);
    } else {
      linear(p + layout.linears.fc1, I, D, true);
      linear(p + layout.linears.fc2, D, I, true);
    }
  }
  norm(layout.finalNorm, D);
  if (!config.tiedEmbeddings) add(layout.lmHead, [config.vocabSize, D]);
  return plan;
}

/** Initial values for a planned parameter: see the file comment. */
export function initialValue(tensor: PlannedTensor, options: { std: number; random: () => number; isNorm: boolean }): Tensor {
  const values = new Float32Array(shapeNumel(tensor.shape));
  if (options.isNorm) values.fill(1);
  else if (tensor.shape.length === 2) {
    // Box–Muller from the seeded uniform stream.
    for (let i = 0; i < values.length; i += 2) {
      const radius = Math.sqrt(-2 * Math.log(1 - options.random())) * options.std;
      const angle = 2 * Math.PI * options.random();
      values[i] = radius * Math.cos(angle);
      if (i + 1 < values.length) values[i + 1] = radius * Math.sin(angle);
    }
  }
  return Tensor.fromTypedArray(values, tensor.shape);
}

/** Every parameter of a new model, by name, in checkpoint order. */
export function initialParameters(config: ModelConfig, options: { seed?: number; std?: number } = {}): Map<string, Tensor> {
  const layout = LAYOUTS[config.architecture];
  const integers = seededRandom(options.seed ?? 0);
  const random = () => integers(2 ** 32) / 2 ** 32;
  const normNames = new Set<string>();
  for (let l = 0; l < config.layers; ++l) {
    for (const n of [layout.attentionNorm, layout.mlpNorm, layout.qNorm, layout.kNorm]) if (n) normNames.add(`${layout.block(l)}${n}.weight`);
  }
  normNames.add(`${layout.finalNorm}.weight`);
  const parameters = new Map<string, Tensor>();
  for (const t of parameterPlan(config)) {
    parameters.set(t.name, initialValue(t, { std: options.std ?? 0.02, random, isNorm: normNames.has(t.name) }));
  }
  return parameters;
}
