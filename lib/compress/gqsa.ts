// GQSA (Zeng, Liu, Yang, Chen, Mei & Fu, 2024): group sparsity + group quantization. A linear's weight
// W [out, in] is cut into groups of g consecutive inputs of a row; whole groups are pruned, the surviving
// ones are quantized to b-bit codes with one scale per group — exactly a BSR matrix of 1×g blocks with a
// scale per block (sparq's bsr-int4 packed format), which a GEMV walks block by block.
//   saliency     of group G of row r: S_rG = Σ_{j∈G} w_rj² / [H⁻¹]_jj, the optimal-brain-surgeon cost of
//                zeroing each weight alone, summed over the group (H = (2/T)XᵀX damped as in hessian.ts).
//                The paper does not publish its score; options: 'hessian' (default, above), 'obs-group'
//                (w_Gᵀ[(H⁻¹)_GG]⁻¹w_G, the OBS cost of zeroing the whole group at once with the rest of the
//                row compensating, a g×g solve per group), 'wanda' (Σ w_rj²·H_jj), 'magnitude' (Σ w_rj²).
//                No score wins on every model (bench/gqsa-ablation.ts), so the standard one stays.
//   selection    the p·(groups) lowest-saliency groups pruned per row ('row', default: every row keeps the
//                same number of blocks, so BSR rows are balanced) or over the whole matrix ('matrix').
//   solve        (`update: 'solve'`, default) with the mask fixed, each row's surviving weights are set to
//                the least-squares optimum of ‖(w − ŵ)X‖² with ŵ zero on the pruned groups:
//                  H_KK·ŵ_K = (H·w)_K   (K the row's kept inputs; H damped),
//                solved for all rows at once by Jacobi-preconditioned conjugate gradient (the native
//                maskedCg, `cgIterations` at most, relative residual 1e-5; ~20 iterations at 64 inputs).
//                The sweep below then only quantizes (pruned columns, already 0, stay 0 and pass on the
//                rounding errors that reached them). The column sweep alone (`update: 'sweep'`) is
//                correct OBS but compensates a pruned weight only on the columns to its right, so a row's
//                last pruned groups get no compensation at all: on sotu-llama (hidden 256) its layer
//                error ‖(W − Ŵ)X‖²/‖WX‖² was 1.9× the solve's and its perplexity worse than zeroing the
//                groups with no update (44.2 vs 42.0; the solve 38.6) — bench/gqsa-ablation.ts.
//   sweep        with the mask fixed, one OBS column sweep (SparseGPT/GPTQ's): column by column, a pruned
//                weight goes to 0, a kept one to s·round(w/s) clamped to [−2^(b−1), 2^(b−1)−1]; the error
//                e = (w − q)/U_jj moves onto the later columns, W[:, j+1:] −= e·U[j, j+1:], where U is the
//                upper Cholesky factor of H⁻¹. A group's symmetric scale s = max|w|/((2^b − 1)/2) (max|w|/7.5
//                at 4 bits, quantizer.ts's grid), fitted when the sweep reaches the group from the weights
//                as updated so far (SparseGPT's joint sweep refits the same way).
//   BQPO         (block-wise reconstruction, `blockSteps` > 0) after every linear of a decoder block is
//                compressed: min over the block's surviving latent weights V and log-scales θ of
//                ‖block(X; Ŵ) − Y‖²/‖Y‖², Y the dense block's outputs on the same inputs X, with
//                Ŵ = e^θ·clamp(round(V/e^θ)) and the straight-through estimator for round:
//                  ∂/∂V = ∂/∂Ŵ·1[in range],  ∂/∂θ_G = s·Σ_{j∈G} ∂/∂Ŵ_j·(q_j − 1[in range]·V_j/s)   (LSQ)
//                Adam, `blockBatch` calibration windows per step, lr `blockLr` for θ (a relative change of the
//                scale) and blockLr·mean|W| for V; the mask never changes. The paper's BQPO trains the
//                block's weights and quantization parameters; training V as well as θ is our reading.
//                If the block's loss over all calibration batches did not fall, the sweep's result is kept.
//   E2E-OQP      (end-to-end, `e2eSteps` > 0) after the whole model: the codes are frozen and only the
//                scales are trained on the language-model loss (pipeline/tune-scales.ts, run by the
//                pipeline for any method that asks for it through `tunesScales`): θ = log s, Adam.
// Only symmetric grids: a zero point is an integer in sparq's formats (compressed-tensors'), so it
// cannot be trained continuously, and bsr-int4 stores none.
import { InvalidArgumentError } from '../errors.js';
import { gemmAsync, maskedCgAsync } from '../tensor/ops.js';
import { Tensor } from '../tensor/tensor.js';
import { Optimizer } from '../train/optimizer.js';
import { checkInteger, checkNumber, checkOneOf } from '../validate.js';
import { fixDeadInputs, hessianDetails, inverseFactor } from './hessian.js';
import { rejectUnknownOptions, requireStatistic, type CompressedLinear, type CompressionMethod } from './method.js';
import { dtypeBits, type QuantizationScheme } from './quantizer.js';

export const GQSA_SALIENCIES = ['hessian', 'obs-group', 'wanda', 'magnitude'] as const;
export const GQSA_UPDATES = ['solve', 'sweep'] as const;
export const GQSA_SELECTIONS = ['row', 'matrix'] as const;

export interface GqsaOptions {
  saliency: (typeof GQSA_SALIENCIES)[number];
  selection: (typeof GQSA_SELECTIONS)[number];
  /** λ relative to mean(diag H) (default 0.01). */
  damp: number;
  /** How the kept weights make up for the pruned groups: the per-row least-squares solve, then the quantizing sweep (default), or the OBS column sweep alone. */
  update: (typeof GQSA_UPDATES)[number];
  /** 'solve': conjugate-gradient iterations at most (default 100). */
  cgIterations: number;
  /** BQPO: Adam steps per decoder block (0: off). */
  blockSteps: number;
  blockLr: number;
  /** BQPO: calibration windows per step. */
  blockBatch: number;
  /** What BQPO trains: the scales and the surviving weights (default), or the scales only. */
  blockTrain: 'weights' | 'scales';
  /** E2E-OQP: Adam steps on the scales over the whole model (0: off), lr on log-scales, windows per step. */
  e2eSteps: number;
  e2eLr: number;
  e2eBatch: number;
}

const breathe = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Round half to even, as the native quantizer (nearbyint) does. */
export function roundEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  return d > 0.5 ? f + 1 : d < 0.5 ? f : f % 2 === 0 ? f : f + 1;
}

/** The values rounded to the dtype scales are stored in (f32 values stay as they are). */
export function roundToStorage(values: Float32Array, storageDType: string): Float32Array {
  if (storageDType !== 'f16' && storageDType !== 'bf16') return values;
  return Tensor.fromTypedArray(values).to(storageDType).to('f32').data as Float32Array;
}

/** The smallest scale the native grid uses for a group of zeros (native/core/quant.h scaleEpsilon). */
function scaleEpsilon(storageDType: string): number {
  return storageDType === 'bf16' ? 0.0078125 : storageDType === 'f16' ? 0.0009765625 : 1.1920929e-7;
}

/** Checks what GQSA can do with a scheme and a layer; errors name the layer. */
export function checkGqsaLayer(name: string, inputs: number, scheme: QuantizationScheme | undefined): number {
  if (!scheme) throw new InvalidArgumentError(`${name}: gqsa quantizes the surviving groups; give the stage a quantize block (e.g. { bits: 4, groupSize: 16 })`);
  if (!scheme.symmetric) throw new InvalidArgumentError(`${name}: gqsa uses symmetric grids only (bsr-int4 stores no zero points); drop --asym / symmetric: false`);
  if (scheme.actOrder) throw new InvalidArgumentError(`${name}: gqsa groups are consecutive inputs (BSR blocks); drop actOrder`);
  const g = scheme.groupSize;
  if (g === 0) throw new InvalidArgumentError(`${name}: gqsa prunes groups of --group-size inputs; per-channel scales (group size 0) have no groups`);
  if (inputs % g !== 0) {
    throw new InvalidArgumentError(`${name}: its ${inputs} inputs do not split into GQSA groups of ${g} (BSR blocks); choose a --group-size that divides ${inputs}, or leave this layer out (--ignore '${name}')`);
  }
  return g;
}

/** S[r, G] for every row and group, 'hessian' | 'wanda' | 'magnitude' (see the header); perInput is [H⁻¹]_jj, H_jj or unused. */
function groupSaliency(w: Float32Array, rows: number, inputs: number, g: number, perInput: Float64Array, kind: Exclude<GqsaOptions['saliency'], 'obs-group'>): Float64Array {
  const groups = inputs / g;
  const s = new Float64Array(rows * groups);
  for (let r = 0; r < rows; ++r) {
    for (let G = 0; G < groups; ++G) {
      let sum = 0;
      for (let j = G * g; j < (G + 1) * g; ++j) {
        const x = w[r * inputs + j];
        sum += kind === 'magnitude' ? x * x : kind === 'wanda' ? x * x * perInput[j] : (x * x) / perInput[j];
      }
      s[r * groups + G] = sum;
    }
  }
  return s;
}

/** In place: the lower Cholesky factor of an SPD matrix [n, n] (f64). */
function choleskyLower(a: Float64Array, n: number): void {
  for (let c = 0; c < n; ++c) {
    let d = a[c * n + c];
    for (let k = 0; k < c; ++k) d -= a[c * n + k] * a[c * n + k];
    d = Math.sqrt(Math.max(d, Number.MIN_VALUE));
    a[c * n + c] = d;
    for (let i = c + 1; i < n; ++i) {
      let x = a[i * n + c];
      for (let k = 0; k < c; ++k) x -= a[i * n + k] * a[c * n + k];
      a[i * n + c] = x / d;
    }
    for (let k = c + 1; k < n; ++k) a[c * n + k] = 0;
  }
}

/**
 * S[r, G] = w_Gᵀ[(H⁻¹)_GG]⁻¹w_G ('obs-group'), with H⁻¹ = UᵀU from the upper Cholesky factor U of H⁻¹:
 * (H⁻¹)_ab = Σ_{i ≤ min(a,b)} U_ia·U_ib. With (H⁻¹)_GG = LLᵀ the form is ‖L⁻¹w_G‖².
 */
export function obsGroupSaliency(w: Float32Array, rows: number, inputs: number, g: number, factor: Float32Array): Float64Array {
  const groups = inputs / g;
  const s = new Float64Array(rows * groups);
  const block = new Float64Array(g * g);
  const y = new Float64Array(g);
  for (let G = 0; G < groups; ++G) {
    const o = G * g;
    for (let a = 0; a < g; ++a) {
      for (let b = 0; b <= a; ++b) {
        let sum = 0;
        for (let i = 0; i <= o + b; ++i) sum += factor[i * inputs + o + a] * factor[i * inputs + o + b];
        block[a * g + b] = sum;
        block[b * g + a] = sum;
      }
    }
    choleskyLower(block, g);
    for (let r = 0; r < rows; ++r) {
      let sum = 0;
      for (let a = 0; a < g; ++a) {
        let x = w[r * inputs + o + a];
        for (let k = 0; k < a; ++k) x -= block[a * g + k] * y[k];
        y[a] = x / block[a * g + a];
        sum += y[a] * y[a];
      }
      s[r * groups + G] = sum;
    }
  }
  return s;
}

/**
 * The group mask (1 = kept, per row and group): every group's saliency (see the header), then the lowest
 * `sparsity` fraction pruned per row or over the matrix. `hessian` with dead inputs fixed; `factor` U of H⁻¹.
 */
export function chooseGroups(weight: Tensor, hessian: Tensor, factor: Tensor, g: number, sparsity: number, options: Pick<GqsaOptions, 'saliency' | 'selection'>): Uint8Array {
  const [rows, inputs] = weight.shape;
  const w = weight.data as Float32Array;
  const u = factor.data as Float32Array;
  const h = hessian.data as Float32Array;
  let saliency: Float64Array;
  if (options.saliency === 'obs-group') saliency = obsGroupSaliency(w, rows, inputs, g, u);
  else {
    // [H⁻¹]_jj = Σ_i U_ij² (H⁻¹ = UᵀU); H_jj for 'wanda'.
    const perInput = new Float64Array(inputs);
    for (let j = 0; j < inputs; ++j) {
      if (options.saliency === 'wanda') perInput[j] = h[j * inputs + j];
      else if (options.saliency === 'hessian') for (let i = 0; i <= j; ++i) perInput[j] += u[i * inputs + j] * u[i * inputs + j];
    }
    saliency = groupSaliency(w, rows, inputs, g, perInput, options.saliency);
  }
  return selectGroups(saliency, rows, inputs / g, sparsity, options.selection);
}

/** 1 = kept, per (row, group): the lowest-saliency fraction pruned per row or over the matrix (ties to the lower index). */
export function selectGroups(saliency: Float64Array, rows: number, groups: number, sparsity: number, selection: GqsaOptions['selection']): Uint8Array {
  const kept = new Uint8Array(rows * groups).fill(1);
  const prune = (indices: number[], count: number) => {
    indices.sort((a, b) => saliency[a] - saliency[b] || a - b);
    for (let i = 0; i < count; ++i) kept[indices[i]] = 0;
  };
  if (selection === 'matrix') prune(Array.from({ length: rows * groups }, (_, i) => i), Math.round(sparsity * rows * groups));
  else for (let r = 0; r < rows; ++r) prune(Array.from({ length: groups }, (_, G) => r * groups + G), Math.round(sparsity * groups));
  return kept;
}

/**
 * 'solve' (see the header): every row's kept weights set to argmin ‖(w − ŵ)X‖² with ŵ zero on its pruned
 * groups, i.e. H_KK·ŵ_K = (H·w)_K, by the native Jacobi-preconditioned CG from the masked weights.
 * `hessian` is H with dead inputs fixed; `lambda` the absolute damping the factor was made with.
 */
export async function solveKeptGroups(
  weight: Tensor,
  hessian: Tensor,
  lambda: number,
  kept: Uint8Array,
  g: number,
  options: { maxIterations: number; rtol?: number; signal?: AbortSignal },
): Promise<{ weight: Tensor; iterations: number; converged: boolean }> {
  const [rows, inputs] = weight.shape;
  const { signal } = options;
  const damped = await hessian.cloneAsync({ signal });
  const h = damped.data as Float32Array;
  for (let j = 0; j < inputs; ++j) h[j * inputs + j] += lambda;
  const groups = inputs / g;
  const mask = Tensor.fromTypedArray(Uint8Array.from({ length: rows * inputs }, (_, i) => kept[Math.floor(i / inputs) * groups + Math.floor((i % inputs) / g)]), [rows, inputs]);
  const target = await gemmAsync(weight, damped, { signal }); // (H·w_r)ᵀ for every row r (H symmetric)
  const x = await weight.cloneAsync({ signal });
  const cg = await maskedCgAsync(damped, target, mask, x, { maxIterations: options.maxIterations, rtol: options.rtol ?? 1e-5, signal });
  return { weight: x, ...cg };
}

/**
 * The OBS sweep with a fixed group mask (see the header), in float64: codes, scales (pruned groups 0) and
 * the decoded weight. `factor` is U, the upper Cholesky factor of H⁻¹.
 */
export async function sweepGroups(
  weight: Tensor,
  factor: Tensor,
  kept: Uint8Array,
  scheme: QuantizationScheme,
  storageDType: string,
  signal?: AbortSignal,
): Promise<{ weight: Tensor; codes: Tensor; scales: Tensor }> {
  const [rows, inputs] = weight.shape;
  const g = scheme.groupSize;
  const groups = inputs / g;
  const qmin = -(2 ** (scheme.bits - 1));
  const qmax = 2 ** (scheme.bits - 1) - 1;
  const W = Float64Array.from(weight.data as Float32Array);
  const U = factor.data as Float32Array;
  const codes = new Int8Array(rows * inputs);
  const scales = new Float32Array(rows * groups);
  const out = new Float32Array(rows * inputs);
  const groupScale = new Float32Array(rows);
  for (let G = 0; G < groups; ++G) {
    signal?.throwIfAborted();
    for (let r = 0; r < rows; ++r) {
      let amax = 0;
      for (let j = G * g; j < (G + 1) * g; ++j) amax = Math.max(amax, Math.abs(W[r * inputs + j]));
      groupScale[r] = kept[r * groups + G] ? amax / ((qmax - qmin) / 2) : 0;
    }
    const rounded = roundToStorage(groupScale, storageDType);
    for (let r = 0; r < rows; ++r) {
      if (kept[r * groups + G] && rounded[r] === 0) rounded[r] = scaleEpsilon(storageDType);
      scales[r * groups + G] = rounded[r];
    }
    for (let j = G * g; j < (G + 1) * g; ++j) {
      const d = U[j * inputs + j];
      const uRow = j * inputs;
      for (let r = 0; r < rows; ++r) {
        const at = r * inputs + j;
        const s = scales[r * groups + G];
        const w = W[at];
        let q = 0;
        if (s > 0) {
          // w/s in float32, as the native quantizer divides (a tie like −7.5 must round the same way).
          const code = roundEven(Math.min(Math.max(Math.fround(Math.fround(w) / s), qmin), qmax));
          codes[at] = code;
          q = Math.fround(code * s);
        }
        out[at] = q;
        const e = (w - q) / d;
        if (e === 0) continue;
        const base = r * inputs;
        for (let k = j + 1; k < inputs; ++k) W[base + k] -= e * U[uRow + k];
      }
    }
    if (G % 4 === 3) await breathe();
  }
  return {
    weight: Tensor.fromTypedArray(out, [rows, inputs]),
    codes: Tensor.fromTypedArray(codes, [rows, inputs]),
    scales: Tensor.fromTypedArray(scales, [rows, groups]),
  };
}

/**
 * Bits per weight as bsr-int4 stores the layer: per block with a nonzero code, its codes, its scale (in the
 * storage dtype) and its 32-bit column index; plus the 32-bit row pointers.
 */
export function bsrBitsPerWeight(codes: Int8Array, rows: number, inputs: number, scheme: QuantizationScheme, storageDType: string): number {
  const g = scheme.groupSize;
  let blocks = 0;
  for (let start = 0; start < codes.length; start += g) {
    for (let j = start; j < start + g; ++j) {
      if (codes[j] !== 0) {
        blocks += 1;
        break;
      }
    }
  }
  return (blocks * (g * scheme.bits + dtypeBits(storageDType) + 32) + (rows + 1) * 32) / (rows * inputs);
}

/** One linear's trainable state in BQPO. */
interface BlockState {
  role: string;
  scheme: QuantizationScheme;
  rows: number;
  inputs: number;
  kept: Uint8Array;
  /** Latent weights V, [out, in] (pruned groups 0). */
  latent: Tensor;
  /** θ = log s, [out, groups] (pruned groups 0, never updated). */
  logScales: Tensor;
}

/** A block state's grid: group size and count, the code range, and its log-scales and latent weights as arrays. */
function gridOf(state: BlockState) {
  const { rows, inputs, scheme, kept } = state;
  const g = scheme.groupSize;
  return {
    rows,
    inputs,
    kept,
    g,
    groups: inputs / g,
    qmin: -(2 ** (scheme.bits - 1)),
    qmax: 2 ** (scheme.bits - 1) - 1,
    theta: state.logScales.data as Float32Array,
    v: state.latent.data as Float32Array,
  };
}

/** Ŵ = s·clamp(round(V/s)) (pruned groups 0), with the codes; scales rounded to the storage dtype when `final`. */
function decode(state: BlockState, storageDType: string, final: boolean): { weight: Tensor; codes: Int8Array; scales: Float32Array } {
  const { rows, inputs, kept, g, groups, qmin, qmax, theta, v } = gridOf(state);
  let scales: Float32Array = Float32Array.from(theta, (t, i) => (kept[i] ? Math.exp(t) : 0));
  if (final) scales = roundToStorage(scales, storageDType);
  const codes = new Int8Array(rows * inputs);
  const w = new Float32Array(rows * inputs);
  for (let r = 0; r < rows; ++r) {
    for (let G = 0; G < groups; ++G) {
      const s = scales[r * groups + G];
      if (!(s > 0)) continue;
      for (let j = G * g; j < (G + 1) * g; ++j) {
        const code = roundEven(Math.min(Math.max(Math.fround(v[r * inputs + j] / s), qmin), qmax));
        codes[r * inputs + j] = code;
        w[r * inputs + j] = Math.fround(code * s);
      }
    }
  }
  return { weight: Tensor.fromTypedArray(w, [rows, inputs]), codes, scales };
}

/** ∂L/∂V and ∂L/∂θ from ∂L/∂Ŵ (straight-through round, LSQ scale gradient; see the header). */
function chainGradients(state: BlockState, gradW: Tensor): { latent: Tensor; logScales: Tensor } {
  const { rows, inputs, kept, g, groups, qmin, qmax, theta, v } = gridOf(state);
  const gw = gradW.data as Float32Array;
  const gv = new Float32Array(rows * inputs);
  const gt = new Float32Array(rows * groups);
  for (let r = 0; r < rows; ++r) {
    for (let G = 0; G < groups; ++G) {
      if (!kept[r * groups + G]) continue;
      const s = Math.exp(theta[r * groups + G]);
      let sum = 0;
      for (let j = G * g; j < (G + 1) * g; ++j) {
        const at = r * inputs + j;
        const x = Math.fround(v[at] / s);
        const inRange = x >= qmin && x <= qmax;
        const code = roundEven(Math.min(Math.max(x, qmin), qmax));
        if (inRange) gv[at] = gw[at];
        sum += gw[at] * (code - (inRange ? x : 0));
      }
      gt[r * groups + G] = s * sum;
    }
  }
  return { latent: Tensor.fromTypedArray(gv, [rows, inputs]), logScales: Tensor.fromTypedArray(gt, [rows, groups]) };
}

export const gqsa: CompressionMethod<GqsaOptions> = {
  name: 'gqsa',
  summary: 'prune whole groups of inputs by Hessian saliency, quantize the survivors per group (BSR blocks), then refine per block and end to end',
  needs: { hessian: true },
  scope: 'linear',
  prunes: true,
  requiresSparsity: true,
  quantizes: () => true,
  fallback: 'rtn',
  parseOptions(raw, where) {
    rejectUnknownOptions(raw, ['saliency', 'selection', 'damp', 'update', 'cgIterations', 'blockSteps', 'blockLr', 'blockBatch', 'blockTrain', 'e2eSteps', 'e2eLr', 'e2eBatch'], where, 'gqsa');
    return {
      saliency: checkOneOf(`${where}.saliency`, raw.saliency ?? 'hessian', GQSA_SALIENCIES),
      selection: checkOneOf(`${where}.selection`, raw.selection ?? 'row', GQSA_SELECTIONS),
      damp: checkNumber(`${where}.damp`, raw.damp ?? 0.01, { min: 0 }),
      update: checkOneOf(`${where}.update`, raw.update ?? 'solve', GQSA_UPDATES),
      cgIterations: checkInteger(`${where}.cgIterations`, raw.cgIterations ?? 100, 1, 100000),
      blockSteps: checkInteger(`${where}.blockSteps`, raw.blockSteps ?? 0, 0, 1e6),
      blockLr: checkNumber(`${where}.blockLr`, raw.blockLr ?? 1e-3, { min: 0 }),
      blockBatch: checkInteger(`${where}.blockBatch`, raw.blockBatch ?? 4, 1, 1 << 16),
      blockTrain: checkOneOf(`${where}.blockTrain`, raw.blockTrain ?? 'weights', ['weights', 'scales'] as const),
      e2eSteps: checkInteger(`${where}.e2eSteps`, raw.e2eSteps ?? 0, 0, 1e6),
      e2eLr: checkNumber(`${where}.e2eLr`, raw.e2eLr ?? 1e-3, { min: 0 }),
      e2eBatch: checkInteger(`${where}.e2eBatch`, raw.e2eBatch ?? 4, 1, 1 << 16),
    };
  },
  checkLinear(name, shape, pattern, quantization) {
    checkGqsaLayer(name, shape[1], quantization);
    if (pattern?.kind !== 'unstructured') {
      throw new InvalidArgumentError(`${name}: gqsa prunes a fraction of groups (e.g. --sparsity 0.5)${pattern ? `, not ${pattern.n}:${pattern.m}` : ''}`);
    }
  },
  async compress(request) {
    const { name, weight, pattern, quantization, storageDType, options, signal } = request;
    const [rows, inputs] = weight.shape;
    gqsa.checkLinear!(name, weight.shape, pattern, quantization);
    const g = quantization!.groupSize;
    if (pattern?.kind !== 'unstructured') return { weight };
    const { hessian, deadInputs } = await fixDeadInputs(requireStatistic(request, 'gqsa', 'hessian'), weight, signal);
    const { factor, report } = await inverseFactor(hessian, options.damp, deadInputs, signal);
    const kept = chooseGroups(weight, hessian, factor, g, pattern.sparsity, options);
    let start = weight;
    let solveDetails = {};
    if (options.update === 'solve') {
      const solved = await solveKeptGroups(weight, hessian, report.dampingAbsolute, kept, g, { maxIterations: options.cgIterations, signal });
      start = solved.weight;
      solveDetails = { cgIterations: solved.iterations, cgConverged: solved.converged };
    }
    const swept = await sweepGroups(start, factor, kept, quantization!, storageDType ?? 'f32', signal);
    let prunedGroups = 0;
    for (const k of kept) prunedGroups += 1 - k;
    return {
      weight: swept.weight,
      quantized: { scheme: quantization!, codes: swept.codes, scales: swept.scales },
      storedBitsPerWeight: bsrBitsPerWeight(swept.codes.data as Int8Array, rows, inputs, quantization!, storageDType ?? 'f32'),
      details: { ...hessianDetails(report), groupSize: g, groupSparsity: prunedGroups / kept.length, saliency: options.saliency, selection: options.selection, update: options.update, ...solveDetails },
    };
  },
  refinesBlocks: (options) => options.blockSteps > 0,
  async refineBlock(request) {
    const { linears, reconstruction, storageDType, options, signal } = request;
    const states: BlockState[] = [];
    const initial = new Map<string, CompressedLinear>();
    let meanAbs = 0;
    let count = 0;
    for (const [role, { result }] of linears) {
      const q = result.quantized!;
      const [rows, inputs] = result.weight.shape;
      const scales = q.scales.data as Float32Array;
      const kept = Uint8Array.from(scales, (s) => (s > 0 && Number.isFinite(s) ? 1 : 0));
      // A kept group whose codes are all zero still counts as kept (its scale can grow back).
      states.push({ role, scheme: q.scheme, rows, inputs, kept, latent: result.weight.clone(), logScales: Tensor.fromTypedArray(Float32Array.from(scales, (s) => (s > 0 ? Math.log(s) : 0)), [rows, scales.length / rows]) });
      initial.set(role, result);
      for (const x of result.weight.data as Float32Array) if (x !== 0) (meanAbs += Math.abs(x)), (count += 1);
    }
    meanAbs = count > 0 ? meanAbs / count : 1;
    const weightsOf = (final: boolean) => new Map(states.map((s) => [s.role, decode(s, storageDType, final)]));
    const tensorsOf = (decoded: Map<string, { weight: Tensor }>) => new Map([...decoded].map(([role, d]) => [role, d.weight]));
    const lossBefore = await reconstruction.loss(tensorsOf(weightsOf(true)));
    const latentOptimizer = new Optimizer({ kind: 'adamw', lr: options.blockLr * meanAbs });
    const scaleOptimizer = new Optimizer({ kind: 'adamw', lr: options.blockLr });
    for (let step = 0; step < options.blockSteps; ++step) {
      signal?.throwIfAborted();
      const { gradients } = await reconstruction.lossAndGradients(tensorsOf(weightsOf(false)), step, options.blockBatch);
      const latentGrads = new Map<string, Tensor>();
      const scaleGrads = new Map<string, Tensor>();
      for (const state of states) {
        const chained = chainGradients(state, gradients.get(state.role)!);
        latentGrads.set(state.role, chained.latent);
        scaleGrads.set(state.role, chained.logScales);
      }
      if (options.blockTrain === 'weights') latentOptimizer.step(new Map(states.map((s) => [s.role, s.latent])), latentGrads);
      scaleOptimizer.step(new Map(states.map((s) => [s.role, s.logScales])), scaleGrads);
      await breathe();
    }
    const decoded = weightsOf(true);
    const lossAfter = await reconstruction.loss(tensorsOf(decoded));
    const improved = lossAfter < lossBefore;
    const results = new Map<string, CompressedLinear>();
    for (const state of states) {
      const first = initial.get(state.role)!;
      if (!improved) {
        results.set(state.role, first);
        continue;
      }
      const d = decoded.get(state.role)!;
      results.set(state.role, {
        ...first,
        weight: d.weight,
        storedBitsPerWeight: bsrBitsPerWeight(d.codes, state.rows, state.inputs, state.scheme, storageDType),
        quantized: { ...first.quantized!, codes: Tensor.fromTypedArray(d.codes, [state.rows, state.inputs]), scales: Tensor.fromTypedArray(d.scales, [state.rows, d.scales.length / state.rows]) },
      });
    }
    return { results, details: { blockLossBefore: lossBefore, blockLossAfter: improved ? lossAfter : lossBefore, blockSteps: options.blockSteps, blockRefineKept: improved } };
  },
  tunesScales: (options) => (options.e2eSteps > 0 ? { steps: options.e2eSteps, lr: options.e2eLr, batch: options.e2eBatch } : undefined),
};
