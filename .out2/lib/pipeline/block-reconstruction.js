import { blockOnTape, blockParameterNames } from '../autograd/decoder.js';
import { Tape } from '../autograd/tape.js';
import { Tensor } from '../tensor/tensor.js';
/** The dense block's outputs on every batch (the block must still hold its dense weights). */
export async function denseOutputs(model, block, batches, seqLen, signal) {
    const outputs = [];
    for (const batch of batches) {
        const h = await batch.states.cloneAsync({ signal });
        outputs.push(await block.forward(h, batch.positions, model.invFreq, { sequenceLength: seqLen, signal }));
    }
    return outputs;
}
export async function blockReconstruction(model, block, batches, targets, seqLen) {
    const prefix = model.layout.block(block.index);
    const roleOf = new Map();
    for (const [role, relative] of Object.entries(model.linearRoles(block.index))) {
        roleOf.set(`${prefix}${relative}.weight`, { role, kind: 'weight' });
        roleOf.set(`${prefix}${relative}.bias`, { role, kind: 'bias' });
    }
    // Norms (and anything else that is not a linear) as stored; the linears as the block holds them now.
    const others = new Map();
    for (const name of blockParameterNames(model, block.index))
        if (!roleOf.has(name))
            others.set(name, await model.checkpoint.read(name, { dtype: 'f32' }));
    let targetSquares = 0;
    for (const t of targets)
        for (const x of t.contiguous().data)
            targetSquares += x * x;
    const denominator = targetSquares > 0 ? targetSquares : 1;
    const whole = batches.map((b, i) => ({ states: b.states, positions: b.positions, target: targets[i] }));
    const chunked = new Map();
    const chunksOf = (windows) => {
        let list = chunked.get(windows);
        if (list)
            return list;
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
    async function run(weights, chunk, withGradients) {
        const tape = new Tape();
        const variables = new Map();
        const lookup = (name) => {
            let v = variables.get(name);
            if (v)
                return v;
            const linear = roleOf.get(name);
            if (linear) {
                const given = linear.kind === 'weight' ? weights.get(linear.role) : undefined;
                const value = given ?? (linear.kind === 'weight' ? block.linears[linear.role]?.weight : block.linears[linear.role]?.bias);
                if (!value)
                    return undefined;
                v = given && withGradients ? tape.parameter(given) : tape.constant(value);
            }
            else {
                const value = others.get(name);
                if (!value)
                    return undefined;
                v = tape.constant(value);
            }
            variables.set(name, v);
            return v;
        };
        const batch = { positions: chunk.positions, sequenceLength: seqLen };
        const output = await blockOnTape(tape, model, block.index, lookup, tape.constant(chunk.states), batch);
        const out = output.value.contiguous().data;
        const target = chunk.target.contiguous().data;
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
            const gradients = new Map();
            for (const [role, w] of weights) {
                const v = variables.get(`${prefix}${model.linearRoles(block.index)[role]}.weight`);
                gradients.set(role, v?.grad ?? Tensor.zeros(w.shape));
            }
            // The gradient is of the whole objective's share of this batch: Σ over the batch / Σ‖Y‖² of all.
            return { loss: squares / denominator, gradients };
        },
        async loss(weights) {
            let squares = 0;
            for (const chunk of whole)
                squares += (await run(weights, chunk, false)).squares;
            return squares / denominator;
        },
    };
}
//# sourceMappingURL=block-reconstruction.js.map