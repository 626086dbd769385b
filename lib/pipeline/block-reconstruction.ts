// A decoder block's reconstruction objective for methods that refine a whole block after compressing its
// linears (method.refinesBlocks): the dense block's outputs Y on the calibration inputs X are kept before
// any linear is replaced; the objective is ‖block(X; W) − Y‖² / ‖Y‖², and its gradient with respect to
// the weights comes from the block recorded on a tape (lib/autograd, the function the forward runs).
// The inputs X are the calibration hidden states as the pipeline has them: the outputs of the blocks
// before, already compressed — so a block learns to do on its real inputs what the dense block would.
import type { BlockReconstruction } from '../compress/method.js';
import { blockOnTape, blockParameterNames, type Batch } from '../autograd/decoder.js';
import { Tape, type Variable } from '../autograd/tape.js';
import type { DecoderBlock, DecoderModel } from '../models/decoder.js';
import { Tensor } from '../tensor/tensor.js';
import type { CalibrationBatch } from './capture.js';

/** The dense block's outputs on every batch (the block must still hold its dense weights). */
export async function denseOutputs(model: DecoderModel, block: DecoderBlock, batches: CalibrationBatch[], seqLen: number, signal?: AbortSignal): Promise<Tensor[]> {
  const outputs: Tensor[] = [];
  for (const batch of batches) {
    const h = await batch.states.cloneAsync({ signal });
    outputs.push(await block.forward(h, batch.positions, model.invFreq, { sequenceLength: seqLen, signal }));
  }
  return outputs;
}

export async function blockReconstruction(
  model: DecoderModel,
  block: DecoderBlock,
  batches: CalibrationBatch[],
  targets: Tensor[],
  seqLen: number,
): Promise<BlockReconstruction> {
  const prefix = model.layout.block(block.index);
  const roleOf = new Map<string, { role: string; kind: 'weight' | 'bias' }>();
  for (const [role, relative] of Object.entries(model.linearRoles(block.index))) {
    roleOf.set(`${prefix}${relative}.weight`, { role, kind: 'weight' });
    roleOf.set(`${prefix}${relative}.bias`, { role, kind: 'bias' });
  }
  // Norms (and anything else that is not a linear) as stored; the linears as the block holds them now.
  const others = new Map<string, Tensor>();
  for (const name of blockParameterNames(model, block.index)) if (!roleOf.has(name)) others.set(name, await model.checkpoint.read(name, { dtype: 'f32' }));
  let targetSquares = 0;
  for (const t of targets) for (const x of t.contiguous().data as Float32Array) targetSquares += x * x;
  const denominator = targetSquares > 0 ? targetSquares : 1;

  // Steps run on chunks of a few windows (rows of whole windows, copied out of the batches once).
  interface Chunk {
    states: Tensor;
    positions: Tensor;
    target: Tensor;
  }
  const whole: Chunk[] = batches.map((b, i) => ({ states: b.states, positions: b.positions, target: targets[i] }));
  const chunked = new Map<number, Chunk[]>();
  const chunksOf = (windows: number): Chunk[] => {
    let list = chunked.get(windows);
    if (list) return list;
    list = [];
    for (const c of whole) {
      const rows = c.states.shape[0];
      for (let start = 0; start < rows; start += windows * seqLen) {
        const end = Math.min(rows, start + windows * seqLen);
        list.push({ states: c.states.narrow(start, end).clone(), positions: c.positions.narrow(start, end).clone(), target: c.target.narrow(start, end).clone() });
      }
    }
    chunked.set(windows, list);
    return list;
  };

  /** Runs the block on one chunk on a tape; the given weights are parameters (gradients wanted). */
  async function run(weights: ReadonlyMap<string, Tensor>, chunk: Chunk, withGradients: boolean) {
    const tape = new Tape();
    const variables = new Map<string, Variable>();
    const lookup = (name: string): Variable | undefined => {
      let v = variables.get(name);
      if (v) return v;
      const linear = roleOf.get(name);
      if (linear) {
        const given = linear.kind === 'weight' ? weights.get(linear.role) : undefined;
        const value = given ?? (linear.kind === 'weight' ? block.linears[linear.role]?.weight : block.linears[linear.role]?.bias);
        if (!value) return undefined;
        v = given && withGradients ? tape.parameter(given) : tape.constant(value);
      } else {
        const value = others.get(name);
        if (!value) return undefined;
        v = tape.constant(value);
      }
      variables.set(name, v);
      return v;
    };
    const batch = { positions: chunk.positions, sequenceLength: seqLen } as Batch;
    const output = await blockOnTape(tape, model, block.index, lookup, tape.constant(chunk.states), batch);
    const out = output.value.contiguous().data as Float32Array;
    const target = chunk.target.contiguous().data as Float32Array;
    const seed = new Float32Array(out.length);
    let squares = 0;
    for (let i = 0; i < out.length; ++i) {
      const d = out[i] - target[i];
      squares += d * d;
      seed[i] = (2 * d) / denominator;
    }
    return { tape, output, variables, squares, seed: Tensor.fromTypedArray(seed, output.value.shape) };
  }

  return {
    windows: whole.reduce((sum, c) => sum + c.states.shape[0] / seqLen, 0),
    async lossAndGradients(weights, step, windowsPerStep) {
      const list = chunksOf(Math.max(1, Math.floor(windowsPerStep)));
      const { tape, output, variables, squares, seed } = await run(weights, list[step % list.length], true);
      tape.backward(output, seed);
      const gradients = new Map<string, Tensor>();
      for (const [role, w] of weights) {
        const v = variables.get(`${prefix}${model.linearRoles(block.index)[role]}.weight`);
        gradients.set(role, v?.grad ?? Tensor.zeros(w.shape));
      }
      // The gradient is of the whole objective's share of this batch: Σ over the batch / Σ‖Y‖² of all.
      return { loss: squares / denominator, gradients };
    },
    async loss(weights) {
      let squares = 0;
      for (const chunk of whole) squares += (await run(weights, chunk, false)).squares;
      return squares / denominator;
    },
  };
}
