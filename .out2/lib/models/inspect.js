// What `sparq inspect` reports about a model folder: architecture, parameter count, dtypes and bytes as
// stored, and for every linear layer its storage format (dense, or compressed-tensors pack-quantized with
// its bits, group size and symmetry) and sparsity (the fraction of exact zeros of its decoded weight).
import { Checkpoint } from '../io/checkpoint.js';
import { countZerosAsync } from '../compress/pattern.js';
import { shapeNumel } from '../tensor/tensor.js';
import { DecoderModel } from './decoder.js';
/** Each MoE layer's expert widths: from an expert-pruning record, else every expert at its stored width. */
async function expertWidthsOf(model) {
    const { config, layout } = model;
    const moe = layout.experts;
    if (!config.moe || !moe)
        return undefined;
    const layers = [];
    for (let l = 0; l < config.layers; ++l) {
        const recorded = config.expertWidths?.layers.get(l);
        if (recorded) {
            layers.push({ layer: l, stored: recorded.stored, kept: [...recorded.kept] });
            continue;
        }
        const gate = (e) => `${layout.block(l)}${moe.expert(e)}${moe.gate}.weight`;
        if (!model.checkpoint.has(gate(0)))
            continue;
        const widths = [];
        for (let e = 0; e < config.moe.experts; ++e)
            widths.push((await model.checkpoint.info(gate(e))).shape[0]);
        layers.push({ layer: l, stored: Math.max(...widths), kept: widths });
    }
    return layers;
}
export async function inspectModel(dir, options = {}) {
    const model = await DecoderModel.open(dir);
    const files = await Checkpoint.open(dir);
    try {
        const { config, checkpoint } = model;
        let parameters = 0;
        for (const name of checkpoint.names())
            parameters += shapeNumel((await checkpoint.info(name)).shape);
        let bytes = 0;
        const dtypes = {};
        for (const name of files.names()) {
            const info = await files.info(name);
            bytes += info.byteLength;
            dtypes[info.dtype] = (dtypes[info.dtype] ?? 0) + shapeNumel(info.shape);
        }
        const linearNames = model.linearNames();
        const linears = [];
        for (const name of linearNames) {
            const weight = await checkpoint.read(name, { dtype: 'f32' });
            const scheme = model.quantized?.get(name.slice(0, -'.weight'.length));
            linears.push({
                name,
                shape: [...weight.shape],
                sparsity: weight.numel === 0 ? 0 : (await countZerosAsync(weight)) / weight.numel,
                format: scheme ? 'pack-quantized' : 'dense',
                ...(scheme ? { bits: scheme.bits, groupSize: scheme.groupSize, symmetric: scheme.symmetric, actOrder: scheme.actorder } : {}),
            });
            options.onProgress?.(linears.length, linearNames.length);
        }
        const experts = await expertWidthsOf(model);
        return { dir, config, parameters, bytes, dtypes, linears, ...(experts ? { experts } : {}) };
    }
    finally {
        await files.close();
        await model.close();
    }
}
//# sourceMappingURL=inspect.js.map