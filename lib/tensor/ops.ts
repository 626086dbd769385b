// The public ops. Each has a synchronous form for small inputs and an `...Async` form that runs on a
// worker thread, returns a Promise and accepts an AbortSignal. Tensors of one call must share a device;
// the op runs on that device's backend. Outputs are fresh tensors unless `out` is given.
import { checkMatrix, checkTensor, commonDevice, runAsync, runSync, type AsyncOptions, type Call } from './call.js';
import { InvalidArgumentError } from '../errors.js';
import { dtypeCode } from './dtype.js';
import type { Device } from './native.js';
import { formatShape, Tensor } from './tensor.js';
import { checkBoolean, checkInteger, checkNumber, checkOneOf, invalid } from '../validate.js';

// ---- gemm ----------------------------------------------------------------------------------------------

export interface GemmOptions {
  transA?: boolean;
  transB?: boolean;
  alpha?: number;
  beta?: number;
  /** Accumulate into this matrix (c = alpha·op(a)·op(b) + beta·out); otherwise a new one (beta ignored). */
  out?: Tensor;
}

// A transposed view of a contiguous matrix is passed as the matrix with the transpose flag flipped.
function asBlasOperand(t: Tensor, transposed: boolean): [Tensor, boolean] {
  if (t.ndim === 2 && !t.isContiguous && t.strides[0] === 1 && t.strides[1] === t.shape[0]) {
    return [t.transpose(), !transposed];
  }
  return [t, transposed];
}

function gemmCall(a: Tensor, b: Tensor, options: GemmOptions): Call<Tensor> {
  checkTensor('a', a);
  checkTensor('b', b);
  checkMatrix('a', a);
  checkMatrix('b', b);
  const transA = checkBoolean('transA', options.transA ?? false);
  const transB = checkBoolean('transB', options.transB ?? false);
  const alpha = checkNumber('alpha', options.alpha ?? 1);
  const m = transA ? a.shape[1] : a.shape[0];
  const n = transB ? b.shape[0] : b.shape[1];
  const out = options.out === undefined ? undefined : checkTensor('out', options.out);
  const beta = out === undefined ? 0 : checkNumber('beta', options.beta ?? 0);
  const device = commonDevice(out ? { a, b, out } : { a, b });
  const c = out ?? Tensor.zeros([m, n], a.dtype, device);
  const [aa, ta] = asBlasOperand(a, transA);
  const [bb, tb] = asBlasOperand(b, transB);
  return {
    device,
    name: 'gemm',
    args: [...aa.nativeArgs('a'), ta, ...bb.nativeArgs('b'), tb, ...c.nativeArgs('c'), alpha, beta],
    result: () => c,
  };
}

/** c = alpha·op(a)·op(b) (+ beta·out). f32 or f64, through OpenBLAS / cuBLAS. */
export function gemm(a: Tensor, b: Tensor, options: GemmOptions = {}): Tensor {
  return runSync(gemmCall(a, b, options));
}
export function gemmAsync(a: Tensor, b: Tensor, options: GemmOptions & AsyncOptions = {}): Promise<Tensor> {
  return runAsync(gemmCall(a, b, options), options);
}

// ---- syrk and the streamed Hessian -------------------------------------------------------------------

export interface SyrkOptions {
  alpha?: number;
  beta?: number;
  out?: Tensor;
  /** 'full' (default) fills both triangles; 'lower' writes the lower one and leaves the upper as it was. */
  triangle?: 'full' | 'lower';
}

function syrkCall(x: Tensor, options: SyrkOptions): Call<Tensor> {
  checkTensor('x', x);
  checkMatrix('x', x);
  const alpha = checkNumber('alpha', options.alpha ?? 1);
  const out = options.out === undefined ? undefined : checkTensor('out', options.out);
  const beta = out === undefined ? 0 : checkNumber('beta', options.beta ?? 0);
  const device = commonDevice(out ? { x, out } : { x });
  const c = out ?? Tensor.zeros([x.shape[1], x.shape[1]], x.dtype, device);
  const fillUpper = checkOneOf('triangle', options.triangle ?? 'full', ['full', 'lower'] as const) === 'full';
  return { device, name: 'syrk', args: [...x.nativeArgs('x'), ...c.nativeArgs('c'), alpha, beta, fillUpper], result: () => c };
}

/** c = alpha·xᵀx (+ beta·out) for x [rows, n]; both triangles of the n×n result are filled. */
export function syrk(x: Tensor, options: SyrkOptions = {}): Tensor {
  return runSync(syrkCall(x, options));
}
export function syrkAsync(x: Tensor, options: SyrkOptions & AsyncOptions = {}): Promise<Tensor> {
  return runAsync(syrkCall(x, options), options);
}

/**
 * H = (2/T)·Σ xᵀx over all calibration rows (tokens) seen so far, kept as a running mean so that batches
 * of any size weigh by their row count: after a batch of b rows, H ← (T/(T+b))·H + (2/(T+b))·XᵀX.
 * Batches update the lower triangle only; the upper one is filled once, when `hessian` is read.
 */
export class HessianAccumulator {
  private readonly matrix: Tensor;
  private rows = 0;
  private upperStale = false;
  private pending: Promise<void> = Promise.resolve();

  constructor(features: number, options: { dtype?: 'f32' | 'f64'; device?: Device } = {}) {
    checkInteger('features', features, 1);
    this.matrix = Tensor.zeros([features, features], options.dtype ?? 'f32', options.device ?? 'cpu');
  }

  /** Calibration rows accumulated so far. */
  get count(): number {
    return this.rows;
  }

  /** The symmetric n×n Hessian (shares memory with the accumulator). */
  get hessian(): Tensor {
    if (this.upperStale) {
      // Zero rows: c = 1·c on the lower triangle, then mirrored.
      const empty = Tensor.zeros([0, this.matrix.shape[0]], this.matrix.dtype, this.matrix.device);
      runSync(syrkCall(empty, { alpha: 0, beta: 1, out: this.matrix }));
      this.upperStale = false;
    }
    return this.matrix;
  }

  private updateCall(x: Tensor): Call<void> | undefined {
    checkTensor('x', x);
    const features = this.matrix.shape[0];
    const batch = x.ndim === 2 ? x : x.reshape([-1, features]);
    if (batch.shape[1] !== features) {
      invalid('x', `rows of ${features} features`, `shape ${formatShape(x.shape)}`);
    }
    const b = batch.shape[0];
    if (b === 0) return undefined;
    const total = this.rows + b;
    const call = syrkCall(batch, { alpha: 2 / total, beta: this.rows / total, out: this.matrix, triangle: 'lower' });
    return {
      ...call,
      result: () => {
        this.rows = total;
        this.upperStale = true;
      },
    };
  }

  /** The Hessian, its upper triangle filled on a worker thread (the getter does it on the caller's). */
  async hessianAsync(options: AsyncOptions = {}): Promise<Tensor> {
    await this.pending;
    if (this.upperStale) {
      const empty = Tensor.zeros([0, this.matrix.shape[0]], this.matrix.dtype, this.matrix.device);
      await runAsync(syrkCall(empty, { alpha: 0, beta: 1, out: this.matrix }), options);
      this.upperStale = false;
    }
    return this.matrix;
  }

  /** Adds a batch of rows x [T, features] (or [..., features]). */
  add(x: Tensor): void {
    const call = this.updateCall(x);
    if (call) runSync(call);
  }
  /**
   * Adds a batch on a worker thread. Batches added this way are applied in call order, each weighted
   * by the row count at the time it runs; await them before reading `hessian` or calling add().
   */
  addAsync(x: Tensor, options: AsyncOptions = {}): Promise<void> {
    checkTensor('x', x);
    const run = this.pending.then(async () => {
      const call = this.updateCall(x);
      if (call) await runAsync(call, options);
    });
    this.pending = run.catch(() => undefined);
    return run;
  }
}

// ---- Cholesky ------------------------------------------------------------------------------------------

export interface CholeskyOptions {
  /** Return U with A = UᵀU instead of L with A = LLᵀ. */
  upper?: boolean;
  /** First damping, relative to mean(|diag A|): the factorized matrix is A + damp·mean(|diag A|)·I. */
  damp?: number;
  /** Rungs of the damping ladder: damp, then ×10 each (from 1e-6 if damp is 0). Default 6. */
  maxAttempts?: number;
  out?: Tensor;
}

export interface Damping {
  /** λ / mean(|diag A|) that made the matrix positive definite. */
  relative: number;
  /** λ added to the diagonal. */
  absolute: number;
  /** Factorizations tried, the successful one included. */
  attempts: number;
}

interface NativeCholeskyReport {
  relativeDamping: number;
  absoluteDamping: number;
  attempts: number;
}

function choleskyCall<T>(a: Tensor, options: CholeskyOptions, inverse: boolean, wrap: (t: Tensor, d: Damping) => T): Call<T> {
  checkTensor('a', a);
  checkMatrix('a', a);
  const upper = checkBoolean('upper', options.upper ?? false);
  const damp = checkNumber('damp', options.damp ?? 0, { min: 0 });
  const maxAttempts = checkInteger('maxAttempts', options.maxAttempts ?? 6, 1, 32);
  const out = options.out === undefined ? undefined : checkTensor('out', options.out);
  const device = commonDevice(out ? { a, out } : { a });
  const result = out ?? Tensor.zeros(a.shape, a.dtype, device);
  return {
    device,
    name: 'cholesky',
    args: [...a.contiguous().nativeArgs('a'), ...result.nativeArgs('out'), upper, inverse, damp, maxAttempts],
    result: (r) => {
      const report = r as NativeCholeskyReport;
      return wrap(result, { relative: report.relativeDamping, absolute: report.absoluteDamping, attempts: report.attempts });
    },
  };
}

export interface CholeskyResult {
  factor: Tensor;
  damping: Damping;
}
export interface InverseResult {
  inverse: Tensor;
  damping: Damping;
}

/**
 * The Cholesky factor of A + λI, λ climbing a damping ladder while the matrix is not positive definite.
 * Throws NotPositiveDefiniteError past the top rung; the damping used is reported.
 */
export function cholesky(a: Tensor, options: CholeskyOptions = {}): CholeskyResult {
  return runSync(choleskyCall(a, options, false, (factor, damping) => ({ factor, damping })));
}
export function choleskyAsync(a: Tensor, options: CholeskyOptions & AsyncOptions = {}): Promise<CholeskyResult> {
  return runAsync(choleskyCall(a, options, false, (factor, damping) => ({ factor, damping })), options);
}

/** (A + λI)⁻¹ through its Cholesky factor, with the same damping ladder; the result is symmetric. */
export function choleskyInverse(a: Tensor, options: Omit<CholeskyOptions, 'upper'> = {}): InverseResult {
  return runSync(choleskyCall(a, options, true, (inverse, damping) => ({ inverse, damping })));
}
export function choleskyInverseAsync(a: Tensor, options: Omit<CholeskyOptions, 'upper'> & AsyncOptions = {}): Promise<InverseResult> {
  return runAsync(choleskyCall(a, options, true, (inverse, damping) => ({ inverse, damping })), options);
}

// ---- triangular solve ----------------------------------------------------------------------------------

export interface TriangularSolveOptions {
  /** t is lower triangular (default) or upper. */
  lower?: boolean;
  /** Solve with tᵀ. */
  transpose?: boolean;
  /** Solve t·x = alpha·b (default) or x·t = alpha·b. */
  left?: boolean;
  unitDiagonal?: boolean;
  alpha?: number;
  /** Overwrite b with the solution instead of returning a new tensor. */
  inPlace?: boolean;
}

function trsmCall(t: Tensor, b: Tensor, options: TriangularSolveOptions): Call<Tensor> {
  checkTensor('t', t);
  checkTensor('b', b);
  checkMatrix('t', t);
  checkMatrix('b', b);
  const device = commonDevice({ t, b });
  const x = options.inPlace ? b : b.clone();
  return {
    device,
    name: 'trsm',
    args: [
      ...t.contiguous().nativeArgs('t'),
      ...x.nativeArgs('b'),
      checkBoolean('lower', options.lower ?? true),
      checkBoolean('transpose', options.transpose ?? false),
      checkBoolean('left', options.left ?? true),
      checkBoolean('unitDiagonal', options.unitDiagonal ?? false),
      checkNumber('alpha', options.alpha ?? 1),
    ],
    result: () => x,
  };
}

/** Solves op(t)·x = alpha·b (or x·op(t) = alpha·b) for triangular t. */
export function triangularSolve(t: Tensor, b: Tensor, options: TriangularSolveOptions = {}): Tensor {
  return runSync(trsmCall(t, b, options));
}
export function triangularSolveAsync(t: Tensor, b: Tensor, options: TriangularSolveOptions & AsyncOptions = {}): Promise<Tensor> {
  return runAsync(trsmCall(t, b, options), options);
}

// ---- masks ---------------------------------------------------------------------------------------------

function maskScores(scores: Tensor): Tensor {
  checkTensor('scores', scores);
  if (scores.dtype !== 'f32') invalid('scores', 'an f32 tensor', `${scores.dtype} tensor`);
  if (scores.ndim === 0) invalid('scores', 'a tensor of at least 1 dimension', 'a scalar');
  return scores.contiguous().reshape([-1, scores.shape[scores.ndim - 1]]);
}

/** Options of the mask ops: `out` reuses a u8 tensor of the scores' shape (every element is written). */
interface MaskOptions {
  largest?: boolean;
  out?: Tensor;
}

function maskOut(scores: Tensor, out: Tensor | undefined): Tensor {
  if (!out) return Tensor.zeros(scores.shape, 'u8', scores.device);
  checkTensor('out', out);
  if (out.dtype !== 'u8' || !out.isContiguous || out.device !== scores.device || out.shape.length !== scores.shape.length || out.shape.some((d, i) => d !== scores.shape[i])) {
    invalid('out', `a contiguous u8 tensor of shape [${scores.shape.join(', ')}] on ${scores.device}`, `${out.dtype} [${out.shape.join(', ')}] on ${out.device}`);
  }
  return out;
}

function topkCall(scores: Tensor, k: number, options: MaskOptions): Call<Tensor> {
  const matrix = maskScores(scores);
  checkInteger('k', k, 0, matrix.shape[1]);
  const mask = maskOut(scores, options.out);
  return {
    device: scores.device,
    name: 'topkMask',
    args: [...matrix.nativeArgs('scores'), k, checkBoolean('largest', options.largest ?? true), ...mask.reshape(matrix.shape).nativeArgs('mask')],
    result: () => mask,
  };
}

/** u8 mask selecting the k largest (or smallest) scores of each row (last dimension); ties to the lower index. */
export function topkMask(scores: Tensor, k: number, options: MaskOptions = {}): Tensor {
  return runSync(topkCall(scores, k, options));
}
export function topkMaskAsync(scores: Tensor, k: number, options: MaskOptions & AsyncOptions = {}): Promise<Tensor> {
  return runAsync(topkCall(scores, k, options), options);
}

function nmCall(scores: Tensor, n: number, m: number, options: MaskOptions): Call<Tensor> {
  const matrix = maskScores(scores);
  checkInteger('m', m, 1, 32);
  checkInteger('n', n, 0, m - 1);
  if (matrix.shape[1] % m !== 0) {
    throw new InvalidArgumentError(`nmMask: the row length ${matrix.shape[1]} is not a multiple of m = ${m}`);
  }
  const mask = maskOut(scores, options.out);
  return {
    device: scores.device,
    name: 'nmMask',
    args: [...matrix.nativeArgs('scores'), n, m, checkBoolean('largest', options.largest ?? true), ...mask.reshape(matrix.shape).nativeArgs('mask')],
    result: () => mask,
  };
}

/** u8 mask selecting the n largest (or smallest) of every m consecutive scores in a row (N:M sparsity keeps n of m). */
export function nmMask(scores: Tensor, n: number, m: number, options: MaskOptions = {}): Tensor {
  return runSync(nmCall(scores, n, m, options));
}
export function nmMaskAsync(scores: Tensor, n: number, m: number, options: MaskOptions & AsyncOptions = {}): Promise<Tensor> {
  return runAsync(nmCall(scores, n, m, options), options);
}

function thresholdCall(scores: Tensor, threshold: number): Call<Tensor> {
  const matrix = maskScores(scores);
  const mask = Tensor.zeros(scores.shape, 'u8', scores.device);
  return {
    device: scores.device,
    name: 'thresholdMask',
    args: [...matrix.nativeArgs('scores'), checkNumber('threshold', threshold, { finite: false }), ...mask.reshape(matrix.shape).nativeArgs('mask')],
    result: () => mask,
  };
}

/** u8 mask: 1 where score > threshold. */
export function thresholdMask(scores: Tensor, threshold: number): Tensor {
  return runSync(thresholdCall(scores, threshold));
}
export function thresholdMaskAsync(scores: Tensor, threshold: number, options: AsyncOptions = {}): Promise<Tensor> {
  return runAsync(thresholdCall(scores, threshold), options);
}

function applyMaskCall(x: Tensor, mask: Tensor, options: { inPlace?: boolean }): Call<Tensor> {
  checkTensor('x', x);
  checkTensor('mask', mask);
  if (mask.dtype !== 'u8') invalid('mask', 'a u8 tensor', `${mask.dtype} tensor`);
  const device = commonDevice({ x, mask });
  const out = options.inPlace ? x : Tensor.zeros(x.shape, x.dtype, device);
  return {
    device,
    name: 'applyMask',
    args: [...x.contiguous().nativeArgs('x'), ...mask.contiguous().nativeArgs('mask'), ...out.nativeArgs('out')],
    result: () => out,
  };
}

/** x where mask is 1, zero elsewhere (any float dtype). */
export function applyMask(x: Tensor, mask: Tensor, options: { inPlace?: boolean } = {}): Tensor {
  return runSync(applyMaskCall(x, mask, options));
}
export function applyMaskAsync(x: Tensor, mask: Tensor, options: { inPlace?: boolean } & AsyncOptions = {}): Promise<Tensor> {
  return runAsync(applyMaskCall(x, mask, options), options);
}

// ---- elementwise ---------------------------------------------------------------------------------------

function axpyCall(alpha: number, x: Tensor, y: Tensor): Call<Tensor> {
  checkTensor('x', x);
  checkTensor('y', y);
  const device = commonDevice({ x, y });
  return {
    device,
    name: 'axpy',
    args: [checkNumber('alpha', alpha), ...x.contiguous().nativeArgs('x'), ...y.nativeArgs('y')],
    result: () => y,
  };
}

/** y += alpha·x, in place; returns y. */
export function axpy(alpha: number, x: Tensor, y: Tensor): Tensor {
  return runSync(axpyCall(alpha, x, y));
}
export function axpyAsync(alpha: number, x: Tensor, y: Tensor, options: AsyncOptions = {}): Promise<Tensor> {
  return runAsync(axpyCall(alpha, x, y), options);
}

function scaleColumnsCall(x: Tensor, scale: Tensor, options: { inPlace?: boolean }): Call<Tensor> {
  checkTensor('x', x);
  checkTensor('scale', scale);
  checkMatrix('x', x);
  if (x.dtype !== 'f32' || scale.dtype !== 'f32') invalid('x', 'f32 x and scale', `${x.dtype} and ${scale.dtype}`);
  if (scale.numel !== x.shape[1]) invalid('scale', `${x.shape[1]} entries (one per column of x)`, `shape ${formatShape(scale.shape)}`);
  const device = commonDevice({ x, scale });
  if (options.inPlace) x.requireContiguous('x');
  const out = options.inPlace ? x : Tensor.zeros(x.shape, 'f32', device);
  return {
    device,
    name: 'scaleColumns',
    args: [...x.contiguous().nativeArgs('x'), ...scale.contiguous().nativeArgs('scale'), ...out.nativeArgs('out')],
    result: () => out,
  };
}

/** out[r, c] = x[r, c]·scale[c] for a matrix x and one factor per column. */
export function scaleColumns(x: Tensor, scale: Tensor, options: { inPlace?: boolean } = {}): Tensor {
  return runSync(scaleColumnsCall(x, scale, options));
}
export function scaleColumnsAsync(x: Tensor, scale: Tensor, options: { inPlace?: boolean } & AsyncOptions = {}): Promise<Tensor> {
  return runAsync(scaleColumnsCall(x, scale, options), options);
}

function dotCall(a: Tensor, b: Tensor): Call<number> {
  checkTensor('a', a);
  checkTensor('b', b);
  if (a.dtype !== 'f32' && a.dtype !== 'f64') invalid('a', 'an f32 or f64 tensor', `${a.dtype} tensor`);
  if (b.dtype !== a.dtype) invalid('b', `an ${a.dtype} tensor like a`, `${b.dtype} tensor`);
  if (a.numel !== b.numel) throw new InvalidArgumentError(`dot: a has ${a.numel} elements and b ${b.numel}`);
  const device = commonDevice({ a, b });
  return {
    device,
    name: 'dot',
    args: [...a.contiguous().nativeArgs('a'), ...b.contiguous().nativeArgs('b')],
    result: (value) => value as number,
  };
}

/** Σ a·b over all elements, accumulated in f64 (NaN or ±inf if any input holds one). */
export function dot(a: Tensor, b: Tensor): number {
  return runSync(dotCall(a, b));
}
export function dotAsync(a: Tensor, b: Tensor, options: AsyncOptions = {}): Promise<number> {
  return runAsync(dotCall(a, b), options);
}

const UNARY_CODES = { copy: 0, abs: 1, square: 2, scale: 3, clamp: 4, relu: 5, silu: 6, gelu: 7, geluTanh: 8 } as const;
type UnaryName = keyof typeof UNARY_CODES;

interface UnaryOptions {
  inPlace?: boolean;
}

function unaryCall(op: UnaryName, x: Tensor, a: number, b: number, options: UnaryOptions): Call<Tensor> {
  checkTensor('x', x);
  const out = options.inPlace ? x : Tensor.zeros(x.shape, x.dtype, x.device);
  return {
    device: x.device,
    name: 'unary',
    args: [UNARY_CODES[op], ...x.contiguous().nativeArgs('x'), ...out.nativeArgs('out'), a, b],
    result: () => out,
  };
}

/**
 * The transpose of a 2-D tensor as a new contiguous one, built in 64×64 tiles on the JavaScript thread,
 * yielding to the event loop every few million elements (transpose().contiguous() does it in one go).
 */
export async function transposeAsync(x: Tensor, options: AsyncOptions = {}): Promise<Tensor> {
  checkTensor('x', x);
  checkMatrix('x', x);
  const [rows, cols] = x.shape;
  const source = x.contiguous();
  const out = Tensor.zeros([cols, rows], x.dtype, x.device);
  const src = source.data as Float32Array;
  const dst = out.data as Float32Array;
  const tile = 64;
  let sinceYield = 0;
  for (let r0 = 0; r0 < rows; r0 += tile) {
    const r1 = Math.min(rows, r0 + tile);
    for (let c0 = 0; c0 < cols; c0 += tile) {
      const c1 = Math.min(cols, c0 + tile);
      for (let r = r0; r < r1; ++r) for (let c = c0; c < c1; ++c) dst[c * rows + r] = src[r * cols + c];
    }
    sinceYield += (r1 - r0) * cols;
    if (sinceYield >= 1 << 22) {
      sinceYield = 0;
      options.signal?.throwIfAborted();
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }
  return out;
}

/** Copies x into a new tensor (or onto itself); the benchmarks use it as the memory-bandwidth probe. */
export function copy(x: Tensor): Tensor {
  return runSync(unaryCall('copy', x, 0, 0, {}));
}
export function abs(x: Tensor, options: UnaryOptions = {}): Tensor {
  return runSync(unaryCall('abs', x, 0, 0, options));
}
export function square(x: Tensor, options: UnaryOptions = {}): Tensor {
  return runSync(unaryCall('square', x, 0, 0, options));
}
export function scale(x: Tensor, factor: number, options: UnaryOptions = {}): Tensor {
  return runSync(unaryCall('scale', x, checkNumber('factor', factor), 0, options));
}
export function clamp(x: Tensor, min: number, max: number, options: UnaryOptions = {}): Tensor {
  checkNumber('min', min, { finite: false });
  checkNumber('max', max, { finite: false });
  if (min > max) throw new InvalidArgumentError(`clamp: min must not exceed max, received min ${min} > max ${max}`);
  return runSync(unaryCall('clamp', x, min, max, options));
}
export function relu(x: Tensor, options: UnaryOptions = {}): Tensor {
  return runSync(unaryCall('relu', x, 0, 0, options));
}
/** x·sigmoid(x). */
export function silu(x: Tensor, options: UnaryOptions = {}): Tensor {
  return runSync(unaryCall('silu', x, 0, 0, options));
}
/** Exact GELU, x·Φ(x). */
export function gelu(x: Tensor, options: UnaryOptions = {}): Tensor {
  return runSync(unaryCall('gelu', x, 0, 0, options));
}
/** GELU's tanh approximation (Hugging Face's gelu_new / gelu_pytorch_tanh). */
export function geluTanh(x: Tensor, options: UnaryOptions = {}): Tensor {
  return runSync(unaryCall('geluTanh', x, 0, 0, options));
}
export function unaryAsync(op: UnaryName, x: Tensor, options: UnaryOptions & AsyncOptions & { a?: number; b?: number } = {}): Promise<Tensor> {
  return runAsync(unaryCall(op, x, options.a ?? 0, options.b ?? 0, options), options);
}

// ---- the optimal-brain-surgeon column sweep (SparseGPT, GPTQ) ------------------------------------------

/** The sweep's pruning target: a fraction of the whole matrix, or n kept of every m consecutive inputs of a row. */
export type PruneTarget = { kind: 'unstructured'; sparsity: number } | { kind: 'nm'; n: number; m: number };

/** A quantization grid as the kernels take it (see native/core/quant.h). */
export interface QuantGrid {
  bits: number;
  /** Input columns per group (the row length: one scale per output channel). */
  groupSize: number;
  symmetric: boolean;
  /** The dtype scales are stored in; they are rounded to it before use. */
  scaleDType: 'f32' | 'f16' | 'bf16';
}

export interface ColumnSweepOptions {
  /** What to prune (absent: nothing). */
  pattern?: PruneTarget;
  /** Columns per lazy-update block (default 128; rounded down to a multiple of m for N:M). */
  blockSize?: number;
  /** Round every kept weight to this grid, as GPTQ does. */
  quantization?: {
    grid: QuantGrid;
    /**
     * Scales f32 [rows, groups] and zero points i8 [rows, groups] (asymmetric grids): fixed before the
     * sweep when given; otherwise fitted per group when the sweep reaches it (contiguous groups only).
     */
    scales?: Tensor;
    zeros?: Tensor;
    /** i32 [cols]: the group of each swept column (a sweep in activation order); default contiguous groups. */
    groupOf?: Tensor;
  };
  /**
   * u8 [rows, cols]: 1 = keep the weight exactly as the sweep reaches it (outliers stored apart, as GWQ
   * does): no error moves on from it, its code is the zero point (decodes to 0), and grids fitted during
   * the sweep leave it out. Not combined with a pattern.
   */
  keep?: Tensor;
}

export interface ColumnSweepResult {
  weight: Tensor;
  /** i8 [rows, cols] codes of every column (quantizing sweeps only), with their scales and zero points. */
  codes?: Tensor;
  scales?: Tensor;
  zeros?: Tensor;
}

const EMPTY_I8 = () => Tensor.zeros([0], 'i8');
const EMPTY_I32 = () => Tensor.zeros([0], 'i32');

/** The native grid arguments: bits, groupSize, symmetric, scale dtype code. */
export function gridArgs(grid: QuantGrid): unknown[] {
  checkInteger('bits', grid.bits, 1, 8);
  checkInteger('groupSize', grid.groupSize, 1);
  checkOneOf('scaleDType', grid.scaleDType, ['f32', 'f16', 'bf16']);
  return [grid.bits, grid.groupSize, checkBoolean('symmetric', grid.symmetric), dtypeCode(grid.scaleDType)];
}

function columnSweepCall(w: Tensor, hinvUpper: Tensor, options: ColumnSweepOptions): Call<ColumnSweepResult> {
  checkTensor('w', w);
  checkTensor('hinvUpper', hinvUpper);
  checkMatrix('w', w);
  checkMatrix('hinvUpper', hinvUpper);
  if (w.dtype !== 'f32' || hinvUpper.dtype !== 'f32') invalid('w', 'f32 w and hinvUpper', `${w.dtype} and ${hinvUpper.dtype}`);
  w.requireContiguous('w');
  const device = commonDevice({ w, hinvUpper });
  const p = options.pattern;
  const sparsity = p?.kind === 'unstructured' ? checkNumber('sparsity', p.sparsity, { min: 0 }) : 0;
  if (sparsity > 1) invalid('sparsity', 'a fraction in [0, 1]', sparsity);
  const m = p?.kind === 'nm' ? checkInteger('m', p.m, 1, 32) : 0;
  const n = p?.kind === 'nm' ? checkInteger('n', p.n, 0, m - 1) : 0;
  if (m > 0 && w.shape[1] % m !== 0) {
    throw new InvalidArgumentError(`columnSweep: ${n}:${m} needs the input size (${w.shape[1]}) to be a multiple of ${m}`);
  }
  const blockSize = checkInteger('blockSize', options.blockSize ?? 128, 1, 1 << 20);
  const [rows, cols] = w.shape;
  const q = options.quantization;
  let gridArguments: unknown[] = [0, 1, true, dtypeCode('f32')];
  let fit = false;
  let groupOf = EMPTY_I32();
  let scales = Tensor.zeros([0, 0]);
  let zeros = EMPTY_I8();
  let codes = EMPTY_I8();
  const keep = options.keep ? options.keep.contiguous() : Tensor.zeros([0], 'u8');
  if (options.keep) {
    if (keep.dtype !== 'u8' || keep.shape.length !== 2 || keep.shape[0] !== rows || keep.shape[1] !== cols) invalid('keep', `u8 [${rows}, ${cols}]`, `${keep.dtype} [${keep.shape.join(', ')}]`);
    if (p) throw new InvalidArgumentError('columnSweep: weights kept exactly (keep) cannot be combined with pruning');
  }
  if (q) {
    gridArguments = gridArgs(q.grid);
    groupOf = q.groupOf ? q.groupOf.contiguous() : EMPTY_I32();
    const groups = q.groupOf ? Math.max(-1, ...(q.groupOf.data as Int32Array)) + 1 : Math.ceil(cols / q.grid.groupSize);
    fit = q.scales === undefined;
    scales = q.scales ?? Tensor.zeros([rows, groups]);
    zeros = q.zeros ?? (q.grid.symmetric ? EMPTY_I8() : Tensor.zeros([rows, groups], 'i8'));
    codes = Tensor.zeros([rows, cols], 'i8');
  }
  return {
    device,
    name: 'columnSweep',
    args: [
      ...w.nativeArgs('w'),
      ...hinvUpper.contiguous().nativeArgs('hinvUpper'),
      sparsity,
      n,
      m,
      blockSize,
      ...gridArguments,
      fit,
      ...groupOf.nativeArgs('groupOf'),
      ...scales.nativeArgs('scales'),
      ...zeros.nativeArgs('zeros'),
      ...codes.nativeArgs('codes'),
      ...keep.nativeArgs('keep'),
    ],
    result: () => (q ? { weight: w, codes, scales, zeros: q.grid.symmetric ? undefined : zeros } : { weight: w }),
  };
}

/**
 * The optimal-brain-surgeon column sweep, in place on w [rows, cols], given U, the upper Cholesky factor
 * of the damped inverse Hessian (H⁻¹ = UᵀU): each column is pruned to the pattern and/or rounded to the
 * grid, and its error moved onto the columns not yet visited. Pruning alone is SparseGPT; rounding alone
 * is GPTQ; both at once is SparseGPT's joint pruning and quantization. Unstructured masks are chosen per
 * block over all rows (exact total count); N:M per row and group.
 */
export function columnSweep(w: Tensor, hinvUpper: Tensor, options: ColumnSweepOptions): ColumnSweepResult {
  return runSync(columnSweepCall(w, hinvUpper, options));
}
export function columnSweepAsync(w: Tensor, hinvUpper: Tensor, options: ColumnSweepOptions & AsyncOptions): Promise<ColumnSweepResult> {
  return runAsync(columnSweepCall(w, hinvUpper, options), options);
}

export interface SparsegptSweepOptions {
  pattern: PruneTarget;
  /** Columns per lazy-update block (default 128; rounded down to a multiple of m for N:M). */
  blockSize?: number;
}

/** SparseGPT's sweep: columnSweep with pruning only. Returns w. */
export function sparsegptSweep(w: Tensor, hinvUpper: Tensor, options: SparsegptSweepOptions): Tensor {
  return columnSweep(w, hinvUpper, options).weight;
}
export async function sparsegptSweepAsync(w: Tensor, hinvUpper: Tensor, options: SparsegptSweepOptions & AsyncOptions): Promise<Tensor> {
  return (await columnSweepAsync(w, hinvUpper, options)).weight;
}

// ---- ALPS building blocks ------------------------------------------------------------------------------

function eighCall(a: Tensor): Call<{ values: Tensor; vectors: Tensor }> {
  checkTensor('a', a);
  checkMatrix('a', a);
  if (a.dtype !== 'f64') invalid('a', 'an f64 matrix', `${a.dtype} tensor`);
  if (a.shape[0] !== a.shape[1]) invalid('a', 'a square matrix', `shape ${formatShape(a.shape)}`);
  const values = Tensor.zeros([a.shape[0]], 'f64', a.device);
  const vectors = Tensor.zeros(a.shape, 'f64', a.device);
  return { device: a.device, name: 'eigh', args: [...a.contiguous().nativeArgs('a'), ...values.nativeArgs('values'), ...vectors.nativeArgs('vectors')], result: () => ({ values, vectors }) };
}

/**
 * Eigendecomposition of a symmetric f64 matrix (LAPACK dsyevd; the lower triangle is read): eigenvalues
 * ascending, and `vectors` whose row i is the unit eigenvector of values[i], so A = vectorsᵀ·diag(values)·vectors.
 */
export function eigh(a: Tensor): { values: Tensor; vectors: Tensor } {
  return runSync(eighCall(a));
}
export function eighAsync(a: Tensor, options: AsyncOptions = {}): Promise<{ values: Tensor; vectors: Tensor }> {
  return runAsync(eighCall(a), options);
}

export interface MaskedCgOptions {
  /** Iterations at most (default 10). */
  maxIterations?: number;
  /** Stop once every row's masked residual is below rtol·‖g_r on its support‖ (default 1e-4). */
  rtol?: number;
}

function maskedCgCall(h: Tensor, g: Tensor, mask: Tensor, x: Tensor, options: MaskedCgOptions): Call<{ iterations: number; converged: boolean }> {
  for (const [name, t] of [['h', h], ['g', g], ['mask', mask], ['x', x]] as const) checkTensor(name, t);
  checkMatrix('x', x);
  checkMatrix('h', h);
  x.requireContiguous('x');
  const device = commonDevice({ h, g, mask, x });
  return {
    device,
    name: 'maskedCg',
    args: [
      ...h.contiguous().nativeArgs('h'),
      ...g.contiguous().nativeArgs('g'),
      ...mask.contiguous().nativeArgs('mask'),
      ...x.nativeArgs('x'),
      checkInteger('maxIterations', options.maxIterations ?? 10, 0, 1 << 20),
      checkNumber('rtol', options.rtol ?? 1e-4, { min: 0 }),
    ],
    result: (r) => r as { iterations: number; converged: boolean },
  };
}

/**
 * For every row r of x [m, n] (in place): solve h_SS·x_S = g_S on its support S = {j : mask[r, j] = 1} by
 * Jacobi-preconditioned conjugate gradient from the current x (h [n, n] symmetric positive definite,
 * g [m, n] f32, mask u8). Entries off the support are set to zero.
 */
export function maskedCg(h: Tensor, g: Tensor, mask: Tensor, x: Tensor, options: MaskedCgOptions = {}): { iterations: number; converged: boolean } {
  return runSync(maskedCgCall(h, g, mask, x, options));
}
export function maskedCgAsync(h: Tensor, g: Tensor, mask: Tensor, x: Tensor, options: MaskedCgOptions & AsyncOptions = {}): Promise<{ iterations: number; converged: boolean }> {
  return runAsync(maskedCgCall(h, g, mask, x, options), options);
}

// ---- ALPS ----------------------------------------------------------------------------------------------

export interface AlpsAdmmState {
  /** The scaled dual V [rows, cols] f32, updated in place. */
  v: Tensor;
  /** The projected iterate Z [rows, cols] f32, updated in place. */
  z: Tensor;
  /** Receives B [rows, cols] f32. */
  b: Tensor;
  /** Scratch [rows, cols] f32. */
  work: Tensor;
  /** Receives the support of Z, u8 [rows, cols]. */
  support: Tensor;
  /** The support to count changes against, u8 [rows, cols]. */
  previous: Tensor;
}

export interface AlpsAdmmStepOptions {
  /** The ADMM penalty ρ (> 0). */
  rho: number;
  /** (Ĥ + ρI)⁻¹ [cols, cols]; with `factors`, the eigenvector columns Q instead. */
  inverse: Tensor;
  /** With `back`: B = ((R·inverse)·diag(factors))·back, i.e. Q·(Λ + ρI)⁻¹·Qᵀ applied as factors. */
  factors?: Tensor;
  back?: Tensor;
  /** Unstructured: the entries kept over the whole matrix. */
  kept?: number;
  /** N:M: the n largest of every m inputs of a row (instead of `kept`). */
  n?: number;
  m?: number;
}

function alpsAdmmStepCall(g: Tensor, state: AlpsAdmmState, options: AlpsAdmmStepOptions): Call<number> {
  checkTensor('g', g);
  checkMatrix('g', g);
  const { v, z, b, work, support, previous } = state;
  for (const [name, t] of Object.entries({ v, z, b, work, support, previous, inverse: options.inverse })) {
    checkTensor(name, t);
    t.requireContiguous(name);
  }
  const factors = options.factors ?? Tensor.zeros([0], 'f32', g.device);
  const back = options.back ?? Tensor.zeros([0], 'f32', g.device);
  if ((options.factors === undefined) !== (options.back === undefined)) invalid('factors', 'factors and back together', 'only one of them');
  const nm = options.m !== undefined;
  const m = nm ? checkInteger('m', options.m, 1, 32) : 0;
  const n = nm ? checkInteger('n', options.n, 0, m) : 0;
  const kept = nm ? 0 : checkInteger('kept', options.kept, 0, g.numel);
  const device = commonDevice({ g, v, z, b, work, support, previous, inverse: options.inverse, factors, back });
  return {
    device,
    name: 'alpsAdmmStep',
    args: [
      ...g.contiguous().nativeArgs('g'),
      ...options.inverse.nativeArgs('inverse'),
      ...factors.contiguous().nativeArgs('factors'),
      ...back.contiguous().nativeArgs('back'),
      checkNumber('rho', options.rho, { min: Number.MIN_VALUE }),
      kept,
      n,
      m,
      ...v.nativeArgs('v'),
      ...z.nativeArgs('z'),
      ...b.nativeArgs('b'),
      ...work.nativeArgs('work'),
      ...support.nativeArgs('support'),
      ...previous.nativeArgs('previous'),
    ],
    result: (r) => r as number,
  };
}

/**
 * One ALPS ADMM iteration in one native pass (lib/compress/alps.ts): R = G − V + ρZ; B = R·(Ĥ + ρI)⁻¹;
 * U = B + V/ρ; support = P(U²) (the `kept` largest over the whole matrix, or N:M per row, ties to the lower
 * index); Z = U on the support, else 0; V ← V + ρB − ρZ. Updates `state` in place and returns how many
 * entries of the new support differ from `state.previous`. No two tensors may share memory.
 */
export function alpsAdmmStep(g: Tensor, state: AlpsAdmmState, options: AlpsAdmmStepOptions): number {
  return runSync(alpsAdmmStepCall(g, state, options));
}
export function alpsAdmmStepAsync(g: Tensor, state: AlpsAdmmState, options: AlpsAdmmStepOptions & AsyncOptions): Promise<number> {
  return runAsync(alpsAdmmStepCall(g, state, options), options);
}
