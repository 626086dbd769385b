// The compressed-tensors `pack-quantized` format (checked against compressed-tensors 0.18.0, llm-compressor
// main of 2026-08 and vLLM of 2026-05): what config.json's quantization_config says, which tensors stand for
// a quantized linear, and how to decode them.
//
// config.json  quantization_config = { quant_method "compressed-tensors", format "pack-quantized",
//              quantization_status "compressed", config_groups { group_N: { targets, weights {num_bits,
//              type "int", symmetric, strategy "group"|"channel", group_size, actorder, …}, format } },
//              ignore [module names left dense], sparsity_config {}, … }
// per linear   <name>.weight_packed   int32 [out, ceil(in·b/32)]: code + 2^(b−1), element i at bit i·b of
//                                     the row (element 0 in the low bits)
//              <name>.weight_scale    model dtype [out, groups] (channel: [out, 1])
//              <name>.weight_zero_point  int32 [ceil(out·b/32), groups], asymmetric only, packed along the
//                                     output dimension with the same offset
//              <name>.weight_shape    int64 [2] = [out, in]
//              <name>.weight_g_idx    int32 [in], actorder "group" only: each input's group
//              decoded w = (q − z)·s
import { InvalidArgumentError, InvalidFileError, UnsupportedFormatError } from '../errors.js';
import { compilePattern } from '../name-pattern.js';
import { dequantizePackedAsync, packCodes, packedWords, unpackCodes } from '../tensor/quant.js';
import { describe } from '../validate.js';
import { DecodedWeightsCheckpoint } from './checkpoint.js';
export const CT_SUFFIXES = ['weight_packed', 'weight_scale', 'weight_zero_point', 'weight_shape', 'weight_g_idx'];
const isObject = (v) => typeof v === 'object' && v !== null && !Array.isArray(v);
/** The weights block of a config group, exactly as compressed-tensors 0.18 serializes QuantizationArgs. */
export function ctWeightsJson(scheme) {
    return {
        actorder: scheme.actorder,
        block_structure: null,
        dynamic: false,
        group_size: scheme.strategy === 'group' ? scheme.groupSize : null,
        num_bits: scheme.bits,
        observer: 'memoryless_minmax',
        observer_kwargs: {},
        scale_dtype: null,
        strategy: scheme.strategy,
        symmetric: scheme.symmetric,
        type: 'int',
        zp_dtype: scheme.symmetric ? null : 'torch.int8',
    };
}
/** config.json's quantization_config for these groups (keys sorted, as compressed-tensors writes them). */
export function ctQuantizationConfig(groups, ignore, version) {
    const configGroups = {};
    for (const g of groups) {
        configGroups[g.name] = { format: 'pack-quantized', input_activations: null, output_activations: null, targets: g.targets, weights: ctWeightsJson(g.scheme) };
    }
    return {
        config_groups: configGroups,
        format: 'pack-quantized',
        global_compression_ratio: null,
        ignore,
        kv_cache_scheme: null,
        quant_method: 'compressed-tensors',
        quantization_status: 'compressed',
        sparsity_config: {},
        transform_config: {},
        version,
    };
}
/**
 * Reads a config.json's quantization_config (as written by sparq, or by llm-compressor for the same
 * format); anything sparq cannot decode is refused naming the field.
 */
export function parseCtConfig(raw, source) {
    const where = `${source}: quantization_config`;
    if (!isObject(raw))
        throw new InvalidFileError(`${where} is not an object`);
    if (raw.quant_method !== 'compressed-tensors') {
        throw new UnsupportedFormatError(`${where}.quant_method is ${JSON.stringify(raw.quant_method)}; sparq reads compressed-tensors checkpoints only`);
    }
    if (raw.quantization_status !== undefined && raw.quantization_status !== 'compressed') {
        throw new UnsupportedFormatError(`${where}.quantization_status is ${JSON.stringify(raw.quantization_status)}; sparq reads compressed checkpoints only`);
    }
    if (isObject(raw.sparsity_config) && Object.keys(raw.sparsity_config).length > 0 && raw.sparsity_config.format !== undefined && raw.sparsity_config.format !== 'dense') {
        throw new UnsupportedFormatError(`${where}.sparsity_config.format ${JSON.stringify(raw.sparsity_config.format)} is not supported (only dense weights, sparsity_config {})`);
    }
    if (!isObject(raw.config_groups) || Object.keys(raw.config_groups).length === 0)
        throw new InvalidFileError(`${where}.config_groups is missing or empty`);
    const topFormat = raw.format;
    const groups = [];
    for (const [name, value] of Object.entries(raw.config_groups)) {
        const at = `${where}.config_groups.${name}`;
        if (!isObject(value))
            throw new InvalidFileError(`${at} is not an object`);
        const format = value.format ?? topFormat;
        if (format !== 'pack-quantized')
            throw new UnsupportedFormatError(`${at}: format ${JSON.stringify(format)} is not supported (sparq reads pack-quantized)`);
        if (!Array.isArray(value.targets) || !value.targets.every((t) => typeof t === 'string'))
            throw new InvalidFileError(`${at}.targets is not a list of strings`);
        if (value.input_activations !== undefined && value.input_activations !== null) {
            throw new UnsupportedFormatError(`${at}.input_activations is set; sparq reads weight-only quantization`);
        }
        const w = value.weights;
        if (!isObject(w))
            throw new InvalidFileError(`${at}.weights is missing`);
        if ((w.type ?? 'int') !== 'int')
            throw new UnsupportedFormatError(`${at}.weights.type ${JSON.stringify(w.type)} is not supported (int)`);
        const bits = w.num_bits ?? 8;
        if (!Number.isInteger(bits) || bits < 1 || bits > 8)
            throw new InvalidFileError(`${at}.weights.num_bits ${describe(bits)} is not in 1..8`);
        const groupSize = w.group_size ?? null;
        const strategy = w.strategy ?? (typeof groupSize === 'number' && groupSize > 0 ? 'group' : groupSize === -1 ? 'channel' : 'tensor');
        if (strategy !== 'group' && strategy !== 'channel')
            throw new UnsupportedFormatError(`${at}.weights.strategy ${JSON.stringify(strategy)} is not supported (group, channel)`);
        if (strategy === 'group' && !(Number.isInteger(groupSize) && groupSize > 0))
            throw new InvalidFileError(`${at}.weights.group_size ${describe(groupSize)} must be a positive integer with strategy group`);
        const actorder = w.actorder === 'weight' ? 'static' : w.actorder === 'dynamic' ? 'group' : (w.actorder ?? null);
        if (actorder !== null && actorder !== 'static' && actorder !== 'group')
            throw new UnsupportedFormatError(`${at}.weights.actorder ${JSON.stringify(w.actorder)} is not supported`);
        if (w.dynamic !== undefined && w.dynamic !== false)
            throw new UnsupportedFormatError(`${at}.weights.dynamic must be false for stored weights`);
        if (w.block_structure !== undefined && w.block_structure !== null)
            throw new UnsupportedFormatError(`${at}.weights.block_structure is not supported`);
        groups.push({
            name,
            targets: value.targets,
            scheme: { bits: bits, symmetric: w.symmetric !== false, strategy, groupSize: strategy === 'group' ? groupSize : null, actorder },
        });
    }
    const ignore = raw.ignore ?? [];
    if (!Array.isArray(ignore) || !ignore.every((t) => typeof t === 'string'))
        throw new InvalidFileError(`${where}.ignore is not a list of strings`);
    return { groups, ignore: ignore };
}
/** [out, in] from weight_shape (int64 or int32 [2]). */
export function ctShape(shape, where) {
    const values = shape.dtype === 'i64' ? Array.from(shape.data, Number) : Array.from(shape.data);
    if (values.length !== 2 || !values.every((v) => Number.isSafeInteger(v) && v >= 0))
        throw new InvalidFileError(`${where}.weight_shape must hold two sizes, found ${JSON.stringify(values)}`);
    return [values[0], values[1]];
}
/**
 * Checks the stored tensors of a quantized linear against its scheme and weight_shape, then decodes them
 * into the dense f32 weight [out, in]. `where` names the linear in messages.
 */
export async function decodeCtLinear(tensors, scheme, where, signal) {
    const [rows, cols] = ctShape(tensors.shape, where);
    const bits = scheme.bits;
    const words = packedWords(cols, bits);
    const groupSize = scheme.strategy === 'channel' ? Math.max(cols, 1) : scheme.groupSize;
    const groups = scheme.strategy === 'channel' ? 1 : Math.ceil(cols / groupSize);
    const expect = (t, name, dtypes, shape) => {
        if (!dtypes.includes(t.dtype) || t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
            throw new InvalidFileError(`${where}.${name} is ${t.dtype} [${t.shape.join(', ')}]; the scheme (W${bits}, ${scheme.strategy}${scheme.groupSize ? ` ${scheme.groupSize}` : ''}) and weight_shape [${rows}, ${cols}] need ${dtypes.join('/')} [${shape.join(', ')}]`);
        }
    };
    expect(tensors.packed, 'weight_packed', ['i32'], [rows, words]);
    expect(tensors.scale, 'weight_scale', ['f32', 'f16', 'bf16'], [rows, groups]);
    let zeros;
    if (!scheme.symmetric) {
        if (!tensors.zeroPoint)
            throw new InvalidFileError(`${where}.weight_zero_point is missing (the scheme is asymmetric)`);
        expect(tensors.zeroPoint, 'weight_zero_point', ['i32'], [packedWords(rows, bits), groups]);
        zeros = unpackZeroPoints(tensors.zeroPoint, bits, rows);
    }
    let groupOf;
    if (scheme.actorder === 'group') {
        if (!tensors.gIdx)
            throw new InvalidFileError(`${where}.weight_g_idx is missing (actorder group)`);
        expect(tensors.gIdx, 'weight_g_idx', ['i32'], [cols]);
        for (const g of tensors.gIdx.data) {
            if (g < 0 || g >= groups)
                throw new InvalidFileError(`${where}.weight_g_idx holds group ${g}, outside 0..${groups - 1}`);
        }
        groupOf = tensors.gIdx;
    }
    return dequantizePackedAsync(tensors.packed, bits, tensors.scale.to('f32'), cols, { zeros, groupOf, groupSize, signal });
}
/** The dense f32 weight [out, in] of a stored quantized linear, decoded exactly as compressed-tensors decodes it. */
export async function decodeCtStoredLinear(stored, signal) {
    const decoded = await decodeCtLinear(stored.tensors, stored.scheme, stored.where, signal);
    // compressed-tensors decodes in the scales' dtype, (q − z).to(s.dtype)·s: round as it does.
    if (stored.scaleDType === 'BF16')
        return decoded.to('bf16').to('f32');
    if (stored.scaleDType === 'F16')
        return decoded.to('f16').to('f32');
    return decoded;
}
/** Zero points i8 [rows, groups] from their packed form i32 [ceil(rows·b/32), groups] (packed along rows). */
export function unpackZeroPoints(packed, bits, rows) {
    return unpackCodes(packed.transpose().contiguous(), bits, rows).transpose().contiguous();
}
/** Zero points i8 [rows, groups] packed along the output dimension: i32 [ceil(rows·b/32), groups]. */
export function packZeroPoints(zeros, bits) {
    return packCodes(zeros.transpose().contiguous(), bits).transpose().contiguous();
}
/**
 * Whether a config group's targets select a linear, as vLLM matches them: the exact module name, a
 * `re:` pattern matched at the start of the name, or a class name ("Linear" selects every linear layer).
 */
export function ctTargets(targets, name) {
    return targets.some((t) => t === name || t === 'Linear' || (t.startsWith('re:') && ctPatternMatches(t.slice(3), name)));
}
/** Whether `ignore` lists a module: its exact name or a `re:` pattern matched at the start. */
export function ctIgnored(ignore, name) {
    return ignore.some((t) => t === name || (t.startsWith('re:') && ctPatternMatches(t.slice(3), name)));
}
/** `re:` patterns in a checkpoint match at the start of a name, as Python's re.match (linear-time engine). */
function ctPatternMatches(pattern, name) {
    return compilePattern(`re:(?:${pattern}).*`, 'quantization_config').test(name);
}
/**
 * A compressed-tensors checkpoint seen as a dense one: each quantized linear's tensors (weight_packed,
 * weight_scale, …) stand as one `<name>.weight` of the scale's dtype, decoded when read. Everything else
 * passes through. Opening checks that every quantized linear has exactly the tensors its scheme needs.
 */
export class CtCheckpoint extends DecodedWeightsCheckpoint {
    config;
    quantized;
    constructor(inner, config, 
    /** Quantized linears (module names) and their schemes. */
    quantized, visibleNames) {
        super(inner, visibleNames);
        this.config = config;
        this.quantized = quantized;
    }
    /** Wraps an opened checkpoint whose config.json carries `quantizationConfig`; `source` names config.json. */
    static wrap(inner, quantizationConfig, source) {
        const config = parseCtConfig(quantizationConfig, source);
        const names = new Set(inner.names());
        const virtual = [];
        const quantized = new Map();
        for (const name of names) {
            const suffix = CT_SUFFIXES.find((s) => name.endsWith(`.${s}`));
            if (!suffix) {
                virtual.push(name);
                continue;
            }
            const base = name.slice(0, -suffix.length - 1);
            if (suffix !== 'weight_packed') {
                if (!names.has(`${base}.weight_packed`))
                    throw new InvalidFileError(`${inner.dir}: tensor '${name}' has no '${base}.weight_packed' beside it`);
                continue;
            }
            if (names.has(`${base}.weight`))
                throw new InvalidFileError(`${inner.dir}: '${base}' has both a dense weight and weight_packed`);
            if (ctIgnored(config.ignore, base))
                throw new InvalidFileError(`${inner.dir}: '${base}' is listed in quantization_config.ignore but is stored quantized`);
            const group = config.groups.find((g) => ctTargets(g.targets, base));
            if (!group)
                throw new InvalidFileError(`${inner.dir}: '${base}' is stored quantized, but no quantization_config group targets it`);
            for (const required of ['weight_scale', 'weight_shape', ...(group.scheme.symmetric ? [] : ['weight_zero_point']), ...(group.scheme.actorder === 'group' ? ['weight_g_idx'] : [])]) {
                if (!names.has(`${base}.${required}`))
                    throw new InvalidFileError(`${inner.dir}: '${base}.${required}' is missing (group ${group.name}: W${group.scheme.bits}${group.scheme.symmetric ? '' : ' asymmetric'}${group.scheme.actorder === 'group' ? ', actorder group' : ''})`);
            }
            quantized.set(base, group.scheme);
            virtual.push(`${base}.weight`);
        }
        return new CtCheckpoint(inner, config, quantized, virtual);
    }
    quantizedBase(name) {
        return this.storedModule(name, this.quantized);
    }
    async info(name) {
        const base = this.quantizedBase(name);
        if (!base)
            return this.inner.info(name);
        const scale = await this.inner.info(`${base}.weight_scale`);
        const shape = ctShape(await this.inner.read(`${base}.weight_shape`), `${this.dir}: ${base}`);
        return { name, dtype: scale.dtype, shape };
    }
    async read(name, options = {}) {
        const base = this.quantizedBase(name);
        if (!base)
            return this.inner.read(name, options);
        const weight = await decodeCtStoredLinear(await this.readQuantized(base));
        return options.dtype && options.dtype !== 'f32' ? weight.to(options.dtype) : weight;
    }
    /** A quantized linear's stored tensors (module name `base`, as in `quantized`), not decoded. */
    async readQuantized(base) {
        const scheme = this.quantized.get(base);
        if (!scheme)
            throw new InvalidArgumentError(`${this.dir}: '${base}' is not a quantized linear`);
        const read = (suffix) => this.inner.read(`${base}.${suffix}`);
        return {
            tensors: {
                packed: await read('weight_packed'),
                scale: await read('weight_scale'),
                shape: await read('weight_shape'),
                zeroPoint: scheme.symmetric ? undefined : await read('weight_zero_point'),
                gIdx: scheme.actorder === 'group' ? await read('weight_g_idx') : undefined,
            },
            scheme,
            scaleDType: (await this.inner.info(`${base}.weight_scale`)).dtype,
            where: `${this.dir}: ${base}`,
        };
    }
    shardPath(name) {
        const base = this.quantizedBase(name);
        return this.inner.shardPath(base ? `${base}.weight_packed` : name);
    }
    close() {
        return this.inner.close();
    }
}
//# sourceMappingURL=compressed-tensors.js.map