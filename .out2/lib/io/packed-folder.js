// The sparq packed folder: a Hugging Face model folder whose block linears are stored in one of sparq's
// packed weight formats (lib/tensor/packed.ts; layouts in native/core/packed_formats.h), listed in
// config.json's `sparq_format`:
//
//   "sparq_format": { "version": 1, "layers": { "<module>": { "format": F, "shape": [N, K], …params } } }
//
//   format     params                     tensors <module>.…
//   int4       group_size, symmetric      weight_packed, weight_scale, weight_zero_point (asymmetric),
//                                         weight_shape — compressed-tensors' pack-quantized tensors, as is
//   2:4        dtype                      weight_values [N, 2·ceil(K/4)], weight_meta i32 [N, ceil(kept/16)]
//   2:4+int4   group_size                 weight_packed i32 [N, ceil(kept/8)], weight_meta, weight_scale [N, G]
//   bsr        block_size, dtype          weight_row_ptr i32 [N+1], weight_block_cols i32 [B], weight_values [B, b]
//   bsr-int4   block_size                 weight_row_ptr, weight_block_cols, weight_packed i32 [B, b/8],
//                                         weight_block_scale [B]
//   any        outliers: true             weight_outlier_row_ptr i32 [N+1], weight_outlier_cols i32 [nnz],
//                                         weight_outlier_values f16 [nnz] (CSR, added to the base format)
//
// Everything else (embeddings, norms, biases, lm_head, linears not listed) is an ordinary tensor. This file
// also turns compressed-tensors' int4 tensors into an Int4Weight (for CT folders and int4 layers alike).
// Reading checks every tensor's dtype and shape against the entry, the entry's shape against config.json,
// and when a layer is read: scales finite, 2:4 positions strictly increasing per group, BSR indices in
// range and in order, and nothing stored past K — a corrupt file is an error naming the tensor, never a
// wrong answer.
import { InvalidArgumentError, InvalidFileError, NonFiniteError, ShapeMismatchError, UnsupportedFormatError } from '../errors.js';
import { PACKED_FORMATS, unpackWeight } from '../tensor/packed.js';
import { unpackCodes } from '../tensor/quant.js';
import { formatShape, Tensor } from '../tensor/tensor.js';
import { describe } from '../validate.js';
import { DecodedWeightsCheckpoint } from './checkpoint.js';
import { ctShape, packZeroPoints, unpackZeroPoints } from './compressed-tensors.js';
export const PACKED_FOLDER_VERSION = 1;
const FLOATS = ['f32', 'f16', 'bf16'];
const SAFETENSORS_NAME = { f32: 'F32', f16: 'F16', bf16: 'BF16' };
const isObject = (v) => typeof v === 'object' && v !== null && !Array.isArray(v);
/** The tensors (suffix → tensor) that store a packed weight; int4 is stored as compressed-tensors stores it. */
export function packedLayerTensors(w) {
    const tensors = [];
    switch (w.format) {
        case 'dense':
            throw new InvalidArgumentError('a dense weight is stored as <module>.weight, not as a packed layer');
        case 'int4':
            // compressed-tensors' own tensors, so Hugging Face and vLLM load the folder as pack-quantized.
            tensors.push(['weight_packed', w.packed], ['weight_scale', w.scales], ['weight_shape', Tensor.fromTypedArray(BigInt64Array.from([w.outFeatures, w.inFeatures], BigInt), [2])]);
            if (w.zeros)
                tensors.push(['weight_zero_point', packZeroPoints(w.zeros, 4)]);
            break;
        case '2:4':
            tensors.push(['weight_values', w.values], ['weight_meta', w.meta]);
            break;
        case '2:4+int4':
            tensors.push(['weight_packed', w.packed], ['weight_meta', w.meta], ['weight_scale', w.scales]);
            break;
        case 'bsr':
            tensors.push(['weight_row_ptr', w.rowPtr], ['weight_block_cols', w.blockCols], ['weight_values', w.values]);
            break;
        case 'bsr-int4':
            tensors.push(['weight_row_ptr', w.rowPtr], ['weight_block_cols', w.blockCols], ['weight_packed', w.packed], ['weight_block_scale', w.blockScales]);
            break;
    }
    if (w.outliers) {
        const o = w.outliers;
        tensors.push(['weight_outlier_row_ptr', o.rowPtr], ['weight_outlier_cols', o.blockCols], ['weight_outlier_values', o.values.reshape([o.values.shape[0]])]);
    }
    return tensors;
}
/** The sparq_format entry of a packed weight. */
export function packedLayerEntry(w) {
    const shape = [w.outFeatures, w.inFeatures];
    const outliers = w.outliers ? { outliers: true } : {};
    switch (w.format) {
        case 'int4':
            return { format: 'int4', shape, group_size: w.groupSize, symmetric: !w.zeros, ...outliers };
        case '2:4':
            return { format: '2:4', shape, dtype: w.values.dtype, ...outliers };
        case '2:4+int4':
            return { format: '2:4+int4', shape, group_size: w.groupSize, ...outliers };
        case 'bsr':
            return { format: 'bsr', shape, block_size: w.blockSize, dtype: w.values.dtype, ...outliers };
        case 'bsr-int4':
            return { format: 'bsr-int4', shape, block_size: w.blockSize, ...outliers };
        case 'dense':
            throw new InvalidArgumentError('a dense weight has no sparq_format entry');
    }
}
/** Parses config.json's sparq_format; anything sparq cannot read is refused naming the field. */
export function parsePackedFormat(raw, source) {
    const where = `${source}: sparq_format`;
    if (!isObject(raw))
        throw new InvalidFileError(`${where} is not an object`);
    if (raw.version !== PACKED_FOLDER_VERSION)
        throw new UnsupportedFormatError(`${where}.version is ${describe(raw.version)}; this sparq reads version ${PACKED_FOLDER_VERSION}`);
    if (!isObject(raw.layers))
        throw new InvalidFileError(`${where}.layers is missing or not an object`);
    const layers = new Map();
    for (const [name, value] of Object.entries(raw.layers)) {
        const at = `${where}.layers["${name}"]`;
        if (!isObject(value))
            throw new InvalidFileError(`${at} is not an object`);
        if (!PACKED_FORMATS.includes(value.format)) {
            throw new UnsupportedFormatError(`${at}.format ${describe(value.format)} is not a packed format sparq knows (${PACKED_FORMATS.join(', ')})`);
        }
        const format = value.format;
        const shape = value.shape;
        if (!Array.isArray(shape) || shape.length !== 2 || !shape.every((d) => Number.isSafeInteger(d) && d > 0))
            throw new InvalidFileError(`${at}.shape must be [outputs, inputs], found ${describe(shape)}`);
        const positive = (key, allowed) => {
            const v = value[key];
            if (!Number.isSafeInteger(v) || v < 1 || (allowed && !allowed.includes(v))) {
                throw new InvalidFileError(`${at}.${key} must be ${allowed ? `one of ${allowed.join(', ')}` : 'a positive integer'}, found ${describe(v)}`);
            }
            return v;
        };
        const floatDType = () => {
            if (!FLOATS.includes(value.dtype))
                throw new InvalidFileError(`${at}.dtype must be f32, f16 or bf16, found ${describe(value.dtype)}`);
            return value.dtype;
        };
        const entry = { format, shape: [shape[0], shape[1]], outliers: value.outliers === true };
        if (format === 'int4') {
            entry.group_size = positive('group_size');
            if (typeof value.symmetric !== 'boolean')
                throw new InvalidFileError(`${at}.symmetric must be true or false, found ${describe(value.symmetric)}`);
            entry.symmetric = value.symmetric;
        }
        else if (format === '2:4+int4') {
            entry.group_size = positive('group_size');
            if (entry.group_size % 4 !== 0)
                throw new InvalidFileError(`${at}.group_size ${entry.group_size} is not a multiple of 4 (whole 2:4 groups)`);
        }
        else if (format === 'bsr' || format === 'bsr-int4') {
            entry.block_size = positive('block_size', [8, 16, 32]);
        }
        if (format === '2:4' || format === 'bsr')
            entry.dtype = floatDType();
        layers.set(name, entry);
    }
    return layers;
}
/** The tensors a layer's entry needs: suffix → allowed dtypes and exact shape. */
function expectedTensors(entry, blocks, outlierCount) {
    const [n, k] = entry.shape;
    const kept = 2 * Math.ceil(k / 4);
    const map = new Map();
    const scalesOver = (groups) => ({ dtypes: FLOATS, shape: [n, groups] });
    switch (entry.format) {
        case 'int4': {
            const groups = Math.ceil(k / entry.group_size);
            map.set('weight_packed', { dtypes: ['i32'], shape: [n, Math.ceil(k / 8)] });
            map.set('weight_scale', scalesOver(groups));
            map.set('weight_shape', { dtypes: ['i64', 'i32'], shape: [2] });
            if (!entry.symmetric)
                map.set('weight_zero_point', { dtypes: ['i32'], shape: [Math.ceil(n / 8), groups] });
            break;
        }
        case '2:4':
            map.set('weight_values', { dtypes: [entry.dtype], shape: [n, kept] });
            map.set('weight_meta', { dtypes: ['i32'], shape: [n, Math.ceil(kept / 16)] });
            break;
        case '2:4+int4':
            map.set('weight_packed', { dtypes: ['i32'], shape: [n, Math.ceil(kept / 8)] });
            map.set('weight_meta', { dtypes: ['i32'], shape: [n, Math.ceil(kept / 16)] });
            map.set('weight_scale', scalesOver(Math.ceil(k / entry.group_size)));
            break;
        case 'bsr':
            map.set('weight_row_ptr', { dtypes: ['i32'], shape: [n + 1] });
            map.set('weight_block_cols', { dtypes: ['i32'], shape: [blocks] });
            map.set('weight_values', { dtypes: [entry.dtype], shape: [blocks, entry.block_size] });
            break;
        case 'bsr-int4':
            map.set('weight_row_ptr', { dtypes: ['i32'], shape: [n + 1] });
            map.set('weight_block_cols', { dtypes: ['i32'], shape: [blocks] });
            map.set('weight_packed', { dtypes: ['i32'], shape: [blocks, entry.block_size / 8] });
            map.set('weight_block_scale', { dtypes: FLOATS, shape: [blocks] });
            break;
    }
    if (entry.outliers) {
        map.set('weight_outlier_row_ptr', { dtypes: ['i32'], shape: [n + 1] });
        map.set('weight_outlier_cols', { dtypes: ['i32'], shape: [outlierCount] });
        map.set('weight_outlier_values', { dtypes: ['f16', 'f32'], shape: [outlierCount] });
    }
    return map;
}
const DTYPE_OF = { F32: 'f32', F16: 'f16', BF16: 'bf16', I32: 'i32', I64: 'i64', I8: 'i8', U8: 'u8' };
// ------------------------------------------------------------------ validation of a layer's contents
/** Throws NonFiniteError naming `name` when a float tensor holds NaN or an infinity. */
export function checkFiniteScales(scales, name) {
    const values = scales.to('f32').data;
    for (let i = 0; i < values.length; ++i) {
        if (!Number.isFinite(values[i]))
            throw new NonFiniteError(`${name} holds ${values[i]} at element ${i}; a scale must be finite (the layer would output NaN)`);
    }
}
/** Whether element i of a float tensor is ±0 (checked on the stored bits for f16/bf16). */
function isZeroAt(t, i) {
    if (t.dtype === 'f32')
        return t.data[i] === 0;
    return (t.data[i] & 0x7fff) === 0;
}
/**
 * 2:4 metadata: the two 2-bit positions of every group strictly increase, and a tail group's kept slots
 * that point past K hold zero (`isZero(row, j)` for kept value j).
 */
function checkSparse24Meta(meta, k, name, isZero) {
    const [n, words] = meta.shape;
    const m = meta.data;
    const groups = Math.ceil(k / 4);
    const position = (row, j) => (m[row * words + (j >> 4)] >>> (2 * (j & 15))) & 3;
    for (let row = 0; row < n; ++row) {
        for (let g = 0; g < groups; ++g) {
            const first = position(row, 2 * g), second = position(row, 2 * g + 1);
            if (first >= second)
                throw new InvalidFileError(`${name}: row ${row}, group ${g} (inputs ${4 * g}..${4 * g + 3}) stores positions ${first} and ${second}; the two kept positions of a group must strictly increase`);
        }
        if (k % 4 === 0)
            continue;
        const g = groups - 1;
        for (const j of [2 * g, 2 * g + 1]) {
            if (4 * g + position(row, j) >= k && !isZero(row, j))
                throw new InvalidFileError(`${name}: row ${row} keeps a nonzero value at input ${4 * g + position(row, j)}, past the ${k} inputs`);
        }
    }
}
/** BSR structure: rowPtr starts at 0, never decreases, ends at the block count; columns in range, increasing per row. */
function checkBsrIndices(rowPtr, blockCols, k, blockSize, name) {
    const ptr = rowPtr.data;
    const cols = blockCols.data;
    const n = ptr.length - 1;
    const columns = Math.ceil(k / blockSize);
    if (ptr[0] !== 0)
        throw new InvalidFileError(`${name}_row_ptr[0] is ${ptr[0]}; it must be 0`);
    if (ptr[n] !== cols.length)
        throw new InvalidFileError(`${name}_row_ptr ends at ${ptr[n]}, but ${cols.length} blocks are stored`);
    for (let row = 0; row < n; ++row) {
        if (ptr[row + 1] < ptr[row])
            throw new InvalidFileError(`${name}_row_ptr decreases at row ${row} (${ptr[row]} then ${ptr[row + 1]})`);
        for (let b = ptr[row]; b < ptr[row + 1]; ++b) {
            if (cols[b] < 0 || cols[b] >= columns)
                throw new InvalidFileError(`${name}: row ${row}, block ${b} has column ${cols[b]}, outside 0..${columns - 1} (${k} inputs in blocks of ${blockSize})`);
            if (b > ptr[row] && cols[b] <= cols[b - 1])
                throw new InvalidFileError(`${name}: row ${row} has block columns out of order (${cols[b - 1]} then ${cols[b]})`);
        }
    }
}
/** Inputs of a tail block past K must be zero (`isZero(block, i)` for input i of the block). */
function checkBsrTail(blockCols, k, blockSize, name, isZero) {
    if (k % blockSize === 0)
        return;
    const last = Math.ceil(k / blockSize) - 1;
    const cols = blockCols.data;
    for (let b = 0; b < cols.length; ++b) {
        if (cols[b] !== last)
            continue;
        for (let i = k - last * blockSize; i < blockSize; ++i) {
            if (!isZero(b, i))
                throw new InvalidFileError(`${name}: block ${b} holds a nonzero value at input ${last * blockSize + i}, past the ${k} inputs`);
        }
    }
}
/**
 * An Int4Weight from compressed-tensors' int4 tensors (weight_packed, weight_scale, weight_zero_point)
 * with contiguous groups of `groupSize` inputs; dtypes and shapes checked against [N, K], scales finite.
 */
export function int4WeightFromCt(tensors, shape, groupSize, symmetric, name) {
    const [n, k] = shape;
    const groups = Math.ceil(k / groupSize);
    const expect = (t, suffix, dtypes, dims) => {
        if (!dtypes.includes(t.dtype))
            throw new InvalidFileError(`${name}.${suffix} is ${t.dtype}; int4 needs ${dtypes.join('/')}`);
        if (formatShape(t.shape) !== formatShape(dims))
            throw new ShapeMismatchError(`${name}.${suffix} is ${formatShape(t.shape)}; int4 of shape [${n}, ${k}] in groups of ${groupSize} needs ${formatShape(dims)}`);
    };
    expect(tensors.packed, 'weight_packed', ['i32'], [n, Math.ceil(k / 8)]);
    expect(tensors.scale, 'weight_scale', FLOATS, [n, groups]);
    checkFiniteScales(tensors.scale, `${name}.weight_scale`);
    let zeros;
    if (!symmetric) {
        if (!tensors.zeroPoint)
            throw new InvalidFileError(`${name}.weight_zero_point is missing (the scheme is asymmetric)`);
        expect(tensors.zeroPoint, 'weight_zero_point', ['i32'], [Math.ceil(n / 8), groups]);
        zeros = unpackZeroPoints(tensors.zeroPoint, 4, n);
    }
    return { format: 'int4', outFeatures: n, inFeatures: k, packed: tensors.packed, scales: tensors.scale, zeros, groupSize };
}
/**
 * A checkpoint with a sparq_format: each packed layer's tensors stand as one `<module>.weight` (decoded
 * exactly when read through `read`, as every dense consumer wants it), and `readPacked` gives the packed
 * weight itself. Opening checks every packed layer's tensors (header only) against its entry and the
 * entry's shape against config.json (`expected`: parameter name → shape from the config).
 */
export class PackedCheckpoint extends DecodedWeightsCheckpoint {
    layers;
    constructor(inner, layers) {
        const owned = new Set();
        for (const [base, entry] of layers)
            for (const suffix of expectedTensors(entry, 0, 0).keys())
                owned.add(`${base}.${suffix}`);
        super(inner, [...inner.names().filter((name) => !owned.has(name)), ...[...layers.keys()].map((base) => `${base}.weight`)]);
        this.layers = layers;
    }
    static async wrap(inner, sparqFormat, source, expected) {
        const layers = parsePackedFormat(sparqFormat, source);
        for (const [base, entry] of layers) {
            const planned = expected.get(`${base}.weight`);
            if (!planned)
                throw new InvalidFileError(`${source}: sparq_format lists '${base}', which is not a linear layer of this model`);
            if (formatShape(planned.shape) !== formatShape(entry.shape)) {
                throw new ShapeMismatchError(`${base}: sparq_format gives shape ${formatShape(entry.shape)}, config.json implies ${formatShape(planned.shape)} (${planned.dimensions.join(' × ')})`);
            }
            if (inner.has(`${base}.weight`))
                throw new InvalidFileError(`${inner.dir}: '${base}' has both a dense weight and a packed ${entry.format} entry`);
            const has = (suffix) => inner.has(`${base}.${suffix}`);
            const blocksTensor = entry.format === 'bsr' || entry.format === 'bsr-int4' ? `${base}.weight_block_cols` : undefined;
            const blocks = blocksTensor && inner.has(blocksTensor) ? (await inner.info(blocksTensor)).shape[0] ?? 0 : 0;
            const outliers = has('weight_outlier_cols') ? (await inner.info(`${base}.weight_outlier_cols`)).shape[0] ?? 0 : 0;
            for (const [suffix, want] of expectedTensors(entry, blocks, outliers)) {
                const name = `${base}.${suffix}`;
                if (!inner.has(name))
                    throw new InvalidFileError(`${inner.dir}: '${name}' is missing (sparq_format: ${entry.format})`);
                const info = await inner.info(name);
                const dtype = DTYPE_OF[info.dtype] ?? info.dtype;
                if (!want.dtypes.includes(dtype))
                    throw new InvalidFileError(`${inner.dir}: '${name}' is ${info.dtype}; ${entry.format} needs ${want.dtypes.join('/')}`);
                if (formatShape(info.shape) !== formatShape(want.shape)) {
                    throw new ShapeMismatchError(`${inner.dir}: '${name}' is ${formatShape(info.shape)}; ${entry.format} of shape ${formatShape(entry.shape)} (config.json) needs ${formatShape(want.shape)}`);
                }
            }
        }
        return new PackedCheckpoint(inner, layers);
    }
    packedBase(name) {
        return this.storedModule(name, this.layers);
    }
    async info(name) {
        const base = this.packedBase(name);
        if (!base)
            return this.inner.info(name);
        const entry = this.layers.get(base);
        const dtype = entry.dtype ? SAFETENSORS_NAME[entry.dtype] : (await this.inner.info(`${base}.${entry.format === 'bsr-int4' ? 'weight_block_scale' : 'weight_scale'}`)).dtype;
        return { name, dtype, shape: [...entry.shape] };
    }
    /** A packed layer's weight decoded to dense (exactly: unpackWeight), or any other tensor as stored. */
    async read(name, options = {}) {
        const base = this.packedBase(name);
        if (!base)
            return this.inner.read(name, options);
        const dense = await unpackWeight(await this.readPacked(base));
        return options.dtype && options.dtype !== dense.dtype ? dense.to(options.dtype) : dense;
    }
    /** A packed layer (module name) as its PackedWeight, its contents validated. */
    async readPacked(base) {
        const entry = this.layers.get(base);
        if (!entry)
            throw new InvalidFileError(`${this.dir}: '${base}' is not a packed layer`);
        const name = `${this.dir}: ${base}`;
        const read = (suffix) => this.inner.read(`${base}.${suffix}`);
        const [n, k] = entry.shape;
        let weight;
        switch (entry.format) {
            case 'int4': {
                const stored = ctShape(await read('weight_shape'), name);
                if (stored[0] !== n || stored[1] !== k)
                    throw new ShapeMismatchError(`${name}.weight_shape is [${stored.join(', ')}]; sparq_format gives ${formatShape(entry.shape)}`);
                weight = int4WeightFromCt({ packed: await read('weight_packed'), scale: await read('weight_scale'), zeroPoint: entry.symmetric ? undefined : await read('weight_zero_point') }, entry.shape, entry.group_size, entry.symmetric, name);
                break;
            }
            case '2:4': {
                const values = await read('weight_values');
                const meta = await read('weight_meta');
                checkSparse24Meta(meta, k, `${name}.weight_meta`, (row, j) => isZeroAt(values, row * values.shape[1] + j));
                weight = { format: '2:4', outFeatures: n, inFeatures: k, values, meta };
                break;
            }
            case '2:4+int4': {
                const packed = await read('weight_packed');
                const meta = await read('weight_meta');
                const scales = await read('weight_scale');
                checkFiniteScales(scales, `${name}.weight_scale`);
                const kept = 2 * Math.ceil(k / 4);
                const codes = k % 4 === 0 ? undefined : unpackCodes(packed, 4, kept).data;
                checkSparse24Meta(meta, k, `${name}.weight_meta`, (row, j) => codes[row * kept + j] === 0);
                weight = { format: '2:4+int4', outFeatures: n, inFeatures: k, packed, meta, scales, groupSize: entry.group_size };
                break;
            }
            case 'bsr': {
                const rowPtr = await read('weight_row_ptr');
                const blockCols = await read('weight_block_cols');
                const values = await read('weight_values');
                const b = entry.block_size;
                checkBsrIndices(rowPtr, blockCols, k, b, `${name}.weight_row_ptr/weight_block_cols`);
                checkBsrTail(blockCols, k, b, `${name}.weight_values`, (block, i) => isZeroAt(values, block * b + i));
                weight = { format: 'bsr', outFeatures: n, inFeatures: k, rowPtr, blockCols, values, blockSize: b };
                break;
            }
            case 'bsr-int4': {
                const rowPtr = await read('weight_row_ptr');
                const blockCols = await read('weight_block_cols');
                const packed = await read('weight_packed');
                const blockScales = await read('weight_block_scale');
                const b = entry.block_size;
                checkFiniteScales(blockScales, `${name}.weight_block_scale`);
                checkBsrIndices(rowPtr, blockCols, k, b, `${name}.weight_row_ptr/weight_block_cols`);
                const codes = k % b === 0 || packed.shape[0] === 0 ? undefined : unpackCodes(packed, 4, b).data;
                checkBsrTail(blockCols, k, b, `${name}.weight_packed`, (block, i) => codes[block * b + i] === 0);
                weight = { format: 'bsr-int4', outFeatures: n, inFeatures: k, rowPtr, blockCols, packed, blockScales, blockSize: b };
                break;
            }
        }
        if (entry.outliers)
            weight.outliers = await this.readOutliers(base, n, k, name);
        return weight;
    }
    async readOutliers(base, n, k, name) {
        const rowPtr = await this.inner.read(`${base}.weight_outlier_row_ptr`);
        const cols = await this.inner.read(`${base}.weight_outlier_cols`);
        const values = await this.inner.read(`${base}.weight_outlier_values`);
        checkFiniteScales(values, `${name}.weight_outlier_values`);
        checkBsrIndices(rowPtr, cols, k, 1, `${name}.weight_outlier_row_ptr/weight_outlier_cols`);
        return { format: 'bsr', outFeatures: n, inFeatures: k, rowPtr, blockCols: cols, values: values.reshape([values.shape[0], 1]), blockSize: 1 };
    }
    shardPath(name) {
        const base = this.packedBase(name);
        if (!base)
            return this.inner.shardPath(name);
        const first = [...expectedTensors(this.layers.get(base), 0, 0).keys()][0];
        return this.inner.shardPath(`${base}.${first}`);
    }
    close() {
        return this.inner.close();
    }
}
//# sourceMappingURL=packed-folder.js.map