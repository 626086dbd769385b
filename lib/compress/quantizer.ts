// Weight quantization schemes and round-to-nearest (RTN), the baseline every quantization paper compares
// with and what the pipeline applies after a method that prunes but does not quantize.
//   grid     b-bit signed codes; per group of G consecutive inputs of a row (or one group per row:
//            "per channel"); symmetric (zero point 0) or asymmetric; the range of a group always includes 0
//            (the grid of compressed-tensors 0.18, native/core/quant.h)
//   RTN      each group's scale and zero point from its weights' range, then q = round(w/s + z)
//   FP8      E4M3 (lib/tensor/fp8.ts) with one scale per output channel, s = max|w|/448, w ≈ s·fp8(w/s)
// Codes are kept in input-column order; with activation order 'group', groups are not consecutive inputs
// and `groupIndex` names each input column's group (compressed-tensors' weight_g_idx).
import { InvalidArgumentError } from '../errors.js';
import type { QuantGrid } from '../tensor/ops.js';
import { quantizeRtnAsync } from '../tensor/quant.js';
import { decodeE4M3, E4M3_MAX, encodeE4M3 } from '../tensor/fp8.js';
import { Tensor } from '../tensor/tensor.js';
import { checkBoolean, checkInteger, checkOneOf, describe } from '../validate.js';

export const QUANTIZATION_BITS = [2, 3, 4, 8] as const;

/**
 * GPTQ's activation order: sweep columns by descending diag H. 'static' keeps groups of consecutive
 * inputs with grids fixed before the sweep (llm-compressor's default; nothing extra stored); 'group' forms
 * the groups in that order (grids of the permuted weights; compressed-tensors stores weight_g_idx).
 */
export type ActOrder = 'static' | 'group';

export interface QuantizationScheme {
  bits: (typeof QUANTIZATION_BITS)[number];
  /** Inputs per group; 0 = one scale per output channel. */
  groupSize: number;
  symmetric: boolean;
  actOrder?: ActOrder;
}

export interface QuantizedWeight {
  scheme: QuantizationScheme;
  /** i8 [out, in]: signed codes in input-column order. */
  codes: Tensor;
  /** f32 [out, groups], each exactly representable in the storage dtype. */
  scales: Tensor;
  /** i8 [out, groups]; asymmetric schemes only. */
  zeros?: Tensor;
  /** i32 [in]: each input's group, when groups are not consecutive inputs (actOrder 'group'). */
  groupIndex?: Tensor;
}

/** Columns per group for a row of `inputs`. */
export function groupColumns(scheme: QuantizationScheme, inputs: number): number {
  return scheme.groupSize === 0 ? inputs : scheme.groupSize;
}

/** The kernels' grid for a scheme, a row length and the dtype scales are stored in. */
export function gridOf(scheme: QuantizationScheme, inputs: number, storageDType: string): QuantGrid {
  const scaleDType = storageDType === 'f16' || storageDType === 'bf16' ? storageDType : 'f32';
  return { bits: scheme.bits, groupSize: Math.max(1, groupColumns(scheme, inputs)), symmetric: scheme.symmetric, scaleDType };
}

/** Bits the dtype takes per value. */
export function dtypeBits(dtype: string): number {
  return dtype === 'f64' ? 64 : dtype === 'f32' ? 32 : 16;
}

/**
 * Average bits per weight of a quantized matrix as stored: the codes, plus each group's scale (in the
 * storage dtype) and zero point (asymmetric), plus the group index (32 bits per input) where stored.
 */
export function bitsPerWeight(q: QuantizedWeight, storageDType: string): number {
  const [rows, inputs] = q.codes.shape;
  const groups = q.scales.shape[1];
  let bits = q.scheme.bits * rows * inputs + dtypeBits(storageDType) * rows * groups;
  if (q.zeros) bits += q.scheme.bits * rows * groups;
  if (q.groupIndex) bits += 32 * inputs;
  return rows * inputs === 0 ? 0 : bits / (rows * inputs);
}

/** Bits a matrix's CSR outliers take: each f16 value and i32 column index, plus i32 row pointers [rows + 1]. */
export function outlierBits(count: number, rows: number): number {
  return count === 0 ? 0 : count * (16 + 32) + 32 * (rows + 1);
}

/** "W4 g128 sym", "W8 channel asym act-order" … for reports. */
export function describeScheme(scheme: QuantizationScheme): string {
  return `W${scheme.bits} ${scheme.groupSize === 0 ? 'channel' : `g${scheme.groupSize}`} ${scheme.symmetric ? 'sym' : 'asym'}${scheme.actOrder ? ` act-order ${scheme.actOrder}` : ''}`;
}

/** Validates a recipe's `quantize` block (or the CLI's flags built into one); `where` names it. */
export function parseQuantization(raw: unknown, where: string): QuantizationScheme {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new InvalidArgumentError(`${where}: expected an object such as { bits: 4, groupSize: 128 }, got ${describe(raw)}`);
  }
  const value = raw as Record<string, unknown>;
  for (const key of Object.keys(value)) {
    if (!['bits', 'groupSize', 'symmetric', 'actOrder'].includes(key)) {
      throw new InvalidArgumentError(`${where}: unknown key '${key}' (allowed: bits, groupSize, symmetric, actOrder)`);
    }
  }
  if (value.bits === undefined) throw new InvalidArgumentError(`${where}.bits: required (${QUANTIZATION_BITS.join(', ')})`);
  if (!QUANTIZATION_BITS.includes(value.bits as 4)) {
    throw new InvalidArgumentError(`${where}.bits: expected one of ${QUANTIZATION_BITS.join(', ')}, got ${describe(value.bits)}`);
  }
  const groupSize = checkInteger(`${where}.groupSize`, value.groupSize ?? 128, 0);
  const symmetric = checkBoolean(`${where}.symmetric`, value.symmetric ?? true);
  let actOrder: ActOrder | undefined;
  if (value.actOrder !== undefined && value.actOrder !== false) {
    actOrder = value.actOrder === true ? 'static' : checkOneOf(`${where}.actOrder`, value.actOrder, ['static', 'group'] as const);
  }
  return { bits: value.bits as QuantizationScheme['bits'], groupSize, symmetric, ...(actOrder ? { actOrder } : {}) };
}

/**
 * Round to nearest: the weight's codes on the scheme's grid (scales rounded to the storage dtype) and the
 * decoded f32 weight. Zeros stay exact zeros.
 */
export async function roundToNearest(weight: Tensor, scheme: QuantizationScheme, storageDType: string, signal?: AbortSignal): Promise<{ weight: Tensor; quantized: QuantizedWeight }> {
  const grid = gridOf(scheme, weight.shape[1], storageDType);
  const rounded = await quantizeRtnAsync(weight, grid, { signal });
  return {
    weight: rounded.weight,
    quantized: { scheme, codes: rounded.codes, scales: rounded.scales, ...(scheme.symmetric ? {} : { zeros: rounded.zeros }) },
  };
}

/** FP8 codes and their per-channel scales (CompressedLinear.floatQuantized). */
export interface FloatQuantizedWeight {
  format: 'fp8-e4m3';
  /** u8 [out, in]: E4M3 bit patterns. */
  codes: Tensor;
  /** f32 [out, 1], each exactly representable in the storage dtype. */
  scales: Tensor;
}

/**
 * Per output channel FP8 E4M3 (HWPQ's --bits fp8, and the pipeline's rounding after a method that did not
 * quantize in such a stage): the codes (u8 [out, in]), the decoded weight s·fp8(w/s), written over `weight`,
 * and the scales [out, 1]. Pruned weights (exact zeros) get code 0, and so does anything that rounds to
 * ±0: the code of +0, so the stored codes and the decoded weight agree bit for bit.
 */
export async function roundToFp8E4m3(weight: Tensor, storageDType: string, signal?: AbortSignal): Promise<{ weight: Tensor; floatQuantized: FloatQuantizedWeight }> {
  const [rows, cols] = weight.shape;
  const w = weight.data as Float32Array;
  const scales = new Float32Array(rows);
  for (let r = 0; r < rows; ++r) {
    let max = 0;
    for (let c = 0; c < cols; ++c) max = Math.max(max, Math.abs(w[r * cols + c]));
    scales[r] = max === 0 ? 1 : max / E4M3_MAX;
  }
  // Scales exactly representable in the storage dtype, as every grid's are.
  const stored = storageDType === 'f16' || storageDType === 'bf16' ? (Tensor.fromTypedArray(scales).to(storageDType).to('f32').data as Float32Array) : scales;
  const codes = new Uint8Array(rows * cols);
  for (let r = 0; r < rows; ++r) {
    const s = stored[r];
    for (let c = 0; c < cols; ++c) {
      let code = encodeE4M3(w[r * cols + c] / s);
      if (code === 0x80) code = 0;
      codes[r * cols + c] = code;
      // f32 as compressed-tensors decodes, fp8.to(s.dtype)·s (exact for f16/bf16 scales: 4 + 11 bits fit).
      w[r * cols + c] = Math.fround(decodeE4M3(code) * s);
    }
    if (r % 64 === 63) {
      signal?.throwIfAborted();
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }
  return { weight, floatQuantized: { format: 'fp8-e4m3', codes: Tensor.fromTypedArray(codes, [rows, cols]), scales: Tensor.fromTypedArray(stored, [rows, 1]) } };
}
