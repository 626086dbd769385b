// End-to-end training of quantization scales (codes frozen) on the language-model loss, and the run that
// needs it: compress layer-wise into a compressed-tensors folder, tune its scales, write the asked format.
//
// Tuning. A quantized linear's weight is W = s_G·q for every input of group G (symmetric grids), so
//   ∂L/∂s_G = Σ_{j∈G} ∂L/∂W_j · q_j,   and with θ = log s (scale-free steps, s stays positive)
//   ∂L/∂θ_G = s_G · Σ_{j∈G} ∂L/∂W_j · q_j.
// ∂L/∂W comes from the streamed gradients (autograd/decoder.ts: one block in memory at a time, the
// weights read from the folder being tuned); Adam on θ; after each step the new scales, rounded to their
// stored dtype, are written over the old ones in the folder, so the next step reads the updated model.
// Memory: the scales and Adam's two moments (3 floats per group), plus one block. The loss over all the
// calibration windows is measured before and after; if it did not fall, the original scales are restored.
import { open, rename, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { makeBatch, streamGradients } from '../autograd/decoder.js';
import { getMethod } from '../compress/index.js';
import type { ScaleTuning } from '../compress/method.js';
import { AbortError, InvalidArgumentError, UnsupportedFormatError } from '../errors.js';
import { evaluatePerplexity, type PerplexityResult } from '../eval/perplexity.js';
import { exportPacked, type ExportSummary } from '../export/packed-folder.js';
import { DenseFolder } from '../export/dense-folder.js';
import type { OutputFormat } from '../export/writer.js';
import { Checkpoint } from '../io/checkpoint.js';
import { CtCheckpoint } from '../io/compressed-tensors.js';
import { tensorBytes } from '../io/safetensors.js';
import { loadTokenizer } from '../io/tokenizer.js';
import { DecoderModel } from '../models/decoder.js';
import { unpackCodesAsync } from '../tensor/quant.js';
import { Tensor } from '../tensor/tensor.js';
import { Optimizer } from '../train/optimizer.js';
import { CALIBRATION_DEFAULTS, loadCalibration, sampleWindows } from './calibration.js';
import { compressModel, type CompressOptions } from './compress-model.js';
import type { CompressReport } from './report.js';

export interface TuneScalesReport {
  steps: number;
  lr: number;
  batch: number;
  /** Mean next-token NLL over every calibration window, before and after (after = before if restored). */
  lossBefore: number;
  lossAfter: number;
  /** Whether the tuned scales were kept (the loss fell). */
  kept: boolean;
  seconds: number;
}

const breathe = () => new Promise<void>((r) => setImmediate(r));

/** Mean NLL of a model over windows (each its own evaluation window). */
async function windowsLoss(model: DecoderModel, windows: Int32Array[], signal?: AbortSignal): Promise<number> {
  const tokens = new Int32Array(windows.length * windows[0].length);
  windows.forEach((w, i) => tokens.set(w, i * w.length));
  return (await evaluatePerplexity(model, tokens, { seqLen: windows[0].length, signal })).meanNll;
}

/** Trains the scales of a compressed-tensors folder's quantized linears in place (see the header). */
export async function tuneScales(dir: string, windows: Int32Array[], tuning: ScaleTuning, options: { signal?: AbortSignal; onStep?: (step: number, steps: number, loss: number) => void } = {}): Promise<TuneScalesReport> {
  const started = performance.now();
  const { signal } = options;
  if (windows.length === 0) throw new InvalidArgumentError('tuning the scales end to end needs calibration windows');
  const model = await DecoderModel.open(dir);
  const plain = await Checkpoint.open(dir);
  try {
    const checkpoint = model.checkpoint;
    if (!(checkpoint instanceof CtCheckpoint)) throw new UnsupportedFormatError(`${dir}: tuning scales needs a compressed-tensors folder`);
    const scales = new Map<string, { theta: Tensor; original: Tensor; dtype: string; bits: number; cols: number }>();
    for (const [base, scheme] of checkpoint.quantized) {
      if (!scheme.symmetric || scheme.actorder === 'group') throw new UnsupportedFormatError(`${dir}: ${base} is ${scheme.symmetric ? 'act-order grouped' : 'asymmetric'}; end-to-end scale tuning handles symmetric contiguous groups only`);
      const stored = await checkpoint.readQuantized(base);
      const s = stored.tensors.scale.to('f32');
      const cols = (await checkpoint.info(`${base}.weight`)).shape[1];
      scales.set(base, { theta: Tensor.fromTypedArray(Float32Array.from(s.data as Float32Array, (x) => (x > 0 ? Math.log(x) : 0)), s.shape), original: s, dtype: stored.tensors.scale.dtype, bits: scheme.bits, cols });
    }
    const writeScales = async (base: string, values: Tensor) => {
      const name = `${base}.weight_scale`;
      const info = await plain.info(name);
      const bytes = tensorBytes(values.to(scales.get(base)!.dtype as 'f32'));
      if (bytes.byteLength !== info.byteLength) throw new InvalidArgumentError(`${name}: ${bytes.byteLength} bytes to write over ${info.byteLength}`);
      const handle = await open(plain.shardPath(name), 'r+');
      try {
        await handle.write(bytes, 0, bytes.byteLength, info.offset);
      } finally {
        await handle.close();
      }
    };
    const current = (base: string) => {
      const { theta, original } = scales.get(base)!;
      const o = original.data as Float32Array;
      return Tensor.fromTypedArray(Float32Array.from(theta.data as Float32Array, (t, i) => (o[i] > 0 ? Math.exp(t) : 0)), theta.shape);
    };
    const lossBefore = await windowsLoss(model, windows, signal);
    const optimizer = new Optimizer({ kind: 'adamw', lr: tuning.lr });
    const perStep = Math.min(tuning.batch, windows.length);
    for (let step = 0; step < tuning.steps; ++step) {
      if (signal?.aborted) throw new AbortError();
      const first = (step * perStep) % windows.length;
      const chosen = Array.from({ length: perStep }, (_, i) => windows[(first + i) % windows.length]);
      const gradients = new Map<string, Tensor>();
      const loss = await streamGradients(model, makeBatch(chosen), {
        signal,
        onGradients: async (part, grads) => {
          if (part.kind !== 'block') return;
          for (const [name, g] of grads) {
            const base = name.endsWith('.weight') ? name.slice(0, -'.weight'.length) : undefined;
            const entry = base ? scales.get(base) : undefined;
            if (!entry || !base) continue;
            const stored = await checkpoint.readQuantized(base);
            const codes = (await unpackCodesAsync(stored.tensors.packed, entry.bits, entry.cols, { signal })).data as Int8Array;
            const gw = g.contiguous().data as Float32Array;
            const [rows, groups] = entry.theta.shape;
            const size = entry.cols / groups;
            const s = current(base).data as Float32Array;
            const gt = new Float32Array(rows * groups);
            for (let r = 0; r < rows; ++r) {
              for (let G = 0; G < groups; ++G) {
                let sum = 0;
                for (let j = G * size; j < (G + 1) * size; ++j) sum += gw[r * entry.cols + j] * codes[r * entry.cols + j];
                gt[r * groups + G] = s[r * groups + G] * sum;
              }
            }
            gradients.set(base, Tensor.fromTypedArray(gt, [rows, groups]));
          }
        },
      });
      optimizer.step(new Map([...scales].map(([base, e]) => [base, e.theta])), gradients);
      for (const base of scales.keys()) await writeScales(base, current(base));
      options.onStep?.(step + 1, tuning.steps, loss);
      await breathe();
    }
    let lossAfter = tuning.steps > 0 ? await windowsLoss(model, windows, signal) : lossBefore;
    const kept = lossAfter < lossBefore;
    if (!kept) {
      for (const [base, e] of scales) await writeScales(base, e.original);
      lossAfter = lossBefore;
    }
    return { steps: tuning.steps, lr: tuning.lr, batch: perStep, lossBefore, lossAfter, kept, seconds: (performance.now() - started) / 1000 };
  } finally {
    await plain.close();
    await model.close();
  }
}

/** The formats a compression run writes: the pipeline's, plus sparq's packed bsr-int4. */
export type RunFormat = OutputFormat | 'bsr-int4';

export interface TunedCompressOptions extends Omit<CompressOptions, 'format'> {
  format?: RunFormat;
  /** Progress of the tuning steps and the output (after the layer-wise pass). */
  onTuneStep?: (step: number, steps: number, loss: number) => void;
}

export interface TunedCompressReport extends CompressReport {
  /** Present where a method asked for end-to-end scale tuning. */
  scaleTuning?: TuneScalesReport;
  /** Present for bsr-int4: the packing's summary. */
  packed?: ExportSummary;
}

/** The first stage's end-to-end tuning settings, where its method asks for one. */
function tuningOf(options: TunedCompressOptions): ScaleTuning | undefined {
  for (const [i, stage] of options.recipe.stages.entries()) {
    const method = getMethod(stage.method, `stages[${i}].method`);
    const tuning = method.tunesScales?.(method.parseOptions(stage.options ?? {}, `stages[${i}].options`));
    if (tuning) return tuning;
  }
  return undefined;
}

/** The calibration windows the layer-wise pass used (same file, settings and seed). */
async function windowsOf(options: TunedCompressOptions): Promise<Int32Array[]> {
  if (options.calibrationWindows) return options.calibrationWindows;
  const model = await DecoderModel.open(options.model);
  try {
    const context = Math.min(model.config.maxPositions, model.config.slidingWindow ?? Infinity);
    const cal = options.recipe.calibration;
    const settings = {
      nsamples: options.nsamples ?? cal?.nsamples ?? CALIBRATION_DEFAULTS.nsamples,
      seqLen: Math.min(options.seqLen ?? cal?.seqLen ?? CALIBRATION_DEFAULTS.seqLen, context),
      seed: options.seed ?? cal?.seed ?? CALIBRATION_DEFAULTS.seed,
    };
    if (options.calibrationTokens) return sampleWindows(options.calibrationTokens, settings);
    if (options.calibrationFile) return loadCalibration(options.calibrationFile, await loadTokenizer(options.model), settings);
    return [];
  } finally {
    await model.close();
  }
}

async function perplexityOf(dir: string, options: TunedCompressOptions): Promise<PerplexityResult> {
  const model = await DecoderModel.open(dir);
  try {
    return await evaluatePerplexity(model, options.evalTokens!, { seqLen: options.evalSeqLen, maxTokens: options.evalMaxTokens, signal: options.signal });
  } finally {
    await model.close();
  }
}

/** A tuned compressed-tensors folder decoded into a dense one (the input's files, the weights decoded). */
async function writeDense(stage: string, options: TunedCompressOptions, report: CompressReport): Promise<void> {
  const input = await Checkpoint.open(options.model);
  const tuned = await DecoderModel.open(stage);
  const writer = await DenseFolder.begin<unknown>(input, options.out, { overwrite: options.overwrite, fingerprint: 'tuned' });
  try {
    const checkpoint = tuned.checkpoint as CtCheckpoint;
    for (const base of checkpoint.quantized.keys()) {
      const weight = await checkpoint.read(`${base}.weight`, { dtype: 'f32' });
      await writer.writeLinear(base, { weight }, weight);
    }
    await writer.finishBlock(tuned.config.layers, [], {});
    await writer.commit({ recipe: options.recipe, sparsity: report.totals.sparsity, bitsPerWeight: report.totals.bitsPerWeight }, report);
  } finally {
    await writer.close();
    await tuned.close();
    await input.close();
  }
}

/**
 * compressModel, plus what needs the whole compressed model first: end-to-end scale tuning (where the
 * recipe's method asks for it) and the bsr-int4 output (packed from the compressed-tensors result, one
 * scale per block: the recipe's group size must be 8, 16 or 32). Without either it is compressModel.
 * The intermediate folder sits beside `out` and is removed at the end; such runs cannot be resumed.
 */
export async function compressTuneAndPack(options: TunedCompressOptions): Promise<TunedCompressReport> {
  const format = options.format ?? 'dense';
  const tuning = tuningOf(options);
  if (!tuning && format !== 'bsr-int4') return compressModel({ ...options, format });
  if (options.resume) throw new InvalidArgumentError(`--resume: runs that ${tuning ? 'tune scales end to end' : 'write bsr-int4'} cannot be resumed; run again without --resume`);
  if (format === 'bsr-int4') {
    options.recipe.stages.forEach((s, i) => {
      const method = getMethod(s.method, `stages[${i}].method`);
      const float = method.floatFormat?.(method.parseOptions(s.options ?? {}, `stages[${i}].options`));
      if (float) throw new InvalidArgumentError(`--format bsr-int4 stores int4 codes, and ${method.name} quantizes to ${float} here (options.format); use --format compressed-tensors (float-quantized, for vLLM) or --format dense`);
    });
  }
  const groupSizes = new Set(options.recipe.stages.map((s) => Number((s.quantize as { groupSize?: unknown } | undefined)?.groupSize ?? 128)));
  if (format === 'bsr-int4' && (groupSizes.size !== 1 || ![8, 16, 32].includes([...groupSizes][0]))) {
    throw new InvalidArgumentError(`--format bsr-int4 stores one scale per block of 8, 16 or 32 inputs: quantize every stage with one such --group-size (got ${[...groupSizes].join(', ')})`);
  }
  const stage = `${resolve(options.out)}.sparq-intermediate`;
  await rm(stage, { recursive: true, force: true });
  try {
    // The windows are cut once, for the layer-wise pass and the tuning alike.
    const windows = tuning ? await windowsOf(options) : undefined;
    const calibration = windows && windows.length > 0 ? { calibrationWindows: windows, calibrationFile: undefined, calibrationTokens: undefined } : {};
    const report: TunedCompressReport = await compressModel({ ...options, ...calibration, out: stage, format: 'compressed-tensors', vllmLoadable: format === 'compressed-tensors' && (options.vllmLoadable ?? true), overwrite: true, evalTokens: undefined });
    report.out = options.out;
    report.format = format as OutputFormat;
    if (tuning) report.scaleTuning = await tuneScales(stage, windows!, tuning, { signal: options.signal, onStep: options.onTuneStep });
    if (format === 'bsr-int4') {
      report.packed = await exportPacked({ model: stage, out: options.out, format: 'bsr-int4', blockSize: [...groupSizes][0], overwrite: options.overwrite, signal: options.signal });
    } else if (format === 'dense') {
      await writeDense(stage, options, report);
    } else {
      if (options.overwrite) await rm(options.out, { recursive: true, force: true });
      await rename(stage, options.out);
    }
    if (options.evalTokens) {
      const before = await perplexityOf(options.model, options);
      const after = await perplexityOf(options.out, options);
      Object.assign(report, { perplexityBefore: before.perplexity, perplexityAfter: after.perplexity, eval: { before, after } });
    }
    // The layer-wise pass's report.json came along from the intermediate folder; this one adds the rest.
    await writeFile(join(options.out, 'report.json'), `${JSON.stringify(report, null, 2)}\n`);
    return report;
  } finally {
    await rm(stage, { recursive: true, force: true });
  }
}
