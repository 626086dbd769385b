// A new model from a config: every parameter's name and shape follows the architecture's layout, and
// values follow Hugging Face's initialisation: weights (linear and embedding) normal(0, initializer_range,
// default 0.02), norm weights 1, biases 0. Deterministic for a seed.
import type { ModelConfig } from '../models/config.js';
import { parameterPlan, type PlannedParameter } from '../models/parameters.js';
import { seededRandom } from '../pipeline/calibration.js';
import { shapeNumel, Tensor } from '../tensor/tensor.js';

/** Initial values for a planned parameter: see the file comment. */
export function initialValue(tensor: PlannedParameter, options: { std: number; random: () => number }): Tensor {
  const values = new Float32Array(shapeNumel(tensor.shape));
  if (tensor.isNorm) values.fill(1);
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
  const integers = seededRandom(options.seed ?? 0);
  const random = () => integers(2 ** 32) / 2 ** 32;
  const parameters = new Map<string, Tensor>();
  for (const t of parameterPlan(config)) parameters.set(t.name, initialValue(t, { std: options.std ?? 0.02, random }));
  return parameters;
}
