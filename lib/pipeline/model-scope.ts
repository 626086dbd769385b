// The driver for model-scope methods (scope 'model', e.g. Elsa): methods that optimise the model's own
// loss and so need every parameter in memory at once, rather than one block at a time. It knows no method
// by name:
//   1. read every parameter (f32) and the calibration text as one token stream,
//   2. hand them to the method with the recipe's linears and patterns, a way to save a resumable
//      checkpoint (a safetensors file in the staging folder, recorded in its progress file), and the
//      checkpoint of an interrupted run when resuming,
//   3. write the parameters the method changed over their bytes in the staged copy of the input (dense
//      format: same names, dtypes and shards), measure perplexity if asked, and rename it into place.
// A checkpoint file is written under a new name before the progress file points at it, so a crash in
// between leaves the previous pair intact. A run whose loss turned NaN keeps nothing (no resume could
// continue it with the same options); an interrupted one keeps its last checkpoint for --resume.
import { readdir, rm } from 'node:fs/promises';
import type { CompressionMethod, MethodCheckpoint } from '../compress/method.js';
import { countZerosAsync, formatPattern } from '../compress/pattern.js';
import { dtypeBits } from '../compress/quantizer.js';
import { InvalidArgumentError, NonFiniteError } from '../errors.js';
import { evaluatePerplexity, type PerplexityResult } from '../eval/perplexity.js';
import type { DenseFolder } from '../export/dense-folder.js';
import { SafetensorsFile, SafetensorsWriter } from '../io/safetensors.js';
import { loadTokenizer } from '../io/tokenizer.js';
import { DecoderModel } from '../models/decoder.js';
import type { Tensor } from '../tensor/tensor.js';
import { sparqVersion } from '../version.js';
import { readCalibrationText } from './calibration.js';
import type { CompressOptions } from './compress-model.js';
import type { Assignment } from './recipe.js';
import { summarize, type CompressReport, type LinearReportEntry } from './report.js';

const CHECKPOINT_PREFIX = 'sparq-method-state-';

/** The one model-scope assignment of a recipe, or undefined when the recipe has none; refuses mixtures. */
export function modelScopeAssignment(assignments: Map<string, Assignment>): Assignment | undefined {
  const all = [...assignments.values()];
  const scoped = all.filter((a) => a.method.scope === 'model');
  if (scoped.length === 0) return undefined;
  const first = scoped[0];
  if (scoped.length !== all.length || all.some((a) => a.stage !== first.stage)) {
    throw new InvalidArgumentError(`${first.method.name} optimises the whole model at once; the recipe must give it every compressed linear in one stage (no other stages or methods)`);
  }
  if (all.some((a) => a.quantization)) throw new InvalidArgumentError(`${first.method.name} prunes only; remove the quantize block (quantize the result in a second run)`);
  if (all.some((a) => !a.pattern)) throw new InvalidArgumentError(`${first.method.name} needs a sparsity for every linear`);
  return first;
}

/** The calibration text as one token stream: a file's whole text, given tokens, or given windows joined. */
export async function trainingTokens(options: CompressOptions, vocabSize: number): Promise<Int32Array> {
  let tokens: Int32Array;
  if (options.calibrationTokens) tokens = options.calibrationTokens;
  else if (options.calibrationWindows) {
    tokens = new Int32Array(options.calibrationWindows.reduce((n, w) => n + w.length, 0));
    let at = 0;
    for (const w of options.calibrationWindows) {
      tokens.set(w, at);
      at += w.length;
    }
  } else if (options.calibrationFile) tokens = (await loadTokenizer(options.model)).encode(await readCalibrationText(options.calibrationFile));
  else throw new InvalidArgumentError('this method trains on the calibration text: pass --calib FILE (.txt or .jsonl)');
  for (const id of tokens) if (id < 0 || id >= vocabSize) throw new InvalidArgumentError(`calibration token ${id} is outside the model's vocabulary of ${vocabSize}`);
  return tokens;
}

interface ResumeExtra {
  evalBefore?: PerplexityResult;
  checkpoint?: { file: string; meta: Record<string, unknown> };
}

export async function runModelScope(
  options: CompressOptions,
  model: DecoderModel,
  linears: { name: string; block: number }[],
  assignment: Assignment,
  tokens: Int32Array,
  writer: DenseFolder<LinearReportEntry>,
  started: number,
): Promise<CompressReport> {
  const method = assignment.method as CompressionMethod<unknown>;
  const signal = options.signal;
  const stageSeconds = { propagate: 0, capture: 0, compress: 0, error: 0, io: 0, eval: 0 };
  const blocks = model.config.layers;
  const evaluate = async (dir: string, label: string): Promise<PerplexityResult> => {
    const t = performance.now();
    const evalModel = await DecoderModel.open(dir);
    try {
      options.onProgress?.({ step: 0, steps: 1, block: -1, blocks, stage: label });
      return await evaluatePerplexity(evalModel, options.evalTokens!, { seqLen: options.evalSeqLen, maxTokens: options.evalMaxTokens, signal });
    } finally {
      stageSeconds.eval += (performance.now() - t) / 1000;
      await evalModel.close();
    }
  };
  const resumed = writer.resumed?.extra as ResumeExtra | undefined;
  const before = options.evalTokens ? (resumed?.evalBefore ?? (await evaluate(options.model, 'eval before'))) : undefined;

  const parameters = new Map<string, Tensor>();
  for (const name of model.checkpoint.names()) parameters.set(name, await model.checkpoint.read(name, { dtype: 'f32' }));
  let resume: MethodCheckpoint | undefined;
  if (resumed?.checkpoint) {
    const file = await SafetensorsFile.open(writer.staging + '/' + resumed.checkpoint.file);
    try {
      const tensors = new Map<string, Tensor>();
      for (const name of file.names()) tensors.set(name, await file.read(name));
      resume = { tensors, meta: resumed.checkpoint.meta };
    } finally {
      await file.close();
    }
  }
  const extra = (): ResumeExtra => ({ ...(before ? { evalBefore: before } : {}), ...(lastCheckpoint ? { checkpoint: lastCheckpoint } : {}) });
  let lastCheckpoint = resumed?.checkpoint;
  let saved = 0;
  const saveCheckpoint = async (checkpoint: MethodCheckpoint) => {
    const t = performance.now();
    const file = `${CHECKPOINT_PREFIX}${process.pid}-${++saved}.safetensors`;
    const plan = [...checkpoint.tensors].map(([name, tensor]) => ({ name, dtype: tensor.dtype, shape: [...tensor.shape] }));
    const out = await SafetensorsWriter.create(`${writer.staging}/${file}`, plan);
    try {
      for (const [name, tensor] of checkpoint.tensors) await out.write(name, tensor);
      await out.close();
    } catch (error) {
      await out.abort();
      throw error;
    }
    const previous = lastCheckpoint?.file;
    lastCheckpoint = { file, meta: checkpoint.meta };
    await writer.finishBlock(0, [], extra() as Record<string, unknown>);
    if (previous) await rm(`${writer.staging}/${previous}`, { force: true });
    stageSeconds.io += (performance.now() - t) / 1000;
  };

  const weightOf = (name: string) => `${name}.weight`;
  const t0 = performance.now();
  let result;
  try {
    result = await method.compressModel!({
      model,
      parameters,
      linears: linears.map((l) => ({ name: l.name, weight: weightOf(l.name), pattern: assignment.pattern! })),
      tokens,
      seqLen: options.seqLen ?? options.recipe.calibration?.seqLen,
      seed: options.seed ?? options.recipe.calibration?.seed ?? 0,
      options: assignment.options,
      resume,
      saveCheckpoint,
      onProgress: (p) => options.onProgress?.({ step: p.step, steps: p.steps, block: -1, blocks, stage: p.stage, line: p.line }),
      signal,
    });
  } catch (error) {
    if (error instanceof NonFiniteError) await writer.discard();
    throw error;
  }
  stageSeconds.compress += (performance.now() - t0) / 1000;

  // Write what changed, then the report entries of the compressed linears.
  const t1 = performance.now();
  const linearWeights = new Set(linears.map((l) => weightOf(l.name)));
  for (const name of result.changed) if (!linearWeights.has(name)) await writer.writeTensor(name, parameters.get(name)!);
  const entries: LinearReportEntry[] = [];
  const perLinearSeconds = stageSeconds.compress / Math.max(1, linears.length);
  for (const l of linears) {
    const weight = parameters.get(weightOf(l.name))!;
    await writer.writeTensor(weightOf(l.name), weight);
    const storageDType = await writer.storageDType(l.name);
    entries.push({
      name: l.name,
      method: method.name,
      pattern: formatPattern(assignment.pattern!),
      shape: [...weight.shape],
      sparsity: (await countZerosAsync(weight, signal)) / weight.numel,
      bitsPerWeight: dtypeBits(storageDType),
      relativeError: null,
      seconds: perLinearSeconds,
      ...(result.linearDetails?.get(l.name) ? { details: result.linearDetails.get(l.name) } : {}),
    });
  }
  await writer.closeFiles();
  for (const file of await readdir(writer.staging)) if (file.startsWith(CHECKPOINT_PREFIX)) await rm(`${writer.staging}/${file}`, { force: true });
  stageSeconds.io += (performance.now() - t1) / 1000;

  const after = options.evalTokens ? await evaluate(writer.staging, 'eval after') : undefined;
  let linearParameters = 0;
  for (const l of linears) linearParameters += parameters.get(weightOf(l.name))!.numel;
  const report: CompressReport = {
    model: options.model,
    out: options.out,
    format: 'dense',
    recipe: options.recipe,
    calibration: { windows: 0, seqLen: Number(result.details.seqLen ?? 0), seed: options.seed ?? options.recipe.calibration?.seed ?? 0, tokens: tokens.length },
    linears: entries,
    totals: {
      ...summarize(entries),
      linearParameters,
      seconds: (performance.now() - started) / 1000,
      peakRssBytes: process.resourceUsage().maxRSS * 1024,
      resumedAtBlock: null,
      stageSeconds: Object.fromEntries(Object.entries(stageSeconds).map(([k, v]) => [k, Number(v.toFixed(3))])) as CompressReport['totals']['stageSeconds'],
    },
    training: { ...result.details, resumedAtStep: (resume?.meta.step as number | undefined) ?? null },
    ...(before && after ? { perplexityBefore: before.perplexity, perplexityAfter: after.perplexity, eval: { before, after } } : {}),
  };
  const { log: _log, ...trainingSummary } = result.details;
  await writer.commit(
    {
      version: sparqVersion(),
      recipe: options.recipe,
      sparsity: report.totals.sparsity,
      calibration: report.calibration,
      training: trainingSummary,
      ...(after ? { perplexity: { before: before!.perplexity, after: after.perplexity, seqLen: after.seqLen, tokens: after.tokens } } : {}),
    },
    report,
  );
  return report;
}
