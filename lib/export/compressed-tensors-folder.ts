// The `compressed-tensors` output: the model folder vLLM and Hugging Face load as pack-quantized, or as
// float-quantized for FP8 weights (lib/io/compressed-tensors.ts describes both). Quantized linears are
// stored as weight_packed / weight_scale (/ weight_zero_point, weight_g_idx) / weight_shape; FP8 linears
// (HWPQ --bits fp8) as weight, F8_E4M3 [out, in] codes, and weight_scale [out, 1] in the model dtype — the
// layout of vLLM's CompressedTensorsW8A16Fp8 (weight-only FP8, per channel); every other tensor as in the
// input (pruned-only linears with their zeros in place). The shards are planned up front — names, dtypes,
// shapes and offsets are known before any weight is compressed — so each finished tensor is written at
// its offset, an interrupted run resumes in the same files, and the staging folder is a loadable model
// throughout (config.json carries the quantization_config from the start).
import { copyFile, open, readdir, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { CompressedLinear } from '../compress/method.js';
import { groupColumns, type QuantizationScheme } from '../compress/quantizer.js';
import type { DType } from '../tensor/dtype.js';
import { InvalidArgumentError, InvalidFileError } from '../errors.js';
import { checkpointIndex, INDEX_FILE, indexJson, planShards, type Checkpoint, type PlannedShard } from '../io/checkpoint.js';
import { ctQuantizationConfig, packZeroPoints, type CtGroup, type CtWeightScheme } from '../io/compressed-tensors.js';
import { planLayout, tensorBytes, type PlannedTensor, type TensorInfo } from '../io/safetensors.js';
import { readJsonObject } from '../io/text.js';
import { packCodesAsync, packedWords } from '../tensor/quant.js';
import { Tensor } from '../tensor/tensor.js';
import type { StagingFolder } from './staging.js';
import { ModelFolderWriter, openResumableStaging, type ResumeState } from './writer.js';

/** The compressed-tensors release whose format this writer follows (its `version` field). */
export const CT_FORMAT_VERSION = '0.18.0';

/** Shards are split at this size (as Hugging Face's save_pretrained does by default). */
export const DEFAULT_MAX_SHARD_BYTES = 5 * 10 ** 9;

/** A quantized linear's scheme as the writer plans it: an integer grid, or FP8 E4M3 codes (`float`). */
export type CtPlannedScheme = QuantizationScheme & { float?: 'fp8-e4m3' };

/** compressed-tensors' description of a scheme. */
export function ctScheme(scheme: CtPlannedScheme): CtWeightScheme {
  return {
    type: scheme.float ? 'float' : 'int',
    bits: scheme.bits,
    symmetric: scheme.symmetric,
    strategy: scheme.groupSize === 0 ? 'channel' : 'group',
    groupSize: scheme.groupSize === 0 ? null : scheme.groupSize,
    actorder: scheme.actOrder ?? null,
  };
}

const SCHEME_KEY = (s: CtPlannedScheme) => JSON.stringify([s.float ?? 'int', s.bits, s.groupSize, s.symmetric, s.actOrder ?? null]);

/** vLLM's pack-quantized (WNA16) loader: 4- and 8-bit codes, these group sizes (0 = per channel). */
export const VLLM_BITS = [4, 8];
export const VLLM_GROUP_SIZES = [0, 32, 64, 128];

/**
 * Refuses a quantized linear vLLM could not load, naming it and the fix. `fused` lists the linears vLLM
 * runs as one (q/k/v, gate/up): they must share one scheme.
 */
export function checkVllmLoadable(name: string, shape: readonly number[], scheme: QuantizationScheme): void {
  const inputs = shape[1];
  if (!VLLM_BITS.includes(scheme.bits)) {
    throw new InvalidArgumentError(`${name}: vLLM loads 4- and 8-bit pack-quantized weights only, not ${scheme.bits}-bit; use --format dense (decoded weights) for W${scheme.bits}`);
  }
  if (!VLLM_GROUP_SIZES.includes(scheme.groupSize)) {
    throw new InvalidArgumentError(`${name}: vLLM supports group sizes 32, 64, 128 or one scale per output channel (--group-size 0), not ${scheme.groupSize}; pick one, or use --format dense`);
  }
  const g = groupColumns(scheme, inputs);
  if (inputs % g !== 0) {
    throw new InvalidArgumentError(`${name}: its ${inputs} inputs do not split into groups of ${g}, which vLLM requires; choose a --group-size that divides ${inputs} (or 0 for per channel), ignore this layer (e.g. --ignore '${name}'), or use --format dense`);
  }
  if (inputs % (32 / scheme.bits) !== 0) {
    throw new InvalidArgumentError(`${name}: ${inputs} inputs do not fill whole 32-bit words of ${scheme.bits}-bit codes, which vLLM requires; ignore this layer or use --format dense`);
  }
}

/** The tensors that stand for a quantized linear, in the order compressed-tensors writes them. */
function quantizedPlan(name: string, shape: readonly number[], scheme: CtPlannedScheme, scaleDType: DType): PlannedTensor[] {
  const [rows, inputs] = shape;
  if (scheme.float) {
    return [
      { name: `${name}.weight`, dtype: 'u8', storedAs: 'F8_E4M3', shape: [rows, inputs] },
      { name: `${name}.weight_scale`, dtype: scaleDType, shape: [rows, 1] },
    ];
  }
  const groups = scheme.groupSize === 0 ? 1 : Math.ceil(inputs / scheme.groupSize);
  const plan: PlannedTensor[] = [
    { name: `${name}.weight_packed`, dtype: 'i32', shape: [rows, packedWords(inputs, scheme.bits)] },
    { name: `${name}.weight_scale`, dtype: scaleDType, shape: [rows, groups] },
    { name: `${name}.weight_shape`, dtype: 'i64', shape: [2] },
  ];
  if (!scheme.symmetric) plan.push({ name: `${name}.weight_zero_point`, dtype: 'i32', shape: [packedWords(rows, scheme.bits), groups] });
  if (scheme.actOrder === 'group') plan.push({ name: `${name}.weight_g_idx`, dtype: 'i32', shape: [inputs] });
  return plan;
}

const SAFETENSORS_DTYPES: Record<string, DType> = { F32: 'f32', F16: 'f16', BF16: 'bf16', F64: 'f64', I64: 'i64', I32: 'i32', I8: 'i8', U8: 'u8', BOOL: 'u8' };

export interface CompressedTensorsPlan {
  /** Linear module name → its scheme, for the quantized ones. */
  quantized: Map<string, CtPlannedScheme>;
  /** Every linear module name of the model (to list the dense ones in `ignore`), plus lm_head. */
  linears: string[];
  maxShardBytes?: number;
}

export class CompressedTensorsFolder<Entry> extends ModelFolderWriter<Entry> {
  private constructor(
    staged: StagingFolder<ResumeState<Entry>>,
    input: Checkpoint,
    runFingerprint: string,
    private readonly quantized: Map<string, CtPlannedScheme>,
    /** Tensor name → its shard file (in the staging folder) and place in it. */
    private readonly placement: Map<string, { file: string; info: TensorInfo }>,
  ) {
    super(staged, input, runFingerprint);
  }

  static async begin<Entry>(
    input: Checkpoint,
    target: string,
    plan: CompressedTensorsPlan,
    options: { overwrite?: boolean; resume?: boolean; fingerprint: string },
  ): Promise<CompressedTensorsFolder<Entry>> {
    // The layout first: it depends only on the input and the plan, so a resumed run finds the same one.
    const tensors: PlannedTensor[] = [];
    for (const name of input.names()) {
      const info = await input.info(name);
      const base = name.endsWith('.weight') ? name.slice(0, -'.weight'.length) : undefined;
      const scheme = base ? plan.quantized.get(base) : undefined;
      const dtype = SAFETENSORS_DTYPES[info.dtype];
      if (!dtype) throw new InvalidFileError(`${input.dir}: tensor '${name}' is stored as ${info.dtype}, which sparq cannot copy`);
      if (scheme) tensors.push(...quantizedPlan(base!, info.shape, scheme, dtype));
      else tensors.push({ name, dtype, shape: info.shape });
    }
    const shards = planShards(tensors, plan.maxShardBytes ?? DEFAULT_MAX_SHARD_BYTES);
    const placement = new Map<string, { file: string; info: TensorInfo }>();
    const layouts = shards.map((shard) => planLayout(shard.tensors, { format: 'pt' }));
    const staged = await openResumableStaging<Entry>(input, target, options);
    shards.forEach((shard, i) => {
      for (const [name, info] of layouts[i].tensors) placement.set(name, { file: staged.file(shard.file), info });
    });
    const folder = new CompressedTensorsFolder<Entry>(staged, input, options.fingerprint, plan.quantized, placement);
    if (staged.resumed) return folder;
    try {
      await folder.prepare(shards.map((s, i) => ({ ...s, layout: layouts[i] })), plan);
      await staged.saveProgress({ fingerprint: options.fingerprint, blocksDone: 0, entries: [], extra: {} });
    } catch (error) {
      await staged.discard();
      throw error;
    }
    return folder;
  }

  /**
   * The fresh staging folder: the input's companion files (tokenizer, generation config …), config.json with
   * the quantization_config, the planned shards (their headers, space for every tensor) and index, and every
   * tensor that is not compressed copied as it is.
   */
  private async prepare(shards: (PlannedShard & { layout: ReturnType<typeof planLayout> })[], plan: CompressedTensorsPlan): Promise<void> {
    const input = resolve(this.input.dir);
    for (const name of await readdir(input)) {
      if (name.endsWith('.safetensors') || name === INDEX_FILE || name === 'config.json') continue;
      if (!(await stat(join(input, name)).catch(() => undefined))?.isFile()) continue;
      const destination = this.staged.file(name);
      await this.staged.guard(destination, () => copyFile(join(input, name), destination), { keptForResume: false });
    }
    const config = await readJsonObject(join(input, 'config.json'));
    config.quantization_config = ctQuantizationConfig(configGroups(plan.quantized), plan.linears.filter((l) => !plan.quantized.has(l)), CT_FORMAT_VERSION);
    const configPath = this.staged.file('config.json');
    await this.staged.guard(configPath, () => writeFile(configPath, `${JSON.stringify(config, null, 2)}\n`), { keptForResume: false });
    for (const { file, layout } of shards) {
      const path = this.staged.file(file);
      await this.staged.guard(
        path,
        async () => {
          const handle = await open(path, 'wx');
          try {
            await handle.write(layout.head, 0, layout.head.length, 0);
            await handle.truncate(layout.fileSize);
          } finally {
            await handle.close();
          }
        },
        { keptForResume: false },
      );
    }
    const index = checkpointIndex(shards);
    if (index) {
      const indexPath = this.staged.file(INDEX_FILE);
      await this.staged.guard(indexPath, () => writeFile(indexPath, indexJson(index)), { keptForResume: false });
    }
    // Everything that is not a quantized linear keeps its bytes (a linear that is only pruned is written
    // again when its block is done; an FP8 linear's weight slot holds codes, zero until then); quantized
    // linears' shapes are known now, so the staging folder reads as a model whose unfinished linears decode
    // to zeros.
    const fp8Weights = new Set([...this.quantized].filter(([, s]) => s.float).map(([name]) => `${name}.weight`));
    for (const name of this.input.names()) {
      if (this.placement.has(name) && !fp8Weights.has(name)) await this.writeTensor(name, await this.input.read(name));
    }
    for (const [name, scheme] of this.quantized) {
      if (scheme.float) continue;
      const shape = (await this.input.info(`${name}.weight`)).shape;
      await this.writeTensor(`${name}.weight_shape`, Tensor.fromTypedArray(BigInt64Array.from(shape, BigInt), [2]));
    }
    await this.closeFiles();
  }

  private async writeTensor(name: string, tensor: Tensor): Promise<void> {
    const place = this.placement.get(name);
    if (!place) throw new InvalidArgumentError(`${name}: not part of the planned output`);
    const bytes = tensorBytes(tensor);
    if (bytes.byteLength !== place.info.byteLength) throw new InvalidArgumentError(`${name}: ${bytes.byteLength} bytes for a slot of ${place.info.byteLength}`);
    await this.writeAt(place.file, place.info.offset, bytes);
  }

  async storageDType(name: string): Promise<DType> {
    const info = await this.input.info(`${name}.weight`);
    const dtype = SAFETENSORS_DTYPES[info.dtype];
    if (!dtype || !['f32', 'f16', 'bf16', 'f64'].includes(dtype)) throw new InvalidFileError(`${name}: stored as ${info.dtype}; only float weights can be compressed`);
    return dtype;
  }

  async writeLinear(name: string, result: CompressedLinear, weight: Tensor): Promise<void> {
    const scheme = this.quantized.get(name);
    const dtype = await this.storageDType(name);
    if (!scheme) {
      await this.writeTensor(`${name}.weight`, await weight.toAsync(dtype));
      return;
    }
    if (scheme.float) {
      const f = result.floatQuantized;
      if (!f) throw new InvalidArgumentError(`${name}: planned as FP8 (float-quantized), but its result holds no FP8 codes; use --format dense`);
      await this.writeTensor(`${name}.weight`, f.codes);
      await this.writeTensor(`${name}.weight_scale`, await f.scales.toAsync(dtype));
      return;
    }
    const q = result.quantized;
    if (!q) throw new InvalidArgumentError(`${name}: planned as quantized, but the method returned no codes`);
    if (result.outliers) throw new InvalidArgumentError(`${name}: its outliers cannot be stored in compressed-tensors (use --format packed or dense)`);
    await this.writeTensor(`${name}.weight_packed`, await packCodesAsync(q.codes, scheme.bits));
    await this.writeTensor(`${name}.weight_scale`, await q.scales.toAsync(dtype));
    if (!scheme.symmetric) await this.writeTensor(`${name}.weight_zero_point`, packZeroPoints(q.zeros!, scheme.bits));
    if (scheme.actOrder === 'group') await this.writeTensor(`${name}.weight_g_idx`, q.groupIndex!);
  }
}

/** One config group per distinct scheme: all linears ("Linear") when there is one, else by exact name. */
function configGroups(quantized: Map<string, CtPlannedScheme>): CtGroup[] {
  const byScheme = new Map<string, { scheme: CtPlannedScheme; names: string[] }>();
  for (const [name, scheme] of quantized) {
    const key = SCHEME_KEY(scheme);
    const entry = byScheme.get(key) ?? { scheme, names: [] };
    entry.names.push(name);
    byScheme.set(key, entry);
  }
  const entries = [...byScheme.values()];
  return entries.map((e, i) => ({ name: `group_${i}`, targets: entries.length === 1 ? ['Linear'] : e.names, scheme: ctScheme(e.scheme) }));
}
