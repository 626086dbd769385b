// The linear layers of the generating decoder. Every projection (q, k, v, o, gate/up/down, OPT's
// fc1/fc2, the router, each expert's, lm_head) is a LinearWeight: whatever its storage, it maps x [T, in]
// to y = x·Wᵀ + b [T, out]. Two implementations: DenseLinear (f32 weights through gemm) and PackedLinear
// (a packed weight — int4, 2:4, 2:4+int4, BSR, BSR-int4, or a dense f16/bf16 one — through its packed
// kernel); `loadLinear` chooses from how the checkpoint stores the layer:
//
//   sparq packed folder layer                      → PackedLinear of its format ('2:4', 'bsr-int4', …)
//   compressed-tensors W4, contiguous groups       → PackedLinear 'int4 (compressed-tensors)', codes kept packed
//   compressed-tensors other (W8, act-order group) → decoded to dense f32 at load (the kernel cannot run it)
//   dense f16/bf16                                 → PackedLinear 'dense-f16'/'dense-bf16' in the stored dtype
//   dense f32                                      → DenseLinear 'dense-f32'
//
// With weights 'f32' every layer is decoded to dense f32 instead (the reference the kernels are checked against).
import { dotAsync } from '../tensor/ops.js';
import { denseWeight, LINEAR_OPS, packedLinear, packedLinearAsync, unpackWeight } from '../tensor/packed.js';
import { supportsOp } from '../tensor/native.js';
import { int4WeightFromCt, PackedCheckpoint } from '../io/packed-folder.js';
import { ctShape } from '../io/compressed-tensors.js';
import { INLINE_MULTIPLY_ADDS } from './inline.js';
import { CtCheckpoint, decodeCtStoredLinear } from '../io/compressed-tensors.js';
import { BackendUnavailableError, NonFiniteError, ShapeMismatchError } from '../errors.js';
/** A packed weight (or a dense f16/bf16 one) run by its packed kernel (lib/tensor/packed.ts). */
export class PackedLinear {
    weight;
    bias;
    format;
    name;
    inFeatures;
    outFeatures;
    constructor(weight, bias, format, 
    /** The layer's module name, for errors. */
    name = '') {
        this.weight = weight;
        this.bias = bias;
        this.format = format;
        this.name = name;
        this.outFeatures = weight.outFeatures;
        this.inFeatures = weight.inFeatures;
        // A backend without this format's kernel is refused at load, by layer, not at the first token.
        const device = weight.format === 'dense' ? weight.values.device : 'cpu';
        for (const op of [LINEAR_OPS[weight.format], ...(weight.outliers ? [LINEAR_OPS.bsr] : [])]) {
            if (!supportsOp(op, device)) {
                throw new BackendUnavailableError(`${name || 'a linear layer'}: the ${device} backend has no ${op} kernel, which the '${weight.format}' format needs (sparq info lists the backends)`);
            }
        }
        if (bias && (bias.ndim !== 1 || bias.shape[0] !== this.outFeatures))
            throw new ShapeMismatchError(`a linear bias must be [${this.outFeatures}], received [${bias.shape.join(', ')}]`);
    }
    async forward(x, out, signal) {
        // Small products run inline (inline.ts): a worker round trip costs more.
        if (x.shape[0] * this.inFeatures * this.outFeatures <= INLINE_MULTIPLY_ADDS)
            packedLinear(x, this.weight, { bias: this.bias, out });
        else
            await packedLinearAsync(x, this.weight, { bias: this.bias, out, signal });
    }
}
/**
 * A dense f32 weight [out, in] (and bias [out]) through the dense linear kernel: the fused GEMV for one
 * token (it reads the weight at about 2.6× the rate OpenBLAS sgemm does at M = 1), OpenBLAS for batches.
 */
export class DenseLinear extends PackedLinear {
    constructor(weight, bias, 
    /** What the checkpoint stored, when it was decoded into this dense weight. */
    format = 'dense-f32') {
        if (weight.dtype !== 'f32' || weight.ndim !== 2)
            throw new ShapeMismatchError(`a dense linear weight must be f32 [out, in], received ${weight.dtype} [${weight.shape.join(', ')}]`);
        super(denseWeight(weight), bias, format);
    }
}
export const WEIGHTS_MODES = ['stored', 'f32'];
/**
 * The LinearWeight for a stored linear layer. This is the one place that decides how each storage format
 * runs (the table in this file's header).
 */
export async function loadLinear(stored, signal, weights = 'stored') {
    switch (stored.format) {
        case 'dense': {
            const w = stored.weight;
            if (w.dtype === 'f32')
                return new DenseLinear(w, stored.bias);
            if (weights === 'f32')
                return new DenseLinear(await w.toAsync('f32', { signal }), stored.bias);
            return new PackedLinear(denseWeight(w), stored.bias, `dense-${w.dtype}`, stored.name);
        }
        case 'pack-quantized': {
            const { scheme, tensors, where } = stored.quantized;
            if (weights === 'f32')
                return dequantizePackQuantizedToDense(stored.name, stored.quantized, stored.bias, signal);
            if (scheme.bits !== 4 || scheme.actorder === 'group') {
                // No kernel runs these codes packed; the label says why they were decoded.
                const what = `W${scheme.bits}${scheme.actorder === 'group' ? ' act-order group' : ''}`;
                return dequantizePackQuantizedToDense(stored.name, stored.quantized, stored.bias, signal, `pack-quantized ${what} (decoded to dense-f32: the int4 kernel runs 4-bit contiguous groups only)`);
            }
            const shape = ctShape(tensors.shape, where);
            const groupSize = scheme.strategy === 'channel' ? shape[1] : scheme.groupSize;
            const int4 = int4WeightFromCt({ packed: tensors.packed, scale: tensors.scale, zeroPoint: tensors.zeroPoint }, shape, groupSize, scheme.symmetric, where);
            return new PackedLinear(int4, stored.bias, 'int4 (compressed-tensors)', stored.name);
        }
        case 'packed':
            if (weights === 'f32')
                return new DenseLinear(await (await unpackWeight(stored.weight, { signal })).toAsync('f32', { signal }), stored.bias, `${stored.weight.format} (decoded to dense-f32)`);
            return new PackedLinear(stored.weight, stored.bias, stored.weight.format, stored.name);
    }
}
/**
 * A compressed-tensors pack-quantized linear decoded at load time into a dense f32 weight, exactly as
 * compressed-tensors decodes it: the reference for the int4 kernel, and the fallback for codes it cannot
 * run (W8, act-order groups).
 */
export async function dequantizePackQuantizedToDense(name, quantized, bias, signal, format = 'pack-quantized (decoded to dense-f32)') {
    const weight = await decodeCtStoredLinear(quantized, signal);
    // Scales are the only floats stored; a NaN or infinite one poisons every output of the layer.
    if (!Number.isFinite(await dotAsync(weight, weight, { signal }))) {
        throw new NonFiniteError(`${name} decodes to NaN or infinite weights (in ${quantized.where}); the model cannot be run`);
    }
    return new DenseLinear(weight, bias, format);
}
/**
 * Reads one linear layer (module name `name`, e.g. model.layers.0.self_attn.q_proj) of an opened model as
 * the checkpoint stores it: a dense weight in its stored float dtype (NaN and infinities refused by name),
 * a compressed-tensors pack-quantized layer's packed codes, scales and zero points, or a sparq packed
 * folder's packed weight (validated as read); its bias, if any, as f32.
 */
export async function readStoredLinear(model, name) {
    const source = model.checkpoint;
    const bias = source.has(`${name}.bias`) ? await model.read(`${name}.bias`) : undefined;
    if (source instanceof CtCheckpoint && source.quantized.has(name))
        return { format: 'pack-quantized', name, quantized: await source.readQuantized(name), bias };
    if (source instanceof PackedCheckpoint && source.layers.has(name))
        return { format: 'packed', name, weight: await source.readPacked(name), bias };
    const { dtype } = await source.info(`${name}.weight`);
    if (dtype !== 'F16' && dtype !== 'BF16')
        return { format: 'dense', name, weight: await model.read(`${name}.weight`), bias };
    const stored = await source.read(`${name}.weight`);
    // The finiteness check runs on an f32 copy, dropped after it.
    const wide = await stored.toAsync('f32');
    if (!Number.isFinite(await dotAsync(wide, wide)))
        throw new NonFiniteError(`${name}.weight holds NaN or infinite values (in ${source.shardPath(`${name}.weight`)}); the model cannot be run`);
    return { format: 'dense', name, weight: stored, bias };
}
//# sourceMappingURL=linear.js.map