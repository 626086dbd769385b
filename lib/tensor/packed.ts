// Packed weights and the linear layers that run on them (native/core/packed_formats.h has the layouts).
// A packed weight is plain tensors plus its format's parameters; packedLinear computes y = x·Wᵀ (+ bias)
// from it without materializing W, and the pack/unpack pairs convert exactly between dense and packed.
import { checkMatrix, checkTensor, runAsync, runSync, type AsyncOptions, type Call } from './call.js';
import { dequantizePacked, packCodes, unpackCodes } from './quant.js';
import { formatShape, Tensor } from './tensor.js';
import type { DType } from './dtype.js';
import type { Device } from './native.js';
import { checkInteger, checkOneOf, invalid } from '../validate.js';

export const PACKED_FORMATS = ['int4', '2:4', '2:4+int4', 'bsr', 'bsr-int4'] as const;
export type PackedFormat = (typeof PACKED_FORMATS)[number];
export const BSR_BLOCK_SIZES = [8, 16, 32] as const;

interface PackedBase {
  /** N: rows of W, outputs of the layer. */
  outFeatures: number;
  /** K: columns of W, inputs of the layer. */
  inFeatures: number;
  /** f16/f32 outliers added to the base format (a CSR matrix: BSR with blocks of 1). */
  outliers?: BsrWeight;
}
/** A dense weight [N, K] in f32, f16 or bf16: the baseline every packed format is compared with. */
export interface DenseWeight extends PackedBase {
  format: 'dense';
  values: Tensor;
}
/** Codes 8 per i32 word (compressed-tensors' pack-quantized layout), (code − zero)·scale per group. */
export interface Int4Weight extends PackedBase {
  format: 'int4';
  packed: Tensor;
  scales: Tensor;
  zeros?: Tensor;
  groupSize: number;
}
/** The kept half of each group of 4 inputs, and 2-bit positions. */
export interface Sparse24Weight extends PackedBase {
  format: '2:4';
  values: Tensor;
  meta: Tensor;
}
/** 2:4 with the kept values as symmetric int4 codes, scales per group of groupSize inputs. */
export interface Sparse24Int4Weight extends PackedBase {
  format: '2:4+int4';
  packed: Tensor;
  meta: Tensor;
  scales: Tensor;
  groupSize: number;
}
/** Blocks of blockSize consecutive inputs of a row, in CSR order. */
export interface BsrWeight extends PackedBase {
  format: 'bsr';
  rowPtr: Tensor;
  blockCols: Tensor;
  values: Tensor;
  blockSize: number;
}
/** BSR with int4 codes and one symmetric scale per block. */
export interface BsrInt4Weight extends PackedBase {
  format: 'bsr-int4';
  rowPtr: Tensor;
  blockCols: Tensor;
  packed: Tensor;
  blockScales: Tensor;
  blockSize: number;
}
export type PackedWeight = DenseWeight | Int4Weight | Sparse24Weight | Sparse24Int4Weight | BsrWeight | BsrInt4Weight;

/** The native op that runs each format's linear (what `supportsOp` is asked about). */
export const LINEAR_OPS: Record<PackedWeight['format'], string> = {
  dense: 'denseLinear',
  int4: 'int4Linear',
  '2:4': 'sparse24Linear',
  '2:4+int4': 'sparse24Int4Linear',
  bsr: 'bsrLinear',
  'bsr-int4': 'bsrInt4Linear',
};

const FLOAT_STORAGE: readonly DType[] = ['f32', 'f16', 'bf16'];

function optional(t: Tensor | undefined, dtype: DType): Tensor {
  return t ? t.contiguous() : Tensor.zeros([0], dtype);
}

function linearCall(x: Tensor, w: PackedWeight, bias: Tensor | undefined, y: Tensor, accumulate = false): Call<Tensor> {
  const xs = x.contiguous();
  const b = optional(bias, 'f32');
  const tail = (...args: unknown[]) => [...xs.nativeArgs('x'), ...args];
  const result = () => y;
  switch (w.format) {
    case 'dense':
      return { device: x.device, name: 'denseLinear', result, args: tail(...w.values.nativeArgs('w'), ...b.nativeArgs('bias'), ...y.nativeArgs('y')) };
    case 'int4':
      return { device: x.device, name: 'int4Linear', result, args: tail(...w.packed.nativeArgs('packed'), ...w.scales.nativeArgs('scales'), ...optional(w.zeros, 'i8').nativeArgs('zeros'), w.groupSize, ...b.nativeArgs('bias'), ...y.nativeArgs('y')) };
    case '2:4':
      return { device: x.device, name: 'sparse24Linear', result, args: tail(...w.values.nativeArgs('values'), ...w.meta.nativeArgs('meta'), ...b.nativeArgs('bias'), ...y.nativeArgs('y')) };
    case '2:4+int4':
      return { device: x.device, name: 'sparse24Int4Linear', result, args: tail(...w.packed.nativeArgs('packed'), ...w.meta.nativeArgs('meta'), ...w.scales.nativeArgs('scales'), w.groupSize, ...b.nativeArgs('bias'), ...y.nativeArgs('y')) };
    case 'bsr':
      return { device: x.device, name: 'bsrLinear', result, args: tail(...w.rowPtr.nativeArgs('rowPtr'), ...w.blockCols.nativeArgs('blockCols'), ...w.values.nativeArgs('values'), w.blockSize, ...b.nativeArgs('bias'), accumulate, ...y.nativeArgs('y')) };
    case 'bsr-int4':
      return { device: x.device, name: 'bsrInt4Linear', result, args: tail(...w.rowPtr.nativeArgs('rowPtr'), ...w.blockCols.nativeArgs('blockCols'), ...w.packed.nativeArgs('packed'), ...w.blockScales.nativeArgs('blockScales'), w.blockSize, ...b.nativeArgs('bias'), ...y.nativeArgs('y')) };
  }
}

function checkLinearInputs(x: Tensor, w: PackedWeight): void {
  checkTensor('x', x);
  if (x.dtype !== 'f32' || x.ndim !== 2) invalid('x', 'f32 [tokens, inputs]', `${x.dtype} ${formatShape(x.shape)}`);
  if (x.shape[1] !== w.inFeatures) invalid('x', `${w.inFeatures} inputs per token (the weight's inFeatures)`, `${x.shape[1]}`);
  checkOneOf('weight.format', w.format, ['dense', ...PACKED_FORMATS]);
}

export interface PackedLinearOptions {
  /** f32 [N], added to every token's output. */
  bias?: Tensor;
  /** f32 [T, N] to write y into (every element is overwritten). */
  out?: Tensor;
}

function outputFor(x: Tensor, w: PackedWeight, out: Tensor | undefined): Tensor {
  if (!out) return Tensor.zeros([x.shape[0], w.outFeatures], 'f32', x.device);
  checkTensor('out', out);
  if (out.dtype !== 'f32' || out.ndim !== 2 || out.shape[0] !== x.shape[0] || out.shape[1] !== w.outFeatures || !out.isContiguous) {
    invalid('out', `a contiguous f32 [${x.shape[0]}, ${w.outFeatures}] tensor`, `${out.dtype} ${formatShape(out.shape)}`);
  }
  return out;
}

/** y [T, N] = x [T, K]·Wᵀ (+ bias, + outliers) for a packed W. */
export function packedLinear(x: Tensor, w: PackedWeight, options: PackedLinearOptions = {}): Tensor {
  checkLinearInputs(x, w);
  const y = runSync(linearCall(x, w, options.bias, outputFor(x, w, options.out)));
  if (w.outliers) runSync(linearCall(x, w.outliers, undefined, y, true));
  return y;
}
export async function packedLinearAsync(x: Tensor, w: PackedWeight, options: PackedLinearOptions & AsyncOptions = {}): Promise<Tensor> {
  checkLinearInputs(x, w);
  const y = await runAsync(linearCall(x, w, options.bias, outputFor(x, w, options.out)), options);
  if (w.outliers) await runAsync(linearCall(x, w.outliers, undefined, y, true), options);
  return y;
}

// ---------------------------------------------------------------- converters

function checkDenseWeight(param: string, w: Tensor, allowed: readonly DType[]): Tensor {
  checkTensor(param, w);
  checkMatrix(param, w);
  if (!allowed.includes(w.dtype)) invalid(param, `a ${allowed.join('/')} matrix`, `${w.dtype} tensor`);
  return w.contiguous();
}

function pack24Call(w: Tensor): Call<{ values: Tensor; meta: Tensor }> {
  const [n, k] = w.shape;
  const kept = 2 * Math.ceil(k / 4);
  const values = Tensor.zeros([n, kept], w.dtype, w.device);
  const meta = Tensor.zeros([n, Math.ceil(kept / 16)], 'i32', w.device);
  return { device: w.device, name: 'pack24', args: [...w.nativeArgs('w'), ...values.nativeArgs('values'), ...meta.nativeArgs('meta')], result: () => ({ values, meta }) };
}

/** Packs a 2:4-sparse weight [N, K] (f32/f16/bf16, values kept bit for bit); throws naming the first row that is not 2:4. */
export async function pack24(w: Tensor, options: AsyncOptions = {}): Promise<Sparse24Weight> {
  const dense = checkDenseWeight('w', w, FLOAT_STORAGE);
  const { values, meta } = await runAsync(pack24Call(dense), options);
  return { format: '2:4', outFeatures: dense.shape[0], inFeatures: dense.shape[1], values, meta };
}

function unpack24Call(values: Tensor, meta: Tensor, k: number): Call<Tensor> {
  const w = Tensor.zeros([values.shape[0], k], values.dtype, values.device);
  return { device: values.device, name: 'unpack24', args: [...values.nativeArgs('values'), ...meta.nativeArgs('meta'), ...w.nativeArgs('w')], result: () => w };
}

/** Packs integer codes i8 [N, K] that are 2:4 sparse (pruned codes 0) with symmetric scales [N, K/groupSize]. */
export async function pack24Int4(codes: Tensor, scales: Tensor, groupSize: number, options: AsyncOptions = {}): Promise<Sparse24Int4Weight> {
  const dense = checkDenseWeight('codes', codes, ['i8']);
  checkInteger('groupSize', groupSize, 4);
  if (groupSize % 4 !== 0) invalid('groupSize', 'a multiple of 4 (groups of whole 2:4 groups)', groupSize);
  const { values, meta } = await runAsync(pack24Call(dense), options);
  return { format: '2:4+int4', outFeatures: dense.shape[0], inFeatures: dense.shape[1], packed: packCodes(values, 4), meta, scales: scales.contiguous(), groupSize };
}

/** A dense weight [N, K] (f32, f16 or bf16) for packedLinear. */
export function denseWeight(w: Tensor): DenseWeight {
  const values = checkDenseWeight('w', w, FLOAT_STORAGE);
  return { format: 'dense', outFeatures: values.shape[0], inFeatures: values.shape[1], values };
}

/** Packs codes i8 [N, K] with their scales (and zero points) [N, ceil(K/groupSize)] as int4. */
export function packInt4(codes: Tensor, scales: Tensor, groupSize: number, zeros?: Tensor): Int4Weight {
  const dense = checkDenseWeight('codes', codes, ['i8']);
  checkInteger('groupSize', groupSize, 1);
  return { format: 'int4', outFeatures: dense.shape[0], inFeatures: dense.shape[1], packed: packCodes(dense, 4), scales: scales.contiguous(), zeros: zeros?.contiguous(), groupSize };
}

interface BsrParts {
  rowPtr: Tensor;
  blockCols: Tensor;
  values: Tensor;
}

async function packBsrParts(w: Tensor, blockSize: number, options: AsyncOptions): Promise<BsrParts> {
  const n = w.shape[0];
  const rowPtr = Tensor.zeros([n + 1], 'i32', w.device);
  await runAsync({ device: w.device, name: 'countBsrBlocks', args: [...w.nativeArgs('w'), blockSize, ...rowPtr.nativeArgs('rowPtr')], result: () => rowPtr }, options);
  const blocks = (rowPtr.data as Int32Array)[n];
  const blockCols = Tensor.zeros([blocks], 'i32', w.device);
  const values = Tensor.zeros([blocks, blockSize], w.dtype, w.device);
  await runAsync({ device: w.device, name: 'packBsr', args: [...w.nativeArgs('w'), blockSize, ...rowPtr.nativeArgs('rowPtr'), ...blockCols.nativeArgs('blockCols'), ...values.nativeArgs('values')], result: () => values }, options);
  return { rowPtr, blockCols, values };
}

function checkBlockSize(blockSize: number, allowOne: boolean): number {
  const sizes: readonly number[] = allowOne ? [1, ...BSR_BLOCK_SIZES] : BSR_BLOCK_SIZES;
  if (!sizes.includes(blockSize)) invalid('blockSize', sizes.join(', '), blockSize);
  return blockSize;
}

/** Packs the nonzero blocks of 1×blockSize inputs of w [N, K] (f32/f16/bf16); blockSize 1 gives CSR (outliers). */
export async function packBsr(w: Tensor, blockSize: number, options: AsyncOptions = {}): Promise<BsrWeight> {
  const dense = checkDenseWeight('w', w, FLOAT_STORAGE);
  checkBlockSize(blockSize, true);
  const parts = await packBsrParts(dense, blockSize, options);
  return { format: 'bsr', outFeatures: dense.shape[0], inFeatures: dense.shape[1], blockSize, ...parts };
}

/** Packs codes i8 [N, K] into BSR-int4 blocks; scales [N, K/blockSize] are the groups' symmetric scales (groupSize = blockSize). */
export async function packBsrInt4(codes: Tensor, scales: Tensor, blockSize: number, options: AsyncOptions = {}): Promise<BsrInt4Weight> {
  const dense = checkDenseWeight('codes', codes, ['i8']);
  checkBlockSize(blockSize, false);
  const [n, k] = dense.shape;
  const groups = Math.ceil(k / blockSize);
  if (scales.ndim !== 2 || scales.shape[0] !== n || scales.shape[1] !== groups) invalid('scales', `[${n}, ${groups}] (one per block of ${blockSize})`, formatShape(scales.shape));
  const parts = await packBsrParts(dense, blockSize, options);
  const blocks = parts.blockCols.shape[0];
  const blockScales = Tensor.zeros([blocks], scales.dtype);
  const source = scales.contiguous().data;
  forEachBlock(parts.rowPtr, parts.blockCols, (row, b, col) => (blockScales.data[b] = source[row * groups + col]));
  return { format: 'bsr-int4', outFeatures: n, inFeatures: k, blockSize, rowPtr: parts.rowPtr, blockCols: parts.blockCols, packed: packCodes(parts.values, 4), blockScales };
}

/** Calls visit(row, block, blockColumn) for every block of a BSR index, in storage order. */
function forEachBlock(rowPtr: Tensor, blockCols: Tensor, visit: (row: number, block: number, column: number) => void): void {
  const ptr = rowPtr.data as Int32Array, cols = blockCols.data as Int32Array;
  for (let row = 0; row + 1 < ptr.length; row++) for (let b = ptr[row]; b < ptr[row + 1]; b++) visit(row, b, cols[b]);
}

function unpackBsrCall(parts: BsrParts, blockSize: number, n: number, k: number): Call<Tensor> {
  const w = Tensor.zeros([n, k], parts.values.dtype, parts.values.device);
  return { device: w.device, name: 'unpackBsr', args: [...parts.rowPtr.nativeArgs('rowPtr'), ...parts.blockCols.nativeArgs('blockCols'), ...parts.values.nativeArgs('values'), blockSize, ...w.nativeArgs('w')], result: () => w };
}

/**
 * The dense weight a packed one stands for, exactly: the stored values for 2:4 and BSR (in their dtype),
 * and the decoded f32 (code − zero)·scale for the int4 formats; plus its outliers where it has any (then f32).
 */
export async function unpackWeight(w: PackedWeight, options: AsyncOptions = {}): Promise<Tensor> {
  const base = await unpackBase(w, options);
  if (!w.outliers) return base;
  // The outliers are added to the base format (their positions decode to 0 there): the sum in f32.
  const sum = base.dtype === 'f32' ? base.clone() : base.to('f32');
  const outliers = (await runAsync(unpackBsrCall(w.outliers, 1, w.outFeatures, w.inFeatures), options)).to('f32');
  const s = sum.data as Float32Array;
  const o = outliers.data as Float32Array;
  for (let i = 0; i < s.length; ++i) s[i] += o[i];
  return sum;
}

async function unpackBase(w: PackedWeight, options: AsyncOptions): Promise<Tensor> {
  const n = w.outFeatures, k = w.inFeatures;
  switch (w.format) {
    case 'dense':
      return w.values;
    case '2:4':
      return runAsync(unpack24Call(w.values, w.meta, k), options);
    case 'bsr':
      return runAsync(unpackBsrCall(w, w.blockSize, n, k), options);
    case 'int4':
      return dequantizePacked(w.packed, 4, w.scales.to('f32'), k, { zeros: w.zeros, groupSize: w.groupSize });
    case '2:4+int4': {
      const kept = unpackCodes(w.packed, 4, 2 * Math.ceil(k / 4));
      const codes = await runAsync(unpack24Call(kept, w.meta, k), options);
      return dequantizePacked(packCodes(codes, 4), 4, w.scales.to('f32'), k, { groupSize: w.groupSize });
    }
    case 'bsr-int4': {
      const values = unpackCodes(w.packed, 4, w.blockSize);
      const codes = await runAsync(unpackBsrCall({ rowPtr: w.rowPtr, blockCols: w.blockCols, values }, w.blockSize, n, k), options);
      const groups = Math.ceil(k / w.blockSize);
      const scales = Tensor.zeros([n, groups], 'f32');
      const blockScales = w.blockScales.to('f32').data as Float32Array;
      forEachBlock(w.rowPtr, w.blockCols, (row, b, col) => ((scales.data as Float32Array)[row * groups + col] = blockScales[b]));
      return dequantizePacked(packCodes(codes, 4), 4, scales, k, { groupSize: w.blockSize });
    }
  }
}

/** A packed weight with every tensor moved to `device` (packing runs on the CPU; the linears run anywhere). */
export function packedWeightTo<W extends PackedWeight>(w: W, device: Device): W {
  const moved = Object.fromEntries(Object.entries(w).map(([key, v]) => [key, v instanceof Tensor ? v.toDevice(device) : v])) as W;
  if (w.outliers) moved.outliers = packedWeightTo(w.outliers, device);
  return moved;
}

/** The bytes a packed weight occupies (what a batch-1 linear reads). */
export function packedBytes(w: PackedWeight): number {
  const tensors: Tensor[] = [];
  switch (w.format) {
    case 'dense': tensors.push(w.values); break;
    case 'int4': tensors.push(w.packed, w.scales, ...(w.zeros ? [w.zeros] : [])); break;
    case '2:4': tensors.push(w.values, w.meta); break;
    case '2:4+int4': tensors.push(w.packed, w.meta, w.scales); break;
    case 'bsr': tensors.push(w.rowPtr, w.blockCols, w.values); break;
    case 'bsr-int4': tensors.push(w.rowPtr, w.blockCols, w.packed, w.blockScales); break;
  }
  let bytes = tensors.reduce((sum, t) => sum + t.byteLength, 0);
  if (w.outliers) bytes += packedBytes(w.outliers);
  return bytes;
}

