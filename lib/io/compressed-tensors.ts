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
//
// and its `float-quantized` format for FP8 weights (the same compressed-tensors releases; compressed-tensors'
// float-quantized and naive-quantized compressors are one class: the weight cast to the scheme's torch dtype):
// group        weights {num_bits 8, type "float", strategy "channel", symmetric true, dynamic false,
//              group_size null, …}, format "float-quantized", input_activations null (weight-only: vLLM's
//              CompressedTensorsW8A16Fp8 — its selection needs the group's format to be float-, naive- or
//              int-quantized, which sends it past the pack-quantized WNA16 branch to the FP8 weight check)
// per linear   <name>.weight          F8_E4M3 [out, in]: the E4M3 codes (lib/tensor/fp8.ts)
//              <name>.weight_scale    model dtype [out, 1] (vLLM loads it into an f32 parameter)
//              decoded w = fp8.to(s.dtype)·s, in the scales' dtype
import { InvalidArgumentError, InvalidFileError, UnsupportedFormatError } from '../errors.js';
import { compilePattern } from '../name-pattern.js';
import { dequantizePackedAsync, packCodes, packedWords, unpackCodes } from '../tensor/quant.js';
import { Tensor } from '../tensor/tensor.js';
import { describe } from '../validate.js';
import type { DType } from '../tensor/dtype.js';
import { DecodedWeightsCheckpoint, type Checkpoint } from './checkpoint.js';

export const CT_SUFFIXES = ['weight_packed', 'weight_scale', 'weight_zero_point', 'weight_shape', 'weight_g_idx'] as const;

/** One config group's weight scheme, as sparq reads and writes it. */
export interface CtWeightScheme {
  /** 'int': pack-quantized codes; 'float': FP8 E4M3 (bits 8, channel, symmetric), float-quantized. */
  type: 'int' | 'float';
  bits: number;
  symmetric: boolean;
  /** 'group' with groupSize, or 'channel' (one scale per output row). */
  strategy: 'group' | 'channel';
  groupSize: number | null;
  /** 'static' (= 'weight'): sweep order only, nothing stored; 'group' (= 'dynamic'): weight_g_idx stored. */
  actorder: 'static' | 'group' | null;
}

export interface CtGroup {
  name: string;
  targets: string[];
  scheme: CtWeightScheme;
}

/** A parsed quantization_config. */
export interface CtConfig {
  groups: CtGroup[];
  ignore: string[];
}

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The weights block of a config group, exactly as compressed-tensors 0.18 serializes QuantizationArgs. */
export function ctWeightsJson(scheme: CtWeightScheme): Json {
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
    type: scheme.type,
    zp_dtype: scheme.symmetric ? null : 'torch.int8',
  };
}

/** The compressed-tensors format that stores a scheme's weights. */
export function ctFormatOf(scheme: CtWeightScheme): 'pack-quantized' | 'float-quantized' {
  return scheme.type === 'float' ? 'float-quantized' : 'pack-quantized';
}

/** config.json's quantization_config for these groups (keys sorted, as compressed-tensors writes them). */
export function ctQuantizationConfig(groups: CtGroup[], ignore: string[], version: string): Json {
  const configGroups: Json = {};
  for (const g of groups) {
    configGroups[g.name] = { format: ctFormatOf(g.scheme), input_activations: null, output_activations: null, targets: g.targets, weights: ctWeightsJson(g.scheme) };
  }
  // One format for the whole model when the groups share one, as compressed-tensors summarizes them.
  const formats = new Set(groups.map((g) => ctFormatOf(g.scheme)));
  return {
    config_groups: configGroups,
    format: formats.size === 1 ? [...formats][0] : 'mixed-precision',
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
export function parseCtConfig(raw: unknown, source: string): CtConfig {
  const where = `${source}: quantization_config`;
  if (!isObject(raw)) throw new InvalidFileError(`${where} is not an object`);
  if (raw.quant_method !== 'compressed-tensors') {
    throw new UnsupportedFormatError(`${where}.quant_method is ${JSON.stringify(raw.quant_method)}; sparq reads compressed-tensors checkpoints only`);
  }
  if (raw.quantization_status !== undefined && raw.quantization_status !== 'compressed') {
    throw new UnsupportedFormatError(`${where}.quantization_status is ${JSON.stringify(raw.quantization_status)}; sparq reads compressed checkpoints only`);
  }
  if (isObject(raw.sparsity_config) && Object.keys(raw.sparsity_config).length > 0 && raw.sparsity_config.format !== undefined && raw.sparsity_config.format !== 'dense') {
    throw new UnsupportedFormatError(`${where}.sparsity_config.format ${JSON.stringify(raw.sparsity_config.format)} is not supported (only dense weights, sparsity_config {})`);
  }
  if (!isObject(raw.config_groups) || Object.keys(raw.config_groups).length === 0) throw new InvalidFileError(`${where}.config_groups is missing or empty`);
  const topFormat = raw.format;
  const groups: CtGroup[] = [];
  for (const [name, value] of Object.entries(raw.config_groups)) {
    const at = `${where}.config_groups.${name}`;
    if (!isObject(value)) throw new InvalidFileError(`${at} is not an object`);
    const format = value.format ?? topFormat;
    if (format !== 'pack-quantized' && format !== 'float-quantized' && format !== 'naive-quantized') {
      throw new UnsupportedFormatError(`${at}: format ${JSON.stringify(format)} is not supported (sparq reads pack-quantized, and float-quantized FP8)`);
    }
    if (!Array.isArray(value.targets) || !value.targets.every((t) => typeof t === 'string')) throw new InvalidFileError(`${at}.targets is not a list of strings`);
    if (value.input_activations !== undefined && value.input_activations !== null) {
      throw new UnsupportedFormatError(`${at}.input_activations is set; sparq reads weight-only quantization`);
    }
    const w = value.weights;
    if (!isObject(w)) throw new InvalidFileError(`${at}.weights is missing`);
    const type = w.type ?? 'int';
    if (type !== 'int' && type !== 'float') throw new UnsupportedFormatError(`${at}.weights.type ${JSON.stringify(w.type)} is not supported (int, float)`);
    if ((type === 'int') !== (format === 'pack-quantized')) {
      throw new UnsupportedFormatError(`${at}: weights.type ${JSON.stringify(type)} stored as ${JSON.stringify(format)} is not supported (int weights as pack-quantized, float weights as float-quantized)`);
    }
    const bits = w.num_bits ?? 8;
    if (!Number.isInteger(bits) || (bits as number) < 1 || (bits as number) > 8) throw new InvalidFileError(`${at}.weights.num_bits ${describe(bits)} is not in 1..8`);
    const groupSize = w.group_size ?? null;
    const strategy = w.strategy ?? (typeof groupSize === 'number' && groupSize > 0 ? 'group' : groupSize === -1 ? 'channel' : 'tensor');
    if (strategy !== 'group' && strategy !== 'channel') throw new UnsupportedFormatError(`${at}.weights.strategy ${JSON.stringify(strategy)} is not supported (group, channel)`);
    if (strategy === 'group' && !(Number.isInteger(groupSize) && (groupSize as number) > 0)) throw new InvalidFileError(`${at}.weights.group_size ${describe(groupSize)} must be a positive integer with strategy group`);
    const actorder = w.actorder === 'weight' ? 'static' : w.actorder === 'dynamic' ? 'group' : (w.actorder ?? null);
    if (actorder !== null && actorder !== 'static' && actorder !== 'group') throw new UnsupportedFormatError(`${at}.weights.actorder ${JSON.stringify(w.actorder)} is not supported`);
    if (w.dynamic !== undefined && w.dynamic !== false) throw new UnsupportedFormatError(`${at}.weights.dynamic must be false for stored weights`);
    if (w.block_structure !== undefined && w.block_structure !== null) throw new UnsupportedFormatError(`${at}.weights.block_structure is not supported`);
    if (type === 'float' && (bits !== 8 || strategy !== 'channel' || w.symmetric === false)) {
      throw new UnsupportedFormatError(`${at}.weights: float weights are read as FP8 E4M3 with one scale per output channel (num_bits 8, strategy channel, symmetric), not num_bits ${describe(bits)}, strategy ${JSON.stringify(strategy)}`);
    }
    groups.push({
      name,
      targets: value.targets as string[],
      scheme: { type, bits: bits as number, symmetric: w.symmetric !== false, strategy, groupSize: strategy === 'group' ? (groupSize as number) : null, actorder },
    });
  }
  const ignore = raw.ignore ?? [];
  if (!Array.isArray(ignore) || !ignore.every((t) => typeof t === 'string')) throw new InvalidFileError(`${where}.ignore is not a list of strings`);
  return { groups, ignore: ignore as string[] };
}

/** The tensors of one quantized linear, decoded from their stored dtypes. */
export interface CtTensors {
  packed: Tensor;
  /** As stored (f32/f16/bf16). */
  scale: Tensor;
  zeroPoint?: Tensor;
  shape: Tensor;
  gIdx?: Tensor;
}

/** [out, in] from weight_shape (int64 or int32 [2]). */
export function ctShape(shape: Tensor, where: string): [number, number] {
  const values = shape.dtype === 'i64' ? Array.from(shape.data as BigInt64Array, Number) : Array.from(shape.data as Int32Array);
  if (values.length !== 2 || !values.every((v) => Number.isSafeInteger(v) && v >= 0)) throw new InvalidFileError(`${where}.weight_shape must hold two sizes, found ${JSON.stringify(values)}`);
  return [values[0], values[1]];
}

/**
 * Checks the stored tensors of a quantized linear against its scheme and weight_shape, then decodes them
 * into the dense f32 weight [out, in]. `where` names the linear in messages.
 */
export async function decodeCtLinear(tensors: CtTensors, scheme: CtWeightScheme, where: string, signal?: AbortSignal): Promise<Tensor> {
  const [rows, cols] = ctShape(tensors.shape, where);
  const bits = scheme.bits;
  const words = packedWords(cols, bits);
  const groupSize = scheme.strategy === 'channel' ? Math.max(cols, 1) : scheme.groupSize!;
  const groups = scheme.strategy === 'channel' ? 1 : Math.ceil(cols / groupSize);
  const expect = (t: Tensor, name: string, dtypes: string[], shape: number[]) => {
    if (!dtypes.includes(t.dtype) || t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      throw new InvalidFileError(`${where}.${name} is ${t.dtype} [${t.shape.join(', ')}]; the scheme (W${bits}, ${scheme.strategy}${scheme.groupSize ? ` ${scheme.groupSize}` : ''}) and weight_shape [${rows}, ${cols}] need ${dtypes.join('/')} [${shape.join(', ')}]`);
    }
  };
  expect(tensors.packed, 'weight_packed', ['i32'], [rows, words]);
  expect(tensors.scale, 'weight_scale', ['f32', 'f16', 'bf16'], [rows, groups]);
  let zeros: Tensor | undefined;
  if (!scheme.symmetric) {
    if (!tensors.zeroPoint) throw new InvalidFileError(`${where}.weight_zero_point is missing (the scheme is asymmetric)`);
    expect(tensors.zeroPoint, 'weight_zero_point', ['i32'], [packedWords(rows, bits), groups]);
    zeros = unpackZeroPoints(tensors.zeroPoint, bits, rows);
  }
  let groupOf: Tensor | undefined;
  if (scheme.actorder === 'group') {
    if (!tensors.gIdx) throw new InvalidFileError(`${where}.weight_g_idx is missing (actorder group)`);
    expect(tensors.gIdx, 'weight_g_idx', ['i32'], [cols]);
    for (const g of tensors.gIdx.data as Int32Array) {
      if (g < 0 || g >= groups) throw new InvalidFileError(`${where}.weight_g_idx holds group ${g}, outside 0..${groups - 1}`);
    }
    groupOf = tensors.gIdx;
  }
  return dequantizePackedAsync(tensors.packed, bits, tensors.scale.to('f32'), cols, { zeros, groupOf, groupSize, signal });
}

/** One quantized linear as stored: its tensors, its scheme, the scales' safetensors dtype, and its name for messages. */
export interface CtStoredLinear {
  tensors: CtTensors;
  scheme: CtWeightScheme;
  scaleDType: string;
  where: string;
}

/** The dense f32 weight [out, in] of a stored quantized linear, decoded exactly as compressed-tensors decodes it. */
export async function decodeCtStoredLinear(stored: CtStoredLinear, signal?: AbortSignal): Promise<Tensor> {
  const decoded = await decodeCtLinear(stored.tensors, stored.scheme, stored.where, signal);
  // compressed-tensors decodes in the scales' dtype, (q − z).to(s.dtype)·s: round as it does.
  if (stored.scaleDType === 'BF16') return decoded.to('bf16').to('f32');
  if (stored.scaleDType === 'F16') return decoded.to('f16').to('f32');
  return decoded;
}

/** Zero points i8 [rows, groups] from their packed form i32 [ceil(rows·b/32), groups] (packed along rows). */
export function unpackZeroPoints(packed: Tensor, bits: number, rows: number): Tensor {
  return unpackCodes(packed.transpose().contiguous(), bits, rows).transpose().contiguous();
}

/** Zero points i8 [rows, groups] packed along the output dimension: i32 [ceil(rows·b/32), groups]. */
export function packZeroPoints(zeros: Tensor, bits: number): Tensor {
  return packCodes(zeros.transpose().contiguous(), bits).transpose().contiguous();
}

/**
 * The dense f32 weight [out, in] of a float-quantized (FP8) linear: `values` its F8_E4M3 codes as read
 * (the reader gives their exact f32 values), `scale` [out, 1] as stored in `scaleDType`. Decoded as
 * compressed-tensors does, fp8.to(s.dtype)·s: in f32 the product is exact for f16/bf16 scales (4 + 11
 * significant bits), so rounding it once to the scales' dtype matches a product computed in that dtype.
 */
export function decodeCtFloatLinear(values: Tensor, scale: Tensor, scaleDType: string, where: string): Tensor {
  const [rows, cols] = values.shape.length === 2 ? values.shape : [-1, -1];
  if (rows < 0) throw new InvalidFileError(`${where}.weight has shape [${values.shape.join(', ')}]; a float-quantized weight is [out, in]`);
  if (!['F32', 'F16', 'BF16'].includes(scaleDType) || scale.shape.length !== 2 || scale.shape[0] !== rows || scale.shape[1] !== 1) {
    throw new InvalidFileError(`${where}.weight_scale is ${scaleDType} [${scale.shape.join(', ')}]; FP8 weights [${rows}, ${cols}] with one scale per output channel need F32/F16/BF16 [${rows}, 1]`);
  }
  const v = values.to('f32').data as Float32Array;
  const s = scale.to('f32').data as Float32Array;
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; ++r) {
    for (let c = 0; c < cols; ++c) out[r * cols + c] = Math.fround(v[r * cols + c] * s[r]);
  }
  const decoded = Tensor.fromTypedArray(out, [rows, cols]);
  if (scaleDType === 'BF16') return decoded.to('bf16').to('f32');
  if (scaleDType === 'F16') return decoded.to('f16').to('f32');
  return decoded;
}

/**
 * Whether a config group's targets select a linear, as vLLM matches them: the exact module name, a
 * `re:` pattern matched at the start of the name, or a class name ("Linear" selects every linear layer).
 */
export function ctTargets(targets: readonly string[], name: string): boolean {
  return targets.some((t) => t === name || t === 'Linear' || (t.startsWith('re:') && ctPatternMatches(t.slice(3), name)));
}

/** Whether `ignore` lists a module: its exact name or a `re:` pattern matched at the start. */
export function ctIgnored(ignore: readonly string[], name: string): boolean {
  return ignore.some((t) => t === name || (t.startsWith('re:') && ctPatternMatches(t.slice(3), name)));
}

/** `re:` patterns in a checkpoint match at the start of a name, as Python's re.match (linear-time engine). */
function ctPatternMatches(pattern: string, name: string): boolean {
  return compilePattern(`re:(?:${pattern}).*`, 'quantization_config').test(name);
}

/**
 * A compressed-tensors checkpoint seen as a dense one: each quantized linear's tensors (weight_packed,
 * weight_scale, …, or a float-quantized F8_E4M3 weight and its weight_scale) stand as one `<name>.weight`
 * of the scale's dtype, decoded when read. Everything else passes through. Opening checks that every
 * quantized linear has exactly the tensors its scheme needs.
 */
export class CtCheckpoint extends DecodedWeightsCheckpoint {
  private constructor(
    inner: Checkpoint,
    readonly config: CtConfig,
    /** Pack-quantized linears (module names) and their schemes: their codes can be read (readQuantized). */
    readonly quantized: ReadonlyMap<string, CtWeightScheme>,
    /** Float-quantized (FP8) linears and their schemes: read decoded only. */
    readonly floatQuantized: ReadonlyMap<string, CtWeightScheme>,
    visibleNames: string[],
  ) {
    super(inner, visibleNames);
  }

  /** Wraps an opened checkpoint whose config.json carries `quantizationConfig`; `source` names config.json. */
  static wrap(inner: Checkpoint, quantizationConfig: unknown, source: string): CtCheckpoint {
    const config = parseCtConfig(quantizationConfig, source);
    const names = new Set(inner.names());
    const virtual: string[] = [];
    const quantized = new Map<string, CtWeightScheme>();
    const floatQuantized = new Map<string, CtWeightScheme>();
    const groupOf = (base: string) => {
      if (ctIgnored(config.ignore, base)) throw new InvalidFileError(`${inner.dir}: '${base}' is listed in quantization_config.ignore but is stored quantized`);
      const group = config.groups.find((g) => ctTargets(g.targets, base));
      if (!group) throw new InvalidFileError(`${inner.dir}: '${base}' is stored quantized, but no quantization_config group targets it`);
      return group;
    };
    for (const name of names) {
      const suffix = CT_SUFFIXES.find((s) => name.endsWith(`.${s}`));
      if (!suffix) {
        // A float-quantized weight keeps its name (<base>.weight): visible as itself, decoded when read.
        virtual.push(name);
        continue;
      }
      const base = name.slice(0, -suffix.length - 1);
      if (suffix === 'weight_scale' && !names.has(`${base}.weight_packed`) && names.has(`${base}.weight`)) {
        const group = groupOf(base);
        if (group.scheme.type !== 'float') throw new InvalidFileError(`${inner.dir}: '${base}' is stored as a weight with a weight_scale (float-quantized), but its group ${group.name} quantizes to int (pack-quantized: weight_packed)`);
        floatQuantized.set(base, group.scheme);
        continue;
      }
      if (suffix !== 'weight_packed') {
        if (!names.has(`${base}.weight_packed`)) throw new InvalidFileError(`${inner.dir}: tensor '${name}' has no '${base}.weight_packed' beside it`);
        continue;
      }
      if (names.has(`${base}.weight`)) throw new InvalidFileError(`${inner.dir}: '${base}' has both a dense weight and weight_packed`);
      const group = groupOf(base);
      if (group.scheme.type !== 'int') throw new InvalidFileError(`${inner.dir}: '${base}' is stored pack-quantized (weight_packed), but its group ${group.name} quantizes to float (float-quantized)`);
      for (const required of ['weight_scale', 'weight_shape', ...(group.scheme.symmetric ? [] : ['weight_zero_point']), ...(group.scheme.actorder === 'group' ? ['weight_g_idx'] : [])]) {
        if (!names.has(`${base}.${required}`)) throw new InvalidFileError(`${inner.dir}: '${base}.${required}' is missing (group ${group.name}: W${group.scheme.bits}${group.scheme.symmetric ? '' : ' asymmetric'}${group.scheme.actorder === 'group' ? ', actorder group' : ''})`);
      }
      quantized.set(base, group.scheme);
      virtual.push(`${base}.weight`);
    }
    return new CtCheckpoint(inner, config, quantized, floatQuantized, virtual);
  }

  private quantizedBase(name: string): string | undefined {
    return this.storedModule(name, this.quantized);
  }

  /** Every quantized linear (pack- and float-quantized) and its scheme. */
  get schemes(): ReadonlyMap<string, CtWeightScheme> {
    return new Map([...this.quantized, ...this.floatQuantized]);
  }

  /** A float-quantized linear decoded to f32 [out, in], its stored dtypes and shapes checked first. */
  private async readFloatQuantized(base: string): Promise<Tensor> {
    const where = `${this.dir}: ${base}`;
    const info = await this.inner.info(`${base}.weight`);
    if (info.dtype !== 'F8_E4M3' || info.shape.length !== 2) {
      throw new InvalidFileError(`${where}.weight is ${info.dtype} [${info.shape.join(', ')}]; a float-quantized weight is F8_E4M3 [out, in]`);
    }
    const scaleDType = (await this.inner.info(`${base}.weight_scale`)).dtype;
    return decodeCtFloatLinear(await this.inner.read(`${base}.weight`), await this.inner.read(`${base}.weight_scale`), scaleDType, where);
  }

  async info(name: string): Promise<{ name: string; dtype: string; shape: number[] }> {
    const floatBase = this.storedModule(name, this.floatQuantized);
    if (floatBase) return { name, dtype: (await this.inner.info(`${floatBase}.weight_scale`)).dtype, shape: (await this.inner.info(name)).shape };
    const base = this.quantizedBase(name);
    if (!base) return this.inner.info(name);
    const scale = await this.inner.info(`${base}.weight_scale`);
    const shape = ctShape(await this.inner.read(`${base}.weight_shape`), `${this.dir}: ${base}`);
    return { name, dtype: scale.dtype, shape };
  }

  async read(name: string, options: { dtype?: DType } = {}): Promise<Tensor> {
    const floatBase = this.storedModule(name, this.floatQuantized);
    const base = this.quantizedBase(name);
    if (!base && !floatBase) return this.inner.read(name, options);
    const weight = floatBase ? await this.readFloatQuantized(floatBase) : await decodeCtStoredLinear(await this.readQuantized(base!));
    return options.dtype && options.dtype !== 'f32' ? weight.to(options.dtype) : weight;
  }

  /** A quantized linear's stored tensors (module name `base`, as in `quantized`), not decoded. */
  async readQuantized(base: string): Promise<CtStoredLinear> {
    const scheme = this.quantized.get(base);
    if (!scheme) throw new InvalidArgumentError(`${this.dir}: '${base}' is not a quantized linear`);
    const read = (suffix: string) => this.inner.read(`${base}.${suffix}`);
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

  shardPath(name: string): string {
    const base = this.quantizedBase(name);
    return this.inner.shardPath(base ? `${base}.weight_packed` : name);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
